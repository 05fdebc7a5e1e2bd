-- copas echo server on LuaSocket (Debian lua-copas, Lua 5.1):
-- lua5.1 copas_echo.lua PORT. The same echo as lnet_co_echo.lua.
local copas = require "copas"
local socket = require "socket"
local port = assert(tonumber(arg[1]), "usage: copas_echo.lua PORT")

local server = assert(socket.bind("127.0.0.1", port))
server:setoption("tcp-nodelay", true)
copas.addserver(server, function(raw)
  local sock = copas.wrap(raw)
  raw:setoption("tcp-nodelay", true)
  while true do
    -- receive(n) would wait for all n bytes; read what a line-free ping
    -- carries: the load generator sends fixed 64-byte messages.
    local data, err, partial = sock:receive(64)
    if not data then
      if partial and #partial > 0 then sock:send(partial) end
      return
    end
    sock:send(data)
  end
end)
copas.loop()
