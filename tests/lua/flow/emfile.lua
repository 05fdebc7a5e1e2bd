-- Run in a child by tests/flow.cc (case emfile). The server accepts until
-- the process is out of descriptors: its error fires once ("accept on
-- 127.0.0.1:PORT failed: Too many open files"), the process does not spin,
-- and once the parent's clients have closed, a new client is accepted.
-- Reports on the pipe FLOW_ARGS.out: "PORT n", "EMFILE cpu_ms message",
-- "OK details" (lines).
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local out = F.args.out
local function report(line) assert(flowc.write_fd(out, line .. "\n"), "write to the parent") end

local hello = nil
local srvlog = t.log("server")
local srv, port
srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error" }, {
  data = function(id, d) if d == "hello" then hello = id end end,
}))

-- From here on, only F.args.spare more descriptors can be opened.
local low = flowc.lowest_free_fd()
t.truthy(flowc.set_nofile(low + F.args.spare), "setrlimit(RLIMIT_NOFILE)")
report("PORT " .. port)

F.wait(function() return srvlog:count("error") >= 1 end, 20000, "accept error")
local accepted = srvlog:count("connected")
t.truthy(accepted >= 1 and accepted <= F.args.spare, "accepted before EMFILE: " .. accepted)
local msg = srvlog:get("error")[1]
t.match(msg, "^accept on 127%.0%.0%.1:%d+.*: Too many open files$", "accept error message")

-- The parent's other clients wait in the kernel queue: ~1 s of loop time
-- must cost little CPU (no busy accept loop), and not report again.
local cpu0, t0 = flowc.cpu_ms(), net.now()
F.sleep(1000)
local cpu = flowc.cpu_ms() - cpu0
local wall = net.now() - t0
t.eq(srvlog:count("error"), 1, "server error count while out of descriptors")
t.eq(srvlog:count("connected"), accepted, "no accept while out of descriptors")
t.truthy(cpu < 300, ("CPU time over %d ms out of descriptors: %d ms"):format(wall, cpu))
report(("EMFILE %d %s"):format(cpu, msg))

-- The parent closes its clients, then connects one that says hello.
F.wait(function() return hello ~= nil end, 20000, "new client accepted after descriptors were freed")
t.eq(srvlog:count("error"), 1, "server error count at the end")
t.truthy(srvlog:count("disconnected") >= accepted, "the closed clients ended")
-- The message names the listener's real port (checked last, so the rest
-- of the case runs either way).
t.startswith(msg, ("accept on 127.0.0.1:%d "):format(port), "accept error message names the real port")
report(("OK accepted_before=%d accepted_total=%d cpu_ms=%d errors=%d"):format(
  accepted, srv:stats().accepted, cpu, srvlog:count("error")))
