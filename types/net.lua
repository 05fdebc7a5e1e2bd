---@meta net
-- Type definitions of lnet for the Lua language server (LuaLS): add this
-- folder to "workspace.library" (LuaRocks installs it with the rock, under
-- the rock's directory: `luarocks show lnet` prints where). The test
-- tests/lua/types.lua checks these names against what the module exports.

---@class net
---@field _VERSION string "lnet X.Y.Z"
---@field libevent_version string the libevent version in use
---@field _runner table internal: what only the lnet runner calls (the worker supervisor)
---@field features net.Features what this build of the module has
local net = {}

---@class net.Features
---@field tls boolean built with TLS (OpenSSL 3); without it every `tls =` raises "lnet was built without TLS"

---The worker's index and the number of workers under `lnet --workers N`;
---1, 1 in any other process.
---@return integer index 1..count
---@return integer count
function net.worker() end

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
---@field proxy_protocol? net.ProxyMode server: each connection must start with a PROXY header (default "off"; never auto-detected)
---@field proxy_trusted? string[] server: the addresses or CIDR ranges that may connect with proxy_protocol (default: any)
---@field proxy_header_timeout? integer server: a header not complete by then closes the connection, ms (default 3000)
---@field send_proxy? net.SendProxy client: the PROXY header sent before anything else
---@field framing? string|net.Framing "line" or a table: `data` then receives whole messages (default none: bytes as read)
---@field max_message? integer with framing, a longer message ends the connection: "message too long (N > max)" (default 1 MiB)
---@field tls? boolean|net.TLSContext TLS on this connection; true: the default client context (system trust store)
---@field servername? string|false client: the SNI sent and the name checked (default: the host); false: no SNI, the host is still checked
---@field sni? table<string, net.TLSContext> listen: a context per SNI name (case-insensitive); others get `tls`
---@field handshake_timeout? integer ms to finish the TLS handshake; 0 = none (default 10000)

---@alias net.ProxyMode
---| "off" # no header (the default)
---| "v1"  # a version 1 (text) header
---| "v2"  # a version 2 (binary) header
---| "any" # either version

---The PROXY header a client sends (connect option send_proxy). Without
---addresses: a LOCAL (v2) or UNKNOWN (v1) header.
---@class net.SendProxy
---@field version 1|2
---@field source_ip? string the client being passed on (numeric)
---@field source_port? integer
---@field dest_ip? string the address it connected to (numeric, same family)
---@field dest_port? integer
---@field alpn? string v2 TLV
---@field authority? string v2 TLV (the host name the client asked for)
---@field unique_id? string v2 TLV

---What a connection's PROXY header said (server:proxy_info).
---@class net.ProxyInfo
---@field version 1|2
---@field command "PROXY"|"LOCAL"
---@field family "TCP4"|"TCP6"|"UDP4"|"UDP6"|"UNIX"|"UNKNOWN"
---@field source_ip? string
---@field source_port? integer
---@field dest_ip? string
---@field dest_port? integer
---@field source_path? string UNIX family
---@field dest_path? string UNIX family
---@field alpn? string
---@field authority? string
---@field unique_id? string
---@field tlvs {type: integer, value: string}[] every v2 TLV in order

---@class net.Framing
---@field delimiter? string messages end with these bytes (1 to 64), removed
---@field length? 1|2|4|8 messages start with a length field of this many bytes, removed
---@field endian? "big"|"little" byte order of the length field (default "big")
---@field adjust? integer added to the length field to give the body size (default 0; -4 when the field counts itself)
---@field max_message? integer as the option of the same name

---Callbacks of connect(); read raw (a metatable is not consulted). Unknown names raise.
---@class net.SocketCallbacks
---@field connected? fun() the connection is established
---@field data? fun(data: string) bytes arrived
---@field disconnected? fun() the connection ended (exactly once, last, only after connected)
---@field error? fun(message: string, code: string) the connect failed or the connection broke; code is stable ("ECONNREFUSED", "ETIMEDOUT", "IDLE_TIMEOUT", ...)
---@field drain? fun() the send queue emptied after send() returned false
---@field end? fun() the peer closed its side (with allow_half_open)
---@field secured? fun(info: net.TLSInfo) a starttls() handshake finished

---Callbacks of listen(); read raw (a metatable is not consulted). Unknown names raise.
---@class net.ServerCallbacks
---@field connected? fun(client_id: integer) a client connected
---@field data? fun(client_id: integer, data: string) bytes from a client
---@field disconnected? fun(client_id: integer, reason: string?, code: string?) a client ended; reason and code nil when orderly
---@field started? fun() listening
---@field error? fun(message: string, code: string) bind, listen or accept failed
---@field drain? fun(client_id: integer) a client's send queue emptied after send() returned false
---@field end? fun(client_id: integer) a client closed its side (with allow_half_open)
---@field secured? fun(client_id: integer, info: net.TLSInfo) a starttls() handshake finished
---@field tls_error? fun(message: string, ip: string, port: integer, code: string) a client's TLS handshake failed (it never got an id)

---@class net.Stats
---@field bytes_in integer bytes received
---@field bytes_out integer bytes the kernel accepted
---@field queued integer bytes waiting to be sent

---@class net.ServerStats: net.Stats
---@field accepted integer connections accepted
---@field active integer connections open now
---@field limit_pauses integer times accepting paused at max_connections
---@field proxy_invalid integer connections closed for an invalid or oversized PROXY header
---@field proxy_untrusted integer connections closed for a source not in proxy_trusted
---@field proxy_timeout integer connections closed for a PROXY header not complete in time

---A length-prefixed message: the length field, then payload.
---@param payload string
---@param spec? net.Framing a `length` framing (default {length = 4, endian = "big"})
---@return string
function net.frame(payload, spec) end
---@field tls_failed integer TLS handshakes that failed (each fired tls_error)

---@class net.TLSContext
---An immutable TLS configuration (one OpenSSL SSL_CTX), shared by any number of connections.

---@class net.TLSOptions
---@field ca? string|string[] PEM file, directory of hashed certificates, or PEM text; a list of these (default: the system trust store)
---@field cert? string certificate chain: PEM file or PEM text (a server needs it)
---@field key? string private key: PEM file or PEM text (with cert)
---@field password? string the key's password, when it is encrypted
---@field min_version? "1.0"|"1.1"|"1.2"|"1.3" lowest protocol version (default "1.2")
---@field max_version? "1.0"|"1.1"|"1.2"|"1.3" highest protocol version (default: none)
---@field ciphers? string TLS 1.2 and older cipher list (OpenSSL syntax)
---@field ciphersuites? string TLS 1.3 cipher suites (OpenSSL syntax)
---@field alpn? string[] ALPN protocols in order of preference, e.g. {"h2", "http/1.1"}
---@field request_cert? boolean server: ask for a client certificate (checked; tlsinfo().verified says)
---@field require_cert? boolean server: refuse a client without a valid certificate (mutual TLS)
---@field insecure? boolean client: no certificate and no name checks (the only way to turn them off)

---@class net.TLSPeer
---@field subject string RFC 2253, e.g. "O=Example,CN=example.test"
---@field issuer string RFC 2253
---@field san string[] subject alternative names: DNS names, IP addresses, emails, URIs
---@field not_before integer Unix time
---@field not_after integer Unix time
---@field fingerprint string SHA-256 of the DER, "AB:CD:..." as `openssl x509 -fingerprint -sha256` prints it

---@class net.TLSInfo
---@field protocol string "TLSv1.3", "TLSv1.2", ...
---@field cipher string e.g. "TLS_AES_256_GCM_SHA384"
---@field alpn? string the protocol ALPN chose
---@field servername? string the SNI (sent by this client, or received by this server)
---@field verified boolean the peer's certificate (and name) was checked and passed
---@field peer? net.TLSPeer the peer's certificate (absent when it sent none)

---Makes a TLS configuration. Raises for a wrong option, an unreadable file
---or a key that does not match its certificate, naming the file and
---OpenSSL's reason.
---@param options? net.TLSOptions
---@return net.TLSContext
function net.TLSContext(options) end

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

---The TLS state of the connection, or nil and a message (plaintext, or
---before connected).
---@return net.TLSInfo|nil info
---@return string? message
function TCPSocket:tlsinfo() end

---Upgrades the open plaintext connection to TLS (client side); bytes
---already received were delivered; `secured(info)` follows the handshake,
---a failure ends the connection with the reason.
---@param ctx net.TLSContext|true
---@param options? net.Options servername, handshake_timeout
---@return true
function TCPSocket:starttls(ctx, options) end

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

---Closes the listener only; open connections go on (a worker's graceful stop).
function TCPServer:stop_accepting() end

---The socket's own peer (behind a load balancer: the balancer); peer() is
---the client named by the PROXY header.
---@param client_id integer
---@return string|nil ip
---@return integer|string port_or_message
function TCPServer:transport_peer(client_id) end

---What the connection's PROXY header said; nil without proxy_protocol.
---@param client_id integer
---@return net.ProxyInfo|nil info
---@return string? message unknown client id
function TCPServer:proxy_info(client_id) end
---The TLS state of a client's connection, or nil, message, code.
---@param client_id integer
---@return net.TLSInfo|nil info
---@return string? message
function TCPServer:tlsinfo(client_id) end

---Upgrades a client's plaintext connection to TLS (server side);
---`secured(id, info)` follows the handshake, a failure ends the connection.
---@param client_id integer
---@param ctx net.TLSContext
---@param options? net.Options handshake_timeout
---@return true|nil ok
---@return string? message
function TCPServer:starttls(client_id, ctx, options) end

return net
