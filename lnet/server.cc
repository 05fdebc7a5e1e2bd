// net.TCPServer: a listener and the connections it accepted, known to Lua by
// integer ids that are never reused.
#include "address.hh"
#include "conn.hh"
#include "errors.hh"
#include "objects.hh"
#include "proxy_conn.hh"
#include "tls.hh"
#include "unix.hh"

#include <event2/event.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <set>

namespace lnet {

namespace {

const char kTypeName[] = "net.TCPServer";

enum Slot {
  kConnected = 1, kData, kDisconnected, kError, kDrain, kEnd, kStarted, kSecured, kTlsError,
  kSlots = kTlsError
};
const char* const kCallbackNames[] = {"connected", "data",    "disconnected", "error",
                                      "drain",     "end",     "started",      "secured",
                                      "tls_error", nullptr};

enum Pending : unsigned { kStart = 1, kStartedCb = 2, kFailedCb = 4, kFinish = 8 };
enum class ListenState : uint8_t { Idle, Resolving, Listening };

constexpr int kAcceptBackoffMs = 100;
constexpr int kAcceptsPerEvent = 32;  // then other events get their turn

struct Server final : ConnOwner {
  Context* ctx = nullptr;
  Deferred defer;
  unsigned pending = 0;
  ListenState state = ListenState::Idle;
  Options opt;  // from the constructor
  Options cur;  // in force for the current listen()
  ProxyListen proxy_opt;  // the PROXY protocol options, as opt and cur
  ProxyListen proxy_cur;
  char host[256] = "";
  int port = 0;
  Lookup* lookup = nullptr;
  evutil_socket_t lfd = -1;      // the listening socket
  event* accept_ev = nullptr;    // EV_READ|EV_PERSIST on lfd: on while accepting
  event* backoff_ev = nullptr;   // made by listen(): accepting resumes after an error
  bool limit_paused = false;
  bool accept_error_reported = false;
  std::map<lua_Integer, Conn*> conns;  // every connection until its 'disconnected' fired
  // TLS connections without an id yet (id 0), with their PROXY header (or
  // null) until the handshake gives them an id.
  std::map<Conn*, ProxyConn*> handshaking;
  uint64_t tls_failed = 0;             // handshakes that failed (tls_error)
  size_t open = 0;                     // of which not yet closed
  lua_Integer last_id = 0;
  lua_Integer ending_id = 0;  // whose 'disconnected' runs now
  uint64_t accepted = 0;
  uint64_t limit_pauses = 0;
  uint64_t ended_in = 0;   // bytes of connections that have ended
  uint64_t ended_out = 0;
  const char* code = nullptr;  // of msg
  char msg[kEndpointLen + 128] = "";
  // PROXY protocol: sockets whose header is being read (not connections
  // yet), the parsed header of each connection, and the refusals.
  ProxyConn* prefaces = nullptr;
  std::map<lua_Integer, ProxyConn*> proxied;
  uint64_t proxy_invalid = 0;
  uint64_t proxy_untrusted = 0;
  uint64_t proxy_timeout = 0;
  // "unix:/path": the file this listener made, removed when it stops.
  sockaddr_un unix_addr{};
  socklen_t unix_len = 0;  // 0: not a unix listener
  dev_t unix_dev = 0;
  ino_t unix_ino = 0;
  bool unix_file = false;

