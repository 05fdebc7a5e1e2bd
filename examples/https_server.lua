-- https_server.lua: a static file server over HTTPS (TLS 1.2+), GET and
-- HEAD only, one request per connection.
--
-- Usage:  lnet examples/https_server.lua ROOT CERT KEY [PORT [HOST]]
--   ROOT  the directory served (names with "..", or starting with ".", are refused)
--   CERT  the server's certificate chain (PEM); KEY its private key (PEM)
--   PORT  default 8443; 0 picks a free port.  HOST default 127.0.0.1
-- On start it prints  https_server: listening on HOST:PORT
--
-- Try it with a private CA (see README, "TLS"):
--   curl --cacert ca.pem https://localhost:8443/index.html
-- Clients whose handshake fails (an untrusting browser, plain HTTP) never
-- reach the handlers: tls_error logs them, stats().tls_failed counts them.

local net = require "net"

local root, cert, key, port, host = arg[1], arg[2], arg[3], tonumber(arg[4] or "8443"), arg[5] or "127.0.0.1"
if not (root and cert and key and port) then
  io.stderr:write("usage: lnet examples/https_server.lua ROOT CERT KEY [PORT [HOST]]\n")
  os.exit(2)
end

-- Raises with the file name and OpenSSL's reason when cert or key is wrong.
local ctx = net.TLSContext { cert = cert, key = key, alpn = { "http/1.1" } }

local TYPES = { html = "text/html", txt = "text/plain", json = "application/json",
                css = "text/css", js = "text/javascript", png = "image/png" }

local server = net.TCPServer()
local requests = {}

local function respond(id, status, reason, body, ctype, head)
  server:send(id, ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
    :format(status, reason, ctype or "text/plain", #body))
  if not head then server:send(id, body) end
  server:disconnect(id)  -- flushes, then TLS close_notify, then closes
end

local function handle(id, request)
  local method, path = request:match("^(%u+) (/[^ ]*) HTTP/1%.[01]\r\n")
  if not method then return respond(id, 400, "Bad Request", "bad request\n") end
  if method ~= "GET" and method ~= "HEAD" then
    return respond(id, 405, "Method Not Allowed", "GET or HEAD only\n")
  end
  path = path:gsub("%?.*$", "")
  if path == "/" then path = "/index.html" end
  local name = path:sub(2)
  if name:find("%.%.") or name:find("^%.") or name:find("/%.") or name:find("%z") then
    return respond(id, 403, "Forbidden", "forbidden\n", nil, method == "HEAD")
  end
  local f = io.open(root .. "/" .. name, "rb")
  local body = f and f:read("a")
  if f then f:close() end
  if not body then return respond(id, 404, "Not Found", "not found\n", nil, method == "HEAD") end
  respond(id, 200, "OK", body, TYPES[name:match("%.(%w+)$") or ""] or "application/octet-stream",
          method == "HEAD")
end

server:listen(host, port, {
  started = function()
    local h, p = server:address()
    print(("https_server: listening on %s:%d"):format(h, p))
    io.stdout:flush()
  end,
  connected = function(id) requests[id] = "" end,
  data = function(id, data)
    local r = requests[id] .. data
    requests[id] = r
    if r:find("\r\n\r\n", 1, true) then
      requests[id] = nil
      handle(id, r)
    elseif #r > 8192 then
      requests[id] = nil
      respond(id, 431, "Request Header Fields Too Large", "too large\n")
    end
  end,
  disconnected = function(id) requests[id] = nil end,
  tls_error = function(message)
    print("https_server: " .. message)
    io.stdout:flush()
  end,
  error = function(message) io.stderr:write("https_server: ", message, "\n") os.exit(1) end,
}, { tls = ctx, idle_timeout = 30000 })
