-- luv UDP echo: lua5.4 luv_udp_echo.lua PORT   (Debian lua-luv)
local uv = require "luv"
local port = assert(tonumber(arg[1]), "usage: luv_udp_echo.lua PORT")
local udp = uv.new_udp()
assert(udp:bind("127.0.0.1", port))
udp:recv_start(function(err, data, addr)
  if err or not data or not addr then return end
  udp:try_send(data, addr.ip, addr.port)
end)
uv.run()
