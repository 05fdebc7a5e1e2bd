#include "proxy_conn.hh"

#include "address.hh"
#include "options.hh"

#include <event2/event.h>

#include <sys/socket.h>

#include <cerrno>
#include <new>

namespace lnet {

namespace {

void on_timeout(evutil_socket_t, short, void* arg) {
  auto* pc = static_cast<ProxyConn*>(arg);
  pc->finish(pc, ProxyResult::Timeout);  // may free pc: touch nothing after
}

// Peeks what arrived, feeds it, and takes off the socket only the bytes the
// parser used: all of them while the header is incomplete (so the socket is
// not readable again until more come), the header's alone once it is done.
void on_readable(evutil_socket_t fd, short, void* arg) {
  auto* pc = static_cast<ProxyConn*>(arg);
  char buf[kProxyV2Fixed + kProxyV2MaxLen];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK);
  if (n <= 0) {
    int err = n < 0 ? errno : 0;
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)) return;
    pc->finish(pc, ProxyResult::Closed);
    return;
  }
  size_t used = proxy_feed(&pc->parser, buf, static_cast<size_t>(n));
  if (pc->parser.status == ProxyStatus::Invalid) {
    pc->finish(pc, ProxyResult::Invalid);
    return;
  }
  // The bytes are in the socket's queue (we peeked them): this read takes
  // exactly them.
  if (used > 0 && ::recv(fd, buf, used, 0) != static_cast<ssize_t>(used)) {
    pc->finish(pc, ProxyResult::Closed);
    return;
  }
  if (pc->parser.status == ProxyStatus::Done) pc->finish(pc, ProxyResult::Done);
}

}  // namespace

ProxyConn* proxy_conn_start(Context* ctx, evutil_socket_t fd, ProxyMode mode, int64_t timeout_ms,
                            void (*finish)(ProxyConn*, ProxyResult), void* owner) noexcept {
  auto* pc = new (std::nothrow) ProxyConn();
  if (pc == nullptr) return nullptr;
  proxy_reset(&pc->parser, mode);
  pc->fd = fd;
  pc->finish = finish;
  pc->owner = owner;
  pc->rev = event_new(ctx->base, fd, EV_READ | EV_PERSIST, on_readable, pc);
  pc->timer = evtimer_new(ctx->base, on_timeout, pc);
  if (pc->rev == nullptr || pc->timer == nullptr) {
    proxy_conn_free(pc);
    return nullptr;
  }
  timeval tv = ms_timeval(timeout_ms);
  event_add(pc->rev, nullptr);
  evtimer_add(pc->timer, &tv);
  return pc;
}

void proxy_conn_stop(ProxyConn* pc) noexcept {
  if (pc->rev) event_free(pc->rev);
  pc->rev = nullptr;
  if (pc->timer) event_free(pc->timer);
  pc->timer = nullptr;
  pc->fd = -1;
}

void proxy_conn_free(ProxyConn* pc) noexcept {
  if (pc == nullptr) return;
  proxy_conn_stop(pc);
  delete pc;
}

int push_proxy_peer(lua_State* L, const ProxyConn* pc, evutil_socket_t fd) {
  const ProxyHeader* h = pc ? &pc->parser.header : nullptr;
  if (pc && pc->parser.status == ProxyStatus::Done && !h->local && (h->family == AF_INET || h->family == AF_INET6)) {
    char ip[kIpLen];
    int port = 0;
    sockaddr_ip(reinterpret_cast<const sockaddr*>(&h->src), ip, sizeof ip, &port);
    lua_pushstring(L, ip);
    lua_pushinteger(L, port);
    return 2;
  }
  return push_socket_address(L, fd, true);
}

void push_proxy_info(lua_State* L, const ProxyConn* pc) {
  const ProxyHeader* h = &pc->parser.header;
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, h->version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, h->local ? "LOCAL" : "PROXY");
  lua_setfield(L, -2, "command");
  const char* family = h->family == AF_INET    ? "TCP4"
                       : h->family == AF_INET6 ? "TCP6"
                       : h->family == AF_UNIX  ? "UNIX"
                                               : "UNKNOWN";
  if (h->family != AF_UNIX && h->socktype == SOCK_DGRAM)
    family = h->family == AF_INET ? "UDP4" : h->family == AF_INET6 ? "UDP6" : family;
  lua_pushstring(L, family);
  lua_setfield(L, -2, "family");
  if (h->family == AF_INET || h->family == AF_INET6) {
    char ip[kIpLen];
    int port = 0;
    sockaddr_ip(reinterpret_cast<const sockaddr*>(&h->src), ip, sizeof ip, &port);
    lua_pushstring(L, ip);
    lua_setfield(L, -2, "source_ip");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "source_port");
    sockaddr_ip(reinterpret_cast<const sockaddr*>(&h->dst), ip, sizeof ip, &port);
    lua_pushstring(L, ip);
    lua_setfield(L, -2, "dest_ip");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "dest_port");
  } else if (h->family == AF_UNIX) {
    lua_pushstring(L, reinterpret_cast<const sockaddr_un*>(&h->src)->sun_path);
    lua_setfield(L, -2, "source_path");
    lua_pushstring(L, reinterpret_cast<const sockaddr_un*>(&h->dst)->sun_path);
    lua_setfield(L, -2, "dest_path");
  }
  const struct {
    uint8_t type;
    const char* name;
  } kNamed[] = {{kPp2Alpn, "alpn"}, {kPp2Authority, "authority"}, {kPp2UniqueId, "unique_id"}};
  for (const auto& k : kNamed) {
    const unsigned char* v = nullptr;
    size_t n = 0;
    if (proxy_tlv(h, k.type, &v, &n)) {
      lua_pushlstring(L, reinterpret_cast<const char*>(v), n);
      lua_setfield(L, -2, k.name);
    }
  }
  lua_newtable(L);  // every TLV in order, raw
  size_t i = 0;
  lua_Integer n = 0;
  while (h->tlvs && i + 3 <= h->tlvs_len) {
    size_t vlen = (static_cast<size_t>(h->tlvs[i + 1]) << 8) | h->tlvs[i + 2];
    if (i + 3 + vlen > h->tlvs_len) break;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, h->tlvs[i]);
    lua_setfield(L, -2, "type");
    lua_pushlstring(L, reinterpret_cast<const char*>(h->tlvs + i + 3), vlen);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, ++n);
    i += 3 + vlen;
  }
  lua_setfield(L, -2, "tlvs");
}

bool proxy_peer_trusted(const ProxyListen* pl, const sockaddr* sa) noexcept {
  return !pl->trusted_set || proxy_trusted(sa, pl->trusted, pl->trusted_count);
}

}  // namespace lnet
