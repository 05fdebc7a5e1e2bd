---@meta net.ngx
-- net.ngx: the part of OpenResty's `ngx` table that cosocket libraries use.
-- `ngx = require "net.ngx"` before loading such a library.

---@class net.ngx
---@field null lightuserdata
---@field OK integer
---@field ERROR integer
---@field AGAIN integer
---@field DONE integer
---@field DECLINED integer
---@field STDERR integer
---@field EMERG integer
---@field ALERT integer
---@field CRIT integer
---@field ERR integer
---@field WARN integer
---@field NOTICE integer
---@field INFO integer
---@field DEBUG integer
---@field log_level integer messages up to this level go to stderr (default ngx.ERR)
---@field socket {tcp: fun(): net.co.Socket, stream: fun(): net.co.Socket, connect: fun(host: string, port: integer, options?: table): net.co.Socket|nil, string?}
---@field thread {spawn: fun(fn: function, ...): thread, wait: fun(t: thread): boolean, ..., kill: fun(t: thread): true|nil, string?}
---@field timer {at: fun(delay: number, fn: fun(premature: boolean, ...), ...): true|nil, string?, every: fun(delay: number, fn: fun(premature: boolean, ...), ...): true|nil, string?}
---@field config {subsystem: string, ngx_lua_version: integer, nginx_version: integer, debug: boolean, prefix: fun(): string}
---@field worker {id: fun(): integer, count: fun(): integer, exiting: fun(): boolean}
---@field ctx table
---@field var table
---@field shared table
local ngx = {}

---@param level integer
function ngx.log(level, ...) end

---@param seconds number
function ngx.sleep(seconds) end

---@return number seconds since the epoch, with milliseconds
function ngx.now() end

---@return integer
function ngx.time() end

function ngx.update_time() end

---@return string
function ngx.today() end

---@return string
function ngx.localtime() end

---@return string
function ngx.utctime() end

---@param s string
---@return string
function ngx.escape_uri(s) end

---@param s string
---@return string
function ngx.unescape_uri(s) end

---@param s string
---@param no_padding? boolean
---@return string
function ngx.encode_base64(s, no_padding) end

---@param s string
---@return string|nil
function ngx.decode_base64(s) end

---MD5 in lower-case hex (OpenSSL; raises "lnet was built without TLS" in a build without it).
---@param s string|nil nil: the empty string
---@return string
function ngx.md5(s) end

---MD5, the 16 raw bytes.
---@param s string|nil
---@return string
function ngx.md5_bin(s) end

---SHA-1, the 20 raw bytes.
---@param s string|nil
---@return string
function ngx.sha1_bin(s) end

---@return string "timer"
function ngx.get_phase() end

return ngx
