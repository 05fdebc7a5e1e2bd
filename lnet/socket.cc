// net.TCPSocket: a client connection. Connecting resolves the host with
// evdns and tries every address in turn; all Lua callbacks fire from the loop.
#include "address.hh"
#include "conn.hh"
#include "errors.hh"
#include "objects.hh"
#include "tls.hh"
#include "unix.hh"

#include <event2/event.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace lnet {

namespace {

const char kTypeName[] = "net.TCPSocket";

enum Slot { kConnected = 1, kData, kDisconnected, kError, kDrain, kEnd, kSecured, kSlots = kSecured };
const char* const kCallbackNames[] = {"connected", "data", "disconnected", "error",
                                      "drain",     "end",  "secured",      nullptr};

enum Pending : unsigned { kStart = 1, kAttempt = 2, kFinish = 4 };

struct Socket final : ConnOwner {
  Conn conn;
  Options opt;  // from the constructor
  Options cur;  // the current connect()'s (its TLS names: the handshake starts when it connects)
  SendProxy send_proxy;  // the constructor's send_proxy option
  SendProxy preface;     // the current connection's PROXY header (len 0: none)
  TlsConfig* tls = nullptr;  // the current connect()'s tls context (a reference)
  char host[256] = "";
  int port = 0;
  Lookup* lookup = nullptr;
  evutil_addrinfo* addrs = nullptr;
  evutil_addrinfo* next_addr = nullptr;
  event* timeout_ev = nullptr;  // made by connect() when a timeout is set
  int last_err = 0;
  bool connected_fired = false;  // 'disconnected' is owed
  bool error_due = false;        // 'error' (msg, code) is to fire
  const char* code = nullptr;    // static text
  char msg[kEndpointLen + 128] = "";

  void conn_connect_result(Conn* c, int err) noexcept override;
  void conn_data(Conn* c, const char* data, size_t len) noexcept override;
  void conn_drain(Conn* c) noexcept override;
  void conn_end(Conn* c) noexcept override;
  void conn_secured(Conn* c) noexcept override;
  void conn_closed(Conn* c) noexcept override;
  // 'connected' (plain connect done, or TLS handshake done), then a
  // disconnect() asked for while connecting.
  void fire_connected(Conn* c) noexcept;
  void conn_data_callback(Conn*, Call* call) noexcept override {
    call->key = this;
    call->slot = kData;
  }
};

void fire_simple(Socket* s, int slot) {
  Call call;
  call.key = s;
  call.slot = slot;
  fire(s->conn.ctx, &call);
}

// Drops what only a connection attempt uses.
void clear_attempt(Socket* s) noexcept {
  if (s->lookup) lookup_cancel(s->conn.ctx, s->lookup);
  s->lookup = nullptr;
  if (s->addrs) evutil_freeaddrinfo(s->addrs);
  s->addrs = s->next_addr = nullptr;
  if (s->timeout_ev) event_del(s->timeout_ev);
}

// The connect failed: nothing was connected, so only 'error' fires (from
// the loop). why is static text; code its stable name.
void fail(Socket* s, const char* why, const char* code) noexcept {
  char endpoint[kEndpointLen];
  format_endpoint(endpoint, sizeof endpoint, s->host, s->port);
  std::snprintf(s->msg, sizeof s->msg, "connect to %s failed: %s", endpoint, why);
  s->code = code;
  s->error_due = true;
  clear_attempt(s);
  // What was sent while connecting goes too; the end is this failure.
  conn_close(&s->conn, EndKind::Orderly, 0);
}

void fail_errno(Socket* s, int err) noexcept {
  fail(s, evutil_socket_error_to_string(err), errno_code(err));
}

void attempt(Socket* s) noexcept {
  Conn* c = &s->conn;
  if (c->state != ConnState::Connecting) return;  // timed out or closed meanwhile
  conn_detach(c);  // the previous address failed
  while (s->next_addr) {
    evutil_addrinfo* ai = s->next_addr;
    s->next_addr = ai->ai_next;
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      s->last_err = errno;
      continue;
    }
    if (::connect(fd, ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen)) == 0 ||
        errno == EINPROGRESS) {
      if (!conn_attach(c, fd)) {
        ::close(fd);
        fail_errno(s, ENOMEM);
        return;
      }
      conn_connecting(c);  // the write event reports the result (SO_ERROR)
      return;
    }
    s->last_err = errno;
    ::close(fd);
  }
  fail_errno(s, s->last_err ? s->last_err : ECONNREFUSED);
}

