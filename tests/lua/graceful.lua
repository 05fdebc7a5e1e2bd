-- Graceful and abrupt ends: disconnect() flushes, close() drops, stop()
-- disconnects every client, a stopped server listens again.
local net = require "net"
local t = require "testlib"

local MB = 1024 * 1024
local block = t.blocks(64 * 1024, 777)
local big = {}
for i = 1, 16 do big[i] = block(i) end
big = table.concat(big)
local big_sum = t.checksum(big):value()

-- 1. Server sends 1 MB then disconnect(id) at once: the client receives
-- every byte before disconnected, and no error.
t.run(20000, function(done)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      local r = srv:send(id, big)
      t.truthy(r == true or r == false, "send 1 MB: " .. t.show(r))
      t.eq(t.call(srv, "disconnect", id), true, "disconnect(id) result")
      t.fails("send after disconnect(id)", srv.send, srv, id, "more")
      t.call(srv, "disconnect", id)   -- twice: returns, never raises
    end),
    data = srvlog:fn("data"),
    disconnected = srvlog:fn("disconnected", function(_, reason)
      t.eq(reason, nil, "reason after a graceful disconnect")
    end),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  local sum = t.checksum()
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = clog:fn("connected"),
    data = clog:fn("data", function(d) sum:update(d) end),
    error = clog:fn("error"),
    disconnected = clog:fn("disconnected", function()
      t.eq(sum.n, MB, "bytes received before disconnected")
      t.eq(sum:value(), big_sum, "checksum")
      t.after(100, function()
        t.same(clog:names("data"), { "connected", "data", "disconnected" }, "client events")
        srvlog:expect({ "connected", "disconnected" })
        t.same(srv:clients(), {}, "clients() after the end")
        done()
      end)
    end),
  })
end)