  void conn_connect_result(Conn*, int) noexcept override {}
  void conn_data(Conn* c, const char* data, size_t len) noexcept override;
  void conn_drain(Conn* c) noexcept override;
  void conn_end(Conn* c) noexcept override;
  void conn_secured(Conn* c) noexcept override;
  void conn_closed(Conn* c) noexcept override;
  void conn_data_callback(Conn* c, Call* call) noexcept override {
    call->key = this;
    call->slot = kData;
    call->id = c->id;
  }
};

void fire_conn(Server* srv, int slot, lua_Integer id, const char* text = nullptr) {
  Call call;
  call.key = srv;
  call.slot = slot;
  call.id = id;
  call.text = text;
  call.len = text ? std::strlen(text) : 0;
  fire(srv->ctx, &call);
}

void fire_server(Server* srv, int slot, const char* text = nullptr, const char* code = nullptr) {
  Call call;
  call.key = srv;
  call.slot = slot;
  call.text = text;
  call.len = text ? std::strlen(text) : 0;
  call.code = code;
  call.report = slot == kError;
  fire(srv->ctx, &call);
}

// Unanchors the server once nothing of it is active any more.
void maybe_release(lua_State* L, Server* srv) noexcept {
  if (srv->state == ListenState::Idle && srv->conns.empty() && srv->handshaking.empty() &&
      !srv->defer.queued() && srv->prefaces == nullptr)
    unanchor(L, srv->ctx, srv);
}

// Accepting is on while listening, below max_connections and not backing
// off after an accept error.
void update_accepting(Server* srv) noexcept {
  if (!srv->accept_ev) return;
  bool full = srv->cur.max_connections > 0 &&
              srv->open >= static_cast<size_t>(srv->cur.max_connections);
  if (full && !srv->limit_paused) {
    srv->limit_paused = true;
    srv->limit_pauses++;
  } else if (!full && srv->limit_paused) {
    srv->limit_paused = false;
  }
  if (srv->limit_paused || evtimer_pending(srv->backoff_ev, nullptr))
    event_del(srv->accept_ev);  // the kernel queues new ones
  else
    event_add(srv->accept_ev, nullptr);
}

void run_conn_deferred(Deferred* d);

// "host:port" for messages; an inherited socket is named "fd:N".
bool is_fd_host(const char* host) noexcept { return std::strncmp(host, "fd:", 3) == 0; }

void server_endpoint(const Server* srv, char* out, size_t n) noexcept {
  if (is_fd_host(srv->host))
    std::snprintf(out, n, "%s", srv->host);
  else
    format_endpoint(out, n, srv->host, srv->port);
}

// One accepted socket becomes a connection; 'connected' fires. pc: its
// PROXY header, kept for peer() and proxy_info() (owned from here on when
// true is returned). False when out of memory (the socket is closed).
bool take(Server* srv, evutil_socket_t fd, ProxyConn* pc = nullptr) noexcept {
  Conn* c = new (std::nothrow) Conn();
  if (c == nullptr) {
    evutil_closesocket(fd);
    return false;
  }
  c->ctx = srv->ctx;
  c->owner = srv;
  c->defer.run = run_conn_deferred;
  c->defer.owner = c;
  conn_create(c, srv->cur);  // its own copy: a later listen() does not change it
  if (!conn_attach(c, fd)) {
    evutil_closesocket(fd);
    delete c;
    return false;
  }
  if (!conn_opened(c)) {
    conn_release(c);  // closes fd
    delete c;
    return false;
  }
  bool tls = srv->cur.tls != nullptr;
  bool ok = true;
  if (tls) {
    // A client id only after the handshake (conn_secured); until then the
    // connection is known to nobody but the server.
    ok = tls_start(c, srv->cur.tls, TlsRole::Server, nullptr, &srv->cur, false);
    if (ok) {
      try {
        srv->handshaking.emplace(c, pc);
      } catch (...) {
        ok = false;
      }
    }
  } else {
    c->id = ++srv->last_id;
    try {
      srv->conns.emplace(c->id, c);
      if (pc) srv->proxied.emplace(c->id, pc);
    } catch (...) {
      srv->conns.erase(c->id);
      ok = false;
    }
  }
  if (!ok) {
    conn_release(c);
    delete c;
    return false;
  }
  srv->open++;
  srv->accepted++;
  update_accepting(srv);
  if (!tls) fire_conn(srv, kConnected, c->id);
  return true;
}

// --- PROXY protocol: the header is read before the connection exists.

void unlink_preface(Server* srv, ProxyConn* pc) noexcept {
  if (pc->prev) pc->prev->next = pc->next; else srv->prefaces = pc->next;
  if (pc->next) pc->next->prev = pc->prev;
  pc->prev = pc->next = nullptr;
}

void on_preface(ProxyConn* pc, ProxyResult r) {
  Server* srv = static_cast<Server*>(pc->owner);
  evutil_socket_t fd = pc->fd;
  unlink_preface(srv, pc);
  proxy_conn_stop(pc);
  if (r == ProxyResult::Done) {
    if (!take(srv, fd, pc)) proxy_conn_free(pc);  // take closed fd
  } else {
    if (r == ProxyResult::Invalid) srv->proxy_invalid++;
    if (r == ProxyResult::Timeout) srv->proxy_timeout++;
    evutil_closesocket(fd);
    proxy_conn_free(pc);
  }
  maybe_release(srv->ctx->L, srv);
}

// An accepted socket (peer: accept()'s address): a connection at once, or
// after its PROXY header.
bool accept_one(Server* srv, evutil_socket_t fd, const sockaddr* peer) noexcept {
  if (srv->proxy_cur.mode == ProxyMode::Off) return take(srv, fd);
  if (!proxy_peer_trusted(&srv->proxy_cur, peer)) {
    srv->proxy_untrusted++;
    evutil_closesocket(fd);
    return true;
  }
  ProxyConn* pc = proxy_conn_start(srv->ctx, fd, srv->proxy_cur.mode,
                                   srv->proxy_cur.header_timeout_ms, on_preface, srv);
  if (pc == nullptr) {
    evutil_closesocket(fd);
    return false;
  }
  pc->next = srv->prefaces;
  if (pc->next) pc->next->prev = pc;
  srv->prefaces = pc;
  return true;
}

// Drops every socket whose header is still awaited (stop, close, gc).
void drop_prefaces(Server* srv) noexcept {
  while (ProxyConn* pc = srv->prefaces) {
    unlink_preface(srv, pc);
    evutil_closesocket(pc->fd);
    proxy_conn_free(pc);
  }
}

ProxyConn* find_proxy(const Server* srv, lua_Integer id) noexcept {
  if (srv->proxied.empty()) return nullptr;
  auto it = srv->proxied.find(id);
  return it == srv->proxied.end() ? nullptr : it->second;
}

// A connection that ended in its TLS handshake: off the list, its PROXY
// header freed.
void forget_handshaking(Server* srv, Conn* c) noexcept {
  auto it = srv->handshaking.find(c);
  if (it == srv->handshaking.end()) return;
  if (it->second) proxy_conn_free(it->second);
  srv->handshaking.erase(it);
}

// Out of descriptors, memory and the like: pause accepting, retry after a
// back-off, and say so once per streak instead of spinning.
void accept_failed(Server* srv, int err) noexcept {
  event_del(srv->accept_ev);
  timeval tv = ms_timeval(kAcceptBackoffMs);
  event_add(srv->backoff_ev, &tv);
  if (srv->accept_error_reported) return;
  srv->accept_error_reported = true;
  char endpoint[kEndpointLen];
  server_endpoint(srv, endpoint, sizeof endpoint);
  std::snprintf(srv->msg, sizeof srv->msg, "accept on %s failed: %s", endpoint,
                evutil_socket_error_to_string(err));
  fire_server(srv, kError, srv->msg, errno_code(err));
}

void on_accept(evutil_socket_t lfd, short, void* arg) {
  Server* srv = static_cast<Server*>(arg);
  for (int i = 0; i < kAcceptsPerEvent; i++) {
    // A callback raised or stopped the loop: the rest wait in the kernel.
    if (halted(srv->ctx) || srv->state != ListenState::Listening || srv->limit_paused) return;
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      accept_failed(srv, err);
      return;
    }
    if (!accept_one(srv, fd, reinterpret_cast<const sockaddr*>(&peer))) {
      accept_failed(srv, ENOMEM);
      return;
    }
    srv->accept_error_reported = false;
  }
}

void on_backoff(evutil_socket_t, short, void* arg) {
  update_accepting(static_cast<Server*>(arg));
}

// 'error' follows from the loop; why is a strerror or resolver text.
void fail(Server* srv, const char* why, const char* code) noexcept {
  char endpoint[kEndpointLen];
  server_endpoint(srv, endpoint, sizeof endpoint);
  std::snprintf(srv->msg, sizeof srv->msg, "listen on %s failed: %s", endpoint, why);
  srv->code = code;
  srv->state = ListenState::Idle;
  srv->pending |= kFailedCb;
  defer(srv->ctx, &srv->defer);
}

// Accepts on fd (already listening); 'started' follows from the loop. False
// when out of memory (fd is then left open).
bool start_listener(Server* srv, evutil_socket_t fd) noexcept {
  srv->accept_ev = event_new(srv->ctx->base, fd, EV_READ | EV_PERSIST, on_accept, srv);
  if (!srv->accept_ev) return false;
  srv->lfd = fd;
  // Messages and tostring name the real port after listen(host, 0).
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[kIpLen];
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), ip, sizeof ip, &srv->port);
  srv->state = ListenState::Listening;
  srv->limit_paused = false;
  srv->accept_error_reported = false;
  update_accepting(srv);
  srv->pending |= kStartedCb;
  defer(srv->ctx, &srv->defer);
  return true;
}

