-- lnet cosocket echo server (net.co): lua5.4 lnet_co_echo.lua PORT
-- (LUA_CPATH must find net.so). Straight-line code: one coroutine per
-- connection reading whatever has arrived and writing it back.
local net = require "net"
local co = require "net.co"
local port = assert(tonumber(arg[1]), "usage: lnet_co_echo.lua PORT")

co.listen("127.0.0.1", port, function(sock)
  sock:settimeout(nil)
  while true do
    local data = sock:receiveany(65536)
    if not data then return end
    sock:send(data)
  end
end, { nodelay = true })
net.loop()
