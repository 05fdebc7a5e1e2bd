// The PROXY protocol on a server connection. The header is read before the
// connection exists (before any TLS, before 'connected'), straight from the
// accepted socket: peeked, fed to the parser, and only the header's bytes
// taken off the socket, so that the stream that follows stays in the kernel
// for the connection. Afterwards the parsed header answers peer() and
// proxy_info().
#pragma once

#include "context.hh"
#include "options.hh"
#include "proxy_protocol.hh"

#include <event2/util.h>

struct event;

namespace lnet {

enum class ProxyResult : uint8_t {
  Done,     // a complete, valid header: make the connection
  Invalid,  // not a valid header (parser.error says why)
  Timeout,  // not complete within the header timeout
  Closed,   // the peer closed or reset before the header was complete
};

struct ProxyConn {
  ProxyParser parser;
  // While the header is read: the accepted socket (not owned), its read
  // event and the deadline, and who to tell.
  evutil_socket_t fd = -1;
  event* rev = nullptr;
  event* timer = nullptr;
  void (*finish)(ProxyConn* pc, ProxyResult r) = nullptr;  // from the loop; may free pc
  void* owner = nullptr;
  ProxyConn* prev = nullptr;  // the owner's list of headers being read
  ProxyConn* next = nullptr;
};

// Starts reading the header on fd: finish runs exactly once, from the
// loop, unless proxy_conn_free comes first. Null when out of memory.
ProxyConn* proxy_conn_start(Context* ctx, evutil_socket_t fd, ProxyMode mode, int64_t timeout_ms,
                            void (*finish)(ProxyConn*, ProxyResult), void* owner) noexcept;
// Frees the events and the parser (never the socket).
void proxy_conn_free(ProxyConn* pc) noexcept;
// Stops reading (the header is complete): frees the events, keeps the header.
void proxy_conn_stop(ProxyConn* pc) noexcept;

// peer(): the client from the header (a PROXY command over TCP4/TCP6),
// otherwise the socket's real peer. Pushes ip, port or nil, message.
int push_proxy_peer(lua_State* L, const ProxyConn* pc, evutil_socket_t fd);

// proxy_info(): {version, command, family, source_ip, source_port, dest_ip,
// dest_port, alpn, authority, unique_id, tlvs = {{type =, value =}, ...}}.
void push_proxy_info(lua_State* L, const ProxyConn* pc);

// Whether a peer at sa (the address accept() gave: a socket reset since
// has no peer name left, yet its header may be complete in the queue, as
// with HAProxy's v1 health checks) may send a header under pl
// (proxy_trusted).
bool proxy_peer_trusted(const ProxyListen* pl, const sockaddr* sa) noexcept;

}  // namespace lnet