void on_lookup(void* owner, int err, evutil_addrinfo* ai) {
  Socket* s = static_cast<Socket*>(owner);
  s->lookup = nullptr;
  if (err != 0) {
    if (ai) evutil_freeaddrinfo(ai);
    fail(s, evutil_gai_strerror(err), eai_code(err));
    return;
  }
  s->addrs = s->next_addr = ai;
  s->conn.state = ConnState::Connecting;
  attempt(s);
}

void on_timeout(evutil_socket_t, short, void* arg) {
  Socket* s = static_cast<Socket*>(arg);
  if (s->conn.state == ConnState::Resolving || s->conn.state == ConnState::Connecting) {
    fail(s, "timed out", "ETIMEDOUT");
  } else if (s->conn.state == ConnState::Open && !s->connected_fired && tls_handshaking(&s->conn)) {
    // timeout covers resolution, connect and the TLS handshake together.
    char endpoint[kEndpointLen];
    format_endpoint(endpoint, sizeof endpoint, s->host, s->port);
    std::snprintf(s->msg, sizeof s->msg, "TLS handshake with %s failed: timed out", endpoint);
    s->code = kCodeTlsHandshakeTimeout;
    s->error_due = true;
    clear_attempt(s);
    conn_close(&s->conn, EndKind::Orderly, 0);
  }
}

// "unix:/path", "unix:@name": no lookup, one address.
void start_unix(Socket* s) noexcept {
  Conn* c = &s->conn;
  sockaddr_un sa;
  socklen_t len = 0;
  unix_sockaddr(s->host, &sa, &len);
  c->state = ConnState::Connecting;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail_errno(s, errno);
    return;
  }
  // Completes at once, or fails (EAGAIN: the listener's backlog is full).
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    fail_errno(s, err);
    return;
  }
  if (!conn_attach(c, fd)) {
    ::close(fd);
    fail_errno(s, ENOMEM);
    return;
  }
  conn_connecting(c);  // the write event reports the result, from the loop
}

void start(Socket* s) noexcept {
  if (s->conn.state != ConnState::Resolving) return;
  if (s->conn.opt.timeout_ms > 0) {
    timeval tv = ms_timeval(s->conn.opt.timeout_ms);
    event_add(s->timeout_ev, &tv);
  }
  if (is_unix_host(s->host)) {
    start_unix(s);
    return;
  }
  // May answer at once (numeric host): on_lookup then runs before this returns.
  Lookup* lk = lookup_start(s->conn.ctx, s->host, s->port, false, on_lookup, s);
  if (lk) s->lookup = lk;
}

// The end of a connection or of a failed attempt, from the loop: 'error'
// (when due), then 'disconnected' (when 'connected' fired). A callback that
// raises or stops the loop leaves the rest for the next net.loop().
void finish(Socket* s) noexcept {
  Conn* c = &s->conn;
  Context* ctx = c->ctx;
  if (c->state != ConnState::Closed) return;
  if (s->error_due) {
    s->error_due = false;
    Call call;
    call.key = s;
    call.slot = kError;
    call.text = s->msg;
    call.len = std::strlen(s->msg);
    call.code = s->code;
    call.report = true;
    if (!s->connected_fired) c->state = ConnState::Idle;  // the last callback: may connect again
    fire(ctx, &call);
    if (c->state == ConnState::Closed && halted(ctx)) {
      c->pending |= kFinish;
      defer(ctx, &c->defer);
      return;
    }
  }
  if (s->connected_fired && c->state == ConnState::Closed) {
    s->connected_fired = false;
    c->state = ConnState::Idle;
    fire_simple(s, kDisconnected);
  }
  if (c->state == ConnState::Idle && !c->defer.queued()) unanchor(ctx->L, ctx, s);
}

void run_deferred(Deferred* d) {
  Socket* s = static_cast<Socket*>(d->owner);
  unsigned p = s->conn.pending;
  s->conn.pending = 0;
  if (p & kStart) start(s);
  if (p & kAttempt) attempt(s);
  if (p & kFinish) finish(s);
}

