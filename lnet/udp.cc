// net.UDPSocket: datagrams. A socket is made on bind(), connect() or the
// first send(); it reads (and stays alive without a Lua reference) while it
// has callbacks, or while a name lookup or a deferred error is pending.
// send() never queues without bound: a datagram goes to the kernel at once
// (true, or nil, "would block" / "message too long" / ..., code); only a
// datagram whose destination is a name waits for its lookup, and at most
// kMaxPending do.
#include "address.hh"
#include "context.hh"
#include "errors.hh"
#include "objects.hh"
#include "options.hh"

#include <event2/event.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>


namespace lnet {

namespace {

const char kTypeName[] = "net.UDPSocket";

enum Slot { kMessage = 1, kError, kSlots = kError };
const char* const kCallbackNames[] = {"message", "error", nullptr};

enum Work : unsigned { kBindLookup = 1, kConnectLookup = 2, kSendLookups = 4, kDeferredError = 8 };

// A flood on one socket must not starve the loop: at most this many
// datagrams per readiness round, then the other events get their turn.
constexpr int kReadsPerRound = 64;
// Datagrams waiting for their destination's lookup (or a connect's).
constexpr size_t kMaxPending = 64;
constexpr int kMaxDatagram = 65535;
constexpr size_t kMessageLen = kEndpointLen + 160;

struct UdpOptions {
  bool reuseaddr = false;
  bool reuseport = false;
  int ipv6only = -1;     // -1: the system's default
  int recv_buffer = 0;   // SO_RCVBUF; 0: the system's default
  int send_buffer = 0;   // SO_SNDBUF
  int max_datagram = kMaxDatagram;
  // Also set{} options; -1 / "": leave the socket as it is.
  int broadcast = -1;
  int ttl = -1;
  int multicast_ttl = -1;
  int multicast_loop = -1;
  char multicast_interface[kIpLen] = "";
};

struct Udp;

// A datagram waiting for a name lookup (or for connect() to resolve).
struct Pending {
  Pending* next = nullptr;
  Udp* owner = nullptr;
  Lookup* lookup = nullptr;
  bool started = false;
  bool to_peer = false;  // send(data) while connect() resolves
  int port = 0;
  size_t len = 0;
  char host[256] = "";
  char* data() noexcept { return reinterpret_cast<char*>(this + 1); }
};

struct Udp {
  Context* ctx = nullptr;
  Deferred defer;
  unsigned work = 0;
  UdpOptions opt;  // from the constructor
  UdpOptions cur;  // in force
  evutil_socket_t fd = -1;
  int family = AF_UNSPEC;
  event* rev = nullptr;
  char* buf = nullptr;
  size_t buf_size = 0;
  bool receiving = false;  // has callbacks: reads while open
  bool paused = false;
  bool reading = false;  // rev is added
  bool connected = false;
  unsigned gen = 0;  // counts close_socket(): a callback may close or rebind
  char bind_host[256] = "";
  int bind_port = 0;
  Lookup* bind_lookup = nullptr;
  char peer_host[256] = "";
  int peer_port = 0;
  Lookup* peer_lookup = nullptr;
  Pending* pending = nullptr;
  size_t npending = 0;
  uint64_t datagrams_in = 0, datagrams_out = 0, bytes_in = 0, bytes_out = 0;
  uint64_t truncated = 0, would_block = 0, errors = 0;
  char msg[kMessageLen] = "";  // the deferred error (others are formatted where they fire)
  const char* msg_code = "";
};

// --- callbacks --------------------------------------------------------------

struct MessageCall {
  Udp* u;
  const char* data;
  size_t len;
  const char* ip;
  int port;
  bool truncated;
};

int message_body(lua_State* L) {
  auto* m = static_cast<MessageCall*>(lua_touserdata(L, 1));
  push_anchored(L, m->u);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, kMessage) != LUA_TFUNCTION)
    return 0;
  lua_pushlstring(L, m->data, m->len);
  lua_pushstring(L, m->ip);
  lua_pushinteger(L, m->port);
  lua_pushboolean(L, m->truncated);
  lua_call(L, 4, 0);
  return 0;
}

struct ErrorCall {
  Udp* u;
  const char* text;
  const char* code;
};

int error_body(lua_State* L) {
  auto* e = static_cast<ErrorCall*>(lua_touserdata(L, 1));
  push_anchored(L, e->u);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, kError) != LUA_TFUNCTION) {
    report_unhandled(e->text, std::strlen(e->text));
    return 0;
  }
  lua_pushstring(L, e->text);
  lua_pushstring(L, e->code);
  lua_call(L, 2, 0);
  return 0;
}

