#include "conn.hh"

#include "tls.hh"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lnet {

// Reading: the connection's own EV_READ|EV_PERSIST event reads straight
// into the context's buffer and hands it to Lua as one string, with no
// evbuffer between. (libevent 2.1's bufferevent reads cost an
// ioctl(FIONREAD) per read and cap each read at 4 KiB.)
//
// Writing: send() writes through to the socket while nothing is queued; a
// bufferevent, made on first need, queues what the kernel did not take and
// writes it when the socket is writable. Clients also connect through it.
// An idle connection thus holds one event, no bufferevent and no buffers.

namespace {

constexpr int kReadRounds = 4;  // reads per readable event, for fairness

void on_write(bufferevent*, void* arg);
void on_event(bufferevent*, short what, void* arg);

}  // namespace

void conn_read_eof(Conn* c) noexcept {
  c->read_eof = true;
  if (c->rev) event_del(c->rev);
  if (c->opt->allow_half_open) {
    c->owner->conn_end(c);
    // Our side was already shut down: both directions are done.
    if (c->state == ConnState::Open && c->shutdown_done) conn_close(c, EndKind::Orderly, 0);
    return;
  }
  conn_disconnect(c);  // the peer is done: send what is queued, then close
}

namespace {

void on_readable(evutil_socket_t fd, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  if (c->tls) {
    tls_on_readable(c);
    return;
  }
  char* buf = context_read_buffer(c->ctx);
  if (buf == nullptr) {
    conn_close(c, EndKind::Error, ENOMEM);
    return;
  }
  for (int round = 0; round < kReadRounds; round++) {
    ssize_t n = ::read(fd, buf, kReadBufferSize);
    if (n > 0) {
      c->bytes_in += static_cast<uint64_t>(n);
      c->last_active = now_ms();
      c->owner->conn_data(c, buf, static_cast<size_t>(n));
      // The callback may have closed, disconnected, paused or upgraded it
      // (starttls: the next read is TLS).
      if (c->state != ConnState::Open || c->paused || c->read_eof || c->tls) return;
      if (static_cast<size_t>(n) < kReadBufferSize) return;  // drained
      continue;
    }
    if (n == 0) {
      conn_read_eof(c);
      return;
    }
    int err = errno;
    if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) conn_close(c, EndKind::Error, err);
    return;
  }
}

// Runs when the queued output has all been written (low-water mark 0).
void on_write(bufferevent*, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  c->last_active = now_ms();
  if (c->state == ConnState::Closing) {
    conn_close(c, EndKind::Orderly, 0);
    return;
  }
  if (c->shutdown_wanted && !c->shutdown_done) {
    c->shutdown_done = true;
    ::shutdown(c->fd, SHUT_WR);
    if (c->read_eof) {  // both directions are done
      conn_close(c, EndKind::Orderly, 0);
      return;
    }
  }
  if (c->want_drain) {
    c->want_drain = false;
    c->owner->conn_drain(c);
  }
}

// The bufferevent reports connects and write errors (it never reads).
void on_event(bufferevent*, short what, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  int err = EVUTIL_SOCKET_ERROR();  // before anything else can change it
  if (c->state == ConnState::Connecting) {
    if (what & BEV_EVENT_CONNECTED)
      c->owner->conn_connect_result(c, 0);
    else
      c->owner->conn_connect_result(c, err ? err : ECONNREFUSED);
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) conn_close(c, EndKind::Error, err ? err : EPIPE);
}

void on_idle(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  int64_t now = now_ms();
  uint64_t out = conn_bytes_out(c);
  if (out != c->idle_seen_out) {  // bytes left for the peer since the last look
    c->idle_seen_out = out;
    c->last_active = now;
  }
  int64_t left = c->last_active + c->opt->idle_timeout_ms - now;
  if (left <= 0) {
    conn_close(c, EndKind::IdleTimeout, 0);
    return;
  }
  timeval tv = ms_timeval(left);
  event_add(c->idle_ev, &tv);
}

