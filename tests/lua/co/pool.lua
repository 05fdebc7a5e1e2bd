-- The connection pool: setkeepalive() returns a connection, the next
-- connect() to the same host and port takes it (getreusedtimes() counts, the
-- server accepts no new connection); idle timeout, a peer's close, unread
-- data and a full pool each retire connections.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, {
  data = function(id, d)
    if d:find("quit", 1, true) then srv:close(id) return end
    srv:send(id, d)
  end,
})
local _, port = srv:address()
local function accepted() return srv:stats().accepted end

t.run(20000, function()
  local function roundtrip(s, what)
    t.eq(s:send(what .. "\n"), #what + 1, "send")
    t.eq(s:receive(), what, "echo")
  end
  local s = co.tcp()
  t.eq(s:connect("127.0.0.1", port), 1, "first connect")
  t.eq(s:getreusedtimes(), 0, "new connection")
  roundtrip(s, "a")
  t.eq(s:setkeepalive(10000, 4), 1, "setkeepalive")
  t.eq(s:send("x"), nil, "the cosocket is closed once pooled")
  for i = 1, 3 do
    local s2 = co.tcp()
    t.eq(s2:connect("127.0.0.1", port), 1, "connect from the pool")
    t.eq(s2:getreusedtimes(), i, "getreusedtimes")
    roundtrip(s2, "b" .. i)
    t.eq(s2:setkeepalive(10000, 4), 1, "back to the pool")
  end
  t.eq(accepted(), 1, "the server accepted one connection")

  -- A named pool is another pool.
  local s3 = co.tcp()
  t.eq(s3:connect("127.0.0.1", port, { pool = "other" }), 1, "named pool")
  t.eq(s3:getreusedtimes(), 0, "a named pool starts empty")
  t.eq(accepted(), 2, "a new connection for the named pool")
  s3:close()

  -- The peer closes a pooled connection: it leaves the pool.
  local s4 = co.tcp()
  s4:connect("127.0.0.1", port)
  t.eq(s4:getreusedtimes(), 4, "reused again")
  s4:send("quit\n")
  co.sleep(10)
  s4:setkeepalive(10000, 4)
  co.sleep(100)
  local s5 = co.tcp()
  s5:connect("127.0.0.1", port)
  t.eq(s5:getreusedtimes(), 0, "a connection closed in the pool is not reused")
  t.eq(accepted(), 3, "a new connection after the peer closed the pooled one")

  -- Idle timeout.
  s5:setkeepalive(50, 4)
  co.sleep(200)
  local s6 = co.tcp()
  s6:connect("127.0.0.1", port)
  t.eq(s6:getreusedtimes(), 0, "expired connections are not reused")
  t.eq(accepted(), 4, "a new connection after the idle timeout")

  -- Unread data: setkeepalive refuses and closes.
  s6:send("unread\n")
  co.sleep(50)
  local s7 = co.tcp()
  s7:connect("127.0.0.1", port)
  s7:settimeout(20)
  s7:receive(1)  -- nothing: timeout
  local ok6, err6 = s6:setkeepalive(10000, 4)
  t.eq(ok6, nil, "setkeepalive with unread data")
  t.eq(err6, "unread data in buffer", "its message")
  s7:close()

  -- A full pool: the least recently used connection is closed.
  local socks = {}
  for i = 1, 3 do
    socks[i] = co.tcp()
    socks[i]:connect("127.0.0.1", port, { pool = "small" })
  end
  local before = srv:stats().active
  for i = 1, 3 do t.eq(socks[i]:setkeepalive(10000, 2), 1, "keepalive " .. i) end
  co.sleep(100)
  t.eq(srv:stats().active, before - 1, "the pool of 2 closed the third connection")
  srv:stop()
end)