// From the loop only (never inside a Lua call on this socket).
void fire_error(Udp* u, const char* text, const char* code) noexcept {
  u->errors++;
  ErrorCall e{u, text, code};
  dispatch(u->ctx, error_body, &e);
}

// Unanchors the socket once nothing keeps it active.
void maybe_release(lua_State* L, Udp* u) noexcept {
  bool active = (u->receiving && u->fd >= 0) || u->bind_lookup || u->peer_lookup ||
                u->npending > 0 || u->defer.queued();
  if (!active) unanchor(L, u->ctx, u);
}

// --- the socket ---------------------------------------------------------------

void on_read(evutil_socket_t, short, void* arg);

void start_reading(Udp* u) noexcept {
  if (u->fd < 0 || !u->receiving || u->paused || u->reading) return;
  if (u->rev == nullptr)
    u->rev = event_new(u->ctx->base, u->fd, EV_READ | EV_PERSIST, on_read, u);
  else  // not pending: the event may be retargeted, even from its own callback
    event_assign(u->rev, u->ctx->base, u->fd, EV_READ | EV_PERSIST, on_read, u);
  if (u->rev && event_add(u->rev, nullptr) == 0) u->reading = true;
}

void stop_reading(Udp* u) noexcept {
  if (u->reading) event_del(u->rev);
  u->reading = false;
}

void close_socket(Udp* u) noexcept {
  stop_reading(u);
  if (u->fd >= 0) ::close(u->fd);
  u->fd = -1;
  u->family = AF_UNSPEC;
  u->connected = false;
  u->gen++;
}

int set_int(int fd, int level, int name, int value) noexcept {
  return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
}

// Applies the set{} options of o to the open socket: 0 or an errno.
int apply_settable(Udp* u, const UdpOptions& o) noexcept {
  int fd = u->fd;
  bool v6 = u->family == AF_INET6;
  int e = 0;
  if (o.broadcast >= 0 && (e = set_int(fd, SOL_SOCKET, SO_BROADCAST, o.broadcast))) return e;
  if (o.ttl >= 0 &&
      (e = v6 ? set_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, o.ttl) : set_int(fd, IPPROTO_IP, IP_TTL, o.ttl)))
    return e;
  if (o.multicast_ttl >= 0 &&
      (e = v6 ? set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, o.multicast_ttl)
              : set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, o.multicast_ttl)))
    return e;
  if (o.multicast_loop >= 0 &&
      (e = v6 ? set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, o.multicast_loop)
              : set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, o.multicast_loop)))
    return e;
  if (o.multicast_interface[0]) {
    if (v6) {
      unsigned idx = if_nametoindex(o.multicast_interface);
      if (idx == 0) return ENODEV;
      if ((e = set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(idx)))) return e;
    } else {
      in_addr a;
      if (inet_pton(AF_INET, o.multicast_interface, &a) != 1) return EINVAL;
      if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) != 0) return errno;
    }
  }
  return 0;
}

// Makes the socket for family with the options in force: 0 or an errno.
int open_socket(Udp* u, int family) noexcept {
  size_t want = static_cast<size_t>(u->cur.max_datagram);
  if (u->buf_size < want) {
    char* b = static_cast<char*>(std::realloc(u->buf, want));
    if (b == nullptr) return ENOMEM;
    u->buf = b;
    u->buf_size = want;
  }
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const UdpOptions& o = u->cur;
  int e = 0;
  if (o.reuseaddr) e = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!e && o.reuseport) e = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (!e && family == AF_INET6 && o.ipv6only >= 0)
    e = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, o.ipv6only);
  if (!e && o.recv_buffer > 0) e = set_int(fd, SOL_SOCKET, SO_RCVBUF, o.recv_buffer);
  if (!e && o.send_buffer > 0) e = set_int(fd, SOL_SOCKET, SO_SNDBUF, o.send_buffer);
  u->fd = fd;
  u->family = family;
  if (!e) e = apply_settable(u, o);
  if (e) close_socket(u);
  return e;
}

// A v4 destination for a dual-stack v6 socket becomes ::ffff:a.b.c.d.
const sockaddr* adapt(const Udp* u, const sockaddr* sa, socklen_t* len, sockaddr_in6* tmp) noexcept {
  if (u->family != AF_INET6 || sa->sa_family != AF_INET) return sa;
  auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  std::memset(tmp, 0, sizeof *tmp);
  tmp->sin6_family = AF_INET6;
  tmp->sin6_port = in->sin_port;
  tmp->sin6_addr.s6_addr[10] = 0xff;
  tmp->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&tmp->sin6_addr.s6_addr[12], &in->sin_addr, 4);
  *len = sizeof *tmp;
  return reinterpret_cast<const sockaddr*>(tmp);
}

