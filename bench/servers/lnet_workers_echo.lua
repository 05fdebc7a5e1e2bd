-- lnet echo server for `lnet --workers N lnet_workers_echo.lua PORT`: the
-- runner runs the loop; in workers, servers listen with reuseport.
local port = assert(tonumber(arg[1]), "usage: lnet [--workers N] lnet_workers_echo.lua PORT")
local server = net.TCPServer()
server:listen("127.0.0.1", port, {
  data = function(id, data) server:send(id, data) end,
  error = function(message)
    io.stderr:write("lnet_workers_echo: ", message, "\n")
    os.exit(1)
  end,
}, { nodelay = true })
