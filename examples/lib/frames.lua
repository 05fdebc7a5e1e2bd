-- frames.lua: length-prefixed framing for a TCP byte stream.
--
-- Wire format: each frame is a 4-byte big-endian unsigned length N followed
-- by exactly N payload bytes (string.pack(">s4", payload)). Payloads are
-- binary-safe; N may be 0.
--
--   local frames = require "lib.frames"
--
--   sock:send(frames.encode(payload))
--
--   local decoder = frames.decoder(1024 * 1024)   -- largest payload accepted
--   -- in the data callback:
--   local list, err = decoder:feed(bytes)
--   for _, payload in ipairs(list) do handle(payload) end
--   if err then ... end   -- e.g. "frame too large (4294967295 bytes, max 1048576)"
--
-- feed(bytes) takes the bytes in whatever pieces TCP delivers them (a frame
-- split at any byte boundary, many frames in one piece) and returns the list
-- of the payloads completed so far, in order, and, once the stream is
-- broken, an error message. A length above the maximum breaks the stream:
-- the decoder returns the frames that came before it together with the
-- error, and from then on returns ({}, the same error) for every feed
-- without buffering anything. The length is checked as soon as its 4 bytes
-- are in, so an oversize frame is refused before any of its body arrives.
--
-- Cost: the bytes of an incomplete frame are kept as a list of pieces and
-- joined once the whole frame is present, so a 1 MiB frame arriving a byte
-- at a time is copied O(1) times, not O(n^2). Buffered input is at most one
-- frame (max + 4 bytes) plus the rest of the current piece.

local M = {}

M.DEFAULT_MAX = 1024 * 1024

-- The frame carrying payload (a string).
function M.encode(payload)
  if type(payload) ~= "string" then
    error("frames.encode: payload must be a string, got " .. type(payload), 2)
  end
  return string.pack(">s4", payload)
end

local Decoder = {}
Decoder.__index = Decoder

-- A decoder accepting payloads of at most max bytes (default 1 MiB).
function M.decoder(max)
  max = max or M.DEFAULT_MAX
  if math.type(max) ~= "integer" or max < 0 or max > 0xffffffff then
    error("frames.decoder: max must be an integer from 0 to 4294967295", 2)
  end
  return setmetatable({
    max = max,
    buf = "",      -- joined bytes being parsed
    pos = 1,       -- first unconsumed byte of buf
    parts = {},    -- pieces received since buf was last joined
    avail = 0,     -- unconsumed bytes in buf plus parts
    need = 4,      -- bytes needed before parsing can make progress
    err = nil,     -- set once the stream is broken
  }, Decoder)
end

-- Feeds bytes; returns the list of completed payloads and an error or nil.
function Decoder:feed(bytes)
  if type(bytes) ~= "string" then
    error("decoder:feed: bytes must be a string, got " .. type(bytes), 2)
  end
  local out = {}
  if self.err then return out, self.err end
  if #bytes == 0 then return out end
  self.parts[#self.parts + 1] = bytes
  self.avail = self.avail + #bytes
  if self.avail < self.need then return out end

  -- Enough bytes for progress: join what is pending once.
  local buf
  if self.pos > #self.buf then
    buf = table.concat(self.parts)
  else
    buf = self.buf:sub(self.pos) .. table.concat(self.parts)
  end
  self.parts = {}
  local pos, n, max = 1, #buf, self.max
  while true do
    if n - pos + 1 < 4 then
      self.need = 4
      break
    end
    local len = string.unpack(">I4", buf, pos)
    if len > max then
      self.err = ("frame too large (%d bytes, max %d)"):format(len, max)
      self.buf, self.pos, self.avail, self.need = "", 1, 0, math.huge
      return out, self.err
    end
    if n - pos + 1 < 4 + len then
      self.need = 4 + len
      break
    end
    out[#out + 1] = buf:sub(pos + 4, pos + 3 + len)
    pos = pos + 4 + len
  end
  if pos > n then
    self.buf, self.pos = "", 1
  else
    self.buf, self.pos = buf, pos
  end
  self.avail = n - pos + 1
  return out
end

-- Bytes buffered toward the next, incomplete frame.
function Decoder:pending() return self.avail end

return M