// Binds the first address that works; 'started' or 'error' follow from the loop.
void bind_addresses(Server* srv, evutil_addrinfo* list) noexcept {
  int err = EADDRNOTAVAIL;
  for (evutil_addrinfo* ai = list; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv->cur.reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen)) != 0 ||
        ::listen(fd, srv->cur.backlog) != 0) {
      err = errno;
      ::close(fd);
      continue;
    }
    if (!start_listener(srv, fd)) {
      ::close(fd);
      err = ENOMEM;
      break;
    }
    return;
  }
  fail(srv, evutil_socket_error_to_string(err), errno_code(err));
}

// "unix:/path", "unix:@name": a stale socket file is replaced, a live one
// or another file is not; mode applies to the file.
void bind_unix(Server* srv) noexcept {
  sockaddr_un* sa = &srv->unix_addr;
  unix_sockaddr(srv->host, sa, &srv->unix_len);
  srv->unix_file = false;
  int err = unix_prepare_listen(sa, srv->unix_len);
  int fd = -1;
  if (err == 0) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) err = errno;
  }
  if (err == 0 && ::bind(fd, reinterpret_cast<sockaddr*>(sa), srv->unix_len) != 0) err = errno;
  if (err == 0) {
    srv->unix_file = unix_file_id(sa, srv->unix_len, &srv->unix_dev, &srv->unix_ino);
    err = unix_apply_mode(sa, srv->unix_len, srv->cur.mode);
  }
  if (err == 0 && ::listen(fd, srv->cur.backlog) != 0) err = errno;
  if (err == 0 && !start_listener(srv, fd)) err = ENOMEM;
  if (err == 0) return;
  if (fd >= 0) ::close(fd);
  if (srv->unix_file) unix_remove(sa, srv->unix_len, srv->unix_dev, srv->unix_ino);
  srv->unix_file = false;
  fail(srv, evutil_socket_error_to_string(err), errno_code(err));
}

