-- Helpers for the flow-control scenarios (tests/flow.cc runs them): a
-- bounded wait that pumps the loop, a periodic byte pattern whose position
-- in the stream can be checked quickly, and readers of /proc/self.
-- The C++ side (tests/flow.cc) provides the global table `flowc` (raw
-- sockets, fd count, CPU time) and `FLOW_ARGS` (parameters of the case).
local net = require "net"
local t = require "testlib"

local F = {}

-- Pumps the loop until cond() is true, at most ms milliseconds (raises
-- "what: not true after ms ms" then). Callbacks run meanwhile; an error
-- raised in one propagates.
function F.wait(cond, ms, what)
  if cond() then return end
  local start = net.now()
  local ok = false
  t.run(ms + 60000, function(done)
    local iv
    iv = net.setInterval(function()
      if cond() then
        ok = true
        net.clearInterval(iv)
        done()
      elseif net.now() - start > ms then
        net.clearInterval(iv)
        done()
      end
    end, 5)
  end, { keep = true })
  if not ok then error((what or "condition") .. (": not true after %d ms"):format(ms), 2) end
end

-- Lets the loop run for ms milliseconds.
function F.sleep(ms)
  local t0 = net.now()
  F.wait(function() return net.now() - t0 >= ms end, ms + 10000, "sleep")
end

-- Pumps until nothing is active (bounded): after servers were stopped.
function F.settle(ms) t.settle(ms or 5000, "settle") end

-- A periodic pattern: byte i (0-based) of the stream is base[i % period].
-- The period is odd and not a divisor of any chunk size used, so a lost,
-- duplicated or reordered chunk shifts everything after it and is caught.
local Pattern = {}
Pattern.__index = Pattern

function F.pattern(period, maxchunk, seed)
  local base = t.random_bytes(period, seed or 99)
  local reps = (period + maxchunk) // period + 1
  return setmetatable({ period = period, maxchunk = maxchunk, text = base:rep(reps) }, Pattern)
end

-- n bytes of the stream from position pos (0-based).
function Pattern:at(pos, n)
  assert(n <= self.maxchunk, "chunk larger than the pattern allows")
  local off = pos % self.period
  return self.text:sub(off + 1, off + n)
end

-- A checker: c:feed(d) raises at the first byte that differs.
function Pattern:checker(what)
  local pat = self
  local c = { n = 0 }
  function c.feed(d)
    local i = 1
    while i <= #d do
      local take = math.min(#d - i + 1, pat.maxchunk)
      local got = d:sub(i, i + take - 1)
      local want = pat:at(c.n, take)
      if got ~= want then
        local k = 1
        while got:byte(k) == want:byte(k) do k = k + 1 end
        error(("%s: stream differs at byte %d (got %d, expected %d)"):format(
          what or "pattern", c.n + k - 1, got:byte(k), want:byte(k)), 2)
      end
      c.n = c.n + take
      i = i + take
    end
  end
  return c
end

-- Resident set size of this process, in KiB.
function F.rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

F.fd_count = flowc and flowc.fd_count
F.args = FLOW_ARGS or {}

-- Collects a callback table's events into log `lg` (testlib's recorder),
-- wrapping the functions given in `fns`.
function F.callbacks(lg, names, fns)
  local cb = {}
  fns = fns or {}
  for _, n in ipairs(names) do cb[n] = lg:fn(n, fns[n]) end
  return cb
end

return F
