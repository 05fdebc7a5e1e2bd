-- Issue 8 items 3, 4 and 7: calls mean what the contract says.
-- shutdown() before 'connected' is remembered; close() means nothing more
-- fires, even when a connect timeout lands in the same loop round; pause()
-- before connect() is honoured once connected; send() right after
-- disconnect() returns nil, "connection is closing", "ESHUTDOWN".
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local NAMES = { "connected", "data", "disconnected", "error", "end" }

-- 1. c:connect(...); c:send(req); c:shutdown(): the server sees the request
-- then the end of the stream, answers, and the client gets the answer.
do
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local got = {}
  srv, port = t.listen(F.callbacks(srvlog, NAMES, {
    data = function(_, d) got[#got + 1] = d end,
    ["end"] = function(id)
      srv:send(id, "answer to " .. table.concat(got))
      srv:disconnect(id)
    end,
  }), "127.0.0.1", { allow_half_open = true })
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, F.callbacks(clog, NAMES))
  t.eq(c:send("request"), true, "send before connected")
  t.call(c, "shutdown")
  t.eq(select(2, c:send("more")), "connection is closing", "send after shutdown()")
  F.wait(function() return clog:count("disconnected") == 1 end, 5000, "the answer and the end")
  t.eq(clog:concat("data"), "answer to request", "the client's answer")
  clog:expect({ "connected", "data", "disconnected" }, "data", "client events")
  srv:stop()
  F.settle()
end

-- 2. A connect timeout and the application's close() in the same loop
-- round: the timeout is handled first; close() afterwards still means
-- nothing fires. (A listener with a full backlog drops the SYNs; a timer
-- that blocks past both deadlines puts them in one round.)
do
  local lfd, port = flowc.raw_listen("127.0.0.1", 1)
  local fillers = {}
  for i = 1, 6 do fillers[i] = assert(flowc.raw_connect("127.0.0.1", port)) end
  F.sleep(200)
  local lg = t.log("timed out and closed")
  local c = net.TCPSocket()
  local closed_at
  c:connect("127.0.0.1", port, F.callbacks(lg, NAMES), { timeout = 100 })
  net.setTimeout(function() flowc.sleep_ms(300) end, 20)
  net.setTimeout(function()
    c:close()
    closed_at = #lg.events
  end, 150)
  F.wait(function() return closed_at ~= nil end, 5000, "close() ran")
  F.sleep(200)
  t.eq(closed_at, 0, "events before close()")
  lg:expect({}, nil, "nothing fires after close()")
  t.eq(tostring(c), "net.TCPSocket (closed)", "tostring")
  for _, fd in ipairs(fillers) do flowc.raw_close(fd) end
  flowc.raw_close(lfd)
  F.settle()
end

-- 3. pause() before connect(): no 'data' until resume().
do
  local srv, port
  srv, port = t.listen({ connected = function(id) srv:send(id, "hello") end })
  local lg = t.log("paused before connect")
  local c = net.TCPSocket()
  t.call(c, "pause")
  c:connect("127.0.0.1", port, F.callbacks(lg, NAMES))
  F.wait(function() return lg:count("connected") == 1 end, 5000, "connected")
  F.sleep(200)
  t.eq(lg:count("data"), 0, "data while paused since before connect()")
  t.eq(c:stats().bytes_in, 0, "bytes_in while paused")
  c:resume()
  F.wait(function() return lg:count("data") >= 1 end, 5000, "data after resume()")
  t.eq(lg:concat("data"), "hello", "data")
  c:close()
  srv:stop()
  F.settle()
end

-- 4. send() right after disconnect(), with nothing queued (the socket may
-- already be closed underneath): nil, "connection is closing", "ESHUTDOWN",
-- for a client and for a server connection.
do
  local srv, port
  local server_result
  srv, port = t.listen({
    connected = function(id)
      t.eq(srv:disconnect(id), true, "server:disconnect(id)")
      server_result = table.pack(srv:send(id, "x"))
    end,
  })
  local client_result
  local c = net.TCPSocket()
  local c2 = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function()
      c:disconnect()
      client_result = table.pack(c:send("x"))
    end,
  })
  c2:connect("127.0.0.1", port, {})
  F.wait(function() return client_result and server_result end, 5000, "both sends")
  local closing = table.pack(nil, "connection is closing", "ESHUTDOWN")
  t.same(client_result, closing, "client send after disconnect()")
  t.same(server_result, closing, "server send after disconnect(id)")
  -- A socket that never connected: not connected.
  t.same(table.pack(net.TCPSocket():send("x")), table.pack(nil, "not connected", "ENOTCONN"),
         "send on a fresh socket")
  c2:close()
  srv:stop()
  F.settle()
end
