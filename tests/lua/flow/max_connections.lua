-- max_connections = 2: a third client completes its TCP connect (the
-- kernel queues it) but the server's 'connected' fires for it only after
-- one of the first two has ended; nothing is reset, the bytes it sent while
-- waiting arrive; stats().active and accepted follow.
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local srvlog = t.log("server")
local srv, port
local by_id = {}   -- id -> bytes received
srv, port = t.listen(F.callbacks(srvlog, { "connected", "data", "disconnected", "error" }, {
  data = function(id, d)
    by_id[id] = (by_id[id] or "") .. d
    if d:sub(-1) == "\n" then srv:send(id, "echo:" .. by_id[id]) end
  end,
}), "127.0.0.1", { max_connections = 2 })

local clients, logs, replies = {}, {}, {}
local function connect(name)
  local c = net.TCPSocket()
  local lg = t.log(name)
  replies[name] = ""
  c:connect("127.0.0.1", port, F.callbacks(lg, { "connected", "data", "disconnected", "error" }, {
    connected = function() t.eq(c:send("hello from " .. name .. "\n"), true, name .. " send") end,
    data = function(d) replies[name] = replies[name] .. d end,
  }))
  clients[name], logs[name] = c, lg
  return c, lg
end

connect("a")
F.wait(function() return srvlog:count("connected") == 1 end, 5000, "a accepted")
connect("b")
F.wait(function() return srvlog:count("connected") == 2 end, 5000, "b accepted")
F.wait(function() return replies.a ~= "" and replies.b ~= "" end, 5000, "a and b served")
local st = srv:stats()
t.eq(st.accepted, 2, "accepted with two clients")
t.eq(st.active, 2, "active with two clients")

-- The third: connected at TCP level, not accepted.
connect("c")
F.wait(function() return logs.c:count("connected") == 1 end, 5000, "c's TCP connect completes")
F.sleep(500)
t.eq(srvlog:count("connected"), 2, "server connected count at the limit")
t.same(srv:clients(), { 1, 2 }, "clients() at the limit")
st = srv:stats()
t.eq(st.accepted, 2, "accepted at the limit")
t.eq(st.active, 2, "active at the limit")
t.truthy(st.limit_pauses == nil or st.limit_pauses >= 1, "limit_pauses counts the pause")
t.eq(by_id[3], nil, "bytes from c before it was accepted")
t.eq(replies.c, "", "c served before it was accepted")
t.eq(logs.c:count("error") + logs.c:count("disconnected"), 0, "c was not reset nor closed")

-- One of the first two leaves: c is accepted, its early bytes arrive.
clients.a:disconnect()
F.wait(function() return srvlog:count("connected") == 3 end, 5000, "c accepted after a left")
local seq = {}
for _, ev in ipairs(srvlog.events) do
  if ev.name == "connected" or ev.name == "disconnected" then seq[#seq + 1] = ev.name .. ev[1] end
end
t.same(seq, { "connected1", "connected2", "disconnected1", "connected3" },
       "server events: c's connected after a's disconnected")
F.wait(function() return replies.c == "echo:hello from c\n" end, 5000, "c served")
t.eq(by_id[3], "hello from c\n", "c's bytes, sent while queued by the kernel")
st = srv:stats()
t.eq(st.accepted, 3, "accepted after c")
t.eq(st.active, 2, "active after c")
t.same(srv:clients(), { 2, 3 }, "clients() after c")

-- Below the limit again: a fourth client is accepted once b leaves, and a
-- fifth waits again.
connect("d")
F.wait(function() return logs.d:count("connected") == 1 end, 5000, "d's TCP connect")
F.sleep(300)
t.eq(srvlog:count("connected"), 3, "d waits at the limit")
clients.b:close()
F.wait(function() return replies.d == "echo:hello from d\n" end, 5000, "d served after b left")
t.eq(srv:stats().accepted, 4, "accepted after d")
t.eq(srv:stats().active, 2, "active after d")

for _, name in ipairs({ "a", "b", "c", "d" }) do
  t.eq(logs[name]:count("error"), 0, name .. " errors")
end
t.eq(srvlog:count("error"), 0, "server errors")
clients.c:disconnect()
clients.d:disconnect()
F.wait(function() return srvlog:count("disconnected") == 4 end, 5000, "all disconnected")
t.eq(srv:stats().active, 0, "active at the end")
srv:stop()
F.settle()
