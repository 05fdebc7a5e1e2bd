-- net.ngx: the part of OpenResty's `ngx` table that socket libraries use,
-- over net.co, so that a program can set `ngx = require "net.ngx"` and load
-- a cosocket library (lua-resty-redis, ...) unchanged. A compatibility
-- layer, not nginx: no request, no phases, no shared dictionaries.
-- Compiled into net.so (see co.cc): the chunk receives net, net.co and a
-- table of C helpers.
local net, co, h = ...

local ngx = {}

-- LuaJIT's table.new and table.clear, which OpenResty libraries require
-- (with a slower fallback when they are missing): given to require() here,
-- unless something already provides them.
for name, f in pairs({ ["table.new"] = h.table_new, ["table.clear"] = h.table_clear }) do
  if package.loaded[name] == nil and package.preload[name] == nil then
    package.preload[name] = function() return f end
  end
end

ngx.null = h.null

ngx.OK, ngx.ERROR, ngx.AGAIN, ngx.DONE, ngx.DECLINED = 0, -1, -2, -4, -5

-- Log levels, as in ngx_lua.
ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT = 0, 1, 2, 3
ngx.ERR, ngx.WARN, ngx.NOTICE, ngx.INFO, ngx.DEBUG = 4, 5, 6, 7, 8

local level_names = { [0] = "stderr", "emerg", "alert", "crit", "error", "warn",
                      "notice", "info", "debug" }

-- Messages up to this level are written to stderr (nginx's error_log
-- default is "error"); set ngx.log_level to change it.
ngx.log_level = ngx.ERR

function ngx.log(level, ...)
  if type(level) ~= "number" then
    error(("bad argument #1 to 'log' (number expected, got %s)"):format(type(level)), 2)
  end
  if level > ngx.log_level then return end
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    if v == nil then v = "nil" elseif v == ngx.null then v = "null" end
    parts[i] = tostring(v)
  end
  io.stderr:write(os.date("%Y/%m/%d %H:%M:%S"), " [", level_names[level] or tostring(level), "] ",
                  table.concat(parts), "\n")
end

ngx.socket = {
  tcp = co.tcp,
  stream = co.tcp,
  connect = function(host, port, opts)
    local sock = co.tcp()
    local ok, err = sock:connect(host, port, opts)
    if not ok then return nil, err end
    return sock
  end,
}

-- Seconds, as ngx.sleep takes them.
function ngx.sleep(sec)
  if type(sec) ~= "number" or sec < 0 then
    error("bad argument #1 to 'sleep' (non-negative number expected)", 2)
  end
  co.sleep(math.floor(sec * 1000 + 0.5))
end

ngx.now = h.now
function ngx.time() return os.time() end
function ngx.update_time() end
function ngx.today() return os.date("%Y-%m-%d") end
function ngx.localtime() return os.date("%Y-%m-%d %H:%M:%S") end
function ngx.utctime() return os.date("!%Y-%m-%d %H:%M:%S") end

ngx.thread = {
  spawn = co.spawn,
  wait = co.wait,
  kill = co.kill,
}

-- ngx.timer.at(delay_s, fn, ...): fn(premature, ...) in a new coroutine.
ngx.timer = {}
function ngx.timer.at(delay, fn, ...)
  if type(delay) ~= "number" or delay < 0 then
    return nil, "bad delay"
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'at' (function expected, got %s)"):format(type(fn)), 2)
  end
  local n, args = select("#", ...), { ... }
  net.setTimeout(function()
    co.spawn(fn, false, table.unpack(args, 1, n))
  end, math.floor(delay * 1000 + 0.5))
  return true
end

function ngx.timer.every(delay, fn, ...)
  if type(delay) ~= "number" or delay <= 0 then return nil, "bad delay" end
  local n, args = select("#", ...), { ... }
  net.setInterval(function()
    co.spawn(fn, false, table.unpack(args, 1, n))
  end, math.floor(delay * 1000 + 0.5))
  return true
end

-- URI components: everything but unreserved characters is %XX.
function ngx.escape_uri(s)
  s = tostring(s)
  return (s:gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

function ngx.unescape_uri(s)
  s = tostring(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

ngx.encode_base64 = h.encode_base64
ngx.decode_base64 = h.decode_base64
-- OpenSSL's digests; raise "lnet was built without TLS" in a build without it.
ngx.md5 = h.md5
ngx.md5_bin = h.md5_bin
ngx.sha1_bin = h.sha1_bin

ngx.config = {
  subsystem = "stream",
  ngx_lua_version = 10025,
  nginx_version = 1025000,
  debug = false,
  is_console = true,
  prefix = function() return "" end,
  nginx_configure = function() return "" end,
}

ngx.worker = {
  id = function() return 0 end,
  count = function() return 1 end,
  exiting = function() return false end,
}

function ngx.get_phase() return "timer" end

-- Per-"request" tables: here, one per program.
ngx.ctx = {}
ngx.var = {}
ngx.shared = {}

return ngx
