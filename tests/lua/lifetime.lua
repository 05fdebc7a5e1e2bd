-- Active objects stay alive without Lua references; closed ones are
-- collectable; __close and __gc; tostring shows the state.
local net = require "net"
local t = require "testlib"

local function full_gc()
  for _ = 1, 4 do collectgarbage("collect") end
end

-- 1. A listening server and a connected client with no Lua references
-- survive repeated full collections; the exchange completes; once closed,
-- both are collected.
local weak = setmetatable({}, { __mode = "v" })
t.run(10000, function(done)
  local gc_runs = 0
  local gc_timer = net.setInterval(function()
    full_gc()
    gc_runs = gc_runs + 1
  end, 5)
  local state = { server_ended = false, client_ended = false, got = "" }
  local function finish()
    if state.server_ended and state.client_ended then
      net.clearInterval(gc_timer)
      t.truthy(gc_runs >= 3, "collections ran during the exchange: " .. gc_runs)
      t.eq(state.got, "pong", "client received")
      -- The server is still listening, referenced only by the weak table.
      t.truthy(weak.srv, "listening server collected while listening")
      weak.srv:stop()
      done()
    end
  end
  ;(function()
    local srv = net.TCPServer()
    srv:listen("127.0.0.1", 0, {
      data = function(id, d)
        t.eq(d, "ping", "server received")
        -- Let several collections run between the request and the reply.
        net.setTimeout(function() srv:send(id, "pong") end, 40)
      end,
      disconnected = function() state.server_ended = true; finish() end,
      error = function(m) error("server error: " .. m) end,
    })
    local _, port = srv:address()
    weak.srv = srv
    local c = net.TCPSocket()
    c:connect("127.0.0.1", port, {
      connected = function()
        -- Send later: the connected socket must survive collections meanwhile.
        net.setTimeout(function() c:send("ping") end, 40)
      end,
      data = function(d)
        state.got = state.got .. d
        if state.got == "pong" then
          net.setTimeout(function() c:disconnect() end, 30)
        end
      end,
      disconnected = function() state.client_ended = true; finish() end,
      error = function(m) error("client error: " .. m) end,
    })
    weak.client = c
  end)()
  full_gc()   -- collect at once, while the client is still connecting
  t.truthy(weak.client, "connecting client collected")
  t.truthy(weak.srv, "listening server collected")
end)
full_gc()
t.eq(weak.srv, nil, "stopped server not collected")
t.eq(weak.client, nil, "disconnected client not collected")

-- 2. Objects that were never active are collectable.
do
  weak.fresh = net.TCPSocket()
  weak.fresh_srv = net.TCPServer()
  full_gc()
  t.eq(weak.fresh, nil, "never-connected socket not collected")
  t.eq(weak.fresh_srv, nil, "never-listening server not collected")
end

-- 3. A timer with no reference still fires.
do
  local fired = false
  net.setTimeout(function() fired = true end, 30)
  full_gc()
  local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  net.setTimeout(function() full_gc() end, 10)
  net.setTimeout(function() net.clearTimeout(guard) end, 60)
  t.eq(net.loop(), false, "loop")
  t.truthy(fired, "unreferenced timer fired")
end

-- 4. tostring and __close.
t.run(10000, function(done)
  local srvlog = t.log("server")
  local srv, port = t.listen({
    connected = srvlog:fn("connected"),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  t.match(tostring(srv), "^net%.TCPServer", "tostring of a server")
  local clog = t.log("client")
  local holder = {}
  local function scope()
    local s <close> = net.TCPSocket()
    holder.s = s
    t.eq(tostring(s), "net.TCPSocket (closed)", "tostring before connect")
    s:connect("127.0.0.1", port, {
      connected = clog:fn("connected", function()
        t.eq(tostring(holder.s), ("net.TCPSocket (connected 127.0.0.1:%d)"):format(port),
          "tostring while connected")
        holder.scope_exit()
      end),
      disconnected = clog:fn("disconnected", function()
        t.after(100, function()
          clog:expect({ "connected", "disconnected" })
          srvlog:expect({ "connected", "disconnected" })
          done()
        end)
      end),
      error = clog:fn("error"),
    })
    -- Suspend the scope until connected: a coroutine holds the <close>.
    coroutine.yield()
  end
  local co = coroutine.create(scope)
  holder.scope_exit = function()
    -- Leaving the scope closes the socket at once.
    assert(coroutine.resume(co))
    t.eq(coroutine.status(co), "dead", "scope left")
    t.eq(tostring(holder.s), "net.TCPSocket (closed)", "tostring after __close")
    t.fails("send after __close", holder.s.send, holder.s, "x")
  end
  assert(coroutine.resume(co))
  t.eq(coroutine.status(co), "suspended", "scope open")
end)

-- 5. __close on an error exit; then the closed socket is collectable.
do
  local srv, port = t.listen({})
  local ok, err = pcall(function()
    local s <close> = net.TCPSocket()
    weak.closing = s
    s:connect("127.0.0.1", port, {})
    error("leave the scope")
  end)
  t.eq(ok, false, "pcall")
  t.has(err, "leave the scope", "error")
  t.eq(tostring(weak.closing), "net.TCPSocket (closed)", "closed by __close on error")
  srv:stop()
  t.settle()
  full_gc()
  t.eq(weak.closing, nil, "a socket closed by __close is collectable")
end

-- 6. Dropping every reference to a connected client after close() from a
-- callback: it is collected; __gc after close() does nothing harmful.
t.run(10000, function(done)
  local srv, port = t.listen({})
  t.closing(srv)
  ;(function()
    local c = net.TCPSocket()
    weak.c6 = c
    c:connect("127.0.0.1", port, {
      connected = function() c:close() end,
      disconnected = function()
        t.after(20, function()
          full_gc()
          t.eq(weak.c6, nil, "closed client collected")
          done()
        end)
      end,
    })
  end)()
end)
