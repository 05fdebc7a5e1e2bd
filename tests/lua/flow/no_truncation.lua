-- Issue 8 item 1: no silent truncation (SPEC Part C, revised flow
-- control). send() on an open connection queues the whole string, there is
-- no default max_buffer, and with max_buffer set the send that finds it
-- reached aborts the connection so the peer sees a reset, never a clean
-- end of a cut stream.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local KB, MB = 1024, 1024 * 1024
local CHUNK = 64 * KB
local pat = F.pattern(65521, 50 * MB, 41)
local NAMES = { "connected", "data", "disconnected", "error", "drain" }

-- 1. The seed-style loop inside 'data': 320 x 64 KiB (20 MB) queued at
-- once, then disconnect(id): the client receives every byte, in order,
-- then disconnected; no error on either side.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(id)
      for i = 0, 319 do
        local r = srv:send(id, pat:at(i * CHUNK, CHUNK))
        t.truthy(r == true or r == false, "send " .. i .. " result " .. t.show(r))
      end
      srv:disconnect(id)
    end,
  }))
  local check = pat:checker("20 MB from data")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:send("go") end,
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return clog:count("disconnected") == 1 end, 60000, "client disconnected")
  t.eq(check.n, 320 * CHUNK, "bytes received")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server disconnected")
  t.eq(srvlog:get("disconnected")[2], nil, "server reason")
  srv:stop()
  F.settle()
end

-- 2. One 50 MB send with max_buffer = 1 MiB onto an empty queue: accepted
-- whole (false), drain fires once, every byte arrives.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(id)
      t.eq(srv:send(id, pat:at(0, 50 * MB)), false, "50 MB send with max_buffer = 1 MiB")
    end,
  }), "127.0.0.1", { max_buffer = MB })
  local check = pat:checker("50 MB send")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    connected = function() c:send("go") end,
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return check.n == 50 * MB and srvlog:count("drain") == 1 end, 60000,
         "50 MB at the client, drain")
  F.sleep(100)
  t.eq(srvlog:count("drain"), 1, "drain count")
  t.eq(clog:count("error") + srvlog:count("error"), 0, "errors")
  c:disconnect()
  F.wait(function() return srvlog:count("disconnected") == 1 end, 5000, "server disconnected")
  srv:stop()
  F.settle()
end

-- 3. 40 MB queued in one callback, then server:disconnect(id) at once:
-- arrives whole.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    connected = function(id)
      for i = 0, 39 do srv:send(id, pat:at(i * MB, MB)) end
      t.eq(srv:disconnect(id), true, "disconnect(id)")
    end,
  }))
  local check = pat:checker("40 MB then disconnect")
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES, {
    data = function(d) check.feed(d) end,
  }))
  F.wait(function() return clog:count("disconnected") == 1 end, 60000, "client disconnected")
  t.eq(check.n, 40 * MB, "bytes received")
  t.eq(clog:count("error"), 0, "client errors")
  srv:stop()
  F.settle()
end

-- 4. Overflow with a peer that never reads: the send that finds max_buffer
-- queued returns nil, message, "MAX_BUFFER"; the peer's recv fails with
-- ECONNRESET; 'error' (with the code) then 'disconnected' fire, from the
-- loop; later sends return nil, message, code.
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 8)
  local clog = t.log("client")
  local c = net.TCPSocket({ max_buffer = 256 * KB })
  local r, msg, code
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES))
  F.wait(function() return clog:count("connected") == 1 end, 5000, "client connected")
  local afd = flowc.raw_accept(lfd, 2000)
  t.truthy(afd, "raw accept")
  local fired = t.fired
  for i = 0, 4095 do
    r, msg, code = c:send(pat:at(i * CHUNK, CHUNK))
    if r == nil then break end
  end
  t.eq(r, nil, "a send past max_buffer")
  t.eq(msg, "send buffer full (max_buffer reached)", "message")
  t.eq(code, "MAX_BUFFER", "code")
  t.eq(t.fired, fired, "nothing fired inside send")
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "client disconnected")
  clog:expect({ "connected", "error", "disconnected" }, nil, "client events")
  t.eq(clog:get("error")[2], "MAX_BUFFER", "error code")
  local r2, msg2, code2 = c:send("x")
  t.eq(r2, nil, "send after the abort")
  t.eq(type(msg2), "string", "send after the abort: message")
  t.eq(type(code2), "string", "send after the abort: code")
  -- The peer: whatever arrived, then a reset, never a clean end.
  local got, err = 0, nil
  for _ = 1, 10000 do
    local d, e = flowc.raw_recv(afd, 2000)
    if d == nil then err = e; break end
    t.truthy(#d > 0, "the peer saw a clean end of a cut stream")
    got = got + #d
  end
  t.eq(err, "Connection reset by peer", "the peer's recv after " .. got .. " bytes")
  flowc.raw_close(afd)
  flowc.raw_close(lfd)
  F.settle()
end
