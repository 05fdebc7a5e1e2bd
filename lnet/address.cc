#include "address.hh"

#include "context.hh"
#include "unix.hh"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace lnet {

bool sockaddr_ip(const sockaddr* sa, char* ip, size_t iplen, int* port) noexcept {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, ip, static_cast<socklen_t>(iplen));
    *port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, static_cast<socklen_t>(iplen));
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

void format_endpoint(char* out, size_t n, const char* host, int port) noexcept {
  if (is_unix_host(host))  // "unix:/path", "unix:@name": no port
    std::snprintf(out, n, "%s", host);
  else if (std::strchr(host, ':'))
    std::snprintf(out, n, "[%s]:%d", host, port);
  else
    std::snprintf(out, n, "%s:%d", host, port);
}

int push_socket_address(lua_State* L, evutil_socket_t fd, bool peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[kIpLen];
  int port = 0;
  int rc = fd < 0 ? (errno = ENOTCONN, -1)
           : peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                  : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) {
    int e = errno;  // read before any Lua call
    lua_pushnil(L);
    lua_pushstring(L, e == ENOTCONN ? "not connected" : std::strerror(e));
    return 2;
  }
  if (ss.ss_family == AF_UNIX) {  // "unix:/path" alone: there is no port
    char path[kEndpointLen];
    unix_format(reinterpret_cast<sockaddr_un*>(&ss), len, path, sizeof path);
    lua_pushstring(L, path);
    return 1;
  }
  if (!sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), ip, sizeof ip, &port)) {
    lua_pushnil(L);
    lua_pushliteral(L, "unsupported address family");
    return 2;
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 2;
}

struct Lookup {
  LookupDone done = nullptr;
  void* owner = nullptr;  // null once cancelled
  evdns_getaddrinfo_request* req = nullptr;
  Lookup* next_orphan = nullptr;
  Lookup** pprev_orphan = nullptr;  // where this orphan is linked from
};

namespace {

void lookup_cb(int err, evutil_addrinfo* ai, void* arg) {
  Lookup* lk = static_cast<Lookup*>(arg);
  if (lk->owner == nullptr) {  // cancelled: nobody wants the answer
    if (ai) evutil_freeaddrinfo(ai);
    if (lk->pprev_orphan) *lk->pprev_orphan = lk->next_orphan;
    if (lk->next_orphan) lk->next_orphan->pprev_orphan = lk->pprev_orphan;
    delete lk;
    return;
  }
  LookupDone done = lk->done;
  void* owner = lk->owner;
  delete lk;
  done(owner, err, ai);
}

}  // namespace

Lookup* lookup_start(Context* ctx, const char* host, int port, bool passive, LookupDone done,
                     void* owner) noexcept {
  char service[8];
  std::snprintf(service, sizeof service, "%d", port);
  evutil_addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = EVUTIL_AI_NUMERICSERV | (passive ? EVUTIL_AI_PASSIVE : 0);
  // A numeric address needs no resolver (and no resolv.conf read).
  evutil_addrinfo numeric = hints;
  numeric.ai_flags |= EVUTIL_AI_NUMERICHOST;
  evutil_addrinfo* ai = nullptr;
  if (evutil_getaddrinfo(host, service, &numeric, &ai) == 0) {
    done(owner, 0, ai);
    return nullptr;
  }
  evdns_base* dns = context_dns(ctx);
  Lookup* lk = dns ? new (std::nothrow) Lookup : nullptr;
  if (lk == nullptr) {
    done(owner, EVUTIL_EAI_MEMORY, nullptr);
    return nullptr;
  }
  lk->done = done;
  lk->owner = owner;
  // Answers at once (and returns null) for numeric hosts and errors.
  evdns_getaddrinfo_request* req = evdns_getaddrinfo(dns, host, service, &hints, lookup_cb, lk);
  if (req == nullptr) return nullptr;
  lk->req = req;
  return lk;
}

void lookup_cancel(Context* ctx, Lookup* lk) noexcept {
  if (lk == nullptr) return;
  lk->owner = nullptr;
  // Link into the context's orphan list so a context torn down before the
  // cancellation is answered can still free it.
  lk->pprev_orphan = &ctx->orphans;
  lk->next_orphan = ctx->orphans;
  if (lk->next_orphan) lk->next_orphan->pprev_orphan = &lk->next_orphan;
  ctx->orphans = lk;
  evdns_getaddrinfo_cancel(lk->req);
}

void lookup_free_orphans(Context* ctx) noexcept {
  Lookup* lk = ctx->orphans;
  while (lk) {
    Lookup* next = lk->next_orphan;
    delete lk;
    lk = next;
  }
  ctx->orphans = nullptr;
}

}  // namespace lnet
