-- The lnet client against openssl s_server (started by tests/tls.cc with
-- the certificate or options the case needs). TLS.case picks the case.
local net = require "net"
local t = require "testlib"
local L = require "tls.tlslib"

local A = L.args
local port = A.port
local case = A.case

local function refused(r, reason, code, what)
  t.eq(r.connected, nil, what .. ": connected must not fire")
  t.eq(#r.events, 1, what .. ": only 'error' fires")
  t.has(r.err, "TLS handshake with ", what)
  t.has(r.err, reason, what)
  if code then t.eq(r.code, code, what .. " code") end
end

if case == "good" then
  local ctx = L.client_ctx()
  -- By IP literal: the IP SAN is checked, no SNI is sent.
  local r = L.attempt("127.0.0.1", port, { tls = ctx }, "ping\n", 5)
  t.eq(r.err, nil, "by IP")
  t.eq(r.info.protocol, "TLSv1.3", "protocol")
  t.truthy(#r.info.cipher > 0, "cipher")
  t.eq(r.info.verified, true, "verified")
  t.eq(r.info.servername, nil, "no SNI for an IP literal")
  t.eq(r.info.peer.subject, "O=lnet test,CN=cn-only.test", "subject")
  t.eq(r.info.peer.issuer, "O=lnet test,CN=lnet test CA", "issuer")
  t.same(r.info.peer.san, { "localhost", "*.wild.test", "127.0.0.1", "::1" }, "san")
  t.eq(r.info.peer.fingerprint, A.fingerprint, "fingerprint as openssl x509 -fingerprint -sha256")
  t.eq(math.type(r.info.peer.not_before), "integer", "not_before")
  t.truthy(r.info.peer.not_after > os.time() and r.info.peer.not_before <= os.time() + 60, "dates")
  t.eq(r.data, "gnip\n", "echo through s_server -rev")
  -- By name: the DNS SAN is checked and the name is sent as SNI.
  r = L.attempt("localhost", port, { tls = ctx }, "x\n", 2)
  t.eq(r.err, nil, "by name")
  t.eq(r.info.servername, "localhost", "SNI sent")
  -- A wildcard covers one label.
  r = L.attempt("127.0.0.1", port, { tls = ctx, servername = "a.wild.test" })
  t.eq(r.err, nil, "one label under *.wild.test")
  t.eq(r.info.servername, "a.wild.test", "servername is the SNI")
  -- servername = false: no SNI, the host given to connect is still checked.
  r = L.attempt("localhost", port, { tls = ctx, servername = false })
  t.eq(r.err, nil, "servername = false")
  t.eq(r.info.servername, nil, "no SNI with servername = false")
elseif case == "wrong_host" then
  local ctx = L.client_ctx()
  refused(L.attempt("127.0.0.1", port, { tls = ctx, servername = "other.test" }),
    "certificate verify failed (hostname mismatch)", "TLS_VERIFY", "other.test")
  -- The subject's CN is never matched; a wildcard never covers two labels.
  refused(L.attempt("127.0.0.1", port, { tls = ctx, servername = "cn-only.test" }),
    "(hostname mismatch)", "TLS_VERIFY", "the CN")
  refused(L.attempt("127.0.0.1", port, { tls = ctx, servername = "a.b.wild.test" }),
    "(hostname mismatch)", "TLS_VERIFY", "two labels under a wildcard")
elseif case == "ip_mismatch" then
  -- alt.pem names only DNS:alt.test: 127.0.0.1 is not in it.
  local ctx = L.client_ctx()
  refused(L.attempt("127.0.0.1", port, { tls = ctx }), "certificate verify failed (IP address mismatch)",
    "TLS_VERIFY", "IP SAN mismatch")
  -- servername = false sends no SNI and still checks the host given to connect.
  refused(L.attempt("127.0.0.1", port, { tls = ctx, servername = false }), "(IP address mismatch)",
    "TLS_VERIFY", "servername = false")
  -- ... and by name it matches.
  local r = L.attempt("127.0.0.1", port, { tls = ctx, servername = "alt.test" })
  t.eq(r.err, nil, "alt.test")
elseif case == "expired" then
  refused(L.attempt("127.0.0.1", port, { tls = L.client_ctx() }),
    "certificate verify failed (certificate has expired)", "TLS_VERIFY", "expired")
elseif case == "unknown_ca" then
  refused(L.attempt("localhost", port, { tls = L.client_ctx() }),
    "certificate verify failed (unable to get local issuer certificate)", "TLS_VERIFY", "unknown CA")
  -- The system trust store (tls = true) does not know the test CA either.
  refused(L.attempt("localhost", port, { tls = true }), "certificate verify failed", "TLS_VERIFY",
    "tls = true")
elseif case == "self_signed" then
  refused(L.attempt("localhost", port, { tls = L.client_ctx() }),
    "certificate verify failed (self-signed certificate)", "TLS_VERIFY", "self-signed")
  -- insecure = true is the way out, and says it did not verify.
  local r = L.attempt("localhost", port, { tls = net.TLSContext { insecure = true } }, "abc\n", 4)
  t.eq(r.err, nil, "insecure connects")
  t.eq(r.info.verified, false, "insecure: verified is false")
  t.eq(r.data, "cba\n", "insecure: data flows")
elseif case == "old_version" then
  local r = L.attempt("127.0.0.1", port, { tls = L.client_ctx() })
  refused(r, "", "TLS_HANDSHAKE", "TLS 1.1 server")
  t.match(r.err, "version", "the reason names the protocol version")
  -- With min_version = "1.1" and a lower security level it connects, so the
  -- refusal above was the default minimum.
  r = L.attempt("127.0.0.1", port, { tls = L.client_ctx { min_version = "1.1",
    ciphers = "DEFAULT:@SECLEVEL=0" } })
  t.eq(r.err, nil, "min_version 1.1")
  t.eq(r.info.protocol, "TLSv1.1", "protocol 1.1")
elseif case == "no_cipher" then
  -- s_server offers one TLS 1.2 cipher; the client accepts only another.
  local r = L.attempt("localhost", port, { tls = L.client_ctx { max_version = "1.2",
    ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305" } })
  refused(r, "handshake failure", "TLS_HANDSHAKE", "no shared cipher")
  r = L.attempt("localhost", port, { tls = L.client_ctx { max_version = "1.2",
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256" } })
  t.eq(r.err, nil, "the shared one")
  t.eq(r.info.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256", "cipher")
  t.eq(r.info.protocol, "TLSv1.2", "protocol")
elseif case == "sni" then
  -- s_server -servername localhost -servername_fatal: another name is fatal.
  local ctx = L.client_ctx()
  local r = L.attempt("localhost", port, { tls = ctx })
  t.eq(r.err, nil, "SNI localhost accepted")
  refused(L.attempt("127.0.0.1", port, { tls = ctx, servername = "wrong.test" }),
    "unrecognized name", "TLS_HANDSHAKE", "SNI refused by the server")
elseif case == "alpn" then
  local r = L.attempt("localhost", port, { tls = L.client_ctx { alpn = { "x-none", "h2", "http/1.1" } } })
  t.eq(r.err, nil, "alpn")
  t.eq(r.info.alpn, "h2", "ALPN chosen by s_server -alpn h2")
  r = L.attempt("localhost", port, { tls = L.client_ctx() })
  t.eq(r.info.alpn, nil, "no ALPN offered")
elseif case == "truncated" then
  -- The peer (s_server, killed) closes TCP without close_notify.
  -- Nothing is sent after the kill (bytes to a dead peer get a reset).
  -- The kill waits 300 ms: 'connected' fires as our Finished leaves, and a
  -- peer killed before it has read it closes with unread bytes, which the
  -- kernel turns into a reset instead of a FIN (not a truncation).
  local r = L.attempt("localhost", port, { tls = L.client_ctx() }, false, nil, nil, function()
    net.setTimeout(function() os.execute("kill -9 " .. math.tointeger(A.pid)) end, 300)
  end)
  t.eq(r.connected, true, "connected")
  t.eq(r.err ~= nil, true, "an abnormal end")
  t.has(r.err, "TLS connection truncated (no close_notify)", "truncation")
  t.eq(r.code, "TLS_TRUNCATED", "code")
  t.same(r.events, { "connected", "error", "disconnected" }, "events")
else
  error("unknown case " .. tostring(case))
end
