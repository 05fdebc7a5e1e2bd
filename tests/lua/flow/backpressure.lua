-- Backpressure: send() returns true while the queued bytes are at or below
-- high_water and false above it; drain fires exactly once after the queue
-- has emptied. send() always queues the whole string: max_buffer has no
-- default, and with one set a send that finds less than max_buffer queued
-- is accepted whole even when it takes the queue past the limit (the abort
-- at the limit itself is tested in max_buffer.lua).
-- The receiving side: a paused connection (client or server) stops reading,
-- so TCP pushes back on the peer (its queue grows, its send returns false),
-- and resume delivers every byte, in order.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local KB, MB = 1024, 1024 * 1024
local DEF_HIGH = 64 * KB       -- SPEC Part C default; max_buffer has none
local UNLIMITED = 9 * MB        -- queued at once with the defaults: no limit
local pat = F.pattern(65521, UNLIMITED + 1, 31)

-- Fills a connection whose peer does not read. Phase 1 sends 64 KiB chunks
-- until the kernel buffers are full and bytes stay queued; phase 2, all in
-- one go (no loop round in between, so the queue moves only by our sends),
-- checks the exact thresholds. Returns the bytes accepted (a prefix of the
-- pattern stream).
local function fill_exact(send, stats, high, max, what)
  local pos = 0
  local function push(n)
    local before = stats().queued
    local r, msg = send(pat:at(pos, n))
    if r ~= nil then pos = pos + n end
    return r, msg, before
  end
  local rounds = 0
  while stats().queued == 0 do
    rounds = rounds + 1
    t.truthy(rounds <= 1024, what .. ": 64 MiB written without any byte staying queued")
    local r, msg = push(math.min(64 * KB, high))
    t.truthy(r ~= nil, what .. ": send failed while filling: " .. tostring(msg))
  end
  local q = stats().queued
  t.truthy(q > 0 and q <= high, what .. ": queued after the first partial write: " .. q)
  -- Up to exactly high_water: true.
  t.eq(push(high - q), true, what .. ": send reaching exactly high_water")
  t.eq(stats().queued, high, what .. ": queued == high_water")
  -- One byte more: false.
  t.eq(push(1), false, what .. ": send one byte above high_water")
  t.eq(stats().queued, high + 1, what .. ": queued == high_water + 1")
  if max then
    -- Just below max_buffer: still false (queued), not nil.
    t.eq(push(max - high - 2), false, what .. ": send reaching max_buffer - 1")
    t.eq(stats().queued, max - 1, what .. ": queued == max_buffer - 1")
    -- A send that finds less than max_buffer queued is accepted whole, even
    -- past the limit (SPEC Part C, revised: never part of a string).
    t.eq(push(high), false, what .. ": send taking the queue past max_buffer")
    t.eq(stats().queued, max - 1 + high, what .. ": the whole string queued")
  else
    -- No default limit: 9 MB more at once, queued whole.
    t.eq(push(UNLIMITED), false, what .. ": 9 MB send with the defaults")
    t.eq(stats().queued, high + 1 + UNLIMITED, what .. ": 9 MB queued whole")
  end
  return pos
end

-- A. Client with the default limits; the server connection is paused from
-- its 'connected' on, so nothing is read until resume(id).
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local sid
  local check = pat:checker("server received")
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error", "drain" }, {
    connected = function(id)
      sid = id
      t.eq(srv:pause(id), true, "server:pause(id) result")
    end,
    data = function(_, d) check.feed(d) end,
  }))
  local c = net.TCPSocket()
  local accepted
  local drain_queue
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "data", "disconnected", "error", "drain" }, {
    connected = function()
      accepted = fill_exact(function(s) return c:send(s) end, function() return c:stats() end,
                            DEF_HIGH, nil, "client (defaults)")
    end,
    drain = function() drain_queue = c:stats().queued end,
  }))
  F.wait(function() return accepted ~= nil and sid ~= nil end, 10000, "client filled")
  -- The peer is paused: its kernel buffers are full and stay full.
  F.sleep(300)
  t.eq(clog:count("drain"), 0, "client drain while the peer is paused")
  t.eq(srvlog:count("data"), 0, "server data while paused")
  t.eq(srv:stats(sid).bytes_in, 0, "server bytes_in while paused")
  t.truthy(c:stats().queued > DEF_HIGH, "client queue while the peer is paused")
  t.eq(srv:resume(sid), true, "server:resume(id) result")
  F.wait(function() return check.n == accepted end, 30000, "every accepted byte at the server")
  F.wait(function() return clog:count("drain") >= 1 end, 10000, "client drain")
  t.eq(drain_queue, 0, "client queue at drain")
  F.sleep(200)
  t.eq(clog:count("drain"), 1, "client drain count")
  t.eq(check.n, accepted, "server received exactly the accepted bytes")
  t.eq(c:stats().bytes_out, accepted, "client bytes_out")
  t.eq(c:stats().queued, 0, "client queue at the end")
  -- Below high water again: true, and no new drain for it.
  t.eq(c:send(pat:at(accepted, 100)), true, "send after the drain")
  F.wait(function() return check.n == accepted + 100 end, 5000, "last 100 bytes")
  F.sleep(100)
  t.eq(clog:count("drain"), 1, "no drain after a true send")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 and clog:count("disconnected") == 1 end,
         5000, "both ends disconnected")
  srv:stop()
  F.settle()
