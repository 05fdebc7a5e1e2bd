-- client:stats() and server:stats([id]): bytes_in, bytes_out and queued
-- are exact after a known exchange; the server's accepted and active count
-- connections; queued + bytes_out account for every byte accepted by send.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local pat = F.pattern(65521, 4 * 1024 * 1024, 7)

local function expect_stats(st, want, what)
  t.eq(type(st), "table", what .. ": stats() type")
  for k, v in pairs(want) do t.eq(st[k], v, what .. "." .. k) end
end

local srvlog = t.log("server")
local srv, port
local got = {}
srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error" }, {
  data = function(id, d)
    got[id] = (got[id] or 0) + #d
    if got[id] == 1000 then t.eq(srv:send(id, ("r"):rep(300)), true, "server reply") end
  end,
}))

-- A fresh server and socket: all zero.
expect_stats(srv:stats(), { accepted = 0, active = 0, bytes_in = 0, bytes_out = 0, queued = 0 },
             "server before any client")
expect_stats(net.TCPSocket():stats(), { bytes_in = 0, bytes_out = 0, queued = 0 }, "new socket")

-- 1. A known exchange: 1000 bytes out, 300 back.
local a = net.TCPSocket()
local alog = t.log("a")
local a_in = 0
a:connect("127.0.0.1", port, F.callbacks(alog, { "connected", "data", "disconnected", "error" }, {
  connected = function() t.eq(a:send(("q"):rep(1000)), true, "client send") end,
  data = function(d) a_in = a_in + #d end,
}))
F.wait(function() return a_in == 300 end, 5000, "reply")
local aid = srv:clients()[1]
t.eq(aid, 1, "first client id")
expect_stats(a:stats(), { bytes_in = 300, bytes_out = 1000, queued = 0 }, "client a")
expect_stats(srv:stats(aid), { bytes_in = 1000, bytes_out = 300, queued = 0 }, "server stats(a)")
expect_stats(srv:stats(), { accepted = 1, active = 1, bytes_in = 1000, bytes_out = 300, queued = 0 },
             "server totals, one client")

-- 2. A second client: accepted and active count it; totals add up.
local b = net.TCPSocket()
local blog = t.log("b")
local b_in = 0
b:connect("127.0.0.1", port, F.callbacks(blog, { "connected", "data", "disconnected", "error" }, {
  connected = function()
    t.eq(b:send(("q"):rep(600)), true, "b send 1")
    t.eq(b:send(("q"):rep(400)), true, "b send 2")
  end,
  data = function(d) b_in = b_in + #d end,
}))
F.wait(function() return b_in == 300 end, 5000, "reply to b")
local bid = srv:clients()[2]
t.eq(bid, 2, "second client id")
expect_stats(b:stats(), { bytes_in = 300, bytes_out = 1000, queued = 0 }, "client b")
expect_stats(srv:stats(bid), { bytes_in = 1000, bytes_out = 300, queued = 0 }, "server stats(b)")
expect_stats(srv:stats(), { accepted = 2, active = 2, bytes_in = 2000, bytes_out = 600, queued = 0 },
             "server totals, two clients")

-- 3. queued: the server stops reading b; b sends 4 MiB in one send. What
-- send accepted is either on its way (bytes_out) or queued.
t.eq(srv:pause(bid), true, "pause b")
local BIG = 4 * 1024 * 1024
local base_out = b:stats().bytes_out
t.eq(b:send(pat:at(0, BIG)), false, "4 MiB send is above high water")
local st = b:stats()
t.eq(st.bytes_out + st.queued, base_out + BIG, "bytes_out + queued after a 4 MiB send")
t.truthy(st.queued > 0, "something is queued")
F.sleep(200)
st = b:stats()
t.truthy(st.queued > 0, "still queued while the peer is paused")
t.eq(st.bytes_out + st.queued, base_out + BIG, "bytes_out + queued while paused")
t.eq(srv:stats(bid).bytes_in, 1000, "server bytes_in for b while paused")
t.eq(srv:resume(bid), true, "resume b")
F.wait(function() return got[bid] == 1000 + BIG end, 20000, "4 MiB at the server")
F.wait(function() return b:stats().queued == 0 end, 5000, "b's queue empties")
expect_stats(b:stats(), { bytes_in = 300, bytes_out = 1000 + BIG, queued = 0 }, "client b after 4 MiB")
expect_stats(srv:stats(bid), { bytes_in = 1000 + BIG, bytes_out = 300, queued = 0 }, "server stats(b) after 4 MiB")

-- 4. Server-side queued: b stops reading, the server sends 4 MiB.
b:pause()
local sbase = srv:stats(bid).bytes_out
t.eq(srv:send(bid, pat:at(0, BIG)), false, "server 4 MiB send")
F.sleep(200)
local ss = srv:stats(bid)
t.truthy(ss.queued > 0, "server queue while b is paused")
t.eq(ss.bytes_out + ss.queued, sbase + BIG, "server bytes_out + queued")
t.eq(srv:stats().queued, ss.queued, "server total queued")
b:resume()
F.wait(function() return b_in == 300 + BIG end, 20000, "4 MiB at b")
F.wait(function() return srv:stats(bid).queued == 0 end, 5000, "server queue empties")
expect_stats(srv:stats(bid), { bytes_in = 1000 + BIG, bytes_out = 300 + BIG, queued = 0 }, "server stats(b) at the end")
expect_stats(b:stats(), { bytes_in = 300 + BIG, bytes_out = 1000 + BIG, queued = 0 }, "client b at the end")

-- 5. One client leaves: active drops, accepted stays; stats(ended id) is
-- nil, message; the ended socket keeps its counts.
a:disconnect()
F.wait(function() return srvlog:count("disconnected") == 1 and alog:count("disconnected") == 1 end,
       5000, "a disconnected")
local sa = srv:stats()
t.eq(sa.accepted, 2, "accepted after one left")
t.eq(sa.active, 1, "active after one left")
t.eq(sa.bytes_in, 2000 + BIG, "server bytes_in keeps the ended client's bytes")
t.eq(sa.bytes_out, 600 + BIG, "server bytes_out keeps the ended client's bytes")
local r, msg = srv:stats(aid)
t.eq(r, nil, "stats(ended id)")
t.eq(msg, ("unknown client id %d"):format(aid), "stats(ended id) message")
r, msg = srv:stats(12345)
t.eq(r, nil, "stats(unknown id)")
t.eq(msg, "unknown client id 12345", "stats(unknown id) message")
t.raises({ "bad argument #1 to 'stats'" }, function() return srv:stats("x") end)
expect_stats(a:stats(), { bytes_in = 300, bytes_out = 1000, queued = 0 }, "client a after its end")

srv:stop()
F.wait(function() return blog:count("disconnected") == 1 end, 5000, "b disconnected by stop()")
F.settle()
t.eq(srv:stats().accepted, 2, "accepted after stop()")
t.eq(srv:stats().active, 0, "active after stop()")
t.eq(srv:stats().bytes_in, 2000 + BIG, "bytes_in since the server was made")
t.eq(srv:stats().bytes_out, 600 + BIG, "bytes_out since the server was made")
t.eq(alog:count("error") + blog:count("error") + srvlog:count("error"), 0, "errors")
