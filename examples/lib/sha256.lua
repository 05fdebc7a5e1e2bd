-- sha256.lua: SHA-256 (FIPS 180-4) in pure Lua 5.4, streaming.
--
--   local sha256 = require "lib.sha256"      -- or require "sha256"
--   local h = sha256.new()
--   h:update("abc"):update("def")             -- any number of chunks, any sizes
--   print(h:hexdigest())                      -- 64 lowercase hex digits
--   h:digest()                                -- the same 32 bytes, raw
--   sha256.hex("abcdef")                      -- one-shot helper
--
-- Memory is constant: update() keeps at most 63 bytes between calls.
-- After hexdigest()/digest() the object is finished: further update() raises;
-- asking for the digest again returns the same value.
--
-- Speed: the compression function is generated once at load time, fully
-- unrolled (64 rounds, renamed registers instead of shuffling eight
-- variables, round constants inlined as literals), and works on Lua 5.4's
-- 64-bit integers. A 32-bit rotate is done by duplicating the word into the
-- high half (x | x << 32) and shifting right; bits above 32 are left dirty
-- inside a round and masked off only where a value is stored, since
-- addition modulo 2^32 depends only on the low 32 bits of its operands.
-- Requires 64-bit Lua integers (the default build of Lua 5.4).

assert(math.maxinteger == 0x7fffffffffffffff, "sha256.lua needs 64-bit Lua integers")

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local H0 = {
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

-- Generates compress(H, s, first, last): runs the 64-byte blocks of s that
-- start at first, first+64, ..., last (1-based, inclusive) through the
-- compression function, updating the state array H in place.
local function generate()
  local out = {}
  local function emit(fmt, ...) out[#out + 1] = fmt:format(...) end
  -- role k (0 = a ... 7 = h) lives in register r[(k - round) % 8]
  local function reg(k, round) return "r" .. ((k - round) % 8) end

  emit("local unpack = string.unpack")
  emit("return function(H, s, first, last)")
  emit("local h0, h1, h2, h3, h4, h5, h6, h7 = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]")
  emit("for p = first, last, 64 do")
  emit("local w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15 =")
  emit("  unpack('>I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4', s, p)")
  emit("local r0, r1, r2, r3, r4, r5, r6, r7 = h0, h1, h2, h3, h4, h5, h6, h7")
  emit("local x, t1, t2")
  for i = 0, 63 do
    local w = "w" .. (i % 16)
    if i >= 16 then
      local w15 = "w" .. ((i - 15) % 16)
      local w2 = "w" .. ((i - 2) % 16)
      local w7 = "w" .. ((i - 7) % 16)
      -- W[i] = sigma1(W[i-2]) + W[i-7] + sigma0(W[i-15]) + W[i-16]
      emit("x = %s | (%s << 32)", w15, w15)
      emit("t1 = (x >> 7) ~ (x >> 18) ~ (%s >> 3)", w15)
      emit("x = %s | (%s << 32)", w2, w2)
      emit("%s = (((x >> 17) ~ (x >> 19) ~ (%s >> 10)) + %s + t1 + %s) & 0xffffffff", w, w2, w7, w)
    end
    local a, b, c, d = reg(0, i), reg(1, i), reg(2, i), reg(3, i)
    local e, f, g, h = reg(4, i), reg(5, i), reg(6, i), reg(7, i)
    -- t1 = h + Sigma1(e) + Ch(e, f, g) + K[i] + W[i]
    emit("x = %s | (%s << 32)", e, e)
    emit("t1 = %s + ((x >> 6) ~ (x >> 11) ~ (x >> 25)) + ((%s & %s) ~ (~%s & %s)) + 0x%08x + %s",
         h, e, f, e, g, K[i + 1], w)
    -- t2 = Sigma0(a) + Maj(a, b, c)
    emit("x = %s | (%s << 32)", a, a)
    emit("t2 = ((x >> 2) ~ (x >> 13) ~ (x >> 22)) + ((%s & %s) ~ (%s & %s) ~ (%s & %s))", a, b, a, c, b, c)
    -- d becomes the next round's e, h the next round's a
    emit("%s = (%s + t1) & 0xffffffff", d, d)
    emit("%s = (t1 + t2) & 0xffffffff", h)
  end
  -- after 64 rounds (a multiple of 8) every role is back in its register
  for k = 0, 7 do emit("h%d = (h%d + r%d) & 0xffffffff", k, k, k) end
  emit("end")
  emit("H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8] = h0, h1, h2, h3, h4, h5, h6, h7")
  emit("end")
  return assert(load(table.concat(out, "\n"), "=sha256.compress", "t", {string = string}))()
end

local compress = generate()

local Hasher = {}
Hasher.__index = Hasher

local M = {}

-- A new hashing state.
function M.new()
  return setmetatable({
    H = { table.unpack(H0) },
    buf = "",       -- the bytes of an incomplete block (0..63 bytes)
    len = 0,        -- total bytes hashed
    result = nil,   -- raw digest once finished
  }, Hasher)
end

-- Adds the bytes of s; returns the object (so calls chain).
function Hasher:update(s)
  if self.result then error("sha256: update after digest", 2) end
  if type(s) ~= "string" then error("sha256: update expects a string, got " .. type(s), 2) end
  local n = #s
  if n == 0 then return self end
  self.len = self.len + n
  local pos = 1
  local buf = self.buf
  if #buf > 0 then
    local need = 64 - #buf
    if n < need then
      self.buf = buf .. s
      return self
    end
    compress(self.H, buf .. s:sub(1, need), 1, 1)
    pos = need + 1
  end
  local full = (n - pos + 1) // 64          -- complete blocks left in s
  if full > 0 then
    compress(self.H, s, pos, pos + (full - 1) * 64)
    pos = pos + full * 64
  end
  self.buf = s:sub(pos)
  return self
end

-- The raw 32-byte digest; finishes the object.
function Hasher:digest()
  if not self.result then
    local bits = self.len * 8
    local pad = (55 - self.len) % 64        -- zero bytes between 0x80 and the length
    local tail = self.buf .. "\128" .. string.rep("\0", pad) .. string.pack(">I8", bits)
    compress(self.H, tail, 1, #tail - 63)
    local H = self.H
    self.result = string.pack(">I4I4I4I4I4I4I4I4", H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8])
    self.buf = ""
  end
  return self.result
end

-- The digest as 64 lowercase hex digits; finishes the object.
function Hasher:hexdigest()
  return (self:digest():gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- One-shot: the hex digest of a string.
function M.hex(s) return M.new():update(s):hexdigest() end

return M
