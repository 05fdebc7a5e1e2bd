-- Helpers for the net.co scenarios: run a coroutine to its end under a
-- deadline, assertions that show both values, the resident set size.
local net = require "net"
local co = require "net.co"

local M = {}

function M.eq(got, want, what)
  if got ~= want then
    error(("%s: expected %s, got %s"):format(what or "value", tostring(want), tostring(got)), 2)
  end
end

function M.truthy(v, what)
  if not v then error((what or "value") .. ": expected a true value, got " .. tostring(v), 2) end
  return v
end

function M.has(s, sub, what)
  if type(s) ~= "string" or not s:find(sub, 1, true) then
    error(("%s: expected text containing %q, got %s"):format(what or "value", sub, tostring(s)), 2)
  end
end

-- Runs fn in a coroutine; returns when it has ended. Its error, or a
-- deadline after ms, raises here. Pooled connections are closed after.
function M.run(ms, fn)
  local finished = false
  local deadline = net.setTimeout(function()
    error(("deadline exceeded after %d ms"):format(ms), 0)
  end, ms)
  co.spawn(function()
    fn()
    finished = true
    net.clearTimeout(deadline)
    co.closepool()
    net.stop()
  end)
  local rounds = 0
  while not finished do
    rounds = rounds + 1
    if rounds > 100 then error("net.loop() returned 100 times before the scenario ended") end
    local ok, err = pcall(net.loop)
    if not ok then
      net.clearTimeout(deadline)
      error(err, 0)
    end
  end
end

-- Resident set size in KiB (Linux).
function M.rss_kib()
  local f = assert(io.open("/proc/self/statm"))
  local s = f:read("l")
  f:close()
  local pages = tonumber(s:match("^%d+%s+(%d+)"))
  return pages * 4
end

-- A co.listen server on 127.0.0.1 port 0: returns it and its port.
function M.listen(handler, opts)
  local srv = co.listen("127.0.0.1", 0, handler, opts)
  local _, port = srv:address()
  return srv, port
end

-- A co.listen server whose handler for each connection is the next script
-- given to connect(script[, options]), which connects a cosocket to it
-- (asserting success) and returns it. Returns connect, the server and its
-- port.
function M.scripted()
  local scripts = {}
  local srv, port = M.listen(function(sock)
    local script = table.remove(scripts, 1)
    script(sock)
  end)
  local function connect(script, opts)
    scripts[#scripts + 1] = script
    local s = co.tcp(opts)
    M.eq(s:connect("127.0.0.1", port), 1, "connect")
    return s
  end
  return connect, srv, port
end

return M
