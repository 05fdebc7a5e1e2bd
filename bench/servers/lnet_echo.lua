-- lnet echo server: lua5.4 lnet_echo.lua PORT   (LUA_CPATH must find net.so)
local net = require "net"
local port = assert(tonumber(arg[1]), "usage: lnet_echo.lua PORT")

local server = net.TCPServer()
server:listen("127.0.0.1", port, {
  data = function(id, data) server:send(id, data) end,
  error = function(message)
    io.stderr:write("lnet_echo: ", message, "\n")
    os.exit(1)
  end,
}, { nodelay = true })
net.loop()
