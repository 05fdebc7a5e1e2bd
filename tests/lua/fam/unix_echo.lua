-- Unix domain sockets: an echo (path and abstract name), 10 MB with flow
-- control (send false / drain, pause / resume) and checksums, the address
-- strings, peercred.
local net = require "net"
local t = require "testlib"

local dir = famc.tmpdir()
local PATH = "unix:" .. dir .. "/echo.sock"
local ABSTRACT = ("unix:@lnet-test-%d-%d"):format(famc.ids(), math.random(1, 1 << 30))

-- 1. Small echo, address strings, peercred (this process: same pid, uid, gid).
local function small(host)
  local got, cred, peer, sockname = "", nil, nil, nil
  t.run(5000, function(done)
    local srv = net.TCPServer()
    t.eq(t.call(srv, "listen", host, nil, {
      connected = function(id)
        cred = { srv:peercred(id) }
        peer = srv:peer(id)
        sockname = srv:sockname(id)
      end,
      data = function(id, d) srv:send(id, d) end,
      error = function(m) error("server: " .. m) end,
    }), true, "listen() result")
    t.eq(srv:address(), host, "address() right after listen")
    t.closing(srv)
    local c = net.TCPSocket()
    c:connect(host, 0, {
      connected = function()
        t.eq(c:peer(), host, "client peer()")
        c:send("ping over " .. host)
      end,
      data = function(d)
        got = got .. d
        if got == "ping over " .. host then c:disconnect() end
      end,
      disconnected = function() done() end,
      error = function(m) error("client: " .. m) end,
    })
  end)
  t.eq(got, "ping over " .. host, "echo")
  local pid, uid, gid = famc.ids()
  t.same(cred, { pid, uid, gid }, "peercred(id)")
  t.eq(peer, "unix:", "peer of an unnamed client end")
  t.eq(sockname, host, "server-side sockname")
end
small(PATH)
small(ABSTRACT)

-- peercred of a TCP connection: nil, message, code.
do
  local res
  t.run(5000, function(done)
    local srv, port
    srv, port = t.listen({ connected = function(id) res = { srv:peercred(id) }; done() end })
    t.closing(srv)
    local c = t.closing(net.TCPSocket())
    c:connect("127.0.0.1", port, {})
  end)
  t.eq(res[1], nil, "peercred over TCP")
  t.eq(res[2], "not a unix socket", "peercred over TCP: message")
  t.eq(res[3], "EOPNOTSUPP", "peercred over TCP: code")
end

-- 2. 10 MB with flow control both ways.
local function bulk(host)
  local BLOCK, NBLOCKS = 64 * 1024, 160
  local TOTAL = BLOCK * NBLOCKS
  local block = t.blocks(BLOCK, 777)
  local sent_sum = t.checksum()
  for i = 1, NBLOCKS do sent_sum:update(block(i)) end
  local srv_sum, cli_sum = t.checksum(), t.checksum()
  local counts = { send_false = 0, drain = 0, srv_false = 0, srv_drain = 0 }
  t.run(60000, function(done)
    local srv = net.TCPServer()
    srv:listen(host, nil, {
      data = function(id, d)
        srv_sum:update(d)
        if srv:send(id, d) == false then
          counts.srv_false = counts.srv_false + 1
          srv:pause(id)
        end
      end,
      drain = function(id)
        counts.srv_drain = counts.srv_drain + 1
        srv:resume(id)
      end,
      error = function(m) error("server: " .. m) end,
    })
    t.closing(srv)
    local c = net.TCPSocket()
    local next_block = 1
    local function pump()
      while next_block <= NBLOCKS do
        local r = c:send(block(next_block))
        next_block = next_block + 1
        if r == false then
          counts.send_false = counts.send_false + 1
          return
        end
        t.eq(r, true, "client send")
      end
    end
    c:connect(host, nil, {
      connected = pump,
      drain = function() counts.drain = counts.drain + 1; pump() end,
      data = function(d)
        cli_sum:update(d)
        if cli_sum.n == TOTAL then c:disconnect() end
      end,
      disconnected = function() done() end,
      error = function(m) error("client: " .. m) end,
    })
  end)
  t.eq(srv_sum.n, TOTAL, "bytes the server received")
  t.eq(srv_sum:value(), sent_sum:value(), "checksum at the server")
  t.eq(cli_sum.n, TOTAL, "bytes echoed back")
  t.eq(cli_sum:value(), sent_sum:value(), "checksum back at the client")
  t.truthy(counts.send_false > 0, "flow control engaged on the client")
  t.eq(counts.drain, counts.send_false, "one drain per false send()")
  t.eq(counts.srv_drain, counts.srv_false, "one server drain per false send()")
