-- luv (libuv) echo server: lua5.4 luv_echo.lua PORT   (Debian lua-luv)
local uv = require "luv"
local port = assert(tonumber(arg[1]), "usage: luv_echo.lua PORT")

-- libuv writes with write(2): without a SIGPIPE handler a peer's reset kills
-- the process silently. A no-op handler is the libuv way to ignore it.
local sigpipe = uv.new_signal()
sigpipe:start("sigpipe", function() end)
sigpipe:unref()

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(511, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:nodelay(true)
  client:read_start(function(rerr, data)
    if rerr or not data then
      if not client:is_closing() then client:close() end
      return
    end
    client:write(data)
  end)
end))
uv.run()
