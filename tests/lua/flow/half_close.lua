-- shutdown(): the client sends a request and shuts its side down.
-- (a) With allow_half_open the server's 'end' fires, the server can still
-- send its reply, then disconnect. (b) Without it, the peer's FIN closes
-- the connection after flushing what is queued. (c) The server shuts down
-- its side; a half-open client gets 'end', can still send, then ends.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local REPLY = 6 * 1024 * 1024
local pat = F.pattern(65521, REPLY, 11)
local NAMES = { "connected", "data", "disconnected", "error", "end" }

-- (a)
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    ["end"] = function(id)
      t.eq(srvlog:concat("data", 2), "request", "request before end")
      local r = srv:send(id, pat:at(0, REPLY))
      t.truthy(r == true or r == false, "reply after end: " .. t.show(r))
      t.eq(srv:disconnect(id), true, "disconnect after the reply")
    end,
  }), "127.0.0.1", { allow_half_open = true })
  local c = net.TCPSocket()
  local check = pat:checker("reply")
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      t.eq(c:send("request"), true, "request")
      t.call(c, "shutdown")
      local r, msg = c:send("late")
      t.eq(r, nil, "send after shutdown()")
      t.eq(type(msg), "string", "send after shutdown() message")
    end,
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return clog:count("disconnected") == 1 and srvlog:count("disconnected") == 1 end,
         20000, "both ends done")
  t.eq(check.n, REPLY, "reply bytes at the client")
  clog:expect({ "connected", "data", "disconnected" }, "data", "client events")
  srvlog:expect({ "connected", "data", "end", "disconnected" }, "data", "server events")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  srv:stop()
  F.settle()
end

-- (b)
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(id, d)
      if srvlog:concat("data", 2) == "request" then
        local r = srv:send(id, pat:at(0, REPLY))
        t.truthy(r == true or r == false, "reply: " .. t.show(r))
      end
    end,
  }))
  local c = net.TCPSocket()
  local check = pat:checker("reply")
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function()
      c:pause()   -- the reply stays queued at the server while its FIN comes in
      t.eq(c:send("request"), true, "request")
      c:shutdown()
      t.after(300, function() c:resume() end)
    end,
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return srvlog:count("data") >= 1 and srvlog:concat("data", 2) == "request" end,
         5000, "request at the server")
  F.sleep(100)
  local sid = srvlog:get("connected")[1]
  local st = srv:stats(sid)
  -- The FIN has come in, the reply is still being flushed: the id is
  -- still there, with bytes queued.
  t.truthy(st, "stats(id) while flushing after the peer's FIN")
  t.truthy(st.queued > 0, "reply queued while the client is paused")
  F.wait(function() return clog:count("disconnected") == 1 and srvlog:count("disconnected") == 1 end,
         20000, "both ends done")
  t.eq(check.n, REPLY, "reply bytes at the client")
  t.eq(srvlog:count("end"), 0, "end without allow_half_open")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  clog:expect({ "connected", "data", "disconnected" }, "data", "client events")
  srv:stop()
  F.settle()
end

-- (c)
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(id, d)
      if d == "request" then
        t.eq(srv:send(id, "bye"), true, "server bye")
        t.eq(srv:shutdown(id), true, "server:shutdown(id) result")
        t.eq(select(1, srv:send(id, "x")), nil, "server send after shutdown(id)")
      end
    end,
  }))
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:send("request") end,
    ["end"] = function()
      t.eq(clog:concat("data"), "bye", "data before end")
      t.eq(c:send("late"), true, "send after the peer's FIN")
      c:disconnect()
    end,
  }), { allow_half_open = true })
  F.wait(function() return clog:count("disconnected") == 1 and srvlog:count("disconnected") == 1 end,
         5000, "both ends done")
  clog:expect({ "connected", "data", "end", "disconnected" }, "data", "client events")
  t.eq(srvlog:concat("data", 2), "requestlate", "server got the request and the late bytes")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  t.eq(srvlog:count("end"), 0, "server end without allow_half_open")
  srv:stop()
  F.settle()
end