// Sends one datagram to sa (null: the connected peer): 0 or an errno.
int send_datagram(Udp* u, const char* data, size_t len, const sockaddr* sa, socklen_t salen) noexcept {
  if (u->fd < 0) {
    if (sa == nullptr) return ENOTCONN;
    if (int e = open_socket(u, sa->sa_family)) return e;
  }
  sockaddr_in6 mapped;
  if (sa) sa = adapt(u, sa, &salen, &mapped);
  ssize_t n;
  do {
    n = sa ? ::sendto(u->fd, data, len, 0, sa, salen) : ::send(u->fd, data, len, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) u->would_block++;
    return e == EWOULDBLOCK ? EAGAIN : e;
  }
  u->datagrams_out++;
  u->bytes_out += len;
  return 0;
}

const char* send_error_text(int e) noexcept {
  if (e == EAGAIN) return "would block";
  if (e == EMSGSIZE) return "message too long";
  if (e == ENOTCONN) return "not connected";
  return evutil_socket_error_to_string(e);
}

// A numeric host (IPv4, IPv6 without a scope) straight into ss; false for
// names and scoped addresses, which go through the lookup.
bool parse_numeric(const char* host, int port, sockaddr_storage* ss, socklen_t* len) noexcept {
  std::memset(ss, 0, sizeof *ss);
  auto* in = reinterpret_cast<sockaddr_in*>(ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in;
    return true;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *in6;
    return true;
  }
  return false;
}

// The first address of list usable by the socket (any when it is not open).
const evutil_addrinfo* pick(const Udp* u, const evutil_addrinfo* list) noexcept {
  for (const evutil_addrinfo* ai = list; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (u->family == AF_UNSPEC || ai->ai_family == u->family ||
        (u->family == AF_INET6 && ai->ai_family == AF_INET))
      return ai;
  }
  return nullptr;
}

// A failure to report from the loop: message and code kept until then.
void defer_error(Udp* u, const char* what, const char* host, int port, const char* why,
                 const char* code) noexcept {
  char endpoint[kEndpointLen];
  format_endpoint(endpoint, sizeof endpoint, host, port);
  std::snprintf(u->msg, sizeof u->msg, "%s %s failed: %s", what, endpoint, why);
  u->msg_code = code;
  u->work |= kDeferredError;
  defer(u->ctx, &u->defer);
}

// bind() once the address is known: 0 or an errno.
int bind_to(Udp* u, const sockaddr* sa, socklen_t len) noexcept {
  if (int e = open_socket(u, sa->sa_family)) return e;
  if (::bind(u->fd, sa, len) != 0) {
    int e = errno;
    close_socket(u);
    return e;
  }
  start_reading(u);
  return 0;
}

// connect() once the address is known: 0 or an errno.
int connect_to(Udp* u, const sockaddr* sa, socklen_t len) noexcept {
  if (u->fd < 0) {
    if (int e = open_socket(u, sa->sa_family)) return e;
  }
  sockaddr_in6 mapped;
  sa = adapt(u, sa, &len, &mapped);
  if (::connect(u->fd, sa, len) != 0) return errno;
  u->connected = true;
  start_reading(u);
  return 0;
}

void unlink_pending(Udp* u, Pending* p) noexcept {
  for (Pending** pp = &u->pending; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      u->npending--;
      break;
    }
  }
  p->~Pending();
  std::free(p);
}

void drop_pending(Udp* u) noexcept {
  while (u->pending) {
    Pending* p = u->pending;
    if (p->lookup) lookup_cancel(u->ctx, p->lookup);
    p->lookup = nullptr;
    unlink_pending(u, p);
  }
}

// Sends what waited for connect(); from the loop.
void flush_to_peer(Udp* u) noexcept {
  Pending* p = u->pending;
  while (p) {
    Pending* next = p->next;
    if (p->to_peer) {
      int e = send_datagram(u, p->data(), p->len, nullptr, 0);
      unlink_pending(u, p);
      if (e) {
        char endpoint[kEndpointLen];
        char text[kMessageLen];
        format_endpoint(endpoint, sizeof endpoint, u->peer_host, u->peer_port);
        std::snprintf(text, sizeof text, "send to %s failed: %s", endpoint, send_error_text(e));
        unsigned gen = u->gen;
        fire_error(u, text, errno_code(e));
        if (u->gen != gen || !u->connected) return;  // closed or reconnected inside
      }
    }
    p = next;
  }
}

