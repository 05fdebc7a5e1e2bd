-- STARTTLS, configuration errors, and load on TLS connections (lnet on
-- both ends, or Python ssl as the peer). TLS.case picks the case.
local net = require "net"
local t = require "testlib"
local L = require "tls.tlslib"

local A = L.args
local case = A.case
local scale = A.asan and 8 or 1  -- under ASan, smaller sizes (same assertions)

if case == "context_errors" then
  local p = L.path
  t.raises({ "net.TLSContext: cert '" .. p("nope.pem") .. "': No such file or directory" },
    net.TLSContext, { cert = p("nope.pem"), key = p("server.key") })
  t.raises({ "key '" .. p("alt.key") .. "' does not match cert '" .. p("server.pem") .. "'", "mismatch" },
    net.TLSContext, { cert = p("server.pem"), key = p("alt.key") })
  t.raises({ "cert '" .. p("server.key") .. "'", "no start line" },
    net.TLSContext, { cert = p("server.key"), key = p("server.key") })
  t.raises({ "ca '" .. p("missing-ca.pem") .. "': No such file or directory" },
    net.TLSContext, { ca = p("missing-ca.pem") })
  t.raises({ "ca (PEM string): no certificate found" },
    net.TLSContext, { ca = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n" })
  t.raises("unknown option 'verify'", net.TLSContext, { verify = false })
  t.raises("option 'insecure' must be a boolean", net.TLSContext, { insecure = "yes" })
  t.raises("option 'min_version' must be", net.TLSContext, { min_version = "1.4" })
  t.raises("max_version is below min_version", net.TLSContext, { min_version = "1.3", max_version = "1.2" })
  t.raises("option 'cert' needs option 'key'", net.TLSContext, { cert = p("server.pem") })
  t.raises({ "ciphers 'NOPE'", "no cipher match" }, net.TLSContext, { ciphers = "NOPE" })
  t.raises("option 'alpn' must list strings", net.TLSContext, { alpn = { 1 } })
  -- An encrypted key: the password opens it; a wrong or missing one is refused.
  t.truthy(net.TLSContext { cert = p("server.pem"), key = p("enc.key"), password = "secret" }, "password")
  t.raises({ "key '" .. p("enc.key") .. "'" }, net.TLSContext, { cert = p("server.pem"), key = p("enc.key"), password = "wrong" })
  t.raises({ "key '" .. p("enc.key") .. "'" }, net.TLSContext, { cert = p("server.pem"), key = p("enc.key") })
  -- PEM strings, and a list of CA sources.
  t.truthy(net.TLSContext { cert = L.read("chain.pem"), key = L.read("server.key"),
    ca = { L.read("ca.pem"), p("unknown-ca.pem") } }, "PEM strings")
  t.eq(tostring(net.TLSContext { insecure = true }), "net.TLSContext (insecure)", "tostring")
  -- The options of connect and listen.
  local s = net.TCPSocket()
  t.raises("option 'tls' must be a net.TLSContext or a boolean", s.connect, s, "127.0.0.1", 1, {}, { tls = "yes" })
  t.raises("option 'servername' must be a string or false", s.connect, s, "127.0.0.1", 1, {}, { tls = true, servername = 1 })
  t.raises("option 'handshake_timeout' must be", s.connect, s, "127.0.0.1", 1, {}, { handshake_timeout = -1 })
  local srv = net.TCPServer()
  t.raises("option 'tls' of listen must be a net.TLSContext", srv.listen, srv, "127.0.0.1", 0, {}, { tls = true })
  t.raises("option 'sni': the value for 'x' must be a net.TLSContext", srv.listen, srv, "127.0.0.1", 0, {}, { sni = { x = 1 } })
  t.eq(net.features.tls, true, "net.features.tls")
  -- tlsinfo on a plaintext or unconnected object.
  local r1, m1 = s:tlsinfo()
  t.eq(r1, nil, "tlsinfo before connect")
  t.eq(m1, "not connected", "tlsinfo message")
elseif case == "starttls" then
  -- An SMTP-style exchange between lnet's server and lnet's client: the
  -- client pipelines three commands in one write; the answers come in
  -- order; after "220" both sides upgrade; then the dialogue goes on over
  -- TLS. A server STARTTLS failure ends the connection with the reason.
  local sctx = L.server_ctx()
  local srv, port
  local secured_srv, log = nil, {}
  local buf = {}
  srv, port = t.listen({
    connected = function(id) buf[id] = "" srv:send(id, "220 lnet ESMTP\r\n") end,
    data = function(id, d)
      buf[id] = buf[id] .. d
      while true do
        local line, rest = buf[id]:match("^(.-)\r\n(.*)$")
        if not line then break end
        buf[id] = rest
        log[#log + 1] = line
        if line == "STARTTLS" then
          srv:send(id, "220 ready\r\n")
          t.eq(srv:starttls(id, sctx), true, "server:starttls")
        elseif line:match("^EHLO") then
          srv:send(id, "250-lnet\r\n250 STARTTLS\r\n")
        elseif line == "QUIT" then
          srv:send(id, "221 bye\r\n")
          srv:disconnect(id)
        else
          srv:send(id, "250 " .. line .. "\r\n")
        end
      end
    end,
    secured = function(id, info) secured_srv = { id = id, info = info } end,
  })
  local c = net.TCPSocket()
  local got, secured_cli, phase, ended = "", nil, 1, false
  t.run(15000, function(done)
    c:connect("localhost", port, {
      connected = function() c:send("EHLO me\r\nNOOP\r\nSTARTTLS\r\n") end,
      data = function(d)
        got = got .. d
        if phase == 1 and got:find("220 ready\r\n", 1, true) then
          phase = 2
          t.eq(c:tlsinfo(), nil, "no tlsinfo before the upgrade")
          c:starttls(L.client_ctx())
        elseif phase == 3 and got:find("221 bye", 1, true) then
          phase = 4
        end
      end,
      secured = function(info)
        secured_cli = info
        phase = 3
        c:send("MAIL FROM:<a@b>\r\nQUIT\r\n")
      end,
      disconnected = function() ended = true done() end,
      error = function(m) error("client error: " .. m) end,
    })
  end, { keep = true })
  t.eq(ended, true, "ended")
  t.eq(got, "220 lnet ESMTP\r\n250-lnet\r\n250 STARTTLS\r\n250 NOOP\r\n220 ready\r\n250 MAIL FROM:<a@b>\r\n221 bye\r\n",
    "answers in order, before and after the upgrade")
  t.same(log, { "EHLO me", "NOOP", "STARTTLS", "MAIL FROM:<a@b>", "QUIT" }, "commands in order")
  t.eq(secured_cli.protocol, "TLSv1.3", "client secured(info)")
  t.eq(secured_cli.verified, true, "verified")
  t.eq(secured_cli.servername, "localhost", "servername")
  t.eq(secured_srv.info.servername, "localhost", "server secured(id, info)")
  -- A failed upgrade ends the connection with the reason (never plaintext).
  local err, ended2 = nil, false
  local c2 = net.TCPSocket()
  t.run(15000, function(done)
    c2:connect("127.0.0.1", port, {
      connected = function() c2:send("STARTTLS\r\n") end,
      data = function(d)
        if d:find("220 ready", 1, true) then c2:starttls(L.client_ctx(), { servername = "wrong.test" }) end
      end,
      secured = function() error("must not be secured") end,
      error = function(m) err = m end,
      disconnected = function() ended2 = true done() end,
    })
  end, { keep = true })
  t.eq(ended2, true, "ended after the failed upgrade")
  t.has(err, "TLS handshake with 127.0.0.1:" .. port .. " failed: certificate verify failed (hostname mismatch)", "reason")
  srv:stop()
  t.settle()
elseif case == "stream" then
  -- 1 GB (64 MB under ASan) through an lnet TLS echo server with flow
  -- control; Python's ssl sends and checks the CRC-32 of both directions.
  local total = (A.total or 1024 * 1024 * 1024) // scale
  local srv, port
  local got, falses, drains, reason, ended = 0, 0, 0, "unset", false
  srv, port = t.listen({
    data = function(id, d)
      got = got + #d
      if srv:send(id, d) == false then falses = falses + 1 srv:pause(id) end
    end,
    drain = function(id) drains = drains + 1 srv:resume(id) end,
    disconnected = function(_, why) ended, reason = true, why end,
  }, "127.0.0.1", { tls = L.server_ctx() })
  local t0 = net.now()
  local p = L.spawn(("python3 %s/tests/tls/peer.py stream %d %s %d"):format(A.source, port, L.path("ca.pem"), total))
  L.wait(function() return ended end, 600000, "the stream ends")
  local out = L.output(p)
  t.has(out, "STREAM OK " .. total .. " " .. total, "python: both directions, same CRC-32")
  t.eq(got, total, "bytes through the server")
  t.eq(drains, falses, "one drain per false send")
  t.eq(reason, nil, "an orderly end: " .. tostring(reason))
  local st = srv:stats()
  t.eq(st.bytes_in, total, "stats bytes_in (plaintext)")
  t.eq(st.bytes_out, total, "stats bytes_out (plaintext)")
  print(("tls stream: %d MiB echoed in %d ms"):format(total >> 20, net.now() - t0))
  srv:stop()
  t.settle()
elseif case == "pause_resume" then
  -- 10 MB (less under ASan) echoed between lnet's client and server; the
  -- client pauses after every data callback and resumes from a timer, so
  -- decrypted bytes already inside OpenSSL must be delivered after resume()
  -- without new network input. Then 20,000 1-byte records one by one.
  local total = 10 * 1024 * 1024 // scale
  local pat = t.random_bytes(65521, 7)
  local sv, port
  sv, port = t.listen({
    data = function(id, d) sv:send(id, d) end,
  }, "127.0.0.1", { tls = L.server_ctx() })
  local c = net.TCPSocket()
  local sent, recv_sum, send_sum = 0, t.checksum(), t.checksum()
  local n, pauses, done_flag = 0, 0, false
  t.run(120000, function(done)
    local function pump()
      while sent < total do
        local k = math.min(#pat, total - sent)
        local chunk = pat:sub(1, k)
        send_sum:update(chunk)
        sent = sent + k
        if c:send(chunk) == false then return end
      end
    end
    c:connect("127.0.0.1", port, {
      connected = pump,
      drain = pump,
      data = function(d)
        n = n + #d
        recv_sum:update(d)
        c:pause()
        pauses = pauses + 1
        net.setTimeout(function() c:resume() end, 0)
        if n >= total then done_flag = true done() end
      end,
      error = function(m) error("client: " .. m) end,
    }, { tls = L.client_ctx() })
  end, { keep = true })
  t.eq(n, total, "bytes echoed")
  t.eq(recv_sum:value(), send_sum:value(), "checksum")
  t.truthy(pauses > 10, "paused many times")
  -- 1-byte records: each send() is one TLS record.
  local got, want = {}, 20000 // scale
  local s2, p2
  s2, p2 = t.listen({
    connected = function(id) for i = 1, want do s2:send(id, string.char(48 + i % 10)) end end,
  }, "127.0.0.1", { tls = L.server_ctx() })
  local c2 = net.TCPSocket()
  local count = 0
  t.run(60000, function(done)
    c2:connect("127.0.0.1", p2, {
      data = function(d)
        got[#got + 1] = d
        count = count + #d
        c2:pause()
        net.setTimeout(function() c2:resume() end, 0)
        if count >= want then done() end
      end,
    }, { tls = L.client_ctx() })
  end, { keep = true })
  local s = table.concat(got)
  t.eq(#s, want, "1-byte records")
  for i = 1, want do
    if s:byte(i) ~= 48 + i % 10 then error("byte " .. i .. " out of order") end
  end
  c:close() c2:close()
  sv:stop() s2:stop()
  t.settle()
elseif case == "many" then
  -- 1,000 concurrent TLS connections (250 under ASan; LNET_TLS_CONNS for
  -- another number, as under valgrind) echoing.
  local N = math.tointeger(tonumber(os.getenv("LNET_TLS_CONNS") or "")) or 1000 // (A.asan and 4 or 1)
  local ctx = L.client_ctx()
  local sv, port
  sv, port = t.listen({
    data = function(id, d) sv:send(id, d) end,
  }, "127.0.0.1", { tls = L.server_ctx(), backlog = 4096, handshake_timeout = 150000 })
  local ok, connected, errors = 0, 0, {}
  local socks = {}
  t.run(180000, function(done)
    for i = 1, N do
      local c = net.TCPSocket()
      socks[i] = c
      local msg = ("hello %d\n"):format(i)
      local got = ""
      c:connect("127.0.0.1", port, {
        connected = function() connected = connected + 1 c:send(msg) end,
        data = function(d)
          got = got .. d
          if got == msg then ok = ok + 1 if ok == N then done() end end
        end,
        error = function(m) errors[#errors + 1] = m if #errors + ok >= N then done() end end,
      }, { tls = ctx, timeout = 150000, handshake_timeout = 150000 })
    end
  end, { keep = true })
  t.eq(#errors, 0, "errors: " .. tostring(errors[1]))
  t.eq(connected, N, "connected")
  t.eq(ok, N, "echoed")
  t.eq(#sv:clients(), N, "all open at once")
  for _, c in ipairs(socks) do c:disconnect() end
  L.wait(function() return #sv:clients() == 0 end, 60000, "all closed")
  sv:stop()
  t.settle()
elseif case == "everything_else" then
  -- Half-close, idle_timeout, max_buffer, close() and net.loop("nowait")
  -- on TLS connections (lnet on both ends).
  local ctx, sctx = L.client_ctx(), L.server_ctx()
  local ev = {}
  local sv, port
  local mode = {}
  sv, port = t.listen({
    connected = function(id) if mode.flood then mode.flood(id) end end,
    data = function(id, d) ev[#ev + 1] = "data:" .. d end,
    ["end"] = function(id)
      ev[#ev + 1] = "end"
      sv:send(id, "reply")
      sv:disconnect(id)
    end,
    disconnected = function(id, reason, code) ev[#ev + 1] = { "disconnected", reason, code } end,
  }, "127.0.0.1", { tls = sctx, allow_half_open = true, max_buffer = 200000 })
  -- a. half-close: our shutdown() sends close_notify and FIN; reading goes on.
  local c = net.TCPSocket()
  local got, cev = "", {}
  t.run(15000, function(done)
    c:connect("127.0.0.1", port, {
      connected = function() c:send("abc") c:shutdown() end,
      data = function(d) got = got .. d end,
      error = function(m) cev[#cev + 1] = m end,
      disconnected = function() done() end,
    }, { tls = ctx })
  end, { keep = true })
  t.eq(got, "reply", "reply after our half-close")
  t.eq(#cev, 0, "no error: " .. tostring(cev[1]))
  L.wait(function() return #ev >= 3 end, 5000, "server events")
  t.eq(ev[1], "data:abc", "server data")
  t.eq(ev[2], "end", "server end (the client's close_notify)")
  t.eq(ev[3][2], nil, "orderly end on the server")
  -- b. idle_timeout on a TLS client.
  local c2 = net.TCPSocket()
  local msg, code
  local t0 = net.now()
  t.run(15000, function(done)
    c2:connect("127.0.0.1", port, {
      error = function(m, k) msg, code = m, k end,
      disconnected = function() done() end,
    }, { tls = ctx, idle_timeout = 300 })
  end, { keep = true })
  t.eq(msg, "idle timeout", "idle timeout message")
  t.eq(code, "IDLE_TIMEOUT", "idle timeout code")
  t.between(net.now() - t0, 250, 10000, "after idle_timeout")
  -- c. max_buffer on a TLS server connection: a paused client lets the
  -- server's queue grow; send() past it aborts the connection.
  local res
  mode.flood = function(id)
    local chunk = ("x"):rep(65536)
    for _ = 1, 200 do
      local ok, m, k = sv:send(id, chunk)
      if ok == nil then res = { m, k } break end
    end
  end
  local c3 = net.TCPSocket()
  local c3err
  t.run(15000, function(done)
    c3:connect("127.0.0.1", port, {
      connected = function() c3:pause() end,
      error = function(m) c3err = m end,
      disconnected = function() done() end,
    }, { tls = ctx })
    net.setTimeout(function() c3:resume() end, 300)
  end, { keep = true })
  mode.flood = nil
  t.eq(res and res[2], "MAX_BUFFER", "send past max_buffer: " .. t.show(res and res[1]))
  t.truthy(c3err ~= nil, "the client sees an abnormal end")
  -- d. close() drops at once, without close_notify: the server sees a
  -- truncated stream, never an orderly end.
  local before = #ev
  local c4 = net.TCPSocket()
  t.run(15000, function(done)
    c4:connect("127.0.0.1", port, {
      connected = function() c4:send("x") net.setTimeout(function() c4:close() done() end, 100) end,
    }, { tls = ctx })
  end, { keep = true })
  L.wait(function()
    for i = before + 1, #ev do if type(ev[i]) == "table" then return true end end
  end, 5000, "server disconnected after close()")
  local last
  for i = before + 1, #ev do if type(ev[i]) == "table" then last = ev[i] end end
  t.eq(last[2], "TLS connection truncated (no close_notify)", "close(): truncated for the peer")
  t.eq(last[3], "TLS_TRUNCATED", "code")
  -- f. A peer that accepts TCP and never answers the hello: the client's
  -- `timeout` covers the handshake, and so does its handshake_timeout.
  local mute, mport = t.listen({})
  for _, o in ipairs({ { timeout = 300, handshake_timeout = 0, want = "failed: timed out" },
                       { timeout = 0, handshake_timeout = 300, want = "failed: handshake timed out" } }) do
    local c6 = net.TCPSocket()
    local m6, k6, connected6
    local t6 = net.now()
    t.run(15000, function(done)
      c6:connect("127.0.0.1", mport, {
        connected = function() connected6 = true end,
        error = function(m, k) m6, k6 = m, k done() end,
      }, { tls = ctx, timeout = o.timeout, handshake_timeout = o.handshake_timeout })
    end, { keep = true })
    t.eq(connected6, nil, "no connected before the handshake")
    t.has(m6, "TLS handshake with 127.0.0.1:" .. mport .. " " .. o.want, "timeout message")
    t.eq(k6, "TLS_HANDSHAKE_TIMEOUT", "timeout code")
    t.between(net.now() - t6, 250, 10000, "at the timeout")
  end
  mute:stop()
  -- g. ALPN on lnet's server: its order of preference wins.
  local as, aport
  as, aport = t.listen({}, "127.0.0.1", { tls = L.server_ctx { alpn = { "http/1.1", "h2" } } })
  local r = L.attempt("localhost", aport, { tls = L.client_ctx { alpn = { "h2", "http/1.1" } } })
  t.eq(r.err, nil, "alpn connect")
  t.eq(r.info.alpn, "http/1.1", "the server's preference")
  r = L.attempt("localhost", aport, { tls = L.client_ctx { alpn = { "x-other" } } })
  t.eq(r.info.alpn, nil, "no common protocol: none chosen")
  as:stop()
  -- e. net.loop("nowait") pumps TLS connections (an application's own loop).
  sv:stop()
  t.settle()
  local es, eport
  es, eport = t.listen({ data = function(id, d) es:send(id, d) end }, "127.0.0.1", { tls = sctx })
  local c5 = net.TCPSocket()
  local echoed = ""
  c5:connect("127.0.0.1", eport, {
    connected = function() c5:send("nowait over tls") end,
    data = function(d) echoed = echoed .. d end,
  }, { tls = ctx })
  local deadline = net.now() + 10000
  while echoed ~= "nowait over tls" and net.now() < deadline do
    net.loop("nowait")
  end
  t.eq(echoed, "nowait over tls", "echo pumped by nowait")
  c5:close()
  es:stop()
  t.settle()
elseif case == "behind_proxy" then
  -- A TLS server behind a PROXY protocol front: the header comes first in
  -- plaintext, then the handshake; the connection gets its id after the
  -- handshake and still knows the client the header named. Both versions,
  -- and a handshake that fails after a good header frees what it held.
  local ctx, sctx = L.client_ctx(), L.server_ctx()
  for _, version in ipairs({ 1, 2 }) do
    local seen = {}
    local sv, port
    sv, port = t.listen({
      connected = function(id)
        local ip, p = sv:peer(id)
        local info = sv:proxy_info(id)
        local tls = sv:tlsinfo(id)
        seen[#seen + 1] = { ip = ip, port = p, version = info and info.version,
                            protocol = tls and tls.protocol }
      end,
      data = function(id, d) sv:send(id, d:upper()) sv:disconnect(id) end,
    }, "127.0.0.1", { tls = sctx, proxy_protocol = "any" })
    local r = L.attempt("localhost", port, {
      tls = ctx,
      send_proxy = { version = version, source_ip = "192.0.2.7", source_port = 4242,
                     dest_ip = "198.51.100.1", dest_port = 443 },
    }, "hello", 5)
    t.truthy(r.connected, "v" .. version .. " connected: " .. tostring(r.err))
    t.eq(r.data, "HELLO", "v" .. version .. " echoed through TLS")
    L.wait(function() return #seen == 1 end, 5000, "server connected")
    t.eq(seen[1].ip, "192.0.2.7", "v" .. version .. " peer from the header")
    t.eq(seen[1].port, 4242, "v" .. version .. " peer port from the header")
    t.eq(seen[1].version, version, "v" .. version .. " proxy_info")
    t.truthy(seen[1].protocol, "v" .. version .. " tlsinfo on the proxied connection")
    -- A good header, then a client that does not trust the server: the
    -- handshake fails, no id, counted.
    local bad = L.attempt("localhost", port, {
      tls = net.TLSContext({}),  -- the system store: the test CA is unknown
      send_proxy = { version = version, source_ip = "192.0.2.8", source_port = 1,
                     dest_ip = "198.51.100.1", dest_port = 443 },
    }, nil)
    t.eq(bad.code, "TLS_VERIFY", "v" .. version .. " untrusted server refused by the client")
    L.wait(function() return sv:stats().tls_failed == 1 end, 5000, "tls_failed counted")
    t.eq(#seen, 1, "v" .. version .. " no id for the failed handshake")
    sv:stop()
    t.settle()
  end
else
  error("unknown case " .. tostring(case))
end
