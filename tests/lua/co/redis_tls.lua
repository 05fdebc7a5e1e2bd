-- redis-server with TLS only (REDIS_PORT; certificates of make-certs.sh in
-- CERTS): Debian's lua-resty-redis, unmodified, whose connect passes its
-- options to sock:connect (tls, servername), and a bare cosocket upgraded
-- with sslhandshake.
package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
ngx = require "net.ngx"
local net = require "net"
local co = require "net.co"
local t = require "co.colib"
local redis = require "nginx.redis"

local port = assert(tonumber(REDIS_PORT), "REDIS_PORT")
local ca = net.TLSContext { ca = CERTS .. "/ca.pem" }

t.run(30000, function()
  -- lua-resty-redis over TLS, through the pool.
  for i = 1, 3 do
    local r = redis:new()
    r:set_timeout(5000)
    local ok, err = r:connect("127.0.0.1", port, { tls = ca, servername = "localhost" })
    t.eq(err, nil, "resty-redis connect over TLS")
    t.eq(ok, 1, "connect")
    t.eq(r:get_reused_times(), i - 1, "reused times")
    t.eq(r:set("lnet:tls", "secret " .. i), "OK", "SET over TLS")
    t.eq(r:get("lnet:tls"), "secret " .. i, "GET over TLS")
    t.eq(r:set_keepalive(10000, 4), 1, "set_keepalive")
  end
  -- Without the test CA (the system store): a clean failure.
  local r = redis:new()
  r:set_timeout(5000)
  local ok, err = r:connect("127.0.0.1", port, { tls = true, servername = "localhost" })
  t.eq(ok, nil, "connect with the system store fails")
  t.has(err, "certificate verify failed", "its message")

  -- A bare cosocket: plaintext connect, then sslhandshake; RESP by hand.
  local sock = co.tcp { tls_context = ca }
  sock:settimeout(5000)
  t.eq(sock:connect("127.0.0.1", port), 1, "cosocket connect")
  local sess, herr = sock:sslhandshake(nil, "localhost", true)
  t.eq(herr, nil, "sslhandshake with redis-server")
  t.eq(sess.tlsinfo.verified, true, "redis-server's certificate verified")
  sock:send({ "*1\r\n", "$4\r\n", "PING\r\n" })
  t.eq(sock:receive(), "+PONG", "PING over TLS")
  sock:send("*2\r\n$3\r\nGET\r\n$8\r\nlnet:tls\r\n")
  t.eq(sock:receive(), "$8", "bulk length")
  t.eq(sock:receive(8), "secret 3", "the value lua-resty-redis set")
  sock:close()
  -- ssl_verify = false: no checks, works with no context at all.
  sock = co.tcp()
  t.eq(sock:connect("127.0.0.1", port), 1, "cosocket connect")
  t.eq(sock:sslhandshake(false, nil, false), true, "sslhandshake(false, nil, false)")
  sock:send("*1\r\n$4\r\nPING\r\n")
  t.eq(sock:receive(), "+PONG", "PING over an unverified TLS connection")
  sock:close()
  -- Plaintext to a TLS-only redis: it closes the connection.
  sock = co.tcp()
  t.eq(sock:connect("127.0.0.1", port), 1, "plaintext connect")
  sock:send("*1\r\n$4\r\nPING\r\n")
  local line, rerr = sock:receive()
  t.eq(line, nil, "no plaintext answer")
  t.truthy(rerr, "plaintext: an error")
end)
