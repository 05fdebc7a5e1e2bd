-- cqueues echo server: lua5.4 cqueues_echo.lua PORT   (Debian lua-cqueues)
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local port = assert(tonumber(arg[1]), "usage: cqueues_echo.lua PORT")

local cq = cqueues.new()
local server = assert(socket.listen { host = "127.0.0.1", port = port, reuseaddr = true,
                                      nodelay = true, backlog = 511 })
cq:wrap(function()
  for con in server:clients() do
    cq:wrap(function()
      con:setmode("b", "bn") -- binary both ways, output unbuffered
      con:onerror(function(_, _, code) return code end) -- return errors, never raise
      while true do
        local data = con:xread(-65536, "b") -- whatever is there, up to 64 KiB; nil at EOF
        if not data then break end
        if not con:xwrite(data, "bn") then break end
      end
      con:close()
    end)
  end
end)
assert(cq:loop())
