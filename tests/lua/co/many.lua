-- 1,000 coroutines, each holding its own connection at the same time, each
-- getting its own answer.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

local N = 1000
t.run(60000, function()
  local srv, port = t.listen(function(sock)
    local line = sock:receive()
    if line then sock:send("re:" .. line .. "\n") end
  end, { backlog = 2048 })
  local connected, done, wrong = 0, 0, 0
  local threads = {}
  for i = 1, N do
    threads[i] = co.spawn(function()
      local s = co.tcp()
      s:settimeout(30000)
      assert(s:connect("127.0.0.1", port))
      connected = connected + 1
      while connected < N do co.sleep(5) end  -- all held at once
      s:send(i .. "\n")
      local r = s:receive()
      if r ~= "re:" .. i then wrong = wrong + 1 end
      s:close()
      done = done + 1
      return i
    end)
  end
  for i = 1, N do
    local ok, v = co.wait(threads[i])
    t.eq(ok, true, "thread " .. i)
    t.eq(v, i, "thread result")
  end
  t.eq(connected, N, "connections held at once")
  t.eq(done, N, "coroutines finished")
  t.eq(wrong, 0, "wrong answers")
  t.eq(srv:stats().accepted, N, "accepted")
  srv:stop()
end)
