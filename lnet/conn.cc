#include "conn.hh"

#include "errors.hh"
#include "tls.hh"

#include <event2/buffer.h>
#include <event2/event.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lnet {

namespace {

constexpr int kReadRounds = 4;   // reads per readable event, for fairness
constexpr int kMaxIov = 64;      // iovecs per sendmsg from the queue
constexpr int kDiscardRounds = 16;  // reads that empty the socket before a close

// --- plaintext transport ---------------------------------------------------

ssize_t plain_read(Conn* c, char* buf, size_t cap, int* err) noexcept {
  ssize_t n = ::read(c->fd, buf, cap);
  if (n < 0) *err = errno == EINTR ? EAGAIN : errno;
  return n;
}

ssize_t plain_write(Conn* c, const iovec* iov, int iovcnt, int* err) noexcept {
  msghdr mh;
  std::memset(&mh, 0, sizeof mh);
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = static_cast<size_t>(iovcnt);
  // writev() has no MSG_NOSIGNAL: a reset peer would raise SIGPIPE.
  ssize_t n = ::sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) *err = errno == EINTR ? EAGAIN : errno;
  return n;
}

int plain_shutdown_write(Conn* c) noexcept {
  return ::shutdown(c->fd, SHUT_WR) == 0 ? 0 : errno;
}

bool plain_has_pending(const Conn*) noexcept { return false; }

void plain_release(Conn*) noexcept {}

bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }

void on_readable(evutil_socket_t fd, short, void* arg);
void on_writable(evutil_socket_t fd, short, void* arg);

void arm_ms(event* ev, int64_t ms) noexcept {
  timeval tv = ms_timeval(ms < 0 ? 0 : ms);
  event_add(ev, &tv);
}

enum class Discard { Drained, Pending, Eof, Failed };

// Reads and drops what the peer sent, so a close does not turn into a
// reset for unread bytes (the kernel resets a socket closed with unread
// input). Pending: the peer is still sending. Failed sets c->err.
Discard discard_input(Conn* c) noexcept {
  if (c->read_eof) return Discard::Eof;
  char* buf = context_read_buffer(c->ctx);
  if (buf == nullptr) return Discard::Drained;
  bool got = false;
  for (int i = 0; i < kDiscardRounds; i++) {
    int err = 0;
    ssize_t n = c->transport->read(c, buf, kReadBufferSize, &err);
    if (n > 0) {
      c->bytes_in += static_cast<uint64_t>(n);
      got = true;
      continue;
    }
    if (n == 0) {
      c->read_eof = true;
      return Discard::Eof;
    }
    if (would_block(err) || err == kWantWrite) return got ? Discard::Pending : Discard::Drained;
    c->err = err;
    return Discard::Failed;
  }
  return Discard::Pending;
}

// A closing connection's queue is empty: our FIN goes out. When the peer
// is still sending, keep reading and discarding until its FIN (or
// linger_timeout), so its last bytes do not turn our close into a reset
// that would destroy what we sent before it was read (a lingering close).
void finish_closing(Conn* c) noexcept {
  if (c->write_end != WriteEnd::FinSent) {
    c->write_end = WriteEnd::FinSent;
    c->transport->shutdown_write(c);  // an error here shows in the read below
  }
  switch (discard_input(c)) {
    case Discard::Failed:
      conn_close(c, EndKind::Error, c->err);
      return;
    case Discard::Pending:
      c->last_write = now_ms();  // the linger clock runs from our FIN
      return;                    // on_eof (or on_linger) ends it
    default:
      break;
  }
  conn_close(c, EndKind::Orderly, 0);
}

