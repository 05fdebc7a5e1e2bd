-- kv_protocol.lua: the messages of the key-value service of
-- examples/kv_server.lua and examples/lib/kv_client.lua.
--
-- Every message is the payload of one frame (lib/frames.lua: 4-byte
-- big-endian length, then the payload). Payloads, in string.pack notation
-- (">": big-endian; s2: 2-byte length + bytes; s4: 4-byte length + bytes):
--
--   requests                       replies
--   "G" s2:key           GET       "O"              OK (SET, DEL)
--   "S" s2:key s4:value  SET       "O" s4:value     OK with the value (GET)
--   "D" s2:key           DEL       "N"              NOTFOUND (GET, DEL of a missing key)
--                                  "E" s2:reason    ERR
--
-- Keys (up to 65535 bytes) and values are binary-safe: any bytes, NULs
-- included. A payload with bytes left over after its fields is malformed.
-- Replies come back in the order of the requests, so a client may pipeline.

local M = {}

local function packs(fmt, ...)
  local ok, s = pcall(string.pack, fmt, ...)
  if not ok then return nil, s end
  return s
end

-- Requests ------------------------------------------------------------------

-- Each returns the payload, or nil and a message (key longer than 65535
-- bytes, not a string).
function M.get(key) return packs(">c1s2", "G", key) end
function M.set(key, value) return packs(">c1s2s4", "S", key, value) end
function M.del(key) return packs(">c1s2", "D", key) end

-- Returns op ("GET", "SET", "DEL"), key, value (SET only), or nil, reason.
function M.parse_request(payload)
  local op = payload:sub(1, 1)
  local ok, key, value, nextpos
  if op == "G" or op == "D" then
    ok, key, nextpos = pcall(string.unpack, ">s2", payload, 2)
  elseif op == "S" then
    ok, key, value, nextpos = pcall(string.unpack, ">s2s4", payload, 2)
  else
    return nil, "unknown request"
  end
  if not ok or nextpos ~= #payload + 1 then return nil, "malformed request" end
  return (op == "G" and "GET" or op == "S" and "SET" or "DEL"), key, value
end

-- Replies -------------------------------------------------------------------

function M.ok(value)
  if value == nil then return "O" end
  return string.pack(">c1s4", "O", value)
end
M.NOTFOUND = "N"
function M.err(reason)
  return string.pack(">c1s2", "E", reason:sub(1, 65535))
end

-- Returns status ("OK", "NOTFOUND", "ERR") and the value (OK of a GET) or
-- the reason (ERR); or nil, reason for a malformed reply.
function M.parse_reply(payload)
  local tag = payload:sub(1, 1)
  if tag == "O" then
    if #payload == 1 then return "OK" end
    local ok, value, nextpos = pcall(string.unpack, ">s4", payload, 2)
    if ok and nextpos == #payload + 1 then return "OK", value end
  elseif tag == "N" then
    if #payload == 1 then return "NOTFOUND" end
  elseif tag == "E" then
    local ok, reason, nextpos = pcall(string.unpack, ">s2", payload, 2)
    if ok and nextpos == #payload + 1 then return "ERR", reason end
  end
  return nil, "malformed reply"
end

return M
