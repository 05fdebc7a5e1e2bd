-- Answers for the same name are delivered in the order the lookups were
-- started, whichever worker finishes first. The fake DNS server answers the
-- first A query for first.lnet.test 800 ms late and the later ones at once,
-- so the connect's lookup below finishes before the listen's: without the
-- order, the connect would find nothing listening ("Connection refused").
-- (The case runs in its own network namespace: port 8899 is free there.)
local t = require "testlib"
local net = require "net"

local PORT = 8899
local log = t.log("pair")
local srv = net.TCPServer()
local client = net.TCPSocket()
local t0 = net.now()
local connected_at
t.run(10000, function(done)
  -- Listen on the name (its lookup is the first: answered 800 ms late) ...
  t.call(srv, "listen", "first.lnet.test", PORT, {
    started = log:fn("started"),
    connected = log:fn("srv connected"),
    error = log:fn("srv error"),
  })
  -- ... and connect to it at once (its lookup is answered first).
  t.call(client, "connect", "first.lnet.test", PORT, {
    connected = log:fn("connected", function()
      connected_at = net.now()
      client:close()
      t.after(50, function() srv:stop(); done() end)
    end),
    error = log:fn("error", function() srv:stop(); done() end),
  })
end)
t.eq(log:count("error"), 0, "the connect was not refused")
t.eq(log:count("started"), 1, "started")
t.eq(log:count("connected"), 1, "client connected")
t.eq(log:count("srv connected"), 1, "server connected")
t.truthy(dns_queries("first.lnet.test") >= 2, "both lookups asked DNS")
t.between(connected_at - t0, 700, 5000, "ms until connected (the connect waited for the listen's answer)")