// The queue is empty: what was waiting for that happens now.
void after_flush(Conn* c) noexcept {
  if (c->wev) event_del(c->wev);
  if (c->state == ConnState::Closing) {
    finish_closing(c);
    return;
  }
  if (c->state != ConnState::Open) return;
  if (c->write_end == WriteEnd::FinQueued) {
    c->write_end = WriteEnd::FinSent;
    int err = c->transport->shutdown_write(c);
    if (err != 0 && err != ENOTCONN) {
      conn_close(c, EndKind::Error, err);
      return;
    }
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

// Writes queued bytes until the kernel takes no more. False when the
// connection ended (an error, or the queue emptied on a closing one).
bool flush(Conn* c) noexcept {
  size_t left = conn_queued(c);
  while (left > 0) {
    evbuffer_iovec vec[kMaxIov];
    int n = evbuffer_peek(c->out, -1, nullptr, vec, kMaxIov);
    if (n > kMaxIov) n = kMaxIov;
    iovec iov[kMaxIov];
    for (int i = 0; i < n; i++) iov[i] = iovec{vec[i].iov_base, vec[i].iov_len};
    int err = 0;
    ssize_t w = c->transport->write(c, iov, n, &err);
    if (w > 0) {
      evbuffer_drain(c->out, static_cast<size_t>(w));
      c->bytes_out += static_cast<uint64_t>(w);
      c->last_active = c->last_write = now_ms();
      left -= static_cast<size_t>(w);
      continue;
    }
    if (w == 0 || would_block(err)) {
      event_add(c->wev, nullptr);
      return true;
    }
    if (err == kWantRead) {  // the transport needs input first (TLS)
      c->write_wants_read = true;
      event_del(c->wev);
      return true;
    }
    conn_close(c, EndKind::Error, err);
    return false;
  }
  after_flush(c);
  return c->state == ConnState::Open;
}

void on_eof(Conn* c) noexcept {
  c->read_eof = true;
  event_del(c->rev);
  // With framing, the peer ended inside a message: the stream is cut, and
  // says so ('disconnected' with INCOMPLETE_MESSAGE), never a silent end.
  if (c->state == ConnState::Open && conn_frames_incomplete(c)) {
    conn_close(c, EndKind::Framing, 0);
    return;
  }
  if (c->state == ConnState::Closing) {
    // Lingering after our FIN: the peer is done too. Else the flush ends it.
    if (conn_queued(c) == 0 && c->write_end == WriteEnd::FinSent) conn_close(c, EndKind::Orderly, 0);
    return;
  }
  if (c->opt.allow_half_open) {
    c->owner->conn_end(c);
    // Our side was already shut down: both directions are done.
    if (c->state == ConnState::Open && c->write_end == WriteEnd::FinSent)
      conn_close(c, EndKind::Orderly, 0);
    return;
  }
  conn_disconnect(c);  // the peer is done: send what is queued, then close
}

void read_some(Conn* c) noexcept;

void on_readable(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  if (c->tls && tls_handshaking(c)) {
    // The owner hears of the end ('connected', 'secured'); its callback
    // may have closed, paused or disconnected the connection.
    if (!tls_handshake(c)) return;
    if (c->state != ConnState::Open && c->state != ConnState::Closing) return;
    if (halted(c->ctx)) {  // records already read wait for the next net.loop()
      if (c->transport->has_pending(c)) event_active(c->rev, EV_READ, 0);
      return;
    }
  }
  read_some(c);
  // Fairness stops after a few rounds; bytes the transport already holds
  // (TLS records read ahead) would otherwise wait for new network input.
  if (c->state == ConnState::Open && !c->paused && !c->read_eof &&
      c->transport->has_pending(c))
    event_active(c->rev, EV_READ, 0);
}

void read_some(Conn* c) noexcept {
  if (c->write_wants_read) {
    c->write_wants_read = false;
    flush(c);  // may fire 'drain', end the connection, or halt the loop
    if (c->state != ConnState::Open && c->state != ConnState::Closing) return;
    if (halted(c->ctx)) return;  // the socket stays readable: next net.loop()
  }
  // Messages a halted loop left in the framer go before anything new.
  if (!conn_frames_drain(c)) return;
  char* buf = context_read_buffer(c->ctx);
  if (buf == nullptr) {
    conn_close(c, EndKind::Error, ENOMEM);
    return;
  }
  for (int round = 0; round < kReadRounds; round++) {
    bool closing = c->state == ConnState::Closing;
    if (!closing && (c->state != ConnState::Open || c->paused)) return;
    int err = 0;
    ssize_t n = c->transport->read(c, buf, kReadBufferSize, &err);
    if (n > 0) {
      c->bytes_in += static_cast<uint64_t>(n);
      c->last_active = now_ms();
      if (!closing) {
        // With framing, whole messages; else a coroutine parked on the
        // connection (net.co) takes the data; else the owner's 'data'.
        if (!conn_frames(c, buf, static_cast<size_t>(n)) && !co_deliver(c, buf, static_cast<size_t>(n)))
          c->owner->conn_data(c, buf, static_cast<size_t>(n));
        // The callback may have closed, disconnected or paused it, or raised
        // (or called net.stop()): then nothing more is delivered this round;
        // the rest waits in the socket for the next net.loop().
        if (c->state != ConnState::Open || c->paused || c->read_eof || halted(c->ctx)) return;
      }
      if (static_cast<size_t>(n) < kReadBufferSize && !c->transport->has_pending(c)) return;
      continue;
    }
    if (n == 0) {
      on_eof(c);
      return;
    }
    if (would_block(err)) return;
    if (err == kWantWrite) {  // the transport must write first (TLS)
      c->read_wants_write = true;
      event_add(c->wev, nullptr);
      return;
    }
    conn_close(c, EndKind::Error, err);
    return;
  }
}

void on_writable(evutil_socket_t fd, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  if (c->tls && tls_handshaking(c) && c->state == ConnState::Open) {
    event_del(c->wev);  // tls_handshake adds it again while it must write
    if (!tls_handshake(c)) return;
    if (c->state != ConnState::Open && c->state != ConnState::Closing) return;
    c->write_wants_read = false;  // the queue may go now
  }
  if (c->state == ConnState::Connecting) {
    event_del(c->wev);
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    c->owner->conn_connect_result(c, err);
    return;
  }
  if (c->read_wants_write) {
    c->read_wants_write = false;
    on_readable(fd, EV_READ, c);
    if (c->state != ConnState::Open && c->state != ConnState::Closing) return;
    if (halted(c->ctx)) {
      event_add(c->wev, nullptr);  // flush on the next net.loop()
      return;
    }
  }
  flush(c);
}

void on_idle(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  if (c->state != ConnState::Open || c->paused) return;
  int64_t left = c->last_active + c->opt.idle_timeout_ms - now_ms();
  if (left > 0) {
    arm_ms(c->idle_ev, left);
    return;
  }
  conn_close(c, EndKind::IdleTimeout, 0);
}

void on_linger(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  if (c->state != ConnState::Closing) return;
  // The peer took bytes lately: it drains, slowly. Wait on.
  int64_t left = c->last_write + c->opt.linger_timeout_ms - now_ms();
  if (left > 0) {
    arm_ms(c->linger_ev, left);
    return;
  }
  conn_close(c, EndKind::LingerTimeout, 0);
}

void apply_socket_options(Conn* c) noexcept {
  int one = 1;
  if (c->opt.nodelay) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (c->opt.keepalive) {
    setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (c->opt.keepalive_ms > 0) {
      int secs = c->opt.keepalive_ms / 1000;
      setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof secs);
    }
  }
}

// Frees the socket and its I/O events (not the timers).
void free_io(Conn* c) noexcept {
  if (c->rev) event_free(c->rev);
  if (c->wev) event_free(c->wev);
  c->rev = c->wev = nullptr;
  if (c->fd >= 0) evutil_closesocket(c->fd);
  c->fd = -1;
}

void drop_queue(Conn* c) noexcept {
  if (c->out) evbuffer_free(c->out);
  c->out = nullptr;
}

bool queue(Conn* c, const char* data, size_t len) noexcept {
  if (c->out == nullptr) c->out = evbuffer_new();
  return c->out && evbuffer_add(c->out, data, len) == 0;
}

}  // namespace

