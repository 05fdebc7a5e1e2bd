-- Multicast where it can be told apart from loopback input: run by
-- tests/families.cc inside a private network namespace with a veth pair
-- v0 <-> v1 (v0: 10.9.9.1/24, fd09::1/64). A packet sent out of v0 reaches
-- a local member only through multicast_loop (its copy arriving on v1 is
-- dropped: v1 joined nothing). Checks multicast_loop on and off (set{} and
-- the constructor), IPv6 join/receive/leave on an interface name, and the
-- IPv6 multicast hop limit (multicast_ttl) seen by a Python receiver.
local net = require "net"
local t = require "testlib"
local udplib = require "fam.udplib"

local IF4, IF6 = "10.9.9.1", "v0"
local G4 = "239.255.80." .. math.random(1, 250)
local G6 = ("ff15::80:%x"):format(math.random(1, 0xfffe))

-- The members: one socket per family, joined below; state.on receives.
local state = {}
local function member(host, group, iface)
  local r = net.UDPSocket({ reuseaddr = true })
  r:bind(host, 0, { message = function(data) if state.on then state.on(data) end end,
                    error = function(m) error(m) end })
  local ok, msg, code = r:join(group, iface)
  t.eq(ok, true, ("join(%s, %s): %s %s"):format(group, iface, tostring(msg), tostring(code)))
  local _, port = r:sockname()
  return r, port
end

-- Sends tag to group:port from make_sender() every 20 ms; what the member
-- got within ms (waits for one datagram or ms).
local function exchange(make_sender, group, port, ms, tag)
  return udplib.exchange(state, make_sender, group, port, ms, tag)
end

local function with(options) return function() return net.UDPSocket(options) end end
local function set_after(options, later)
  return function()
    local s = net.UDPSocket(options)
    t.eq(s:set(later), true, "set{} on the sender")
    return s
  end
end

-- 1. IPv4: loop on, off (constructor and set{}), on again.
local r4, p4 = member("0.0.0.0", G4, IF4)
local on4 = { multicast_interface = IF4, multicast_loop = true }
local off4 = { multicast_interface = IF4, multicast_loop = false }
t.same(exchange(with(on4), G4, p4, 3000, "v4 loop on"), { "v4 loop on" }, "IPv4, multicast_loop = true")
t.same(exchange(with(off4), G4, p4, 400, "v4 loop off"), {}, "IPv4, multicast_loop = false")
t.same(exchange(set_after(on4, { multicast_loop = false }), G4, p4, 400, "v4 set off"), {},
       "IPv4, set{multicast_loop = false}")
t.same(exchange(set_after(off4, { multicast_loop = true }), G4, p4, 3000, "v4 set on"), { "v4 set on" },
       "IPv4, set{multicast_loop = true}")

-- 2. IPv6 on an interface name: join/receive, loop off, leave, join again.
local r6, p6 = member("::", G6, IF6)
local on6 = { multicast_interface = IF6, multicast_loop = true }
local off6 = { multicast_interface = IF6, multicast_loop = false }
t.same(exchange(with(on6), G6, p6, 3000, "v6 joined"), { "v6 joined" }, "IPv6 group received after join")
t.same(exchange(with(off6), G6, p6, 400, "v6 loop off"), {}, "IPv6, multicast_loop = false")
t.eq(r6:leave(G6, IF6), true, "IPv6 leave()")
t.same(exchange(with(on6), G6, p6, 400, "v6 left"), {}, "IPv6: nothing after leave()")
t.eq(r6:join(G6, IF6), true, "IPv6 join again")
t.same(exchange(with(on6), G6, p6, 3000, "v6 again"), { "v6 again" }, "IPv6 received after joining again")
local bad, _, bcode = r6:join(G6, "no-such-if0")
t.eq(bad, nil, "join on an interface that does not exist")
t.eq(bcode, "ENODEV", "its code")
r4:close()
r6:close()

-- 3. The IPv6 multicast hop limit (multicast_ttl) as a receiver sees it.
local h = famc.spawn({ "timeout", "30", "python3", "-c", [[
import socket, struct, sys
group = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_RECVHOPLIMIT", 51), 1)
s.bind(("::", 0))
mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", socket.if_nametoindex("v0"))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
print("port", s.getsockname()[1], flush=True)
s.settimeout(20)
while True:
    data, anc, flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(4) * 2)
    hops = -1
    for level, kind, d in anc:
        if (level, kind) == (socket.IPPROTO_IPV6, getattr(socket, "IPV6_HOPLIMIT", 52)):
            hops = struct.unpack("i", d[:4])[0]
    if data == b"bye":
        break
    print(data.decode(), hops, flush=True)
]], G6 })
local function poll_out(pattern, what)
  local v
  t.run(10000, function(done)
    local iv
    iv = net.setInterval(function()
      v = famc.out(h):match(pattern)
      if v or not famc.running(h) then net.clearInterval(iv); done() end
    end, 10)
  end, { keep = true })
  t.truthy(v, what .. ": " .. famc.out(h) .. famc.err(h))
  return v
end
local hport = tonumber(poll_out("port (%d+)\n", "the receiver's port"))
local function hops_of(s, tag)
  local iv = net.setInterval(function() s:send(tag, G6, hport) end, 50)
  local v = poll_out(tag .. " (%-?%d+)\n", tag)
  net.clearInterval(iv)
  return tonumber(v)
end
local s = net.UDPSocket({ multicast_interface = IF6, multicast_loop = true })
t.eq(hops_of(s, "hdefault"), 1, "IPv6 multicast hop limit by default")
t.eq(s:set({ multicast_ttl = 6 }), true, "set multicast_ttl 6")
t.eq(hops_of(s, "h6"), 6, "IPv6 multicast hop limit after set{multicast_ttl = 6}")
s:send("bye", G6, hport)
s:close()
famc.stop(h)
t.settle()
