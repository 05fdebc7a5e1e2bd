-- lnet TLS echo server: lua5.4 lnet_tls_echo.lua PORT CERT KEY   (LUA_CPATH must find net.so)
local net = require "net"
local port, cert, key = tonumber(arg[1]), arg[2], arg[3]
assert(port and cert and key, "usage: lnet_tls_echo.lua PORT CERT KEY")

local server = net.TCPServer()
server:listen("127.0.0.1", port, {
  data = function(id, data) server:send(id, data) end,
  error = function(message)
    io.stderr:write("lnet_tls_echo: ", message, "\n")
    os.exit(1)
  end,
}, { nodelay = true, tls = net.TLSContext { cert = cert, key = key } })
net.loop()
