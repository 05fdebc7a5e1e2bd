-- proxy.lua: a TCP port forwarder and an HTTP CONNECT proxy.
--
-- Usage:
--   lnet examples/proxy.lua [options] forward [HOST:]PORT TARGET_HOST TARGET_PORT
--   lnet examples/proxy.lua [options] connect [HOST:]PORT
--
--   forward   every connection to HOST:PORT is joined to a new connection to
--             TARGET_HOST:TARGET_PORT; bytes are relayed both ways.
--   connect   an HTTP CONNECT proxy (a tunnel, as used by curl -p, browsers
--             and package managers for https): each client sends
--               CONNECT host:port HTTP/1.1\r\n ...headers... \r\n\r\n
--             the proxy connects to host:port and answers
--               HTTP/1.1 200 Connection Established\r\n\r\n
--             then relays bytes both ways, as forward does (bytes the client
--             sent right after the request head are passed on too).
--             Errors: 400 Bad Request (malformed head, bad host:port),
--             405 Method Not Allowed (any method but CONNECT), 403 Forbidden
--             (port not in --allow-ports), 408 Request Timeout (no complete
--             head within 10 s), 431 (head over 8 KiB), 502 Bad Gateway
--             (the target could not be reached: refused, unresolvable,
--             timed out); each is sent, then the client is disconnected.
--
--   HOST defaults to 127.0.0.1; use 0.0.0.0 or :: to listen on every
--   interface (the CONNECT mode has no authentication: do not expose it
--   without --allow-ports or a firewall). PORT 0 picks a free port. The first
--   line on stdout is always "listening on HOST:PORT" with the real port.
--
-- Options:
--   --connect-timeout=MS   resolve + connect to the target (default 10000)
--   --idle-timeout=MS      close a connection pair after MS with no traffic
--                          on either side (default 0: never)
--   --allow-ports=P1,P2    connect mode: the only target ports allowed
--                          (default: any)
--   --send-proxy=1|2       send the target a PROXY protocol header (version
--                          1: text, 2: binary) naming the client's address
--                          and port, so that a target listening with the
--                          option proxy_protocol sees the real client
--   -v, --verbose          log every connection on stderr
--
-- Behaviour:
--   * Backpressure both ways: when the side we write to is slow (send
--     returns false: its queue is above high_water), we pause reading the
--     other side, and resume it on that side's drain. Memory per connection
--     pair stays around a few hundred KiB whatever the speeds.
--   * Half-close: both connections use allow_half_open. When one peer sends
--     FIN (its `end` callback), the proxy shuts down the write side of the
--     other connection once everything queued for it is flushed; the other
--     direction keeps flowing. Each connection closes when both of its
--     directions are done, and the pair is gone when both have closed.
--   * An abnormal end (reset, idle timeout) of one side closes the other at
--     once; an orderly end of one side disconnects the other gracefully.
--
-- Try it:
--   lnet examples/proxy.lua forward 0 example.com 80
--   lnet examples/proxy.lua connect 3128 &
--   curl -p --proxy http://127.0.0.1:3128 https://example.com/

local net = require "net"
-- Find lib/ next to this script, wherever it is run from.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local relay = require "lib.relay"

local HEAD_MAX = 8192       -- bytes of request head accepted in connect mode
local HEAD_TIMEOUT = 10000  -- ms to receive the whole head

local function usage(message)
  if message then io.stderr:write("proxy: ", message, "\n") end
  io.stderr:write(
    "usage: lnet proxy.lua [options] forward [HOST:]PORT TARGET_HOST TARGET_PORT\n",
    "       lnet proxy.lua [options] connect [HOST:]PORT\n",
    "options: --connect-timeout=MS --idle-timeout=MS --allow-ports=P1,P2 --send-proxy=1|2 -v\n")
  os.exit(2)
end

---------------------------------------------------------------- arguments

