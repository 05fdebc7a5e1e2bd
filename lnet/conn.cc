#include "conn.hh"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lnet {

namespace {

// libevent 2.1 reads at most 4 KiB per readable event (EVBUFFER_MAX_READ).
// When a read came back full, more is likely waiting: take it now, up to
// kReadBatch, so one 'data' callback carries it. A short read means the
// socket is drained, so ping-pong traffic pays no extra system call.
constexpr size_t kLibeventReadCap = 4096;
constexpr size_t kReadBatch = 256 * 1024;

void read_more(Conn* c, evbuffer* in, size_t have) noexcept {
  size_t budget = kReadBatch - have;
  if (c->opt->max_buffer < kReadBatch) budget = c->opt->max_buffer > have ? c->opt->max_buffer - have : 0;
  evutil_socket_t fd = conn_fd(c);
  while (budget > 0) {
    evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(in, static_cast<ev_ssize_t>(budget), v, 2);
    if (nv <= 0) return;
    // evbuffer_iovec has the layout of struct iovec on POSIX systems.
    ssize_t r = ::readv(fd, reinterpret_cast<iovec*>(v), nv);
    if (r <= 0) {  // drained, EOF or error: the bufferevent sees it next round
      evbuffer_commit_space(in, v, 0);
      return;
    }
    size_t left = static_cast<size_t>(r);
    size_t asked = 0;
    for (int i = 0; i < nv; i++) {
      asked += v[i].iov_len;
      if (v[i].iov_len > left) v[i].iov_len = left;
      left -= v[i].iov_len;
    }
    evbuffer_commit_space(in, v, nv);
    budget -= static_cast<size_t>(r);
    if (static_cast<size_t>(r) < asked) return;  // the socket is empty
  }
}

void on_read(bufferevent* bev, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  if (c->state != ConnState::Open || n == 0) {  // after disconnect(): no more data
    evbuffer_drain(in, n);
    return;
  }
  if (n >= kLibeventReadCap && !c->paused) {
    evbuffer_unfreeze(in, 0);  // the bufferevent keeps its input's end frozen
    read_more(c, in, n);
    evbuffer_freeze(in, 0);
    n = evbuffer_get_length(in);
  }
  c->bytes_in += n;
  c->last_active = now_ms();
  c->owner->conn_data(c, in);
}

// Runs when the output buffer has emptied (low-water mark 0).
void on_write(bufferevent*, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  c->last_active = now_ms();
  if (c->state == ConnState::Closing) {
    conn_close(c, EndKind::Orderly, 0);
    return;
  }
  if (c->shutdown_wanted && !c->shutdown_done) {
    c->shutdown_done = true;
    ::shutdown(conn_fd(c), SHUT_WR);
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
  if (what & BEV_EVENT_ERROR) {
    conn_close(c, EndKind::Error, err ? err : EIO);
    return;
  }
  if (what & BEV_EVENT_EOF) {
    c->read_eof = true;
    if (c->state != ConnState::Open) return;  // Closing: already on its way out
    if (c->opt->allow_half_open) {
      bufferevent_disable(c->bev, EV_READ);
      c->owner->conn_end(c);
      // Our side was already shut down: both directions are done.
      if (c->state == ConnState::Open && c->shutdown_done) conn_close(c, EndKind::Orderly, 0);
      return;
    }
    // The peer is done: send what is queued, then close.
    conn_disconnect(c);
  }
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
  evutil_socket_t fd = conn_fd(c);
  int one = 1;
  if (c->opt->nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->opt->keepalive) {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (c->opt->keepalive_ms > 0) {
      int secs = c->opt->keepalive_ms / 1000;
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
    }
  }
}

}  // namespace

bool conn_create(Conn* c, evutil_socket_t fd) noexcept {
  c->bev = bufferevent_socket_new(c->ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->bev == nullptr) return false;
  bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
  bufferevent_disable(c->bev, EV_READ | EV_WRITE);
  c->paused = c->want_drain = c->read_eof = false;
  c->shutdown_wanted = c->shutdown_done = c->end_wanted = false;
  c->end = EndKind::Orderly;
  c->reason = "";
  c->bytes_in = c->bytes_direct = c->bytes_queued = c->idle_seen_out = 0;
  return true;
}

void conn_opened(Conn* c) noexcept {
  c->state = ConnState::Open;
  apply_socket_options(c);
  bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
  c->last_active = now_ms();
  if (c->opt->idle_timeout_ms > 0) {
    if (c->idle_ev == nullptr) c->idle_ev = event_new(c->ctx->base, -1, 0, on_idle, c);
    if (c->idle_ev) {
      timeval tv = ms_timeval(c->opt->idle_timeout_ms);
      event_add(c->idle_ev, &tv);
    }
  }
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
  evbuffer* out = bufferevent_get_output(c->bev);
  size_t queued = evbuffer_get_length(out);
  if (len > c->opt->max_buffer || queued > c->opt->max_buffer - len) return SendResult::Full;
  // Write-through: with nothing queued, hand the bytes to the kernel now and
  // queue only what it did not take (saves the EV_WRITE round trip).
  if (queued == 0 && len > 0 && c->state == ConnState::Open) {
    ssize_t n = ::send(conn_fd(c), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
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
    if (bufferevent_write(c->bev, data, len) != 0) return SendResult::Full;
    c->bytes_queued += len;
  }
  if (evbuffer_get_length(out) > c->opt->high_water) {
    c->want_drain = true;
    return SendResult::Above;
  }
  return SendResult::Below;
}

void conn_disconnect(Conn* c) noexcept {
  if (c->state != ConnState::Open) return;
  c->state = ConnState::Closing;
  bufferevent_disable(c->bev, EV_READ);
  if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
    conn_close(c, EndKind::Orderly, 0);
  // else on_write closes once the queue is flushed
}

void conn_close(Conn* c, EndKind kind, int err) noexcept {
  if (c->state == ConnState::Idle || c->state == ConnState::Closed) return;
  c->end = kind;
  if (kind == EndKind::Error)
    c->reason = evutil_socket_error_to_string(err);  // strerror: static text
  else if (kind == EndKind::IdleTimeout)
    c->reason = "idle timeout";
  if (c->bev) {
    c->bytes_queued -= conn_queued(c);  // dropped, never sent
    bufferevent_free(c->bev);           // safe inside its own callback
    c->bev = nullptr;
  }
  if (c->idle_ev) event_del(c->idle_ev);
  c->state = ConnState::Closed;
  c->owner->conn_closed(c);
}

void conn_pause(Conn* c) noexcept {
  c->paused = true;
  if (c->bev && c->state == ConnState::Open) bufferevent_disable(c->bev, EV_READ);
}

void conn_resume(Conn* c) noexcept {
  c->paused = false;
  if (c->bev && c->state == ConnState::Open && !c->read_eof) bufferevent_enable(c->bev, EV_READ);
}

void conn_shutdown(Conn* c) noexcept {
  if (c->state != ConnState::Open || c->shutdown_wanted) return;
  c->shutdown_wanted = true;
  if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
    c->shutdown_done = true;
    ::shutdown(conn_fd(c), SHUT_WR);
    if (c->read_eof) conn_close(c, EndKind::Orderly, 0);
  }
}

void conn_release(Conn* c) noexcept {
  undefer(&c->defer);
  if (c->bev) bufferevent_free(c->bev);
  if (c->idle_ev) event_free(c->idle_ev);
  c->bev = nullptr;
  c->idle_ev = nullptr;
  c->state = ConnState::Idle;
}

evutil_socket_t conn_fd(const Conn* c) noexcept { return c->bev ? bufferevent_getfd(c->bev) : -1; }

size_t conn_queued(const Conn* c) noexcept {
  return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

uint64_t conn_bytes_out(const Conn* c) noexcept {
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
