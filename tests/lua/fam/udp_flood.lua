-- A flood of 100,000 datagrams (python3, as fast as it can send) on one
-- socket must not starve the loop: a 5 ms interval keeps firing while the
-- datagrams pour in. The message callback does a little work, so the
-- socket never runs dry while the sender runs; a reader that read until
-- EAGAIN would hold the loop for the whole flood.
local net = require "net"
local t = require "testlib"

local N = 100000
local first, last, count = nil, nil, 0
local ticks = {}  -- times of the interval's ticks
local sender_done
t.run(60000, function(done)
  local r = t.closing(net.UDPSocket({ recv_buffer_size = 1 << 20 }))
  r:bind("127.0.0.1", 0, {
    message = function(data)
      local now = net.now()
      first = first or now
      last = now
      count = count + 1
      local x = 0
      for i = 1, 300 do x = x + i end  -- some work per datagram
    end,
  })
  local _, port = r:sockname()
  local h = famc.spawn({ "timeout", "50", "python3", "-c", [[
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a = ("127.0.0.1", int(sys.argv[1]))
d = b"f" * 64
for i in range(int(sys.argv[2])):
    try:
        s.sendto(d, a)
    except BlockingIOError:
        pass
print("sent", flush=True)
]], tostring(port), tostring(N) })
  local iv = net.setInterval(function()
    ticks[#ticks + 1] = net.now()
    if not sender_done and not famc.running(h) then
      sender_done = net.now()
      t.eq(famc.out(h), "sent\n", "the sender finished: " .. famc.err(h))
      -- What is still queued drains quickly; then stop.
      net.setTimeout(done, 300)
    end
  end, 5)
  t.cleanup(function() net.clearInterval(iv) end)
end)
t.truthy(count > 1000, "received " .. count .. " datagrams")
local window = last - first
-- The flood must have lasted long enough to tell (else the test proves nothing).
t.truthy(window >= 100, ("the flood lasted %d ms: too short to judge"):format(window))
local inside, gap, prev = 0, 0, first
for _, at in ipairs(ticks) do
  if at >= first and at <= last then
    inside = inside + 1
    gap = math.max(gap, at - prev)
    prev = at
  end
end
gap = math.max(gap, last - prev)
print(("udp_flood: %d datagrams in %d ms, %d timer ticks inside, longest gap %d ms"):format(count, window, inside, gap))
t.truthy(inside >= window // 50, ("only %d ticks of a 5 ms interval during a %d ms flood"):format(inside, window))
t.truthy(gap < window // 2, ("the timer waited %d ms during a %d ms flood"):format(gap, window))
t.settle()
