-- backend.lua: an lnet server made to run behind a load balancer (HAProxy,
-- nginx stream) that passes each client's address with the PROXY protocol,
-- and under `lnet --workers N`.
--
-- Usage:
--   lnet [--workers N] examples/deploy/backend.lua [HOST:]PORT [NAME] [TRUSTED ...]
--
--   Listens on HOST:PORT (HOST defaults to 127.0.0.1) with
--   proxy_protocol = "any": every connection must start with a v1 or v2
--   header from one of the TRUSTED addresses or CIDR ranges (default
--   127.0.0.1 and ::1); a connection from elsewhere, or without a valid
--   header within 3 s, is closed. For each line a client sends it answers
--     client IP PORT via PROXY_IP PROXY_PORT vVERSION COMMAND server NAME worker I/N
--   (the client from the header, the load balancer's own connection, and
--   which server and worker answered). Health checks of the balancer arrive
--   with a LOCAL (v2) header, or in v1 an UNKNOWN one or the check's own
--   addresses (HAProxy 2.6); haproxy.cfg's checks send "whoami" and expect
--   the answer line. With LNET_DEPLOY_LOG=1 each
--   connection is logged on stdout ("connection vVERSION COMMAND FAMILY").
--   The first line on stdout is "listening on HOST:PORT".
--
-- See haproxy.cfg and nginx-stream.conf beside it, and README "Scaling out".

local net = require "net"

local listen = arg[1] or ""
local host, port = listen:match("^%[(.+)%]:(%d+)$")
if not host then host, port = listen:match("^([^:]+):(%d+)$") end
if not host then host, port = "127.0.0.1", listen end
port = math.tointeger(tonumber(port))
if not port then
  io.stderr:write("usage: lnet backend.lua [HOST:]PORT [NAME] [TRUSTED ...]\n")
  os.exit(2)
end
local name = arg[2] or "lnet"
local trusted = { table.unpack(arg, 3) }
if #trusted == 0 then trusted = { "127.0.0.1", "::1" } end
local verbose = os.getenv("LNET_DEPLOY_LOG") == "1"
local worker, workers = net.worker()

local server = net.TCPServer()
local pending = {}  -- id -> bytes of a line not yet complete

local function describe(id)
  local ip, p = server:peer(id)
  local tip, tp = server:transport_peer(id)
  local info = server:proxy_info(id) or {}
  return string.format("client %s %s via %s %s v%s %s server %s worker %d/%d",
    ip, p, tip, tp, info.version, info.command, name, worker, workers)
end

server:listen(host, port, {
  connected = function(id)
    pending[id] = ""
    if verbose then
      local info = server:proxy_info(id) or {}
      print(string.format("connection v%s %s %s", info.version, info.command, info.family))
      io.stdout:flush()
    end
  end,
  data = function(id, data)
    local buf = pending[id] .. data
    for _ in buf:gmatch("[^\n]*\n") do server:send(id, describe(id) .. "\n") end
    pending[id] = buf:match("[^\n]*$")
  end,
  disconnected = function(id) pending[id] = nil end,
  started = function()
    local h, p = server:address()
    print(string.format("listening on %s:%d", h:find(":") and "[" .. h .. "]" or h, p))
    io.stdout:flush()
  end,
  error = function(message)
    io.stderr:write("backend: ", message, "\n")
    os.exit(1)
  end,
}, { proxy_protocol = "any", proxy_trusted = trusted, proxy_header_timeout = 3000,
     reuseport = workers > 1, nodelay = true })
