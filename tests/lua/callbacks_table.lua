-- The callbacks table of listen() and connect(): read with raw access, so no
-- Lua code (an __index or __pairs metamethod) runs half way through the
-- call; an unknown key raises bad argument naming it, as an unknown option
-- does (a misspelt callback would otherwise never fire, silently).
local net = require "net"
local t = require "testlib"

local function nop() end

---------------------------------------------------------------------------
-- Unknown keys
do
  local s = net.TCPSocket()
  for _, key in ipairs { "onData", "connect", "disconnect", "started", "Data", "close" } do
    t.raises("bad argument #3 to 'connect' (unknown callback '" .. key .. "')",
      function() return s:connect("127.0.0.1", 9, { data = nop, [key] = nop }) end)
  end
  t.raises("bad argument #3 to 'connect' (callback names must be strings",
    function() return s:connect("127.0.0.1", 9, { nop }) end)
  t.raises("bad argument #3 to 'connect' (callback names must be strings",
    function() return s:connect("127.0.0.1", 9, { [true] = nop }) end)
  -- An unknown key raises even when its value is not a function.
  t.raises("bad argument #3 to 'connect' (unknown callback 'onData')",
    function() return s:connect("127.0.0.1", 9, { onData = 42 }) end)
  t.eq(tostring(s), "net.TCPSocket (closed)", "rejected connect() left the socket closed")

  local srv = net.TCPServer()
  for _, key in ipairs { "onData", "connect", "disconnect", "listening", "stopped" } do
    t.raises("bad argument #3 to 'listen' (unknown callback '" .. key .. "')",
      function() return srv:listen("127.0.0.1", 0, { [key] = nop }) end)
  end
  t.raises("bad argument #3 to 'listen' (callback names must be strings",
    function() return srv:listen("127.0.0.1", 0, { [1] = nop }) end)
  t.fails("rejected listen() left the server stopped", srv.address, srv)
  t.eq(net.loop("nowait"), false, "nothing active after the rejected calls")

  -- Every documented name is accepted.
  local all = { connected = nop, data = nop, disconnected = nop, error = nop, drain = nop,
                ["end"] = nop }
  t.noraise("connect with every socket callback", s.connect, s, "127.0.0.1", 9, all)
  s:close()
  all.started = nop
  t.eq(t.noraise("listen with every server callback", srv.listen, srv, "127.0.0.1", 0, all), true)
  srv:stop()
  t.settle()
end

---------------------------------------------------------------------------
-- Metamethods of the callbacks table never run: an __index that re-enters
-- the same object (listen again, stop, close) used to leak a listener and
-- later free the server under the accept path.
local consulted = 0
local function reentering(obj, again)
  return setmetatable({}, {
    __index = function()
      consulted = consulted + 1
      pcall(again)
      pcall(obj.close, obj, 1)
      if obj.stop then pcall(obj.stop, obj) end
    end,
    __pairs = function() consulted = consulted + 1; return next, {}, nil end,
  })
end

local got = {}
t.run(10000, function(done)
  local srv = net.TCPServer()
  local inner = 0
  local cbs = reentering(srv, function()
    inner = inner + 1
    srv:listen("127.0.0.1", 0, {})
  end)
  t.eq(srv:listen("127.0.0.1", 0, cbs), true, "listen() with a re-entering table")
  t.eq(consulted, 0, "the callbacks table's metamethods ran")
  t.eq(inner, 0, "listen() re-entered")
  local _, port = srv:address()

  -- Inherited callbacks are not read either: this server has none.
  local c = net.TCPSocket()
  local ccbs = reentering(c, function() c:connect("127.0.0.1", port, {}) end)
  rawset(ccbs, "connected", function()
    got[#got + 1] = "connected"
    t.eq(#srv:clients(), 1, "the server accepted")
    c:disconnect()
  end)
  rawset(ccbs, "disconnected", function()
    got[#got + 1] = "disconnected"
    srv:stop()
    done()
  end)
  rawset(ccbs, "error", function(m) error("client error: " .. m) end)
  t.eq(c:connect("127.0.0.1", port, ccbs), true, "connect() with a re-entering table")
  t.eq(consulted, 0, "the callbacks table's metamethods ran (connect)")
  t.closing(srv)
end)
t.same(got, { "connected", "disconnected" }, "client events")
t.eq(consulted, 0, "metamethods ran later")

-- The server (and any listener it might have leaked) is gone once stopped
-- and collected; the loop has nothing left.
collectgarbage()
collectgarbage()
t.eq(net.loop("nowait"), false, "nothing active at the end")

---------------------------------------------------------------------------
-- The options table is read raw as well: a metatable is not consulted.
do
  local opts = setmetatable({}, { __index = function() error("options __index ran") end,
                                  __pairs = function() error("options __pairs ran") end })
  local srv = net.TCPServer(opts)
  t.eq(srv:listen("127.0.0.1", 0, {}, opts), true, "listen with a metatable on options")
  srv:stop()
  local c = net.TCPSocket(opts)
  t.eq(c:connect("127.0.0.1", 9, {}, opts), true, "connect with a metatable on options")
  c:close()
  t.settle()
end
