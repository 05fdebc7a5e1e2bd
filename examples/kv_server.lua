-- kv_server.lua: an in-memory key-value server speaking a small binary
-- protocol over length-prefixed frames.
--
-- Usage:  lnet examples/kv_server.lua [PORT [MAX_FRAME [HOST]]]
--         (or: lua5.4 examples/kv_server.lua ..., with net.so on LUA_CPATH)
--   PORT       default 9200; 0 picks a free port
--   MAX_FRAME  largest frame payload accepted, bytes (default 1048576)
--   HOST       address to listen on, default 127.0.0.1 (no authentication:
--              expose it only to clients you trust)
-- On start it prints  kv_server: listening on HOST:PORT (max frame N bytes)
-- (the real port when PORT is 0). Talk to it with examples/lib/kv_client.lua.
--
-- Protocol: every request and reply is one frame, a 4-byte big-endian length
-- then that many payload bytes (lib/frames.lua). Payloads (lib/kv_protocol.lua):
--   GET key         "G" s2:key           -> "O" s4:value (OK value) | "N" (NOTFOUND)
--   SET key value   "S" s2:key s4:value  -> "O" (OK) | "E" s2:reason (ERR store full)
--   DEL key         "D" s2:key           -> "O" (OK) | "N" (NOTFOUND)
-- (s2/s4: a 2- or 4-byte big-endian length, then the bytes; keys and values
-- are binary-safe.) Replies come in request order, so clients may pipeline.
-- A malformed payload gets "E" "malformed request" / "unknown request" and
-- the connection goes on (the framing is intact). A frame longer than
-- MAX_FRAME breaks the framing: the requests before it are answered, then
-- the client gets "E" "frame too large (N bytes, max M)" and is
-- disconnected; it is logged on stderr and every other client carries on.
--
-- Flow control: a client that pipelines requests without reading replies
-- makes send() return false; the server then stops reading from it
-- (pause) until its replies drain, so one slow client costs at most one
-- received chunk plus about 64 KiB of replies. The store holds at most
-- MAX_STORE bytes of keys and values (SET answers ERR "store full" beyond).

local net = require "net"
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local frames = require "lib.frames"
local proto = require "lib.kv_protocol"

local USAGE = "usage: lnet examples/kv_server.lua [PORT [MAX_FRAME [HOST]]]"
local MAX_STORE = 256 * 1024 * 1024

local function int_arg(i, default, min, max)
  local v = arg[i] == nil and default or math.tointeger(tonumber(arg[i]))
  if not v or v < min or v > max then
    io.stderr:write("kv_server: bad argument '", tostring(arg[i]), "'\n", USAGE, "\n")
    os.exit(2)
  end
  return v
end
local port = int_arg(1, 9200, 0, 65535)
local max_frame = int_arg(2, frames.DEFAULT_MAX, 16, 0xffffffff)
local host = arg[3] or "127.0.0.1"

local store = {}          -- key -> value
local stored = 0          -- bytes of keys and values in store

local function execute(payload)
  local op, key, value = proto.parse_request(payload)
  if not op then return proto.err(key) end
  if op == "GET" then
    local v = store[key]
    if v == nil then return proto.NOTFOUND end
    return proto.ok(v)
  elseif op == "SET" then
    local old = store[key]
    local grow = #value - (old and #old or -#key)
    if stored + grow > MAX_STORE then return proto.err("store full") end
    store[key] = value
    stored = stored + grow
    return proto.ok()
  else -- DEL
    local old = store[key]
    if old == nil then return proto.NOTFOUND end
    store[key] = nil
    stored = stored - #key - #old
    return proto.ok()
  end
end

local server = net.TCPServer()
local clients = {}        -- id -> { decoder, queue of payloads, ... }

-- Answers queued requests until the queue is empty or the client's send
-- queue is over high_water (then reading pauses until drain).
local function serve(id, c)
  while c.first <= c.last do
    local payload = c.queue[c.first]
    c.queue[c.first] = nil
    c.first = c.first + 1
    local ok, err = server:send(id, frames.encode(execute(payload)))
    if ok == nil then
      -- ended, or (cannot happen while replies are paced) over max_buffer
      if server:close(id) then
        io.stderr:write(("kv_server: client %d (%s): %s, closing\n"):format(id, c.peer, err))
      end
      clients[id] = nil
      return
    end
    if ok == false then
      if not c.paused then c.paused = true; server:pause(id) end
      return
    end
  end
  if c.fatal then
    -- every request before the bad frame is answered: report and close
    io.stderr:write(("kv_server: client %d (%s): %s, closing\n"):format(id, c.peer, c.fatal))
    server:send(id, frames.encode(proto.err(c.fatal)))
    server:disconnect(id)
    clients[id] = nil
  elseif c.paused then
    c.paused = false
    server:resume(id)
  end
end

server:listen(host, port, {
  started = function()
    local ip, real_port = server:address()
    if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
    io.stdout:write(("kv_server: listening on %s:%d (max frame %d bytes)\n"):format(ip, real_port, max_frame))
    io.stdout:flush()
  end,
  connected = function(id)
    local ip, p = server:peer(id)
    clients[id] = { decoder = frames.decoder(max_frame), queue = {}, first = 1, last = 0,
                    peer = ("%s:%s"):format(ip, p) }
  end,
  data = function(id, bytes)
    local c = clients[id]
    if not c or c.fatal then return end
    local list, err = c.decoder:feed(bytes)
    for i = 1, #list do
      c.last = c.last + 1
      c.queue[c.last] = list[i]
    end
    c.fatal = err
    if not c.paused then serve(id, c) end
  end,
  drain = function(id)
    local c = clients[id]
    if c then serve(id, c) end
  end,
  disconnected = function(id)
    clients[id] = nil
  end,
  error = function(message)
    io.stderr:write("kv_server: ", message, "\n")
    os.exit(1)
  end,
}, { nodelay = true, keepalive = true })

net.loop()