end
bulk(PATH)
bulk(ABSTRACT)

-- 3. The connection options work as over TCP: a paused connection reads
-- nothing until resumed; idle_timeout ends a silent client with its reason
-- and code.
do
  local paused_data, later = nil, ""
  t.run(10000, function(done)
    local srv = net.TCPServer()
    srv:listen(PATH, nil, {
      connected = function(id)
        srv:pause(id)
        net.setTimeout(function()
          paused_data = later
          srv:resume(id)
        end, 80)
      end,
      data = function(_, d)
        later = later .. d
        if later == "while paused" then done() end
      end,
    })
    t.closing(srv)
    local c = t.closing(net.TCPSocket())
    c:connect(PATH, nil, { connected = function() c:send("while paused") end })
  end)
  t.eq(paused_data, "", "nothing read while paused")
  t.eq(later, "while paused", "read after resume")

  local ended
  t.run(10000, function(done)
    local srv = net.TCPServer({ idle_timeout = 150 })
    srv:listen(PATH, nil, {
      disconnected = function(_, reason, code) ended = { reason, code }; done() end,
    })
    t.closing(srv)
    local c = t.closing(net.TCPSocket())
    c:connect(PATH, nil, {})
  end)
  t.same(ended, { "idle timeout", "IDLE_TIMEOUT" }, "idle_timeout over a unix socket")
end
-- 4. Framing and the PROXY protocol over a unix socket, as over TCP.
do
  local lines, peer, info = {}, nil, nil
  t.run(10000, function(done)
    local srv = net.TCPServer()
    srv:listen(PATH, nil, {
      connected = function(id) peer = { srv:peer(id) }; info = srv:proxy_info(id) end,
      data = function(id, line)
        lines[#lines + 1] = line
        if #lines == 3 then srv:disconnect(id) end
      end,
      disconnected = function() done() end,
    }, { framing = "line", proxy_protocol = "v1" })
    t.closing(srv)
    local c = t.closing(net.TCPSocket())
    c:connect(PATH, nil, {
      connected = function() c:send("one\ntw"); c:send("o\nthree\n") end,
    }, { send_proxy = { version = 1, source_ip = "192.0.2.7", source_port = 4567,
                        dest_ip = "192.0.2.1", dest_port = 80 } })
  end)
  t.same(lines, { "one", "two", "three" }, "whole lines over a unix socket")
  t.same(peer, { "192.0.2.7", 4567 }, "peer(id) from the PROXY header over a unix socket")
  t.eq(info and info.version, 1, "proxy_info(id).version")
end
-- 5. TLS over a unix socket (certificates from tests/tls/make-certs.sh;
-- the client names the server with servername, a path has no name).
do
  local certs = dir .. "/certs"
  local h = famc.spawn({ "sh", "-c", "mkdir -p '" .. certs .. "' && exec sh '" ..
                         os.getenv("LNET_SOURCE") .. "/tests/tls/make-certs.sh' '" .. certs .. "'" })
  t.run(60000, function(done)
    local iv
    iv = net.setInterval(function()
      if not famc.running(h) then net.clearInterval(iv); done() end
    end, 20)
  end)
  local cert_ok = io.open(certs .. "/server.pem") ~= nil
  t.truthy(cert_ok, "make-certs.sh made the certificates: " .. famc.err(h))
  local got, version = "", nil
  t.run(15000, function(done)
    local srv = net.TCPServer()
    srv:listen(PATH, nil, {
      data = function(id, d) srv:send(id, d) end,
    }, { tls = net.TLSContext({ cert = certs .. "/server.pem", key = certs .. "/server.key" }) })
    t.closing(srv)
    local c = net.TCPSocket()
    c:connect(PATH, nil, {
      connected = function() version = c:tlsinfo().protocol; c:send("secret over unix") end,
      data = function(d)
        got = got .. d
        if got == "secret over unix" then c:disconnect() end
      end,
      disconnected = function() done() end,
      error = function(m) error("tls client: " .. m) end,
    }, { tls = net.TLSContext({ ca = certs .. "/ca.pem" }), servername = "localhost" })
  end)
  t.eq(got, "secret over unix", "TLS echo over a unix socket")
  t.match(version, "^TLSv1%.[23]$", "tlsinfo().protocol")
end
t.settle()
assert(net.loop() == false)