const Transport kPlainTransport = {plain_read, plain_write, plain_shutdown_write,
                                   plain_has_pending, plain_release};

void conn_create(Conn* c, const Options& opt) noexcept {
  conn_release(c);  // a client socket connecting again
  c->opt = opt;  // its ConnOptions part
  c->transport = &kPlainTransport;
  c->end = EndKind::Orderly;
  c->write_end = WriteEnd::Open;
  c->read_eof = c->want_drain = c->close_queued = false;
  c->write_wants_read = c->read_wants_write = false;
  c->err = 0;
  c->bytes_in = c->bytes_out = 0;
}

bool conn_attach(Conn* c, evutil_socket_t fd) noexcept {
  event* rev = event_new(c->ctx->base, fd, EV_READ | EV_PERSIST, on_readable, c);
  event* wev = rev ? event_new(c->ctx->base, fd, EV_WRITE | EV_PERSIST, on_writable, c) : nullptr;
  if (wev == nullptr) {
    if (rev) event_free(rev);
    return false;
  }
  free_io(c);
  c->fd = fd;
  c->rev = rev;
  c->wev = wev;
  return true;
}

void conn_connecting(Conn* c) noexcept {
  c->state = ConnState::Connecting;
  event_add(c->wev, nullptr);
}

void conn_detach(Conn* c) noexcept { free_io(c); }

