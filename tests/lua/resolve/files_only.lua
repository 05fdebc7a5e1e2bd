-- nsswitch.conf is honoured (issue 8, item 8): with "hosts: files", a name
-- only DNS knows does not resolve and DNS is never asked; /etc/hosts still
-- answers.
local t = require "testlib"
local r = require "resolve.common"

local srv, port = r.server("127.0.0.1")
t.same({ r.try("made-up-lnet-host", port) }, { "connected", "127.0.0.1" }, "/etc/hosts")
local what, msg = r.try("svc.lnet.test", port)
t.eq(what, "error", "svc.lnet.test with hosts: files")
t.eq(msg, ("connect to svc.lnet.test:%d failed: nodename nor servname provided, or not known"):format(port), "message")
t.eq(dns_queries("svc.lnet.test"), 0, "DNS was not asked")
srv:stop()
t.settle()
