-- Coroutines progress when the application pumps the loop with
-- net.loop("nowait") from its own main loop.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

local srv, port = t.listen(function(sock)
  while true do
    local line = sock:receive()
    if not line then return end
    sock:send(line:upper() .. "\n")
  end
end)
local result = {}
local finished = false
co.spawn(function()
  local s = co.tcp()
  assert(s:connect("127.0.0.1", port))
  for i = 1, 20 do
    s:send("msg" .. i .. "\n")
    result[#result + 1] = s:receive()
    co.sleep(1)
  end
  s:close()
  finished = true
end)
local pumps = 0
local t0 = net.now()
while not finished do
  pumps = pumps + 1
  local ok, err = pcall(net.loop, "nowait")
  if not ok then error(err, 0) end
  if pumps > 2000000 or net.now() - t0 > 20000 then error("not finished after " .. pumps .. " pumps") end
end
t.eq(#result, 20, "replies")
t.eq(result[20], "MSG20", "last reply")
t.truthy(pumps > 20, "pumped many times (" .. pumps .. ")")
srv:stop()
net.loop()
