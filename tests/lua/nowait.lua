-- net.loop("nowait") runs one round of ready events and returns, even while
-- a busy peer keeps events coming: an embedding host's frame never stalls.
local net = require "net"
local t = require "testlib"

local LIMIT = 20000  -- the ping-pong ends by itself: a regression ends, too
local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, { data = function(id, d) srv:send(id, d) end })
local _, port = srv:address()
local exchanges, connected = 0, false
local c = net.TCPSocket()
c:connect("127.0.0.1", port, {
  connected = function() connected = true; c:send("x") end,
  data = function()
    exchanges = exchanges + 1
    if exchanges < LIMIT then c:send("x") else c:close() end
  end,
})
for _ = 1, 1000 do
  if exchanges > 0 then break end
  net.loop("once")
end
t.truthy(connected and exchanges > 0, "ping-pong running")

for round = 1, 5 do
  local before = exchanges
  t.eq(net.loop("nowait"), true, "still active")
  local done = exchanges - before
  t.truthy(done <= 2, ("nowait round %d ran %d exchanges"):format(round, done))
end

c:close()
srv:stop()
t.eq(net.loop(), false, "loop ends")
