-- Endpoints in messages (issue 8, item 7): an IPv6 address in brackets
-- once, "[::1]" accepted as the IPv6 address, and control bytes of a host
-- escaped. No name here reaches a resolver.
local t = require "testlib"
local r = require "resolve.common"

local refused = t.closed_port()
t.same({ r.try("127.0.0.1", refused) },
  { "error", ("connect to 127.0.0.1:%d failed: Connection refused"):format(refused), "ECONNREFUSED" },
  "IPv4")

if HAVE_IPV6 then
  local port6 = t.closed_port("::1")
  local expected = ("connect to [::1]:%d failed: Connection refused"):format(port6)
  local _, msg = r.try("::1", port6)
  t.eq(msg, expected, "::1")
  _, msg = r.try("[::1]", port6)
  t.eq(msg, expected, "[::1] is the IPv6 address, shown in brackets once")

  local srv, port = r.server("[::1]")
  t.eq(tostring(srv), ("net.TCPServer (listening [::1]:%d, 0 clients)"):format(port), "tostring")
  t.same({ r.try("[::1]", port) }, { "connected", "::1" }, "connect to [::1]")
  t.same({ r.try("::1", port) }, { "connected", "::1" }, "connect to ::1")
  srv:stop()
  t.settle()
else
  print("resolve/endpoints.lua: no IPv6 loopback here: the ::1 checks are skipped")
end

-- Brackets hold an IPv6 address, never a name or an IPv4 address: these
-- fail at once, without a lookup.
local nonames = "nodename nor servname provided, or not known"
local _, msg = r.try("[127.0.0.1]", refused)
t.eq(msg, ("connect to [127.0.0.1]:%d failed: %s"):format(refused, nonames), "[127.0.0.1]")
_, msg = r.try("[localhost]", 80)
t.eq(msg, "connect to [localhost]:80 failed: " .. nonames, "[localhost]")

-- Control bytes and backslashes are escaped: a message is one line.
_, msg = r.try("[::1\n]", 80)
t.eq(msg, "connect to [::1\\n]:80 failed: " .. nonames, "newline")
_, msg = r.try("[\1\t\r\127\\]", 80)
t.eq(msg, "connect to [\\x01\\t\\r\\x7f\\\\]:80 failed: " .. nonames, "control bytes")
_, msg = r.try("[" .. ("\1"):rep(250) .. "]", 80)
t.eq(msg, "connect to [" .. ("\\x01"):rep(250) .. "]:80 failed: " .. nonames, "a long escaped host is whole")