-- 2. No data fires after disconnect(id), even while the peer keeps sending.
t.run(20000, function(done)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  local disconnect_called = false
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      net.setTimeout(function()
        t.truthy(srvlog:count("data") > 0, "the client was sending")
        t.eq(t.call(srv, "disconnect", id), true, "disconnect(id)")
        disconnect_called = true
      end, 50)
    end),
    data = srvlog:fn("data", function()
      t.eq(disconnect_called, false, "data fired after disconnect(id)")
    end),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  local c = net.TCPSocket()
  local iv
  c:connect("127.0.0.1", port, {
    connected = clog:fn("connected", function()
      iv = net.setInterval(function()
        if c:send("tick") == nil then net.clearInterval(iv) end
      end, 5)
    end),
    error = clog:fn("error"),
    disconnected = clog:fn("disconnected", function()
      net.clearInterval(iv)
      t.after(100, function()
        local names = srvlog:names("data")
        t.eq(names[1], "connected", "server first event")
        t.eq(names[#names], "disconnected", "server last event")
        t.eq(srvlog:count("disconnected"), 1, "server disconnected once")
        t.eq(clog:names()[#clog.events], "disconnected", "client last event")
        t.eq(clog:count("disconnected"), 1, "client disconnected once")
        done()
      end)
    end),
  })
end)

-- 3. close(id) drops queued bytes: the client gets disconnected (maybe
-- after an error), with at most what was sent, never more.
t.run(20000, function(done)
  local srvlog, clog = t.log("server"), t.log("client")
  local srv, port
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      for _ = 1, 8 do srv:send(id, big) end   -- 8 MB queued or sent
      t.eq(t.call(srv, "close", id), true, "close(id) result")
      t.fails("send after close(id)", srv.send, srv, id, "x")
    end),
    data = srvlog:fn("data"),
    disconnected = srvlog:fn("disconnected", function()
      t.same(srv:clients(), {}, "clients() after close(id)")
    end),
    error = srvlog:fn("error"),
  })
  t.closing(srv)
  local n = 0
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = clog:fn("connected"),
    data = clog:fn("data", function(d) n = n + #d end),
    error = clog:fn("error"),
    disconnected = clog:fn("disconnected", function()
      t.truthy(n <= 8 * MB, "received more than sent")
      t.after(100, function()
        local names = clog:names("data")
        t.eq(names[1], "connected", "client first event")
        t.eq(names[#names], "disconnected", "client last event")
        t.eq(clog:count("disconnected"), 1, "client disconnected once")
        srvlog:expect({ "connected", "disconnected" })
        done()
      end)
    end),
  })
end)

-- 4. stop() with three clients: the listener closes at once, each client
-- gets disconnected(id) from the loop, clients() empties; listen again.
t.run(20000, function(done)
  local srvlog = t.log("server")
  local clogs, socks = {}, {}
  local srv, port
  local stopped = false
  local function all_ended()
    for i = 1, 3 do
      if clogs[i]:count("disconnected") ~= 1 then return false end
    end
    return srvlog:count("disconnected") == 3
  end
  local function phase2()
    -- The old port is closed at once: it can be bound (no listener holds
    -- it), and stays bound, never listening, so the connect is refused.
    t.closed_port("127.0.0.1", port)
    local refused = net.TCPSocket()
    refused:connect("127.0.0.1", port, {
      connected = function() error("connected to a stopped server") end,
      error = function(m)
        t.has(m, "Connection refused", "connect to a stopped server")
        -- Listen again on the same server object.
        local log2 = t.log("relisten")
        t.eq(t.call(srv, "listen", "127.0.0.1", 0, {
          started = log2:fn("started", function()
            local _, p2 = srv:address()
            local c4 = net.TCPSocket()
            c4:connect("127.0.0.1", p2, {
              connected = function() c4:send("again") end,
              data = function(d)
                t.eq(d, "again", "echo after listen again")
                c4:disconnect()
              end,
              error = function(m2) error("client 4 error: " .. m2) end,
            })
          end),
          connected = log2:fn("connected", function(id)
            for _, ev in ipairs(srvlog.events) do
              if ev.name == "connected" then
                t.truthy(id > ev[1], "id reused after stop()+listen()")
              end
            end
          end),
          data = log2:fn("data", function(id, d) srv:send(id, d) end),
          disconnected = log2:fn("disconnected", function()
            t.after(50, function()
              log2:expect({ "started", "connected", "data", "disconnected" })
              done()
            end)
          end),
          error = log2:fn("error"),
        }), true, "listen() after stop()")
      end,
    })
  end
  srv, port = t.listen({
    connected = srvlog:fn("connected", function()
      if srvlog:count("connected") < 3 then return end
      local ids = {}
      for _, ev in ipairs(srvlog.events) do
        if ev.name == "connected" then ids[#ids + 1] = ev[1] end
      end
      table.sort(ids)
      t.same(srv:clients(), ids, "clients() before stop(), ascending")
      -- Wait for the three clients to see connected too.
      local wait
      wait = net.setInterval(function()
        for i = 1, 3 do
          if clogs[i]:count("connected") ~= 1 then return end
        end
        net.clearInterval(wait)
        t.call(srv, "stop")
        stopped = true
        t.fails("address() after stop()", srv.address, srv)
        t.call(srv, "stop")  -- idempotent
      end, 5)
    end),
    disconnected = srvlog:fn("disconnected", function(id, reason)
      t.truthy(stopped, "disconnected before stop()")
      t.eq(reason, nil, "reason after stop()")
      for _, cid in ipairs(srv:clients()) do
        t.truthy(cid ~= id, "clients() lists an ended connection")
      end
      if all_ended() then phase2() end
    end),
    error = srvlog:fn("error"),
  })
  for i = 1, 3 do
    clogs[i] = t.log("client" .. i)
    socks[i] = net.TCPSocket()
    socks[i]:connect("127.0.0.1", port, {
      connected = clogs[i]:fn("connected"),
      data = clogs[i]:fn("data"),
      error = clogs[i]:fn("error"),
      disconnected = clogs[i]:fn("disconnected", function()
        if all_ended() then phase2() end
      end),
    })
  end
  t.cleanup(function()
    srv:stop()
    for i = 1, 3 do
      clogs[i]:expect({ "connected", "disconnected" })
    end
    local ids = {}
    for _, ev in ipairs(srvlog.events) do
      if ev.name == "disconnected" then ids[#ids + 1] = ev[1] end
    end
    table.sort(ids)
    t.eq(#ids, 3, "three disconnected(id)")
    t.truthy(ids[1] ~= ids[2] and ids[2] ~= ids[3], "one disconnected per id: " .. t.show(ids))
    t.same(srv:clients(), {}, "clients() at the end")
  end)
end)

-- 5. disconnect() while connecting: connects, flushes what was queued,
-- closes (connected and disconnected fire); close() while connecting
-- cancels and nothing fires.
t.run(10000, function(done)
  local got = {}
  local srv, port
  local ended = 0
  local clog = t.log("client")
  local function finish()
    ended = ended + 1
    if ended < 2 then return end
    t.after(100, function()
      t.eq(table.concat(got), "queued-before-connect", "bytes flushed by disconnect()")
      clog:expect({ "connected", "disconnected" })
      done()
    end)
  end
  srv, port = t.listen({
    data = function(_, d) got[#got + 1] = d end,
    disconnected = function(_, reason)
      t.eq(reason, nil, "orderly end")
      finish()
    end,
  })
  t.closing(srv)
  local c = net.TCPSocket()
  t.call(c, "connect", "127.0.0.1", port, {
    connected = clog:fn("connected"),
    data = clog:fn("data"),
    error = clog:fn("error"),
    disconnected = clog:fn("disconnected", finish),
  })
  t.eq(c:send("queued-before-connect"), true, "send while connecting")
  t.call(c, "disconnect")
  t.fails("send after disconnect() while connecting", c.send, c, "x")

  -- close() while connecting (and while resolving a name): nothing fires.
  local quiet = t.log("cancelled")
  local cbs = {
    connected = quiet:fn("connected"), data = quiet:fn("data"),
    error = quiet:fn("error"), disconnected = quiet:fn("disconnected"),
  }
  local c2 = net.TCPSocket()
  t.call(c2, "connect", "127.0.0.1", port, cbs)
  t.call(c2, "close")
  t.eq(tostring(c2), "net.TCPSocket (closed)", "tostring after close() while connecting")
  local c3 = net.TCPSocket()
  t.call(c3, "connect", ("a"):rep(63) .. "." .. ("b"):rep(63) .. ".invalid", 80, cbs)
  t.call(c3, "close")
  local c4 = net.TCPSocket()
  t.call(c4, "connect", ("h"):rep(255), 80, cbs)   -- 255 bytes: accepted
  t.call(c4, "close")
  t.cleanup(function()
    t.eq(#quiet.events, 0, "callbacks after close() while connecting: " ..
      t.show(quiet:names()))
  end)
end)
