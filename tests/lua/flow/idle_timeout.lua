-- idle_timeout: a client with no traffic gets error("idle timeout") then
-- disconnected; a server connection gets disconnected(id, "idle timeout");
-- traffic in either direction keeps a connection alive.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local NAMES = { "connected", "data", "disconnected", "error" }

-- 1. Client idle timeout against a server that never sends.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port = t.listen(F.callbacks(srvlog, NAMES))
  local c = net.TCPSocket()
  local t0
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() t0 = net.now() end,
  }), { idle_timeout = 300 })
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client idle end")
  clog:expect({ "connected", "error", "disconnected" }, nil, "client events")
  t.eq(clog:get("error")[1], "idle timeout", "client error message")
  t.between(clog:get("error").at - t0, 290, 3000, "ms until the client's idle timeout")
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server sees the end")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason for the client's orderly close")
  t.eq(srvlog:count("error"), 0, "server errors")
  srv:stop()
  F.settle()
end

-- 2. Server idle timeout: a raw client that connects and never sends is
-- closed by the server; the reason is "idle timeout"; the server's error
-- callback does not fire (it is for the server itself).
do
  local srvlog = t.log("server")
  local srv, port = t.listen(F.callbacks(srvlog, NAMES), "127.0.0.1", { idle_timeout = 300 })
  local fd = assert(flowc.raw_connect("127.0.0.1", port))
  F.wait(function() return srvlog:count("connected") == 1 end, 5000, "raw client accepted")
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server idle end")
  t.between(srvlog:get("disconnected").at - srvlog:get("connected").at, 290, 3000,
            "ms until the server's idle timeout")
  local ev = srvlog:get("disconnected")
  t.eq(ev[1], srvlog:get("connected")[1], "disconnected id")
  t.eq(ev[2], "idle timeout", "disconnected reason")
  t.eq(srvlog:count("error"), 0, "server error callback")
  t.eq(flowc.raw_recv(fd, 2000), "", "the raw client sees EOF")
  flowc.raw_close(fd)
  -- The same with an lnet client: it sees an orderly end.
  local clog = t.log("client")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES))
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client ended by the server")
  clog:expect({ "connected", "disconnected" }, nil, "client events")
  t.eq(srvlog:get("disconnected", 2)[2], "idle timeout", "second reason")
  srv:stop()
  F.settle()
end

-- 3. Traffic keeps connections alive: with idle_timeout = 300 on both ends,
-- (a) ping-pong every 100 ms, (b) client -> server only, (c) server ->
-- client only. All survive 1 s, then end normally.
local function keepalive(mode)
  local srvlog, clog = t.log("server " .. mode), t.log("client " .. mode)
  local srv, port
  local ivs = {}
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id)
      if mode == "server->client" then
        ivs[#ivs + 1] = net.setInterval(function() srv:send(id, "tick") end, 100)
      end
    end,
    data = function(id, d) if mode == "ping-pong" then srv:send(id, d) end end,
  }), "127.0.0.1", { idle_timeout = 300 })
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      if mode ~= "server->client" then
        ivs[#ivs + 1] = net.setInterval(function() c:send("ping") end, 100)
      end
    end,
  }), { idle_timeout = 300 })
  F.wait(function() return clog:count("connected") == 1 end, 5000, mode .. ": connected")
  F.sleep(1000)
  t.eq(clog:count("error"), 0, mode .. ": client error")
  t.eq(clog:count("disconnected"), 0, mode .. ": client disconnected")
  t.eq(srvlog:count("disconnected"), 0, mode .. ": server disconnected")
  if mode == "ping-pong" then
    t.truthy(#clog:concat("data") >= 7 * 4, mode .. ": pongs received")
  elseif mode == "server->client" then
    t.truthy(#clog:concat("data") >= 7 * 4, mode .. ": ticks received")
  else
    t.eq(clog:count("data"), 0, mode .. ": nothing comes back")
    t.truthy(#srvlog:concat("data", 2) >= 7 * 4, mode .. ": pings received")
  end
  for _, iv in ipairs(ivs) do net.clearInterval(iv) end
  -- Now silent: both ends time out (the first one to fire closes it).
  F.wait(function() return clog:count("disconnected") == 1 and srvlog:count("disconnected") == 1 end,
         5000, mode .. ": idle end after the traffic stopped")
  srv:stop()
  F.settle()
end

keepalive("ping-pong")
keepalive("client->server")
keepalive("server->client")
