-- UDP edges: empty and oversized datagrams, truncation (MSG_TRUNC and
-- max_datagram), the bound on datagrams waiting for a lookup, failures with
-- their codes from the loop, pause/resume, lifetime, bad arguments.
local net = require "net"
local t = require "testlib"

local function bound(callbacks, options, host)
  local s = net.UDPSocket(options)
  t.eq(t.call(s, "bind", host or "127.0.0.1", 0, callbacks), true, "bind() result")
  local _, port = s:sockname()
  return s, port
end

-- 1. An empty datagram arrives as "", never nil; a datagram over the UDP
-- limit is refused at once: nil, "message too long", "EMSGSIZE".
do
  local got = {}
  t.run(5000, function(done)
    local r, port = bound({
      message = function(data, ip, p, truncated)
        got[#got + 1] = { data, ip, truncated }
        if #got == 2 then done() end
      end,
    })
    t.closing(r)
    local s = t.closing(net.UDPSocket())
    t.eq(t.call(s, "send", "", "127.0.0.1", port), true, "empty datagram")
    local ok, msg, code = t.call(s, "send", string.rep("x", 70000), "127.0.0.1", port)
    t.eq(ok, nil, "oversized send result")
    t.eq(msg, "message too long", "oversized send message")
    t.eq(code, "EMSGSIZE", "oversized send code")
    t.eq(t.call(s, "send", "after", "127.0.0.1", port), true, "the socket still sends")
  end)
  t.eq(got[1][1], "", "empty datagram is the empty string")
  t.eq(got[1][2], "127.0.0.1", "ip of the empty datagram")
  t.eq(got[1][3], false, "an empty datagram is not truncated")
  t.eq(got[2][1], "after", "next datagram")
end

-- 2. Truncation: max_datagram = 100, a 1,000-byte datagram gives its first
-- 100 bytes and truncated == true; one of exactly 100 bytes is whole.
do
  local got = {}
  local r
  t.run(5000, function(done)
    local port
    r, port = bound({
      message = function(data, _, _, truncated)
        got[#got + 1] = { data, truncated }
        if #got == 3 then done() end
      end,
    }, { max_datagram = 100 })
    t.closing(r)
    local s = t.closing(net.UDPSocket())
    local big = t.random_bytes(1000, 7)
    s:send(big, "127.0.0.1", port)
    s:send(big:sub(1, 100), "127.0.0.1", port)
    s:send(big:sub(1, 99), "127.0.0.1", port)
  end)
  local big = t.random_bytes(1000, 7)
  t.eq(got[1][1], big:sub(1, 100), "truncated data: the first max_datagram bytes")
  t.eq(got[1][2], true, "truncated flag")
  t.eq(got[2][1], big:sub(1, 100), "exactly max_datagram bytes")
  t.eq(got[2][2], false, "exactly max_datagram: not truncated")
  t.eq(got[3][2], false, "shorter: not truncated")
  t.eq(r:stats().truncated, 1, "stats().truncated")
end

-- 3. send() never queues without bound: datagrams waiting for a name lookup
-- are capped; past the cap: nil, "would block", "EAGAIN". The ones queued
-- still arrive.
do
  local n, arrived = 0, 0
  local refused
  t.run(8000, function(done)
    local r, port = bound({
      message = function()
        arrived = arrived + 1
        if arrived == n then done() end
      end,
    })
    t.closing(r)
    local s = t.closing(net.UDPSocket())
    for i = 1, 200 do
      local ok, msg, code = s:send("d" .. i, "localhost", port)
      if not ok then
        refused = { i, msg, code }
        break
      end
      n = n + 1
    end
    t.truthy(refused, "a send was refused before 200 were queued")
    t.eq(refused[2], "would block", "refused send message")
    t.eq(refused[3], "EAGAIN", "refused send code")
    t.eq(s:stats().pending, n, "stats().pending")
    t.eq(s:stats().would_block, 1, "stats().would_block")
  end)
  t.truthy(n >= 1 and n < 200, "queued " .. n)
  t.eq(arrived, n, "every queued datagram arrived")
end

-- 4. Failures reach error(message, code) from the loop, never inside the
-- call: a port in use, a name that does not resolve, a refused connected
-- peer (ICMP port unreachable).
do
  local errors = {}
  local r, port = bound({})
  -- (a generous deadline: the system resolver decides how long a failing
  -- lookup takes)
  t.run(30000, function(done)
    t.closing(r)
    local function record(tag)
      return function(msg, code)
        errors[tag] = { msg, code }
        if errors.bind and errors.name and errors.refused then done() end
      end
    end
    local b = t.closing(net.UDPSocket())
    t.eq(t.call(b, "bind", "127.0.0.1", port, { error = record("bind") }), true, "bind result")
    local n = t.closing(net.UDPSocket())
    n:bind("127.0.0.1", 0, { error = record("name") })
    t.eq(t.call(n, "send", "x", "nosuchhost.invalid", 9), true, "send to a name")
    local c = t.closing(net.UDPSocket())
    local closed = t.closing(net.UDPSocket())
    closed:bind("127.0.0.1", 0, {})
    local _, cport = closed:sockname()
    closed:close()
    c:connect("127.0.0.1", cport, { error = record("refused") })
    -- The refusal comes back for an earlier datagram: keep sending.
    local tries = 0
    local iv
    iv = net.setInterval(function()
      tries = tries + 1
      local ok, msg, code = c:send("ping")
      if not ok and code == "ECONNREFUSED" and not errors.refused then
        errors.refused = { msg, code }
        if errors.bind and errors.name then done() end
      end
      if errors.refused or tries > 100 then net.clearInterval(iv) end
    end, 10)
    t.cleanup(function() net.clearInterval(iv) end)
  end)
  t.eq(errors.bind[1], ("bind to 127.0.0.1:%d failed: Address already in use"):format(port), "bind failure")
  t.eq(errors.bind[2], "EADDRINUSE", "bind failure code")
  t.startswith(errors.name[1], "send to nosuchhost.invalid:9 failed: ", "lookup failure")
  t.match(errors.name[2], "^EAI_", "lookup failure code")
  t.eq(errors.refused[2], "ECONNREFUSED", "refused peer code")
  t.has(errors.refused[1]:lower(), "refused", "refused peer message")
end

-- 5. pause() stops reading (datagrams wait in the kernel), resume() reads
-- them; close() inside a message callback stops the round.
do
  local got = {}
  local r, port
  local s = net.UDPSocket()
  t.run(5000, function(done)
    r, port = bound({
      message = function(data)
        got[#got + 1] = data
        if data == "3" then r:close(); done() end
      end,
    })
    r:pause()
    for i = 1, 5 do s:send(tostring(i), "127.0.0.1", port) end
    net.setTimeout(function()
      t.eq(#got, 0, "nothing read while paused")
      r:resume()
    end, 100)
    t.closing(s)
  end)
  t.same(got, { "1", "2", "3" }, "read after resume, none after close()")
  t.eq(tostring(r), "net.UDPSocket (closed)", "tostring after close")
end

-- 6. Lifetime: a bound socket with no Lua reference stays alive and keeps
-- receiving; once closed it is collectable.
do
  local got, weak = nil, setmetatable({}, { __mode = "v" })
  local port
  t.run(5000, function(done)
    do
      local r
      r, port = bound({
        message = function(data)
          got = data
          weak[1]:close()
          done()
        end,
      })
      weak[1] = r
    end
    collectgarbage()
    collectgarbage()
    t.truthy(weak[1] ~= nil, "a bound socket stays alive without a reference")
    local s = t.closing(net.UDPSocket())
    s:send("alive", "127.0.0.1", port)
  end)
  t.eq(got, "alive", "received by the unreferenced socket")
  collectgarbage()
  collectgarbage()
  t.eq(weak[1], nil, "a closed socket is collected")
end

-- 7. Methods on a closed socket are safe; programming mistakes raise.
do
  local s = net.UDPSocket()
  s:close()
  s:close()
  local ip, msg = s:sockname()
  t.eq(ip, nil, "sockname of a closed socket")
  t.eq(type(msg), "string", "sockname message")
  t.eq(s:peer(), nil, "peer of a closed socket")
  local ok, jmsg, jcode = s:join("239.1.2.3")
  t.eq(ok, nil, "join on a closed socket")
  t.eq(jcode, "ENOTCONN", "join on a closed socket: code " .. tostring(jmsg))
  t.eq(s:set({ ttl = 5 }), true, "set on a closed socket is kept for later")
  s:pause(); s:resume()
  t.eq(s:stats().datagrams_in, 0, "stats of a closed socket")
  t.raises("port out of range", function() s:bind("127.0.0.1", 70000, {}) end)
  t.raises("table expected", function() s:bind("127.0.0.1", 0) end)
  t.raises("callback 'message' must be a function", function() s:bind("127.0.0.1", 0, { message = 1 }) end)
  t.raises("unknown option 'nosuch'", function() net.UDPSocket({ nosuch = 1 }) end)
  t.raises("option 'max_datagram' must be an integer from 1 to 65535", function()
    net.UDPSocket({ max_datagram = 70000 })
  end)
  t.raises("cannot be set on an open socket", function() s:set({ reuseaddr = true }) end)
  t.raises("host expected", function() s:send("x") end)
  t.raises("IP address expected", function() s:join("not-an-ip") end)
  t.raises("bad argument #2 to 'send' (host contains a NUL byte)", function() net.UDPSocket():send("x", "h\0st", 1) end)
  local r = bound({})
  t.raises("already open", function() r:bind("127.0.0.1", 0, {}) end)
  r:close()
end
-- 8. Socket options take effect: reuseport lets two sockets bind one port
-- (without it the second fails with EADDRINUSE); ipv6only decides whether
-- "::" receives IPv4.
do
  local function bind_result(port, options, host)
    local res
    local s = net.UDPSocket(options)
    s:bind(host or "127.0.0.1", port, { error = function(m, code) res = code end })
    t.run(3000, function(done) net.setTimeout(done, 20) end, { keep = true })
    return s, res
  end
  local a = bind_result(0, { reuseport = true })
  local _, port = a:sockname()
  local b, code = bind_result(port, { reuseport = true })
  t.eq(code, nil, "a second socket with reuseport binds the port")
  b:close()
  local c, code2 = bind_result(port, {})
  t.eq(code2, "EADDRINUSE", "without reuseport it does not")
  c:close()
  a:close()

  local function v4_reaches(ipv6only)
    local got = false
    local r = net.UDPSocket({ ipv6only = ipv6only })
    r:bind("::", 0, { message = function() got = true end, error = function() end })
    local _, p = r:sockname()
    if not p then r:close(); return nil end
    local s = net.UDPSocket()
    t.run(3000, function(done)
      s:send("v4", "127.0.0.1", p)
      net.setTimeout(done, 100)
    end, { keep = true })
    r:close()
    s:close()
    return got
  end
  local dual = v4_reaches(false)
  if dual == nil then
    print("udp_edges: no IPv6, ipv6only part skipped")
  else
    t.eq(dual, true, "ipv6only = false: \"::\" receives IPv4")
    t.eq(v4_reaches(true), false, "ipv6only = true: it does not")
  end
end

-- 9. net.stop() inside a message callback: net.loop() returns after that
-- callback, even with more datagrams ready; the next loop reads on. A
-- socket closed and bound again inside its callback reads the new one.
do
  local got = {}
  local r, port = bound({
    message = function(data)
      got[#got + 1] = data
      net.stop()
    end,
  })
  local s = net.UDPSocket()
  for i = 1, 5 do s:send(tostring(i), "127.0.0.1", port) end
  local limit = net.now() + 5000
  while #got == 0 and net.now() < limit do net.loop("once") end
  t.same(got, { "1" }, "net.stop() ends the round after one callback")
  while #got < 5 and net.now() < limit do net.loop("once") end
  t.same(got, { "1", "2", "3", "4", "5" }, "the next loops read the rest")
  r:close()

  local second = {}
  local r2, port2
  r2, port2 = bound({
    message = function(data)
      if data == "first" then
        r2:close()
        r2:bind("127.0.0.1", 0, { message = function(d) second[#second + 1] = d end })
        s:send("again", "127.0.0.1", select(2, r2:sockname()))
      end
    end,
  })
  t.run(5000, function(done)
    s:send("first", "127.0.0.1", port2)
    s:send("lost with the old socket", "127.0.0.1", port2)
    local iv
    iv = net.setInterval(function() if #second > 0 then net.clearInterval(iv); done() end end, 5)
    t.cleanup(function() net.clearInterval(iv); r2:close(); s:close() end)
  end)
  t.same(second, { "again" }, "the rebound socket reads only its own datagrams")
end
t.settle()
assert(net.loop() == false)
