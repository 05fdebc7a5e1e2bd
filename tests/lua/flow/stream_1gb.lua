-- 1 GiB streamed through an lnet echo server. The client is a C++ thread
-- on raw sockets (flowc.stream_start) that sends a position-dependent
-- pattern and checks every byte that comes back; the server echoes with
-- flow control (pause when send() returns false, resume on drain) and its
-- queue never exceeds max_buffer.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local TOTAL = F.args.total
local MAXBUF = 8 * 1024 * 1024
local got, falses, drains, max_queued = 0, 0, 0, 0
local ended, reason = false, "unset"
local srv, port
local t0 = net.now()

srv, port = t.listen({
  data = function(id, d)
    got = got + #d
    local r, msg = srv:send(id, d)
    if r == nil then error("echo send refused: " .. msg) end
    local q = srv:stats(id).queued
    if q > max_queued then max_queued = q end
    if r == false then
      falses = falses + 1
      srv:pause(id)
    end
  end,
  drain = function(id)
    drains = drains + 1
    srv:resume(id)
  end,
  disconnected = function(_, why)
    ended, reason = true, why
  end,
  error = function(m) error("server error: " .. m) end,
})
flowc.stream_start(port, TOTAL, 170000)
F.wait(function() return ended end, 180000, "the stream client ends")
local err, sent, received, ms = flowc.stream_join()
t.eq(err, "", "stream client")
t.eq(sent, TOTAL, "bytes sent by the client")
t.eq(received, TOTAL, "bytes checked by the client")
t.eq(got, TOTAL, "bytes received by the server")
t.eq(reason, nil, "server disconnected reason")
t.truthy(max_queued <= MAXBUF, "server queue above max_buffer: " .. max_queued)
t.eq(drains, falses, "one drain per false send")
local st = srv:stats()
t.eq(st.accepted, 1, "accepted")
srv:stop()
F.settle()
print(("stream_1gb: %d MiB echoed in %d ms (client %d ms), %d false sends"):format(
  TOTAL >> 20, net.now() - t0, ms, falses))
