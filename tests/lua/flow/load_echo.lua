-- N concurrent connections through an echo server, each exchanging ROUNDS
-- messages of varied sizes, checked byte for byte; all N are open at once
-- (the clients start talking only when every one has connected, and leave
-- only when every one has finished).
-- FLOW_ARGS: n, role = "both" (server and clients in this state),
-- "server" (clients in a forked child, see flowc.spawn) or "clients"
-- (port = the server's port).
local net = require "net"
local t = require "testlib"
local F = require "flow.flowlib"

local N = F.args.n
local ROLE = F.args.role
local ROUNDS = 10
local INFLIGHT = 200     -- connects in progress at once
local pat = F.pattern(65521, 2000, 17)

local function message(i, k)
  local head = ("c%d:m%d:"):format(i, k)
  local len = (i * 7 + k * 131) % 1400 + 1
  return head .. pat:at((i * 977 + k * 61) % 65521, len)
end

local t_start = net.now()

---------------------------------------------------------------------------
local server = { connected = 0, disconnected = 0, max_active = 0, bytes = 0 }
local srv, port

local function start_server(on_connected)
  srv, port = t.listen({
    connected = function()
      server.connected = server.connected + 1
      local active = server.connected - server.disconnected
      if active > server.max_active then server.max_active = active end
      if on_connected then on_connected() end
    end,
    data = function(id, d)
      server.bytes = server.bytes + #d
      local r, msg = srv:send(id, d)
      if r == nil then error("server send: " .. msg) end
      if r == false then srv:pause(id) end
    end,
    drain = function(id) srv:resume(id) end,
    disconnected = function(id, reason)
      server.disconnected = server.disconnected + 1
      if reason ~= nil then error(("server: disconnected(%d, %q)"):format(id, reason)) end
    end,
    error = function(m) error("server error: " .. m) end,
  }, "127.0.0.1", { backlog = 4096 })
end

local function check_server_end()
  t.eq(server.connected, N, "server connected count")
  t.eq(server.disconnected, N, "server disconnected count")
  t.eq(server.max_active, N, "connections open at once (server side)")
  local st = srv:stats()
  t.eq(st.accepted, N, "server stats().accepted")
  t.eq(st.active, 0, "server stats().active at the end")
  local want = 0
  for i = 1, N do for k = 1, ROUNDS do want = want + #message(i, k) end end
  t.eq(server.bytes, want, "bytes echoed by the server")
end

---------------------------------------------------------------------------
local clients = { connected = 0, done = 0, disconnected = 0, started = false }
local socks = {}

local function start_clients(target_port, ready)
  local next_i, inflight = 1, 0
  local function barrier()
    if clients.started or clients.connected < N or not ready() then return end
    clients.started = true
    for i = 1, N do socks[i].start() end
  end
  clients.barrier = barrier
  local function open_more()
    while next_i <= N and inflight < INFLIGHT do
      local i = next_i
      next_i = i + 1
      inflight = inflight + 1
      local c = net.TCPSocket()
      local k, buf, want = 0, {}, nil
      local have = 0
      local function send_next()
        k = k + 1
        want = message(i, k)
        buf, have = {}, 0
        local r, msg = c:send(want)
        if r == nil then error(("client %d: send: %s"):format(i, msg)) end
      end
      c:connect("127.0.0.1", target_port, {
        connected = function()
          inflight = inflight - 1
          clients.connected = clients.connected + 1
          open_more()
          barrier()
        end,
        data = function(d)
          if not clients.started then error(("client %d: data before it sent anything"):format(i)) end
          buf[#buf + 1] = d
          have = have + #d
          if have > #want then error(("client %d: round %d: %d bytes back for %d sent"):format(i, k, have, #want)) end
          if have == #want then
            local got = table.concat(buf)
            if got ~= want then error(("client %d: round %d: echo differs"):format(i, k)) end
            if k < ROUNDS then
              send_next()
            else
              clients.done = clients.done + 1
              if clients.done == N then
                for j = 1, N do socks[j].c:disconnect() end
              end
            end
          end
        end,
        disconnected = function()
          clients.disconnected = clients.disconnected + 1
          if clients.done < N then error(("client %d: disconnected before every client was done"):format(i)) end
        end,
        error = function(m) error(("client %d error: %s"):format(i, m)) end,
      })
      socks[i] = { c = c, start = send_next }
    end
  end
  open_more()
end

---------------------------------------------------------------------------
if ROLE == "both" then
  start_server(function() if clients.barrier then clients.barrier() end end)
  start_clients(port, function() return server.connected == N end)
  F.wait(function() return clients.disconnected == N and server.disconnected == N end, 240000,
         ("%d connections x %d rounds (connected %d/%d, done %d, ended %d/%d)"):format(
           N, ROUNDS, clients.connected, server.connected, clients.done, clients.disconnected,
           server.disconnected))
  check_server_end()
  srv:stop()
  F.settle()
elseif ROLE == "server" then
  start_server()
  local pid, rfd = flowc.spawn("load_echo", ("{ n = %d, role = 'clients', port = %d }"):format(N, port))
  local ok, err = pcall(F.wait, function() return server.disconnected == N end, 240000,
                        "every client served and ended")
  local status, output = flowc.wait_child(pid, rfd, ok and 30000 or 1000)
  t.eq(status, "exit 0", "client process status (output: " .. output .. ")")
  t.eq(output, "OK", "client process output")
  if not ok then error(err, 0) end
  check_server_end()
  srv:stop()
  F.settle()
else
  start_clients(F.args.port, function() return true end)
  F.wait(function() return clients.disconnected == N end, 240000, "every client done and ended")
  t.eq(clients.done, N, "clients done")
end
print(("load_echo %s: %d connections x %d rounds in %d ms"):format(ROLE, N, ROUNDS, net.now() - t_start))
