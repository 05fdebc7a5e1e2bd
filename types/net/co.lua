---@meta net.co
-- net.co: coroutines and cosockets on lnet's loop (compiled into net.so).

---@class net.co
local co = {}

---Runs fn(...) as a coroutine, started from the loop.
---@param fn fun(...): ...
---@return thread
function co.spawn(fn, ...) end

---Waits for a thread made by co.spawn: true and its results, or false and
---the error it raised.
---@param thread thread
---@return boolean ok
---@return any ...
function co.wait(thread) end

---Ends a thread that is waiting.
---@param thread thread
---@return true|nil ok
---@return string? message
function co.kill(thread) end

---Suspends the running coroutine for ms milliseconds (0: until the loop has
---run what is ready).
---@param ms number
function co.sleep(ms) end

---@return thread
---@return boolean ismain
function co.running() end

---@class net.co.Options
---@field max_input? integer received bytes held before reading pauses (default 1 MiB)
---@field max_line? integer longest line receive("*l") accepts (default 64 KiB)
---@field tls_context? net.TLSContext what sslhandshake verifies against (default: the system trust store)

---@class net.co.ConnectOptions: net.Options, net.co.Options
---@field pool? string the pool name (default "host:port"; with tls, its own pool per name checked)

---A cosocket (not connected yet).
---@param options? net.co.Options
---@return net.co.Socket
function co.tcp(options) end

---Closes every idle connection in the pools.
function co.closepool() end

---Runs handler(sock) in a new coroutine per accepted connection; the socket
---is closed when the handler returns or raises.
---@param host string
---@param port integer
---@param handler fun(sock: net.co.Socket)
---@param options? net.co.ConnectOptions
---@return net.TCPServer
function co.listen(host, port, handler, options) end

---@class net.co.Socket
local Socket = {}

---@param host string
---@param port integer
---@param options? net.co.ConnectOptions
---@return 1|nil ok
---@return string? message "timeout" or the connect failure
function Socket:connect(host, port, options) end

---Queues data, waiting while the queue is above its high-water mark.
---@param data string|number|table a string or a (nested) array of strings and numbers
---@return integer|nil bytes
---@return string? message
function Socket:send(data) end

---@param pattern? "*l"|"l"|"*a"|"a"|integer|string a line (default), all, or a byte count
---@return string|nil data
---@return string? message "timeout", "closed", "line too long" or the failure
---@return string? partial what had arrived
function Socket:receive(pattern) end

---@param max integer
---@return string|nil data
---@return string? message
function Socket:receiveany(max) end

---@param delimiter string
---@param options? {inclusive: boolean}
---@return fun(size?: integer): string|nil, string?, string?
function Socket:receiveuntil(delimiter, options) end

---@param ms number|nil connect, send and read timeout (nil: none; default 60000)
---@return 1
function Socket:settimeout(ms) end

---@param connect number|nil
---@param send number|nil
---@param read number|nil
---@return 1
function Socket:settimeouts(connect, send, read) end

---Queued bytes are still sent, then the connection closes.
---@return 1|nil ok
---@return string? message
function Socket:close() end

---@return 1|nil ok
---@return string? message
function Socket:shutdown() end

---Returns the connection to the pool of its host and port.
---@param idle_ms? number (default 60000; 0: no idle timeout)
---@param size? integer the pool's size (default 30)
---@return 1|nil ok
---@return string? message
function Socket:setkeepalive(idle_ms, size) end

---What a successful sslhandshake returns (no session resumption: passing it
---back as reused_session is accepted and changes nothing).
---@class net.co.SSLSession
---@field tlsinfo net.TLSInfo the connection's tlsinfo() at the handshake

---Upgrades the connection to TLS (OpenResty's tcpsock:sslhandshake). Verifies
---by default (unlike OpenResty): ssl_verify = false is the way to skip it.
---@param reused_session? net.co.SSLSession|false false: return true instead of a session
---@param server_name? string the SNI sent and the name checked (default: the host given to connect)
---@param ssl_verify? boolean nil or true: check the certificate and the name; false: an insecure context
---@param send_status_req? boolean accepted, ignored (no OCSP request)
---@param options? {tls_context?: net.TLSContext} the context to verify against (default: co.tcp's tls_context, else the system trust store)
---@return net.co.SSLSession|true|nil session
---@return string? message "closed", "timeout" or the handshake failure
---@return string? code e.g. "TLS_VERIFY", "TLS_HANDSHAKE"
function Socket:sslhandshake(reused_session, server_name, ssl_verify, send_status_req, options) end

---@return integer|nil times times this connection came from the pool
---@return string? message
function Socket:getreusedtimes() end

---@return string|nil ip
---@return integer|string port_or_message
function Socket:peer() end

---@return string|nil ip
---@return integer|string port_or_message
function Socket:sockname() end

return co
