-- lnet stream echo on a TCP port or a Unix path:
--   lua5.4 lnet_echo_any.lua PORT | unix:/PATH   (LUA_CPATH must find net.so)
local net = require "net"
local where = assert(arg[1], "usage: lnet_echo_any.lua PORT|unix:/PATH")
local server = net.TCPServer()
local host, port = "127.0.0.1", tonumber(where)
if not port then host, port = where, nil end
server:listen(host, port, {
  data = function(id, data) server:send(id, data) end,
  error = function(message) io.stderr:write("lnet_echo_any: ", message, "\n"); os.exit(1) end,
}, { nodelay = host == "127.0.0.1" })
net.loop()
