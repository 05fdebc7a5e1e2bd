-- Binary safety: every byte value, embedded and leading NULs, both
-- directions, exact round trip.
local net = require "net"
local t = require "testlib"

local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)

local messages = {
  "\0",
  "\0\0\0",
  all,
  all:reverse(),
  "a\0b\0\0c\255\0",
  all:rep(256),                 -- 64 KiB
  ("\0"):rep(1000) .. "\r\n\26\255",
}
local expected = table.concat(messages)

for _, host in ipairs { "127.0.0.1", "::1" } do
  t.run(10000, function(done)
    local server_got, client_got = {}, {}
    local server_n, client_n = 0, 0
    local srv, port
    srv, port = t.listen({
      data = function(id, d)
        t.eq(type(d), "string", "data type")
        server_got[#server_got + 1] = d
        server_n = server_n + #d
        t.truthy(server_n <= #expected, "server received too much")
        local r = srv:send(id, d)     -- echo
        t.truthy(r == true or r == false, "echo send result " .. t.show(r))
      end,
      error = function(m) error("server error: " .. m) end,
    }, host)
    t.closing(srv)
    local c = net.TCPSocket()
    c:connect(host, port, {
      connected = function()
        for _, m in ipairs(messages) do
          t.truthy(c:send(m) ~= nil, "client send")
        end
      end,
      data = function(d)
        client_got[#client_got + 1] = d
        client_n = client_n + #d
        t.truthy(client_n <= #expected, "client received too much")
        if client_n == #expected then
          local s, cgot = table.concat(server_got), table.concat(client_got)
          t.eq(#s, #expected, "server received length")
          t.truthy(s == expected, "server received bytes differ")
          t.eq(#cgot, #expected, "client received length")
          t.truthy(cgot == expected, "client received bytes differ")
          local st = c:stats()
          t.eq(st.bytes_in, #expected, "stats().bytes_in")
          t.eq(st.bytes_out, #expected, "stats().bytes_out")
          c:disconnect()
        end
      end,
      disconnected = function()
        t.eq(client_n, #expected, "all bytes before disconnected")
        done()
      end,
      error = function(m) error("client error: " .. m) end,
    })
  end)
end
