-- net.co and net.ngx come from net.so alone; the net.ngx table.
package.path = ""  -- no Lua file can be found: both must come from net.so
local net = require "net"
local co = require "net.co"
local ngx = require "net.ngx"
package.path = os.getenv("LNET_SOURCE") .. "/tests/lua/?.lua"
local t = require "co.colib"

t.eq(type(co.spawn), "function", "co.spawn")
-- LuaJIT's table.new and table.clear, given to require() by net.ngx.
local new_tab = require "table.new"
local tn = new_tab(8, 4)
t.eq(type(tn), "table", "table.new makes a table")
t.eq(next(tn), nil, "empty")
tn[1], tn[2], tn.x = "a", "b", "c"
t.eq(#tn, 2, "usable as an array")
t.eq(type(new_tab(-1, 1 << 40)), "table", "sizes are hints (negative or huge)")
local clear = require "table.clear"
local tc = { 1, 2, 3, a = 1, b = 2 }
clear(tc)
t.eq(next(tc), nil, "table.clear empties array and hash parts")
t.eq(package.preload["table.new"] ~= nil, true, "through package.preload")
-- Something that already provides table.new (LuaJIT, another library) is
-- left alone.
local function mine() end
package.loaded["net.ngx"], package.loaded["table.new"] = nil, nil
package.preload["table.new"] = function() return mine end
t.eq(require "net.ngx" ~= nil, true, "net.ngx loaded again")
t.eq(require "table.new", mine, "an existing table.new is kept")

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
-- Digests through OpenSSL, against published vectors (RFC 1321, FIPS 180).
local function hex(s) return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)) end
if net.features.tls then
  t.eq(ngx.md5(""), "d41d8cd98f00b204e9800998ecf8427e", "md5 of the empty string")
  t.eq(ngx.md5(nil), "d41d8cd98f00b204e9800998ecf8427e", "md5 of nil (the empty string)")
  t.eq(ngx.md5("abc"), "900150983cd24fb0d6963f7d28e17f72", "md5 abc")
  t.eq(ngx.md5("The quick brown fox jumps over the lazy dog"), "9e107d9d372bb6826bd81d3542a419d6", "md5 fox")
  t.eq(ngx.md5("12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
       "57edf4a22be3c955ac49da2e2107b67a", "md5 RFC 1321 digits")
  t.eq(ngx.md5(42), ngx.md5("42"), "md5 of a number")
  t.eq(#ngx.md5_bin("abc"), 16, "md5_bin: 16 bytes")
  t.eq(hex(ngx.md5_bin("abc")), "900150983cd24fb0d6963f7d28e17f72", "md5_bin abc")
  t.eq(hex(ngx.md5_bin("a\0b")), ngx.md5("a\0b"), "md5 of bytes with NUL")
  t.eq(ngx.md5("a\0b") ~= ngx.md5("a"), true, "NUL is not the end")
  t.eq(#ngx.sha1_bin("abc"), 20, "sha1_bin: 20 bytes")
  t.eq(hex(ngx.sha1_bin("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d", "sha1 abc")
  t.eq(hex(ngx.sha1_bin("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1 of the empty string")
  t.eq(hex(ngx.sha1_bin("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "sha1 FIPS 180 two blocks")
  t.eq(hex(ngx.sha1_bin(("a"):rep(1000000))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f", "sha1 of a million a")
  t.eq(pcall(ngx.md5, {}), false, "md5 of a table raises")
else
  for _, name in ipairs({ "md5", "md5_bin", "sha1_bin" }) do
    local ok, err = pcall(ngx[name], "abc")
    t.eq(ok, false, name .. " without TLS raises")
    t.has(err, "lnet was built without TLS", name .. " without TLS: the message")
  end
  local sock = co.tcp()
  local ok, err = pcall(sock.sslhandshake, sock)
  t.eq(ok, false, "sslhandshake without TLS raises")
  t.has(err, "lnet was built without TLS", "sslhandshake without TLS: the message")
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
