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

void tls_config_retain(TlsConfig* c) noexcept;  // null: nothing
void tls_config_release(TlsConfig* c) noexcept;

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
// Stable codes of TLS failures (beside errno names such as "ECONNRESET").
inline constexpr const char kCodeTlsHandshake[] = "TLS_HANDSHAKE";  // the handshake failed
inline constexpr const char kCodeTlsVerify[] = "TLS_VERIFY";        // the peer's certificate or name
inline constexpr const char kCodeTlsHandshakeTimeout[] = "TLS_HANDSHAKE_TIMEOUT";
inline constexpr const char kCodeTlsTruncated[] = "TLS_TRUNCATED";  // EOF without close_notify
inline constexpr const char kCodeTlsError[] = "TLS_ERROR";          // a TLS error after the handshake

enum class TlsRole : uint8_t { Client, Server };

// Starts TLS on a connection: the SSL object, its BIO, the handshake
// timer; the connection's transport becomes TLS. A client sends its hello
// at once when the connection is open. host: what the client connected to
// (the name checked, and the SNI unless o says otherwise). With starttls,
// plaintext still queued goes out first. False when out of memory (nothing
// is left attached).
bool tls_start(Conn* c, TlsConfig* cfg, TlsRole role, const char* host, const Options* o,
               bool starttls) noexcept;
// Runs the handshake from the connection's read or write event: true once
// it has finished (the owner was told: conn_secured), false while it goes
// on or when it failed (the connection is then closed, EndKind::Tls).
bool tls_handshake(Conn* c) noexcept;
bool tls_handshaking(const Conn* c) noexcept;
// The handshake failed (tls_end_reason says why) or ran out of time.
bool tls_handshake_failed(const Conn* c) noexcept;
bool tls_is_starttls(const Conn* c) noexcept;
// The peer's address, kept for tls_error after the socket is gone.
const char* tls_peer_ip(const Conn* c) noexcept;
int tls_peer_port(const Conn* c) noexcept;
// The message and code of an EndKind::Tls end.
const char* tls_end_reason(const Conn* c) noexcept;
const char* tls_end_code(const Conn* c) noexcept;
// Frees the connection's TLS state (conn_release); the transport goes
// back to plaintext.
void tls_free(Conn* c) noexcept;

// Pushes the tlsinfo table of c (or nil, message when c has no TLS).
int push_tlsinfo(lua_State* L, const Conn* c);

// --- digests (net.ngx's md5, md5_bin, sha1_bin) ---------------------------
enum class Digest : uint8_t { Md5, Sha1 };
// Pushes the digest of the string argument 1 (nil: the empty string), raw
// or in lower-case hex; raises "lnet was built without TLS" without OpenSSL.
int push_digest(lua_State* L, Digest kind, bool hex);

}  // namespace lnet
