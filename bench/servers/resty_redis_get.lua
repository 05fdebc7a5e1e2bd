-- Redis GET round trips through lua-resty-redis (Debian lua-nginx-redis,
-- unmodified) on net.ngx: lua5.4 resty_redis_get.lua PORT N
-- Prints "RESULT rt_per_s=..." for N sequential GETs on one connection.
package.path = package.path .. ";/usr/share/lua/5.1/?.lua"
ngx = require "net.ngx"
local net = require "net"
local co = require "net.co"
local redis = require "nginx.redis"
local port = assert(tonumber(arg[1]), "usage: resty_redis_get.lua PORT N")
local n = tonumber(arg[2]) or 100000

co.spawn(function()
  local red = redis:new()
  assert(red:connect("127.0.0.1", port))
  assert(red:set("key:__rand_int__", "xxx"))
  for _ = 1, 1000 do red:get("key:__rand_int__") end  -- warm-up
  local t0 = net.now()
  for _ = 1, n do
    local v, err = red:get("key:__rand_int__")
    if not v then error(err) end
  end
  local ms = net.now() - t0
  print(("RESULT rt_per_s=%.0f n=%d ms=%d"):format(n * 1000 / ms, n, ms))
  red:close()
end)
net.loop()
