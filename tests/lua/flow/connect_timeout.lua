-- Connect timeout: a listener with backlog 1 that never accepts, its queue
-- filled by raw connects, so further SYNs are dropped. connect with
-- {timeout = 300} fails with error("connect to 127.0.0.1:PORT failed:
-- timed out") after about 300 ms; connected and disconnected never fire.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local lfd, port = flowc.raw_listen("127.0.0.1", 1)
local fillers = {}
for i = 1, 6 do fillers[i] = assert(flowc.raw_connect("127.0.0.1", port)) end
F.sleep(200)   -- the first fillers are queued, the others' SYNs dropped

local function attempt(what, ctor_opts, connect_opts)
  local lg = t.log(what)
  local c = net.TCPSocket(ctor_opts)
  local t0 = net.now()
  local at
  t.eq(t.call(c, "connect", "127.0.0.1", port, F.callbacks(lg, { "connected", "data", "disconnected", "error" }, {
    error = function() at = net.now() end,
  }), connect_opts), true, what .. ": connect() result")
  F.wait(function() return at ~= nil end, 10000, what .. ": error")
  local elapsed = at - t0
  t.between(elapsed, 290, 5000, what .. ": ms until the timeout")
  t.eq(lg:get("error")[1], ("connect to 127.0.0.1:%d failed: timed out"):format(port),
       what .. ": message")
  F.sleep(300)
  lg:expect({ "error" }, nil, what .. ": events")
  -- Back to "closed" (a socket whose connect failed may connect again).
  t.eq(tostring(c), "net.TCPSocket (closed)", what .. ": tostring after the timeout")
  return elapsed
end

attempt("connect option", nil, { timeout = 300 })
attempt("constructor option", { timeout = 300 }, nil)

-- Without a timeout the attempt is still pending after 600 ms (so the
-- timeout above is what ended it); close() cancels it silently.
do
  local lg = t.log("no timeout")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(lg, { "connected", "disconnected", "error" }))
  F.sleep(600)
  t.eq(#lg.events, 0, "events of a pending connect without timeout")
  t.match(tostring(c), "connecting", "tostring while connecting")
  c:close()
  F.sleep(100)
  t.eq(#lg.events, 0, "events after close() of a pending connect")
end

for _, fd in ipairs(fillers) do flowc.raw_close(fd) end
flowc.raw_close(lfd)
F.settle()
