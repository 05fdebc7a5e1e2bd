-- A numeric string is not a number: as a port, a client id, an integer
-- option or a timer delay it raises like any other wrong type (Lua's own
-- luaL_checkinteger would convert "80"). Integral floats are numbers.
local net = require "net"
local t = require "testlib"

local function nop() end

do
  local s = net.TCPSocket()
  t.raises("bad argument #2 to 'connect' (number expected, got string)",
    function() return s:connect("127.0.0.1", "80", {}) end)
  t.raises("bad argument #2 to 'connect' (number expected, got string)",
    function() return s:connect("127.0.0.1", "0x50", {}) end)
  t.raises("bad argument #2 to 'connect' (number has no integer representation)",
    function() return s:connect("127.0.0.1", 80.5, {}) end)
  t.eq(tostring(s), "net.TCPSocket (closed)", "socket after rejected calls")

  local srv = net.TCPServer()
  t.raises("bad argument #2 to 'listen' (number expected, got string)",
    function() return srv:listen("127.0.0.1", "0", {}) end)
  t.raises("bad argument #2 to 'listen' (number expected, got string)",
    function() return srv:listen("127.0.0.1", " 0 ", {}) end)
  t.fails("listen() did not happen", srv.address, srv)
  t.eq(net.loop("nowait"), false, "nothing active after rejected calls")
end

-- Integer options
for _, key in ipairs { "timeout", "idle_timeout", "backlog", "max_connections", "max_buffer",
                       "high_water", "keepalive" } do
  local bad = { [key] = "1000" }
  local msg = "option '" .. key .. "' must be a number, got string"
  t.raises({ "bad argument #1 to 'TCPSocket'", msg }, function() return net.TCPSocket(bad) end)
  t.raises({ "bad argument #1 to 'TCPServer'", msg }, function() return net.TCPServer(bad) end)
  t.raises({ "bad argument #4 to 'connect'", msg },
    function() return net.TCPSocket():connect("127.0.0.1", 9, {}, bad) end)
  t.raises({ "bad argument #4 to 'listen'", msg },
    function() return net.TCPServer():listen("127.0.0.1", 0, {}, bad) end)
end
t.noraise("integral floats as options", net.TCPSocket, { timeout = 1000.0, keepalive = 2000.0 })

-- Timer delays
t.raises("bad argument #2 to 'setTimeout' (number expected, got string)",
  function() return net.setTimeout(nop, "10") end)
t.raises("bad argument #2 to 'setInterval' (number expected, got string)",
  function() return net.setInterval(nop, "10") end)
t.eq(net.loop("nowait"), false, "no timer was made")

-- Client ids, on a live server with a live client 1.
t.run(10000, function(done)
  local srv, port
  srv, port = t.listen({
    connected = function(id)
      t.eq(id, 1, "first id")
      local calls = {
        disconnect = function() return srv:disconnect("1") end,
        close = function() return srv:close("1") end,
        shutdown = function() return srv:shutdown("1") end,
        pause = function() return srv:pause("1") end,
        resume = function() return srv:resume("1") end,
        peer = function() return srv:peer("1") end,
        sockname = function() return srv:sockname("1") end,
        stats = function() return srv:stats("1") end,
      }
      for m, f in pairs(calls) do
        t.raises("bad argument #1 to '" .. m .. "' (number expected, got string)", f)
      end
      t.raises("bad argument #1 to 'send' (number expected, got string)",
        function() return srv:send("1", "x") end)
      t.raises("bad argument #1 to 'send' (number has no integer representation)",
        function() return srv:send(1.5, "x") end)
      t.eq(srv:send(1.0, "ok"), true, "an integral float id is the id")
    end,
  })
  t.closing(srv)
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    data = function(d)
      t.eq(d, "ok", "what the server sent")
      c:close()
      done()
    end,
    error = function(m) error("client error: " .. m) end,
  })
end)
