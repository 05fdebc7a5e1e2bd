-- A peer reset mid-stream (a raw socket closed with SO_LINGER {1, 0}, made
-- by flowc in C++) fires disconnected exactly once with a reason; the
-- server keeps serving other clients; its error callback stays silent.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local NAMES = { "connected", "data", "disconnected", "error", "drain" }
local pat = F.pattern(65521, 256 * 1024, 3)

-- 1. Server side: the server streams to a raw client, which reads a little
-- then resets.
do
  local srvlog = t.log("server")
  local srv, port
  local pos = {}
  local function pump(id)
    for _ = 1, 64 do
      local r = srv:send(id, pat:at(pos[id], 64 * 1024))
      if r == nil then return end
      pos[id] = pos[id] + 64 * 1024
      if r == false then return end   -- wait for drain(id)
    end
  end
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) pos[id] = 0 end,
    data = function(id, d)
      if d == "stream" then pump(id) else srv:send(id, "echo:" .. d) end
    end,
    drain = function(id) pump(id) end,
  }))
  local fd = assert(flowc.raw_connect("127.0.0.1", port))
  t.truthy(flowc.raw_connected(fd, 2000), "raw connect")
  t.eq(flowc.raw_send(fd, "stream"), 6, "raw send")
  -- Read at least 256 KiB of the stream (the loop runs meanwhile).
  local got = 0
  F.wait(function()
    local d = flowc.raw_recv(fd, 0)
    if d then got = got + #d end
    return got >= 256 * 1024
  end, 10000, "raw client reads the stream")
  local rid = srvlog:get("connected")[1]
  flowc.raw_rst(fd)
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server sees the reset")
  local ev = srvlog:get("disconnected")
  t.eq(ev[1], rid, "disconnected id")
  t.eq(type(ev[2]), "string", "disconnected reason type")
  t.truthy(#ev[2] > 0 and ev[2] ~= "idle timeout", "reason: " .. t.show(ev[2]))
  t.match(ev[2], "[Rr]eset", "reason names the reset")
  t.eq(select(1, srv:send(rid, "x")), nil, "send to the reset id")
  -- Another client is still served.
  local clog = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:send("ping") end,
  }))
  F.wait(function() return clog:concat("data") == "echo:ping" end, 5000, "other client served")
  t.same(srv:clients(), { rid + 1 }, "clients() after the reset")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 2 end, 5000, "other client ended")
  t.eq(srvlog:get("disconnected", 2)[2], nil, "orderly reason")
  F.sleep(100)
  t.eq(srvlog:count("disconnected"), 2, "disconnected count")
  t.eq(srvlog:count("error"), 0, "server error callback (per-client ends are not server errors)")
  srv:stop()
  F.settle()
end

-- 2. Client side: a raw server accepts, receives, then resets. The client
-- gets error("connection to 127.0.0.1:PORT failed: Connection reset by
-- peer") then disconnected, once each.
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 8)
  local clog = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:send("hi") end,
  }))
  F.wait(function() return clog:count("connected") == 1 end, 5000, "client connected")
  local afd = flowc.raw_accept(lfd, 2000)
  t.truthy(afd, "raw accept")
  local got = ""
  F.wait(function() got = got .. (flowc.raw_recv(afd, 0) or ""); return got == "hi" end, 5000,
         "raw server receives")
  flowc.raw_rst(afd)
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client sees the reset")
  F.sleep(100)
  clog:expect({ "connected", "error", "disconnected" }, nil, "client events")
  t.eq(clog:get("error")[1],
       ("connection to 127.0.0.1:%d failed: Connection reset by peer"):format(port), "client error")
  flowc.raw_close(lfd)
  F.settle()
end
