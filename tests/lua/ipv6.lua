-- IPv4 and IPv6 on loopback; "localhost" on both ends whichever family
-- resolves first; peer() and sockname() on both ends.
local net = require "net"
local t = require "testlib"

local function exchange(host, done, expect_ip)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local c = net.TCPSocket()
  local sid
  local ends = 0
  local function finish()
    ends = ends + 1
    if ends < 2 then return end
    t.after(50, function()
      srvlog:expect({ "connected", "data", "disconnected" })
      clog:expect({ "connected", "data", "disconnected" })
      done()
    end)
  end
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      sid = id
      -- Server side of the connection: local = the listening address.
      local lip, lport = srv:sockname(id)
      t.eq(lip, expect_ip, "server:sockname(id) ip")
      t.eq(lport, port, "server:sockname(id) port")
      local pip, pport = srv:peer(id)
      t.eq(pip, expect_ip, "server:peer(id) ip")
      t.eq(math.type(pport), "integer", "server:peer(id) port type")
    end),
    data = srvlog:fn("data", function(id, d)
      t.eq(d, "hi from " .. host, "server data")
      -- The client's sockname is the server's peer.
      local pip, pport = srv:peer(id)
      local cip, cport = c:sockname()
      t.eq(pip, cip, "server peer ip = client sockname ip")
      t.eq(pport, cport, "server peer port = client sockname port")
      srv:send(id, "bye")
    end),
    disconnected = srvlog:fn("disconnected", function(id, reason)
      t.eq(id, sid, "disconnected id")
      t.eq(reason, nil, "orderly close")
      finish()
    end),
    error = srvlog:fn("error", function(m) error("server error: " .. m) end),
  }, host)
  t.closing(srv)
  local h, p = srv:address()
  t.eq(h, host, "server:address() host")
  t.eq(p, port, "server:address() port")
  c:connect(host, port, {
    connected = clog:fn("connected", function()
      local pip, pport = c:peer()
      t.eq(pip, expect_ip, "client:peer() ip")
      t.eq(pport, port, "client:peer() port")
      local sip, sport = c:sockname()
      t.eq(sip, expect_ip, "client:sockname() ip")
      t.eq(math.type(sport), "integer", "client:sockname() port type")
      t.truthy(sport > 0 and sport ~= port, "client:sockname() port " .. tostring(sport))
      c:send("hi from " .. host)
    end),
    data = clog:fn("data", function(d)
      t.eq(d, "bye", "client data")
      c:disconnect()
    end),
    disconnected = clog:fn("disconnected", finish),
    error = clog:fn("error", function(m) error("client error: " .. m) end),
  })
end

t.run(5000, function(done) exchange("127.0.0.1", done, "127.0.0.1") end)
t.run(5000, function(done) exchange("::1", done, "::1") end)

-- "localhost" on both ends: the server binds whatever localhost resolves to
-- (after started, address() gives the real ip and port), the client tries
-- each address in turn; no error is reported on the way.
t.run(15000, function(done)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv = net.TCPServer()
  local c = net.TCPSocket()
  local bound_ip, port
  t.eq(t.call(srv, "listen", "localhost", 0, {
    started = srvlog:fn("started", function()
      bound_ip, port = srv:address()
      t.truthy(bound_ip == "127.0.0.1" or bound_ip == "::1" or bound_ip == "localhost",
        "address() host after listen(\"localhost\"): " .. t.show(bound_ip))
      t.truthy(math.type(port) == "integer" and port > 0, "address() port " .. t.show(port))
      t.call(c, "connect", "localhost", port, {
        connected = clog:fn("connected", function()
          local pip, pport = c:peer()
          t.truthy(pip == "127.0.0.1" or pip == "::1", "client:peer() ip " .. t.show(pip))
          if bound_ip ~= "localhost" then t.eq(pip, bound_ip, "client:peer() ip") end
          t.eq(pport, port, "client:peer() port")
          c:send("x")
        end),
        data = clog:fn("data", function(d)
          t.eq(d, "x", "echo")
          c:disconnect()
        end),
        disconnected = clog:fn("disconnected", function()
          t.after(50, function()
            clog:expect({ "connected", "data", "disconnected" })
            srvlog:expect({ "started", "connected", "data", "disconnected" })
            done()
          end)
        end),
        error = clog:fn("error", function(m) error("client error: " .. m) end),
      })
    end),
    connected = srvlog:fn("connected"),
    data = srvlog:fn("data", function(id, d) srv:send(id, d) end),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error", function(m) error("server error: " .. m) end),
  }), true, "listen(\"localhost\")")
  t.closing(srv)
end)

-- A refused IPv6 connect names the address in brackets.
t.run(5000, function(done)
  local port = t.closed_port("::1")
  local c = net.TCPSocket()
  c:connect("::1", port, {
    error = function(m)
      t.eq(m, ("connect to [::1]:%d failed: Connection refused"):format(port), "IPv6 refused message")
      done()
    end,
    connected = function() error("connected to a closed port") end,
  })
end)

-- A client on "localhost" reaches a server bound to only one of the
-- addresses localhost has in /etc/hosts (the resolver reads it): the client
-- tries each resolved address in turn, silently.
local localhost_ips = {}
do
  local f = io.open("/etc/hosts")
  if f then
    for line in f:lines() do
      line = line:gsub("#.*", "")
      local ip, names = line:match("^%s*(%S+)%s+(.*)$")
      if ip and (" " .. names .. " "):find("%slocalhost%s") and
         (ip == "127.0.0.1" or ip == "::1") and not localhost_ips[ip] then
        localhost_ips[ip] = true
        localhost_ips[#localhost_ips + 1] = ip
      end
    end
    f:close()
  end
end
t.truthy(#localhost_ips > 0, "/etc/hosts names localhost")
for _, ip in ipairs(localhost_ips) do
  t.run(10000, function(done)
    local srv, port = t.listen({
      data = function() end,
    }, ip)
    t.closing(srv)
    local c = net.TCPSocket()
    local errors = {}
    c:connect("localhost", port, {
      connected = function()
        local pip = c:peer()
        t.eq(pip, ip, "connected to the only listening family")
        c:close()
        done()
      end,
      error = function(m) errors[#errors + 1] = m end,
    })
    t.cleanup(function() t.same(errors, {}, "errors while trying addresses") end)
  end)
end
