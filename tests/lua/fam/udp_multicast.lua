-- Multicast on loopback: a socket joins 239.255.77.x on 127.0.0.1 and
-- receives what another sends there with multicast_loop on; not after
-- leave(). set{} and its options.
local net = require "net"
local t = require "testlib"
local udplib = require "fam.udplib"

local GROUP = "239.255.77." .. math.random(1, 250)

-- What the receiver (state) got of "tag" sent to the group from a fresh
-- sender with these options, set before it is open (see fam.udplib).
local function exchange(receiver_state, sender_options, ms, tag)
  return udplib.exchange(receiver_state, function()
    local s = net.UDPSocket()
    t.eq(s:set(sender_options), true, "set{} before the socket is open")
    return s
  end, GROUP, receiver_state.port, ms, tag)
end

local state = {}
local r = net.UDPSocket({ reuseaddr = true })
r:bind("0.0.0.0", 0, { message = function(data) if state.on then state.on(data) end end })
local _, port = r:sockname()
state.port = port
local ok, msg, code = r:join(GROUP, "127.0.0.1")
t.eq(ok, true, ("join(%s, 127.0.0.1): %s %s"):format(GROUP, tostring(msg), tostring(code)))

local loop_on = { multicast_interface = "127.0.0.1", multicast_loop = true, multicast_ttl = 1 }

-- 1. Joined, loop on: received.
t.same(exchange(state, loop_on, 3000, "joined"), { "joined" }, "received after join")
-- (multicast_loop = false cannot be told apart here: on the loopback
-- interface the packet comes back in as input, loop or not: see
-- udp_netns_multicast.lua, run in a private network namespace.)
-- 3. A second join of the same group fails with its code; leave() works.
local ok2, _, code2 = r:join(GROUP, "127.0.0.1")
t.eq(ok2, nil, "joining twice")
t.eq(code2, "EADDRINUSE", "joining twice: code")
t.eq(r:leave(GROUP, "127.0.0.1"), true, "leave()")
t.same(exchange(state, loop_on, 300, "left"), {}, "nothing after leave()")
-- 4. Joining again receives again (leave really left, join really joins).
t.eq(r:join(GROUP, "127.0.0.1"), true, "join again")
t.same(exchange(state, loop_on, 3000, "again"), { "again" }, "received after joining again")

-- 5. Source-specific membership: a join that names another source filters
-- our sender out; one that names 127.0.0.1 lets it in.
t.eq(r:leave(GROUP, "127.0.0.1"), true, "leave before the source-specific joins")
local okss, ssmsg = r:join(GROUP, "127.0.0.1", "127.0.0.2")
t.eq(okss, true, "join with source 127.0.0.2: " .. tostring(ssmsg))
t.same(exchange(state, loop_on, 300, "other source"), {}, "filtered by source")
t.eq(r:leave(GROUP, "127.0.0.1", "127.0.0.2"), true, "leave the source-specific group")
t.eq(r:join(GROUP, "127.0.0.1", "127.0.0.1"), true, "join with source 127.0.0.1")
t.same(exchange(state, loop_on, 3000, "our source"), { "our source" }, "received from the named source")
t.raises("source and group must be of one family", function() r:join(GROUP, nil, "::1") end)

-- 6. set{} on an open socket applies at once; bad values raise.
local s = net.UDPSocket()
s:bind("127.0.0.1", 0, {})
t.eq(s:set({ ttl = 7, broadcast = true, multicast_ttl = 3, multicast_loop = false }), true, "set{} on an open socket")
t.raises("option 'ttl' must be an integer from 1 to 255", function() s:set({ ttl = 0 }) end)
t.raises("option 'broadcast' must be a boolean", function() s:set({ broadcast = 1 }) end)
local bad, bmsg, bcode = s:set({ multicast_interface = "no-such-if0" })
t.eq(bad, nil, "an interface that is not an IPv4 address on an IPv4 socket")
t.eq(bcode, "EINVAL", "its code: " .. tostring(bmsg))
s:close()
r:close()
t.settle()