void on_send_lookup(void* owner, int err, evutil_addrinfo* ai) {
  Pending* p = static_cast<Pending*>(owner);
  Udp* u = p->owner;
  p->lookup = nullptr;
  int e = 0;
  const char* why = nullptr;
  const char* code = nullptr;
  if (err != 0) {
    why = evutil_gai_strerror(err);
    code = eai_code(err);
  } else if (const evutil_addrinfo* a = pick(u, ai)) {
    e = send_datagram(u, p->data(), p->len, a->ai_addr, static_cast<socklen_t>(a->ai_addrlen));
  } else {
    e = EAFNOSUPPORT;
  }
  if (ai) evutil_freeaddrinfo(ai);
  if (e) {
    why = send_error_text(e);
    code = errno_code(e);
  }
  char endpoint[kEndpointLen];
  char text[kMessageLen];
  if (why) {
    format_endpoint(endpoint, sizeof endpoint, p->host, p->port);
    std::snprintf(text, sizeof text, "send to %s failed: %s", endpoint, why);
  }
  unlink_pending(u, p);  // before any callback, which may close the socket
  if (why) fire_error(u, text, code);
  maybe_release(u->ctx->L, u);
}

void on_bind_lookup(void* owner, int err, evutil_addrinfo* ai) {
  Udp* u = static_cast<Udp*>(owner);
  u->bind_lookup = nullptr;
  int e = EADDRNOTAVAIL;
  if (err == 0) {
    for (evutil_addrinfo* a = ai; a; a = a->ai_next) {
      if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
      e = bind_to(u, a->ai_addr, static_cast<socklen_t>(a->ai_addrlen));
      if (e == 0) break;
    }
  }
  if (ai) evutil_freeaddrinfo(ai);
  if (err != 0 || e != 0) {
    char endpoint[kEndpointLen];
    char text[kMessageLen];
    format_endpoint(endpoint, sizeof endpoint, u->bind_host, u->bind_port);
    std::snprintf(text, sizeof text, "bind to %s failed: %s", endpoint,
                  err ? evutil_gai_strerror(err) : evutil_socket_error_to_string(e));
    fire_error(u, text, err ? eai_code(err) : errno_code(e));
  }
  maybe_release(u->ctx->L, u);
}

void on_connect_lookup(void* owner, int err, evutil_addrinfo* ai) {
  Udp* u = static_cast<Udp*>(owner);
  u->peer_lookup = nullptr;
  int e = 0;
  if (err == 0) {
    const evutil_addrinfo* a = pick(u, ai);
    e = a ? connect_to(u, a->ai_addr, static_cast<socklen_t>(a->ai_addrlen)) : EAFNOSUPPORT;
  }
  if (ai) evutil_freeaddrinfo(ai);
  if (err != 0 || e != 0) {
    // What waited for this connect goes with it.
    for (Pending* p = u->pending; p;) {
      Pending* next = p->next;
      if (p->to_peer) unlink_pending(u, p);
      p = next;
    }
    char endpoint[kEndpointLen];
    char text[kMessageLen];
    format_endpoint(endpoint, sizeof endpoint, u->peer_host, u->peer_port);
    std::snprintf(text, sizeof text, "connect to %s failed: %s", endpoint,
                  err ? evutil_gai_strerror(err) : evutil_socket_error_to_string(e));
    fire_error(u, text, err ? eai_code(err) : errno_code(e));
  } else {
    flush_to_peer(u);
  }
  maybe_release(u->ctx->L, u);
}

void run_deferred(Deferred* d) {
  Udp* u = static_cast<Udp*>(d->owner);
  Context* ctx = u->ctx;
  unsigned w = u->work;
  u->work = 0;
  if (w & kDeferredError) {
    char text[sizeof u->msg];
    std::memcpy(text, u->msg, sizeof text);
    unsigned gen = u->gen;
    fire_error(u, text, u->msg_code);
    if (u->gen != gen) w = 0;  // closed inside: its work went with it
  }
  // Lookups start here, from the loop: their answers may come at once.
  if ((w & kBindLookup) && u->fd < 0 && !u->bind_lookup) {
    Lookup* lk = lookup_start(ctx, u->bind_host, u->bind_port, true, on_bind_lookup, u);
    if (lk) u->bind_lookup = lk;
  }
  if (w & kConnectLookup) {
    Lookup* lk = lookup_start(ctx, u->peer_host, u->peer_port, false, on_connect_lookup, u);
    if (lk) u->peer_lookup = lk;
  }
  if (w & kSendLookups) {
    for (;;) {
      Pending* p = u->pending;
      while (p && (p->started || p->to_peer)) p = p->next;
      if (p == nullptr) break;
      p->started = true;
      Lookup* lk = lookup_start(ctx, p->host, p->port, false, on_send_lookup, p);
      if (lk) p->lookup = lk;  // not answered yet: p is still there
    }
  }
  maybe_release(ctx->L, u);
}

