-- lb.lua: a round-robin TCP load balancer with health checks.
--
-- Usage:
--   lnet examples/lb.lua [options] [HOST:]PORT BACKEND [BACKEND ...]
--
--   Listens on HOST:PORT (HOST defaults to 127.0.0.1; use 0.0.0.0 or :: for
--   every interface; PORT 0 picks a free port). Each BACKEND is host:port
--   (an IPv6 address as [::1]:port). The first line on stdout is always
--   "listening on HOST:PORT" with the real port.
--
-- Options:
--   --interval=MS          health-check period (default 500)
--   --probe-timeout=MS     a health probe that has not connected by then
--                          fails (default 2000)
--   --connect-timeout=MS   connecting a client's backend (default 3000)
--   --idle-timeout=MS      close a connection pair after MS with no traffic
--                          on either side (default 0: never)
--   --send-proxy=1|2       send each backend a PROXY protocol header
--                          (version 1: text, 2: binary) naming the client's
--                          address and port and the address it connected
--                          to, so that a backend listening with the option
--                          proxy_protocol sees the real client in peer();
--                          health probes then send a LOCAL (v2) or
--                          UNKNOWN (v1) header
--   -v, --verbose          log every client connection on stderr
--
-- Behaviour:
--   * Each accepted client gets a new connection to the next live backend,
--     in turn. While that connects the client is paused (its bytes wait in
--     the kernel). If the backend fails to connect (refused, timed out) it
--     is marked down and the next live backend not yet tried is used; when
--     none is left the client is closed.
--   * Health checks: every --interval each backend gets a connect probe
--     (connect, then close at once). A failing probe takes a backend out of
--     the rotation, a succeeding one puts it back. A backend starts in the
--     rotation; every transition is logged on stdout:
--       backend 127.0.0.1:9001 up
--       backend 127.0.0.1:9001 down (connect to 127.0.0.1:9001 failed: Connection refused)
--     A client's failed connect marks its backend down at once, too.
--   * Relaying: bytes go both ways with backpressure (when a side's send
--     returns false, reading the other side pauses until the slow side's
--     drain) and half-close (allow_half_open: a FIN from one side becomes a
--     shutdown() of the other once its queue is flushed; a connection closes
--     when both of its directions are done). An orderly end of one side
--     disconnects the other gracefully (queued bytes are sent first); an
--     abnormal end (reset, idle timeout) closes the other at once.
--   * Clients already connected to a backend that dies lose only their own
--     connection; the others are untouched.
--
-- Try it (three backends, e.g. echo servers started with
-- `socat TCP-LISTEN:9001,reuseaddr,fork EXEC:cat`, then the balancer):
--   lnet examples/lb.lua 8000 127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003
--   nc 127.0.0.1 8000          (each new nc lands on the next backend)

local net = require "net"
-- Find lib/ next to this script, wherever it is run from.
local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
package.path = here .. "/?.lua;" .. package.path
local relay = require "lib.relay"

local function usage(message)
  if message then io.stderr:write("lb: ", message, "\n") end
  io.stderr:write(
    "usage: lnet lb.lua [options] [HOST:]PORT BACKEND [BACKEND ...]   (BACKEND: host:port)\n",
    "options: --interval=MS --probe-timeout=MS --connect-timeout=MS --idle-timeout=MS\n",
    "         --send-proxy=1|2 -v\n")
  os.exit(2)
end

---------------------------------------------------------------- arguments

local opts = { interval = 500, probe_timeout = 2000, connect_timeout = 3000,
               idle_timeout = 0, send_proxy = 0, verbose = false }