// listen("fd:N"): adopts an inherited listening socket (systemd socket
// activation, a hand-over from an older process). The server owns it from
// now on: stop() closes it.
void adopt_fd(Server* srv) noexcept {
  char* end = nullptr;
  long fd = std::strtol(srv->host + 3, &end, 10);
  if (end == srv->host + 3 || *end != '\0' || fd < 0 || fd > INT32_MAX) {
    fail(srv, "not a file descriptor number", errno_code(EINVAL));
    return;
  }
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    int err = errno;
    fail(srv, std::strerror(err), errno_code(err));
    return;
  }
  len = sizeof listening;
  if (type != SOCK_STREAM ||
      getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
      !listening) {
    fail(srv, "not a listening stream socket", errno_code(ENOTSOCK));
    return;
  }
  evutil_make_socket_nonblocking(static_cast<int>(fd));
  evutil_make_socket_closeonexec(static_cast<int>(fd));
  if (!start_listener(srv, static_cast<int>(fd))) fail(srv, std::strerror(ENOMEM), errno_code(ENOMEM));
}

void on_lookup(void* owner, int err, evutil_addrinfo* ai) {
  Server* srv = static_cast<Server*>(owner);
  srv->lookup = nullptr;
  if (err != 0) {
    if (ai) evutil_freeaddrinfo(ai);
    fail(srv, evutil_gai_strerror(err), eai_code(err));
    return;
  }
  bind_addresses(srv, ai);
  evutil_freeaddrinfo(ai);
}

// Numeric hosts bind at once, so address() is right after listen() returns.
bool bind_numeric(Server* srv) noexcept {
  evutil_addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV | EVUTIL_AI_PASSIVE;
  char service[8];
  std::snprintf(service, sizeof service, "%d", srv->port);
  evutil_addrinfo* ai = nullptr;
  if (evutil_getaddrinfo(srv->host, service, &hints, &ai) != 0) return false;
  bind_addresses(srv, ai);
  evutil_freeaddrinfo(ai);
  return true;
}

void run_deferred(Deferred* d) {
  Server* srv = static_cast<Server*>(d->owner);
  unsigned p = srv->pending;
  srv->pending = 0;
  if ((p & kStart) && srv->state == ListenState::Resolving) {
    Lookup* lk = lookup_start(srv->ctx, srv->host, srv->port, true, on_lookup, srv);
    if (lk) srv->lookup = lk;
  }
  if (p & kFailedCb) fire_server(srv, kError, srv->msg, srv->code);
  if ((p & kStartedCb) && srv->state == ListenState::Listening) fire_server(srv, kStarted);
  maybe_release(srv->ctx->L, srv);
}

// A callback about one connection of srv (tls_error, secured).
struct ConnCall {
  Server* srv;
  Conn* c;
};

