-- The socket file: a stale one is replaced, a live one refused (and kept
-- working), a regular file never removed; mode; removed by stop(), by
-- __close and by collection of a stopped server; bad paths raise; connect
-- failures carry their codes.
local net = require "net"
local t = require "testlib"

local dir = famc.tmpdir()
local function listen_result(path, options)
  local res
  local srv = net.TCPServer()
  t.run(5000, function(done)
    t.eq(t.call(srv, "listen", "unix:" .. path, nil, {
      started = function() res = { "started" }; done() end,
      error = function(m, code) res = { "error", m, code }; done() end,
    }, options), true, "listen() result")
  end, { keep = true })
  return srv, res
end

local function connects(path)
  local ok
  t.run(5000, function(done)
    local c = net.TCPSocket()
    c:connect("unix:" .. path, nil, {
      connected = function() ok = true; c:close(); done() end,
      error = function(m, code) ok = code; done() end,
    })
  end, { keep = true })
  return ok
end

-- 1. A stale socket file is replaced.
do
  local path = dir .. "/stale.sock"
  famc.stale_socket(path)
  t.eq(select(2, famc.mode(path)), "socket", "a stale socket file exists")
  t.eq(connects(path), "ECONNREFUSED", "nothing accepts on the stale file")
  local srv, res = listen_result(path)
  t.eq(res[1], "started", "listen over a stale file: " .. tostring(res[2]))
  t.eq(connects(path), true, "the new server accepts")
  srv:stop()
  t.eq(famc.mode(path), nil, "stop() removed the file")
end

-- 2. A live one is refused and keeps working.
do
  local path = dir .. "/live.sock"
  local a, res = listen_result(path)
  t.eq(res[1], "started", "first server")
  local b, res2 = listen_result(path)
  t.eq(res2[1], "error", "second server on a live path")
  t.eq(res2[2], ("listen on unix:%s failed: Address already in use"):format(path), "message")
  t.eq(res2[3], "EADDRINUSE", "code")
  b:stop()
  t.eq(select(2, famc.mode(path)), "socket", "the live file is still there")
  t.eq(connects(path), true, "the first server still accepts")
  a:stop()
end

-- 3. A path that is not a socket is never removed.
do
  local path = dir .. "/regular"
  local f = assert(io.open(path, "wb"))
  f:write("keep me")
  f:close()
  local srv, res = listen_result(path)
  t.eq(res[1], "error", "listen on a regular file")
  t.eq(res[3], "EADDRINUSE", "code")
  srv:stop()
  f = assert(io.open(path, "rb"))
  t.eq(f:read("a"), "keep me", "the regular file is intact")
  f:close()
end

-- 4. mode: as an octal string and as an integer.
do
  local path = dir .. "/mode.sock"
  local srv, res = listen_result(path, { mode = "0640" })
  t.eq(res[1], "started", "listen with mode")
  local mode, kind = famc.mode(path)
  t.eq(kind, "socket", "kind")
  t.eq(mode, tonumber("640", 8), ("mode 0640, got %o"):format(mode))
  srv:stop()
  srv, res = listen_result(path, { mode = tonumber("600", 8) })
  t.eq(famc.mode(path), tonumber("600", 8), "mode as an integer")
  srv:stop()
  t.raises("option 'mode' must be octal digits", function() net.TCPServer({ mode = "0968" }) end)
  t.raises("option 'mode' must be an integer from 0 to 4095", function() net.TCPServer({ mode = 5000 }) end)
end

-- 5. Removed by __close and by a server that is closed then collected.
do
  local path = dir .. "/close.sock"
  do
    local srv <close> = listen_result(path)
    t.eq(select(2, famc.mode(path)), "socket", "file while listening")
  end
  t.eq(famc.mode(path), nil, "__close removed the file")
  local srv = listen_result(path)
  srv:stop()
  t.eq(famc.mode(path), nil, "stop() removed the file")
  -- The file of another server that replaced ours is not ours to remove.
  local a = listen_result(path)
  os.remove(path)
  local b = listen_result(path)
  a:stop()
  t.eq(select(2, famc.mode(path)), "socket", "a's stop() left b's file alone")
  t.eq(connects(path), true, "b still accepts")
  b:stop()
end

-- 6. Bad arguments raise; connect failures carry codes.
do
  local long = "unix:/" .. string.rep("x", 107)
  t.raises("bad argument #1 to 'listen' (unix socket path longer than 107 bytes)", function()
    net.TCPServer():listen(long, nil, {})
  end)
  t.raises("unix socket path longer than 107 bytes", function()
    net.TCPSocket():connect(long, nil, {})
  end)
  t.raises("unix socket path is empty", function() net.TCPSocket():connect("unix:", nil, {}) end)
  t.raises("port must be nil or 0 for a unix socket", function()
    net.TCPSocket():connect("unix:/tmp/x", 80, {})
  end)
  -- 107 bytes is the limit and fine.
  local ok107 = "unix:/" .. string.rep("y", 106)
  local c = net.TCPSocket()
  local res
  t.run(5000, function(done)
    c:connect(ok107, nil, { error = function(m, code) res = { m, code }; done() end })
  end)
  t.eq(res[2], "ENOENT", "a missing path: " .. tostring(res[1]))
  t.startswith(res[1], "connect to " .. ok107 .. " failed: ", "message names the path")
  t.eq(connects(dir .. "/missing.sock"), "ENOENT", "missing socket file")
end
t.settle()
assert(net.loop() == false)
