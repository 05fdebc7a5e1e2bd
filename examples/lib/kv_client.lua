-- kv_client.lua: client for examples/kv_server.lua.
--
--   local kv = require "lib.kv_client"       -- with examples/ on package.path
--
--   kv.connect("127.0.0.1", 9200, function(client, err)
--     if not client then print("connect failed: " .. err) return end
--     client:set("greeting", "hello\0world", function(status, detail)
--       -- status: "OK" | "NOTFOUND" | "ERR" (detail: the reason)
--     end)
--     client:get("greeting", function(status, value) print(status, value) end)
--     client:del("greeting", function(status) client:close() end)
--   end)
--   net.loop()
--
-- kv.connect(host, port, callback [, options]) -> nil
--   Calls callback(client) once connected, or callback(nil, message) if the
--   connection cannot be made. options (all optional):
--     max_frame  largest reply payload accepted (default 1 MiB + 16)
--     timeout    connect timeout, ms (default 10000)
--     closed     function(reason) called when an established connection
--                ends; reason is nil after client:close(), else a message
--     drain      function() called when requests queued while get/set/del
--                returned false have been sent
--
-- client:get(key, cb), client:set(key, value, cb), client:del(key, cb)
--   Send one request; cb(status, detail) is called with the reply:
--     GET: ("OK", value) | ("NOTFOUND") ; SET: ("OK") ; DEL: ("OK") | ("NOTFOUND")
--     any: ("ERR", reason) from the server, or when the connection ends
--          before the reply ("connection closed: ...").
--   Requests may be pipelined: send many without waiting; callbacks fire in
--   request order. Returns true, or false when more than high_water bytes
--   are queued (slow down until options.drain fires), or nil and a message
--   when nothing was sent (then cb is never called): "not connected",
--   "send buffer full (max_buffer reached)", a key longer than 65535 bytes.
--   Keys and values are strings, any bytes.
--
-- client:close()   closes at once; callbacks still waiting get ("ERR", "connection closed")
-- client:pending() number of requests waiting for their reply

local net = require "net"
local frames = require "lib.frames"
local proto = require "lib.kv_protocol"

local M = {}

local Client = {}
Client.__index = Client

-- Calls every waiting callback with ERR reason, oldest first.
local function fail_all(self, reason)
  while self.first <= self.last do
    local cb = self.waiting[self.first]
    self.waiting[self.first] = nil
    self.first = self.first + 1
    cb("ERR", reason)
  end
end

local function request(self, payload, perr, cb)
  if type(cb) ~= "function" then error("kv_client: callback must be a function", 3) end
  if not payload then return nil, perr end
  if not self.open then return nil, "not connected" end
  local ok, err = self.sock:send(frames.encode(payload))
  if ok == nil then return nil, err end
  self.last = self.last + 1
  self.waiting[self.last] = cb
  return ok
end

function Client:get(key, cb)
  local payload, err = proto.get(key)
  return request(self, payload, err, cb)
end

function Client:set(key, value, cb)
  local payload, err = proto.set(key, value)
  return request(self, payload, err, cb)
end

function Client:del(key, cb)
  local payload, err = proto.del(key)
  return request(self, payload, err, cb)
end

function Client:pending() return self.last - self.first + 1 end

function Client:close()
  if not self.open then return end
  self.open = false
  self.closed_by_us = true
  self.sock:close()
  fail_all(self, "connection closed")
end

function M.connect(host, port, callback, options)
  options = options or {}
  local self = setmetatable({
    sock = net.TCPSocket(),
    decoder = frames.decoder(options.max_frame or frames.DEFAULT_MAX + 16),
    waiting = {}, first = 1, last = 0,
    open = false,
  }, Client)
  local connected, reason = false, nil
  self.sock:connect(host, port, {
    connected = function()
      connected, self.open = true, true
      callback(self)
    end,
    data = function(bytes)
      local list, err = self.decoder:feed(bytes)
      for i = 1, #list do
        local cb = self.waiting[self.first]
        if not cb then
          err = "unexpected reply from server"
          break
        end
        self.waiting[self.first] = nil
        self.first = self.first + 1
        local status, detail = proto.parse_reply(list[i])
        if not status then
          cb("ERR", detail)
        else
          cb(status, detail)
        end
        if not self.open then return end        -- the callback closed us
      end
      if err then
        reason = err
        self.open = false
        self.sock:close()
        fail_all(self, "connection closed: " .. err)
      end
    end,
    drain = function()
      if options.drain then options.drain() end
    end,
    error = function(message)
      if not connected then
        callback(nil, message)
      else
        reason = reason or message
      end
    end,
    disconnected = function()
      self.open = false
      fail_all(self, "connection closed: " .. (reason or "closed by the server"))
      if options.closed then
        if self.closed_by_us then options.closed(nil) else options.closed(reason or "closed by the server") end
      end
    end,
  }, { timeout = options.timeout or 10000, nodelay = true })
end

return M
