-- Objects closed, stopped, collected or reused from inside their own
-- callbacks: nothing more fires for an ended connection, and nothing
-- crashes (run it under the sanitizers too).
local net = require "net"
local t = require "testlib"

local chunk = ("z"):rep(64 * 1024)

-- A server that floods each client with data until told to stop.
local function flood_server(extra)
  local srv, port
  local streams = {}
  srv, port = t.listen({
    connected = function(id)
      streams[id] = net.setInterval(function()
        if srv:send(id, chunk) == nil then net.clearInterval(streams[id]) end
      end, 2)
    end,
    data = extra and extra.data,
    disconnected = function(id)
      net.clearInterval(streams[id])
      if extra and extra.disconnected then extra.disconnected(id) end
    end,
  })
  t.closing(srv)
  t.cleanup(function() for _, iv in pairs(streams) do net.clearInterval(iv) end end)
  return srv, port
end

-- 1. client:close() inside its data callback while more data is arriving:
-- no data after close(); disconnected once, from the loop.
t.run(10000, function(done)
  local _, port = flood_server()
  local log = t.log("client")
  local c = net.TCPSocket()
  local closed = false
  c:connect("127.0.0.1", port, {
    connected = log:fn("connected"),
    data = log:fn("data", function()
      t.eq(closed, false, "data after close()")
      if log:count("data") == 3 then
        t.call(c, "close")
        closed = true
        t.fails("send after close()", c.send, c, "x")
        collectgarbage("collect")
      end
    end),
    error = log:fn("error"),
    disconnected = log:fn("disconnected", function()
      t.after(100, function()
        t.same(log:names("data"), { "connected", "data", "disconnected" }, "events")
        t.eq(log:count("data"), 3, "data events")
        done()
      end)
    end),
  })
end)

-- 2. client:disconnect() inside data: no more data either.
t.run(10000, function(done)
  local _, port = flood_server()
  local log = t.log("client")
  local c = net.TCPSocket()
  local disconnected_called = false
  c:connect("127.0.0.1", port, {
    connected = log:fn("connected"),
    data = log:fn("data", function()
      t.eq(disconnected_called, false, "data after disconnect()")
      if log:count("data") == 2 then
        t.call(c, "disconnect")
        disconnected_called = true
      end
    end),
    error = log:fn("error"),
    disconnected = log:fn("disconnected", function()
      t.after(100, function()
        t.eq(log:count("data"), 2, "data events")
        t.eq(log:count("disconnected"), 1, "disconnected once")
        done()
      end)
    end),
  })
end)

-- 3. server:close(id) and server:stop() inside data(id) while the client
-- keeps sending; a third client is closed from its own connected callback.
t.run(10000, function(done)
  local srvlog = t.log("server")
  local srv, port
  local ended = {}
  local counted = 0
  srv, port = t.listen({
    connected = srvlog:fn("connected"),
    data = srvlog:fn("data", function(id)
      t.eq(ended[id], nil, "data after close(id)/stop()")
      if srvlog:count("connected") < 2 then return end
      counted = counted + 1
      local n = counted
      if n == 3 then
        t.call(srv, "close", id)
        ended[id] = true
      elseif n >= 4 and #srv:clients() > 0 and not ended.stop then
        t.call(srv, "stop")
        ended.stop = true
        for _, cid in ipairs(srv:clients()) do ended[cid] = true end
        ended[id] = true
      end
    end),
    disconnected = srvlog:fn("disconnected", function(id)
      t.truthy(ended[id], "disconnected(id) before close/stop")
      if srvlog:count("disconnected") == 2 then
        t.after(100, function()
          t.eq(srvlog:count("connected"), 2, "connected")
          t.eq(srvlog:count("disconnected"), 2, "disconnected")
          done()
        end)
      end
    end),
  })
  t.closing(srv)
  local socks = {}
  for i = 1, 2 do
    local c = net.TCPSocket()
    socks[i] = c
    local iv
    c:connect("127.0.0.1", port, {
      connected = function()
        iv = net.setInterval(function()
          if c:send(chunk) == nil then net.clearInterval(iv) end
        end, 5)
      end,
      disconnected = function() net.clearInterval(iv) end,
    })
    t.cleanup(function() net.clearInterval(iv); c:close() end)
  end
end)

-- 4. A client closed and dropped inside connected, then collected inside
-- the next callback; a server stopped and dropped inside started.
t.run(10000, function(done)
  local weak = setmetatable({}, { __mode = "v" })
  local _, port = flood_server()
  ;(function()
    local c = net.TCPSocket()
    weak.c = c
    c:connect("127.0.0.1", port, {
      connected = function() c:close() end,
      data = function() error("data after close() in connected") end,
      disconnected = function()
        t.after(10, function()
          collectgarbage("collect")
          collectgarbage("collect")
          t.eq(weak.c, nil, "closed client collected")
          -- A server stopped from its own started callback.
          ;(function()
            local s = net.TCPServer()
            weak.s = s
            s:listen("127.0.0.1", 0, {
              started = function()
                s:stop()
                t.fails("address() after stop() in started", s.address, s)
                t.after(10, function()
                  collectgarbage("collect")
                  collectgarbage("collect")
                  t.eq(weak.s, nil, "stopped server collected")
                  done()
                end)
              end,
              connected = function() error("connected after stop()") end,
            })
          end)()
        end)
      end,
    })
  end)()
end)

-- 5. Timers: one due in the same round as another clears it; an interval
-- clears itself and starts a new one.
do
  local fired = {}
  local b
  net.setTimeout(function() fired[#fired + 1] = "a"; net.clearTimeout(b) end, 20)
  b = net.setTimeout(function() fired[#fired + 1] = "b" end, 20)
  local n = 0
  local iv
  iv = net.setInterval(function()
    n = n + 1
    net.clearInterval(iv)
    if n < 3 then
      iv = net.setInterval(function() fired[#fired + 1] = "never" end, 1)
      net.clearInterval(iv)
      iv = net.setInterval(debug.getinfo(1, "f").func, 5)
    end
  end, 5)
  local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  net.setTimeout(function() net.clearTimeout(guard) end, 100)
  t.eq(net.loop(), false, "loop")
  t.same(fired, { "a" }, "a timer cleared by another due in the same round")
  t.eq(n, 3, "self-replacing interval")
end