local positional = {}
for _, a in ipairs({ ... }) do
  local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
  local key = name and name:gsub("%-", "_")
  if a == "-v" or a == "--verbose" then
    opts.verbose = true
  elseif key and opts[key] ~= nil and key ~= "verbose" then
    local n = math.tointeger(tonumber(value))
    if not n or n < 0 or (key == "interval" and n < 10) or (key == "send_proxy" and n ~= 1 and n ~= 2) then
      usage("bad value for --" .. name .. ": " .. value)
    end
    opts[key] = n
  elseif a:sub(1, 1) == "-" then
    usage("unknown option " .. a)
  else
    positional[#positional + 1] = a
  end
end

-- "HOST:PORT" or "[IPv6]:PORT"; with default_host, a bare "PORT" too.
local function parse_address(s, default_host, allow_zero)
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  if not host and default_host and s:match("^%d+$") then host, port = default_host, s end
  port = math.tointeger(tonumber(port))
  if not host or not port or port < (allow_zero and 0 or 1) or port > 65535 then return nil end
  return host, port
end

if #positional < 2 then usage() end
local listen_host, listen_port = parse_address(positional[1], "127.0.0.1", true)
if not listen_host then usage("bad listen address " .. positional[1]) end

local backends = {}  -- { host, port, name, up = nil (not probed yet) | true | false, probing }
for i = 2, #positional do
  local host, port = parse_address(positional[i])
  if not host then usage("bad backend " .. positional[i] .. " (expected host:port)") end
  backends[#backends + 1] = { host = host, port = port, name = positional[i] }
end

local function say(...)
  print(string.format(...))
  io.stdout:flush()
end

local function log(...)
  if opts.verbose then
    io.stderr:write("lb: ", string.format(...), "\n")
    io.stderr:flush()
  end
end

---------------------------------------------------------------- backends

local function set_up(b, up, why)
  if b.up == up then return end
  b.up = up
  if up then say("backend %s up", b.name) else say("backend %s down (%s)", b.name, why) end
end

local function live(b) return b.up ~= false end

-- Round robin over the live backends, skipping those in `tried`.
local cursor = 1
local function pick(tried)
  local n = #backends
  for k = 0, n - 1 do
    local i = (cursor - 1 + k) % n + 1
    local b = backends[i]
    if live(b) and not tried[b] then
      cursor = i % n + 1
      return b
    end
  end
end

local function probe(b)
  if b.probing then return end  -- the previous probe is still connecting
  b.probing = true
  local sock = net.TCPSocket()
  sock:connect(b.host, b.port, {
    connected = function()
      b.probing = false
      set_up(b, true)
      -- With --send-proxy, disconnect() sends the queued header first.
      if opts.send_proxy > 0 then sock:disconnect() else sock:close() end
    end,
    error = function(message)
      if not b.probing then return end  -- closed by us after connecting
      b.probing = false
      set_up(b, false, message)
    end,
  }, { timeout = opts.probe_timeout,
       send_proxy = opts.send_proxy > 0 and { version = opts.send_proxy } or nil })
end

local function probe_all()
  for _, b in ipairs(backends) do probe(b) end
end

---------------------------------------------------------------- sessions
-- Bytes move between a client and its backend with lib/relay.lua.

local server = net.TCPServer()
local sessions = {}  -- client id -> { client, backend (TCPSocket), open, pending, client_eof }
local listening = false


-- Connects client `id` to the next live backend it has not tried yet.
local function attach(id, tried)
  local s = sessions[id]
  local b = pick(tried)
  if not b then
    log("client %d: no live backend", id)
    server:close(id)
    return
  end
  tried[b] = true
  local sock = net.TCPSocket()
  local failure
  s.backend, s.open = sock, false
  sock:connect(b.host, b.port, {
    connected = function()
      s.open = true
      set_up(b, true)
      log("client %d: -> %s", id, b.name)
      server:resume(id)
      if s.pending then relay.pass(s.client, sock, s.pending, log); s.pending = nil end
      if s.client_eof then sock:shutdown() end
    end,
    data = function(data) relay.pass(sock, s.client, data, log) end,
    drain = function() server:resume(id) end,
    ["end"] = function() server:shutdown(id) end,  -- the backend is done sending
    error = function(message)
      if not s.open then  -- the connect failed: next backend
        set_up(b, false, message)
        if sessions[id] == s then attach(id, tried) end
      else
        failure = message
      end
    end,
    disconnected = function()
      log("client %d: backend %s closed%s", id, b.name, failure and (" (" .. failure .. ")") or "")
      if failure then server:close(id) else server:disconnect(id) end
    end,
  }, { timeout = opts.connect_timeout, allow_half_open = true,
       idle_timeout = opts.idle_timeout, nodelay = true, send_proxy = relay.send_proxy(server, id, opts.send_proxy) })
end

server:listen(listen_host, listen_port, {
  connected = function(id)
    sessions[id] = { client = relay.endpoint(server, id) }
    server:pause(id)  -- until the backend is connected
    attach(id, {})
  end,
  data = function(id, data)
    local s = sessions[id]
    if not s then return end
    if s.open then
      relay.pass(s.client, s.backend, data, log)
    else  -- read before the pause took effect: keep it for the backend
      s.pending = (s.pending or "") .. data
    end
  end,
  drain = function(id)
    local s = sessions[id]
    if s and s.open then s.backend:resume() end
  end,
  ["end"] = function(id)  -- the client is done sending
    local s = sessions[id]
    if not s then return end
    if s.open then s.backend:shutdown() else s.client_eof = true end
  end,
  disconnected = function(id, reason)
    local s = sessions[id]
    sessions[id] = nil
    if not s then return end
    log("client %d: closed%s", id, reason and (" (" .. reason .. ")") or "")
    if s.backend then
      if reason or not s.open then s.backend:close() else s.backend:disconnect() end
    end
  end,
  started = function()
    listening = true
    local host, port = server:address()
    say("listening on %s:%d", host:find(":") and "[" .. host .. "]" or host, port)
  end,
  error = function(message)
    io.stderr:write("lb: ", message, "\n")
    if not listening then os.exit(1) end  -- bind/listen failed; accept errors pass
  end,
}, { allow_half_open = true, idle_timeout = opts.idle_timeout, nodelay = true })

probe_all()
net.setInterval(probe_all, opts.interval)
