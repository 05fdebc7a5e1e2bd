-- Line-protocol benchmark: 1,000,000 short lines through framing = "line"
-- versus the same split done in Lua in the data callback.
--   lua5.4 lnet_line_bench.lua [LINES]     (LUA_CPATH must find net.so)
local net = require "net"
local N = tonumber(arg[1]) or 1000000

local function run(mode)
  local count = 0
  local srv = net.TCPServer()
  local pending = ""
  local callbacks = {}
  if mode == "c" then
    callbacks.data = function(_, line) count = count + 1 end
  else
    callbacks.data = function(_, data)
      local buf = pending .. data
      local pos = 1
      while true do
        local nl = buf:find("\n", pos, true)
        if not nl then break end
        local line = buf:sub(pos, nl - 1)
        if line:byte(-1) == 13 then line = line:sub(1, -2) end
        count = count + 1
        pos = nl + 1
      end
      pending = buf:sub(pos)
    end
  end
  srv:listen("127.0.0.1", 0, callbacks, mode == "c" and { framing = "line" } or nil)
  local _, port = srv:address()
  local lines = {}
  for i = 1, 1000 do lines[i] = ("line number %06d"):format(i) end
  local block = table.concat(lines, "\n") .. "\n"
  local client = net.TCPSocket()
  local sent = 0
  local function pump()
    while sent < N do
      sent = sent + 1000
      if client:send(block) == false then return end
    end
    client:disconnect()
  end
  client:connect("127.0.0.1", port, { connected = pump, drain = pump,
    disconnected = function() end })
  local t0 = os.clock()
  local w0 = net.now()
  while count < N do net.loop("once") end
  local cpu, wall = os.clock() - t0, net.now() - w0
  srv:stop()
  net.loop()
  return cpu, wall, count
end

local c_cpu, c_wall = run("c")
local l_cpu, l_wall = run("lua")
print(("lines: %d"):format(N))
print(("framing='line' (C):  %.3f s CPU, %d ms wall, %.0f lines/s"):format(c_cpu, c_wall, N / c_cpu))
print(("split in Lua:        %.3f s CPU, %d ms wall, %.0f lines/s"):format(l_cpu, l_wall, N / l_cpu))
print(("C framing speed-up: %.2fx (CPU time)"):format(l_cpu / c_cpu))
