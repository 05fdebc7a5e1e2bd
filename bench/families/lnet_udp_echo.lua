-- lnet UDP echo: lua5.4 lnet_udp_echo.lua PORT   (LUA_CPATH must find net.so)
local net = require "net"
local port = assert(tonumber(arg[1]), "usage: lnet_udp_echo.lua PORT")
local udp = net.UDPSocket()
udp:bind("127.0.0.1", port, {
  message = function(data, ip, p) udp:send(data, ip, p) end,
  error = function(m) io.stderr:write("lnet_udp_echo: ", m, "\n") end,
})
net.loop()
