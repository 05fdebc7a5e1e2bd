-- receive (lines, integer counts), receiveany and send are C methods
-- (co.cc) over the record's buffer; co.lua keeps the other patterns, the
-- waits above the high-water mark, the timers and the ends. These are the
-- seams between the two: errors that point at the caller, the Lua paths
-- reached through the C methods, wake-ups from co.lua of a read parked in
-- C, and a read outside a coroutine.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

-- A server whose handler for each connection is the next script given to
-- connect.
local connect, srv = t.scripted()

-- The message of fn's error, which must name this file (the caller's
-- line, not net.co's).
local function raised_here(fn, what)
  local ok, err = pcall(fn)
  t.eq(ok, false, what .. " raises")
  t.has(err, "cmethods.lua:", what .. ": the error points at the caller")
  return err
end

t.run(20000, function()
  -- Argument errors, with the caller's position.
  local s = connect(function(sock) co.sleep(2000) end)
  t.has(raised_here(function() return s:receive(-1) end, "receive(-1)"), "invalid pattern", "receive(-1)")
  t.has(raised_here(function() return s:receive({}) end, "receive({})"), "invalid pattern", "receive({})")
  t.has(raised_here(function() return s:receiveany(0) end, "receiveany(0)"), "positive integer", "receiveany(0)")
  t.has(raised_here(function() return s:receiveany("8") end, "receiveany('8')"), "positive integer", "receiveany('8')")
  t.has(raised_here(function() return s:send(true) end, "send(true)"), "string or table expected", "send(true)")
  t.has(raised_here(function() return s:send({ { "a", { false } } }) end, "send of a nested boolean"),
    "non-string boolean", "send of a nested boolean")
  s:close()

  -- The Lua paths behind the C methods: "*a", a count as a string or a
  -- float, a count of 0, a number sent.
  s = connect(function(sock)
    t.eq(sock:receive(6), "42abcd", "the server reads the number and the string")
    sock:send("12345678\nrest")
    co.sleep(30)
    sock:close()
  end)
  t.eq(s:send(42), 2, "send(42) sends \"42\"")
  t.eq(s:send({ "ab", { "c", "d" } }), 4, "a nested array")
  t.eq(s:receive(0), "", "receive(0)")
  t.eq(s:receive("2"), "12", "a count as a string")
  t.eq(s:receive(3.0), "345", "a count as a float")
  t.eq(s:receive(), "678", "then a line")
  t.eq(s:receive("*a"), "rest", "*a to the end")
  local r, err = s:receiveany(10)
  t.eq(r, nil, "receiveany after the end")
  t.eq(err, "closed", "receiveany after the end: closed")
  t.eq(select(2, s:send("x")), "closed", "send after the end")

  -- A read parked in C, ended by co.lua: the cosocket closed by another
  -- coroutine gives "closed" and the partial line; a read timeout leaves
  -- the held bytes to the next read.
  s = connect(function(sock)
    sock:send("partial")
    co.sleep(1000)
  end)
  local reader = co.spawn(function() return s:receive("*l") end)
  co.sleep(100)
  s:close()
  local ok, line, rerr, partial = co.wait(reader)
  t.eq(ok, true, "the reader ended")
  t.eq(line, nil, "no line")
  t.eq(rerr, "closed", "closed under the read")
  t.eq(partial, "partial", "the partial line")

  s = connect(function(sock)
    sock:send("ab")
    co.sleep(200)
    sock:send("cd\n")
    co.sleep(200)
  end)
  s:settimeout(50)
  local got, terr = s:receive(4)
  t.eq(got, nil, "a count times out")
  t.eq(terr, "timeout", "its error")
  s:settimeout(2000)
  t.eq(s:receive("*l"), "cd", "the partial bytes went with the timeout, the rest follows")
  s:close()

  -- A long read timeout's timer stays armed across reads; a shorter
  -- timeout after it still fires on time, and an earlier timer firing
  -- never cuts a later, longer read short.
  s = connect(function(sock)
    co.sleep(300)
    sock:send("late\n")
    co.sleep(500)
    sock:send("later\n")
    co.sleep(500)
  end)
  s:settimeout(100)
  local t0 = net.now()
  t.eq(select(2, s:receive()), "timeout", "the short read times out")
  local waited = net.now() - t0
  t.truthy(waited >= 99 and waited < 1000, "after " .. waited .. " ms (timeout 100)")
  s:settimeout(5000)
  t.eq(s:receive(), "late", "a longer read gets its line")
  s:settimeout(50)
  t.eq(select(2, s:receive()), "timeout", "a shorter read after a longer one times out")
  s:settimeout(2000)
  t.eq(s:receive(), "later", "and the next line comes")
  s:close()

  -- receiveany parked in C, woken by a co.lua read timeout, then data
  -- larger than max after the timeout: kept for the next reads.
  s = connect(function(sock)
    co.sleep(150)
    sock:send(string.rep("x", 100))
    co.sleep(300)
  end)
  s:settimeout(50)
  t.eq(select(2, s:receiveany(10)), "timeout", "receiveany times out")
  s:settimeout(2000)
  local total = 0
  for _ = 1, 20 do
    local d = s:receiveany(30)
    t.truthy(d and #d <= 30, "at most max")
    total = total + #d
    if total == 100 then break end
  end
  t.eq(total, 100, "every byte, in pieces of at most 30")
  s:close()

  -- A read that waits inside pcall (a yield across it), and one where no
  -- yield is allowed (inside a metamethod called from C: table.sort's
  -- comparison).
  s = connect(function(sock)
    co.sleep(100)
    sock:send("after\n")
    co.sleep(300)
  end)
  local pok, pline = pcall(s.receive, s)
  t.eq(pok, true, "pcall around a read that waits")
  t.eq(pline, "after", "its line")
  local sok, serr = pcall(table.sort, { 1, 2, 3 }, function(a, b)
    s:receive()
    return a < b
  end)
  t.eq(sok, false, "a read that must wait where it cannot yield raises")
  t.has(serr, "C-call boundary", "its message")
  s:close()

  -- A cosocket used outside a coroutine: data held is returned; a read that
  -- would wait raises.
  s = connect(function(sock)
    sock:send("one\n")
    co.sleep(500)
  end)
  t.eq(s:receiveany(1), "o", "the first byte")
  local outside = {}
  local done = false
  net.setTimeout(function()
    outside.line = s:receive()
    outside.ok, outside.err = pcall(s.receive, s)
    done = true
  end, 0)
  for _ = 1, 100 do
    if done then break end
    co.sleep(10)
  end
  t.eq(outside.line, "ne", "a held line outside a coroutine")
  t.eq(outside.ok, false, "a wait outside a coroutine raises")
  t.has(outside.err, "must run in a coroutine", "its message")
  s:close()
end)
srv:stop()
