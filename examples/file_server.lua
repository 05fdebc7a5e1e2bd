-- file_server.lua: receives files over TCP into one directory, verifying
-- each one's size and SHA-256 before it appears there.
--
-- Usage:  lnet examples/file_server.lua DIR [PORT [HOST]]
--         (or: lua5.4 examples/file_server.lua ..., with net.so on LUA_CPATH)
--   DIR   where received files go (must exist and be writable)
--   PORT  default 9100; 0 picks a free port
--   HOST  address to listen on, default 127.0.0.1. There is no
--         authentication: anyone who can connect can write files into DIR,
--         so listen beyond loopback only on a network you trust.
-- On start it prints  file_server: listening on HOST:PORT, saving into DIR
-- (the real port when PORT is 0), then one line per upload.
-- Send a file with examples/file_send.lua.
--
-- Protocol, one file per connection:
--   client -> server  PUT <name> <size> <sha256>\n      (header, at most 1024 bytes)
--                     exactly <size> bytes of file data
--                     end of stream (the client half-closes: shutdown/FIN)
--   server -> client  OK\n   or   ERR <reason>\n        then the server closes
-- <name> is the file name, percent-encoded (every byte outside A-Z a-z 0-9
-- . _ - may be written %XX; a name with a space must be). <size> is decimal,
-- <sha256> 64 hex digits. The data is streamed to a temporary file in DIR
-- (".lnet-upload-*.part") while it is hashed; at the end of stream the size
-- and the digest are checked and the file is renamed to DIR/<name>,
-- replacing any file of that name (rename is atomic: a reader never sees a
-- half-written file). On any failure the temporary file is removed.
--
-- Replies:
--   OK                    stored
--   ERR bad header        not "PUT name size sha256", or header too long
--   ERR bad name          empty, ".", "..", starts with ".", contains "/",
--                         "\", a NUL or another control byte, longer than
--                         255 bytes, or a bad %-escape: names are flat,
--                         nothing can escape DIR
--   ERR size mismatch     the stream ended before <size> bytes, or went on
--                         past them
--   ERR checksum mismatch the data's SHA-256 differs from <sha256>
--   ERR write failed: ... the disk refused (full, permissions, ...)
-- A rejection can come early (bad header or name, too many bytes): the
-- server then stops storing, answers, half-closes, discards what is still
-- in flight, and closes the connection when the client closes its side or
-- after 5 seconds.
--
-- Memory stays bounded whatever the file size: each chunk that arrives is
-- written to the temporary file and fed to the hash at once, and nothing
-- else is kept. A connection silent for 60 s is dropped (and its
-- temporary file removed).

local net = require "net"
-- Find lib/ next to this script, wherever it is run from.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local sha256 = require "lib.sha256"

local USAGE = "usage: lnet examples/file_server.lua DIR [PORT [HOST]]"
local MAX_HEADER = 1024        -- bytes, including the newline
local IDLE_TIMEOUT = 60000     -- ms without traffic before a connection is dropped
local LINGER = 5000            -- ms to wait for the client to close after an early rejection

local dir, port, host = arg[1], arg[2] or "9100", arg[3] or "127.0.0.1"
if not dir or dir == "" then
  io.stderr:write(USAGE, "\n")
  os.exit(2)
end
port = math.tointeger(tonumber(port))
if not port or port < 0 or port > 65535 then
  io.stderr:write("file_server: bad port '", tostring(arg[2]), "'\n", USAGE, "\n")
  os.exit(2)
end
dir = dir:gsub("(.)/+$", "%1")

local function log(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

-- Unique-enough temporary names: several servers may share DIR.
math.randomseed(os.time(), math.floor(os.clock() * 1e6))
local tmp_prefix = ("%s/.lnet-upload-%d-%06d-"):format(dir, os.time(), math.random(0, 999999))

-- Check now that DIR exists and is writable, instead of failing per upload.
do
  local probe = tmp_prefix .. "probe.part"
  local f, err = io.open(probe, "wb")
  if not f then
    io.stderr:write("file_server: cannot write into ", dir, ": ", err, "\n")
    os.exit(1)
  end
  f:close()
  os.remove(probe)
end

-- The decoded name if it is a safe flat file name, else nil. Every "%" in
-- encoded must start a two-hex-digit escape.
local function check_name(encoded)
  for esc in encoded:gmatch("%%(.?.?)") do
    if not esc:match("^%x%x$") then return nil end
  end
  local name = encoded:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end)
  if #name == 0 or #name > 255 then return nil end
  if name:sub(1, 1) == "." then return nil end          -- ".", "..", hidden, our temp files
  if name:find("[/\\%c]") then return nil end          -- separators, NUL, control bytes
  return name