void Socket::fire_connected(Conn* c) noexcept {
  clear_attempt(this);
  connected_fired = true;
  fire_simple(this, kConnected);
  if (c->close_queued && c->state == ConnState::Open) {
    c->close_queued = false;
    conn_disconnect(c);
  }
}

void Socket::conn_connect_result(Conn* c, int err) noexcept {
  if (err != 0) {
    last_err = err;
    conn.pending |= kAttempt;  // the next address, from the loop
    defer(c->ctx, &c->defer);
    return;
  }
  if (addrs) evutil_freeaddrinfo(addrs);
  addrs = next_addr = nullptr;
  if (preface.len > 0) {
    // Plaintext even under TLS (a load balancer reads it before the
    // handshake). A new connection's send buffer is empty: it all fits.
    ssize_t n = ::send(c->fd, preface.bytes, preface.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != static_cast<ssize_t>(preface.len)) {
      fail_errno(this, n < 0 ? errno : EAGAIN);
      return;
    }
  }
  if (!conn_opened(c)) {
    fail_errno(this, ENOMEM);
    return;
  }
  if (tls) {
    // 'connected' after the handshake (conn_secured); timeout covers it too.
    if (!tls_start(c, tls, TlsRole::Client, host, &cur, false)) fail_errno(this, ENOMEM);
    return;
  }
  fire_connected(c);
}

void Socket::conn_data(Conn*, const char* data, size_t len) noexcept {
  Call call;
  call.key = this;
  call.slot = kData;
  call.text = data;
  call.len = len;
  fire(conn.ctx, &call);
}

void Socket::conn_drain(Conn*) noexcept { fire_simple(this, kDrain); }

void Socket::conn_end(Conn*) noexcept { fire_simple(this, kEnd); }

struct SecuredCall {
  Socket* s;
  Conn* c;
};

int secured_body(lua_State* L) {
  SecuredCall* sc = static_cast<SecuredCall*>(lua_touserdata(L, 1));
  push_anchored(L, sc->s);
  if (lua_type(L, -1) != LUA_TUSERDATA || lua_getiuservalue(L, -1, kSecured) != LUA_TFUNCTION)
    return 0;
  push_tlsinfo(L, sc->c);
  lua_call(L, 1, 0);
  return 0;
}

void Socket::conn_secured(Conn* c) noexcept {
  if (tls_is_starttls(c)) {
    SecuredCall sc{this, c};
    dispatch(c->ctx, secured_body, &sc);
    return;
  }
  fire_connected(c);
}

void Socket::conn_closed(Conn* c) noexcept {
  if (!error_due && c->end != EndKind::Orderly) {  // an established connection failed
    if (c->end == EndKind::IdleTimeout) {
      std::snprintf(msg, sizeof msg, "idle timeout");
    } else {
      char endpoint[kEndpointLen];
      format_endpoint(endpoint, sizeof endpoint, host, port);
      std::snprintf(msg, sizeof msg,
                    tls_handshake_failed(c) ? "TLS handshake with %s failed: %s"
                                            : "connection to %s failed: %s",
                    endpoint, conn_end_reason(c));
    }
    code = conn_end_code(c);
    error_due = true;
  }
  if (timeout_ev) event_del(timeout_ev);  // a TLS handshake that ended early
  c->pending |= kFinish;
  defer(c->ctx, &c->defer);
}

// --- Lua side -------------------------------------------------------------

Socket* check_socket(lua_State* L) {
  return static_cast<Socket*>(check_udata(L, 1, kTypeName, &upvalue_context(L)->mt_socket));
}

}  // namespace

Conn* socket_conn(lua_State* L, int idx) noexcept {
  Socket* s = static_cast<Socket*>(test_udata(L, idx, kTypeName, &upvalue_context(L)->mt_socket));
  if (s == nullptr || s->conn.state != ConnState::Open) return nullptr;
  return &s->conn;
}