void on_read(evutil_socket_t, short, void* arg) {
  Udp* u = static_cast<Udp*>(arg);
  Context* ctx = u->ctx;
  evutil_socket_t fd = u->fd;
  unsigned gen = u->gen;
  size_t max = static_cast<size_t>(u->cur.max_datagram);
  for (int i = 0; i < kReadsPerRound; i++) {
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    // MSG_TRUNC: the datagram's real length, even when it did not fit.
    ssize_t n = ::recvfrom(fd, u->buf, max, MSG_TRUNC, reinterpret_cast<sockaddr*>(&ss), &sl);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      if (e == EINTR) continue;
      // An ICMP error for an earlier datagram (connected sockets): the
      // socket stays usable.
      char endpoint[kEndpointLen];
      char text[kMessageLen];
      if (u->connected)
        format_endpoint(endpoint, sizeof endpoint, u->peer_host, u->peer_port);
      std::snprintf(text, sizeof text, "%s %s: %s",
                    u->connected ? "datagram to" : "receive on",
                    u->connected ? endpoint : (u->bind_host[0] ? u->bind_host : "socket"),
                    evutil_socket_error_to_string(e));
      fire_error(u, text, errno_code(e));
    } else {
      bool cut = static_cast<size_t>(n) > max;
      MessageCall m{u, u->buf, cut ? max : static_cast<size_t>(n), "", 0, cut};
      char ip[kIpLen] = "";
      if (sl > 0 && sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), ip, sizeof ip, &m.port)) m.ip = ip;
      u->datagrams_in++;
      u->bytes_in += m.len;
      if (cut) u->truncated++;
      dispatch(ctx, message_body, &m);
    }
    // The callback may have closed, paused or rebound the socket.
    if (u->gen != gen || !u->reading || halted(ctx)) return;
  }
}

// --- options -------------------------------------------------------------------

bool opt_bool(lua_State* L, int arg, const char* key) {
  if (!lua_isboolean(L, -1))
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be a boolean, got %s", key,
                                          luaL_typename(L, -1)));
  return lua_toboolean(L, -1);
}

int opt_int(lua_State* L, int arg, const char* key, lua_Integer lo, lua_Integer hi) {
  int isnum = 0;
  // lua_tointegerx alone would take the string "80" as well.
  lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
  if (!isnum || v < lo || v > hi)
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be an integer from %I to %I", key, lo, hi));
  return static_cast<int>(v);
}

// Reads the options table at idx into o; settable_only: only the set{} keys.
void parse_udp_options(lua_State* L, int idx, int arg, UdpOptions* o, bool settable_only) {
  if (lua_isnoneornil(L, idx) && !settable_only) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, arg, "option names must be strings");
    const char* k = lua_tostring(L, -2);
    if (!std::strcmp(k, "broadcast")) {
      o->broadcast = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "ttl")) {
      o->ttl = opt_int(L, arg, k, 1, 255);
    } else if (!std::strcmp(k, "multicast_ttl")) {
      o->multicast_ttl = opt_int(L, arg, k, 0, 255);
    } else if (!std::strcmp(k, "multicast_loop")) {
      o->multicast_loop = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "multicast_interface")) {
      size_t len = 0;
      const char* s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
      if (s == nullptr || len == 0 || len >= sizeof o->multicast_interface || std::strlen(s) != len)
        luaL_argerror(L, arg,
                      "option 'multicast_interface' must be an IPv4 address or an interface name");
      std::memcpy(o->multicast_interface, s, len + 1);
    } else if (settable_only) {
      luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' cannot be set on an open socket", k));
    } else if (!std::strcmp(k, "reuseaddr")) {
      o->reuseaddr = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "reuseport")) {
      o->reuseport = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "ipv6only")) {
      o->ipv6only = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "recv_buffer_size")) {
      o->recv_buffer = opt_int(L, arg, k, 1, 1 << 30);
    } else if (!std::strcmp(k, "send_buffer_size")) {
      o->send_buffer = opt_int(L, arg, k, 1, 1 << 30);
    } else if (!std::strcmp(k, "max_datagram")) {
      o->max_datagram = opt_int(L, arg, k, 1, kMaxDatagram);
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
    }
    lua_pop(L, 1);
  }
}