// tls_error(message, ip, port, code); without the callback nothing is
// written (a client's failure is not the server's error; stats count it).
int tls_error_body(lua_State* L) {
  ConnCall* te = static_cast<ConnCall*>(lua_touserdata(L, 1));
  push_anchored(L, te->srv);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, kTlsError) != LUA_TFUNCTION)
    return 0;
  const char* ip = tls_peer_ip(te->c);
  char endpoint[kEndpointLen];
  format_endpoint(endpoint, sizeof endpoint, ip, tls_peer_port(te->c));
  lua_pushfstring(L, "TLS handshake with %s failed: %s", endpoint, conn_end_reason(te->c));
  lua_pushstring(L, ip);
  lua_pushinteger(L, tls_peer_port(te->c));
  lua_pushstring(L, conn_end_code(te->c));
  lua_call(L, 4, 0);
  return 0;
}

// A connection's end, from the loop: 'disconnected' fires (stats(id) still
// answers inside it), then the id is gone.
void run_conn_deferred(Deferred* d) {
  Conn* c = static_cast<Conn*>(d->owner);
  Server* srv = static_cast<Server*>(c->owner);
  Context* ctx = srv->ctx;
  if (c->id == 0) {  // ended in its TLS handshake: never a client id
    if (tls_handshake_failed(c)) {
      srv->tls_failed++;
      ConnCall te{srv, c};
      dispatch(ctx, tls_error_body, &te);
    }
    forget_handshaking(srv, c);
    conn_release(c);
    delete c;
    maybe_release(ctx->L, srv);
    return;
  }
  Call call;
  call.key = srv;
  call.slot = kDisconnected;
  call.id = c->id;
  if (c->end != EndKind::Orderly) {
    call.text = conn_end_reason(c);
    call.len = std::strlen(call.text);
    call.code = conn_end_code(c);
  }
  srv->ending_id = c->id;
  fire(ctx, &call);
  srv->ending_id = 0;
  // Moved to the totals and erased together: totals never go down.
  srv->ended_in += c->bytes_in;
  srv->ended_out += c->bytes_out;
  if (ProxyConn* pc = find_proxy(srv, c->id)) {
    srv->proxied.erase(c->id);
    proxy_conn_free(pc);
  }
  srv->conns.erase(c->id);
  conn_release(c);
  delete c;
  maybe_release(ctx->L, srv);
}

void Server::conn_data(Conn* c, const char* data, size_t len) noexcept {
  Call call;
  call.key = this;
  call.slot = kData;
  call.id = c->id;
  call.text = data;
  call.len = len;
  fire(ctx, &call);
}

void Server::conn_drain(Conn* c) noexcept { fire_conn(this, kDrain, c->id); }

void Server::conn_end(Conn* c) noexcept { fire_conn(this, kEnd, c->id); }

int secured_body(lua_State* L) {
  ConnCall* sc = static_cast<ConnCall*>(lua_touserdata(L, 1));
  push_anchored(L, sc->srv);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, kSecured) != LUA_TFUNCTION)
    return 0;
  lua_pushinteger(L, sc->c->id);
  push_tlsinfo(L, sc->c);
  lua_call(L, 2, 0);
  return 0;
}

void Server::conn_secured(Conn* c) noexcept {
  if (tls_is_starttls(c)) {
    ConnCall sc{this, c};
    dispatch(ctx, secured_body, &sc);
    return;
  }
  lua_Integer id = last_id + 1;
  auto hs = handshaking.find(c);
  ProxyConn* pc = hs != handshaking.end() ? hs->second : nullptr;
  try {
    conns.emplace(id, c);
    if (pc) proxied.emplace(id, pc);
  } catch (...) {
    conns.erase(id);
    conn_close(c, EndKind::Error, ENOMEM);
    return;
  }
  if (hs != handshaking.end()) handshaking.erase(hs);  // pc now belongs to proxied
  last_id = id;
  c->id = id;
  fire_conn(this, kConnected, id);
}

void Server::conn_closed(Conn* c) noexcept {
  open--;
  update_accepting(this);
  lnet::defer(ctx, &c->defer);
}

// --- Lua side -------------------------------------------------------------

Server* check_server(lua_State* L) {
  return static_cast<Server*>(check_udata(L, 1, kTypeName, &upvalue_context(L)->mt_server));
}

// Which ended connections a method still sees (their 'disconnected' has not
// finished): none; the one whose 'disconnected' runs (stats); all (send:
// "connection is closing").
enum class Ended { None, Firing, All };

