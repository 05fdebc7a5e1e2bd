-- HTTP client in straight-line code: the coroutine version of
-- http_client.lua. co.spawn runs the function as a coroutine on the loop;
-- each cosocket call waits without blocking the loop.
--
-- Run:  lnet examples/co_http_client.lua [http://host:port/path]
--       (default http://127.0.0.1:8890/time: start
--        `lnet examples/http_server.lua` in another terminal)

local net = require "net"
local co = require "net.co"

local function http_get(url)
  local host, port, path = url:match("^http://([^/:]+):?(%d*)(/?.*)$")
  if not host then return nil, "not an http:// URL: " .. url end
  port = tonumber(port) or 80
  if path == "" then path = "/" end

  local sock = co.tcp()
  sock:settimeout(10000)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, err end
  sock:send({ "GET ", path, " HTTP/1.1\r\nHost: ", host, "\r\nConnection: close\r\n\r\n" })

  local status_line, err2 = sock:receive("*l")
  if not status_line then return nil, err2 end
  local status = tonumber(status_line:match("^HTTP/%d%.%d (%d+)"))
  local headers = {}
  while true do
    local line, err3 = sock:receive("*l")
    if not line then return nil, err3 end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name:lower()] = value end
  end
  local body, err4
  if headers["content-length"] then
    body, err4 = sock:receive(tonumber(headers["content-length"]))
  else
    body, err4 = sock:receive("*a")
  end
  sock:close()
  if not body then return nil, err4 end
  return status, headers, body
end

co.spawn(function()
  local url = (arg and arg[1]) or "http://127.0.0.1:8890/time"
  local status, headers, body = http_get(url)
  if not status then
    print("HTTP request failed:", headers)
    return
  end
  print("HTTP status: " .. status)
  print("Content-Type: " .. tostring(headers["content-type"]))
  print("Body: " .. body:sub(1, 500))
end)

net.loop()
