#include "proxy_conn.hh"

#include "address.hh"
#include "options.hh"

#include <event2/event.h>

#include <new>

namespace lnet {

namespace {

struct Deadline {
  void (*timeout)(void*) = nullptr;
  void* arg = nullptr;
};

struct ProxyConnFull : ProxyConn {
  Deadline deadline;
};

void on_deadline(evutil_socket_t, short, void* arg) {
  auto* pc = static_cast<ProxyConnFull*>(arg);
  pc->deadline.timeout(pc->deadline.arg);  // may free pc: touch nothing after
}

}  // namespace

ProxyConn* proxy_conn_new(Context* ctx, ProxyMode mode, int64_t ms, void (*timeout)(void*),
                          void* arg) noexcept {
  auto* pc = new (std::nothrow) ProxyConnFull();
  if (pc == nullptr) return nullptr;
  proxy_reset(&pc->parser, mode);
  pc->deadline = Deadline{timeout, arg};
  pc->timer = evtimer_new(ctx->base, on_deadline, pc);
  if (pc->timer == nullptr) {
    delete pc;
    return nullptr;
  }
  timeval tv = ms_timeval(ms);
  evtimer_add(pc->timer, &tv);
  return pc;
}

void proxy_conn_free(ProxyConn* pc) noexcept {
  if (pc == nullptr) return;
  if (pc->timer) event_free(pc->timer);
  delete static_cast<ProxyConnFull*>(pc);
}

size_t proxy_conn_feed(ProxyConn* pc, const char* data, size_t len) noexcept {
  size_t n = proxy_feed(&pc->parser, data, len);
  if (pc->parser.status != ProxyStatus::NeedMore && pc->timer) {
    event_free(pc->timer);
    pc->timer = nullptr;
  }
  pc->done = pc->parser.status == ProxyStatus::Done;
  return n;
}

int push_proxy_peer(lua_State* L, const ProxyConn* pc, evutil_socket_t fd) {
  const ProxyHeader* h = pc ? &pc->parser.header : nullptr;
  if (pc && pc->done && !h->local && (h->family == AF_INET || h->family == AF_INET6)) {
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

bool proxy_source_trusted(const Options* o, const sockaddr* sa) noexcept {
  if (!o->proxy_trusted_set) return true;
  return proxy_trusted(sa, o->proxy_trusted, o->proxy_trusted_count);
}

}  // namespace lnet
