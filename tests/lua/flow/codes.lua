-- Issue 8 item 13: every network error carries a stable code beside its
-- unchanged message: error(message, code), disconnected(id, reason, code),
-- send -> nil, message, code. (MAX_BUFFER, LINGER_TIMEOUT, IDLE_TIMEOUT and
-- ECONNREFUSED have their cases in no_truncation, graceful_close and
-- figures.)
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local NAMES = { "connected", "data", "disconnected", "error", "started" }
local SOCKET_NAMES = { "connected", "data", "disconnected", "error" }  -- no "started" on a socket

-- 1. Connect timeout: "timed out", "ETIMEDOUT".
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 1)
  local fillers = {}
  for i = 1, 6 do fillers[i] = assert(flowc.raw_connect("127.0.0.1", port)) end
  F.sleep(200)
  local lg = t.log("timeout")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(lg, SOCKET_NAMES), { timeout = 100 })
  F.wait(function() return lg:count("error") == 1 end, 5000, "timeout")
  local ev = lg:get("error")
  t.eq(ev[1], ("connect to 127.0.0.1:%d failed: timed out"):format(port), "message")
  t.eq(ev[2], "ETIMEDOUT", "code")
  for _, fd in ipairs(fillers) do flowc.raw_close(fd) end
  flowc.raw_close(lfd)
  F.settle()
end

-- 2. Listen on a port in use: "EADDRINUSE".
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 4)
  local lg = t.log("listen")
  local srv = net.TCPServer()
  srv:listen("127.0.0.1", port, F.callbacks(lg, NAMES))
  F.wait(function() return lg:count("error") == 1 end, 5000, "listen error")
  local ev = lg:get("error")
  t.eq(ev[1], ("listen on 127.0.0.1:%d failed: Address already in use"):format(port), "message")
  t.eq(ev[2], "EADDRINUSE", "code")
  flowc.raw_close(lfd)
  F.settle()
end

-- 3. A peer's reset: the client's error(message, "ECONNRESET"), the server
-- connection's disconnected(id, reason, "ECONNRESET").
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 4)
  local lg = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(lg, SOCKET_NAMES))
  F.wait(function() return lg:count("connected") == 1 end, 5000, "connected")
  local afd = flowc.raw_accept(lfd, 2000)
  t.truthy(afd, "raw accept")
  flowc.raw_rst(afd)
  F.wait(function() return lg:count("disconnected") == 1 end, 5000, "client end")
  lg:expect({ "connected", "error", "disconnected" }, nil, "client events")
  local ev = lg:get("error")
  t.eq(ev[1], ("connection to 127.0.0.1:%d failed: Connection reset by peer"):format(port),
       "client message")
  t.eq(ev[2], "ECONNRESET", "client code")
  flowc.raw_close(lfd)

  local slog = t.log("server")
  local srv, sport = t.listen(F.callbacks(slog, NAMES))
  local fd = assert(flowc.raw_connect("127.0.0.1", sport))
  t.truthy(flowc.raw_connected(fd, 2000), "raw connect")
  F.wait(function() return slog:count("connected") == 1 end, 5000, "accepted")
  flowc.raw_rst(fd)
  F.wait(function() return slog:count("disconnected") == 1 end, 5000, "server end")
  local sev = slog:get("disconnected")
  t.eq(sev[2], "Connection reset by peer", "server reason")
  t.eq(sev[3], "ECONNRESET", "server code")
  -- An orderly end passes neither reason nor code.
  local fd2 = assert(flowc.raw_connect("127.0.0.1", sport))
  t.truthy(flowc.raw_connected(fd2, 2000), "raw connect 2")
  F.wait(function() return slog:count("connected") == 2 end, 5000, "accepted 2")
  flowc.raw_close(fd2)
  F.wait(function() return slog:count("disconnected") == 2 end, 5000, "server end 2")
  t.eq(slog:get("disconnected", 2).n, 1, "orderly: disconnected(id) only")
  srv:stop()
  F.settle()
end

-- 4. A name that does not resolve: an EAI_* code (which one depends on the
-- resolver and the machine: EAI_NONAME, EAI_FAIL, EAI_AGAIN).
do
  local lg = t.log("resolve")
  local c = net.TCPSocket()
  c:connect("no-such-host.invalid", 80, F.callbacks(lg, SOCKET_NAMES))
  F.wait(function() return lg:count("error") == 1 end, 30000, "resolution failure")
  local ev = lg:get("error")
  t.match(ev[1], "^connect to no%-such%-host%.invalid:80 failed: ", "message")
  t.match(ev[2], "^EAI_[A-Z]+$", "code")
  F.settle()
end

-- 5. send on an unknown id, or a closed socket: nil, message, "ENOTCONN".
do
  local srv = net.TCPServer()
  local r = table.pack(srv:send(7, "x"))
  t.same(r, table.pack(nil, "unknown client id 7", "ENOTCONN"), "server send to an unknown id")
  r = table.pack(srv:peer(7))
  t.eq(r[3], "ENOTCONN", "peer of an unknown id: code")
end
