-- UDP over loopback: an echo between two lnet sockets (IPv4 and IPv6), with
-- the sender's address in every message, connected mode, names resolved
-- asynchronously, and no callback inside the call that caused it.
local net = require "net"
local t = require "testlib"

local function echo_server(host)
  local srv = net.UDPSocket()
  t.eq(t.call(srv, "bind", host, 0, {
    message = function(data, ip, port, truncated)
      t.eq(truncated, false, "truncated flag")
      t.eq(srv:send(data, ip, port), true, "echo send")
    end,
    error = function(m, code) error("server error: " .. m .. " " .. tostring(code)) end,
  }), true, "bind() result")
  local ip, port = srv:sockname()
  t.eq(ip, host, "sockname ip right after bind")
  t.truthy(math.type(port) == "integer" and port > 0, "a real port after bind(host, 0)")
  return srv, port
end

-- 1. Datagrams of several sizes (empty, 1, 1400, 60,000 bytes) come back
-- whole, from the server's address, with truncated == false.
local function roundtrip(host)
  local srv, port = echo_server(host)
  local sizes = { 0, 1, 1400, 60000, 5 }
  local got = {}
  t.run(5000, function(done)
    local c = net.UDPSocket()
    t.call(c, "bind", host, 0, {
      message = function(data, ip, p, truncated)
        t.eq(type(data), "string", "data is a string, never nil")
        t.eq(ip, host, "reply source ip")
        t.eq(p, port, "reply source port")
        t.eq(truncated, false, "truncated")
        got[#got + 1] = data
        if #got == #sizes then done() end
      end,
    })
    t.closing(c)
    t.closing(srv)
    for i, n in ipairs(sizes) do
      local payload = t.random_bytes(n, i)
      t.eq(t.call(c, "send", payload, host, port), true, "send of " .. n .. " bytes")
    end
  end)
  for i, n in ipairs(sizes) do
    t.eq(got[i], t.random_bytes(n, i), "echo of " .. n .. " bytes")
  end
end
roundtrip("127.0.0.1")
local function has_ipv6()
  local s = net.UDPSocket()
  s:bind("::1", 0, { error = function() end })
  local ip = s:sockname()
  s:close()
  return ip == "::1"
end
if has_ipv6() then roundtrip("::1") else print("udp_echo: no IPv6 loopback, ::1 part skipped") end
t.settle()

-- 2. Connected mode: connect() then send(data); peer() and sockname().
do
  local srv, port = echo_server("127.0.0.1")
  local replies = {}
  t.run(5000, function(done)
    local c = net.UDPSocket()
    t.eq(t.call(c, "connect", "127.0.0.1", port, {
      message = function(data, ip, p)
        t.eq(ip, "127.0.0.1", "reply ip")
        t.eq(p, port, "reply port")
        replies[#replies + 1] = data
        if #replies == 2 then done() end
      end,
    }), true, "connect() result")
    local pip, pport = c:peer()
    t.eq(pip, "127.0.0.1", "peer ip")
    t.eq(pport, port, "peer port")
    local sip, sport = c:sockname()
    t.eq(sip, "127.0.0.1", "sockname of a connected socket")
    t.truthy(sport > 0, "sockname port")
    t.eq(t.call(c, "send", "one"), true, "send(data) when connected")
    t.eq(t.call(c, "send", "two"), true, "send(data) when connected")
    t.closing(c)
    t.closing(srv)
  end)
  t.same(replies, { "one", "two" }, "connected echo")
end

-- 3. Names: send(data, "localhost", port) and connect("localhost", port)
-- resolve asynchronously; the datagrams still arrive.
do
  local got = {}
  local srv = net.UDPSocket()
  t.run(8000, function(done)
    srv:bind("127.0.0.1", 0, {
      message = function(data)
        got[#got + 1] = data
        if #got == 3 then done() end
      end,
    })
    t.closing(srv)
    local _, port = srv:sockname()
    local a = net.UDPSocket({ ipv6only = false })
    t.eq(t.call(a, "send", "by name", "localhost", port), true, "send to a name")
    t.eq(a:stats().pending, 1, "waits for its lookup")
    local b = net.UDPSocket()
    t.eq(t.call(b, "connect", "localhost", port), true, "connect to a name")
    t.eq(t.call(b, "send", "before connected"), true, "send while connect resolves")
    t.eq(t.call(b, "send", "second"), true, "send while connect resolves")
    t.cleanup(function() a:close(); b:close() end)
  end)
  table.sort(got)
  t.same(got, { "before connected", "by name", "second" }, "datagrams sent to names")
end

-- 4. The stats of a socket.
do
  local srv, port = echo_server("127.0.0.1")
  local c = net.UDPSocket()
  t.run(5000, function(done)
    c:bind("127.0.0.1", 0, { message = function() done() end })
    c:send("12345", "127.0.0.1", port)
    t.closing(c)
    t.closing(srv)
  end)
  local s = c:stats()
  t.eq(s.datagrams_out, 1, "datagrams_out")
  t.eq(s.bytes_out, 5, "bytes_out")
  t.eq(s.datagrams_in, 1, "datagrams_in")
  t.eq(s.bytes_in, 5, "bytes_in")
  t.eq(s.truncated, 0, "truncated")
end
t.settle()
assert(net.loop() == false)