bool conn_opened(Conn* c) noexcept {
  c->state = ConnState::Open;
  if (c->opt.idle_timeout_ms > 0 && c->idle_ev == nullptr) {
    c->idle_ev = event_new(c->ctx->base, -1, 0, on_idle, c);
    if (c->idle_ev == nullptr) return false;
  }
  apply_socket_options(c);
  c->last_active = c->last_write = now_ms();
  if (!c->paused) event_add(c->rev, nullptr);
  if (c->idle_ev && !c->paused) arm_ms(c->idle_ev, c->opt.idle_timeout_ms);
  if (conn_queued(c) > 0) {  // bytes sent while connecting
    event_add(c->wev, nullptr);
  } else if (c->write_end == WriteEnd::FinQueued) {  // shutdown() while connecting
    after_flush(c);
  }
  return true;
}

SendResult conn_send(Conn* c, const char* data, size_t len) noexcept {
  switch (c->state) {
    case ConnState::Idle:
      return SendResult::NotConnected;
    case ConnState::Closing:
    case ConnState::Closed:  // ended, 'disconnected' still to come
      return SendResult::Closing;
    default:
      break;
  }
  if (c->write_end != WriteEnd::Open || c->close_queued) return SendResult::Closing;
  size_t queued = conn_queued(c);
  if (c->opt.max_buffer > 0 && queued >= c->opt.max_buffer) {
    conn_close(c, EndKind::MaxBuffer, 0);
    return SendResult::MaxBuffer;
  }
  // Write-through: with nothing queued, hand the bytes to the kernel now and
  // queue only what it did not take.
  if (queued == 0 && len > 0 && c->state == ConnState::Open && !c->write_wants_read) {
    iovec iov{const_cast<char*>(data), len};
    int err = 0;
    ssize_t n = c->transport->write(c, &iov, 1, &err);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
      c->bytes_out += static_cast<uint64_t>(n);
      c->last_active = c->last_write = now_ms();
    } else if (n < 0 && err == kWantRead) {
      c->write_wants_read = true;
    }
    // On an error the bytes are queued: the write event meets the same
    // error and ends the connection from the loop.
  }
  if (len > 0) {
    if (!queue(c, data, len)) {
      conn_close(c, EndKind::Error, ENOMEM);
      return SendResult::NoMemory;
    }
    if (c->state == ConnState::Open && !c->write_wants_read) event_add(c->wev, nullptr);
  }
  if (conn_queued(c) > c->opt.high_water) {
    c->want_drain = true;
    return SendResult::Above;
  }
  return SendResult::Below;
}

void conn_disconnect(Conn* c) noexcept {
  if (c->state == ConnState::Resolving || c->state == ConnState::Connecting) {
    c->close_queued = true;  // connect, flush what was sent, close
    return;
  }
  if (c->state != ConnState::Open) return;
  c->state = ConnState::Closing;
  if (c->idle_ev) event_del(c->idle_ev);
  // Keep reading (and discarding) even when paused: a peer that is itself
  // blocked writing to us could otherwise never read our queue.
  if (!c->read_eof) event_add(c->rev, nullptr);
  if (c->opt.linger_timeout_ms > 0) {
    if (c->linger_ev == nullptr) c->linger_ev = event_new(c->ctx->base, -1, 0, on_linger, c);
    if (c->linger_ev == nullptr) {  // no timer, no bound: end it now, visibly
      conn_close(c, EndKind::Error, ENOMEM);
      return;
    }
    c->last_write = now_ms();
    arm_ms(c->linger_ev, c->opt.linger_timeout_ms);
  }
  if (conn_queued(c) == 0 && !c->write_wants_read) after_flush(c);
}

