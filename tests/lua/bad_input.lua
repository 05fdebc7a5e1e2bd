-- Wrong arguments raise at the call in the luaL_argerror style; state
-- problems (closed, unknown id) never raise: they return nil, message or
-- do nothing. Every method on fresh, closed and stopped objects.
local net = require "net"
local t = require "testlib"

local ok_cb = {}

-- A state error on self (connect on a connected socket, listen on a
-- listening server) is a programming mistake: it raises "f: ... already ...".
local function self_error(fname, f)
  local err = t.raises({ fname .. ": ", "already" }, f)
  t.truthy(err:find(fname .. ": %a+ is already "), "state error style: " .. err)
end

---------------------------------------------------------------------------
-- connect() arguments
do
  local s = net.TCPSocket()
  t.raises("bad argument #1 to 'connect' (string expected, got table)",
    function() return s:connect({}, 80, ok_cb) end)
  t.raises("bad argument #1 to 'connect' (string expected, got nil)",
    function() return s:connect(nil, 80, ok_cb) end)
  t.raises("bad argument #1 to 'connect' (string expected, got boolean)",
    function() return s:connect(true, 80, ok_cb) end)
  t.raises("bad argument #2 to 'connect' (number expected, got string)",
    function() return s:connect("127.0.0.1", "http", ok_cb) end)
  t.raises("bad argument #2 to 'connect' (number expected, got nil)",
    function() return s:connect("127.0.0.1", nil, ok_cb) end)
  t.raises("bad argument #2 to 'connect'",
    function() return s:connect("127.0.0.1", 1.5, ok_cb) end)
  t.raises("bad argument #2 to 'connect' (port out of range",
    function() return s:connect("127.0.0.1", -1, ok_cb) end)
  t.raises("bad argument #2 to 'connect' (port out of range",
    function() return s:connect("127.0.0.1", 65536, ok_cb) end)
  t.raises("bad argument #2 to 'connect'",
    function() return s:connect("127.0.0.1", math.maxinteger, ok_cb) end)
  t.raises("bad argument #3 to 'connect' (table expected, got no value)",
    function() return s:connect("127.0.0.1", 80) end)
  t.raises("bad argument #3 to 'connect' (table expected, got function)",
    function() return s:connect("127.0.0.1", 80, function() end) end)
  t.raises("bad argument #3 to 'connect' (callback 'data' must be a function",
    function() return s:connect("127.0.0.1", 80, { data = 42 }) end)
  t.raises("bad argument #3 to 'connect' (callback 'connected' must be a function",
    function() return s:connect("127.0.0.1", 80, { connected = "yes" }) end)
  t.raises("bad argument #3 to 'connect' (callback 'error' must be a function",
    function() return s:connect("127.0.0.1", 80, { error = {} }) end)
  t.raises("bad argument #1 to 'connect'",
    function() return s:connect(("a"):rep(10000), 80, ok_cb) end)
  t.raises("bad argument #1 to 'connect'",
    function() return s:connect(("a"):rep(256), 80, ok_cb) end)
  t.raises("bad argument #1 to 'connect'",
    function() return s:connect("127.0.0.1\0evil", 80, ok_cb) end)
  t.raises("bad argument #1 to 'connect'",
    function() return s:connect("\0", 80, ok_cb) end)
  t.raises("bad argument #4 to 'connect'",
    function() return s:connect("127.0.0.1", 80, ok_cb, { bogus_option = 1 }) end)
  t.raises("bad argument #4 to 'connect'",
    function() return s:connect("127.0.0.1", 80, ok_cb, { nodelay = "yes" }) end)
  t.raises("bad argument #4 to 'connect'",
    function() return s:connect("127.0.0.1", 80, ok_cb, 42) end)
  -- Wrong self, called through the method of the other type.
  local srv = net.TCPServer()
  -- (a field call, not a method call: self is argument #1)
  t.raises("bad argument #1 to 'connect' (net.TCPSocket expected, got net.TCPServer)",
    function() return s.connect(srv, "127.0.0.1", 80, ok_cb) end)
  t.raises("bad argument #1 to 'send' (net.TCPSocket expected, got string)",
    function() return s.send("x", "y") end)
  t.raises("bad argument #1 to 'listen' (net.TCPServer expected, got net.TCPSocket)",
    function() return srv.listen(s, "127.0.0.1", 0, ok_cb) end)
  -- None of the rejected calls left the socket connecting.
  t.eq(tostring(s), "net.TCPSocket (closed)", "socket after rejected calls")
  t.eq(net.loop("nowait"), false, "nothing active after rejected calls")
end

-- Constructors
-- (closures, so that the messages name the function as a call from Lua does)
t.raises("bad argument #1 to 'TCPSocket'", function() return net.TCPSocket({ bogus_option = true }) end)
t.raises("bad argument #1 to 'TCPServer'", function() return net.TCPServer({ bogus_option = true }) end)
t.raises("bad argument #1 to 'TCPSocket'", function() return net.TCPSocket(42) end)
t.raises("bad argument #1 to 'TCPSocket'", function() return net.TCPSocket({ timeout = "soon" }) end)
t.raises("bad argument #1 to 'TCPServer'", function() return net.TCPServer({ backlog = {} }) end)
t.noraise("TCPSocket with options", net.TCPSocket, {
  nodelay = true, keepalive = 1000, timeout = 100, idle_timeout = 100,
  max_buffer = 1024 * 1024, high_water = 1024, allow_half_open = false,
})
t.noraise("TCPServer with options", net.TCPServer, {
  backlog = 16, reuseport = true, max_connections = 10, keepalive = true,
})

---------------------------------------------------------------------------
-- listen() arguments
do
  local srv = net.TCPServer()
  t.raises("bad argument #1 to 'listen' (string expected, got table)",
    function() return srv:listen({}, 0, ok_cb) end)
  t.raises("bad argument #2 to 'listen' (number expected, got string)",
    function() return srv:listen("127.0.0.1", "any", ok_cb) end)
  t.raises("bad argument #2 to 'listen' (port out of range",
    function() return srv:listen("127.0.0.1", -1, ok_cb) end)
  t.raises("bad argument #2 to 'listen' (port out of range",
    function() return srv:listen("127.0.0.1", 65536, ok_cb) end)
  t.raises("bad argument #3 to 'listen' (table expected, got no value)",
    function() return srv:listen("127.0.0.1", 0) end)
  t.raises("bad argument #3 to 'listen' (callback 'started' must be a function",
    function() return srv:listen("127.0.0.1", 0, { started = true }) end)
  t.raises("bad argument #3 to 'listen' (callback 'data' must be a function",
    function() return srv:listen("127.0.0.1", 0, { data = 1 }) end)
  t.raises("bad argument #1 to 'listen'",
    function() return srv:listen(("h"):rep(10000), 0, ok_cb) end)
  t.raises("bad argument #1 to 'listen'",
    function() return srv:listen("127.0.0.1\0", 0, ok_cb) end)
  t.raises("bad argument #4 to 'listen'",
    function() return srv:listen("127.0.0.1", 0, ok_cb, { bogus_option = 1 }) end)
  t.fails("address() of a never-listening server", srv.address, srv)
  t.eq(net.loop("nowait"), false, "nothing active after rejected listen() calls")
end

---------------------------------------------------------------------------
-- Methods on a never-connected socket, then the same after close().
local function check_idle_socket(s, when)
  t.fails("send on a " .. when .. " socket", s.send, s, "x")
  t.raises("bad argument #1 to 'send' (string expected, got table)",
    function() return s:send({}) end)
  t.raises("bad argument #1 to 'send'", function() return s:send() end)
  t.noraise("disconnect on a " .. when .. " socket", s.disconnect, s)
  t.noraise("close on a " .. when .. " socket", s.close, s)
  t.noraise("close twice on a " .. when .. " socket", s.close, s)
  t.noraise("pause on a " .. when .. " socket", s.pause, s)
  t.noraise("resume on a " .. when .. " socket", s.resume, s)
  t.fails("peer on a " .. when .. " socket", s.peer, s)
  t.fails("sockname on a " .. when .. " socket", s.sockname, s)
  local st = t.noraise("stats on a " .. when .. " socket", s.stats, s)
  t.eq(type(st), "table", "stats() type")
  t.eq(st.queued, 0, "stats().queued on a " .. when .. " socket")
  t.eq(math.type(st.bytes_in), "integer", "stats().bytes_in")
  t.eq(math.type(st.bytes_out), "integer", "stats().bytes_out")
  t.eq(tostring(s), "net.TCPSocket (closed)", "tostring of a " .. when .. " socket")
end

do
  local s = net.TCPSocket()
  for _, m in ipairs { "connect", "send", "disconnect", "close", "pause", "resume",
                       "peer", "sockname", "stats" } do
    t.eq(type(s[m]), "function", "TCPSocket method " .. m)
  end
  check_idle_socket(s, "never-connected")
  t.eq(net.loop("nowait"), false, "nothing active")
end

-- Server methods on a never-listening server.
local function check_idle_server(srv, when)
  t.fails("address on a " .. when .. " server", srv.address, srv)
  t.same(t.noraise("clients", srv.clients, srv), {}, "clients() on a " .. when .. " server")
  t.noraise("stop on a " .. when .. " server", srv.stop, srv)
  t.noraise("stop twice on a " .. when .. " server", srv.stop, srv)
  for _, m in ipairs { "disconnect", "close", "peer", "sockname" } do
    t.fails(m .. "(1) on a " .. when .. " server", srv[m], srv, 1)
  end
  t.fails("send(1, data) on a " .. when .. " server", srv.send, srv, 1, "x")
  for _, m in ipairs { "pause", "resume" } do
    local r = table.pack(t.noraise(m .. "(1) on a " .. when .. " server", srv[m], srv, 1))
    t.truthy(r[1] == nil or r[1] == true, m .. "(1) result " .. t.show(r))
  end
  t.noraise("stats() on a " .. when .. " server", srv.stats, srv)
  t.fails("stats(1) on a " .. when .. " server", srv.stats, srv, 1)
  t.match(tostring(srv), "^net%.TCPServer", "tostring of a server")
end

do
  local srv = net.TCPServer()
  for _, m in ipairs { "listen", "send", "disconnect", "close", "stop", "address", "clients",
                       "peer", "sockname", "pause", "resume", "stats" } do
    t.eq(type(srv[m]), "function", "TCPServer method " .. m)
  end
  check_idle_server(srv, "never-listening")
end

-- Client ids that are not integers raise; unknown ids return nil, message.
local function check_ids(srv)
  t.raises("bad argument #1 to 'send'", function() return srv:send("x", "y") end)
  t.raises("bad argument #1 to 'send'", function() return srv:send(1.5, "y") end)
  t.raises("bad argument #1 to 'send'", function() return srv:send(nil, "y") end)
  t.raises("bad argument #2 to 'send'", function() return srv:send(1, {}) end)
  t.raises("bad argument #1 to 'disconnect'", function() return srv:disconnect("1x") end)
  t.raises("bad argument #1 to 'close'", function() return srv:close({}) end)
  t.raises("bad argument #1 to 'peer'", function() return srv:peer("a") end)
  t.raises("bad argument #1 to 'pause'", function() return srv:pause("a") end)
  local msg = t.fails("send to an unknown id", srv.send, srv, 999, "x")
  t.has(msg, "999", "the message names the id")
  t.fails("disconnect an unknown id", srv.disconnect, srv, 999)
  t.fails("close an unknown id", srv.close, srv, 999)
  t.fails("peer of an unknown id", srv.peer, srv, 999)
  t.fails("sockname of an unknown id", srv.sockname, srv, 999)
  t.fails("send to id 0", srv.send, srv, 0, "x")
  t.fails("send to id -1", srv.send, srv, -1, "x")
end

---------------------------------------------------------------------------
-- The same on live, closed and stopped objects.
t.run(5000, function(done)
  local srv, port
  local client = net.TCPSocket()
  srv, port = t.listen({
    started = function()
      self_error("listen", function() return srv:listen("127.0.0.1", 0, ok_cb) end)
      check_ids(srv)
      client:connect("127.0.0.1", port, {
        connected = function()
          self_error("connect", function() return client:connect("127.0.0.1", port, ok_cb) end)
          t.raises("bad argument #1 to 'send' (string expected, got table)",
            function() return client:send({}) end)
          t.raises("bad argument #1 to 'send' (string expected, got nil)",
            function() return client:send(nil) end)
          t.call(client, "close")
          check_idle_socket(client, "closed")
        end,
        disconnected = function()
          check_idle_socket(client, "disconnected")
          t.call(srv, "stop")
          check_ids(srv)
          check_idle_server(srv, "stopped")
          done()
        end,
        error = function(m) error("client error: " .. m) end,
      })
      -- While connecting: already connecting raises too.
      self_error("connect", function() return client:connect("127.0.0.1", port, ok_cb) end)
    end,
    error = function(m) error("server error: " .. m) end,
  })
  -- listen() on a server that is already listening raises.
  self_error("listen", function() return srv:listen("127.0.0.1", 0, ok_cb) end)
end)

---------------------------------------------------------------------------
-- net functions
t.noraise("clearTimeout(nil)", net.clearTimeout, nil)
t.noraise("clearInterval(nil)", net.clearInterval, nil)
t.raises("bad argument #1 to 'clearTimeout'", function() return net.clearTimeout(42) end)
t.raises("bad argument #1 to 'clearTimeout'", function() return net.clearTimeout(net.TCPSocket()) end)
t.raises("bad argument #1 to 'clearInterval'", function() return net.clearInterval("x") end)
t.raises("bad argument #1 to 'setTimeout'", function() return net.setTimeout("not a function", 10) end)
t.raises("bad argument #1 to 'setTimeout'", function() return net.setTimeout(nil, 10) end)
t.raises("bad argument #2 to 'setTimeout'", function() return net.setTimeout(function() end, "soon") end)
t.raises("bad argument #1 to 'setInterval'", function() return net.setInterval(42, 10) end)
t.raises("bad argument #2 to 'setInterval'", function() return net.setInterval(function() end, {}) end)
t.raises("bad argument #1 to 'loop'", function() return net.loop("bogus") end)
t.raises("bad argument #1 to 'loop'", function() return net.loop({}) end)
t.eq(net.loop("nowait"), false, "nothing active")

-- net.stop() outside a loop does nothing: the next loop still runs timers.
t.noraise("net.stop() outside a loop", net.stop)
t.noraise("net.stop() twice", net.stop)
local fired = false
net.setTimeout(function() fired = true end, 10)
local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
net.setTimeout(function() net.clearTimeout(guard) end, 30)
t.eq(net.loop(), false, "loop after stop() outside a loop")
t.truthy(fired, "the timer fired: stop() outside a loop must not stop the next loop")

-- A negative delay is treated as 0.
local neg = false
net.setTimeout(function() neg = true end, -100)
t.eq(net.loop(), false, "loop with a negative delay")
t.truthy(neg, "negative delay fired")