void apply_socket_options(Conn* c) noexcept {
  int one = 1;
  if (c->opt->nodelay) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->opt->keepalive) {
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (c->opt->keepalive_ms > 0) {
      int secs = c->opt->keepalive_ms / 1000;
      setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
    }
  }
}

}  // namespace

void conn_drop(Conn* c) noexcept {
  tls_free(c);
  if (c->bev) bufferevent_free(c->bev);  // safe inside its own callback
  c->bev = nullptr;
  if (c->rev) event_free(c->rev);  // only ever called outside its callback
  c->rev = nullptr;
  if (c->fd >= 0) evutil_closesocket(c->fd);
  c->fd = -1;
}

void conn_create(Conn* c, evutil_socket_t fd) noexcept {
  conn_drop(c);  // a client socket connecting again
  c->fd = fd;
  c->paused = c->want_drain = c->read_eof = false;
  c->shutdown_wanted = c->shutdown_done = c->end_wanted = false;
  c->end = EndKind::Orderly;
  c->reason = "";
  c->bytes_in = c->bytes_direct = c->bytes_queued = c->idle_seen_out = 0;
}

bool conn_output(Conn* c) noexcept {
  if (c->bev) return true;
  c->bev = bufferevent_socket_new(c->ctx->base, c->fd, 0);  // the fd stays ours
  if (c->bev == nullptr) return false;
  bufferevent_setcb(c->bev, nullptr, on_write, on_event, c);
  bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  if (c->state == ConnState::Open || c->state == ConnState::Closing)
    bufferevent_enable(c->bev, EV_WRITE);
  return true;
}

bool conn_opened(Conn* c) noexcept {
  c->state = ConnState::Open;
  if (c->rev == nullptr) c->rev = event_new(c->ctx->base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
  if (c->rev == nullptr) return false;
  apply_socket_options(c);
  if (!c->paused) event_add(c->rev, nullptr);
  if (c->bev) bufferevent_enable(c->bev, EV_WRITE);  // bytes sent while connecting
  c->last_active = now_ms();
  if (c->opt->idle_timeout_ms > 0) {
    if (c->idle_ev == nullptr) c->idle_ev = event_new(c->ctx->base, -1, 0, on_idle, c);
    if (c->idle_ev) {
      timeval tv = ms_timeval(c->opt->idle_timeout_ms);
      event_add(c->idle_ev, &tv);
    }
  }
  return true;
}

SendResult conn_send(Conn* c, const char* data, size_t len) noexcept {
  switch (c->state) {
    case ConnState::Idle:
    case ConnState::Closed:
      return SendResult::NotConnected;
    case ConnState::Closing:
      return SendResult::Closing;
    default:
      break;
  }
  if (c->shutdown_wanted || c->end_wanted) return SendResult::Closing;
  size_t queued = conn_queued(c);
  if (len > c->opt->max_buffer || queued > c->opt->max_buffer - len) return SendResult::Full;
  if (c->tls) {
    if (!tls_send(c, data, len)) return SendResult::Full;
  } else if (!conn_write(c, data, len)) {
    return SendResult::Full;
  }
  if (conn_queued(c) > c->opt->high_water) {
    c->want_drain = true;
    return SendResult::Above;
  }
  return SendResult::Below;
}

bool conn_write(Conn* c, const char* data, size_t len) noexcept {
  // Write-through: with nothing queued, hand the bytes to the kernel now and
  // queue only what it did not take.
  if (conn_queued(c) == 0 && len > 0 && c->state == ConnState::Open) {
    ssize_t n = ::send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
      c->bytes_direct += static_cast<uint64_t>(n);
      c->last_active = now_ms();
    }
    // On an error the bytes are queued: the bufferevent meets the same
    // error on its write and reports it from the loop.
  }
  if (len > 0) {
    if (!conn_output(c) || bufferevent_write(c->bev, data, len) != 0) return false;
    c->bytes_queued += len;
  }
  return true;
}

