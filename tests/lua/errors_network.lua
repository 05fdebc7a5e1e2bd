-- Network failures reach error(message) from the loop, never raised, with
-- messages that name what failed; idle_timeout ends quiet connections.
local net = require "net"
local t = require "testlib"

-- 1. Connection refused: error only, no connected/disconnected.
for _, host in ipairs { "127.0.0.1", "::1" } do
  t.run(5000, function(done)
    local port = t.closed_port(host)
    local log = t.log("refused")
    local c = net.TCPSocket()
    t.eq(t.call(c, "connect", host, port, {
      connected = log:fn("connected"),
      data = log:fn("data"),
      disconnected = log:fn("disconnected"),
      error = log:fn("error", function(msg)
        local shown = host:find(":", 1, true) and ("[" .. host .. "]") or host
        t.eq(msg, ("connect to %s:%d failed: Connection refused"):format(shown, port),
          "refused message")
        t.after(100, function()
          log:expect({ "error" })
          t.match(tostring(c), "closed", "tostring after a failed connect")
          t.fails("send after a failed connect", c.send, c, "x")
          done()
        end)
      end),
    }), true, "connect() returns true; the failure comes later")
  end)
end

-- 2. Unresolvable names: tests/lua/resolve/names.lua, run by test-resolver
-- against a fake DNS server in a network namespace (no query leaves the
-- machine).

-- 3. Address already in use: server error, no started.
t.run(5000, function(done)
  local srv1, port = t.listen({})
  t.closing(srv1)
  local log = t.log("inuse")
  local srv2 = net.TCPServer()
  t.eq(t.call(srv2, "listen", "127.0.0.1", port, {
    started = log:fn("started"),
    connected = log:fn("connected"),
    error = log:fn("error", function(msg)
      t.eq(msg, ("listen on 127.0.0.1:%d failed: Address already in use"):format(port),
        "listen failure message")
      t.after(100, function()
        log:expect({ "error" })
        t.fails("address() of a server that failed to listen", srv2.address, srv2)
        done()
      end)
    end),
  }), true, "listen() returns true; the failure comes later")
end)

-- 4. idle_timeout on a client: error("idle timeout") then disconnected; the
-- timer restarts with traffic in either direction.
t.run(10000, function(done)
  local IDLE = 300
  local srv, port
  local pings, last_ping = 0, nil
  local srvlog = t.log("server")
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      -- Five pings 60 ms apart: the client must stay up through them.
      local iv
      iv = net.setInterval(function()
        pings = pings + 1
        last_ping = net.now()
        srv:send(id, "ping")
        if pings == 5 then net.clearInterval(iv) end
      end, 60)
    end),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  local log = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = log:fn("connected"),
    data = log:fn("data"),
    error = log:fn("error", function(msg)
      t.eq(msg, "idle timeout", "client idle timeout message")
      t.eq(pings, 5, "the client stayed up while pinged")
      t.truthy(net.now() - last_ping >= IDLE - 5,
        ("idle timeout fired %d ms after the last traffic, before %d ms"):format(
          net.now() - last_ping, IDLE))
      t.truthy(net.now() - last_ping < IDLE + 2000, "idle timeout far too late")
    end),
    disconnected = log:fn("disconnected", function()
      t.after(100, function()
        t.same(log:names("data"), { "connected", "data", "error", "disconnected" }, "client events")
        t.eq(log:concat("data"), ("ping"):rep(5), "pings received")
        t.eq(srvlog:count("disconnected"), 1, "server saw the client go")
        t.eq(srvlog:count("error"), 0, "server error callback for a client's end")
        done()
      end)
    end),
  }, { idle_timeout = IDLE })
end)

-- 5. idle_timeout on a server: disconnected(id, "idle timeout"), no server
-- error; the client sees its connection end.
t.run(10000, function(done)
  local IDLE = 150
  local srv, port
  local srvlog = t.log("server")
  local t0
  srv, port = t.listen({
    connected = srvlog:fn("connected", function() t0 = net.now() end),
    disconnected = srvlog:fn("disconnected", function(id, reason)
      t.eq(reason, "idle timeout", "server disconnected reason")
      t.truthy(net.now() - t0 >= IDLE - 5, "server idle timeout too early")
      t.same(srv:clients(), {}, "clients() after the idle timeout")
    end),
    error = srvlog:fn("error"),
  }, nil, { idle_timeout = IDLE })
  t.closing(srv)
  local log = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = log:fn("connected"),
    error = log:fn("error"),
    disconnected = log:fn("disconnected", function()
      t.after(100, function()
        srvlog:expect({ "connected", "disconnected" })
        t.eq(log:names()[1], "connected", "client first event")
        t.eq(log:names()[#log.events], "disconnected", "client last event")
        t.eq(log:count("disconnected"), 1, "client disconnected once")
        done()
      end)
    end),
  })
end)

-- 6. A server connection reset by its peer: disconnected(id, reason) with
-- a reason, no server error callback. The client closes while the server's
-- data sits unread in its receive buffer, so its kernel answers with RST.
t.run(20000, function(done)
  local srvlog = t.log("server")
  local srv, port
  local chunk = ("r"):rep(256 * 1024)
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      for _ = 1, 256 do   -- until above high water; at most 64 MB
        if srv:send(id, chunk) ~= true then break end
      end
    end),
    disconnected = srvlog:fn("disconnected", function(id, reason)
      t.eq(type(reason), "string", "reason for a reset connection (" .. t.show(reason) .. ")")
      t.truthy(#reason > 0 and reason ~= "idle timeout", "reason " .. t.show(reason))
      t.after(100, function()
        srvlog:expect({ "connected", "disconnected" })
        done()
      end)
    end),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function()
      c:pause()
      t.after(100, function() c:close() end)
    end,
  })
end)

-- 7. A client connection reset by the server: error("connection to
-- HOST:PORT failed: ...") first, then disconnected, once.
t.run(20000, function(done)
  local srv, port
  local chunk = ("w"):rep(256 * 1024)
  srv, port = t.listen({
    connected = function(id)
      srv:pause(id)
      -- Close with the client's bytes unread: the kernel sends RST.
      t.after(150, function() srv:close(id) end)
    end,
  })
  t.closing(srv)
  local log = t.log("client")
  local c = net.TCPSocket()
  local iv
  c:connect("127.0.0.1", port, {
    connected = log:fn("connected", function()
      -- Keep writing so the reset is noticed.
      iv = net.setInterval(function()
        if c:send(chunk) == nil then net.clearInterval(iv) end
      end, 10)
    end),
    data = log:fn("data"),
    error = log:fn("error", function(msg)
      t.startswith(msg, ("connection to 127.0.0.1:%d failed: "):format(port), "client reset message")
    end),
    disconnected = log:fn("disconnected", function()
      net.clearInterval(iv)
      t.after(100, function()
        log:expect({ "connected", "error", "disconnected" })
        done()
      end)
    end),
  })
end)
