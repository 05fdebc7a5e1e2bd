-- types/net.lua (the LuaLS definitions) and README.md declare exactly what
-- the module exports: module functions and fields, the methods of each
-- object type, every option and callback name. Neither side may drift.
local net = require "net"
local t = require "testlib"

local root = assert(os.getenv("LNET_SOURCE"), "LNET_SOURCE not set")
local function slurp(path)
  local f = assert(io.open(root .. "/" .. path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local defs, readme = slurp("types/net.lua"), slurp("README.md")

local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Declared: "function PREFIX.NAME(" / "function PREFIX:NAME(".
local function declared(prefix, sep)
  local set = {}
  for name in defs:gmatch("\nfunction " .. prefix .. "%" .. sep .. "([%w_]+)%(") do set[name] = true end
  return set
end

-- The ---@field names of one ---@class block.
local function class_fields(class)
  local esc = class:gsub("%.", "%%.")
  local block = defs:match("%-%-%-@class " .. esc .. "%f[^%w%._][^\n]*\n(.-)\n[^%-]")
  assert(block, "no class " .. class .. " in types/net.lua")
  local set = {}
  for name in block:gmatch("%-%-%-@field ([%w_]+)") do set[name] = true end
  return set
end

local function methods_of(obj)
  local set = {}
  for name in pairs(debug.getmetatable(obj).__index) do set[name] = true end
  return set
end

-- Module: functions and fields.
local module_declared = declared("net", ".")
for name in pairs(class_fields("net")) do module_declared[name] = true end
local exported = {}
for name in pairs(net) do exported[name] = true end
t.same(sorted_keys(exported), sorted_keys(module_declared), "net.* exported vs declared")

-- Methods of each type.
local sock, srv = net.TCPSocket(), net.TCPServer()
local timer = net.setTimeout(function() end, 0)
net.clearTimeout(timer)
t.same(sorted_keys(methods_of(sock)), sorted_keys(declared("TCPSocket", ":")), "TCPSocket methods")
t.same(sorted_keys(methods_of(srv)), sorted_keys(declared("TCPServer", ":")), "TCPServer methods")
t.same(sorted_keys(methods_of(timer)), sorted_keys(declared("Timer", ":")), "Timer methods")
local udp = net.UDPSocket()
t.same(sorted_keys(methods_of(udp)), sorted_keys(declared("UDPSocket", ":")), "UDPSocket methods")
-- UDP options: each declared one is accepted by the constructor.
for name in pairs(class_fields("net.UDPOptions")) do
  local ty = defs:match("%-%-%-@field " .. name .. "%?? ([%w|]+)")
  local value = ({ boolean = true, integer = 100, string = "127.0.0.1" })[ty:match("^(%a+)")]
  local ok, err = pcall(net.UDPSocket, { [name] = value })
  t.truthy(ok, "declared UDP option '" .. name .. "' rejected: " .. tostring(err))
  t.truthy(readme:find("`" .. name .. "`", 1, true), "README lacks UDP option " .. name)
end
for name in pairs(class_fields("net.UDPCallbacks")) do
  local ok, err = pcall(udp.bind, udp, "127.0.0.1", 0, { [name] = 42 })
  t.truthy(not ok and err:find("callback '" .. name .. "' must be a function", 1, true),
           "net.UDPCallbacks." .. name .. " is not checked by bind: " .. tostring(err))
end

-- Options: every declared one is accepted, an undeclared one is not.
local sample = { boolean = true, integer = 1000, string = "line", table = {} }
local sample_by_name = { proxy_protocol = "v1", proxy_trusted = { "127.0.0.1" },
                         send_proxy = { version = 1 } }
local options = class_fields("net.Options")
for name in pairs(options) do
  local ty = defs:match("%-%-%-@field " .. name .. "%?? ([%w|%.]+)")
  local value = sample_by_name[name]
  if value == nil then value = sample[ty:match("^(%a+)")] end
  assert(value ~= nil, "no sample value for option type " .. ty)
  local ok, err = pcall(net.TCPSocket, { [name] = value })
  t.truthy(ok, "declared option '" .. name .. "' rejected: " .. tostring(err))
  t.truthy(readme:find("| `" .. name .. "` |", 1, true), "README options table lacks " .. name)
end
t.truthy(#sorted_keys(options) == 22, "22 options declared (linger_timeout: issue 8; the 4 PROXY ones and mode: issue 10; framing, max_message: issue 9; tls, servername, sni, handshake_timeout: issue 11)")
t.raises("unknown option 'nodelya'", function() net.TCPSocket({ nodelya = true }) end)

-- Callbacks: every declared name is one the module checks.
local function callback_checked(obj, method, name)
  local ok, err = pcall(obj[method], obj, "127.0.0.1", 1, { [name] = 42 })
  return not ok and err:find("callback '" .. name .. "' must be a function", 1, true) ~= nil, err
end
for _, case in ipairs({ { "net.SocketCallbacks", sock, "connect" },
                        { "net.ServerCallbacks", srv, "listen" } }) do
  local fields = class_fields(case[1])
  for name in pairs(fields) do
    local ok, err = callback_checked(case[2], case[3], name)
    t.truthy(ok, case[1] .. "." .. name .. " is not checked by " .. case[3] .. ": " .. tostring(err))
  end
end
t.eq(#sorted_keys(class_fields("net.SocketCallbacks")), 7, "socket callbacks declared")
t.eq(#sorted_keys(class_fields("net.ServerCallbacks")), 9, "server callbacks declared")

-- README: each function and method has its reference entry.
for name in pairs(declared("net", ".")) do
  t.truthy(readme:find("net." .. name, 1, true), "README lacks net." .. name)
end
for name in pairs(declared("TCPSocket", ":")) do
  t.truthy(readme:find("socket:" .. name, 1, true), "README lacks socket:" .. name)
end
for name in pairs(declared("TCPServer", ":")) do
  t.truthy(readme:find("server:" .. name, 1, true), "README lacks server:" .. name)
end
for name in pairs(declared("UDPSocket", ":")) do
  t.truthy(readme:find("udp:" .. name, 1, true), "README lacks udp:" .. name)
end
assert(net.loop() == false)