void conn_disconnect(Conn* c) noexcept {
  if (c->state != ConnState::Open) return;
  c->state = ConnState::Closing;
  if (c->rev) event_del(c->rev);  // no more 'data'
  tls_close_notify(c);  // after what is queued, before the FIN
  if (conn_queued(c) == 0) conn_close(c, EndKind::Orderly, 0);
  // else on_write closes once the queue is flushed
}

void conn_close(Conn* c, EndKind kind, int err) noexcept {
  if (c->state == ConnState::Idle || c->state == ConnState::Closed) return;
  c->end = kind;
  if (kind == EndKind::Error)
    c->reason = evutil_socket_error_to_string(err);  // strerror: static text
  else if (kind == EndKind::IdleTimeout)
    c->reason = "idle timeout";
  c->bytes_queued -= conn_queued(c);  // dropped, never sent
  if (c->bev) bufferevent_free(c->bev);
  c->bev = nullptr;
  // The read event may be running this very call: delete it now, free it
  // when the connection is released.
  if (c->rev) event_del(c->rev);
  if (c->fd >= 0) evutil_closesocket(c->fd);
  c->fd = -1;
  if (c->idle_ev) event_del(c->idle_ev);
  tls_closed(c);
  c->state = ConnState::Closed;
  c->owner->conn_closed(c);
}

void conn_pause(Conn* c) noexcept {
  c->paused = true;
  if (c->rev && c->state == ConnState::Open) event_del(c->rev);
}

void conn_resume(Conn* c) noexcept {
  c->paused = false;
  if (c->rev && c->state == ConnState::Open && !c->read_eof) {
    event_add(c->rev, nullptr);
    tls_resume(c);
  }
}

void conn_shutdown(Conn* c) noexcept {
  if (c->state != ConnState::Open || c->shutdown_wanted) return;
  c->shutdown_wanted = true;
  tls_close_notify(c);
  if (conn_queued(c) == 0) {
    c->shutdown_done = true;
    ::shutdown(c->fd, SHUT_WR);
    if (c->read_eof) conn_close(c, EndKind::Orderly, 0);
  }
}

void conn_release(Conn* c) noexcept {
  undefer(&c->defer);
  conn_drop(c);
  if (c->idle_ev) event_free(c->idle_ev);
  c->idle_ev = nullptr;
  c->state = ConnState::Idle;
}

evutil_socket_t conn_fd(const Conn* c) noexcept { return c->fd; }

size_t conn_queued(const Conn* c) noexcept {
  return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

uint64_t conn_bytes_out(const Conn* c) noexcept {
  if (c->tls) return tls_plain_out(c);  // plaintext, as the application sent it
  return c->bytes_direct + c->bytes_queued - conn_queued(c);
}

int push_send_result(lua_State* L, SendResult r) {
  switch (r) {
    case SendResult::Below:
    case SendResult::Above:
      lua_pushboolean(L, r == SendResult::Below);
      return 1;
    case SendResult::Full:
      lua_pushnil(L);
      lua_pushliteral(L, "send buffer full (max_buffer reached)");
      return 2;
    case SendResult::Closing:
      lua_pushnil(L);
      lua_pushliteral(L, "connection is closing");
      return 2;
    default:
      lua_pushnil(L);
      lua_pushliteral(L, "not connected");
      return 2;
  }
}

void push_conn_stats(lua_State* L, const Conn* c) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, static_cast<lua_Integer>(c->bytes_in));
  lua_setfield(L, -2, "bytes_in");
  lua_pushinteger(L, static_cast<lua_Integer>(conn_bytes_out(c)));
  lua_setfield(L, -2, "bytes_out");
  lua_pushinteger(L, static_cast<lua_Integer>(conn_queued(c)));
  lua_setfield(L, -2, "queued");
}

}  // namespace lnet