namespace {

int socket_new(lua_State* L) {
  Context* ctx = upvalue_context(L);
  Options opt;
  SendProxy sp;
  opt.send_proxy = &sp;
  parse_options(L, 1, 1, &opt);
  opt.send_proxy = nullptr;
  tls_options_prepare(L, &opt);
  // Made closed and empty, with its finalizer, before it owns anything.
  Socket* s = new (lua_newuserdatauv(L, sizeof(Socket), kSlots)) Socket();
  luaL_setmetatable(L, kTypeName);
  s->conn.ctx = ctx;
  s->conn.owner = s;
  s->conn.opt = opt;  // its ConnOptions part
  s->conn.defer.run = run_deferred;
  s->conn.defer.owner = s;
  s->opt = opt;
  s->send_proxy = sp;
  tls_options_retain(L, &s->opt);
  return 1;
}

const char* state_word(ConnState st) {
  switch (st) {
    case ConnState::Resolving:
    case ConnState::Connecting: return "connecting";
    case ConnState::Open: return "connected";
    case ConnState::Closing: return "closing";
    case ConnState::Closed: return "closing";
    default: return "closed";
  }
}

int socket_connect(lua_State* L) {
  Socket* s = check_socket(L);
  size_t hlen = 0;
  const char* host = check_host(L, 2, &hlen);
  bool local = is_unix_host(host);
  if (local) check_unix_host(L, 2, host, hlen, 3);
  int port = local ? 0 : check_port(L, 3);
  Options cur = s->opt;
  SendProxy sp = s->send_proxy;
  cur.send_proxy = &sp;
  parse_options(L, 5, 5, &cur);
  cur.send_proxy = nullptr;
  tls_options_prepare(L, &cur);
  if (s->conn.state != ConnState::Idle) {
    return luaL_error(L, "connect: socket is already %s%s", state_word(s->conn.state),
                      s->conn.state == ConnState::Closed
                          ? " (connect again from 'disconnected')"
                          : "");
  }
  if (cur.timeout_ms > 0 && s->timeout_ev == nullptr) {
    // Made here, where raising is allowed: a timeout never silently goes.
    s->timeout_ev = event_new(s->conn.ctx->base, -1, 0, on_timeout, s);
    if (s->timeout_ev == nullptr) return luaL_error(L, "connect: out of memory");
  }
  set_callbacks(L, 1, 4, kCallbackNames);
  anchor(L, s->conn.ctx, s, 1);  // the last call that may raise
  Conn* c = &s->conn;
  conn_create(c, cur);
  tls_config_retain(cur.tls);
  tls_config_release(s->tls);
  s->tls = cur.tls;
  s->cur = cur;  // its tls: held by s->tls
  std::memcpy(s->host, host, hlen);
  s->host[hlen] = '\0';
  s->port = port;
  s->last_err = 0;
  s->error_due = s->connected_fired = false;
  s->code = nullptr;
  c->state = ConnState::Resolving;
  c->pending = kStart;
  defer(c->ctx, &c->defer);
  // send_proxy: the PROXY header goes first, written as the connect
  // completes, before anything queued and before a TLS handshake.
  s->preface = sp;
  lua_pushboolean(L, 1);
  return 1;
}

int socket_send(lua_State* L) {
  Socket* s = check_socket(L);
  size_t len = 0;
  const char* data = luaL_checklstring(L, 2, &len);
  return push_send_result(L, conn_send(&s->conn, data, len));
}

// Ends a connection attempt that never connected: nothing fires.
void cancel_attempt(lua_State* L, Socket* s) {
  clear_attempt(s);
  conn_release(&s->conn);
  s->conn.pending = 0;
  s->error_due = false;
  unanchor(L, s->conn.ctx, s);
}

int socket_disconnect(lua_State* L) {
  Socket* s = check_socket(L);
  if (s->conn.state == ConnState::Open && !s->connected_fired)
    s->conn.close_queued = true;  // in the TLS handshake: after 'connected'
  else
    conn_disconnect(&s->conn);
  return 0;
}

// close(): nothing more fires, except the 'disconnected' owed to a
// connection whose 'connected' fired.
int socket_close(lua_State* L) {
  Socket* s = check_socket(L);
  switch (s->conn.state) {
    case ConnState::Resolving:
    case ConnState::Connecting:
      cancel_attempt(L, s);
      break;
    case ConnState::Open:
    case ConnState::Closing:
      conn_close(&s->conn, EndKind::Orderly, 0);
      break;
    case ConnState::Closed:  // ended this round; its callbacks are still to come
      s->error_due = false;
      if (!s->connected_fired) cancel_attempt(L, s);
      break;
    default:
      break;
  }
  return 0;
}

int socket_shutdown(lua_State* L) {
  Socket* s = check_socket(L);
  conn_shutdown(&s->conn);
  return 0;
}

int socket_pause(lua_State* L) {
  conn_pause(&check_socket(L)->conn);
  return 0;
}

int socket_resume(lua_State* L) {
  conn_resume(&check_socket(L)->conn);
  return 0;
}

// The socket of an established connection, else -1 ("not connected").
evutil_socket_t connected_fd(const Socket* s) {
  ConnState st = s->conn.state;
  return st == ConnState::Open || st == ConnState::Closing ? s->conn.fd : -1;
}

int socket_peer(lua_State* L) { return push_socket_address(L, connected_fd(check_socket(L)), true); }

int socket_sockname(lua_State* L) {
  return push_socket_address(L, connected_fd(check_socket(L)), false);
}

int socket_stats(lua_State* L) {
  push_conn_stats(L, &check_socket(L)->conn);
  return 1;
}

int socket_gc(lua_State* L) {
  Socket* s = static_cast<Socket*>(luaL_checkudata(L, 1, kTypeName));
  clear_attempt(s);
  if (s->timeout_ev) event_free(s->timeout_ev);
  s->timeout_ev = nullptr;
  conn_release(&s->conn);
  tls_options_release(&s->opt);
  tls_config_release(s->tls);
  s->tls = nullptr;
  return 0;
}

int socket_tlsinfo(lua_State* L) {
  Socket* s = check_socket(L);
  if (!s->connected_fired) {
    lua_pushnil(L);
    lua_pushliteral(L, "not connected");
    return 2;
  }
  return push_tlsinfo(L, &s->conn);
}

// client:starttls(ctx, options): upgrades the open plaintext connection;
// 'secured(info)' follows the handshake, a failure ends the connection.
int socket_starttls(lua_State* L) {
  Socket* s = check_socket(L);
  TlsConfig* cfg = check_tls_config(L, 2, true);
  Options o = s->cur;  // connect()'s names, then these options
  parse_options(L, 3, 3, &o);
  Conn* c = &s->conn;
  if (c->state != ConnState::Open || !s->connected_fired)
    return luaL_error(L, "starttls: socket is not connected");
  if (c->tls) return luaL_error(L, "starttls: the connection already uses TLS");
  if (c->write_end != WriteEnd::Open || c->read_eof)
    return luaL_error(L, "starttls: the connection is half closed");
  if (!tls_start(c, cfg, TlsRole::Client, s->host, &o, true))
    return luaL_error(L, "starttls: out of memory");
  lua_pushboolean(L, 1);
  return 1;
}

int socket_tostring(lua_State* L) {
  Socket* s = check_socket(L);
  if (s->conn.state == ConnState::Idle || s->conn.state == ConnState::Closed) {
    lua_pushfstring(L, "%s (closed)", kTypeName);  // Closed: only 'disconnected' is to come
  } else {
    char endpoint[kEndpointLen];
    format_endpoint(endpoint, sizeof endpoint, s->host, s->port);
    lua_pushfstring(L, "%s (%s %s)", kTypeName, state_word(s->conn.state), endpoint);
  }
  return 1;
}

const luaL_Reg kMethods[] = {
    {"connect", socket_connect},   {"send", socket_send},       {"disconnect", socket_disconnect},
    {"close", socket_close},       {"shutdown", socket_shutdown}, {"pause", socket_pause},
    {"resume", socket_resume},     {"peer", socket_peer},       {"sockname", socket_sockname},
    {"stats", socket_stats},       {"tlsinfo", socket_tlsinfo}, {"starttls", socket_starttls},
    {nullptr, nullptr}};

const luaL_Reg kMeta[] = {{"__gc", socket_gc},
                          {"__close", socket_close},
                          {"__tostring", socket_tostring},
                          {nullptr, nullptr}};

}  // namespace

void register_socket(lua_State* L, int ctx_idx, int module_idx) {
  register_type(L, ctx_idx, kTypeName, kMethods, kMeta);
  const luaL_Reg constructor[] = {{"TCPSocket", socket_new}, {nullptr, nullptr}};
  register_functions(L, ctx_idx, module_idx, constructor);
}

}  // namespace lnet
