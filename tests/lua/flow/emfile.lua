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

local errors, hello = {}, nil
local srvlog = t.log("server")
local srv, port
srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected" }, {
  data = function(id, d) if d == "hello" then hello = id end end,
}))
srv:listen("127.0.0.1", 0, {}) -- placeholder, replaced below