// The connection for argument 2, or null after pushing nil, message, code.
Conn* check_conn(lua_State* L, Server* srv, Ended ended = Ended::None) {
  lua_Integer id = check_integer(L, 2);  // not the string "1"
  auto it = srv->conns.find(id);
  bool seen = it != srv->conns.end() &&
              (it->second->state != ConnState::Closed || ended == Ended::All ||
               (ended == Ended::Firing && id == srv->ending_id));
  if (!seen) {
    lua_pushnil(L);
    lua_pushfstring(L, "unknown client id %I", id);
    lua_pushliteral(L, "ENOTCONN");
    return nullptr;
  }
  return it->second;
}

}  // namespace

Conn* server_conn(lua_State* L, int idx, lua_Integer id) noexcept {
  Server* srv = static_cast<Server*>(test_udata(L, idx, kTypeName, &upvalue_context(L)->mt_server));
  if (srv == nullptr) return nullptr;
  auto it = srv->conns.find(id);
  if (it == srv->conns.end() || it->second->state != ConnState::Open) return nullptr;
  return it->second;
}

namespace {

int server_new(lua_State* L) {
  Context* ctx = upvalue_context(L);
  Options opt;
  ProxyListen pl;
  opt.proxy_listen = &pl;
  parse_options(L, 1, 1, &opt);
  opt.proxy_listen = nullptr;
  if (opt.tls_default && !opt.tls)
    luaL_argerror(L, 1, "option 'tls' of a server must be a net.TLSContext with cert and key");
  tls_options_prepare(L, &opt);
  Server* srv = new (lua_newuserdatauv(L, sizeof(Server), kSlots)) Server();
  luaL_setmetatable(L, kTypeName);
  srv->ctx = ctx;
  srv->defer.run = run_deferred;
  srv->defer.owner = srv;
  srv->opt = opt;
  srv->cur = opt;
  srv->proxy_opt = pl;
  srv->proxy_cur = pl;
  tls_options_retain(L, &srv->opt);
  srv->cur = srv->opt;
  tls_options_retain(L, &srv->cur);
  return 1;
}

int server_listen(lua_State* L) {
  Server* srv = check_server(L);
  size_t hlen = 0;
  const char* host = check_host(L, 2, &hlen);
  bool local = is_unix_host(host);
  if (local) check_unix_host(L, 2, host, hlen, 3);
  // An inherited socket ("fd:N") has its own port: nil or 0 here.
  int port = local ? 0 : is_fd_host(host) && lua_isnoneornil(L, 3) ? 0 : check_port(L, 3);
  Options cur = srv->opt;
  ProxyListen pl = srv->proxy_opt;
  cur.proxy_listen = &pl;
  parse_options(L, 5, 5, &cur);
  cur.proxy_listen = nullptr;
  if (cur.tls_default && !cur.tls)
    luaL_argerror(L, 5, "option 'tls' of listen must be a net.TLSContext with cert and key");
  tls_options_prepare(L, &cur);
  if (srv->state != ListenState::Idle) return luaL_error(L, "listen: server is already listening");
  if (srv->backoff_ev == nullptr) {
    // Made here, where raising is allowed: the accept back-off never silently goes.
    srv->backoff_ev = event_new(srv->ctx->base, -1, 0, on_backoff, srv);
    if (srv->backoff_ev == nullptr) return luaL_error(L, "listen: out of memory");
  }
  set_callbacks(L, 1, 4, kCallbackNames);
  anchor(L, srv->ctx, srv, 1);  // the last call that may raise
  std::memcpy(srv->host, host, hlen);
  srv->host[hlen] = '\0';
  srv->port = port;
  tls_options_release(&srv->cur);
  srv->cur = cur;
  srv->proxy_cur = pl;
  tls_options_retain(L, &srv->cur);
  srv->state = ListenState::Resolving;
  if (local) {
    bind_unix(srv);
  } else if (is_fd_host(srv->host)) {
    adopt_fd(srv);
  } else if (!bind_numeric(srv)) {
    srv->pending |= kStart;
    defer(srv->ctx, &srv->defer);
  }
  lua_pushboolean(L, 1);
  return 1;
}

int server_send(lua_State* L) {
  Server* srv = check_server(L);
  size_t len = 0;
  const char* data = luaL_checklstring(L, 3, &len);
  Conn* c = check_conn(L, srv, Ended::All);
  if (!c) return 3;
  return push_send_result(L, conn_send(c, data, len));
}

void close_now(Conn* c) noexcept { conn_close(c, EndKind::Orderly, 0); }

// server:OP(id) -> true, or nil, message for an unknown id.
template <void (*Op)(Conn*) noexcept>
int server_conn_op(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  Op(c);
  lua_pushboolean(L, 1);
  return 1;
}

void close_listener(Server* srv) noexcept {
  if (srv->lookup) lookup_cancel(srv->ctx, srv->lookup);
  srv->lookup = nullptr;
  if (srv->accept_ev) event_free(srv->accept_ev);
  srv->accept_ev = nullptr;
  if (srv->lfd >= 0) evutil_closesocket(srv->lfd);
  srv->lfd = -1;
  if (srv->unix_file) unix_remove(&srv->unix_addr, srv->unix_len, srv->unix_dev, srv->unix_ino);
  srv->unix_file = false;
  if (srv->backoff_ev) event_del(srv->backoff_ev);
  srv->state = ListenState::Idle;
  srv->pending = 0;  // after stop() only 'disconnected' callbacks fire
  undefer(&srv->defer);  // nothing left for it to do: unanchored at once
}

int server_stop(lua_State* L) {
  Server* srv = check_server(L);
  close_listener(srv);
  drop_prefaces(srv);
  // Connections still in their TLS handshake close at once (nothing fires).
  for (auto& [c, pc] : srv->handshaking) conn_close(c, EndKind::Orderly, 0);
  // Graceful for every client; each 'disconnected' comes from the loop.
  for (auto it = srv->conns.begin(); it != srv->conns.end();) {
    Conn* c = it->second;
    ++it;  // conn_disconnect never erases, but keep the iterator ahead anyway
    conn_disconnect(c);
  }
  maybe_release(L, srv);
  return 0;
}

// Closes the listener only: open connections go on, and the server is idle
// once they have ended (the graceful stop of a worker).
int server_stop_accepting(lua_State* L) {
  Server* srv = check_server(L);
  close_listener(srv);
  maybe_release(L, srv);
  return 0;
}

int server_address(lua_State* L) {
  Server* srv = check_server(L);
  if (srv->lfd < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "not listening");
    return 2;
  }
  return push_socket_address(L, srv->lfd, false);
}

