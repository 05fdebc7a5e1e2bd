-- pause()/resume() on clients and server:pause(id)/resume(id): no data
-- callback while paused, every byte after resume, in order and once;
-- unknown ids give nil, message; a non-integer id raises; calls on a
-- socket that is not connected do nothing and never raise.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

-- The expected stream "m1;m2;...;mN;".
local function messages(n)
  local out = {}
  for i = 1, n do out[i] = "m" .. i .. ";" end
  return table.concat(out)
end

local N = 40

-- A. A client paused mid-stream: the server sends a message every 10 ms.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local iv, sent = nil, 0
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "disconnected", "error" }, {
    connected = function(id)
      iv = net.setInterval(function()
        sent = sent + 1
        t.eq(srv:send(id, "m" .. sent .. ";"), true, "server send")
        if sent == N then net.clearInterval(iv) end
      end, 10)
    end,
  }))
  local c = net.TCPSocket()
  local got = {}
  local paused_at
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "data", "disconnected", "error" }, {
    data = function(d)
      t.eq(paused_at, nil, "client data while paused")
      got[#got + 1] = d
      if #got == 1 then
        t.eq(c:pause(), nil, "pause() returns nothing")
        paused_at = net.now()
      end
    end,
  }))
  F.wait(function() return paused_at ~= nil end, 5000, "first data")
  local in_at_pause = c:stats().bytes_in
  F.sleep(300)
  t.eq(c:stats().bytes_in, in_at_pause, "client bytes_in while paused")
  t.truthy(sent >= 10, "the server kept sending while the client was paused")
  c:pause()      -- twice: harmless
  paused_at = nil
  c:resume()
  c:resume()     -- twice: harmless
  F.wait(function() return sent == N and #table.concat(got) == #messages(N) end, 10000,
         "every message after resume")
  t.eq(table.concat(got), messages(N), "client stream, in order, once")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server disconnected")
  srv:stop()
  F.settle()
end

-- B. A server connection paused mid-stream by server:pause(id); the ids
-- given to pause/resume are checked.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local got = {}
  local sid, paused = nil, false
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error" }, {
    connected = function(id) sid = id end,
    data = function(id, d)
      t.eq(paused, false, "server data while paused")
      got[#got + 1] = d
      if #got == 1 then
        t.eq(srv:pause(id), true, "server:pause(id) result")
        paused = true
      end
    end,
  }))
  local c = net.TCPSocket()
  local iv, sent = nil, 0
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "disconnected", "error" }, {
    connected = function()
      iv = net.setInterval(function()
        sent = sent + 1
        t.eq(c:send("m" .. sent .. ";"), true, "client send")
        if sent == N then net.clearInterval(iv) end
      end, 10)
    end,
  }))
  F.wait(function() return paused end, 5000, "first data at the server")
  local in_at_pause = srv:stats(sid).bytes_in
  F.sleep(300)
  t.eq(srv:stats(sid).bytes_in, in_at_pause, "server bytes_in while paused")
  t.truthy(sent >= 10, "the client kept sending while the server was paused")

  -- Unknown ids: nil, message; never raise. Wrong types raise.
  local r, msg = srv:pause(sid + 1000)
  t.eq(r, nil, "pause(unknown id)")
  t.eq(msg, ("unknown client id %d"):format(sid + 1000), "pause(unknown id) message")
  r, msg = srv:resume(sid + 1000)
  t.eq(r, nil, "resume(unknown id)")
  t.eq(msg, ("unknown client id %d"):format(sid + 1000), "resume(unknown id) message")
  -- nil, message, code (issue 8 item 13 added the code)
  t.eq(select("#", srv:pause(0)), 3, "pause(0) returns nil, message, code")
  t.eq(select(3, srv:pause(0)), "ENOTCONN", "pause(0) code")
  t.eq(select("#", srv:resume(-1)), 3, "resume(-1) returns nil, message, code")
  t.raises({ "bad argument #1 to 'pause'", "number expected, got string" },
           function() return srv:pause("x") end)
  t.raises({ "bad argument #1 to 'resume'", "integer" }, function() return srv:resume(1.5) end)
  t.raises({ "bad argument #1 to 'pause'" }, function() return srv:pause() end)

  t.eq(srv:pause(sid), true, "pause(id) twice")
  paused = false
  t.eq(srv:resume(sid), true, "server:resume(id) result")
  t.eq(srv:resume(sid), true, "resume(id) twice")
  F.wait(function() return sent == N and #table.concat(got) == #messages(N) end, 10000,
         "every message after resume(id)")
  t.eq(table.concat(got), messages(N), "server stream, in order, once")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server disconnected")
  -- The id has ended: nil, message.
  r, msg = srv:pause(sid)
  t.eq(r, nil, "pause(ended id)")
  t.eq(msg, ("unknown client id %d"):format(sid), "pause(ended id) message")
  t.eq(select(1, srv:resume(sid)), nil, "resume(ended id)")
  srv:stop()
  F.settle()
end

-- C. A client paused while connecting reads nothing after connected until
-- resume(); pause/resume on a socket that never connected do nothing.
do
  local idle = net.TCPSocket()
  t.noraise("pause() on a new socket", idle.pause, idle)
  t.noraise("resume() on a new socket", idle.resume, idle)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, { "connected", "disconnected", "error" }, {
    connected = function(id) srv:send(id, "greeting") end,
  }))
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, { "connected", "data", "disconnected", "error" }))
  c:pause()
  F.wait(function() return clog:count("connected") == 1 and srvlog:count("connected") == 1 end,
         5000, "connected")
  F.sleep(300)
  t.eq(clog:count("data"), 0, "data while paused since connecting")
  c:resume()
  F.wait(function() return clog:count("data") > 0 end, 5000, "data after resume")
  t.eq(clog:concat("data"), "greeting", "greeting")
  c:disconnect()
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client disconnected")
  t.noraise("pause() after the end", c.pause, c)
  t.noraise("resume() after the end", c.resume, c)
  srv:stop()
  F.settle()
end
