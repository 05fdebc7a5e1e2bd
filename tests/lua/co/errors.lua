-- An error raised in a coroutine propagates out of net.loop() with the
-- coroutine's own traceback; co.wait later returns it; the loop runs again;
-- a handler's error closes its socket.
local net = require "net"
local co = require "net.co"
local t = require "co.colib"

local function inner_function_name() error("raised inside", 0) end

local th = co.spawn(function()
  co.sleep(10)
  inner_function_name()
end)
local ok, err = pcall(net.loop)
t.eq(ok, false, "net.loop raises")
t.has(err, "raised inside", "the message")
t.has(err, "inner_function_name", "the coroutine's own traceback")
local wok, wmsg = co.wait(th)
t.eq(wok, false, "co.wait on the failed thread")
t.eq(wmsg, "raised inside", "its message")

-- A handler raises: its socket is closed, the error leaves net.loop().
local client_saw
local srv, port = t.listen(function(sock)
  sock:receive()
  error("handler failed", 0)
end)
co.spawn(function()
  local s = co.tcp()
  s:connect("127.0.0.1", port)
  s:send("go\n")
  local r, e = s:receive()
  client_saw = e
end)
ok, err = pcall(net.loop)
t.eq(ok, false, "handler error raises")
t.has(err, "handler failed", "handler message")
-- The loop runs again; the client sees the close.
t.run(5000, function()
  for _ = 1, 100 do
    if client_saw then break end
    co.sleep(10)
  end
  t.eq(client_saw, "closed", "the client of a failed handler")
  srv:stop()
end)

-- Errors inside a coroutine that is being waited for go to the waiter.
t.run(5000, function()
  local child = co.spawn(function() co.sleep(5); error({ code = 7 }) end)
  local ok2, e2 = co.wait(child)
  t.eq(ok2, false, "waited thread failed")
  t.eq(type(e2), "table", "the error value itself")
  t.eq(e2.code, 7, "error table field")
end)
