// Socket and server options: parsed once into plain data (phase 1 of a
// Lua-facing call), then read by the C++ side without touching Lua.
#pragma once

#include "proxy_protocol.hh"
#include "framing.hh"

#include <lua.hpp>

#include <cstddef>
#include <cstdint>

namespace lnet {

constexpr size_t kMaxProxyTrusted = 32;  // entries of proxy_trusted
constexpr size_t kMaxSendProxy = 560;    // a v2 header with 3 TLVs of 160 bytes

// PROXY protocol, server side (off unless set): the header a load balancer
// sends first, within header_timeout_ms, from a trusted source.
struct ProxyListen {
  ProxyMode mode = ProxyMode::Off;
  int64_t header_timeout_ms = 3000;
  bool trusted_set = false;  // false: any source; true: only those listed
  uint8_t trusted_count = 0;
  ProxyCidr trusted[kMaxProxyTrusted];
};

// PROXY protocol, client side: the header connect() sends before anything
// else, built when the options are read.
struct SendProxy {
  uint16_t len = 0;
  unsigned char bytes[kMaxSendProxy];
};
struct TlsConfig;
struct TlsSni;

// What a connection keeps of its options once it has started (Conn::opt,
// sliced from Options): the fields its I/O reads, not the TLS names or the
// listener's settings (a server's connections would each carry a copy).
struct ConnOptions {
  bool nodelay = false;
  bool keepalive = false;
  bool allow_half_open = false;
  int keepalive_ms = 0;           // idle delay before probes; 0 = system default
  int64_t timeout_ms = 0;         // name resolution + connect; 0 = none
  int64_t idle_timeout_ms = 0;    // no traffic either way; 0 = none
  int64_t linger_timeout_ms = 30000;  // disconnect() resets after this long without progress; 0 = never
  size_t max_buffer = 0;          // send() aborts when this much is queued; 0 = no limit
  size_t high_water = 64u << 10;  // send() returns false above this
  FrameSpec framing;              // 'framing' and 'max_message' (kind None: raw data)
};

struct Options : ConnOptions {
  int backlog = 511;
  bool reuseport = false;
  int64_t max_connections = 0;    // 0 = unlimited
  // TLS (tls.hh): borrowed from the arguments until tls_options_retain,
  // then owned by the object that keeps the options.
  TlsConfig* tls = nullptr;
  bool tls_default = false;              // tls = true: the default client context
  int8_t servername_mode = 0;            // 0: the host; 1: servername; -1: false (no SNI)
  char servername[256] = "";
  int sni_idx = 0;                       // the options table's stack index while parsing (sni)
  TlsSni* sni = nullptr;
  int64_t handshake_timeout_ms = 10000;  // 0 = none
  int mode = -1;                  // listen on "unix:/path": the file's permissions; -1 = umask
  // Where parse_options puts the PROXY protocol options: a server's
  // proxy_protocol, proxy_trusted, proxy_header_timeout (proxy_listen) and a
  // socket's send_proxy (send_proxy). They live in the server or socket, not
  // in each connection's copy of the options; null: checked, then dropped.
  ProxyListen* proxy_listen = nullptr;
  SendProxy* send_proxy = nullptr;
};

// Reads the options table at idx (nil or none leaves o as it is) into o.
// Raises "bad argument #arg to 'fname' (...)" for an unknown key or a value
// of the wrong type or range.
void parse_options(lua_State* L, int idx, int arg, Options* o);

// The 'framing' option at idx into spec (frames.cc); raises bad argument.
void parse_framing(lua_State* L, int idx, int arg, FrameSpec* spec);
// The 'max_message' option on the stack top.
void parse_max_message(lua_State* L, int arg, FrameSpec* spec);
// luaL_checkinteger and luaL_checknumber, except that a string (even
// "80") raises like any other wrong type: "number expected, got string".
lua_Integer check_integer(lua_State* L, int arg);
lua_Number check_number(lua_State* L, int arg);

// Checks a host argument (string, at most 255 bytes, no NUL) and a port
// (integer 0..65535): raises bad argument otherwise.
const char* check_host(lua_State* L, int arg, size_t* len);
int check_port(lua_State* L, int arg);

}  // namespace lnet
