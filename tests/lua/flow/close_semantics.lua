-- Close semantics: disconnect() flushes 5 MB then closes (every byte
-- arrives); close() drops what is queued (the peer gets exactly what had
-- left, disconnected still fires once, from the loop); server:stop()
-- flushes every client and fires disconnected(id) for each.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local MB = 1024 * 1024
local BIG = 5 * MB
local pat = F.pattern(65521, BIG, 5)
local NAMES = { "connected", "data", "disconnected", "error", "drain" }

-- The server pauses each connection for the first 200 ms, so the client's
-- bytes are still queued when it disconnects or closes.
local function paused_server(check_for)
  local srvlog = t.log("server")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id)
      srv:pause(id)
      t.after(200, function() srv:resume(id) end)
    end,
    data = function(id, d) check_for(id).feed(d) end,
  }))
  return srv, port, srvlog
end

-- 1. disconnect(): 5 MB queued, then disconnect; all of it arrives.
do
  local check = pat:checker("server received")
  local srv, port, srvlog = paused_server(function() return check end)
  local clog = t.log("client")
  local c = net.TCPSocket()
  local queued_at_disconnect
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      t.eq(c:send(pat:at(0, BIG)), false, "5 MB send")
      queued_at_disconnect = c:stats().queued
      t.eq(t.call(c, "disconnect"), nil, "disconnect() result")
      local r, msg = c:send("more")
      t.eq(r, nil, "send after disconnect()")
      t.eq(type(msg), "string", "send after disconnect() message")
    end,
  }))
  F.wait(function() return srvlog:count("disconnected") == 1 and clog:count("disconnected") == 1 end,
         30000, "both ends done")
  t.truthy(queued_at_disconnect > 0, "bytes were queued at disconnect()")
  t.eq(check.n, BIG, "bytes at the server")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  clog:expect({ "connected", "disconnected" }, nil, "client events")
  t.eq(c:stats().bytes_out, BIG, "client bytes_out")
  F.sleep(100)
  t.eq(clog:count("disconnected"), 1, "client disconnected once")
  srv:stop()
  F.settle()
end

-- 2. close(): the queued bytes are dropped. The server gets exactly what
-- had left (bytes_out after close), fewer than 5 MB; the client's
-- disconnected fires once, from the loop, and no error.
do
  local check = pat:checker("server received")
  local srv, port, srvlog = paused_server(function() return check end)
  local clog = t.log("client")
  local c = net.TCPSocket()
  local out_after_close
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      t.eq(c:send(pat:at(0, BIG)), false, "5 MB send")
      t.truthy(c:stats().queued > 0, "bytes queued before close()")
      t.call(c, "close")
      local st = c:stats()
      t.eq(st.queued, 0, "queued after close()")
      out_after_close = st.bytes_out
      t.truthy(out_after_close < BIG, "bytes_out after close() is below 5 MB")
      t.eq(select(1, c:send("more")), nil, "send after close()")
      t.call(c, "close")        -- idempotent
      t.call(c, "disconnect")   -- harmless after close
    end,
  }))
  F.wait(function() return srvlog:count("disconnected") == 1 and clog:count("disconnected") == 1 end,
         30000, "both ends done")
  F.sleep(100)
  clog:expect({ "connected", "disconnected" }, nil, "client events")
  t.eq(check.n, out_after_close, "the server got exactly what had left")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason (orderly FIN)")
  srv:stop()
  F.settle()
end

-- 3. server:stop() with 5 MB queued for each of three paused clients: the
-- listener closes at once, each client gets all its bytes then
-- disconnected; the server fires disconnected(id) once for each.
do
  local ONE = BIG
  local srvlog = t.log("server")
  local srv, port
  local ids = {}
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id) ids[#ids + 1] = id end,
  }))
  local cs, logs, checks = {}, {}, {}
  for i = 1, 3 do
    local c = net.TCPSocket()
    local lg = t.log("client" .. i)
    local chk = pat:checker("client " .. i)
    c:connect("127.0.0.1", port, F.callbacks(lg, NAMES, {
      connected = function() c:pause() end,
      data = function(d) chk.feed(d) end,
    }))
    cs[i], logs[i], checks[i] = c, lg, chk
  end
  F.wait(function() return #ids == 3 and logs[1]:count("connected") + logs[2]:count("connected")
                                           + logs[3]:count("connected") == 3 end, 5000, "three clients")
  for _, id in ipairs(ids) do
    t.eq(srv:send(id, pat:at(0, ONE)), false, "5 MB to " .. id)
  end
  F.sleep(100)
  for _, id in ipairs(ids) do t.truthy(srv:stats(id).queued > 0, "queued for " .. id) end
  t.call(srv, "stop")
  t.eq(select(1, srv:address()), nil, "address() after stop()")
  t.eq(select(1, srv:send(ids[1], "x")), nil, "send(id) after stop()")
  -- A new connect is refused: the listener is closed, so the port can be
  -- bound (and is kept bound, never listening, so nothing else takes it).
  t.closed_port("127.0.0.1", port)
  local rlog = t.log("refused")
  net.TCPSocket():connect("127.0.0.1", port, F.callbacks(rlog, NAMES))
  F.wait(function() return rlog:count("error") == 1 end, 5000, "connect after stop()")
  t.has(rlog:get("error")[1], "Connection refused", "connect after stop() message")
  for i = 1, 3 do cs[i]:resume() end
  F.wait(function()
    for i = 1, 3 do if logs[i]:count("disconnected") ~= 1 then return false end end
    return srvlog:count("disconnected") == 3
  end, 30000, "every client flushed and disconnected")
  F.sleep(100)
  for i = 1, 3 do
    t.eq(checks[i].n, ONE, "bytes at client " .. i)
    logs[i]:expect({ "connected", "data", "disconnected" }, "data", "client " .. i .. " events")
  end
  local seen = {}
  for k = 1, 3 do
    local ev = srvlog:get("disconnected", k)
    t.eq(ev[2], nil, "server reason after stop()")
    t.eq(seen[ev[1]], nil, "disconnected twice for " .. ev[1])
    seen[ev[1]] = true
  end
  for _, id in ipairs(ids) do t.truthy(seen[id], "disconnected for " .. id) end
  t.eq(srvlog:count("disconnected"), 3, "server disconnected count")
  t.same(srv:clients(), {}, "clients() after stop()")
  t.eq(srvlog:count("error"), 0, "server errors")
  F.settle()
end
