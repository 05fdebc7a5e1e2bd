-- A coroutine waiting for input is parked on its connection and resumed
-- straight from the read (co.cc's wait_data/co_deliver). Whatever else
-- woke it first (a timeout, a close, co.kill) leaves a stale parking: the
-- next data must then go to the buffer, never to a coroutine that waits
-- for something else, and nothing may be lost or resumed twice.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

-- A client that sends each {delay_ms, data} of steps on its connection.
local function client(port, steps)
  return co.spawn(function()
    local s = co.tcp()
    assert(s:connect("127.0.0.1", port))
    for _, step in ipairs(steps) do
      co.sleep(step[1])
      assert(s:send(step[2]))
    end
    s:receive("*a")  -- until the server closes
    s:close()
  end)
end

-- 1. A read times out, then the coroutine sleeps: data that arrives during
-- the sleep must not cut it short (it is buffered), and the next reads get
-- it. For receiveany (parked direct) and for receive("*l") (parked on the
-- buffer).
for _, pattern in ipairs({ "any", "*l" }) do
  local got, slept, err1
  local function read(sock)
    if pattern == "any" then return sock:receiveany(100) end
    return sock:receive(pattern)
  end
  local srv, port = t.listen(function(sock)
    sock:settimeout(50)
    local d, e = read(sock)
    err1 = e
    t.eq(d, nil, pattern .. ": first read")
    local t0 = net.now()
    co.sleep(300)
    slept = net.now() - t0
    sock:settimeout(2000)
    got = read(sock)
  end)
  t.run(5000, function()
    local c = client(port, { { 120, "hello\n" } })
    co.wait(c)
    srv:stop()
  end)
  t.eq(err1, "timeout", pattern .. ": the first read's error")
  t.truthy(slept >= 290, pattern .. ": the sleep ran its full 300 ms (" .. tostring(slept) .. ")")
  t.eq(got, pattern == "any" and "hello\n" or "hello", pattern .. ": the data after the sleep")
end

-- 2. A parked reader is killed; data arriving afterwards stays in the
-- buffer for the next reader of the same socket.
do
  local killed_ok, after
  local srv, port = t.listen(function(sock)
    local reader = co.spawn(function() return sock:receiveany(100) end)
    co.sleep(30)  -- the reader is parked now
    killed_ok = co.kill(reader)
    co.sleep(200)  -- the client's data arrives meanwhile
    sock:settimeout(2000)
    after = sock:receiveany(100)
    local ok, msg = co.wait(reader)
    t.eq(ok, false, "the killed reader's result")
    t.eq(msg, "killed", "its message")
  end)
  t.run(5000, function()
    co.wait(client(port, { { 100, "after kill" } }))
    srv:stop()
  end)
  t.eq(killed_ok, true, "co.kill of a parked reader")
  t.eq(after, "after kill", "data after the kill")
end

-- 3. More than receiveany's maximum arrives at once: the rest is kept.
do
  local parts = {}
  local srv, port = t.listen(function(sock)
    sock:settimeout(2000)
    parts[1] = sock:receiveany(4)
    parts[2] = sock:receiveany(4)
    parts[3] = sock:receiveany(100)
  end)
  t.run(5000, function()
    co.wait(client(port, { { 50, "0123456789" } }))
    srv:stop()
  end)
  t.eq(table.concat(parts, "|"), "0123|4567|89", "receiveany(4) twice, then the rest")
end

-- 4. Input past max_input while a reader waits on the buffer: delivered
-- all the same (the layer pauses reading instead), in order.
do
  local got
  local srv, port = t.listen(function(sock)
    sock:settimeout(2000)
    got = sock:receive(3000)
  end, { max_input = 1000 })
  t.run(5000, function()
    co.wait(client(port, { { 50, string.rep("a", 1500) }, { 50, string.rep("b", 1500) } }))
    srv:stop()
  end)
  t.eq(got, string.rep("a", 1500) .. string.rep("b", 1500), "3000 bytes through max_input = 1000")
end

-- 5. Connections that end while their reader is parked, many times over
-- (the parking places are reused): every reader sees the close, and every
-- later connection still gets its data.
do
  local closed, echoed = 0, 0
  local srv, port = t.listen(function(sock)
    sock:settimeout(5000)
    local d, e = sock:receiveany(100)
    if d then
      sock:send(d)
      echoed = echoed + 1
    elseif e == "closed" then
      closed = closed + 1
    end
  end)
  t.run(20000, function()
    for round = 1, 3 do
      local threads = {}
      for i = 1, 100 do
        threads[i] = co.spawn(function()
          local s = co.tcp()
          assert(s:connect("127.0.0.1", port))
          if i % 2 == 0 then
            co.sleep(20)
            s:close()  -- the server's reader is parked: it sees the close
          else
            co.sleep(20)
            assert(s:send("r" .. round))
            t.eq(s:receiveany(100), "r" .. round, "an echo in round " .. round)
            s:close()
          end
        end)
      end
      for i = 1, 100 do
        local ok, e = co.wait(threads[i])
        if not ok then error(e, 0) end
      end
    end
    for _ = 1, 100 do
      if closed + echoed == 300 then break end
      co.sleep(10)
    end
    srv:stop()
  end)
  t.eq(echoed, 150, "echoes")
  t.eq(closed, 150, "closes seen by parked readers")
end

-- 6. A coroutine resumed from the read that ends or raises at once: the
-- end closes its socket; the error leaves net.loop() with its traceback.
do
  local srv, port = t.listen(function(sock)
    local d = sock:receiveany(100)
    if d == "raise\n" then error("raised after the read", 0) end
  end)
  local saw
  co.spawn(function()
    local s = co.tcp()
    assert(s:connect("127.0.0.1", port))
    s:send("end\n")
    local _, e = s:receive()
    saw = e
    s = co.tcp()
    assert(s:connect("127.0.0.1", port))
    s:send("raise\n")
  end)
  local ok, err = pcall(net.loop)
  t.eq(ok, false, "net.loop raises the handler's error")
  t.has(err, "raised after the read", "its message")
  t.has(err, "stack traceback", "with the coroutine's traceback")
  t.eq(saw, "closed", "the socket of a handler that returned")
  srv:stop()
  t.run(3000, function() co.sleep(10) end)
end
