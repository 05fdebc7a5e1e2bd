-- file_send.lua: sends one file to examples/file_server.lua.
--
-- Usage:  lnet examples/file_send.lua HOST PORT FILE [NAME]
--         (or: lua5.4 examples/file_send.lua ..., with net.so on LUA_CPATH)
--   FILE  the file to send
--   NAME  the name to store it under (default: FILE's last path component);
--         the server refuses names with "/", a leading ".", control bytes
-- Exit status: 0 when the server answered OK (it prints "OK NAME SIZE SHA256"),
-- 1 with the reason on stderr otherwise ("file_send: ERR checksum mismatch",
-- "file_send: connect to ...: Connection refused", ...), 2 for bad usage.
--
-- Protocol (see file_server.lua): "PUT <name> <size> <sha256>\n", exactly
-- <size> bytes, then end of stream (half-close); the server answers "OK\n"
-- or "ERR <reason>\n" and closes. NAME is percent-encoded on the wire.
--
-- The file is read twice: once to hash it (the digest goes in the header),
-- once to send it. Sending follows lnet's flow control: 64 KiB chunks go
-- out while send() returns true; when it returns false (more than
-- high_water bytes queued) reading stops until the drain callback, so memory
-- stays bounded whatever the file size or the network speed. If the file
-- changes between the two reads, the server's check fails and nothing is
-- stored.

local net = require "net"
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local sha256 = require "lib.sha256"

local USAGE = "usage: lnet examples/file_send.lua HOST PORT FILE [NAME]"
local CHUNK = 64 * 1024
local CONNECT_TIMEOUT = 10000   -- ms, name resolution plus connect
local IDLE_TIMEOUT = 60000      -- ms without traffic either way

local host, port, path, name = arg[1], arg[2], arg[3], arg[4]
port = math.tointeger(tonumber(port or ""))
if not host or not port or not path then
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end
name = name or path:match("([^/]*)$")
if name == "" then
  io.stderr:write("file_send: no file name in '", path, "': give NAME\n", USAGE, "\n")
  os.exit(2)
end

local status = 1
local reported = false  -- a failure has been written to stderr
local function fail(message)
  io.stderr:write("file_send: ", message, "\n")
  io.stderr:flush()
  status, reported = 1, true
end

-- Pass 1: size and digest.
local size, digest
do
  local f, err = io.open(path, "rb")
  if not f then
    fail(err)
    os.exit(1)
  end
  local h = sha256.new()
  size = 0
  while true do
    local chunk, rerr = f:read(CHUNK)
    if not chunk then
      if rerr then     -- a directory, an I/O error: not end of file
        fail(path .. ": " .. rerr)
        os.exit(1)
      end
      break
    end
    size = size + #chunk
    h:update(chunk)
  end
  f:close()
  digest = h:hexdigest()
end

local encoded = name:gsub("[^%w._-]", function(c) return ("%%%02X"):format(c:byte()) end)

-- Pass 2: send.
local file, err = io.open(path, "rb")
if not file then
  fail(err)
  os.exit(1)
end

local sock = net.TCPSocket({ nodelay = true })
local sent = 0
local reply = ""        -- the server's answer, until its newline
local answered = false  -- a whole answer line arrived

-- Sends file chunks until send() asks us to wait (false) or the file ends.
local function pump()
  while file do
    local want = math.min(CHUNK, size - sent)
    local chunk, rerr = nil, nil
    if want > 0 then chunk, rerr = file:read(want) end
    if not chunk then
      if rerr then
        fail(path .. ": " .. rerr)
        sock:close()
        file:close()
        file = nil
        return
      end
      file:close()
      file = nil
      if sent ~= size then
        fail(("%s shrank while being sent (%d of %d bytes)"):format(path, sent, size))
        sock:close()
        return
      end
      sock:shutdown()          -- FIN after the queued bytes: "that was all"
      return
    end
    sent = sent + #chunk
    local ok, message = sock:send(chunk)
    if ok == nil then
      fail("send failed: " .. message)
      sock:close()
      return
    end
    if ok == false then return end   -- wait for drain
  end
end

sock:connect(host, port, {
  connected = function()
    local ok, message = sock:send(("PUT %s %d %s\n"):format(encoded, size, digest))
    if ok == nil then
      fail("send failed: " .. message)
      sock:close()
      return
    end
    pump()
  end,
  drain = pump,
  data = function(bytes)
    if answered then return end
    reply = reply .. bytes
    local line = reply:match("^([^\n]*)\n")
    if not line and #reply < 1024 then return end
    answered = true
    line = (line or reply):gsub("\r$", "")
    if line == "OK" then
      status = 0
      print(("OK %s %d %s"):format(name, size, digest))
    else
      fail(line)   -- "ERR <reason>", as the server said it
    end
    sock:close()   -- done either way; drops whatever is still queued
  end,
  error = function(message)
    if not answered and not reported then fail(message) end
  end,
}, { timeout = CONNECT_TIMEOUT, idle_timeout = IDLE_TIMEOUT })

net.loop()
if file then file:close() end
if status ~= 0 and not reported then
  fail(reply == "" and "connection closed without a reply" or "incomplete reply: " .. reply)
end
os.exit(status)