int server_clients(lua_State* L) {
  Server* srv = check_server(L);
  lua_createtable(L, static_cast<int>(srv->open), 0);
  lua_Integer n = 0;
  for (const auto& [id, c] : srv->conns)  // ascending ids
    if (c->state != ConnState::Closed) {
      lua_pushinteger(L, id);
      lua_rawseti(L, -2, ++n);
    }
  return 1;
}

// The client: from the PROXY header when there is one.
int server_peer(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  return push_proxy_peer(L, find_proxy(srv, c->id), c->fd);
}

// The socket's own peer (with the PROXY protocol: the proxy).
int server_transport_peer(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  return push_socket_address(L, c->fd, true);
}

// What the PROXY header said; nil for a connection without one.
int server_proxy_info(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  const ProxyConn* pc = find_proxy(srv, c->id);
  if (pc == nullptr) {
    lua_pushnil(L);
    return 1;
  }
  push_proxy_info(L, pc);
  return 1;
}

int server_sockname(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  return push_socket_address(L, c->fd, false);
}

int server_peercred(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  return push_peercred(L, c->fd);
}

int server_stats(lua_State* L) {
  Server* srv = check_server(L);
  if (!lua_isnoneornil(L, 2)) {
    Conn* c = check_conn(L, srv, Ended::Firing);
    if (!c) return 3;
    push_conn_stats(L, c);
    return 1;
  }
  uint64_t in = srv->ended_in, out = srv->ended_out, queued = 0;
  for (const auto& [id, c] : srv->conns) {
    in += c->bytes_in;
    out += c->bytes_out;
    queued += conn_queued(c);
  }
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, static_cast<lua_Integer>(srv->tls_failed));
  lua_setfield(L, -2, "tls_failed");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->accepted));
  lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->open));
  lua_setfield(L, -2, "active");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->limit_pauses));
  lua_setfield(L, -2, "limit_pauses");
  lua_pushinteger(L, static_cast<lua_Integer>(in));
  lua_setfield(L, -2, "bytes_in");
  lua_pushinteger(L, static_cast<lua_Integer>(out));
  lua_setfield(L, -2, "bytes_out");
  lua_pushinteger(L, static_cast<lua_Integer>(queued));
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->proxy_invalid));
  lua_setfield(L, -2, "proxy_invalid");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->proxy_untrusted));
  lua_setfield(L, -2, "proxy_untrusted");
  lua_pushinteger(L, static_cast<lua_Integer>(srv->proxy_timeout));
  lua_setfield(L, -2, "proxy_timeout");
  return 1;
}

