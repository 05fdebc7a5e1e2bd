-- Helpers for the scenario scripts: a bounded runner around net.loop(),
-- assertions that show both values, an ordered callback recorder, and a
-- checksum for large transfers. Every failure raises.
local net = require "net"

local t = {}

---------------------------------------------------------------------------
-- Formatting and assertions

local function show(v, max)
  if type(v) == "string" then
    max = max or 80
    if #v > max then
      return (("%q"):format(v:sub(1, max - 20)):gsub("\\\n", "\\n")) .. ("... (%d bytes)"):format(#v)
    end
    return (("%q"):format(v):gsub("\\\n", "\\n"))
  elseif type(v) == "table" then
    local parts, n = {}, 0
    for i = 1, (v.n or #v) do
      n = n + 1
      if n > 40 then parts[#parts + 1] = "..."; break end
      parts[#parts + 1] = show(v[i])
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end
t.show = show

local function fail(what, msg, level)
  error((what and (what .. ": ") or "") .. msg, (level or 2) + 1)
end

-- t.eq(got, expected, what): raw equality (math.type is compared for numbers,
-- so 1 and 1.0 differ).
function t.eq(got, expected, what)
  if got ~= expected or math.type(got) ~= math.type(expected) then
    fail(what, ("expected %s, got %s"):format(show(expected), show(got)), 2)
  end
  return got
end

-- t.same(got, expected, what): arrays compared element by element.
function t.same(got, expected, what)
  if type(got) ~= "table" then
    fail(what, ("expected table %s, got %s"):format(show(expected), show(got)), 2)
  end
  local n = math.max(#got, #expected, got.n or 0, expected.n or 0)
  for i = 1, n do
    if got[i] ~= expected[i] then
      fail(what, ("expected %s, got %s (first difference at [%d])"):format(
        show(expected), show(got), i), 2)
    end
  end
  return got
end

-- Lua pattern match.
function t.match(s, pattern, what)
  if type(s) ~= "string" or not s:find(pattern) then
    fail(what, ("%s does not match pattern %s"):format(show(s), show(pattern)), 2)
  end
  return s
end

-- Plain substring.
function t.has(s, sub, what)
  if type(s) ~= "string" or not s:find(sub, 1, true) then
    fail(what, ("%s does not contain %s"):format(show(s), show(sub)), 2)
  end
  return s
end

function t.startswith(s, prefix, what)
  if type(s) ~= "string" or s:sub(1, #prefix) ~= prefix then
    fail(what, ("%s does not start with %s"):format(show(s), show(prefix)), 2)
  end
  return s
end

function t.truthy(v, what)
  if not v then fail(what, ("expected a true value, got %s"):format(show(v)), 2) end
  return v
end

function t.between(v, lo, hi, what)
  if type(v) ~= "number" or v < lo or v > hi then
    fail(what, ("expected a number in [%s, %s], got %s"):format(show(lo), show(hi), show(v)), 2)
  end
  return v
end

-- The call raises, and its message contains every string in subs (plain).
function t.raises(subs, f, ...)
  if type(subs) == "string" then subs = { subs } end
  local ok, err = pcall(f, ...)
  if ok then
    fail(nil, ("expected an error containing %s, but the call returned normally"):format(show(subs[1])), 2)
  end
  err = tostring(err)
  for _, s in ipairs(subs) do
    if not err:find(s, 1, true) then
      fail(nil, ("expected an error containing %s, got %s"):format(show(s), show(err, 400)), 2)
    end
  end
  return err
end

-- The call does not raise; its results are returned.
function t.noraise(what, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then fail(what, "raised " .. show(tostring(r[2])), 2) end
  return table.unpack(r, 2, r.n)
end

-- f(...) returns nil, message (a non-empty string); the message is returned.
function t.fails(what, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then fail(what, "raised " .. show(tostring(r[2])) .. " instead of returning nil, message", 2) end
  if r[2] ~= nil or type(r[3]) ~= "string" or r[3] == "" then
    fail(what, ("expected nil, message; got %s"):format(show(table.pack(table.unpack(r, 2, r.n)))), 2)
  end
  return r[3]
end

---------------------------------------------------------------------------
-- Callback recorder. Every recorded callback bumps a global counter, so
-- t.call can prove that nothing fired inside a call (SPEC Part C).

t.fired = 0

local Log = {}
Log.__index = Log

function t.log(name)
  return setmetatable({ name = name or "log", events = {} }, Log)
end

-- Returns a callback that records {name, args...} then runs f(...) if given.
function Log:fn(name, f)
  return function(...)
    t.fired = t.fired + 1
    if t.inside then
      local msg = ("callback %s.%s fired inside %s"):format(self.name, name, t.inside)
      t.violation = t.violation or msg
      error(msg, 2)
    end
    local ev = table.pack(...)
    ev.name = name
    ev.at = net.now()
    self.events[#self.events + 1] = ev
    if f then return f(...) end
  end
end

-- Names in order; with collapse, consecutive repeats of that name count once.
function Log:names(collapse)
  local out = {}
  for _, ev in ipairs(self.events) do
    if not (collapse and ev.name == collapse and out[#out] == collapse) then
      out[#out + 1] = ev.name
    end
  end
  return out
end

function Log:count(name)
  local n = 0
  for _, ev in ipairs(self.events) do
    if ev.name == name then n = n + 1 end
  end
  return n
end

-- The k-th event named name (k defaults to 1), or nil.
function Log:get(name, k)
  k = k or 1
  for _, ev in ipairs(self.events) do
    if ev.name == name then
      k = k - 1
      if k == 0 then return ev end
    end
  end
end

function Log:expect(names, collapse, what)
  local got = self:names(collapse)
  local ok = #got == #names
  for i = 1, #names do ok = ok and got[i] == names[i] end
  if not ok then
    fail(what or self.name, ("expected events %s, got %s"):format(show(names), show(got)), 2)
  end
end

function Log:concat(name, argi)
  local parts = {}
  for _, ev in ipairs(self.events) do
    if ev.name == name then parts[#parts + 1] = ev[argi or 1] end
  end
  return table.concat(parts)
end

-- Calls obj:method(...) (or a plain function when method is nil) and raises
-- if any recorded callback fired during the call.
function t.call(obj, method, ...)
  local label, f
  if type(obj) == "function" then
    label, f = method or "a call", obj
    local before = t.fired
    t.inside = label
    local r = table.pack(pcall(f))
    t.inside = nil
    if t.fired ~= before then fail(nil, "a callback fired inside " .. label, 2) end
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
  label = tostring(obj):match("^[%w%.]+") .. ":" .. method .. "()"
  local before = t.fired
  t.inside = label
  local r = table.pack(pcall(obj[method], obj, ...))
  t.inside = nil
  if t.fired ~= before then fail(nil, "a callback fired inside " .. label, 2) end
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

---------------------------------------------------------------------------
-- Running a scenario

local SETTLE_MS = 3000

-- Pumps the loop until nothing is active, at most ms milliseconds; raises
-- if something is still active then. A short timer bounds each "once".
function t.settle(ms, what)
  ms = ms or SETTLE_MS
  local limit = net.now() + ms
  while net.loop("nowait") do
    if net.now() > limit then
      fail(what, ("something is still active %d ms after the scenario ended"):format(ms), 2)
    end
    local tick = net.setTimeout(function() end, 5)
    net.loop("once")
    net.clearTimeout(tick)
  end
end

-- t.run(ms, fn [, opts]): runs fn(done) then the loop until done() is
-- called, bounded by a deadline of ms milliseconds. done() clears the
-- deadline, runs the cleanups registered with t.cleanup (in reverse order)
-- and stops the loop; then the loop is pumped until nothing is active
-- (unless opts.keep). opts.on_error(err) may return true to accept an error
-- raised out of net.loop() and carry on.
local cleanups = {}

function t.cleanup(f) cleanups[#cleanups + 1] = f end

-- Registers obj to be stopped/closed when the scenario ends.
function t.closing(obj)
  t.cleanup(function()
    if obj.stop then obj:stop() else obj:close() end
  end)
  return obj
end

function t.run(ms, fn, opts)
  opts = opts or {}
  local finished = false
  local deadline
  local function done()
    if finished then return end
    finished = true
    net.clearTimeout(deadline)
    local list = cleanups
    cleanups = {}
    for i = #list, 1, -1 do list[i]() end
    net.stop()
  end
  deadline = net.setTimeout(function()
    error(("deadline exceeded after %d ms"):format(ms), 0)
  end, ms)
  fn(done)
  local rounds = 0
  while not finished do
    rounds = rounds + 1
    if rounds > 1000 then fail(nil, "net.loop() returned 1000 times before done()", 2) end
    local ok, err = pcall(net.loop)
    if not ok then
      if not (opts.on_error and opts.on_error(err)) then
        cleanups = {}
        net.clearTimeout(deadline)
        error(err, 0)
      end
    elseif not finished then
      fail(nil, "net.loop() returned " .. show(err) .. " before done() was called", 2)
    end
  end
  if t.violation then fail(nil, t.violation, 2) end
  if not opts.keep then t.settle(opts.settle, "after t.run") end
end

-- Runs fn after ms milliseconds (a timer).
function t.after(ms, fn, ...) return net.setTimeout(fn, ms, ...) end

-- Waits ms milliseconds of loop time (outside a callback), with a bound.
function t.sleep(ms)
  t.run(ms + 5000, function(done) net.setTimeout(done, ms) end, { keep = true })
end

---------------------------------------------------------------------------
-- Servers

-- Listens on host (default 127.0.0.1) port 0; returns the server and the
-- real port, which address() gives as soon as listen() has returned.
function t.listen(callbacks, host, options)
  host = host or "127.0.0.1"
  local srv = net.TCPServer()
  t.eq(t.call(srv, "listen", host, 0, callbacks, options), true, "listen() result")
  local h, port = srv:address()
  if math.type(port) ~= "integer" or port <= 0 or port > 65535 then
    fail(nil, ("server:address() after listen(%q, 0) gave %s, %s"):format(host, show(h), show(port)), 2)
  end
  t.eq(h, host, "server:address() host")
  return srv, port
end

-- A port on which nothing listens: bound and never listening, and kept so
-- until the state closes, so that a connect to it is refused and no other
-- socket can take the port meanwhile (a port bound then released could be
-- listening again by the time the test connects).
-- With a port: claims that port the same way (after a server's stop(), this
-- also proves its listener is gone: a listening port cannot be bound).
local bound_ports = {}
function t.closed_port(host, port)
  local port, handle = require("lnet_test").bound_port(host or "127.0.0.1", port)
  if port == nil then fail(nil, handle, 2) end
  bound_ports[#bound_ports + 1] = handle
  return port
end

---------------------------------------------------------------------------
-- Data

-- Adler-32, incremental: local c = t.checksum(); c:update(s); c:value().
local Adler = {}
Adler.__index = Adler

function t.checksum(s)
  local c = setmetatable({ a = 1, b = 0, n = 0 }, Adler)
  if s then c:update(s) end
  return c
end

local byte = string.byte
local MOD = 65521

function Adler:update(s)
  local a, b = self.a, self.b
  local len = #s
  local i = 1
  -- 64-bit integers: reducing every 64 KiB cannot overflow.
  while i <= len do
    local stop = math.min(i + 65535, len)
    while i + 15 <= stop do
      local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 =
        byte(s, i, i + 15)
      a = a + b1; b = b + a; a = a + b2; b = b + a; a = a + b3; b = b + a
      a = a + b4; b = b + a; a = a + b5; b = b + a; a = a + b6; b = b + a
      a = a + b7; b = b + a; a = a + b8; b = b + a; a = a + b9; b = b + a
      a = a + b10; b = b + a; a = a + b11; b = b + a; a = a + b12; b = b + a
      a = a + b13; b = b + a; a = a + b14; b = b + a; a = a + b15; b = b + a
      a = a + b16; b = b + a
      i = i + 16
    end
    while i <= stop do
      a = a + byte(s, i); b = b + a
      i = i + 1
    end
    a = a % MOD; b = b % MOD
  end
  self.a, self.b, self.n = a, b, self.n + len
  return self
end

function Adler:value() return (self.b << 16) | self.a end

-- Deterministic pseudo-random bytes (xorshift), n bytes.
function t.random_bytes(n, seed)
  local x = seed or 88172645463325252
  local parts, chunk = {}, {}
  for i = 1, n do
    x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
    chunk[#chunk + 1] = x & 255
    if #chunk == 200 or i == n then
      parts[#parts + 1] = string.char(table.unpack(chunk))
      chunk = {}
    end
  end
  return table.concat(parts)
end

-- A block source: block(i) is size bytes whose first 8 bytes encode i, so
-- reordered or duplicated blocks change the checksum.
function t.blocks(size, seed)
  local base = t.random_bytes(size, seed)
  return function(i) return string.pack(">I8", i) .. base:sub(9) end
end

return t
