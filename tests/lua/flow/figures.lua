-- Issue 8 items 9, 10 and 11: correct figures and timers.
-- stats(id) answers inside that connection's disconnected(id); server
-- totals never decrease; a client's bytes_out counts only bytes the kernel
-- accepted. idle_timeout fires within 10% (or 50 ms) of the set time after
-- the last traffic either way, also after sends, and not while the
-- application paused reading. Each server connection keeps the options it
-- was accepted with.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local MB = 1024 * 1024
local NAMES = { "connected", "data", "disconnected", "error", "drain" }

-- The idle timeout fires within 10% (at least 50 ms) of a reference
-- timer set for the same delay at the moment of the last traffic: both
-- run on the same loop, so a loaded machine delays them alike.
local function near(got_at, ref_at, idle, what)
  t.truthy(ref_at, what .. ": the reference timer fired")
  local slack = math.max(50, idle // 10)
  t.between(got_at - ref_at, -slack, slack, what .. " (ms after the reference timer)")
end

-- 1. stats(id) inside disconnected(id); totals sampled in every callback
-- and every 5 ms never go down.
do
  local srv, port
  local inside
  local last = { bytes_in = 0, bytes_out = 0 }
  local function sample(where)
    local st = srv:stats()
    t.truthy(st.bytes_in >= last.bytes_in, where .. ": bytes_in went down")
    t.truthy(st.bytes_out >= last.bytes_out, where .. ": bytes_out went down")
    last = st
  end
  srv, port = t.listen({
    connected = function(id) sample("connected"); srv:send(id, ("s"):rep(1000)) end,
    data = function(id, d) sample("data"); srv:send(id, d) end,
    disconnected = function(id)
      sample("disconnected")
      inside = srv:stats(id)
    end,
  })
  local iv = net.setInterval(function() sample("timer") end, 5)
  local c = net.TCPSocket()
  local got = 0
  c:connect("127.0.0.1", port, {
    connected = function() c:send(("c"):rep(3000)) end,
    data = function(d)
      got = got + #d
      if got == 4000 then c:disconnect() end
    end,
  })
  F.wait(function() return inside ~= nil end, 5000, "disconnected(id)")
  t.eq(type(inside), "table", "stats(id) inside disconnected(id)")
  t.eq(inside.bytes_in, 3000, "bytes_in inside disconnected(id)")
  t.eq(inside.bytes_out, 4000, "bytes_out inside disconnected(id)")
  sample("after")
  t.eq(last.bytes_in, 3000, "server total bytes_in")
  t.eq(last.bytes_out, 4000, "server total bytes_out")
  net.clearInterval(iv)
  srv:stop()
  F.settle()
end

-- 2. Bytes queued before a refused connect were never accepted by a kernel.
do
  local bound, port = flowc.raw_listen("127.0.0.1", -1)  -- bound, not listening
  local c = net.TCPSocket()
  local code, out
  c:connect("127.0.0.1", port, {
    error = function(_, cd)
      code = cd
      out = c:stats().bytes_out
    end,
  })
  t.eq(c:send(("q"):rep(5000)), true, "send before the refused connect")
  F.wait(function() return code ~= nil end, 5000, "refused")
  t.eq(code, "ECONNREFUSED", "code")
  t.eq(out, 0, "bytes_out inside error")
  t.eq(c:stats().bytes_out, 0, "bytes_out after a refused connect")
  flowc.raw_close(bound)
  F.settle()
end

-- 3. idle_timeout after sends: the client's 8 MB wait in its queue while the
-- server is paused; the server resumes at 150 ms; the idle timeout counts
-- from the last bytes written (when drain fires), not from when the timer
-- last looked.
do
  local IDLE = 400
  local srv, port, sid
  srv, port = t.listen({
    connected = function(id) sid = id; srv:pause(id) end,
  })
  local lg = t.log("idle after sends")
  local c = net.TCPSocket({ idle_timeout = IDLE })
  local ref_at
  c:connect("127.0.0.1", port, F.callbacks(lg, NAMES, {
    connected = function()
      for _ = 1, 8 do c:send(("i"):rep(MB)) end
      net.setTimeout(function() srv:resume(sid) end, 150)
    end,
    drain = function() net.setTimeout(function() ref_at = net.now() end, IDLE) end,
  }))
  F.wait(function() return lg:count("error") == 1 and ref_at end, 5000, "idle timeout")
  local err = lg:get("error")
  t.truthy(lg:get("drain"), "drain fired")
  t.eq(err[1], "idle timeout", "message")
  t.eq(err[2], "IDLE_TIMEOUT", "code")
  near(err.at, ref_at, IDLE, "idle timeout after the last write")
  srv:stop()
  F.settle()
end

-- 4. idle_timeout after reads, on a server connection, and not while the
-- application paused reading.
do
  local IDLE = 300
  local srvlog = t.log("server")
  local srv, port
  local ref_at
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function() net.setTimeout(function() ref_at = net.now() end, IDLE) end,
  }), "127.0.0.1", { idle_timeout = IDLE })
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function()
      net.setTimeout(function() c:send("ping") end, 100)
    end,
  })
  F.wait(function() return srvlog:count("disconnected") == 1 and ref_at end, 5000,
         "server idle timeout")
  local ev = srvlog:get("disconnected")
  t.eq(ev[2], "idle timeout", "reason")
  t.eq(ev[3], "IDLE_TIMEOUT", "code")
  near(ev.at, ref_at, IDLE, "idle timeout after the last read")
  F.wait(function() return tostring(c) == "net.TCPSocket (closed)" end, 5000, "client end")

  srv:stop()
  F.settle()

  -- Paused: not idle. The client pauses at once, sleeps 2 x IDLE, resumes.
  local srv2, port2 = t.listen({})
  local lg = t.log("paused")
  local resumed, ref2_at = false, nil
  local c2 = net.TCPSocket({ idle_timeout = IDLE })
  c2:connect("127.0.0.1", port2, F.callbacks(lg, NAMES, {
    connected = function()
      c2:pause()
      net.setTimeout(function()
        t.eq(lg:count("error"), 0, "idle timeout while paused")
        c2:resume()
        resumed = true
        net.setTimeout(function() ref2_at = net.now() end, IDLE)
      end, 2 * IDLE)
    end,
  }))
  F.wait(function() return lg:count("error") == 1 and ref2_at end, 5000, "idle timeout after resume")
  t.truthy(resumed, "resumed before the idle timeout")
  near(lg:get("error").at, ref2_at, IDLE, "idle timeout after resume()")
  srv2:stop()
  F.settle()
end

-- 5. A later listen() with other options does not change live connections:
-- a connection still closing from stop() keeps its linger_timeout.
do
  local srvlog = t.log("server")
  local srv = net.TCPServer()
  local sid
  srv:listen("127.0.0.1", 0, F.callbacks(srvlog, NAMES, {
    connected = function(id) sid = id end,
  }), { linger_timeout = 300 })
  local _, port = srv:address()
  local fd = assert(flowc.raw_connect("127.0.0.1", port))   -- never reads
  F.wait(function() return sid ~= nil end, 5000, "accepted")
  for _ = 1, 16 do srv:send(sid, ("l"):rep(MB)) end
  srv:stop()
  srv:listen("127.0.0.1", 0, F.callbacks(srvlog, NAMES), { linger_timeout = 20000 })
  local ref_at
  net.setTimeout(function() ref_at = net.now() end, 300)
  F.wait(function() return srvlog:count("disconnected") == 1 and ref_at end, 5000,
         "the old connection's linger")
  local ev = srvlog:get("disconnected")
  t.eq(ev[3], "LINGER_TIMEOUT", "code")
  near(ev.at, ref_at, 300, "linger timeout of the first listen()")
  flowc.raw_close(fd)
  srv:stop()
  F.settle()
end