int server_gc(lua_State* L) {
  Server* srv = static_cast<Server*>(luaL_checkudata(L, 1, kTypeName));
  close_listener(srv);
  if (srv->backoff_ev) event_free(srv->backoff_ev);
  srv->backoff_ev = nullptr;
  undefer(&srv->defer);
  for (auto& [id, c] : srv->conns) {
    conn_release(c);
    delete c;
  }
  srv->conns.clear();  // an empty std::map owns no memory: no destructor needed
  drop_prefaces(srv);
  for (auto& [id, pc] : srv->proxied) proxy_conn_free(pc);
  srv->proxied.clear();
  for (auto& [c, pc] : srv->handshaking) {
    conn_release(c);
    delete c;
    if (pc) proxy_conn_free(pc);
  }
  srv->handshaking.clear();
  tls_options_release(&srv->opt);
  tls_options_release(&srv->cur);
  return 0;
}

int server_close_all(lua_State* L) {  // __close: stop at once
  Server* srv = check_server(L);
  close_listener(srv);
  drop_prefaces(srv);
  for (auto& [c, pc] : srv->handshaking) conn_close(c, EndKind::Orderly, 0);
  for (auto it = srv->conns.begin(); it != srv->conns.end();) {
    Conn* c = it->second;
    ++it;
    conn_close(c, EndKind::Orderly, 0);
  }
  maybe_release(L, srv);
  return 0;
}

int server_tlsinfo(lua_State* L) {
  Server* srv = check_server(L);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  return push_tlsinfo(L, c);
}

// server:starttls(id, ctx, options): the server side of an upgrade;
// 'secured(id, info)' follows the handshake, a failure ends the connection.
int server_starttls(lua_State* L) {
  Server* srv = check_server(L);
  luaL_checkinteger(L, 2);
  TlsConfig* cfg = check_tls_config(L, 3, false);
  if (lua_istable(L, 4) && lua_getfield(L, 4, "sni") != LUA_TNIL)
    luaL_argerror(L, 4, "option 'sni' is a listen option");
  Options o = srv->cur;
  o.sni = nullptr;  // per-name contexts apply to listen's tls only
  parse_options(L, 4, 4, &o);
  Conn* c = check_conn(L, srv);
  if (!c) return 3;
  if (c->state != ConnState::Open)
    return luaL_error(L, "starttls: connection %I is closing", static_cast<LUAI_UACINT>(c->id));
  if (c->tls) return luaL_error(L, "starttls: the connection already uses TLS");
  if (c->write_end != WriteEnd::Open || c->read_eof)
    return luaL_error(L, "starttls: the connection is half closed");
  if (!tls_start(c, cfg, TlsRole::Server, nullptr, &o, true))
    return luaL_error(L, "starttls: out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

int server_tostring(lua_State* L) {
  Server* srv = check_server(L);
  if (srv->state == ListenState::Idle) {
    lua_pushfstring(L, "%s (stopped, %d clients)", kTypeName, static_cast<int>(srv->open));
  } else {
    char endpoint[kEndpointLen];
    server_endpoint(srv, endpoint, sizeof endpoint);
    lua_pushfstring(L, "%s (%s %s, %d clients)", kTypeName,
                    srv->state == ListenState::Listening ? "listening" : "resolving", endpoint,
                    static_cast<int>(srv->open));
  }
  return 1;
}

const luaL_Reg kMethods[] = {
    {"listen", server_listen},
    {"send", server_send},
    {"disconnect", server_conn_op<conn_disconnect>},
    {"close", server_conn_op<close_now>},
    {"shutdown", server_conn_op<conn_shutdown>},
    {"pause", server_conn_op<conn_pause>},
    {"resume", server_conn_op<conn_resume>},
    {"stop", server_stop},       {"stop_accepting", server_stop_accepting},
    {"address", server_address},
    {"clients", server_clients}, {"peer", server_peer},       {"sockname", server_sockname},
    {"transport_peer", server_transport_peer}, {"proxy_info", server_proxy_info},
    {"stats", server_stats},     {"peercred", server_peercred},
    {"tlsinfo", server_tlsinfo}, {"starttls", server_starttls},
    {nullptr, nullptr}};

const luaL_Reg kMeta[] = {{"__gc", server_gc},
                          {"__close", server_close_all},
                          {"__tostring", server_tostring},
                          {nullptr, nullptr}};

}  // namespace

void register_server(lua_State* L, int ctx_idx, int module_idx) {
  register_type(L, ctx_idx, kTypeName, kMethods, kMeta);
  const luaL_Reg constructor[] = {{"TCPServer", server_new}, {nullptr, nullptr}};
  register_functions(L, ctx_idx, module_idx, constructor);
}

}  // namespace lnet
