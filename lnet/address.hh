// Addresses: formatting endpoints for messages and results, and the
// asynchronous name lookup (evdns) that never blocks the loop.
#pragma once

#include <lua.hpp>

#include <event2/util.h>

#include <cstddef>

struct sockaddr;

namespace lnet {

struct Context;

constexpr size_t kIpLen = 64;
constexpr size_t kEndpointLen = 300;  // "[" host(255) "]:" port

// Numeric ip and port of an address; false for a family other than IPv4/6.
bool sockaddr_ip(const sockaddr* sa, char* ip, size_t iplen, int* port) noexcept;

// "host:port", or "[host]:port" when host holds a ':' (IPv6).
void format_endpoint(char* out, size_t n, const char* host, int port) noexcept;

// Pushes ip, port of the local (peer = false) or remote end of fd; or
// nil, message. May raise only on memory errors.
int push_socket_address(lua_State* L, evutil_socket_t fd, bool peer);

// An asynchronous lookup. done runs exactly once unless the lookup is
// cancelled, possibly before lookup_start returns (numeric hosts, errors):
// callers run lookups only from the loop. done owns ai (free it with
// evutil_freeaddrinfo); err is an EVUTIL_EAI_* code.
struct Lookup;
using LookupDone = void (*)(void* owner, int err, evutil_addrinfo* ai);
Lookup* lookup_start(Context* ctx, const char* host, int port, bool passive, LookupDone done,
                     void* owner) noexcept;
void lookup_cancel(Context* ctx, Lookup* lk) noexcept;
// Frees lookups cancelled but not yet answered (the context is going away).
void lookup_free_orphans(Context* ctx) noexcept;

}  // namespace lnet
