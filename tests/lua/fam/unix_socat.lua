-- Unix sockets against socat: a socat client against an lnet echo server
-- (path and abstract name), an lnet client against socat UNIX-LISTEN.
local net = require "net"
local t = require "testlib"

local dir = famc.tmpdir()

local function poll(fn)
  local iv
  iv = net.setInterval(function() if fn() then net.clearInterval(iv) end end, 10)
  t.cleanup(function() net.clearInterval(iv) end)
end

-- 1. socat clients -> lnet echo server.
for _, case in ipairs({
  { "unix:" .. dir .. "/s.sock", "UNIX-CONNECT:" .. dir .. "/s.sock" },
  { "unix:@lnet-socat-" .. famc.ids(), "ABSTRACT-CONNECT:lnet-socat-" .. famc.ids() },
}) do
  local out
  t.run(15000, function(done)
    local srv = net.TCPServer()
    srv:listen(case[1], nil, {
      data = function(id, d) srv:send(id, d) end,
      ["end"] = function(id) srv:disconnect(id) end,
      error = function(m) error(m) end,
    }, { allow_half_open = true })
    t.closing(srv)
    local lines = {}
    for i = 1, 100 do lines[i] = "line " .. i .. "\n" end
    local payload = table.concat(lines)
    local h = famc.spawn({ "timeout", "10", "socat", "-t", "5", "-", case[2] }, payload)
    poll(function()
      if famc.running(h) then return false end
      out = { famc.out(h), payload, famc.err(h) }
      done()
      return true
    end)
  end)
  t.eq(out[1], out[2], "socat got its bytes back through " .. case[1] .. " " .. out[3])
end

-- 2. lnet client -> socat UNIX-LISTEN echo.
do
  local path = dir .. "/socat-listen.sock"
  local got = ""
  local want = t.random_bytes(300000, 9)
  t.run(15000, function(done)
    famc.spawn({ "timeout", "10", "socat", "UNIX-LISTEN:" .. path, "EXEC:cat" })
    local c = net.TCPSocket()
    t.cleanup(function() c:close() end)
    local function try()
      c:connect("unix:" .. path, nil, {
        connected = function() c:send(want) end,
        data = function(d)
          got = got .. d
          if #got >= #want then c:disconnect() end
        end,
        disconnected = function() done() end,
        -- socat may not listen yet: try again shortly.
        error = function(_, code)
          t.truthy(code == "ENOENT" or code == "ECONNREFUSED", "connect failure " .. tostring(code))
          net.setTimeout(try, 20)
        end,
      })
    end
    try()
  end)
  t.eq(got, want, "socat echoed 300 KB")
end
t.settle()
