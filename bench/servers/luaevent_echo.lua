-- luaevent (libevent, via lua-event + luasocket) echo server:
-- lua5.4 luaevent_echo.lua PORT
local core = require "luaevent.core"
local socket = require "socket"
local port = assert(tonumber(arg[1]), "usage: luaevent_echo.lua PORT")
local EV_READ, EV_WRITE = core.EV_READ, core.EV_WRITE

local base = core.new()
local listener = assert(socket.bind("127.0.0.1", port, 511))
listener:settimeout(0)

-- A callback returns the events to keep watching, or -1 to drop the event.
-- The event objects must stay referenced: a collected one stops firing.
local events = {}
local function serve(client)
  client:settimeout(0)
  client:setoption("tcp-nodelay", true)
  local pending = nil -- bytes the kernel did not take yet (reading waits meanwhile)

  local function flush()
    local last, err, partial_last = client:send(pending)
    local sent = last or partial_last or 0
    if last then pending = nil return true end
    if err ~= "timeout" then return nil end
    pending = pending:sub(sent + 1)
    return false
  end

  events[client] = base:addevent(client, EV_READ, function(event)
    if event == EV_WRITE then
      local ok = flush()
      if ok == nil then events[client] = nil client:close() return -1 end
      return ok and EV_READ or EV_WRITE
    end
    local data, err, partial = client:receive(65536)
    data = data or partial
    if data and #data > 0 then
      pending = data
      local ok = flush()
      if ok == nil then events[client] = nil client:close() return -1 end
      if not ok then return EV_WRITE end
    end
    if err == "closed" then events[client] = nil client:close() return -1 end
    return EV_READ
  end)
end

events[listener] = base:addevent(listener, EV_READ, function()
  while true do
    local client = listener:accept()
    if not client then break end
    serve(client)
  end
  return EV_READ
end)
base:loop()
