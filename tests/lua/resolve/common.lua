-- Helpers for the resolver scripts (run by tests/resolver.cc).
local t = require "testlib"
local net = require "net"

local M = {}

-- Connects to host:port and returns what happened first (servers may stay
-- active):
-- "connected", peer ip  or  "error", message, code.
function M.try(host, port, options)
  local result
  t.run(10000, function(done)
    local c = net.TCPSocket()
    t.call(c, "connect", host, port, {
      connected = function()
        result = { "connected", (c:peer()) }
        c:close()
        done()
      end,
      error = function(msg, code)
        result = { "error", msg, code }
        done()
      end,
    }, options)
  end, { keep = true })
  return table.unpack(result, 1, 3)
end

-- A server on host port 0 (address() is known once it has started);
-- stop it when done.
function M.server(host)
  local srv = net.TCPServer()
  local started = false
  t.run(10000, function(done)
    t.call(srv, "listen", host, 0, {
      started = function() started = true; done() end,
      error = function(msg) error("listen on " .. host .. ": " .. msg) end,
    })
  end, { keep = true })
  t.truthy(started, "started")
  local _, port = srv:address()
  return srv, port
end

return M
