-- Names through the system resolver (issue 8, item 8), inside the test's
-- namespaces: DNS at 127.0.0.53 (svc.lnet.test -> 127.0.0.1,
-- six.lnet.test -> ::1), "search lnet.test", /etc/hosts with
-- made-up-lnet-host -> 127.0.0.1, nsswitch "hosts: files dns".
local t = require "testlib"
local net = require "net"
local r = require "resolve.common"

local srv, port = r.server("127.0.0.1")

-- DNS (an A record).
t.same({ r.try("svc.lnet.test", port) }, { "connected", "127.0.0.1" }, "svc.lnet.test")
t.truthy(dns_queries("svc.lnet.test") > 0, "the DNS server of resolv.conf was asked")

-- The search domain of resolv.conf.
local before = dns_queries("svc.lnet.test")
t.same({ r.try("svc", port) }, { "connected", "127.0.0.1" }, "svc (search lnet.test)")
t.truthy(dns_queries("svc.lnet.test") > before, "svc was looked up as svc.lnet.test")

-- /etc/hosts, before DNS (nsswitch: files dns).
t.same({ r.try("made-up-lnet-host", port) }, { "connected", "127.0.0.1" }, "/etc/hosts")
t.eq(dns_queries("made-up-lnet-host"), 0, "a name in /etc/hosts is not asked of DNS")
t.eq(dns_queries("made-up-lnet-host.lnet.test"), 0, "nor with the search domain")

-- An AAAA record.
if HAVE_IPV6 then
  local srv6, port6 = r.server("::1")
  t.same({ r.try("six.lnet.test", port6) }, { "connected", "::1" }, "six.lnet.test (AAAA)")
  srv6:stop()
else
  print("resolve/names.lua: no IPv6 loopback here: the AAAA check is skipped")
end

-- NXDOMAIN: connect() returns at once; then error names the host (the code
-- is the getaddrinfo name), and nothing else fires.
local log = t.log("nxdomain")
t.run(10000, function(done)
  local c = net.TCPSocket()
  local t0 = net.now()
  t.eq(t.call(c, "connect", "nope.lnet.test", 80, {
    connected = log:fn("connected"),
    disconnected = log:fn("disconnected"),
    error = log:fn("error", function() t.after(100, done) end),
  }), true, "connect() result")
  t.truthy(net.now() - t0 < 100, "connect() does not wait for the resolver")
end, { keep = true })
log:expect({ "error" })
local ev = log:get("error")
t.eq(ev[1], "connect to nope.lnet.test:80 failed: nodename nor servname provided, or not known",
  "NXDOMAIN message")
if ev[2] ~= nil then t.eq(ev[2], "EAI_NONAME", "NXDOMAIN code") end
local what, msg

-- A host with control bytes reaches the resolver; the message escapes them.
what, msg = r.try("bad\nname\1.lnet.test", 80)
t.eq(what, "error", "bad name")
t.startswith(msg, "connect to bad\\nname\\x01.lnet.test:80 failed: ", "escaped")
t.truthy(not msg:find("[%c]"), "no control byte in " .. t.show(msg))

-- listen() on a name binds what it resolves to.
local named, nport = r.server("svc.lnet.test")
local host = named:address()
t.truthy(host == "svc.lnet.test" or host == "127.0.0.1", "address() after listen on a name: " .. t.show(host))
t.eq(tostring(named), ("net.TCPServer (listening svc.lnet.test:%d, 0 clients)"):format(nport))
t.same({ r.try("127.0.0.1", nport) }, { "connected", "127.0.0.1" }, "bound to 127.0.0.1")
named:stop()

-- More lookups at once than a context has worker threads: all answered,
-- each once.
local n, connected, errors = 12, 0, {}
t.run(15000, function(done)
  for i = 1, n do
    local c = net.TCPSocket()
    c:connect(i % 2 == 0 and "svc" or "svc.lnet.test", port, {
      connected = function()
        connected = connected + 1
        c:close()
        if connected + #errors == n then done() end
      end,
      error = function(m)
        errors[#errors + 1] = m
        if connected + #errors == n then done() end
      end,
    })
  end
end, { keep = true })
t.same(errors, {}, "errors")
t.eq(connected, n, "connected")

srv:stop()
t.settle()
