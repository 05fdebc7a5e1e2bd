-- Debian's lua-nginx-redis (lua-resty-redis), unmodified, on net.ngx against
-- a real redis-server that the test program started: REDIS_PORT is its
-- port, REDIS_KILL() kills it (SIGKILL) and waits for it to end.
package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
ngx = require "net.ngx"
local net = require "net"
local co = require "net.co"
local t = require "co.colib"
local redis = require "nginx.redis"

local port = assert(tonumber(REDIS_PORT), "REDIS_PORT")

local function connect()
  local r = redis:new()
  r:set_timeout(5000)
  local ok, err = r:connect("127.0.0.1", port)
  t.eq(err, nil, "connect error")
  t.eq(ok, 1, "connect")
  return r
end

t.run(60000, function()
  local r = connect()
  -- SET / GET, a missing key is ngx.null.
  t.eq(r:set("lnet:key", "value"), "OK", "SET")
  t.eq(r:get("lnet:key"), "value", "GET")
  t.eq(r:get("lnet:missing"), ngx.null, "GET of a missing key")
  local bin = "\0\r\n" .. string.rep("\255", 100000)
  t.eq(r:set("lnet:bin", bin), "OK", "SET binary")
  t.eq(r:get("lnet:bin"), bin, "GET binary (100 KB)")
  local res, err = r:incr("lnet:key")
  t.eq(res, false, "INCR of a string fails (false, as lua-resty-redis gives redis errors)")
  t.has(err, "ERR", "redis error text")

  -- 10,000 pipelined commands.
  r:init_pipeline()
  for i = 1, 10000 do r:set("lnet:p" .. i, i) end
  for i = 1, 10000 do r:get("lnet:p" .. i) end
  local results = r:commit_pipeline()
  t.eq(#results, 20000, "pipelined replies")
  t.eq(results[1], "OK", "first reply")
  t.eq(results[10001], "1", "first GET reply")
  t.eq(results[20000], "10000", "last reply")

  -- A transaction.
  t.eq(r:multi(), "OK", "MULTI")
  t.eq(r:set("lnet:tx", "1"), "QUEUED", "queued SET")
  t.eq(r:incr("lnet:tx"), "QUEUED", "queued INCR")
  local tx = r:exec()
  t.eq(tx[1], "OK", "EXEC reply 1")
  t.eq(tx[2], 2, "EXEC reply 2")

  -- Publish/subscribe between two coroutines.
  local got = {}
  local subscribed = false
  local sub = co.spawn(function()
    local rs = connect()
    local res1 = rs:subscribe("lnet:chan")
    t.eq(res1[1], "subscribe", "subscribe reply")
    subscribed = true
    for _ = 1, 3 do
      local msg, e = rs:read_reply()
      if not msg then error("read_reply: " .. tostring(e)) end
      got[#got + 1] = msg[3]
    end
    rs:unsubscribe("lnet:chan")
    rs:close()
  end)
  for _ = 1, 500 do
    if subscribed then break end
    co.sleep(5)
  end
  t.truthy(subscribed, "subscriber ready")
  for i = 1, 3 do t.eq(r:publish("lnet:chan", "m" .. i), 1, "PUBLISH reaches one subscriber") end
  local ok = co.wait(sub)
  t.eq(ok, true, "subscriber finished")
  t.eq(table.concat(got, ","), "m1,m2,m3", "messages in order")

  -- The pool through set_keepalive.
  local clients_before = tonumber(r:info("clients"):match("connected_clients:(%d+)"))
  t.eq(r:set_keepalive(10000, 10), 1, "set_keepalive")
  local r2 = connect()
  t.eq(r2:get_reused_times(), 1, "get_reused_times after set_keepalive")
  local clients_after = tonumber(r2:info("clients"):match("connected_clients:(%d+)"))
  t.eq(clients_after, clients_before, "redis sees no new connection")
  r2:set_keepalive(10000, 10)

  -- Concurrent clients on one loop.
  local threads = {}
  for i = 1, 20 do
    threads[i] = co.spawn(function()
      local rc = connect()
      for j = 1, 50 do rc:incr("lnet:counter") end
      rc:set_keepalive(10000, 30)
      return true
    end)
  end
  for i = 1, 20 do t.eq(co.wait(threads[i]), true, "client " .. i) end
  local rc = connect()
  t.eq(rc:get("lnet:counter"), "1000", "INCR from 20 coroutines")

  -- A killed redis-server: clean errors, no raise.
  REDIS_KILL()
  local v, e = rc:get("lnet:key")
  t.eq(v, nil, "GET after the server died")
  t.truthy(type(e) == "string" and (e == "closed" or e:find("reset") or e:find("failed")),
    "error message: " .. tostring(e))
  -- The pooled connections see the server's end and leave the pool.
  co.sleep(200)
  local r3 = redis:new()
  r3:set_timeout(2000)
  local ok3, e3 = r3:connect("127.0.0.1", port)
  t.eq(ok3, nil, "connect to the dead server")
  t.has(e3, "refused", "connect error")
end)
