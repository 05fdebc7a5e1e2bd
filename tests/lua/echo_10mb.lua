-- 10 MB through an echo server, with flow control on both sides: the
-- client stops sending when send() returns false and resumes on drain; the
-- server pauses reading a client whose echo is above high water and resumes
-- on drain(id). Checksums of what was sent, what the server received and
-- what came back must agree.
local net = require "net"
local t = require "testlib"

local BLOCK = 64 * 1024
local NBLOCKS = 160                       -- 10 MiB
local TOTAL = BLOCK * NBLOCKS
local block = t.blocks(BLOCK, 12345)

local sent_sum = t.checksum()
for i = 1, NBLOCKS do sent_sum:update(block(i)) end

t.run(60000, function(done)
  local srv_sum, cli_sum = t.checksum(), t.checksum()
  local counts = { send_false = 0, drain = 0, srv_false = 0, srv_drain = 0, pauses = 0 }
  local srv, port
  local server_ended, client_ended = false, false
  local function finish()
    if not (server_ended and client_ended) then return end
    t.eq(srv_sum.n, TOTAL, "bytes the server received")
    t.eq(srv_sum:value(), sent_sum:value(), "checksum at the server")
    t.eq(cli_sum.n, TOTAL, "bytes echoed back")
    t.eq(cli_sum:value(), sent_sum:value(), "checksum back at the client")
    t.eq(counts.drain, counts.send_false, "one client drain per false send()")
    t.eq(counts.srv_drain, counts.srv_false, "one server drain per false send()")
    done()
  end

  srv, port = t.listen({
    data = function(id, d)
      srv_sum:update(d)
      local r = srv:send(id, d)
      if r == false then
        counts.srv_false = counts.srv_false + 1
        counts.pauses = counts.pauses + 1
        srv:pause(id)
      else
        t.eq(r, true, "server send result")
      end
    end,
    drain = function(id)
      counts.srv_drain = counts.srv_drain + 1
      t.truthy(counts.srv_drain <= counts.srv_false, "server drain without a false send()")
      t.eq(srv:stats(id).queued, 0, "server queue empty at drain")
      srv:resume(id)
    end,
    disconnected = function(id, reason)
      t.eq(reason, nil, "server disconnected reason")
      server_ended = true
      finish()
    end,
    error = function(m) error("server error: " .. m) end,
  })
  t.closing(srv)

  local c = net.TCPSocket()
  local next_block = 1
  local waiting = false
  local function pump()
    local rounds = 0
    while next_block <= NBLOCKS do
      rounds = rounds + 1
      t.truthy(rounds <= NBLOCKS, "pump bounded")
      local r, msg = c:send(block(next_block))
      t.truthy(r ~= nil, "client send failed: " .. tostring(msg))
      next_block = next_block + 1
      if r == false then
        counts.send_false = counts.send_false + 1
        t.truthy(c:stats().queued > 64 * 1024, "false only above the high-water mark")
        waiting = true
        return
      end
    end
  end
  c:connect("127.0.0.1", port, {
    connected = pump,
    drain = function()
      counts.drain = counts.drain + 1
      t.truthy(waiting, "drain without a false send()")
      t.eq(c:stats().queued, 0, "client queue empty at drain")
      waiting = false
      pump()
    end,
    data = function(d)
      cli_sum:update(d)
      t.truthy(cli_sum.n <= TOTAL, "client received more than it sent")
      if cli_sum.n == TOTAL then
        local st = c:stats()
        t.eq(st.bytes_out, TOTAL, "stats().bytes_out")
        t.eq(st.bytes_in, TOTAL, "stats().bytes_in")
        c:disconnect()
      end
    end,
    disconnected = function()
      client_ended = true
      finish()
    end,
    error = function(m) error("client error: " .. m) end,
  })
end)
