-- Run in a child whose SIGPIPE is at its default: writing to a peer that
-- has reset must not kill the process. Reading is paused so the write
-- path (write-through, then the queued write) meets the reset first.
-- require "net" leaves SIGPIPE at its default (lnet changes no process-wide
-- signal state): only MSG_NOSIGNAL on every write keeps the process alive.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

t.eq(flowc.sigpipe_disposition(), "default", "SIGPIPE after require 'net'")

local NAMES = { "connected", "data", "disconnected", "error" }
local big = ("z"):rep(1024 * 1024)

-- Server writing to a reset client.
do
  local srvlog = t.log("server")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(id) srv:pause(id) end,
  }))
  local fd = assert(flowc.raw_connect("127.0.0.1", port))
  t.truthy(flowc.raw_connected(fd, 2000), "raw connect")
  flowc.raw_send(fd, "x")
  F.wait(function() return srvlog:count("data") == 1 end, 5000, "server data")
  local id = srvlog:get("data")[1]
  flowc.raw_rst(fd)
  flowc.sleep_ms(50)   -- the reset has arrived; the loop has not seen it
  for i = 1, 3 do
    local r, msg = t.noraise("send " .. i .. " to a reset peer", srv.send, srv, id, big)
    t.truthy(r ~= nil or type(msg) == "string", "send result")
  end
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server sees the end")
  t.eq(type(srvlog:get("disconnected")[2]), "string", "reason after writing to a reset peer")
  srv:stop()
  F.settle()
end

-- Client writing to a reset server.
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 8)
  local clog = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:pause() end,
  }))
  F.wait(function() return clog:count("connected") == 1 end, 5000, "client connected")
  local afd = flowc.raw_accept(lfd, 2000)
  t.truthy(afd, "raw accept")
  flowc.raw_rst(afd)
  flowc.sleep_ms(50)
  for i = 1, 3 do
    local r, msg = t.noraise("client send " .. i .. " to a reset peer", c.send, c, big)
    t.truthy(r ~= nil or type(msg) == "string", "client send result")
  end
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client sees the end")
  clog:expect({ "connected", "error", "disconnected" }, nil, "client events")
  flowc.raw_close(lfd)
  F.settle()
end

t.eq(flowc.sigpipe_disposition(), "default", "SIGPIPE at the end")
