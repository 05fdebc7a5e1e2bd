-- https_client.lua: fetches one URL over HTTPS with the certificate and
-- host name verified (as lnet always does unless told `insecure = true`),
-- and prints the status line, then the body.
--
-- Usage:  lnet examples/https_client.lua URL [CAFILE]
--   URL     https://host[:port]/path
--   CAFILE  trust this CA (PEM) instead of the system trust store
-- Exit status 0 on a 2xx answer, 1 otherwise; a failed verification prints
-- OpenSSL's reason, e.g.
--   https_client: TLS handshake with example.test:443 failed: certificate verify failed (hostname mismatch)

local net = require "net"

local url, cafile = arg[1], arg[2]
local host, port, path = (url or ""):match("^https://([^/:]+):?(%d*)(/?.*)$")
if not host then
  io.stderr:write("usage: lnet examples/https_client.lua https://host[:port]/path [CAFILE]\n")
  os.exit(2)
end
port = tonumber(port) or 443
if path == "" then path = "/" end

-- tls = true would use the system trust store; a private CA needs its own context.
local tls = cafile and net.TLSContext { ca = cafile } or true

local client = net.TCPSocket()
local response, status = {}, 1
client:connect(host, port, {
  connected = function()
    client:send(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: lnet\r\n\r\n"):format(path, host))
  end,
  data = function(data) response[#response + 1] = data end,
  error = function(message)
    io.stderr:write("https_client: ", message, "\n")
  end,
  disconnected = function()
    local text = table.concat(response)
    local status_line, body = text:match("^(.-)\r\n.-\r\n\r\n(.*)$")
    if status_line then
      print(status_line)
      io.write(body)
      if status_line:match("^HTTP/1%.%d 2%d%d") then status = 0 end
    end
  end,
}, { tls = tls, timeout = 10000 })

net.loop()
os.exit(status)
