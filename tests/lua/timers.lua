-- Timers and loop modes.
local net = require "net"
local t = require "testlib"

local SLACK = 1000   -- how late a timer may fire on a loaded machine

-- net.now(): integer milliseconds, monotonic.
do
  local a = net.now()
  t.eq(math.type(a), "integer", "net.now() type")
  local b = net.now()
  t.truthy(b >= a, "net.now() monotonic")
end

-- Nothing active: every mode returns false at once.
do
  local t0 = net.now()
  t.eq(net.loop(), false, "default loop with nothing active")
  t.eq(net.loop("default"), false, "\"default\" with nothing active")
  t.eq(net.loop("once"), false, "\"once\" with nothing active")
  t.eq(net.loop("nowait"), false, "\"nowait\" with nothing active")
  t.truthy(net.now() - t0 < 500, "no mode blocks with nothing active")
end

-- Order and delay; extra arguments; nothing fires inside setTimeout.
do
  local fired = {}
  local t0 = net.now()
  local function record(name, ms)
    return function(...)
      local elapsed = net.now() - t0
      t.truthy(elapsed >= ms, ("timer %s fired after %d ms, before its %d ms"):format(name, elapsed, ms))
      t.truthy(elapsed < ms + SLACK, ("timer %s fired %d ms late"):format(name, elapsed - ms))
      fired[#fired + 1] = name
      return ...
    end
  end
  local args
  net.setTimeout(record("c", 60), 60)
  net.setTimeout(record("a", 10), 10)
  net.setTimeout(record("b", 30), 30)
  net.setTimeout(function(...) args = table.pack(...) end, 0, "x", nil, 3)
  local z = net.setTimeout(record("zero", 0), 0)
  t.truthy(z ~= nil, "setTimeout returns a timer")
  t.same(fired, {}, "nothing fires inside setTimeout")
  t.eq(net.loop(), false, "loop ends when the timers are done")
  t.same(fired, { "zero", "a", "b", "c" }, "timer order")
  t.eq(args.n, 3, "extra argument count")
  t.eq(args[1], "x", "extra argument 1")
  t.eq(args[2], nil, "extra argument 2")
  t.eq(args[3], 3, "extra argument 3")
end

-- setInterval: N times at its period, then clearInterval inside its callback.
do
  local n, times = 0, {}
  local t0 = net.now()
  local iv
  iv = net.setInterval(function(tag)
    n = n + 1
    t.eq(tag, "tick", "interval argument")
    times[n] = net.now() - t0
    if n == 5 then
      net.clearInterval(iv)
      net.clearInterval(iv)   -- idempotent
    end
  end, 20, "tick")
  local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  -- Wait well past a sixth period before ending.
  net.setTimeout(function() net.clearTimeout(guard) end, 300)
  t.eq(net.loop(), false, "loop")
  t.eq(n, 5, "interval count after clearInterval in its callback")
  for i = 1, 5 do
    t.truthy(times[i] >= 20 * i, ("tick %d at %d ms, before %d ms"):format(i, times[i], 20 * i))
  end
  t.truthy(times[5] < 100 + SLACK, "ticks late: " .. t.show(times))
end

-- clearTimeout: a cleared timer never fires; clearing is idempotent,
-- also after the timer fired, and from another timer's callback.
do
  local fired = {}
  local a = net.setTimeout(function() fired[#fired + 1] = "a" end, 10)
  local b = net.setTimeout(function() fired[#fired + 1] = "b" end, 40)
  local c = net.setTimeout(function() fired[#fired + 1] = "c" end, 20)
  net.clearTimeout(a)
  net.clearTimeout(a)
  net.setTimeout(function() net.clearTimeout(b) end, 15)
  t.eq(net.loop(), false, "loop")
  t.same(fired, { "c" }, "only the uncleared timer fired")
  net.clearTimeout(c)        -- after it fired
  net.clearInterval(c)       -- either clear works on either timer
  net.clearTimeout(b)
  t.eq(net.loop("nowait"), false, "nothing active")
  -- Clearing a timeout from its own callback is harmless.
  local self_t, count = nil, 0
  self_t = net.setTimeout(function() count = count + 1; net.clearTimeout(self_t) end, 1)
  t.eq(net.loop(), false, "loop")
  t.eq(count, 1, "self-clearing timeout")
end

-- A timer set inside a timer callback fires in the same loop run.
do
  local order = {}
  net.setTimeout(function()
    order[#order + 1] = "outer"
    net.setTimeout(function() order[#order + 1] = "inner" end, 10)
  end, 5)
  t.eq(net.loop(), false, "loop")
  t.same(order, { "outer", "inner" }, "nested timers")
end

-- "nowait" never blocks; it runs what is ready.
do
  local fired = false
  local long = net.setTimeout(function() fired = true end, 400)
  local t0 = net.now()
  for _ = 1, 50 do
    t.eq(net.loop("nowait"), true, "\"nowait\" with a pending timer")
  end
  t.truthy(net.now() - t0 < 200, "\"nowait\" blocked for " .. (net.now() - t0) .. " ms")
  t.eq(fired, false, "a 400 ms timer fired early")
  net.clearTimeout(long)
  t.eq(net.loop("nowait"), false, "nothing active after clearTimeout")
  -- A due timer runs from "nowait".
  local due = false
  net.setTimeout(function() due = true end, 0)
  local rounds = 0
  while not due do
    rounds = rounds + 1
    t.truthy(rounds < 100000, "a due timer never ran from \"nowait\"")
    net.loop("nowait")
  end
end

-- "once": waits for one round of events and returns.
do
  local fired = {}
  net.setTimeout(function() fired[#fired + 1] = "first" end, 20)
  local later = net.setTimeout(function() fired[#fired + 1] = "later" end, 2000)
  local t0 = net.now()
  local rounds = 0
  while #fired == 0 do
    rounds = rounds + 1
    t.truthy(rounds < 100, "\"once\" rounds")
    t.eq(net.loop("once"), true, "\"once\" with a timer still pending")
  end
  t.truthy(net.now() - t0 >= 20, "\"once\" returned before the timer")
  t.truthy(net.now() - t0 < 1500, "\"once\" did not return after the first timer")
  t.same(fired, { "first" }, "one timer ran")
  net.clearTimeout(later)
  -- The last timer: "once" runs it and returns false.
  net.setTimeout(function() fired[#fired + 1] = "last" end, 5)
  rounds = 0
  local r
  repeat
    rounds = rounds + 1
    t.truthy(rounds < 100, "\"once\" rounds")
    r = net.loop("once")
  until #fired == 2
  t.eq(r, false, "\"once\" after the last timer")
end

-- net.stop() inside a callback makes net.loop() return while a timer is
-- still pending; a later loop carries on.
do
  local pending_fired = false
  local pending = net.setTimeout(function() pending_fired = true end, 3000)
  local after_stop = false
  net.setTimeout(function() net.stop() end, 10)
  net.setTimeout(function() after_stop = true end, 10)   -- same round or the next
  local t0 = net.now()
  t.eq(net.loop(), true, "net.loop() after net.stop() with a timer pending")
  t.truthy(net.now() - t0 < 1000, "net.stop() did not stop the loop")
  t.eq(pending_fired, false, "pending timer")
  -- The next loop runs normally (stop() is not sticky).
  local next_fired = false
  net.setTimeout(function() next_fired = true; net.clearTimeout(pending) end, 20)
  t.eq(net.loop(), false, "loop after stop")
  t.truthy(next_fired, "timer after stop")
  t.truthy(after_stop, "the timer due with the stopping one")
  t.eq(pending_fired, false, "cleared timer")
end

-- Many timers: all fire, once each.
do
  local count, seen = 0, {}
  for i = 1, 1000 do
    net.setTimeout(function(k)
      t.eq(seen[k], nil, "timer fired twice")
      seen[k] = true
      count = count + 1
    end, i % 20, i)
  end
  t.eq(net.loop(), false, "loop")
  t.eq(count, 1000, "timers fired")
end

-- A timer's callback may raise nothing else: the loop is clean afterwards.
t.eq(net.loop("nowait"), false, "nothing left active")

-- Many timers: equal delays fire in the order they were set, and none
-- fires early (libevent's clock is coarse; lnet aims at the precise one).
do
  local order, early = {}, {}
  local t0 = net.now()
  for i = 1, 50 do
    net.setTimeout(function() order[#order + 1] = i end, 7)
  end
  for i = 1, 40 do
    local ms = (i * 7) % 23
    local start = net.now()
    net.setTimeout(function()
      if net.now() - start < ms then early[#early + 1] = ms end
    end, ms)
  end
  t.eq(net.loop(), false, "loop")
  local want = {}
  for i = 1, 50 do want[i] = i end
  t.same(order, want, "equal delays fire in the order set")
  t.same(early, {}, "timers that fired early")
  t.truthy(net.now() - t0 >= 22, "the longest timer waited")
end
