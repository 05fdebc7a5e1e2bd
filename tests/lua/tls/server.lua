-- lnet TLS servers against real clients (openssl s_client, Python ssl) and
-- lnet clients. TLS.case picks the case (tests/tls.cc).
local net = require "net"
local t = require "testlib"
local L = require "tls.tlslib"

local A = L.args
local case = A.case
local peer_py = A.source .. "/tests/tls/peer.py"

-- A TLS echo server; returns the server, its port and a record of events.
local function echo_server(ctx, options, extra)
  local ev = { connected = {}, disconnected = {}, tls_errors = {}, info = {} }
  local srv
  local cbs = {
    connected = function(id)
      ev.connected[#ev.connected + 1] = id
      ev.info[id] = srv:tlsinfo(id)
    end,
    data = function(id, d) srv:send(id, d) end,
    disconnected = function(id, reason, code)
      ev.disconnected[#ev.disconnected + 1] = { id = id, reason = reason, code = code }
    end,
    tls_error = function(msg, ip, port, code)
      ev.tls_errors[#ev.tls_errors + 1] = { msg = msg, ip = ip, port = port, code = code }
    end,
    error = function(m) error("server error: " .. m) end,
  }
  for k, v in pairs(extra or {}) do cbs[k] = v end
  local o = { tls = ctx }
  for k, v in pairs(options or {}) do o[k] = v end
  local port
  srv, port = t.listen(cbs, "127.0.0.1", o)
  return srv, port, ev
end

if case == "s_client" then
  local srv, port, ev = echo_server(L.server_ctx())
  local p = L.spawn_input(L.openssl_client(port, "-quiet"), "hello over tls\n")
  L.wait(function() return L.output(p):find("hello over tls", 1, true) end, 15000, "echo to s_client")
  t.eq(#ev.connected, 1, "one client")
  local info = ev.info[ev.connected[1]]
  t.eq(info.protocol, "TLSv1.3", "protocol")
  t.eq(info.servername, "localhost", "the SNI s_client sent")
  t.eq(info.peer, nil, "no client certificate")
  t.eq(info.verified, false, "nothing verified without request_cert")
  L.stop(p)
  L.wait(function() return #ev.disconnected == 1 end, 10000, "disconnected")
  srv:stop()
  t.settle()
elseif case == "mutual" then
  local ctx = L.server_ctx { ca = L.path("ca.pem"), require_cert = true }
  local srv, port, ev = echo_server(ctx)
  -- With a client certificate: accepted, and tlsinfo shows it.
  local with = ("-cert %s -key %s -quiet"):format(L.path("client.pem"), L.path("client.key"))
  local p1 = L.spawn_input(L.openssl_client(port, with), "mutual\n")
  L.wait(function() return L.output(p1):find("mutual", 1, true) end, 15000, "echo with a client certificate")
  t.eq(#ev.connected, 1, "accepted")
  local info = ev.info[ev.connected[1]]
  t.eq(info.verified, true, "client certificate verified")
  t.has(info.peer.subject, "CN=lnet client", "client subject")
  t.same(info.peer.san, { "client.test" }, "client san")
  -- Without one: refused; no id, no connected/disconnected, tls_error and
  -- tls_failed say so; the server stays up.
  local p2 = L.spawn_input(L.openssl_client(port, "-quiet"), "nocert\n")
  L.wait(function() return #ev.tls_errors == 1 end, 15000, "tls_error for the client without a certificate")
  local te = ev.tls_errors[1]
  t.has(te.msg, "TLS handshake with 127.0.0.1:", "tls_error message")
  t.match(te.msg, "certificate", "the reason names the certificate")
  t.eq(te.ip, "127.0.0.1", "tls_error ip")
  t.eq(math.type(te.port), "integer", "tls_error port")
  t.eq(te.code, "TLS_HANDSHAKE", "tls_error code")
  t.eq(srv:stats().tls_failed, 1, "stats().tls_failed")
  t.eq(#ev.connected, 1, "the refused client never got an id")
  t.eq(#ev.disconnected, 0, "nor a disconnected: " .. t.show(ev.disconnected[1] and ev.disconnected[1].reason))
  t.eq(#srv:clients(), 1, "clients() lists only the accepted one")
  -- Still serving.
  local p3 = L.spawn_input(L.openssl_client(port, with), "again\n")
  L.wait(function() return L.output(p3):find("again", 1, true) end, 15000, "a later client is served")
  t.eq(#ev.connected, 2, "second accepted client")
  L.stop(p1) L.stop(p2) L.stop(p3)
  srv:stop()
  t.settle()
elseif case == "unwrap" then
  -- lnet's disconnect() sends close_notify: Python's unwrap() succeeds.
  local srv
  srv = select(1, echo_server(L.server_ctx(), nil, {
    connected = function(id)
      srv:send(id, "bye\n")
      srv:disconnect(id)
    end,
  }))
  local _, port = srv:address()
  local p = L.spawn(("python3 %s unwrap %d %s"):format(peer_py, port, L.path("ca.pem")))
  L.wait(function() return L.output(p):find("UNWRAP", 1, true) end, 20000, "python unwrap")
  t.has(L.output(p), "UNWRAP OK bye", "python ssl unwrap() after lnet's disconnect()")
  srv:stop()
  t.settle()
elseif case == "server_truncation" then
  local srv, port, ev = echo_server(L.server_ctx())
  local p = L.spawn(("python3 %s truncate %d %s"):format(peer_py, port, L.path("ca.pem")))
  L.wait(function() return #ev.disconnected == 1 end, 20000, "disconnected")
  t.has(L.output(p), "CLOSED hi", "the python peer")
  t.eq(ev.disconnected[1].reason, "TLS connection truncated (no close_notify)", "reason")
  t.eq(ev.disconnected[1].code, "TLS_TRUNCATED", "code")
  srv:stop()
  t.settle()
elseif case == "client_close_notify" then
  -- A peer's close_notify is an orderly end (s_client sends one at stdin EOF
  -- without -quiet/-ign_eof); and a plaintext client that never speaks TLS is
  -- refused after handshake_timeout.
  local srv, port, ev = echo_server(L.server_ctx(), { handshake_timeout = 300 })
  local p = L.spawn_input(L.openssl_client(port, ""), "")
  L.wait(function() return #ev.disconnected == 1 end, 15000, "s_client's orderly end")
  t.eq(ev.disconnected[1].reason, nil, "close_notify: orderly (no reason)")
  L.stop(p)
  -- Never completes the handshake.
  local c = net.TCPSocket()
  local t0, t_end = net.now(), nil
  c:connect("127.0.0.1", port, { disconnected = function() t_end = net.now() end,
    error = function() t_end = t_end or net.now() end })
  L.wait(function() return #ev.tls_errors == 1 end, 10000, "handshake_timeout")
  local te = ev.tls_errors[1]
  t.has(te.msg, "failed: handshake timed out", "handshake timeout reason")
  t.eq(te.code, "TLS_HANDSHAKE_TIMEOUT", "code")
  L.wait(function() return t_end ~= nil end, 5000, "the client sees the close")
  t.between(t_end - t0, 250, 5000, "closed at handshake_timeout")
  t.eq(#ev.connected, 1, "no connected for it")
  t.eq(srv:stats().tls_failed, 1, "tls_failed")
  srv:stop()
  t.settle()
elseif case == "stop_handshaking" then
  -- server:stop() closes connections still in their handshake at once.
  local srv, port, ev = echo_server(L.server_ctx())
  local c = net.TCPSocket()
  local connected, ended = false, nil
  c:connect("127.0.0.1", port, { connected = function() connected = true end,
    disconnected = function() ended = net.now() end })
  L.wait(function() return connected and srv:stats().accepted == 1 end, 5000, "raw client connected")
  local t0 = net.now()
  srv:stop()
  L.wait(function() return ended ~= nil end, 5000, "closed by stop()")
  t.between(ended - t0, 0, 1000, "at once")
  t.eq(#ev.connected, 0, "no connected")
  t.eq(#ev.disconnected, 0, "no disconnected")
  t.eq(#ev.tls_errors, 0, "stop() is not a TLS failure")
  t.settle()
elseif case == "sni" then
  local alt = net.TLSContext { cert = L.path("alt.pem"), key = L.path("alt.key") }
  local srv, port, ev = echo_server(L.server_ctx(), { sni = { ["ALT.test"] = alt } })
  local ctx = L.client_ctx()
  local r = L.attempt("127.0.0.1", port, { tls = ctx, servername = "alt.test" })
  t.eq(r.err, nil, "alt.test")
  t.same(r.info.peer.san, { "alt.test" }, "the sni context's certificate (case-insensitive)")
  r = L.attempt("localhost", port, { tls = ctx })
  t.eq(r.err, nil, "localhost")
  t.same(r.info.peer.san, { "localhost", "*.wild.test", "127.0.0.1", "::1" }, "an unknown name: the tls context")
  r = L.attempt("127.0.0.1", port, { tls = ctx })
  t.eq(r.err, nil, "no SNI: the tls context")
  t.eq(ev.info[ev.connected[1]].servername, "alt.test", "server's tlsinfo servername")
  srv:stop()
  t.settle()
else
  error("unknown case " .. tostring(case))
end