// --- Lua side ------------------------------------------------------------------

Udp* check_udp(lua_State* L) { return static_cast<Udp*>(luaL_checkudata(L, 1, kTypeName)); }

int udp_new(lua_State* L) {
  Context* ctx = upvalue_context(L);
  UdpOptions opt;
  parse_udp_options(L, 1, 1, &opt, false);
  Udp* u = new (lua_newuserdatauv(L, sizeof(Udp), kSlots)) Udp();
  luaL_setmetatable(L, kTypeName);
  u->ctx = ctx;
  u->defer.run = run_deferred;
  u->defer.owner = u;
  u->opt = opt;
  u->cur = opt;
  return 1;
}

// Pushes true, or nil, message, code for errno e.
int push_result(lua_State* L, int e) {
  if (e == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_pushfail(L);
  lua_pushstring(L, send_error_text(e));
  lua_pushstring(L, errno_code(e));
  return 3;
}

int udp_bind(lua_State* L) {
  Udp* u = check_udp(L);
  size_t hlen = 0;
  const char* host = check_host(L, 2, &hlen);
  int port = check_port(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  UdpOptions cur = u->opt;
  parse_udp_options(L, 5, 5, &cur, false);
  if (u->fd >= 0 || u->bind_lookup || u->peer_lookup || (u->work & (kBindLookup | kConnectLookup)))
    return luaL_error(L, "bind: socket is already open (close it first)");
  set_callbacks(L, 1, 4, kCallbackNames);
  anchor(L, u->ctx, u, 1);  // the last call that may raise
  u->cur = cur;
  u->receiving = true;
  u->paused = false;
  std::memcpy(u->bind_host, host, hlen + 1);
  u->bind_port = port;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (parse_numeric(host, port, &ss, &len)) {
    // Bound at once, so sockname() works as soon as bind() has returned.
    if (int e = bind_to(u, reinterpret_cast<sockaddr*>(&ss), len))
      defer_error(u, "bind to", host, port, evutil_socket_error_to_string(e), errno_code(e));
  } else {
    u->work |= kBindLookup;
    defer(u->ctx, &u->defer);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int udp_connect(lua_State* L) {
  Udp* u = check_udp(L);
  size_t hlen = 0;
  const char* host = check_host(L, 2, &hlen);
  int port = check_port(L, 3);
  bool with_callbacks = !lua_isnoneornil(L, 4);
  if (with_callbacks) set_callbacks(L, 1, 4, kCallbackNames);
  anchor(L, u->ctx, u, 1);  // the last call that may raise
  if (with_callbacks) u->receiving = true;
  if (u->peer_lookup) lookup_cancel(u->ctx, u->peer_lookup);
  u->peer_lookup = nullptr;
  std::memcpy(u->peer_host, host, hlen + 1);
  u->peer_port = port;
  sockaddr_storage ss;
  socklen_t len = 0;
  if (parse_numeric(host, port, &ss, &len)) {
    if (int e = connect_to(u, reinterpret_cast<sockaddr*>(&ss), len))
      defer_error(u, "connect to", host, port, evutil_socket_error_to_string(e), errno_code(e));
  } else {
    u->connected = false;
    u->work |= kConnectLookup;
    defer(u->ctx, &u->defer);
  }
  maybe_release(L, u);
  lua_pushboolean(L, 1);
  return 1;
}

// Queues a datagram for a lookup (or connect); nil, "would block" when full.
int queue_pending(lua_State* L, Udp* u, const char* data, size_t len, const char* host, size_t hlen,
                  int port) {
  if (u->npending >= kMaxPending) {
    u->would_block++;
    return push_result(L, EAGAIN);
  }
  if (len > static_cast<size_t>(kMaxDatagram)) return push_result(L, EMSGSIZE);
  anchor(L, u->ctx, u, 1);  // may raise: nothing allocated yet
  void* mem = std::malloc(sizeof(Pending) + (len ? len : 1));
  if (mem == nullptr) {
    maybe_release(L, u);
    return push_result(L, ENOMEM);
  }
  Pending* p = new (mem) Pending();
  p->owner = u;
  p->len = len;
  std::memcpy(p->data(), data, len);
  p->port = port;
  p->to_peer = host == nullptr;
  if (host) std::memcpy(p->host, host, hlen + 1);
  Pending** tail = &u->pending;
  while (*tail) tail = &(*tail)->next;
  *tail = p;
  u->npending++;
  if (!p->to_peer) {
    u->work |= kSendLookups;
    defer(u->ctx, &u->defer);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int udp_send(lua_State* L) {
  Udp* u = check_udp(L);
  size_t len = 0;
  const char* data = luaL_checklstring(L, 2, &len);
  if (lua_isnoneornil(L, 3)) {
    if (u->connected) return push_result(L, send_datagram(u, data, len, nullptr, 0));
    if (u->peer_lookup || (u->work & kConnectLookup))
      return queue_pending(L, u, data, len, nullptr, 0, 0);
    return luaL_argerror(L, 3, "host expected (the socket is not connected)");
  }
  size_t hlen = 0;
  const char* host = check_host(L, 3, &hlen);
  int port = check_port(L, 4);
  sockaddr_storage ss;
  socklen_t salen = 0;
  if (parse_numeric(host, port, &ss, &salen))
    return push_result(L, send_datagram(u, data, len, reinterpret_cast<sockaddr*>(&ss), salen));
  return queue_pending(L, u, data, len, host, hlen, port);
}

// Parses an IP literal of argument arg; raises when it is not one.
int check_ip(lua_State* L, int arg, sockaddr_storage* ss, socklen_t* len) {
  const char* s = luaL_checkstring(L, arg);
  if (!parse_numeric(s, 0, ss, len)) luaL_argerror(L, arg, "IP address expected");
  return ss->ss_family;
}

// join / leave (group[, interface[, source]]).
int membership(lua_State* L, bool join) {
  Udp* u = check_udp(L);
  sockaddr_storage group, source;
  socklen_t glen = 0, slen = 0;
  int family = check_ip(L, 2, &group, &glen);
  const char* iface = luaL_optstring(L, 3, nullptr);
  bool has_source = !lua_isnoneornil(L, 4);
  if (has_source && check_ip(L, 4, &source, &slen) != family)
    luaL_argerror(L, 4, "source and group must be of one family");
  in_addr iface4{};
  unsigned ifindex = 0;
  if (iface && family == AF_INET && inet_pton(AF_INET, iface, &iface4) != 1)
    luaL_argerror(L, 3, "interface must be a local IPv4 address for an IPv4 group");
  if (u->fd < 0) return push_result(L, ENOTCONN);
  if (iface && family == AF_INET6 && (ifindex = if_nametoindex(iface)) == 0)
    return push_result(L, ENODEV);
  int rc;
  if (family == AF_INET && !has_source) {
    ip_mreqn m{};
    m.imr_multiaddr = reinterpret_cast<sockaddr_in*>(&group)->sin_addr;
    m.imr_address = iface4;
    rc = setsockopt(u->fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof m);
  } else if (family == AF_INET) {
    ip_mreq_source m{};
    m.imr_multiaddr = reinterpret_cast<sockaddr_in*>(&group)->sin_addr;
    m.imr_interface = iface4;
    m.imr_sourceaddr = reinterpret_cast<sockaddr_in*>(&source)->sin_addr;
    rc = setsockopt(u->fd, IPPROTO_IP, join ? IP_ADD_SOURCE_MEMBERSHIP : IP_DROP_SOURCE_MEMBERSHIP,
                    &m, sizeof m);
  } else if (!has_source) {
    ipv6_mreq m{};
    m.ipv6mr_multiaddr = reinterpret_cast<sockaddr_in6*>(&group)->sin6_addr;
    m.ipv6mr_interface = ifindex;
    rc = setsockopt(u->fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m, sizeof m);
  } else {
    group_source_req m{};
    m.gsr_interface = ifindex;
    std::memcpy(&m.gsr_group, &group, glen);
    std::memcpy(&m.gsr_source, &source, slen);
    rc = setsockopt(u->fd, IPPROTO_IPV6, join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP,
                    &m, sizeof m);
  }
  return push_result(L, rc == 0 ? 0 : errno);
}

int udp_join(lua_State* L) { return membership(L, true); }
int udp_leave(lua_State* L) { return membership(L, false); }

int udp_set(lua_State* L) {
  Udp* u = check_udp(L);
  UdpOptions o;  // only what the table names
  parse_udp_options(L, 2, 2, &o, true);
  // Kept for a socket made later (bind after close, the first send).
  if (o.broadcast >= 0) u->cur.broadcast = u->opt.broadcast = o.broadcast;
  if (o.ttl >= 0) u->cur.ttl = u->opt.ttl = o.ttl;
  if (o.multicast_ttl >= 0) u->cur.multicast_ttl = u->opt.multicast_ttl = o.multicast_ttl;
  if (o.multicast_loop >= 0) u->cur.multicast_loop = u->opt.multicast_loop = o.multicast_loop;
  if (o.multicast_interface[0]) {
    std::memcpy(u->cur.multicast_interface, o.multicast_interface, sizeof o.multicast_interface);
    std::memcpy(u->opt.multicast_interface, o.multicast_interface, sizeof o.multicast_interface);
  }
  return push_result(L, u->fd >= 0 ? apply_settable(u, o) : 0);
}

int udp_pause(lua_State* L) {
  Udp* u = check_udp(L);
  u->paused = true;
  stop_reading(u);
  return 0;
}

int udp_resume(lua_State* L) {
  Udp* u = check_udp(L);
  u->paused = false;
  start_reading(u);
  return 0;
}

// Closes everything; keeps the buffer and the event for a later bind.
void udp_release(Udp* u) noexcept {
  close_socket(u);
  if (u->bind_lookup) lookup_cancel(u->ctx, u->bind_lookup);
  if (u->peer_lookup) lookup_cancel(u->ctx, u->peer_lookup);
  u->bind_lookup = u->peer_lookup = nullptr;
  drop_pending(u);
  undefer(&u->defer);
  u->work = 0;
  u->receiving = false;
  u->paused = false;
}

int udp_close(lua_State* L) {
  Udp* u = check_udp(L);
  udp_release(u);
  unanchor(L, u->ctx, u);
  return 0;
}

int udp_gc(lua_State* L) {
  Udp* u = static_cast<Udp*>(luaL_checkudata(L, 1, kTypeName));
  udp_release(u);
  if (u->rev) event_free(u->rev);
  u->rev = nullptr;
  std::free(u->buf);
  u->buf = nullptr;
  u->buf_size = 0;
  return 0;
}

int udp_sockname(lua_State* L) { return push_socket_address(L, check_udp(L)->fd, false); }

int udp_peer(lua_State* L) {
  Udp* u = check_udp(L);
  return push_socket_address(L, u->connected ? u->fd : -1, true);
}

int udp_stats(lua_State* L) {
  Udp* u = check_udp(L);
  lua_createtable(L, 0, 8);
  const struct {
    const char* name;
    uint64_t value;
  } fields[] = {{"datagrams_in", u->datagrams_in}, {"datagrams_out", u->datagrams_out},
                {"bytes_in", u->bytes_in},         {"bytes_out", u->bytes_out},
                {"truncated", u->truncated},       {"would_block", u->would_block},
                {"errors", u->errors},             {"pending", u->npending}};
  for (const auto& f : fields) {
    lua_pushinteger(L, static_cast<lua_Integer>(f.value));
    lua_setfield(L, -2, f.name);
  }
  return 1;
}

int udp_tostring(lua_State* L) {
  Udp* u = check_udp(L);
  if (u->fd < 0) {
    lua_pushfstring(L, "%s (%s)", kTypeName,
                    u->bind_lookup || u->peer_lookup ? "resolving" : "closed");
    return 1;
  }
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char ip[kIpLen] = "?";
  int port = 0;
  if (getsockname(u->fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
    sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), ip, sizeof ip, &port);
  char endpoint[kEndpointLen];
  format_endpoint(endpoint, sizeof endpoint, ip, port);
  lua_pushfstring(L, "%s (%s %s)", kTypeName, u->connected ? "connected" : "open", endpoint);
  return 1;
}

const luaL_Reg kMethods[] = {
    {"bind", udp_bind},     {"connect", udp_connect}, {"send", udp_send},
    {"join", udp_join},     {"leave", udp_leave},     {"set", udp_set},
    {"pause", udp_pause},   {"resume", udp_resume},   {"close", udp_close},
    {"sockname", udp_sockname}, {"peer", udp_peer},   {"stats", udp_stats},
    {nullptr, nullptr}};

const luaL_Reg kMeta[] = {{"__gc", udp_gc},
                          {"__close", udp_close},
                          {"__tostring", udp_tostring},
                          {nullptr, nullptr}};

}  // namespace

void register_udp(lua_State* L, int ctx_idx, int module_idx) {
  register_type(L, ctx_idx, kTypeName, kMethods, kMeta);
  lua_pushvalue(L, ctx_idx);
  lua_pushcclosure(L, udp_new, 1);
  lua_setfield(L, module_idx, "UDPSocket");
}

}  // namespace lnet
