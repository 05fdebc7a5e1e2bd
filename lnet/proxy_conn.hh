// The PROXY protocol on a server connection: the parser, the header
// deadline, and what Lua asks about it afterwards (peer, proxy_info). The
// server keeps one per connection accepted with the proxy_protocol option.
#pragma once

#include "context.hh"
#include "options.hh"
#include "proxy_protocol.hh"

#include <event2/util.h>

struct event;

namespace lnet {

struct ProxyConn {
  ProxyParser parser;
  event* timer = nullptr;  // the header deadline (proxy_header_timeout)
  bool done = false;       // a valid header arrived: the connection is public
};

// A new one for mode, its deadline armed: timeout(arg) runs from the loop
// if the header is not complete within ms. Null when out of memory.
ProxyConn* proxy_conn_new(Context* ctx, ProxyMode mode, int64_t ms, void (*timeout)(void* arg),
                          void* arg) noexcept;
void proxy_conn_free(ProxyConn* pc) noexcept;

// Feeds bytes; returns how many were header. Once the parser is Done the
// deadline is cancelled and pc->done set.
size_t proxy_conn_feed(ProxyConn* pc, const char* data, size_t len) noexcept;

// peer(): the client from the header (a PROXY command over TCP4/TCP6),
// otherwise the socket's real peer. Pushes ip, port or nil, message.
int push_proxy_peer(lua_State* L, const ProxyConn* pc, evutil_socket_t fd);

// proxy_info(): {version, command, family, source_ip, source_port, dest_ip,
// dest_port, alpn, authority, unique_id, tlvs = {{type =, value =}, ...}}.
void push_proxy_info(lua_State* L, const ProxyConn* pc);

// Whether sa may send a header under o (proxy_trusted).
bool proxy_source_trusted(const Options* o, const sockaddr* sa) noexcept;

}  // namespace lnet
