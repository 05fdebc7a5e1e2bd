-- Issue 8 item 12 (run in a child by tests/flow.cc): out of memory is
-- reported as out of memory ("ENOMEM"), never as a full buffer, and a
-- timer event that cannot be made raises at the call instead of silently
-- turning a connect timeout or the accept back-off off.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local MB = 1024 * 1024
local NAMES = { "connected", "data", "disconnected", "error", "drain" }

-- 1. send() whose bytes must be queued while libevent cannot allocate:
-- nil, "out of memory", "ENOMEM"; the connection ends visibly (error with
-- the same code, then disconnected).
do
  local srvlog = t.log("server")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) srv:pause(id) end,
  }))
  local lg = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(lg, NAMES))
  F.wait(function() return lg:count("connected") == 1 end, 5000, "connected")
  -- The queue does not exist yet: the first send the kernel cannot take
  -- whole needs memory.
  local big = ("m"):rep(MB)
  local guard = 0
  local r, msg, code
  assert(flowc.fail_alloc(true))
  while true do
    guard = guard + 1
    if guard > 256 then break end
    r, msg, code = c:send(big)
    if r == nil then break end
  end
  flowc.fail_alloc(false)
  t.eq(r, nil, "send that needed memory")
  t.eq(msg, "out of memory", "message")
  t.eq(code, "ENOMEM", "code")
  F.wait(function() return lg:count("disconnected") == 1 end, 5000, "ended")
  lg:expect({ "connected", "error", "disconnected" }, nil, "events")
  t.eq(lg:get("error")[2], "ENOMEM", "error code")
  srv:stop()
  F.settle()
end

-- 2. connect() with a timeout and listen() (the accept back-off timer)
-- raise when their timer cannot be made; nothing is left half started.
do
  local c = net.TCPSocket()
  local srv = net.TCPServer()
  assert(flowc.fail_alloc(true))
  local ok1, err1 = pcall(c.connect, c, "127.0.0.1", 9, {}, { timeout = 100 })
  local ok2, err2 = pcall(srv.listen, srv, "127.0.0.1", 0, {})
  flowc.fail_alloc(false)
  t.eq(ok1, false, "connect with a timeout raised")
  t.has(tostring(err1), "out of memory", "connect error")
  t.eq(ok2, false, "listen raised")
  t.has(tostring(err2), "out of memory", "listen error")
  t.eq(tostring(c), "net.TCPSocket (closed)", "the socket is untouched")
  t.eq(net.loop("nowait"), false, "nothing is active")
end