void conn_close(Conn* c, EndKind kind, int err) noexcept {
  if (c->state == ConnState::Idle || c->state == ConnState::Closed) return;
  if (kind == EndKind::Error && err == kTlsFailed) kind = EndKind::Tls;
  c->end = kind;
  c->err = err;
  // A stream lnet cuts must look cut to the peer: reset rather than FIN.
  // (close() keeps its FIN: the kernel still sends what it accepted.)
  bool reset = kind == EndKind::MaxBuffer || kind == EndKind::LingerTimeout ||
               kind == EndKind::Framing;
  drop_queue(c);
  // The I/O events may be running this very call: delete them now, free
  // them when the connection is released or reattached.
  if (c->rev) event_del(c->rev);
  if (c->wev) event_del(c->wev);
  if (c->idle_ev) event_del(c->idle_ev);
  if (c->linger_ev) event_del(c->linger_ev);
  c->transport->release(c);
  c->transport_data = nullptr;
  if (c->fd >= 0) {
    if (reset && c->state != ConnState::Connecting) {
      linger lg{1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    evutil_closesocket(c->fd);
  }
  c->fd = -1;
  c->state = ConnState::Closed;
  c->owner->conn_closed(c);
}

void conn_pause(Conn* c) noexcept {
  c->paused = true;
  if (c->state != ConnState::Open) return;
  if (c->rev) event_del(c->rev);
  if (c->idle_ev) event_del(c->idle_ev);  // paused on purpose is not idle
}

void conn_resume(Conn* c) noexcept {
  if (!c->paused) return;
  c->paused = false;
  if (c->state != ConnState::Open) return;
  c->last_active = now_ms();
  if (c->idle_ev) arm_ms(c->idle_ev, c->opt.idle_timeout_ms);
  if (c->read_eof) return;
  event_add(c->rev, nullptr);
  // Bytes the transport holds would otherwise wait for new network input.
  if (c->transport->has_pending(c)) event_active(c->rev, EV_READ, 0);
}

void conn_shutdown(Conn* c) noexcept {
  switch (c->state) {
    case ConnState::Resolving:
    case ConnState::Connecting:
      if (c->write_end == WriteEnd::Open) c->write_end = WriteEnd::FinQueued;
      return;
    case ConnState::Open:
      break;
    default:
      return;
  }
  if (c->write_end != WriteEnd::Open) return;
  c->write_end = WriteEnd::FinQueued;
  if (conn_queued(c) == 0 && !c->write_wants_read) after_flush(c);
}

void conn_release(Conn* c) noexcept {
  undefer(&c->defer);
  co_forget(c);
  if (c->state != ConnState::Idle && c->state != ConnState::Closed) c->transport->release(c);
  c->transport_data = nullptr;
  tls_free(c);
  drop_queue(c);
  free_io(c);
  conn_frames_free(c);  // after the owner read conn_end_reason()
  if (c->idle_ev) event_free(c->idle_ev);
  if (c->linger_ev) event_free(c->linger_ev);
  c->idle_ev = c->linger_ev = nullptr;
  c->state = ConnState::Idle;
}

size_t conn_queued(const Conn* c) noexcept { return c->out ? evbuffer_get_length(c->out) : 0; }

const char* conn_end_reason(const Conn* c) noexcept {
  switch (c->end) {
    case EndKind::Orderly: return "";
    case EndKind::IdleTimeout: return "idle timeout";
    case EndKind::MaxBuffer: return "send buffer full (max_buffer reached)";
    case EndKind::LingerTimeout: return "linger timeout";
    case EndKind::Framing: return conn_frames_reason(c);
    case EndKind::Tls: return tls_end_reason(c);
    default: return evutil_socket_error_to_string(c->err);  // strerror: static text
  }
}

const char* conn_end_code(const Conn* c) noexcept {
  switch (c->end) {
    case EndKind::Orderly: return nullptr;
    case EndKind::IdleTimeout: return kCodeIdleTimeout;
    case EndKind::MaxBuffer: return kCodeMaxBuffer;
    case EndKind::LingerTimeout: return kCodeLingerTimeout;
    case EndKind::Framing: return conn_frames_code(c);
    case EndKind::Tls: return tls_end_code(c);
    default: return errno_code(c->err);
  }
}

int push_send_result(lua_State* L, SendResult r) {
  const char* msg = nullptr;
  const char* code = nullptr;
  switch (r) {
    case SendResult::Below:
    case SendResult::Above:
      lua_pushboolean(L, r == SendResult::Below);
      return 1;
    case SendResult::MaxBuffer:
      msg = "send buffer full (max_buffer reached)", code = kCodeMaxBuffer;
      break;
    case SendResult::NoMemory:
      msg = "out of memory", code = "ENOMEM";
      break;
    case SendResult::Closing:
      msg = "connection is closing", code = "ESHUTDOWN";
      break;
    default:
      msg = "not connected", code = "ENOTCONN";
      break;
  }
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

void push_conn_stats(lua_State* L, const Conn* c) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, static_cast<lua_Integer>(c->bytes_in));
  lua_setfield(L, -2, "bytes_in");
  lua_pushinteger(L, static_cast<lua_Integer>(c->bytes_out));
  lua_setfield(L, -2, "bytes_out");
  lua_pushinteger(L, static_cast<lua_Integer>(conn_queued(c)));
  lua_setfield(L, -2, "queued");
}

}  // namespace lnet
