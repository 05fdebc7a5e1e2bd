-- send() results: true below high water, false above it (then drain fires
-- once), nil, message, code when a send finds max_buffer bytes queued (the
-- connection is then aborted) or without an open connection; bytes sent
-- before connected arrive after it.
local net = require "net"
local t = require "testlib"

local KB = 1024
local CHUNK = 256 * KB
local LIMIT = 64 * 1024 * KB    -- bound on what a loop may push
local block = t.blocks(CHUNK, 4242)

-- 1. Small sends return true; no drain without a false; send before
-- connected queues; send after disconnect() returns nil, message.
t.run(10000, function(done)
  local srv, port
  local received = {}
  srv, port = t.listen({
    data = function(id, d) received[#received + 1] = d end,
    disconnected = function()
      t.eq(table.concat(received), "early1early2hello", "server received, in order")
      done()
    end,
    error = function(m) error("server error: " .. m) end,
  })
  t.closing(srv)
  local drains = 0
  local c = net.TCPSocket()
  c:connect("127.0.0.1", port, {
    connected = function()
      t.eq(c:send("hello"), true, "small send")
      t.after(100, function()
        t.eq(drains, 0, "drain without a false send()")
        c:disconnect()
        local r, msg = c:send("late")
        t.eq(r, nil, "send after disconnect()")
        t.eq(type(msg), "string", "send after disconnect() message")
      end)
    end,
    drain = function() drains = drains + 1 end,
    error = function(m) error("client error: " .. m) end,
  })
  -- While connecting, send queues (below high water: true).
  t.eq(c:send("early1"), true, "send before connected")
  t.eq(c:send("early2"), true, "second send before connected")
end)

-- Pushes distinct chunks into send until it returns the wanted result
-- (false or nil); returns the list of accepted chunks and the last result.
local function push_until(send, stats, want, what)
  local accepted, pushed = {}, 0
  local i = 0
  while pushed < LIMIT do
    i = i + 1
    local chunk = block(i)
    local before = stats().queued
    local r, msg = send(chunk)
    pushed = pushed + #chunk
    if r == nil then
      t.eq(stats().queued, before, what .. ": a refused send queued bytes")
      t.eq(type(msg), "string", what .. ": refusal message")
      if want == nil then return accepted, r, msg end
      error(what .. ": send refused before returning " .. t.show(want) .. ": " .. msg)
    end
    accepted[#accepted + 1] = chunk
    if r == false and want == false then return accepted, r end
    t.truthy(r == true or r == false, what .. ": send result " .. t.show(r))
  end
  error(("%s: send never returned %s after %d bytes"):format(what, t.show(want), pushed))
end

-- 2. high_water: with the peer paused, send eventually returns false
-- (queue above 1 KiB); while it returned true the queue was at or below
-- 1 KiB; drain fires once, after the queue has emptied.
t.run(30000, function(done)
  local srv, port
  local sid
  local sum = t.checksum()
  local expected_sum, expected_n
  srv, port = t.listen({
    connected = function(id)
      sid = id
      srv:pause(id)
    end,
    data = function(_, d)
      sum:update(d)
      if expected_n and sum.n == expected_n then
        t.eq(sum:value(), expected_sum, "bytes received after resume")
        done()
      end
    end,
    error = function(m) error("server error: " .. m) end,
  })
  t.closing(srv)
  local drains = 0
  local drained_at
  local c = net.TCPSocket()
  t.cleanup(function() c:close() end)
  c:connect("127.0.0.1", port, {
    connected = function()
      -- Let the server's pause take effect.
      t.after(50, function()
        local accepted = push_until(function(d)
          local r, m = c:send(d)
          if r == true then
            t.truthy(c:stats().queued <= KB, "true while queued above high_water: " .. c:stats().queued)
          elseif r == false then
            t.truthy(c:stats().queued > KB, "false while queued at or below high_water")
          end
          return r, m
        end, function() return c:stats() end, false, "high_water")
        local all = t.checksum()
        for _, chunk in ipairs(accepted) do all:update(chunk) end
        expected_sum, expected_n = all:value(), all.n
        t.after(100, function()
          t.eq(drains, 0, "drain while the peer is paused")
          srv:resume(sid)
        end)
      end)
    end,
    drain = function()
      drains = drains + 1
      t.eq(drains, 1, "drain count")
      t.eq(c:stats().queued, 0, "queue empty at drain")
      drained_at = net.now()
    end,
    error = function(m) error("client error: " .. m) end,
  }, { high_water = KB })
  t.cleanup(function()
    t.eq(drains, 1, "drain fired once")
    t.truthy(drained_at, "drain fired")
  end)
end)

-- 3. max_buffer (SPEC Part C, revised): with the peer paused, every send
-- that finds less than max_buffer queued is accepted whole (false); the
-- first one that finds max_buffer or more returns nil, message,
-- "MAX_BUFFER", queues nothing and aborts the connection: 'error' (with the
-- code) then 'disconnected' fire, later sends return nil, and the peer sees
-- a reset, never a clean end.
t.run(30000, function(done)
  local MAX = 2 * 1024 * KB
  local srv, port
  local sid
  local server_reason, server_code
  srv, port = t.listen({
    connected = function(id) sid = id; srv:pause(id) end,
    disconnected = function(_, reason, code) server_reason, server_code = reason, code end,
    error = function(m) error("server error: " .. m) end,
  })
  t.closing(srv)
  local c = net.TCPSocket({ max_buffer = MAX })
  t.cleanup(function() c:close() end)
  local events = {}
  c:connect("127.0.0.1", port, {
    connected = function()
      t.after(50, function()
        local pushed, i = 0, 0
        local r, msg, code
        repeat
          i = i + 1
          t.truthy(pushed < LIMIT, "max_buffer never reached")
          local before = c:stats().queued
          local chunk = block(i)
          r, msg, code = c:send(chunk)
          if r ~= nil then
            t.truthy(before < MAX, "a send accepted with max_buffer queued: " .. before)
            t.truthy(c:stats().queued >= before, "the whole string queued")
            pushed = pushed + #chunk
          else
            t.truthy(before >= MAX, "refused below max_buffer: " .. before)
          end
        until r == nil
        t.eq(type(msg), "string", "refusal message")
        t.eq(code, "MAX_BUFFER", "refusal code")
        t.eq(#events, 0, "nothing fired inside send")
        local r2, msg2, code2 = c:send("x")
        t.eq(r2, nil, "send after the abort")
        t.eq(type(msg2), "string", "send after the abort: message")
        t.eq(type(code2), "string", "send after the abort: code")
        srv:resume(sid)
      end)
    end,
    error = function(m, code)
      events[#events + 1] = "error"
      t.eq(code, "MAX_BUFFER", "error code")
      t.truthy(#m > 0, "error message")
    end,
    disconnected = function()
      events[#events + 1] = "disconnected"
      t.same(events, { "error", "disconnected" }, "client events")
      local iv
      iv = net.setInterval(function()
        if server_code == nil then return end
        net.clearInterval(iv)
        t.eq(server_code, "ECONNRESET", "the peer saw a reset")
        t.eq(type(server_reason), "string", "server reason")
        done()
      end, 10)
    end,
  })
end)

-- 4. Server side: false above high_water, drain(id) once with the id.
t.run(30000, function(done)
  local srv, port
  local drains = {}
  local c = net.TCPSocket()
  local n = 0
  local expected_n
  srv, port = t.listen({
    connected = function(id)
      t.after(50, function()
        local accepted = push_until(function(d) return srv:send(id, d) end,
          function() return srv:stats(id) end, false, "server high_water")
        expected_n = 0
        for _, chunk in ipairs(accepted) do expected_n = expected_n + #chunk end
        t.after(100, function()
          t.eq(#drains, 0, "server drain while the client is paused")
          c:resume()
        end)
      end)
    end,
    drain = function(id)
      drains[#drains + 1] = id
      t.eq(srv:stats(id).queued, 0, "server queue empty at drain")
    end,
    error = function(m) error("server error: " .. m) end,
  }, nil, { high_water = KB })
  t.closing(srv)
  c:connect("127.0.0.1", port, {
    connected = function() c:pause() end,
    data = function(d)
      n = n + #d
      if expected_n and n == expected_n then
        t.after(50, function()
          t.eq(#drains, 1, "server drain count")
          t.eq(drains[1], srv:clients()[1], "drain(id) id")
          c:close()
          done()
        end)
      end
    end,
    error = function(m) error("client error: " .. m) end,
  })
end)

-- 5. send on a server connection after disconnect(id) / close(id).
t.run(10000, function(done)
  local srv, port
  local c1, c2 = net.TCPSocket(), net.TCPSocket()
  local seen = 0
  srv, port = t.listen({
    connected = function(id)
      seen = seen + 1
      if seen == 1 then
        t.eq(srv:send(id, "x"), true, "server small send")
        srv:disconnect(id)
      else
        srv:close(id)
      end
      local r, msg = srv:send(id, "late")
      t.eq(r, nil, "server send after disconnect/close")
      t.eq(type(msg), "string", "message")
      if seen == 2 then t.after(100, done) end
    end,
  })
  t.closing(srv)
  c1:connect("127.0.0.1", port, {
    disconnected = function() c2:connect("127.0.0.1", port, {}) end,
  })
end)
