-- Helpers for the TLS scenarios (tests/tls.cc runs them with a global TLS:
-- { certs = directory of tests/tls/make-certs.sh output, port = a peer's
-- port, case = the case to run, pid = a peer's process id, ... }).
local net = require "net"
local t = require "testlib"

local L = {}
L.args = TLS or error("TLS (the test's parameters) is not set")

function L.path(name) return L.args.certs .. "/" .. name end

function L.read(name)
  local f = assert(io.open(L.path(name), "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The test CA's client context (verification on, as by default).
function L.client_ctx(extra)
  local o = { ca = L.path("ca.pem") }
  for k, v in pairs(extra or {}) do o[k] = v end
  return net.TLSContext(o)
end

function L.server_ctx(extra)
  local o = { cert = L.path("server.pem"), key = L.path("server.key") }
  for k, v in pairs(extra or {}) do o[k] = v end
  return net.TLSContext(o)
end

-- Connects, waits for connected or error (bounded), and returns a record:
-- { connected, err, code, info, events = {names...} }. With send, sends it
-- after connected and collects data until `want` bytes (or the end);
-- send = false: sends nothing and waits for the peer to end it.
function L.attempt(host, port, options, send, want, ms, on_connected)
  local r = { events = {}, data = "" }
  local c = net.TCPSocket()
  t.run(ms or 15000, function(done)
    c:connect(host, port, {
      connected = function()
        r.events[#r.events + 1] = "connected"
        r.connected = true
        r.info = c:tlsinfo()
        if on_connected then on_connected(c) end
        if send then c:send(send) elseif send == nil then c:disconnect() end
      end,
      data = function(d)
        r.data = r.data .. d
        if want and #r.data >= want then c:disconnect() end
      end,
      error = function(m, code)
        r.events[#r.events + 1] = "error"
        r.err, r.code = m, code
      end,
      disconnected = function()
        r.events[#r.events + 1] = "disconnected"
        done()
      end,
    }, options)
    -- An attempt that fails fires only 'error': end on the next round.
    local iv
    iv = net.setInterval(function()
      if r.err and not r.connected then net.clearInterval(iv) done() end
      if r.events[#r.events] == "disconnected" then net.clearInterval(iv) end
    end, 10)
    t.cleanup(function() net.clearInterval(iv) end)
  end, { keep = true })
  return r
end

-- Starts a shell command in the background, its stdout and stderr into a
-- file; returns { pid, out = path }. L.stop(p) kills it by its PID.
local spawned = 0
L.children = {}  -- stopped by L.stop_all (tests/tls.cc calls it after every scenario)

function L.stop_all()
  for _, p in ipairs(L.children) do L.stop(p) end
end
function L.spawn(cmd, input_path)
  spawned = spawned + 1
  local out = ("%s/spawn-%d-%d.out"):format(L.args.certs, math.random(1 << 30), spawned)
  -- A simple command in the background: $! is its own PID.
  local f = assert(io.popen(("%s < %s > %s 2>&1 & echo $!"):format(cmd, input_path or "/dev/null", out)))
  local pid = math.tointeger(tonumber(f:read("l")))
  f:close()
  assert(pid, "no pid for " .. cmd)
  local p = { pid = pid, out = out }
  L.children[#L.children + 1] = p
  return p
end

-- Starts cmd with stdin from a file holding input.
function L.spawn_input(cmd, input)
  spawned = spawned + 1
  local inp = ("%s/input-%d.txt"):format(L.args.certs, spawned)
  local f = assert(io.open(inp, "wb"))
  f:write(input)
  f:close()
  return L.spawn(cmd, inp)
end

function L.stop(p)
  if p.pid then os.execute(("kill -9 %d 2>/dev/null"):format(p.pid)) end
  p.pid = nil
end

-- Whether the process still runs.
function L.running(p)
  return p.pid ~= nil and os.execute(("kill -0 %d 2>/dev/null"):format(p.pid)) == true
end

function L.output(p)
  local f = io.open(p.out, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Pumps the loop until cond() (bounded).
function L.wait(cond, ms, what)
  if cond() then return end
  local ok = false
  t.run(ms + 30000, function(done)
    local start = net.now()
    local iv
    iv = net.setInterval(function()
      if cond() then ok = true end
      if ok or net.now() - start > ms then net.clearInterval(iv) done() end
    end, 5)
  end, { keep = true })
  if not ok then error((what or "condition") .. (": not true after %d ms"):format(ms), 2) end
end

function L.openssl_client(port, extra)
  return ("openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error -servername localhost %s")
    :format(port, L.path("ca.pem"), extra or "")
end

return L
