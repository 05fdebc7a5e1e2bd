---@meta net
-- Type definitions of lnet for the Lua language server (LuaLS): add this
-- folder to "workspace.library" (LuaRocks installs it with the rock, under
-- the rock's directory: `luarocks show lnet` prints where). The test
-- tests/lua/types.lua checks these names against what the module exports.

---@class net
---@field _VERSION string "lnet X.Y.Z"
---@field libevent_version string the libevent version in use
local net = {}

---@alias net.LoopMode
---| "default" # until nothing is active or net.stop()
---| "once"    # one round of events (returns at once when nothing is active)
---| "nowait"  # what is ready now; never blocks

---Runs the event loop. Returns true while something is still active (a
---listening server, an open or connecting socket, a pending timer). An error
---raised in a callback comes out of here with its traceback.
---@param mode? net.LoopMode
---@return boolean active
function net.loop(mode) end

---Makes a running net.loop() return after the current callback; outside a
---loop it does nothing.
function net.stop() end

---Monotonic clock in milliseconds.
---@return integer
function net.now() end

---How many network errors the module wrote to stderr ("lnet: message")
---because no `error` callback was there to take them. The lnet runner exits
---with status 1 when it is not 0.
---@return integer
function net.unhandled_errors() end

---@class net.Timer
local Timer = {}

---Cancels the timer (idempotent).
function Timer:clear() end

---Calls fn(...) once after ms milliseconds.
---@param fn fun(...)
---@param ms number
---@param ... any passed to fn
---@return net.Timer
function net.setTimeout(fn, ms, ...) end

---Calls fn(...) every ms milliseconds until cleared.
---@param fn fun(...)
---@param ms number
---@param ... any passed to fn
---@return net.Timer
function net.setInterval(fn, ms, ...) end

---Cancels a timer; nil does nothing; idempotent.
---@param timer net.Timer?
function net.clearTimeout(timer) end

---Cancels an interval; nil does nothing; idempotent.
---@param timer net.Timer?
function net.clearInterval(timer) end

---Options of sockets and servers (constructor, or 4th argument of
---connect/listen). Unknown names raise.
---@class net.Options
---@field nodelay? boolean TCP_NODELAY (default false)
---@field keepalive? boolean|integer SO_KEEPALIVE; a number is the idle delay in ms before probes (default false)
---@field timeout? integer name resolution + connect, ms; 0 = none (default 0)
---@field idle_timeout? integer close a connection with no traffic either way, ms; not while paused; 0 = none (default 0)
---@field backlog? integer listen() backlog (default 511)
---@field reuseport? boolean SO_REUSEPORT (default false)
---@field max_connections? integer stop accepting at this many clients; 0 = no limit (default 0)
---@field max_buffer? integer a send() finding this many bytes queued aborts the connection ("MAX_BUFFER"); 0 = no limit (default 0)
---@field linger_timeout? integer after disconnect()/stop(), reset a connection that makes no progress for this long, ms ("LINGER_TIMEOUT"); 0 = never (default 30000)
---@field high_water? integer send() returns false above this many queued bytes (default 64 KiB)
---@field allow_half_open? boolean a peer's FIN fires `end` instead of closing (default false)
---@field mode? integer|string listen on "unix:/path": the socket file's permissions ("0660" or an integer)

---Callbacks of connect(); read raw (a metatable is not consulted). Unknown names raise.
---@class net.SocketCallbacks
---@field connected? fun() the connection is established
---@field data? fun(data: string) bytes arrived
---@field disconnected? fun() the connection ended (exactly once, last, only after connected)
---@field error? fun(message: string, code: string) the connect failed or the connection broke; code is stable ("ECONNREFUSED", "ETIMEDOUT", "IDLE_TIMEOUT", ...)
---@field drain? fun() the send queue emptied after send() returned false
---@field end? fun() the peer closed its side (with allow_half_open)

---Callbacks of listen(); read raw (a metatable is not consulted). Unknown names raise.
---@class net.ServerCallbacks
---@field connected? fun(client_id: integer) a client connected
---@field data? fun(client_id: integer, data: string) bytes from a client
---@field disconnected? fun(client_id: integer, reason: string?, code: string?) a client ended; reason and code nil when orderly
---@field started? fun() listening
---@field error? fun(message: string, code: string) bind, listen or accept failed
---@field drain? fun(client_id: integer) a client's send queue emptied after send() returned false
---@field end? fun(client_id: integer) a client closed its side (with allow_half_open)

---@class net.Stats
---@field bytes_in integer bytes received
---@field bytes_out integer bytes the kernel accepted
---@field queued integer bytes waiting to be sent

---@class net.ServerStats: net.Stats
---@field accepted integer connections accepted
---@field active integer connections open now
---@field limit_pauses integer times accepting paused at max_connections

---@class net.TCPSocket
local TCPSocket = {}

---@param options? net.Options
---@return net.TCPSocket
function net.TCPSocket(options) end

---Starts connecting; callbacks fire from the loop.
---@param host string name or IP (at most 255 bytes)
---@param port integer 0..65535
---@param callbacks net.SocketCallbacks
---@param options? net.Options
---@return true
function TCPSocket:connect(host, port, callbacks, options) end

---Queues the whole string: true at or below high_water, false above it
---(drain follows); nil, message, code when nothing was queued ("ENOTCONN",
---"ESHUTDOWN"; "MAX_BUFFER" and "ENOMEM" also abort the connection).
---@param data string
---@return boolean|nil ok
---@return string? message
---@return string? code
function TCPSocket:send(data) end

---Graceful close: queued bytes are sent, then the socket closes.
function TCPSocket:disconnect() end

---Closes at once, dropping queued bytes.
function TCPSocket:close() end

---Sends FIN once the queue has drained; reading continues.
function TCPSocket:shutdown() end

---Stops reading (TCP pushes back on the peer).
function TCPSocket:pause() end

---Restarts reading.
function TCPSocket:resume() end

---@return string|nil ip
---@return integer|string port_or_message
function TCPSocket:peer() end

---@return string|nil ip
---@return integer|string port_or_message
function TCPSocket:sockname() end

---@return net.Stats
function TCPSocket:stats() end

---@class net.TCPServer
local TCPServer = {}

---@param options? net.Options
---@return net.TCPServer
function net.TCPServer(options) end

---Binds and listens; started or error fire from the loop.
---@param host string "localhost", "0.0.0.0", "::", an IP or a name
---@param port integer 0..65535 (0: any free port, see address())
---@param callbacks net.ServerCallbacks
---@param options? net.Options
---@return true
function TCPServer:listen(host, port, callbacks, options) end

---@param client_id integer
---@param data string
---@return boolean|nil ok
---@return string? message
---@return string? code
function TCPServer:send(client_id, data) end

---Graceful close of one client.
---@param client_id integer
---@return true|nil ok
---@return string? message
---@return string? code
function TCPServer:disconnect(client_id) end

---Closes one client at once.
---@param client_id integer
---@return true|nil ok
---@return string? message
---@return string? code
function TCPServer:close(client_id) end

---@param client_id integer
---@return true|nil ok
---@return string? message
---@return string? code
function TCPServer:shutdown(client_id) end

---@param client_id integer
---@return true|nil ok
---@return string? message
---@return string? code
function TCPServer:pause(client_id) end

---@param client_id integer
---@return true|nil ok
---@return string? message
---@return string? code
function TCPServer:resume(client_id) end

---Stops listening and disconnects every client gracefully.
function TCPServer:stop() end

---@return string|nil ip
---@return integer|string port_or_message
function TCPServer:address() end

---@return integer[] ids of the connections that have not ended, ascending
function TCPServer:clients() end

---@param client_id integer
---@return string|nil ip
---@return integer|string port_or_message
function TCPServer:peer(client_id) end

---@param client_id integer
---@return string|nil ip
---@return integer|string port_or_message
function TCPServer:sockname(client_id) end

---@param client_id? integer
---@return net.ServerStats|net.Stats
function TCPServer:stats(client_id) end

---The peer process of a "unix:" connection (SO_PEERCRED).
---@param client_id integer
---@return integer|nil pid
---@return integer|string uid_or_message
---@return integer|string gid_or_code
function TCPServer:peercred(client_id) end

---Options of net.UDPSocket (constructor, or 4th argument of bind). The
---set{} ones may also be changed with udp:set(). Unknown names raise.
---@class net.UDPOptions
---@field reuseaddr? boolean SO_REUSEADDR (default false)
---@field reuseport? boolean SO_REUSEPORT (default false)
---@field ipv6only? boolean IPV6_V6ONLY of an IPv6 socket (default: the system's)
---@field recv_buffer_size? integer SO_RCVBUF in bytes (default: the system's)
---@field send_buffer_size? integer SO_SNDBUF in bytes (default: the system's)
---@field max_datagram? integer the most bytes of one datagram delivered; longer ones are truncated (default 65535)
---@field broadcast? boolean SO_BROADCAST (set{} too)
---@field ttl? integer unicast TTL / hop limit 1..255 (set{} too)
---@field multicast_ttl? integer multicast TTL / hops 0..255 (set{} too)
---@field multicast_loop? boolean loop multicast back to this host (set{} too)
---@field multicast_interface? string outgoing multicast interface: an IPv4 address, or an interface name for IPv6 (set{} too)

---@class net.UDPCallbacks
---@field message? fun(data: string, ip: string, port: integer, truncated: boolean) a datagram ("" when empty, never nil)
---@field error? fun(message: string, code: string) bind, a lookup, or an ICMP error, from the loop

---@class net.UDPStats
---@field datagrams_in integer
---@field datagrams_out integer
---@field bytes_in integer
---@field bytes_out integer
---@field truncated integer datagrams cut to max_datagram
---@field would_block integer sends refused with "would block"
---@field errors integer failures reported to error
---@field pending integer datagrams waiting for a name lookup

---@class net.UDPSocket
local UDPSocket = {}

---@param options? net.UDPOptions
---@return net.UDPSocket
function net.UDPSocket(options) end

---Binds and reads; a numeric host is bound before this returns.
---@param host string an IP or a name
---@param port integer 0..65535 (0: any free port, see sockname())
---@param callbacks net.UDPCallbacks
---@param options? net.UDPOptions
---@return true
function UDPSocket:bind(host, port, callbacks, options) end

---Fixes the peer; with callbacks, also reads.
---@param host string
---@param port integer
---@param callbacks? net.UDPCallbacks
---@return true
function UDPSocket:connect(host, port, callbacks) end

---One datagram, at once: true, or nil, "would block" | "message too long" | ..., code.
---@param data string
---@param host? string (omitted when connected)
---@param port? integer
---@return true|nil ok
---@return string? message
---@return string? code
function UDPSocket:send(data, host, port) end

---@param group string a multicast IP address
---@param interface? string a local IPv4 address (IPv4 group) or an interface name (IPv6 group)
---@param source? string source-specific membership
---@return true|nil ok
---@return string? message
---@return string? code
function UDPSocket:join(group, interface, source) end

---@param group string
---@param interface? string
---@param source? string
---@return true|nil ok
---@return string? message
---@return string? code
function UDPSocket:leave(group, interface, source) end

---@param options net.UDPOptions only broadcast, ttl, multicast_ttl, multicast_loop, multicast_interface
---@return true|nil ok
---@return string? message
---@return string? code
function UDPSocket:set(options) end

function UDPSocket:pause() end

function UDPSocket:resume() end

---Closes the socket; idempotent.
function UDPSocket:close() end

---@return string|nil ip
---@return integer|string port_or_message
function UDPSocket:sockname() end

---@return string|nil ip
---@return integer|string port_or_message
function UDPSocket:peer() end

---@return net.UDPStats
function UDPSocket:stats() end

return net