end

-- B. Server side with its own limits (listen options), drain(id); the client
-- is paused from its 'connected' on.
do
  local HIGH, MAX = 100000, 1000000
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local sid, accepted, drain_queue
  local check = pat:checker("client received")
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error", "drain" }, {
    connected = function(id)
      sid = id
      accepted = fill_exact(function(s) return srv:send(id, s) end,
                            function() return srv:stats(id) end, HIGH, MAX, "server (options)")
    end,
    drain = function(id)
      t.eq(id, sid, "drain(id) id")
      drain_queue = srv:stats(id).queued
    end,
  }), "127.0.0.1", { high_water = HIGH, max_buffer = MAX })
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "data", "disconnected", "error", "drain" }, {
    connected = function() c:pause() end,
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return accepted ~= nil and clog:count("connected") == 1 end, 10000, "server filled")
  F.sleep(300)
  t.eq(clog:count("data"), 0, "client data while paused")
  t.eq(c:stats().bytes_in, 0, "client bytes_in while paused")
  t.eq(srvlog:count("drain"), 0, "server drain while the client is paused")
  t.truthy(srv:stats(sid).queued > HIGH, "server queue while the client is paused")
  t.eq(srv:stats().queued, srv:stats(sid).queued, "server stats().queued (all clients)")
  c:resume()
  F.wait(function() return check.n == accepted end, 30000, "every accepted byte at the client")
  F.wait(function() return srvlog:count("drain") >= 1 end, 10000, "server drain(id)")
  t.eq(drain_queue, 0, "server queue at drain(id)")
  F.sleep(200)
  t.eq(srvlog:count("drain"), 1, "server drain count")
  t.eq(srv:stats(sid).bytes_out, accepted, "server bytes_out")
  t.eq(c:stats().bytes_in, accepted, "client bytes_in")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  srv:stop()
  F.wait(function() return clog:count("disconnected") == 1 and srvlog:count("disconnected") == 1 end,
         5000, "both ends disconnected")
  F.settle()
end

-- C. The same with the limits given to the TCPSocket constructor, and a
-- second false/drain cycle on the same connection: one drain per cycle.
do
  local HIGH, MAX = 5000, 300000
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local sid
  local check = pat:checker("server received")
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error" }, {
    connected = function(id) sid = id; srv:pause(id) end,
    data = function(_, d) check.feed(d) end,
  }))
  local c = net.TCPSocket({ high_water = HIGH, max_buffer = MAX })
  local accepted
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "disconnected", "error", "drain" }, {
    connected = function()
      accepted = fill_exact(function(s) return c:send(s) end, function() return c:stats() end,
                            HIGH, MAX, "client (constructor options)")
    end,
  }))
  F.wait(function() return accepted ~= nil and sid ~= nil end, 10000, "client filled")
  srv:resume(sid)
  F.wait(function() return clog:count("drain") == 1 end, 10000, "first drain")
  -- More cycles: pause the server again and send until send() returns
  -- false. The server's kernel buffer may still take bytes (it grew while
  -- the server was reading), so a false may be followed by a drain; go on
  -- until a false is not followed by a drain within 300 ms (the kernel
  -- buffers are full). Every false send gets exactly one drain.
  srv:pause(sid)
  local more, episodes, full = 0, 1, false
  while not full do
    t.truthy(more < 64 * MB, "refill bounded")
    local r = c:send(pat:at(accepted + more, 4000))
    t.truthy(r ~= nil, "refill: send refused before max_buffer")
    more = more + 4000
    if r == false then
      episodes = episodes + 1
      local t0 = net.now()
      F.wait(function() return clog:count("drain") == episodes or net.now() - t0 >= 300 end,
             5000, "refill wait")
      full = clog:count("drain") < episodes
    end
  end
  t.eq(clog:count("drain"), episodes - 1, "drains while the last queue is not empty")
  t.truthy(c:stats().queued > HIGH, "queue above high water while the peer is paused")
  srv:resume(sid)
  F.wait(function() return check.n == accepted + more end, 30000, "second cycle delivered")
  F.wait(function() return clog:count("drain") == episodes end, 10000, "last drain")
  F.sleep(200)
  t.eq(clog:count("drain"), episodes, "one drain per false send")
  -- A send that returns true but leaves bytes queued (the kernel is full,
  -- the queue stays below high water): no drain when that queue empties.
  srv:pause(sid)
  local tail, r2 = 0, nil
  repeat
    t.truthy(tail < 64 * MB, "partial fill bounded")
    r2 = c:send(pat:at(accepted + more + tail, HIGH // 2))
    tail = tail + HIGH // 2
    t.eq(r2, true, "send below high water")
  until c:stats().queued > 0
  srv:resume(sid)
  F.wait(function() return check.n == accepted + more + tail end, 30000, "partial fill delivered")
  F.wait(function() return c:stats().queued == 0 end, 5000, "queue empties")
  F.sleep(200)
  t.eq(clog:count("drain"), episodes, "no drain after true sends, even when bytes were queued")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server disconnected")
  srv:stop()
  F.settle()
end
