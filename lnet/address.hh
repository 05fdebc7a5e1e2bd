// Addresses: formatting endpoints for messages and results, and the
// asynchronous name lookup (the system resolver on worker threads,
// resolver.cc) that never blocks the loop.
#pragma once

#include <lua.hpp>

#include <event2/util.h>

#include <cstddef>

struct sockaddr;

namespace lnet {

struct Context;

constexpr size_t kIpLen = 64;
constexpr size_t kEndpointLen = 1040;  // "[" host(255 bytes, each up to "\xHH") "]:" port

// Numeric ip and port of an address; false for a family other than IPv4/6.
bool sockaddr_ip(const sockaddr* sa, char* ip, size_t iplen, int* port) noexcept;

// "host:port", or "[host]:port" when host holds a ':' (IPv6) and is not
// already in brackets. Control bytes and '\' in host are escaped ("\n",
// "\x01", "\\"), so a message stays one line that shows what was passed.
void format_endpoint(char* out, size_t n, const char* host, int port) noexcept;

// Pushes ip, port of the local (peer = false) or remote end of fd; or
// nil, message. May raise only on memory errors.
int push_socket_address(lua_State* L, evutil_socket_t fd, bool peer);

// An asynchronous lookup (getaddrinfo, as every program on the machine
// resolves names). A numeric host ("127.0.0.1", "::1", "[::1]") is answered
// without the resolver. done runs exactly once unless the lookup is
// cancelled, possibly before lookup_start returns (numeric hosts, errors),
// and always from the loop's thread, never with Lua code on the way: callers
// start lookups only from the loop. done owns ai (free it with
// evutil_freeaddrinfo); err is a getaddrinfo EAI_* code (0 on success). The
// Lookup is gone once done runs: do not cancel it then.
struct Lookup;
using LookupDone = void (*)(void* owner, int err, evutil_addrinfo* ai);
Lookup* lookup_start(Context* ctx, const char* host, int port, bool passive, LookupDone done,
                     void* owner) noexcept;
// done will not run. Never waits for the worker thread that may be resolving.
void lookup_cancel(Context* ctx, Lookup* lk) noexcept;

}  // namespace lnet
