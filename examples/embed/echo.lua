-- The script for lnet-embed: an echo server on 127.0.0.1 (port from the
-- first argument, default 0 = any free port, printed on stdout) served from
-- the host's frame loop. A client sending "quit" ends the host.
--   lnet-embed examples/embed/echo.lua [port]
local net, port = ...
local server = net.TCPServer()
local quit = false
server:listen("127.0.0.1", tonumber(port) or 0, {
  data = function(id, data)
    if data:find("quit", 1, true) then
      server:send(id, "bye\n")
      server:disconnect(id)
      quit = true
    else
      server:send(id, data)
    end
  end,
  error = function(message) error(message) end,
})
local _, real = server:address()
print("listening on port " .. real)
io.stdout:flush()

return function(frame)
  if quit and #server:clients() == 0 then
    server:stop()
    print("frames: " .. frame)
    return false
  end
  return true
end