end

-- Parses "PUT name size sha256"; returns name, size, digest or nil, reason.
local function parse_header(line)
  line = line:gsub("\r$", "")
  local encoded, size, digest = line:match("^PUT ([^ ]+) (%d+) (%x+)$")
  if not encoded or #size > 15 or #digest ~= 64 then return nil, "bad header" end
  local name = check_name(encoded)
  if not name then return nil, "bad name" end
  return name, math.tointeger(tonumber(size)), digest:lower()
end

local server = net.TCPServer()
local conns = {}               -- id -> state of that upload
local uploads = 0

local function discard(c)
  if c.file then c.file:close(); c.file = nil end
  if c.tmp then os.remove(c.tmp); c.tmp = nil end
end

-- Ends the upload with reply; the connection closes once the client has
-- closed its side (or at once if it already has).
local function finish(id, c, reply)
  if c.done then return end
  c.done = true
  discard(c)
  if reply == "OK" then
    log("saved %s (%d bytes) from %s", c.name, c.size, c.peer)
  else
    log("rejected %s from %s: %s", c.name or "upload", c.peer, reply)
  end
  server:send(id, reply .. "\n")
  if c.eof then
    server:disconnect(id)
  else
    server:shutdown(id)        -- reply, then FIN; keep reading to discard the rest
    c.linger = net.setTimeout(function() server:close(id) end, LINGER)
  end
end

local function reject(id, c, reason) finish(id, c, "ERR " .. reason) end

local function body(id, c, chunk)
  if #chunk > c.remaining then return reject(id, c, "size mismatch") end
  c.remaining = c.remaining - #chunk
  local ok, err = c.file:write(chunk)
  if not ok then return reject(id, c, "write failed: " .. tostring(err)) end
  c.hash:update(chunk)
end

local function header(id, c, chunk)
  c.head = c.head .. chunk
  local nl = c.head:find("\n", 1, true)
  if not nl then
    if #c.head >= MAX_HEADER then reject(id, c, "bad header") end
    return
  end
  if nl > MAX_HEADER then return reject(id, c, "bad header") end
  local name, size, digest = parse_header(c.head:sub(1, nl - 1))
  local rest = c.head:sub(nl + 1)
  c.head = nil
  if not name then return reject(id, c, size) end
  c.name, c.size, c.digest, c.remaining = name, size, digest, size
  uploads = uploads + 1
  c.tmp = tmp_prefix .. uploads .. ".part"
  local f, err = io.open(c.tmp, "wb")
  if not f then
    c.tmp = nil
    return reject(id, c, "write failed: " .. tostring(err))
  end
  c.file, c.hash = f, sha256.new()
  if #rest > 0 then body(id, c, rest) end
end

-- End of the client's stream: check and store.
local function complete(id, c)
  if c.head then return reject(id, c, "bad header") end
  if c.remaining ~= 0 then return reject(id, c, "size mismatch") end
  local ok, err = c.file:close()
  c.file = nil
  if not ok then return reject(id, c, "write failed: " .. tostring(err)) end
  if c.hash:hexdigest() ~= c.digest then return reject(id, c, "checksum mismatch") end
  local renamed, rerr = os.rename(c.tmp, dir .. "/" .. c.name)
  if not renamed then return reject(id, c, "write failed: " .. tostring(rerr)) end
  c.tmp = nil
  finish(id, c, "OK")
end

server:listen(host, port, {
  started = function()
    local ip, real_port = server:address()
    if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
    log("file_server: listening on %s:%d, saving into %s", ip, real_port, dir)
  end,
  connected = function(id)
    local ip, p = server:peer(id)
    conns[id] = { head = "", peer = ("%s:%s"):format(ip, p) }
  end,
  data = function(id, chunk)
    local c = conns[id]
    if not c or c.done then return end               -- discarding after a rejection
    if c.head then header(id, c, chunk) else body(id, c, chunk) end
  end,
  ["end"] = function(id)
    local c = conns[id]
    if not c then return end
    c.eof = true
    if c.done then server:disconnect(id) else complete(id, c) end
  end,
  disconnected = function(id, reason)
    local c = conns[id]
    conns[id] = nil
    if not c then return end
    if c.linger then c.linger:clear() end
    if not c.done then
      discard(c)
      log("aborted %s from %s: %s", c.name or "upload", c.peer, reason or "connection closed")
    end
  end,
  error = function(message)
    io.stderr:write("file_server: ", message, "\n")
    os.exit(1)
  end,
}, { allow_half_open = true, idle_timeout = IDLE_TIMEOUT })

net.loop()
