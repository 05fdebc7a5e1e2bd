// TLS: net.TLSContext (tls_context.cc) and the per-connection transform
// (tls.cc) that runs inside a Conn, on the connection's own read and write
// path: OpenSSL reads the socket through a BIO of ours (recv) and writes
// through the connection's write path (write-through, then its queue), so
// plaintext and TLS share one output queue, one flush and one teardown.
// Built without OpenSSL, tls_none.cc provides the entry points and every
// `tls =` raises "lnet was built without TLS".
#pragma once

#include <lua.hpp>

#include <cstddef>
#include <cstdint>

namespace lnet {

struct Conn;
struct Context;
struct Options;

// A TLSContext: one SSL_CTX and lnet's flags (insecure, ...), reference
// counted: the Lua object holds one reference, each user one more.
struct TlsConfig;
// The listen option sni: names -> configs (reference counted as well).
struct TlsSni;
// One connection's TLS state (owned by its Conn).
struct Tls;
// Per-lua_State TLS state: the BIO method and the default client context.
struct TlsShared;

constexpr int64_t kDefaultHandshakeTimeoutMs = 10000;

// Whether the module was built with TLS (net.features.tls).
bool tls_built() noexcept;

// Adds net.TLSContext and net.features to the module table.
void register_tls(lua_State* L, int ctx_idx, int module_idx);
void tls_shared_free(TlsShared* s) noexcept;

// --- options (parse_options calls it for the keys it does not know) -------
// Handles tls, servername, sni, handshake_timeout (value at -1); false for
// any other key. Raises bad argument for a wrong value. What it stores in o
// is borrowed from the arguments until tls_options_retain.
bool parse_tls_option(lua_State* L, int arg, const char* key, Options* o);
// Makes the borrowed references of o owned (after the last call that may
// raise); tls = true resolved to the state's default client context (made
// by tls_options_prepare, which may raise, before).
void tls_options_prepare(lua_State* L, Options* o);
void tls_options_retain(lua_State* L, Options* o) noexcept;
void tls_options_release(Options* o) noexcept;
// Reads the TLSContext (or true: the default client context) at idx for
// starttls; raises otherwise. Borrowed.
TlsConfig* check_tls_config(lua_State* L, int idx, bool client);

// --- connections ---------------------------------------------------------
enum class TlsRole : uint8_t { Client, Server };

// Starts TLS on an open connection: the SSL object, its BIO, the
// handshake timer; a client sends its hello at once. host: what the
// client connected to (the name checked, and the SNI unless o says
// otherwise). False when out of memory (nothing is left attached).
bool tls_start(Conn* c, TlsConfig* cfg, TlsRole role, const char* host, int port,
               const Options* o, bool starttls) noexcept;
bool tls_handshaking(const Conn* c) noexcept;
// The handshake failed (c->reason says why) / ran out of time.
bool tls_handshake_failed(const Conn* c) noexcept;
bool tls_is_starttls(const Conn* c) noexcept;
// The peer's address, kept for tls_error after the socket is gone.
const char* tls_peer_ip(const Conn* c) noexcept;
int tls_peer_port(const Conn* c) noexcept;
// The stable code of the TLS failure that ended c (null: none).
const char* tls_code(const Conn* c) noexcept;

// The connection's read handler while TLS is on.
void tls_on_readable(Conn* c) noexcept;
// Plaintext to send: before the handshake has finished it waits in the TLS
// state; false when out of memory.
bool tls_send(Conn* c, const char* data, size_t len) noexcept;
size_t tls_early_queued(const Conn* c) noexcept;
uint64_t tls_plain_out(const Conn* c) noexcept;
// Queues close_notify (once) on the write path.
void tls_close_notify(Conn* c) noexcept;
// Reading resumed: decrypted bytes already inside OpenSSL are delivered
// without waiting for new network input.
void tls_resume(Conn* c) noexcept;
// The socket is about to be closed (timers stopped).
void tls_closed(Conn* c) noexcept;
void tls_free(Conn* c) noexcept;

// Pushes the tlsinfo table of c (or nil, message when c has no TLS).
int push_tlsinfo(lua_State* L, const Conn* c);

}  // namespace lnet
