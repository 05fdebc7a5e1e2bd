-- Talking to redis in straight-line code with Debian's lua-nginx-redis
-- (lua-resty-redis, written for OpenResty) running unchanged on lnet:
-- `ngx = require "net.ngx"` gives it the ngx.socket.tcp it expects.
--
-- Run:  lnet examples/co_redis.lua [host [port]]   (default 127.0.0.1 6379)
--       needs: apt-get install redis-server lua-nginx-redis

package.path = package.path .. ";/usr/share/lua/5.1/?.lua"
ngx = require "net.ngx"
local net = require "net"
local co = require "net.co"
local redis = require "nginx.redis"

local host = (arg and arg[1]) or "127.0.0.1"
local port = tonumber(arg and arg[2]) or 6379

co.spawn(function()
  local red = redis:new()
  red:set_timeout(2000)
  local ok, err = red:connect(host, port)
  if not ok then
    print("cannot connect to redis: " .. tostring(err))
    return
  end

  red:set("greeting", "hello from lnet")
  print("GET greeting -> " .. red:get("greeting"))

  red:del("visits")
  for _ = 1, 3 do red:incr("visits") end
  print("INCR visits -> " .. red:get("visits"))

  red:init_pipeline()
  for i = 1, 100 do red:set("key:" .. i, i) end
  local results = red:commit_pipeline()
  print("pipeline: " .. #results .. " replies")

  -- Back to the pool for the next connect(); closed at the end.
  red:set_keepalive(10000, 10)
  co.closepool()
end)

net.loop()
