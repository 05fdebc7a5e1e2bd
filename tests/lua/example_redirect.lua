-- Runs an example that talks to the internet against a local HTTP server.
--
--   lnet tests/lua/example_redirect.lua examples/basic_client.lua
--
-- Starts an HTTP server on 127.0.0.1, port 0 (any free port), and wraps
-- net.TCPSocket so that every connect(host, port, callbacks [, options]) goes
-- to that server instead, then runs the unchanged example with dofile. The
-- server answers one request per connection and stops after the first
-- connection has ended, so the script ends once the example is done.
-- Lines starting with "redirect:" say what the server saw.

local example = assert(..., "usage: lnet example_redirect.lua EXAMPLE.lua")

local body = '{"slideshow": {"title": "served by example_redirect.lua"}}\n'
local local_port      -- set once the server is listening
local pending = {}    -- connects made before that

local server = net.TCPServer()
local requests = {}
server:listen("127.0.0.1", 0, {
  started = function()
    local _, port = server:address()
    local_port = port
    print("redirect: listening on 127.0.0.1:" .. port)
    for _, go in ipairs(pending) do go() end
    pending = {}
  end,
  connected = function(id)
    requests[id] = ""
  end,
  data = function(id, data)
    if requests[id] == nil then return end
    requests[id] = requests[id] .. data
    local head = requests[id]:match("^(.-)\r\n\r\n")
    if not head then return end
    requests[id] = nil
    local request_line = head:match("^[^\r\n]*")
    local host = head:match("\r\n[Hh]ost: *([^\r\n]*)")
    print("redirect: request " .. request_line .. " (Host: " .. tostring(host) .. ")")
    server:send(id, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" ..
                    "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
    server:disconnect(id)
  end,
  disconnected = function(id)
    print("redirect: connection " .. id .. " ended")
    server:stop()
  end,
  error = function(message)
    error("redirect: local server failed: " .. message)
  end,
})

-- A proxy for each socket: connect goes to the local server, every other
-- method goes to the real socket.
local real_TCPSocket = net.TCPSocket
net.TCPSocket = function(...)
  local sock = real_TCPSocket(...)
  local proxy = {}
  function proxy.connect(_, host, port, callbacks, options)
    print("redirect: connect(" .. tostring(host) .. ", " .. tostring(port) .. ") -> local server")
    local function go()
      if options == nil then return sock:connect("127.0.0.1", local_port, callbacks) end
      return sock:connect("127.0.0.1", local_port, callbacks, options)
    end
    if local_port then return go() end
    pending[#pending + 1] = go
    return true
  end
  return setmetatable(proxy, {
    __index = function(_, key)
      local value = sock[key]
      if type(value) ~= "function" then return value end
      return function(self, ...)
        if self == proxy then self = sock end
        return value(self, ...)
      end
    end,
    __tostring = function() return tostring(sock) end,
  })
end

dofile(example)
