-- max_connections: at the limit the listener stops accepting (the kernel
-- queues new connections) and resumes below it.
local net = require "net"
local t = require "testlib"

t.run(20000, function(done)
  local srvlog = t.log("server")
  local srv, port
  local clients, clogs = {}, {}
  local closed_first = false
  srv, port = t.listen({
    connected = srvlog:fn("connected", function(id)
      local n = srvlog:count("connected")
      t.truthy(#srv:clients() <= 2, "more clients than max_connections: " .. t.show(srv:clients()))
      if n == 2 then
        -- Wait: the third client must not be accepted while two are open.
        t.after(300, function()
          t.eq(srvlog:count("connected"), 2, "accepted at max_connections")
          closed_first = true
          t.eq(srv:close(srv:clients()[1]), true, "close one")
        end)
      elseif n == 3 then
        t.truthy(closed_first, "third accepted before a slot was free")
        t.after(50, done)
      end
    end),
    disconnected = srvlog:fn("disconnected"),
    error = srvlog:fn("error", function(m) error("server error: " .. m) end),
  }, nil, { max_connections = 2 })
  t.closing(srv)
  for i = 1, 3 do
    clogs[i] = t.log("client" .. i)
    clients[i] = net.TCPSocket()
    clients[i]:connect("127.0.0.1", port, {
      connected = clogs[i]:fn("connected"),
      disconnected = clogs[i]:fn("disconnected"),
      error = clogs[i]:fn("error"),
    })
    t.cleanup(function() clients[i]:close() end)
  end
end)
