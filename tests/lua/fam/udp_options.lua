-- UDP options seen from outside the socket: ttl and multicast_ttl in the
-- TTL / hop limit a Python receiver reads (IP_RECVTTL, IPV6_RECVHOPLIMIT
-- ancillary data), broadcast (a send to 127.255.255.255 fails with EACCES
-- without it), and the buffer sizes in ss's skmem (the kernel doubles them).
local net = require "net"
local t = require "testlib"

-- Prints "port N", then "DATA TTL" for each datagram until "bye".
local RECEIVER = [[
import socket, struct, sys
fam, group = sys.argv[1], sys.argv[2]
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
if fam == "6":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    s.bind(("::1", 0))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    if group != "-":
        s.bind(("0.0.0.0", 0))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
    else:
        s.bind(("127.0.0.1", 0))
print("port", s.getsockname()[1], flush=True)
s.settimeout(20)
while True:
    data, anc, flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(4) * 2)
    ttl = -1
    for level, kind, d in anc:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
            ttl = struct.unpack("i", d[:4])[0]
    if data == b"bye":
        break
    print(data.decode(), ttl, flush=True)
]]

-- Polls fn() every 10 ms until it returns true (bounded by t.run's deadline).
local function poll(fn)
  local iv
  iv = net.setInterval(function() if fn() then net.clearInterval(iv) end end, 10)
  t.cleanup(function() net.clearInterval(iv) end)
end

-- Starts the receiver (family "4" or "6", group or "-"); returns its
-- handle and port.
local function receiver(family, group)
  local h = famc.spawn({ "timeout", "30", "python3", "-c", RECEIVER, family, group })
  local port
  t.run(15000, function(done)
    poll(function()
      port = tonumber(famc.out(h):match("port (%d+)\n"))
      if port or not famc.running(h) then done(); return true end
    end)
  end, { keep = true })
  t.truthy(port, "the receiver's port: " .. famc.out(h) .. famc.err(h))
  return h, port
end

-- Sends tag from s to host:port every 100 ms until the receiver reports it;
-- returns the TTL it saw.
local function ttl_of(h, s, tag, host, port)
  local ttl
  t.run(10000, function(done)
    local function send()
      local ok, msg, code = s:send(tag, host, port)
      t.eq(ok, true, ("send %s to %s: %s %s"):format(tag, host, tostring(msg), tostring(code)))
    end
    send()
    local iv = net.setInterval(send, 100)
    t.cleanup(function() net.clearInterval(iv) end)
    poll(function()
      ttl = tonumber(famc.out(h):match("\n" .. tag .. " (%-?%d+)\n") or
                     famc.out(h):match("^" .. tag .. " (%-?%d+)\n"))
      if ttl or not famc.running(h) then done(); return true end
    end)
  end, { keep = true })
  t.truthy(ttl, tag .. ": the receiver saw it: " .. famc.out(h) .. famc.err(h))
  return ttl
end

local function bye(h, s, host, port)
  s:send("bye", host, port)
  famc.stop(h)
end

-- 1. IPv4 unicast: ttl from set{} and from the constructor.
do
  local h, port = receiver("4", "-")
  local s = net.UDPSocket()
  local default = ttl_of(h, s, "default", "127.0.0.1", port)
  t.truthy(default ~= 37 and default ~= 200, "the default TTL is neither value set below: " .. default)
  t.eq(s:set({ ttl = 37 }), true, "set ttl 37")
  t.eq(ttl_of(h, s, "ttl37", "127.0.0.1", port), 37, "TTL after set{ttl = 37}")
  t.eq(s:set({ ttl = 200 }), true, "set ttl 200")
  t.eq(ttl_of(h, s, "ttl200", "127.0.0.1", port), 200, "TTL after set{ttl = 200}")
  local c = net.UDPSocket({ ttl = 9 })
  t.eq(ttl_of(h, c, "ctor9", "127.0.0.1", port), 9, "TTL from UDPSocket{ttl = 9}")
  bye(h, s, "127.0.0.1", port)
  s:close()
  c:close()
end

-- 2. IPv4 multicast on loopback: multicast_ttl (default 1), apart from ttl.
do
  local group = "239.255.79." .. math.random(1, 250)
  local h, port = receiver("4", group)
  local uh, uport = receiver("4", "-")
  local s = net.UDPSocket({ multicast_interface = "127.0.0.1", multicast_loop = true, ttl = 50 })
  t.eq(ttl_of(h, s, "mdefault", group, port), 1, "multicast TTL by default (ttl = 50 is for unicast)")
  t.eq(s:set({ multicast_ttl = 5 }), true, "set multicast_ttl 5")
  t.eq(ttl_of(h, s, "m5", group, port), 5, "multicast TTL after set{multicast_ttl = 5}")
  t.eq(ttl_of(uh, s, "u50", "127.0.0.1", uport), 50, "unicast TTL of the same socket")
  local c = net.UDPSocket({ multicast_interface = "127.0.0.1", multicast_ttl = 17 })
  t.eq(ttl_of(h, c, "mctor17", group, port), 17, "multicast TTL from UDPSocket{multicast_ttl = 17}")
  bye(h, s, group, port)
  bye(uh, s, "127.0.0.1", uport)
  s:close()
  c:close()
end

-- 3. IPv6 unicast: ttl is the hop limit.
do
  local h, port = receiver("6", "-")
  local s = net.UDPSocket()
  t.eq(s:set({ ttl = 42 }), true, "set ttl 42")
  t.eq(ttl_of(h, s, "hop42", "::1", port), 42, "hop limit after set{ttl = 42}")
  local c = net.UDPSocket({ ttl = 11 })
  t.eq(ttl_of(h, c, "hopctor11", "::1", port), 11, "hop limit from UDPSocket{ttl = 11}")
  bye(h, s, "::1", port)
  s:close()
  c:close()
end

-- 4. broadcast: 127.255.255.255 (the loopback network's broadcast address)
-- refused with EACCES until set{broadcast = true}; received then.
do
  local got = {}
  local r = net.UDPSocket()
  r:bind("0.0.0.0", 0, { message = function(data) got[#got + 1] = data end })
  local _, port = r:sockname()
  local s = net.UDPSocket()
  local ok, msg, code = s:send("no", "127.255.255.255", port)
  t.eq(ok, nil, "broadcast without the option: " .. tostring(msg))
  t.eq(code, "EACCES", "its code")
  t.eq(s:set({ broadcast = true }), true, "set broadcast")
  t.run(5000, function(done)
    t.eq(s:send("yes", "127.255.255.255", port), true, "broadcast with the option")
    poll(function() if #got > 0 then done(); return true end end)
  end, { keep = true })
  t.same(got, { "yes" }, "the broadcast arrived")
  t.eq(s:set({ broadcast = false }), true, "set broadcast false")
  local _, _, code2 = s:send("no again", "127.255.255.255", port)
  t.eq(code2, "EACCES", "broadcast off again")
  local c = net.UDPSocket({ broadcast = true })
  got = {}
  t.run(5000, function(done)
    t.eq(c:send("ctor", "127.255.255.255", port), true, "broadcast from UDPSocket{broadcast = true}")
    poll(function() if #got > 0 then done(); return true end end)
  end, { keep = true })
  t.same(got, { "ctor" }, "the constructor's broadcast arrived")
  s:close()
  c:close()
  r:close()
end

-- 5. Buffer sizes: ss shows the socket's rb and tb (twice what was asked).
do
  local function skmem(port)
    local status, out, err = famc.run({ "ss", "-u", "-a", "-m", "-n", "sport = :" .. port })
    t.eq(status, 0, "ss: " .. tostring(err))
    local rb, tb = out:match("skmem:%(r%d+,rb(%d+),t%d+,tb(%d+)")
    t.truthy(rb, "ss shows the socket's skmem: " .. out)
    return tonumber(rb), tonumber(tb)
  end
  local b = net.UDPSocket({ recv_buffer_size = 40000, send_buffer_size = 50000 })
  b:bind("127.0.0.1", 0, {})
  local _, port = b:sockname()
  local rb, tb = skmem(port)
  t.eq(rb, 80000, "receive buffer (recv_buffer_size = 40000, doubled)")
  t.eq(tb, 100000, "send buffer (send_buffer_size = 50000, doubled)")
  local d = net.UDPSocket()
  d:bind("127.0.0.1", 0, {})
  local _, dport = d:sockname()
  local drb, dtb = skmem(dport)
  t.truthy(drb ~= 80000 and dtb ~= 100000, ("a default socket has other sizes (%d, %d)"):format(drb, dtb))
  b:close()
  d:close()
end
t.settle()
