-- Issue 8 item 2: a graceful close never deadlocks. After disconnect() a
-- connection keeps reading and discards what arrives (no 'data' fires), so
-- its peer can drain; linger_timeout resets a connection whose queue
-- still cannot drain ("LINGER_TIMEOUT"); server:stop() the same.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local MB = 1024 * 1024
local NAMES = { "connected", "data", "disconnected", "error", "drain" }
local BIG = 16 * MB
local blob = ("b"):rep(MB)

local function queue_big(send)
  for _ = 1, BIG // MB do
    local r = send(blob)
    t.truthy(r ~= nil, "send while queueing")
  end
end

-- 1. Two lnet peers, both paused, both queue 16 MB (more than the kernel
-- buffers hold), both disconnect(): each keeps reading and discarding, so
-- both queues drain and both ends are orderly.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port, sid
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) sid = id; srv:pause(id) end,
  }))
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:pause() end,
  }))
  F.wait(function() return sid ~= nil and clog:count("connected") == 1 end, 5000, "connected")
  queue_big(function(d) return srv:send(sid, d) end)
  queue_big(function(d) return c:send(d) end)
  F.sleep(100)
  t.truthy(srv:stats(sid).queued > 0 and c:stats().queued > 0, "both queues hold bytes")
  local data_before = srvlog:count("data") + clog:count("data")
  srv:disconnect(sid)
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 and clog:count("disconnected") == 1 end,
         20000, "both ends done (no deadlock)")
  t.eq(srvlog:count("data") + clog:count("data"), data_before, "no data after disconnect()")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  t.eq(clog:count("error"), 0, "client errors")
  t.eq(c:stats().bytes_out, BIG, "client bytes_out: all of it left")
  srv:stop()
  F.settle()
end

-- 2. A peer that never reads: disconnect() with bytes queued and
-- linger_timeout = 300 ms resets the connection after about 300 ms
-- without progress; disconnected(id, "linger timeout", "LINGER_TIMEOUT").
do
  local srvlog = t.log("server")
  local srv, port, sid
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) sid = id end,
  }), "127.0.0.1", { linger_timeout = 300 })
  local fd = assert(flowc.raw_connect("127.0.0.1", port))
  t.truthy(flowc.raw_connected(fd, 2000), "raw connect")
  F.wait(function() return sid ~= nil end, 5000, "accepted")
  queue_big(function(d) return srv:send(sid, d) end)
  local t0 = net.now()
  srv:disconnect(sid)
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "linger timeout")
  local ev = srvlog:get("disconnected")
  t.between(ev.at - t0, 280, 2000, "ms until the linger timeout")
  t.eq(ev[2], "linger timeout", "reason")
  t.eq(ev[3], "LINGER_TIMEOUT", "code")
  -- The peer sees a reset once it reads past what arrived.
  local err
  for _ = 1, 100000 do
    local d, e = flowc.raw_recv(fd, 2000)
    if d == nil then err = e; break end
    t.truthy(#d > 0, "clean end of a cut stream")
  end
  t.eq(err, "Connection reset by peer", "the peer's recv")
  flowc.raw_close(fd)
  srv:stop()
  F.settle()
end

-- 3. server:stop() the same: a client that never reads is reset after
-- linger_timeout; one that reads gets everything.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local ids = {}
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) ids[#ids + 1] = id end,
  }), "127.0.0.1", { linger_timeout = 300 })
  local fd = assert(flowc.raw_connect("127.0.0.1", port))
  t.truthy(flowc.raw_connected(fd, 2000), "raw connect")
  F.wait(function() return #ids == 1 end, 5000, "raw client accepted")
  local n = 0
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    data = function(d) n = n + #d end,
  }))
  F.wait(function() return #ids == 2 end, 5000, "lnet client accepted")
  for _, id in ipairs(ids) do queue_big(function(d) return srv:send(id, d) end) end
  srv:stop()
  F.wait(function() return srvlog:count("disconnected") == 2 and clog:count("disconnected") == 1 end,
         20000, "both ended")
  t.eq(n, BIG, "the reading client got everything")
  local reasons = {}
  for k = 1, 2 do
    local ev = srvlog:get("disconnected", k)
    reasons[ev[1]] = ev[3] or "orderly"
  end
  t.eq(reasons[ids[1]], "LINGER_TIMEOUT", "the raw client's end")
  t.eq(reasons[ids[2]], "orderly", "the reading client's end")
  flowc.raw_close(fd)
  F.settle()
end

-- 4. linger_timeout counts time without progress: a slow reader that keeps
-- taking bytes is not cut (the queue drains over ~4 x linger_timeout).
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port, sid
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) sid = id end,
  }), "127.0.0.1", { linger_timeout = 200 })
  local n = 0
  local c = net.TCPSocket()
  local iv
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      c:pause()
      -- Read in short bursts: resume for 5 ms every 100 ms.
      iv = net.setInterval(function()
        c:resume()
        net.setTimeout(function() c:pause() end, 5)
      end, 100)
    end,
    data = function(d) n = n + #d end,
    disconnected = function() net.clearInterval(iv) end,
  }))
  F.wait(function() return sid ~= nil end, 5000, "accepted")
  for _ = 1, 4 do srv:send(sid, blob) end
  srv:disconnect(sid)
  F.wait(function() return clog:count("disconnected") == 1 end, 30000, "slow reader done")
  t.eq(n, 4 * MB, "the slow reader got everything")
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server end")
  t.eq(srvlog:get("disconnected")[2], nil, "an orderly end")
  srv:stop()
  F.settle()
end
