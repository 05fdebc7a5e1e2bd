-- The cosocket API in all its results: patterns, partial results on timeout
-- and close, send of a nested table, connect failures, misuse.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

-- A server whose handler for each connection is the next script given to
-- connect.
local connect, srv = t.scripted()

t.run(20000, function()
  -- Patterns.
  local s = connect(function(sock)
    sock:send("one\r\ntwo\nthree\n12345abcdefgh\nrest-of-stream")
    co.sleep(50)
    sock:close()
  end)
  t.eq(s:receive("*l"), "one", "*l strips CR LF")
  t.eq(s:receive("l"), "two", "l strips LF")
  t.eq(s:receive(), "three", "receive() reads a line")
  t.eq(s:receive(5), "12345", "a byte count")
  t.eq(s:receive("3"), "abc", "a numeric string counts bytes")
  t.eq(s:receiveany(6), "defgh\n", "receiveany: at most max")
  t.eq(s:receiveany(100), "rest-of-stream", "receiveany: what is there")
  t.eq(s:receive("*a"), "", "*a reads to the end")
  local r, err = s:receive()
  t.eq(r, nil, "after the end")
  t.eq(err, "closed", "after the end: closed")
  t.eq(s:send("x"), nil, "send after the end")

  -- receiveuntil: plain, inclusive, and streaming with a size.
  s = connect(function(sock)
    sock:send("head--BOUNDARY--middle--BOUNDARY--" .. string.rep("z", 10) .. "--BOUND")
    co.sleep(30)
    sock:send("ARY--tail")
    co.sleep(1000)
  end)
  local until_b = s:receiveuntil("--BOUNDARY--")
  t.eq(until_b(), "head", "receiveuntil")
  local incl = s:receiveuntil("--BOUNDARY--", { inclusive = true })
  t.eq(incl(), "middle--BOUNDARY--", "receiveuntil inclusive")
  local chunks = {}
  for _ = 1, 20 do
    local data, e = until_b(4)
    if not data then
      t.eq(e, nil, "streaming end of part")
      break
    end
    chunks[#chunks + 1] = data
  end
  t.eq(table.concat(chunks, "|"), "zzzz|zzzz|zz", "receiveuntil(size) pieces")
  s:settimeout(100)
  r, err, partial = s:receive("*l")
  t.eq(r, nil, "line timeout")
  t.eq(err, "timeout", "line timeout message")
  t.eq(partial, "tail", "partial data on timeout")
  s:close()

  -- A read timeout leaves the socket usable; partial data on close.
  s = connect(function(sock)
    sock:send("abc")
    co.sleep(300)
    sock:send("def\nxyz")
    co.sleep(50)
  end)
  s:settimeouts(1000, 1000, 100)
  local r1, e1, p1 = s:receive("*l")
  t.eq(r1, nil, "timeout result")
  t.eq(e1, "timeout", "timeout")
  t.eq(p1, "abc", "partial on timeout")
  s:settimeout(2000)
  t.eq(s:receive("*l"), "def", "usable after a timeout")
  local r2, e2, p2 = s:receive(10)
  t.eq(r2, nil, "short read at the end")
  t.eq(e2, "closed", "closed")
  t.eq(p2, "xyz", "partial on close")

  -- Reads that end in time, then one that times out: never early, and
  -- not later than the timeout plus a margin.
  s = connect(function(sock)
    for i = 1, 4 do sock:send("tick" .. i .. "\n"); co.sleep(60) end
    co.sleep(2000)
  end)
  s:settimeout(150)
  for i = 1, 4 do t.eq(s:receive(), "tick" .. i, "read in time " .. i) end
  local t0 = net.now()
  local rt, et = s:receive()
  local waited = net.now() - t0
  t.eq(rt, nil, "then a timeout")
  t.eq(et, "timeout", "timeout message")
  t.truthy(waited >= 149 and waited < 1500, "timed out after " .. waited .. " ms (timeout 150)")
  s:close()

  -- A nested table is sent as one stream; the result is the byte count.
  local got
  s = connect(function(sock) got = sock:receive("*a") end)
  t.eq(s:send({ "a", { "b", { "c", 1 } }, "d", {} }), 5, "send of a nested table")
  t.eq(s:send(""), 0, "send of an empty string")
  -- A flat array (joined in C) with integers, negative ones, the smallest
  -- integer and floats written as tostring() writes them.
  local flat = { "*", 3, "\r\n", -42, 0, math.mininteger, 1.5, -0.25, 1e300, 2^53 }
  local want = "*3\r\n-420" .. tostring(math.mininteger) .. "1.5-0.25" .. tostring(1e300) .. tostring(2^53)
  t.eq(s:send(flat), #want, "send of a flat array with numbers")
  local okb, errb = pcall(s.send, s, { "a", true })
  t.eq(okb, false, "a boolean in the array raises")
  t.has(errb, "non-string boolean in the table", "its message")
  -- A flat array of more than 4 KiB goes the general way, whole.
  local big = { string.rep("x", 3000), 7, string.rep("y", 3000) }
  t.eq(s:send(big), 6001, "send of a flat array of 6,001 bytes")
  s:close()
  co.sleep(100)
  t.eq(got, "abc1d" .. want .. big[1] .. "7" .. big[3], "what the server got")

  -- A server-side cosocket sends a flat array (one write from C).
  s = connect(function(sock)
    t.eq(sock:send({ "+OK ", 12, " ", -3, "\r\n" }), 11, "server-side send of a flat array")
    co.sleep(50)
  end)
  t.eq(s:receive("*l"), "+OK 12 -3", "what the client got")
  s:close()

  -- Line longer than max_line.
  s = connect(function(sock) sock:send(string.rep("x", 100) .. "\n"); co.sleep(100) end,
              { max_line = 16 })
  r, err = s:receive()
  t.eq(r, nil, "too long")
  t.eq(err, "line too long", "too long message")
  t.eq(s:receive(), nil, "closed after line too long")

  -- shutdown(): what was sent arrives, then the peer sees the end of our
  -- stream (and, without allow_half_open, ends the connection: our read
  -- sees that end); after close() it is refused.
  local server_read
  s = connect(function(sock)
    server_read = sock:receive("*a")
  end)
  t.eq(s:send("request"), 7, "send before shutdown")
  t.eq(s:shutdown(), 1, "shutdown")
  t.eq(s:receive("*a"), "", "the end after our shutdown")
  t.eq(server_read, "request", "the peer read our stream to its end")
  s:close()
  local sr, serr = s:shutdown()
  t.eq(sr, nil, "shutdown after close")
  t.eq(serr, "closed", "shutdown after close: closed")

  -- Connect failures: a closed port, a timeout.
  local closed = net.TCPServer()
  closed:listen("127.0.0.1", 0, {})
  local _, cport = closed:address()
  closed:stop()
  s = co.tcp()
  r, err = s:connect("127.0.0.1", cport)
  t.eq(r, nil, "refused")
  t.has(err, "refused", "refused message")

  -- Bad arguments raise.
  s = co.tcp()
  t.eq(pcall(s.connect, s, "127.0.0.1", "x"), false, "bad port raises")
  t.eq(pcall(s.receive, connect(function() end), "*x"), false, "bad pattern raises")
  t.eq(pcall(s.send, s, true) , true, "send on a closed cosocket returns nil")
  srv:stop()
end)

-- Outside a coroutine, a call that waits raises.
local ok, err = pcall(co.sleep, 10)
t.eq(ok, false, "co.sleep outside a coroutine")
t.has(err, "coroutine", "message")
local ok2, err2 = pcall(function() return co.tcp():connect("127.0.0.1", 1) end)
t.eq(ok2, false, "connect outside a coroutine")
t.has(err2, "coroutine", "message")

-- co.wait returns the results.
t.run(5000, function()
  local th = co.spawn(function(a, b) co.sleep(10); return a + b, "x" end, 2, 3)
  local ok3, sum, x = co.wait(th)
  t.eq(ok3, true, "wait ok")
  t.eq(sum, 5, "wait result")
  t.eq(x, "x", "wait second result")
  local th2 = co.spawn(function() co.sleep(10); error("boom", 0) end)
  local ok4, msg = co.wait(th2)
  t.eq(ok4, false, "wait on a failing thread")
  t.eq(msg, "boom", "its message")
end)
