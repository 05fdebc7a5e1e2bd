-- An error raised in a callback comes out of net.loop() with its traceback;
-- the loop stays consistent: running it again carries on, the connection
-- still works, pending timers still fire.
local net = require "net"
local t = require "testlib"

local function check_loop_error(err, text)
  t.eq(type(err), "string", "error value type")
  t.has(err, text, "the original message")
  t.has(err, "stack traceback", "the traceback")
  t.has(err, "callback_error.lua:", "the traceback names the script")
end

-- 1. Error in a server data callback: net.loop() raises; sending on the
-- same connection afterwards works.
do
  local srv, port
  local c = net.TCPSocket()
  local raised, loop_errors, got = 0, 0, {}
  local recovered, finished = false, false
  t.run(10000, function(done)
    srv, port = t.listen({
      data = function(id, d)
        if d == "boom" then
          raised = raised + 1
          error("boom-in-data")
        end
        srv:send(id, "echo:" .. d)
      end,
      error = function(m) error("server error: " .. m) end,
    })
    t.closing(srv)
    t.cleanup(function() c:close() end)
    c:connect("127.0.0.1", port, {
      connected = function() c:send("boom") end,
      data = function(d)
        t.truthy(recovered, "data before recovery")
        got[#got + 1] = d
        if table.concat(got) == "echo:again" then finished = true; done() end
      end,
      error = function(m) error("client error: " .. m) end,
      disconnected = function()
        if not finished then error("client disconnected unexpectedly") end
      end,
    })
  end, {
    on_error = function(err)
      if not tostring(err):find("boom-in-data", 1, true) then return false end
      loop_errors = loop_errors + 1
      check_loop_error(err, "boom-in-data")
      recovered = true
      t.eq(c:send("again"), true, "send after the error")
      return true
    end,
  })
  t.eq(raised, 1, "data callback raised once")
  t.eq(loop_errors, 1, "net.loop() raised once")
end

-- 2. Error in a timer callback; the other timers still fire, in order.
do
  local fired = {}
  net.setTimeout(function() fired[#fired + 1] = "a" end, 5)
  net.setTimeout(function() fired[#fired + 1] = "boom"; error("boom-in-timer") end, 20)
  net.setTimeout(function() fired[#fired + 1] = "b" end, 60)
  local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  local ok, err = pcall(net.loop)
  t.eq(ok, false, "net.loop() raised")
  check_loop_error(err, "boom-in-timer")
  t.same(fired, { "a", "boom" }, "timers fired before the error")
  net.clearTimeout(guard)
  guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  -- The loop carries on: "b" fires; then only guard is left.
  local t0 = net.now()
  net.setTimeout(function() net.clearTimeout(guard) end, 80)
  t.eq(net.loop(), false, "net.loop() after the error runs to the end")
  t.same(fired, { "a", "boom", "b" }, "timers after the error")
  t.truthy(net.now() - t0 < 2000, "loop ended in time")
end

-- 3. Error in connected and in disconnected callbacks: the connection
-- stays consistent, disconnected fires exactly once.
do
  local srv, port
  local c = net.TCPSocket()
  local log = t.log("client")
  local errors = 0
  t.run(10000, function(done)
    srv, port = t.listen({
      data = function(id, d) srv:send(id, d) end,
    })
    t.closing(srv)
    c:connect("127.0.0.1", port, {
      connected = log:fn("connected", function() error("boom-in-connected") end),
      data = log:fn("data", function(d)
        t.eq(d, "ping", "echo")
        c:disconnect()
      end),
      disconnected = log:fn("disconnected", function()
        t.after(100, done)
        error("boom-in-disconnected")
      end),
      error = log:fn("error"),
    })
  end, {
    on_error = function(err)
      if tostring(err):find("boom-in-connected", 1, true) then
        errors = errors + 1
        check_loop_error(err, "boom-in-connected")
        t.eq(c:send("ping"), true, "send after an error in connected")
        return true
      elseif tostring(err):find("boom-in-disconnected", 1, true) then
        errors = errors + 1
        check_loop_error(err, "boom-in-disconnected")
        return true
      end
      return false
    end,
  })
  t.eq(errors, 2, "two errors came out of net.loop()")
  log:expect({ "connected", "data", "disconnected" })
end

-- 4. net.loop() inside a callback raises; a non-string error value still
-- stops the loop and the loop runs again afterwards.
do
  local inner
  net.setTimeout(function()
    local ok, err = pcall(net.loop)
    inner = { ok, err }
  end, 1)
  local guard = net.setTimeout(function() error("deadline exceeded") end, 5000)
  net.setTimeout(function() net.clearTimeout(guard) end, 20)
  t.eq(net.loop(), false, "outer loop")
  t.eq(inner[1], false, "net.loop() inside a callback raises")
  t.has(inner[2], "already running", "nested net.loop() message")

  local obj = setmetatable({}, { __tostring = function() return "custom error object" end })
  net.setTimeout(function() error(obj) end, 1)
  local after = false
  net.setTimeout(function() after = true end, 30)
  local ok, err = pcall(net.loop)
  t.eq(ok, false, "a table error value stops the loop")
  t.truthy(err == obj or (type(err) == "string" and err:find("custom error object", 1, true)),
    "the error value is kept: " .. t.show(tostring(err)))
  t.eq(net.loop(), false, "loop after a table error")
  t.truthy(after, "the pending timer fired after the error")
end
