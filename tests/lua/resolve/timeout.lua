-- The connect timeout bounds name resolution too, and a lookup that never
-- gets an answer (DNS silent for silent.lnet.test, resolv.conf timeout:5
-- attempts:2: 10 s or more without the timeout) never holds the loop once
-- the socket gave up or closed.
local t = require "testlib"
local net = require "net"

-- timeout = 300 ms: error("... timed out") after about 300 ms.
local log = t.log("timeout")
local t0 = net.now()
local failed_at
t.run(5000, function(done)
  local c = net.TCPSocket()
  t.call(c, "connect", "silent.lnet.test", 80, {
    connected = log:fn("connected"),
    disconnected = log:fn("disconnected"),
    error = log:fn("error", function(msg)
      failed_at = net.now()
      t.eq(msg, "connect to silent.lnet.test:80 failed: timed out", "message")
      t.after(100, done)
    end),
  }, { timeout = 300 })
end)
log:expect({ "error" })
t.between(failed_at - t0, 250, 3000, "ms until the timeout")
t.truthy(dns_queries("silent.lnet.test") > 0, "the lookup reached DNS")
t.between(net.now() - failed_at, 0, 2500, "ms until the loop was idle after the timeout")

-- close() while resolving: nothing fires, and the loop does not wait for
-- the worker still inside getaddrinfo.
local quiet = t.log("closed")
local c = net.TCPSocket()
c:connect("silent.lnet.test", 81, {
  connected = quiet:fn("connected"), error = quiet:fn("error"),
  disconnected = quiet:fn("disconnected"),
})
local asked = dns_queries("silent.lnet.test")
local limit = net.now() + 3000
while dns_queries("silent.lnet.test") == asked do
  t.truthy(net.now() < limit, "the second lookup reached DNS")
  local tick = net.setTimeout(function() end, 10)
  net.loop("once")
  net.clearTimeout(tick)
end
c:close()
local closed_at = net.now()
t.eq(net.loop(), false, "net.loop() after close(): nothing active")
t.between(net.now() - closed_at, 0, 1000, "ms net.loop() ran after close()")
t.eq(#quiet.events, 0, "callbacks after close(): " .. t.show(quiet:names()))
