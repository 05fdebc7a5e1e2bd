-- Issue 8 item 5 and item 7 (net.stop): after a callback raises, or calls
-- net.stop(), no further callback of any kind runs until net.loop() is
-- called again; what was left (bytes in the socket, deferred callbacks) is
-- delivered then, nothing lost.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local MB = 1024 * 1024
local pat = F.pattern(65521, MB, 5)

-- Runs net.loop() (default mode) under pcall, bounded: a guard timer
-- raises after ms. Returns ok, err.
local function loop_bounded(ms)
  local guard = net.setTimeout(function() error("guard: the loop did not return") end, ms)
  local ok, err = pcall(net.loop)
  net.clearTimeout(guard)
  return ok, err
end

-- halt(): what the first 'data' / 'started' callback does.
local function check_reads(what, halt)
  local srv, port, sid
  srv, port = t.listen({ connected = function(id) sid = id end })
  local check = pat:checker(what)
  local ndata = 0
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function() c:pause() end,
    data = function(d)
      ndata = ndata + 1
      check.feed(d)
      if ndata == 1 then halt() end
    end,
  })
  F.wait(function() return sid ~= nil and c:stats().bytes_in == 0 and tostring(c):find("connected") end,
         5000, what .. ": connected")
  t.truthy(srv:send(sid, pat:at(0, MB)) ~= nil, what .. ": 1 MB sent")
  -- Everything is in the client's socket before it reads: one readable
  -- event could deliver it in several reads.
  F.wait(function() return srv:stats(sid).queued == 0 end, 5000, what .. ": server queue empty")
  F.sleep(50)
  c:resume()
  local ok, err = loop_bounded(5000)
  t.eq(ndata, 1, what .. ": data callbacks before net.loop() returned")
  F.wait(function() return check.n == MB end, 10000, what .. ": the rest after the next net.loop()")
  c:close()
  srv:stop()
  F.settle()
  return ok, err
end

-- 1. The read loop stops at once.
do
  local ok, err = check_reads("raise in data", function() error("boom in data") end)
  t.eq(ok, false, "net.loop() raised")
  t.has(tostring(err), "boom in data", "the callback's error")
  ok = check_reads("net.stop() in data", function() net.stop() end)
  t.eq(ok, true, "net.loop() returned after net.stop()")
end

-- 2. The deferred queue stops at once: two servers' 'started' are due in
-- the same loop round; the first raises (or stops): the second fires only
-- when net.loop() runs again.
local function check_deferred(what, halt)
  local order = {}
  local s1, s2 = net.TCPServer(), net.TCPServer()
  s1:listen("127.0.0.1", 0, { started = function() order[#order + 1] = 1; halt() end })
  s2:listen("127.0.0.1", 0, { started = function() order[#order + 1] = 2 end })
  local ok, err = loop_bounded(5000)
  t.same(order, { 1 }, what .. ": callbacks before net.loop() returned")
  F.wait(function() return #order == 2 end, 5000, what .. ": the second after the next net.loop()")
  t.same(order, { 1, 2 }, what .. ": order")
  s1:stop()
  s2:stop()
  F.settle()
  return ok, err
end

do
  local ok, err = check_deferred("raise in started", function() error("boom in started") end)
  t.eq(ok, false, "net.loop() raised")
  t.has(tostring(err), "boom in started", "the callback's error")
  ok = check_deferred("net.stop() in started", function() net.stop() end)
  t.eq(ok, true, "net.loop() returned after net.stop()")
end

-- 3. Accepts: connections queued in the kernel are not accepted (and no
-- 'connected' fires) after a 'connected' that raised, until net.loop()
-- runs again.
do
  local n = 0
  local srv = net.TCPServer()
  srv:listen("127.0.0.1", 0, {
    connected = function()
      n = n + 1
      if n == 1 then error("boom in connected") end
    end,
  })
  F.wait(function() return srv:address() ~= nil end, 5000, "listening")
  local _, port = srv:address()
  local fds = {}
  for i = 1, 4 do fds[i] = assert(flowc.raw_connect("127.0.0.1", port)) end
  flowc.sleep_ms(100)  -- all four are in the accept queue
  local ok, err = loop_bounded(5000)
  t.eq(ok, false, "net.loop() raised")
  t.has(tostring(err), "boom in connected", "the callback's error")
  t.eq(n, 1, "connected callbacks before net.loop() returned")
  F.wait(function() return n == 4 end, 5000, "the others after the next net.loop()")
  for _, fd in ipairs(fds) do flowc.raw_close(fd) end
  srv:stop()
  F.settle()
end
