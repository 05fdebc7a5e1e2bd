-- net.co and net.ngx come from net.so alone; the net.ngx table.
package.path = ""  -- no Lua file can be found: both must come from net.so
local net = require "net"
local co = require "net.co"
local ngx = require "net.ngx"
package.path = os.getenv("LNET_SOURCE") .. "/tests/lua/?.lua"
local t = require "co.colib"

t.eq(type(co.spawn), "function", "co.spawn")
t.eq(type(ngx.socket.tcp), "function", "ngx.socket.tcp")
t.eq(ngx.socket.tcp, co.tcp, "ngx.socket.tcp is co.tcp")
t.eq(type(ngx.null), "userdata", "ngx.null is a light userdata")
t.eq(ngx.ERR, 4, "ngx.ERR")
t.eq(ngx.DEBUG, 8, "ngx.DEBUG")
t.eq(ngx.escape_uri("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9", "escape_uri")
t.eq(ngx.unescape_uri("a%20b+c%2F"), "a b c/", "unescape_uri")
t.eq(ngx.encode_base64("hello!?"), "aGVsbG8hPw==", "encode_base64")
t.eq(ngx.encode_base64("hello!?", true), "aGVsbG8hPw", "encode_base64 without padding")
t.eq(ngx.decode_base64("aGVsbG8hPw=="), "hello!?", "decode_base64")
t.eq(ngx.decode_base64("a$=="), nil, "decode_base64 of bad input")
for n = 0, 20 do
  local s = ("\0\255x"):rep(n):sub(1, n)
  t.eq(ngx.decode_base64(ngx.encode_base64(s)), s, "base64 round trip " .. n)
end
t.truthy(math.abs(ngx.now() - os.time()) < 2, "ngx.now is wall-clock seconds")
t.eq(math.type(ngx.time()), "integer", "ngx.time")
t.eq(type(ngx.config.ngx_lua_version), "number", "ngx.config")

t.run(10000, function()
  local t0 = net.now()
  ngx.sleep(0.05)
  t.truthy(net.now() - t0 >= 45, "ngx.sleep takes seconds")
  local th = ngx.thread.spawn(function(x) ngx.sleep(0.01) return x * 2 end, 21)
  local ok, v = ngx.thread.wait(th)
  t.eq(ok, true, "thread.wait")
  t.eq(v, 42, "thread result")
  local fired
  t.eq(ngx.timer.at(0.01, function(premature, a) fired = { premature, a } end, "arg"), true, "timer.at")
  ngx.sleep(0.1)
  t.eq(fired and fired[1], false, "timer.at: premature")
  t.eq(fired and fired[2], "arg", "timer.at: argument")
  local sleeper = ngx.thread.spawn(function() ngx.sleep(10) end)
  ngx.sleep(0)
  t.eq(ngx.thread.kill(sleeper), true, "thread.kill")
end)

-- types/net/co.lua declares exactly what net.co and its sockets have.
local function slurp(path)
  local f = assert(io.open(os.getenv("LNET_SOURCE") .. "/" .. path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function names(defs, prefix, sep)
  local out = {}
  for name in defs:gmatch("\nfunction " .. prefix .. "%" .. sep .. "([%w_]+)%(") do out[#out + 1] = name end
  table.sort(out)
  return table.concat(out, ",")
end
local function keys(tbl, filter)
  local out = {}
  for k, v in pairs(tbl) do
    if type(v) == "function" and (not filter or filter(k)) then out[#out + 1] = k end
  end
  table.sort(out)
  return table.concat(out, ",")
end
local co_defs = slurp("types/net/co.lua")
t.eq(keys(co), names(co_defs, "co", "."), "net.co functions vs types/net/co.lua")
local sock_methods = getmetatable(co.tcp()).__index
t.eq(keys(sock_methods, function(k) return not k:match("^__") and not k:match("^get[ps]") end),
     names(co_defs, "Socket", ":"), "cosocket methods vs types/net/co.lua")
local ngx_defs = slurp("types/net/ngx.lua")
t.eq(keys(ngx), names(ngx_defs, "ngx", "."), "net.ngx functions vs types/net/ngx.lua")