local opts = { connect_timeout = 10000, idle_timeout = 0, verbose = false }
local positional = {}
for _, a in ipairs({ ... }) do
  local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
  if a == "-v" or a == "--verbose" then
    opts.verbose = true
  elseif name == "connect-timeout" or name == "idle-timeout" then
    local n = math.tointeger(tonumber(value))
    if not n or n < 0 then usage("--" .. name .. " needs a number of milliseconds") end
    opts[name:gsub("%-", "_")] = n
  elseif name == "send-proxy" then
    if value ~= "1" and value ~= "2" then usage("--send-proxy needs 1 or 2") end
    opts.send_proxy = tonumber(value)
  elseif name == "allow-ports" then
    opts.allow_ports = {}
    for p in value:gmatch("[^,]+") do
      local n = math.tointeger(tonumber(p))
      if not n or n < 1 or n > 65535 then usage("bad port in --allow-ports: " .. p) end
      opts.allow_ports[n] = true
    end
  elseif a:sub(1, 1) == "-" and a ~= "-" then
    usage("unknown option " .. a)
  else
    positional[#positional + 1] = a
  end
end

local function parse_port(s, allow_zero)
  local n = math.tointeger(tonumber(s))
  if n and n >= (allow_zero and 0 or 1) and n <= 65535 and s:match("^%d+$") then return n end
end

-- "PORT", "HOST:PORT" or "[IPv6]:PORT".
local function parse_listen(s)
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  if not host then host, port = "127.0.0.1", s end
  port = parse_port(port, true)
  if not port then usage("bad listen address " .. s) end
  return host, port
end

local mode = positional[1]
local listen_host, listen_port, target_host, target_port
if mode == "forward" and #positional == 4 then
  listen_host, listen_port = parse_listen(positional[2])
  target_host = positional[3]
  target_port = parse_port(positional[4])
  if not target_port then usage("bad target port " .. positional[4]) end
elseif mode == "connect" and #positional == 2 then
  listen_host, listen_port = parse_listen(positional[2])
else
  usage()
end

-- warn: always on stderr; log: only with --verbose.
local function warn(...)
  io.stderr:write("proxy: ", string.format(...), "\n")
  io.stderr:flush()
end

local function log(...)
  if opts.verbose then warn(...) end
end

-- Bytes move between a client and its target with lib/relay.lua
-- (relay.endpoint wraps a server's client; relay.pass applies backpressure).

---------------------------------------------------------------- sessions
-- One session per accepted client:
--   state "head"        (connect mode) reading the request head
--   state "connecting"  connecting to the target; the client is paused
--   state "open"        relaying
-- client: the client's endpoint; target: the TCPSocket; rest: bytes to send
-- to the target once connected; client_eof: the client sent FIN before the
-- relay started.

local server = net.TCPServer()
local sessions = {}
local listening = false

local REASONS = {
  [400] = "Bad Request", [403] = "Forbidden", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [431] = "Request Header Fields Too Large",
  [502] = "Bad Gateway",
}

-- Answers an error to a client that is not relaying yet, then disconnects it.
local function reply_error(id, code, text)
  local s = sessions[id]
  if s then
    if s.timer then s.timer:clear() end
    s.state = "done"
  end
  local body = text .. "\n"
  local extra = code == 405 and "Allow: CONNECT\r\n" or ""
  server:send(id, string.format(
    "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
    code, REASONS[code], extra, #body, body))
  server:disconnect(id)  -- flushes the answer, then closes
  log("client %d: %d %s", id, code, text)
end

local function start_target(id, host, port)
  local s = sessions[id]
  s.state = "connecting"
  server:pause(id)  -- keep the client's bytes in the kernel until the target is there
  local target = net.TCPSocket()
  local failure
  s.target = target
  target:connect(host, port, {
    connected = function()
      if sessions[id] ~= s then return end
      s.state = "open"
      log("client %d: connected to %s:%d", id, host, port)
      if mode == "connect" then
        server:send(id, "HTTP/1.1 200 Connection Established\r\n\r\n")
      end
      server:resume(id)
      if s.rest and #s.rest > 0 then relay.pass(s.client, target, s.rest, log) end
      s.rest = nil
      if s.client_eof then target:shutdown() end
    end,
    data = function(data) relay.pass(target, s.client, data, log) end,
    drain = function() server:resume(id) end,
    ["end"] = function() server:shutdown(id) end,  -- the target is done sending
    error = function(message)
      if s.state == "connecting" then  -- the connect failed
        warn("client %d: %s", id, message)
        if sessions[id] ~= s then return end
        if mode == "connect" then
          reply_error(id, 502, message)
        else
          server:close(id)
        end
      else
        failure = message
      end
    end,
    disconnected = function()
      log("client %d: target closed%s", id, failure and (" (" .. failure .. ")") or "")
      if failure then server:close(id) else server:disconnect(id) end
    end,
  }, { timeout = opts.connect_timeout, allow_half_open = true,
       idle_timeout = opts.idle_timeout, nodelay = true, send_proxy = relay.send_proxy(server, id, opts.send_proxy) })
end

-- Connect mode: looks at the bytes received so far; starts the tunnel once
-- the head is complete.
local function parse_head(id, s)
  local head_end, sep_end = s.buf:find("\r?\n\r?\n")
  if not head_end then
    if #s.buf > HEAD_MAX then reply_error(id, 431, "request head too large") end
    return
  end
  if head_end > HEAD_MAX then return reply_error(id, 431, "request head too large") end
  local line = s.buf:match("^([^\r\n]*)")
  local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then return reply_error(id, 400, "malformed request line") end
  if method ~= "CONNECT" then return reply_error(id, 405, "only CONNECT is supported") end
  local host, port = target:match("^%[([%x:%.]+)%]:(%d+)$")
  if not host then host, port = target:match("^([%w%.%-_]+):(%d+)$") end
  port = port and parse_port(port)
  if not host or not port then return reply_error(id, 400, "CONNECT needs host:port") end
  if opts.allow_ports and not opts.allow_ports[port] then
    return reply_error(id, 403, "port " .. port .. " is not allowed")
  end
  s.rest = s.buf:sub(sep_end + 1)  -- tunnel bytes sent along with the head
  s.buf = nil
  if s.timer then s.timer:clear(); s.timer = nil end
  log("client %d: CONNECT %s:%d (HTTP/%s)", id, host, port, version)
  start_target(id, host, port)
end

server:listen(listen_host, listen_port, {
  connected = function(id)
    local s = { client = relay.endpoint(server, id) }
    sessions[id] = s
    log("client %d: accepted from %s", id, table.concat({ server:peer(id) }, ":"))
    if mode == "forward" then
      start_target(id, target_host, target_port)
    else
      s.state, s.buf = "head", ""
      s.timer = net.setTimeout(function()
        s.timer = nil
        if s.state == "head" then reply_error(id, 408, "request head not received in time") end
      end, HEAD_TIMEOUT)
    end
  end,
  data = function(id, data)
    local s = sessions[id]
    if not s then return end
    if s.state == "open" then
      relay.pass(s.client, s.target, data, log)
    elseif s.state == "head" then
      s.buf = s.buf .. data
      parse_head(id, s)
    elseif s.state == "connecting" then  -- a chunk read before the pause took effect
      s.rest = (s.rest or "") .. data
    end
  end,
  drain = function(id)
    local s = sessions[id]
    if s and s.target then s.target:resume() end
  end,
  ["end"] = function(id)  -- the client is done sending
    local s = sessions[id]
    if not s then return end
    if s.state == "open" then
      s.target:shutdown()
    elseif s.state == "connecting" then
      s.client_eof = true
    elseif s.state == "head" then
      reply_error(id, 400, "incomplete request head")
    end
  end,
  disconnected = function(id, reason)
    local s = sessions[id]
    sessions[id] = nil
    if not s then return end
    if s.timer then s.timer:clear() end
    log("client %d: closed%s", id, reason and (" (" .. reason .. ")") or "")
    if s.target then
      if reason or s.state ~= "open" then s.target:close() else s.target:disconnect() end
    end
  end,
  started = function()
    listening = true
    local host, port = server:address()
    print(string.format("listening on %s:%d", host:find(":") and "[" .. host .. "]" or host, port))
    io.stdout:flush()
  end,
  error = function(message)
    warn("%s", message)
    if not listening then os.exit(1) end  -- bind/listen failed; accept errors pass
  end,
}, { allow_half_open = true, idle_timeout = opts.idle_timeout, nodelay = true })
