-- Redis GET round trips with lnet's callback API and a hand-written
-- request (no client library), the floor of a Lua client on lnet:
-- lua5.4 redis_get_callback.lua PORT N. Prints "RESULT rt_per_s=...".
-- Expects the key set to a 3-byte value (bench/co_run sets it).
local net = require "net"
local port = assert(tonumber(arg[1]), "usage: redis_get_callback.lua PORT N")
local n = tonumber(arg[2]) or 100000
local req = "*2\r\n$3\r\nget\r\n$16\r\nkey:__rand_int__\r\n"
local reply = "$3\r\nxxx\r\n"
local s = net.TCPSocket()
local count, t0, held = 0, nil, ""
local warmup = 1000
s:connect("127.0.0.1", port, {
  connected = function() s:send(req) end,
  data = function(d)
    held = held .. d
    if #held < #reply then return end
    assert(held == reply, "unexpected reply")
    held = ""
    count = count + 1
    if count == warmup then t0 = net.now() end
    if count == warmup + n then
      print(("RESULT rt_per_s=%.0f n=%d ms=%d"):format(n * 1000 / (net.now() - t0), n, net.now() - t0))
      s:close()
      return
    end
    s:send(req)
  end,
  error = function(msg) error(msg) end,
}, { nodelay = true })
net.loop()
