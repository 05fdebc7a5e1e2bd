-- UDP against other programs on loopback: a Python client and a socat
-- client against an lnet echo socket; an lnet client against a Python echo
-- server and against socat's UDP-RECVFROM echo.
local net = require "net"
local t = require "testlib"

-- Polls fn() every 10 ms until it returns true (bounded by t.run's deadline).
local function poll(fn)
  local iv
  iv = net.setInterval(function() if fn() then net.clearInterval(iv) end end, 10)
  t.cleanup(function() net.clearInterval(iv) end)
end

local function echo_server()
  local srv = net.UDPSocket()
  srv:bind("127.0.0.1", 0, {
    message = function(data, ip, port) srv:send(data, ip, port) end,
    error = function(m) error(m) end,
  })
  t.closing(srv)
  local _, port = srv:sockname()
  return srv, port
end

-- 1. Python client -> lnet echo: three datagrams, one of them empty.
do
  local out
  t.run(15000, function(done)
    local _, port = echo_server()
    local h = famc.spawn({ "timeout", "10", "python3", "-c", [[
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for d in (b"hello", b"", b"\x00\xffbinary"):
    s.sendto(d, ("127.0.0.1", int(sys.argv[1])))
    data, addr = s.recvfrom(65535)
    print(data.hex() + " " + str(addr[1]), flush=True)
]], tostring(port) })
    poll(function()
      if famc.running(h) then return false end
      out = famc.out(h) .. famc.err(h)
      done()
      return true
    end)
  end)
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  t.eq(#lines, 3, "python got three replies: " .. out)
  t.match(lines[1], "^68656c6c6f %d+$", "hello echoed")
  t.match(lines[2], "^ %d+$", "empty datagram echoed")
  t.match(lines[3], "^00ff62696e617279 %d+$", "binary echoed")
end

-- 2. socat client -> lnet echo.
do
  local out
  t.run(15000, function(done)
    local _, port = echo_server()
    local h = famc.spawn({ "timeout", "10", "socat", "-T", "1", "-",
                           "UDP:127.0.0.1:" .. port }, "through socat\n")
    poll(function()
      if not famc.out(h):find("through socat\n", 1, true) and famc.running(h) then return false end
      out = famc.out(h)
      done()
      return true
    end)
  end)
  t.eq(out, "through socat\n", "socat got the echo")
end

-- 3. lnet client -> Python echo server (it prints its port, echoes until
-- it gets "bye").
do
  local got = {}
  t.run(15000, function(done)
    local h = famc.spawn({ "timeout", "10", "python3", "-c", [[
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(data, addr)
    if data == b"bye":
        break
]] })
    local c = t.closing(net.UDPSocket())
    poll(function()
      local port = tonumber(famc.out(h):match("^(%d+)\n"))
      if not port then return false end
      c:connect("127.0.0.1", port, {
        message = function(data, ip, p)
          t.eq(p, port, "reply from python's port")
          got[#got + 1] = data
          if data == "bye" then done() end
        end,
      })
      c:send("")
      c:send(("z"):rep(8000))
      c:send("bye")
      return true
    end)
  end)
  t.same(got, { "", ("z"):rep(8000), "bye" }, "python echoed")
end

-- 4. lnet client -> socat echo (UDP-RECVFROM with fork: one reply per
-- datagram), on a port lnet found free.
do
  local got
  t.run(15000, function(done)
    local probe = net.UDPSocket()
    probe:bind("127.0.0.1", 0, {})
    local _, port = probe:sockname()
    probe:close()
    famc.spawn({ "timeout", "10", "socat", "UDP4-RECVFROM:" .. port .. ",bind=127.0.0.1,fork",
                 "EXEC:cat" })
    local c = t.closing(net.UDPSocket())
    c:bind("127.0.0.1", 0, {
      message = function(data, _, p)
        t.eq(p, port, "reply from socat's port")
        got = data
        done()
      end,
    })
    -- socat needs a moment to bind: resend until the echo comes.
    poll(function()
      c:send("via socat", "127.0.0.1", port)
      return false
    end)
  end)
  t.eq(got, "via socat", "socat echoed")
end
t.settle()
