-- The PROXY protocol on a real lnet server (listen options proxy_protocol,
-- proxy_trusted, proxy_header_timeout) and client (send_proxy): connected
-- only after a valid header, peer() from the header, transport_peer() the
-- proxy, proxy_info(); invalid, untrusted and late headers closed, counted,
-- never connected; off by default (a header is plain data then).
local net = require "net"
local t = require "testlib"

local SIG = "\r\n\r\n\0\r\nQUIT\n"

local function be16(n) return string.char(n >> 8, n & 0xFF) end

-- A v2 header over IPv4: cmd 0x21 (PROXY), family 0x11 (TCP4).
local function v2_inet(src, dst, sport, dport, tlvs)
  local function ip4(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
  end
  local body = ip4(src) .. ip4(dst) .. be16(sport) .. be16(dport) .. (tlvs or "")
  return SIG .. "\x21\x11" .. be16(#body) .. body
end

-- A raw client: connects, sends the pieces (one per `gap` ms), records
-- what it gets and when it ends.
local function raw_client(port, pieces, gap, on_end)
  local c = net.TCPSocket()
  local got = {}
  local local_port
  c:connect("127.0.0.1", port, {
    connected = function()
      local_port = select(2, c:sockname())
      local i = 0
      local function next_piece()
        i = i + 1
        if i > #pieces or c:send(pieces[i]) == nil then return end
        if gap and gap > 0 then net.setTimeout(next_piece, gap) else next_piece() end
      end
      next_piece()
    end,
    data = function(d) got[#got + 1] = d end,
    error = function() end,
    disconnected = function() on_end(table.concat(got), local_port) end,
  })
  return c
end

-- 1. v1 with the first bytes of the stream in the same packet: connected
-- after the header, peer() from it, transport_peer() the real peer, and
-- "hello" as the first data.
t.run(10000, function(done)
  local log = t.log("server")
  local srv, port
  local client_port
  srv, port = t.listen({
    connected = log:fn("connected", function(id)
      local ip, p = srv:peer(id)
      t.eq(ip, "192.0.2.7", "peer ip from the header")
      t.eq(p, 56324, "peer port from the header")
      local tip, tp = srv:transport_peer(id)
      t.eq(tip, "127.0.0.1", "transport_peer ip")
      client_port = tp
      local info = srv:proxy_info(id)
      t.eq(info.version, 1, "version")
      t.eq(info.command, "PROXY", "command")
      t.eq(info.family, "TCP4", "family")
      t.eq(info.source_ip, "192.0.2.7", "source_ip")
      t.eq(info.source_port, 56324, "source_port")
      t.eq(info.dest_ip, "198.51.100.1", "dest_ip")
      t.eq(info.dest_port, 443, "dest_port")
    end),
    data = log:fn("data", function(id, d)
      t.eq(d, "hello", "the bytes after the header")
      srv:send(id, "ok")
      srv:disconnect(id)
    end),
    disconnected = log:fn("disconnected"),
  }, nil, { proxy_protocol = "v1" })
  t.closing(srv)
  local c
  c = raw_client(port, { "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nhello" }, 0, function(got, cp)
    t.eq(got, "ok", "answer")
    t.after(50, function()
      log:expect({ "connected", "data", "disconnected" })
      t.eq(client_port, cp, "transport_peer port = the client's own port")
      done()
    end)
  end)
end)

-- 2. The client side: send_proxy v2 with IPv6 addresses and TLVs, to a
-- server accepting "any"; the header split from what follows it.
t.run(10000, function(done)
  local srv, port
  srv, port = t.listen({
    connected = function(id)
      local ip, p = srv:peer(id)
      t.eq(ip, "2001:db8::5", "peer ip")
      t.eq(p, 4242, "peer port")
      local info = srv:proxy_info(id)
      t.eq(info.version, 2, "version")
      t.eq(info.family, "TCP6", "family")
      t.eq(info.dest_ip, "2001:db8::1", "dest_ip")
      t.eq(info.authority, "example.org", "authority TLV")
      t.eq(info.alpn, "h2", "alpn TLV")
      t.eq(info.unique_id, "req-1", "unique_id TLV")
      t.truthy(type(info.tlvs) == "table" and #info.tlvs == 3, "every TLV in tlvs")
    end,
    data = function(id, d)
      t.eq(d, "payload", "first data")
      srv:disconnect(id)
    end,
  }, nil, { proxy_protocol = "any" })
  t.closing(srv)
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function() c:send("payload") end,
    disconnected = function() done() end,
  }, { send_proxy = { version = 2, source_ip = "2001:db8::5", source_port = 4242,
                      dest_ip = "2001:db8::1", dest_port = 443, authority = "example.org",
                      alpn = "h2", unique_id = "req-1" } })
end)

-- 3. A v2 header sent one byte at a time: connected only after its last
-- byte; LOCAL (send_proxy without addresses): peer() is the real peer.
t.run(10000, function(done)
  local srv, port
  local sent_all = false
  local connected = 0
  srv, port = t.listen({
    connected = function(id)
      connected = connected + 1
      local info = srv:proxy_info(id)
      if info.command == "LOCAL" then
        local ip, p = srv:peer(id)
        local tip, tp = srv:transport_peer(id)
        t.eq(ip, tip, "LOCAL: peer is the real peer")
        t.eq(p, tp, "LOCAL: same port")
        srv:disconnect(id)
        return
      end
      t.truthy(sent_all, "connected before the header's last byte")
      t.eq((srv:peer(id)), "203.0.113.9", "peer")
    end,
    data = function(id, d)
      t.eq(d, "x", "data after the split header")
      srv:disconnect(id)
    end,
  }, nil, { proxy_protocol = "v2" })
  t.closing(srv)
  local header = v2_inet("203.0.113.9", "127.0.0.1", 40000, port)
  local pieces = {}
  for i = 1, #header do pieces[i] = header:sub(i, i) end
  local ends = 0
  local function finished()
    ends = ends + 1
    if ends == 2 then
      t.eq(connected, 2, "both connected")
      done()
    end
  end
  local c = net.TCPSocket()
  local i = 0
  c:connect("127.0.0.1", port, {
    connected = function()
      local function step()
        i = i + 1
        if i == #header then sent_all = true end
        c:send(header:sub(i, i))
        if i < #header then net.setTimeout(step, 2) else c:send("x") end
      end
      step()
    end,
    disconnected = finished,
  })
  local l = net.TCPSocket()
  l:connect("127.0.0.1", port, { disconnected = finished }, { send_proxy = { version = 2 } })
end)

-- 4. Refused: garbage, a 108-byte v1 line, a v2 length shorter than its
-- address block, an untrusted source, silence past the timeout. Each is
-- closed and counted; none fires connected or disconnected.
local function refused(options, pieces, counter, min_ms)
  t.run(10000, function(done)
    local log = t.log("server")
    local srv, port = t.listen({
      connected = log:fn("connected"),
      data = log:fn("data"),
      disconnected = log:fn("disconnected"),
    }, nil, options)
    t.closing(srv)
    local t0 = net.now()
    raw_client(port, pieces, 0, function(got)
      t.eq(got, "", "nothing answered")
      if min_ms then t.truthy(net.now() - t0 >= min_ms, "closed before the header timeout") end
      t.after(50, function()
        log:expect({})
        t.eq(srv:stats()[counter], 1, "stats()." .. counter)
        t.eq(srv:stats().accepted, 0, "stats().accepted: a refused socket never became a client")
        t.same(srv:clients(), {}, "clients()")
        done()
      end)
    end)
  end)
end

refused({ proxy_protocol = "any" }, { "GET / HTTP/1.0\r\n\r\n" }, "proxy_invalid")
refused({ proxy_protocol = "v1" }, { "PROXY UNKNOWN " .. string.rep("x", 94) }, "proxy_invalid")
refused({ proxy_protocol = "v2" }, { SIG .. "\x21\x11" .. be16(11) .. string.rep("\1", 11) },
        "proxy_invalid")
refused({ proxy_protocol = "v2" }, { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" }, "proxy_invalid")
refused({ proxy_protocol = "any", proxy_trusted = { "10.0.0.0/8", "fd00::/8" } },
        { v2_inet("1.2.3.4", "5.6.7.8", 1, 2) }, "proxy_untrusted")
refused({ proxy_protocol = "any", proxy_header_timeout = 300 }, {}, "proxy_timeout", 250)
refused({ proxy_protocol = "v1", proxy_header_timeout = 300 }, { "PROXY TCP4 1.2" }, "proxy_timeout", 250)

-- 5. A trusted source is served; off by default: a header is plain data,
-- and proxy_info() is nil.
t.run(10000, function(done)
  local srv, port
  srv, port = t.listen({
    connected = function(id) t.eq(srv:proxy_info(id), nil, "proxy_info without the option") end,
    data = function(id, d)
      t.eq(d, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "the header is data")
      t.eq((srv:peer(id)), "127.0.0.1", "peer is the real peer")
      srv:disconnect(id)
    end,
  })
  t.closing(srv)
  raw_client(port, { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" }, 0, function()
    local srv2, port2
    srv2, port2 = t.listen({
      connected = function(id)
        t.eq((srv2:peer(id)), "1.2.3.4", "trusted: peer from the header")
        srv2:disconnect(id)
      end,
    }, nil, { proxy_protocol = "v1", proxy_trusted = { "127.0.0.0/8" } })
    t.closing(srv2)
    raw_client(port2, { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" }, 0, function() done() end)
  end)
end)

-- 6. Option errors raise at the call.
local srv = net.TCPServer()
t.raises({ "proxy_protocol" }, srv.listen, srv, "127.0.0.1", 0, {}, { proxy_protocol = "v3" })
t.raises({ "proxy_trusted", "entry 2" }, srv.listen, srv, "127.0.0.1", 0, {},
         { proxy_trusted = { "127.0.0.1", "example.com" } })
t.raises({ "proxy_trusted" }, srv.listen, srv, "127.0.0.1", 0, {}, { proxy_trusted = { "10.0.0.0/33" } })
t.raises({ "proxy_header_timeout" }, srv.listen, srv, "127.0.0.1", 0, {}, { proxy_header_timeout = 0 })
local c = net.TCPSocket()
t.raises({ "send_proxy", "version" }, c.connect, c, "127.0.0.1", 1, {}, { send_proxy = { version = 3 } })
t.raises({ "send_proxy", "source_ip" }, c.connect, c, "127.0.0.1", 1, {},
         { send_proxy = { version = 1, source_ip = "host", source_port = 1, dest_ip = "::1", dest_port = 2 } })
t.raises({ "send_proxy", "families" }, c.connect, c, "127.0.0.1", 1, {},
         { send_proxy = { version = 1, source_ip = "1.2.3.4", source_port = 1, dest_ip = "::1", dest_port = 2 } })
t.raises({ "send_proxy", "alpn" }, c.connect, c, "127.0.0.1", 1, {},
         { send_proxy = { version = 1, alpn = "h2" } })
t.raises({ "send_proxy", "unknown field" }, c.connect, c, "127.0.0.1", 1, {},
         { send_proxy = { version = 2, src = "1.2.3.4" } })
