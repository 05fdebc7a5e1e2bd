-- Cosockets over TLS (tests/co.cc sets CERTS: a directory made by
-- tests/tls/make-certs.sh): sock:sslhandshake in OpenResty's shape over
-- client:starttls, against lnet TLS servers; connect's tls option.
local net = require "net"
local co = require "net.co"
package.path = os.getenv("LNET_SOURCE") .. "/tests/lua/?.lua"
local t = require "co.colib"

local dir = CERTS or error("CERTS (the certificates' directory) is not set")
local function path(name) return dir .. "/" .. name end

local ca_ctx = net.TLSContext { ca = path("ca.pem") }
local function server_ctx(name)
  return net.TLSContext { cert = path(name .. ".pem"), key = path(name .. ".key") }
end

-- A TLS line-echo server ("echo: LINE\r\n" per line) with the given
-- certificate; counts accepted connections.
local servers = {}
local function tls_server(cert)
  local srv = net.TCPServer()
  local rec = { accepted = 0, srv = srv }
  local bufs = {}
  srv:listen("127.0.0.1", 0, {
    connected = function(id) rec.accepted = rec.accepted + 1; bufs[id] = "" end,
    data = function(id, d)
      local b = bufs[id] .. d
      for line in b:gmatch("(.-)\r?\n") do srv:send(id, "echo: " .. line .. "\r\n") end
      bufs[id] = b:match("[^\n]*$")
    end,
    disconnected = function(id) bufs[id] = nil end,
  }, { tls = server_ctx(cert), handshake_timeout = 5000 })
  local _, port = srv:address()
  rec.port = port
  servers[#servers + 1] = srv
  return rec
end

local good = tls_server("server")      -- CA-signed: localhost, 127.0.0.1
local unknown = tls_server("unknown")  -- signed by a CA nobody trusts
local self_signed = tls_server("self")

local function echo(sock, what)
  t.eq(sock:send(what .. "\r\n"), #what + 2, "send over TLS")
  local line, err = sock:receive()
  t.eq(err, nil, "receive over TLS")
  t.eq(line, "echo: " .. what, "the echo over TLS")
end

t.run(30000, function()
  -- The OpenResty pattern: connect in plaintext, then sslhandshake; the
  -- test CA from co.tcp's tls_context, server_name "localhost".
  local sock = co.tcp { tls_context = ca_ctx }
  sock:settimeout(10000)
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  local sess, err, code = sock:sslhandshake(nil, "localhost", true)
  t.eq(err, nil, "sslhandshake")
  t.eq(code, nil, "no code")
  t.eq(tostring(sess), "net.co.SSLSession", "a session object")
  t.eq(sess.tlsinfo.verified, true, "verified")
  t.eq(sess.tlsinfo.servername, "localhost", "SNI sent")
  t.truthy(sess.tlsinfo.protocol:match("^TLSv1%.[23]$"), "protocol")
  echo(sock, "hello")
  -- Again on the same connection: no second handshake, the session.
  t.eq(tostring(sock:sslhandshake(sess, "localhost")), "net.co.SSLSession", "already secured")
  sock:close()

  -- reused_session == false: true instead of a session. ssl_verify nil
  -- checks too (lnet is secure by default; OpenResty's default is off).
  sock = co.tcp { tls_context = ca_ctx }
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  t.eq(sock:sslhandshake(false, "localhost"), true, "sslhandshake(false, ...) gives true")
  echo(sock, "two")
  sock:close()

  -- No server_name: the host given to connect is checked (127.0.0.1 is an IP SAN).
  sock = co.tcp { tls_context = ca_ctx }
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  sess = sock:sslhandshake()
  t.eq(sess and sess.tlsinfo.verified, true, "the IP literal checked")
  echo(sock, "by address")
  sock:close()

  -- The context as the fifth argument.
  sock = co.tcp()
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  sess, err = sock:sslhandshake(nil, "localhost", true, false, { tls_context = ca_ctx })
  t.eq(err, nil, "sslhandshake with the context as the 5th argument")
  echo(sock, "five")
  sock:close()

  -- Verification on by default with the system store, which does not know
  -- the test CA: nil, the reason, TLS_VERIFY; the socket is closed.
  sock = co.tcp()
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  sess, err, code = sock:sslhandshake(nil, "localhost", true)
  t.eq(sess, nil, "verify failure: nil")
  t.has(err, "certificate verify failed (unable to get local issuer certificate)", "verify failure message")
  t.has(err, "TLS handshake with", "verify failure message names the handshake")
  t.eq(code, "TLS_VERIFY", "verify failure code")
  t.eq(select(2, sock:send("x")), "closed", "closed after a failed handshake")
  t.eq(select(2, sock:receive()), "closed", "receive after a failed handshake")

  -- An unknown CA with the test CA's context: refused.
  sock = co.tcp { tls_context = ca_ctx }
  t.eq(sock:connect("127.0.0.1", unknown.port), 1, "connect")
  sess, err, code = sock:sslhandshake(nil, "localhost")
  t.eq(sess, nil, "unknown CA refused")
  t.has(err, "certificate verify failed", "unknown CA message")
  t.eq(code, "TLS_VERIFY", "unknown CA code")

  -- ssl_verify = false: an insecure context accepts the unknown CA and the
  -- self-signed certificate (and says it verified nothing).
  for _, srv in ipairs({ unknown, self_signed }) do
    sock = co.tcp()
    t.eq(sock:connect("127.0.0.1", srv.port), 1, "connect")
    sess, err = sock:sslhandshake(nil, "localhost", false)
    t.eq(err, nil, "ssl_verify = false accepts it")
    t.eq(sess.tlsinfo.verified, false, "not verified")
    echo(sock, "insecure")
    sock:close()
  end
  -- ... and the self-signed one is refused when verifying.
  sock = co.tcp()
  t.eq(sock:connect("127.0.0.1", self_signed.port), 1, "connect")
  sess, err, code = sock:sslhandshake(nil, "localhost", true)
  t.eq(sess, nil, "self-signed refused")
  t.has(err, "certificate verify failed (self-signed certificate)", "self-signed message")
  t.eq(code, "TLS_VERIFY", "self-signed code")

  -- server_name mismatch: the name checked is server_name.
  sock = co.tcp { tls_context = ca_ctx }
  t.eq(sock:connect("127.0.0.1", good.port), 1, "connect")
  sess, err, code = sock:sslhandshake(nil, "wrong.test", true)
  t.eq(sess, nil, "name mismatch refused")
  t.has(err, "certificate verify failed (hostname mismatch)", "name mismatch message")
  t.eq(code, "TLS_VERIFY", "name mismatch code")

  -- connect's tls option passes through; sslhandshake after it does no
  -- second handshake.
  sock = co.tcp()
  t.eq(sock:connect("localhost", good.port, { tls = ca_ctx }), 1, "connect with tls")
  echo(sock, "connect tls")
  t.eq(sock:sslhandshake(false, "localhost"), true, "sslhandshake after connect's tls")
  echo(sock, "still")
  sock:close()
  sock = co.tcp()
  local ok
  ok, err, code = sock:connect("localhost", good.port, { tls = true })
  t.eq(ok, nil, "connect with tls = true (the system store) fails")
  t.has(err, "certificate verify failed (unable to get local issuer certificate)", "connect tls message")
  t.eq(code, "TLS_VERIFY", "connect tls code")
  ok, err, code = sock:connect("127.0.0.1", good.port, { tls = ca_ctx, servername = "wrong.test" })
  t.eq(ok, nil, "connect with a wrong servername fails")
  t.has(err, "hostname mismatch", "connect servername message")

  -- The pool keeps the TLS connection: reused, no second handshake, one
  -- accepted connection on the server.
  local before = good.accepted
  for i = 1, 3 do
    sock = co.tcp { tls_context = ca_ctx }
    t.eq(sock:connect("127.0.0.1", good.port, { pool = "tls-pool" }), 1, "connect " .. i)
    t.eq(sock:getreusedtimes(), i - 1, "reused times")
    sess, err = sock:sslhandshake(nil, "localhost", true)
    t.eq(err, nil, "sslhandshake on a pooled connection")
    echo(sock, "pooled " .. i)
    t.eq(sock:setkeepalive(10000, 4), 1, "setkeepalive")
  end
  t.eq(good.accepted - before, 1, "one connection for three uses")

  -- A plaintext connection in the pool of host:port is not what connect
  -- with tls gets (nor is it in a named pool shared by both).
  for _, pool in ipairs({ false, "shared" }) do
    local popts = pool and { pool = pool } or nil
    before = good.accepted
    sock = co.tcp()
    t.eq(sock:connect("127.0.0.1", good.port, popts), 1, "plaintext connect")
    t.eq(sock:setkeepalive(10000, 4), 1, "plaintext into the pool")
    sock = co.tcp()
    t.eq(sock:connect("127.0.0.1", good.port, { tls = ca_ctx, servername = "localhost", pool = pool or nil }), 1,
         "connect with tls")
    t.eq(sock:getreusedtimes(), 0, "a new connection, not the plaintext one")
    echo(sock, "not plaintext")
    t.eq(sock:setkeepalive(10000, 4), 1, "TLS into the pool")
    sock = co.tcp()
    t.eq(sock:connect("127.0.0.1", good.port, { tls = ca_ctx, servername = "localhost", pool = pool or nil }), 1,
         "connect with tls again")
    t.eq(sock:getreusedtimes(), 1, "the pooled TLS connection")
    echo(sock, "pooled tls")
    t.eq(sock:setkeepalive(10000, 4), 1, "TLS into the pool again")
    t.eq(good.accepted - before, 1, "one TLS connection (a plaintext one never becomes a client)")
  end
  -- A connection verified against the test CA is not handed out where the
  -- system store was asked for (the default pool is per context).
  sock = co.tcp()
  ok, err, code = sock:connect("127.0.0.1", good.port, { tls = true, servername = "localhost" })
  t.eq(ok, nil, "another context: a new connection, which fails to verify")
  t.eq(code, "TLS_VERIFY", "another context: the code")

  -- A handshake that never gets an answer (a plaintext server that reads
  -- and says nothing) times out after the connect timeout.
  local mute = net.TCPServer()
  mute:listen("127.0.0.1", 0, { data = function() end })
  local _, mute_port = mute:address()
  servers[#servers + 1] = mute
  sock = co.tcp()
  sock:settimeouts(300, 1000, 1000)
  t.eq(sock:connect("127.0.0.1", mute_port), 1, "connect")
  local t0 = net.now()
  sess, err = sock:sslhandshake(nil, "localhost", true)
  t.eq(sess, nil, "handshake timeout")
  t.eq(err, "timeout", "handshake timeout message")
  t.truthy(net.now() - t0 >= 250, "waited for the connect timeout")
  t.eq(select(2, sock:send("x")), "closed", "closed after a handshake timeout")

  -- On a closed cosocket.
  t.eq(select(2, co.tcp():sslhandshake()), "closed", "sslhandshake on a closed cosocket")
  local bad = pcall(sock.sslhandshake, sock, nil, 42)
  t.eq(bad, false, "a non-string server_name raises")
end)

-- STARTTLS: plaintext first, then sslhandshake on a server that upgrades
-- after its "220 go"; what came before the upgrade was read in order.
local srv = net.TCPServer()
local secured_info
local sctx = server_ctx("server")
local sbuf = {}
srv:listen("127.0.0.1", 0, {
  connected = function(id) sbuf[id] = "" srv:send(id, "220 hi\r\n") end,
  data = function(id, d)
    local b = sbuf[id] .. d
    for line in b:gmatch("(.-)\r\n") do
      if line == "STARTTLS" then
        srv:send(id, "220 go\r\n")
        srv:starttls(id, sctx)
      else
        srv:send(id, "250 " .. line .. "\r\n")
      end
    end
    sbuf[id] = b:match("[^\n]*$")
  end,
  secured = function(_, info) secured_info = info end,
})
local _, sport = srv:address()
servers[#servers + 1] = srv
t.run(15000, function()
  local sock = co.tcp { tls_context = ca_ctx }
  t.eq(sock:connect("localhost", sport), 1, "connect")
  t.eq(sock:receive(), "220 hi", "greeting in plaintext")
  sock:send("NOOP\r\nSTARTTLS\r\n")
  t.eq(sock:receive(), "250 NOOP", "plaintext answer")
  t.eq(sock:receive(), "220 go", "go-ahead")
  local sess, err = sock:sslhandshake(nil, nil, true)
  t.eq(err, nil, "sslhandshake after STARTTLS")
  t.eq(sess.tlsinfo.servername, "localhost", "SNI: the host given to connect")
  sock:send("MAIL\r\n")
  t.eq(sock:receive(), "250 MAIL", "answer over TLS")
  t.eq(secured_info and secured_info.servername, "localhost", "the server saw the upgrade")
  sock:close()
end)

for _, s in ipairs(servers) do s:stop() end
