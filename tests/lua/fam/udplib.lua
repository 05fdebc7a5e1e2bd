-- What the UDP multicast scenarios share.
local net = require "net"
local t = require "testlib"

local M = {}

-- Sends tag to group:port every 20 ms from a sender made by make_sender
-- (closed after); returns what receiver.on got within ms milliseconds
-- (waiting for one datagram or ms). receiver.on is set meanwhile: the
-- receiving socket's 'message' callback calls it.
function M.exchange(receiver, make_sender, group, port, ms, tag)
  local got = {}
  t.run(ms + 5000, function(done)
    receiver.on = function(data) got[#got + 1] = data; done() end
    local s = t.closing(make_sender())
    local iv = net.setInterval(function()
      local ok, msg, code = s:send(tag, group, port)
      t.eq(ok, true, "multicast send: " .. tostring(msg) .. " " .. tostring(code))
    end, 20)
    t.cleanup(function() net.clearInterval(iv) end)
    local limit = net.setTimeout(done, ms)
    t.cleanup(function() net.clearTimeout(limit) end)
  end, { keep = true })
  receiver.on = nil
  return got
end

return M
