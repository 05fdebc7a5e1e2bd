-- 5,000 short connections (connect, send, then disconnect or close) with
-- at most 100 at a time: every message arrives once, every connection ends
-- once on both sides, and no file descriptor is left behind (entries of
-- /proc/self/fd, counted by flowc.fd_count, before and after).
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local N = F.args.n
local PARALLEL = 100

local fds0 = F.fd_count()
local srv, port
local msgs, srv_conn, srv_disc = {}, 0, 0
srv, port = t.listen({
  connected = function() srv_conn = srv_conn + 1 end,
  data = function(id, d) msgs[id] = (msgs[id] or "") .. d end,
  disconnected = function(id, reason)
    srv_disc = srv_disc + 1
    if reason ~= nil then error(("disconnected(%d, %q)"):format(id, reason)) end
  end,
  error = function(m) error("server error: " .. m) end,
}, "127.0.0.1", { backlog = 1024 })
local fds_listening = F.fd_count()
t.eq(fds_listening, fds0 + 1, "descriptors after listen()")

local started, ended, inflight = 0, 0, 0
local function start_more()
  while started < N and inflight < PARALLEL do
    started = started + 1
    inflight = inflight + 1
    local i = started
    local c = net.TCPSocket()
    local fired = 0
    c:connect("127.0.0.1", port, {
      connected = function()
        local text = ("short %d;"):format(i)
        t.eq(c:send(text), true, "send")
        if i % 2 == 0 then
          t.eq(c:stats().queued, 0, "written through before close()")
          c:close()
        else
          c:disconnect()
        end
      end,
      disconnected = function()
        fired = fired + 1
        if fired > 1 then error(("client %d: disconnected twice"):format(i)) end
        ended = ended + 1
        inflight = inflight - 1
        start_more()
      end,
      error = function(m) error(("client %d: %s"):format(i, m)) end,
    })
  end
end
start_more()
F.wait(function() return ended == N and srv_disc == N end, 240000,
       ("every short connection ended (client %d, server %d of %d)"):format(ended, srv_disc, N))
t.eq(srv_conn, N, "server connected count")
t.eq(srv:stats().accepted, N, "accepted")
t.eq(srv:stats().active, 0, "active")
-- Every message, once: ids are 1..N in accept order, messages 1..N.
local seen, count = {}, 0
for id, m in pairs(msgs) do
  local i = tonumber(m:match("^short (%d+);$"))
  t.truthy(i, ("message from id %d: %s"):format(id, t.show(m)))
  t.eq(seen[i], nil, "message " .. i .. " twice")
  seen[i] = true
  count = count + 1
end
t.eq(count, N, "messages received")
collectgarbage()
collectgarbage()
t.eq(F.fd_count(), fds_listening, "descriptors after 5,000 short connections")
srv:stop()
F.settle()
t.eq(F.fd_count(), fds0, "descriptors after stop()")
print(("short_conns: %d connections, %d descriptors before and after"):format(N, fds0))
