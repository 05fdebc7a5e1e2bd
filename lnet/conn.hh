// One TCP connection over a libevent bufferevent, shared by client sockets
// and the connections a server accepts. The send and receive paths live
// here and nowhere else (the place for write-through and larger reads).
#pragma once

#include "context.hh"
#include "options.hh"

#include <event2/util.h>

#include <cstddef>
#include <cstdint>

struct bufferevent;
struct event;

namespace lnet {

struct Tls;

enum class ConnState : uint8_t {
  Idle,        // no connection (never connected, or ended and finished)
  Resolving,   // client: looking up the host
  Connecting,  // client: connect() in progress
  Open,
  Closing,     // disconnect(): flushing the queue, then closing
  Closed,      // socket gone; disconnected not yet fired (deferred)
};

enum class EndKind : uint8_t { Orderly, Error, IdleTimeout };

struct Conn;

// What a connection tells its owner. Called from libevent callbacks (never
// from inside a Lua call), so owners may dispatch Lua callbacks from them.
struct ConnOwner {
  virtual void conn_connect_result(Conn* c, int err) noexcept = 0;  // err 0: connected
  virtual void conn_data(Conn* c, const char* data, size_t len) noexcept = 0;
  virtual void conn_drain(Conn* c) noexcept = 0;
  virtual void conn_end(Conn* c) noexcept = 0;  // peer's FIN, with allow_half_open
  // The TLS handshake has finished (a failure ends the connection instead:
  // conn_closed with tls_handshake_failed(c)).
  virtual void conn_secured(Conn* c) noexcept = 0;
  // The socket is gone (state Closed). The owner defers its 'disconnected'.
  virtual void conn_closed(Conn* c) noexcept = 0;

 protected:
  ~ConnOwner() = default;
};

struct Conn {
  Deferred defer;  // first member: the owner's deferred work for this connection
  Context* ctx = nullptr;
  ConnOwner* owner = nullptr;
  const Options* opt = nullptr;
  evutil_socket_t fd = -1;     // owned by the connection
  event* rev = nullptr;        // reading: EV_READ|EV_PERSIST, made when it opens
  bufferevent* bev = nullptr;  // queued output (and a client's connect); made on need
  event* idle_ev = nullptr;
  Tls* tls = nullptr;  // the TLS transform (tls.hh), when on
  lua_Integer id = 0;  // server connections
  ConnState state = ConnState::Idle;
  EndKind end = EndKind::Orderly;
  bool paused = false;
  bool want_drain = false;
  bool read_eof = false;
  bool shutdown_wanted = false;
  bool shutdown_done = false;
  bool end_wanted = false;  // client: disconnect() while connecting
  unsigned pending = 0;  // owner-defined deferred work bits
  uint64_t bytes_in = 0;
  uint64_t bytes_direct = 0;  // written straight to the socket by send()
  uint64_t bytes_queued = 0;  // handed to the bufferevent's output buffer
  int64_t last_active = 0;    // ms, for idle_timeout
  uint64_t idle_seen_out = 0;
  const char* reason = "";    // why an abnormal end happened (static text)
};

enum class SendResult { Below, Above, Full, NotConnected, Closing };

// Starts a connection on fd (-1: none yet, for a client about to connect),
// dropping what a previous connection of the same object left.
void conn_create(Conn* c, evutil_socket_t fd) noexcept;
// Makes the bufferevent that queues output (and connects clients); false
// when out of memory.
bool conn_output(Conn* c) noexcept;
// The connection is established: options applied, reading on (unless
// paused), idle timer armed. False when out of memory.
bool conn_opened(Conn* c) noexcept;
SendResult conn_send(Conn* c, const char* data, size_t len) noexcept;
// The transport's write path (TLS records, plaintext): writes through to
// the socket while nothing is queued and queues the rest; false when out
// of memory.
bool conn_write(Conn* c, const char* data, size_t len) noexcept;
// The peer has ended its stream (FIN, or TLS close_notify).
void conn_read_eof(Conn* c) noexcept;
// Graceful: no more data callbacks, queue flushed, then closed.
void conn_disconnect(Conn* c) noexcept;
// At once: queue dropped, socket closed, state Closed, owner told.
void conn_close(Conn* c, EndKind kind, int err) noexcept;
void conn_pause(Conn* c) noexcept;
void conn_resume(Conn* c) noexcept;
void conn_shutdown(Conn* c) noexcept;
// Frees the socket, its events and queue without telling anyone; never
// from inside the connection's own read callback.
void conn_drop(Conn* c) noexcept;
// conn_drop, and the idle timer, and off the deferred queue (finalizers,
// the end of a server connection).
void conn_release(Conn* c) noexcept;

evutil_socket_t conn_fd(const Conn* c) noexcept;
size_t conn_queued(const Conn* c) noexcept;
uint64_t conn_bytes_out(const Conn* c) noexcept;
// Pushes send()'s results: true / false, or nil, message.
int push_send_result(lua_State* L, SendResult r);
// Pushes the stats table {bytes_in, bytes_out, queued}.
void push_conn_stats(lua_State* L, const Conn* c);

}  // namespace lnet
