// Socket and server options: parsed once into plain data (phase 1 of a
// Lua-facing call), then read by the C++ side without touching Lua.
#pragma once

#include "proxy_protocol.hh"

#include <lua.hpp>

#include <cstddef>
#include <cstdint>

namespace lnet {

constexpr size_t kMaxProxyTrusted = 32;  // entries of proxy_trusted
constexpr size_t kMaxSendProxy = 560;    // a v2 header with 3 TLVs of 160 bytes

struct Options {
  bool nodelay = false;
  bool keepalive = false;
  int keepalive_ms = 0;           // idle delay before probes; 0 = system default
  int64_t timeout_ms = 0;         // name resolution + connect; 0 = none
  int64_t idle_timeout_ms = 0;    // no traffic either way; 0 = none
  int backlog = 511;
  bool reuseport = false;
  int64_t max_connections = 0;    // 0 = unlimited
  size_t max_buffer = 8u << 20;   // bytes queued per direction
  size_t high_water = 64u << 10;  // send() returns false above this
  bool allow_half_open = false;
  // PROXY protocol, server side (off unless set): the header a load balancer
  // sends first, within proxy_header_timeout_ms, from a trusted source.
  ProxyMode proxy_protocol = ProxyMode::Off;
  int64_t proxy_header_timeout_ms = 3000;
  bool proxy_trusted_set = false;  // false: any source; true: only those listed
  uint8_t proxy_trusted_count = 0;
  ProxyCidr proxy_trusted[kMaxProxyTrusted];
  // PROXY protocol, client side: the header connect() sends before anything
  // else (send_proxy); built when the options are read.
  uint16_t send_proxy_len = 0;
  unsigned char send_proxy[kMaxSendProxy];
};

// Reads the options table at idx (nil or none leaves o as it is) into o.
// Raises "bad argument #arg to 'fname' (...)" for an unknown key or a value
// of the wrong type or range.
void parse_options(lua_State* L, int idx, int arg, Options* o);

// Checks a host argument (string, at most 255 bytes, no NUL) and a port
// (integer 0..65535): raises bad argument otherwise.
const char* check_host(lua_State* L, int arg, size_t* len);
int check_port(lua_State* L, int arg);

}  // namespace lnet
