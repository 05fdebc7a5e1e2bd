// One TCP connection, shared by client sockets and the connections a server
// accepts (muduo's TcpConnection): the Conn owns its fd, its read and write
// events, its output queue and its timers, and is the only place bytes are
// read or written. libevent's bufferevent is not used.
//
// Reading: the read event (EV_READ|EV_PERSIST) reads straight into the
// context's one 64 KiB buffer and hands it to Lua as one string.
// Writing: send() writes through to the socket while nothing is queued and
// queues only what the kernel did not take; the write event is on only
// while bytes are queued (or a client's connect is in progress).
// Every read and write goes through the connection's Transport (below), so
// TLS is a transform inside the same Conn, not a second kind of connection.
#pragma once

#include "context.hh"
#include "options.hh"

#include <event2/util.h>

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

struct event;
struct evbuffer;

namespace lnet {

// The one state of a connection. Everything else on a Conn is either an
// application wish (paused), a fact about one direction (read_eof,
// write_end) or bookkeeping; no boolean stands for a state below.
//
//   Idle --connect()--> Resolving --addresses--> Connecting --SO_ERROR 0--> Open
//   accept() --------------------------------------------------------------> Open
//   Open --disconnect() or peer's FIN--> Closing --queue flushed--> Closed
//   any of Resolving..Closing --conn_close() (error, close(), timeout)--> Closed
//   Closed --owner's deferred end ('disconnected' fired)--> Idle
enum class ConnState : uint8_t {
  Idle,        // no connection (never connected, or ended and finished)
  Resolving,   // client: looking up the host
  Connecting,  // client: non-blocking connect() in progress (write event)
  Open,        // established: reading (unless paused) and writing
  Closing,     // disconnect(): no more 'data' (reads are discarded so the
               // peer can drain), the queue flushes, our FIN goes out, then
               // the socket closes (after the peer's FIN when it was still
               // sending: a lingering close); linger_timeout resets it when
               // that takes longer without progress
  Closed,      // socket gone; the owner's deferred end has not run yet
};

// Why a connection ended; each has its stable code (errors.hh).
enum class EndKind : uint8_t {
  Orderly,        // disconnect(), close(), the peer's FIN
  Error,          // a socket error: errno in Conn::err
  IdleTimeout,    // "IDLE_TIMEOUT"
  MaxBuffer,      // "MAX_BUFFER": send() found max_buffer bytes queued
  LingerTimeout,  // "LINGER_TIMEOUT": disconnect() could not drain in time
  Framing,        // "MESSAGE_TOO_LONG" / "BAD_LENGTH": the 'framing' option refused a message
  Tls,            // a TLS failure: tls_end_reason / tls_end_code say which
};

// The write direction: what happens once the queue is empty.
enum class WriteEnd : uint8_t {
  Open,       // more may be sent
  FinQueued,  // shutdown(): end the direction once the queue is flushed
  FinSent,    // our FIN (or TLS close_notify) is out
};

struct Conn;
struct Framer;
struct Tls;

// --- The transport hook ----------------------------------------------------
// How bytes cross the socket. Plaintext (conn.cc) uses read() and
// sendmsg(MSG_NOSIGNAL); TLS will wrap the same fd. Every function is
// noexcept, never calls Lua and never frees the Conn.
//
// Results: >= 0 is a byte count (for read, 0 is the end of the stream);
// -1 sets *err to EAGAIN/EWOULDBLOCK (wait for the same direction),
// kWantRead / kWantWrite (the call needs the socket readable / writable
// first: TLS handshakes and renegotiation; the Conn retries the call from
// that event), or an errno for a failure that ends the connection.
constexpr int kWantRead = -10001;
constexpr int kWantWrite = -10002;
// A TLS failure (handshake, truncation, protocol): conn_close makes it an
// EndKind::Tls end whose message and code come from tls.hh.
constexpr int kTlsFailed = -10003;

struct Transport {
  ssize_t (*read)(Conn* c, char* buf, size_t cap, int* err) noexcept;
  ssize_t (*write)(Conn* c, const iovec* iov, int iovcnt, int* err) noexcept;
  // Ends our direction after the queue flushed (plaintext: shutdown(SHUT_WR);
  // TLS: close_notify, then the FIN). 0, or an errno.
  int (*shutdown_write)(Conn* c) noexcept;
  // Bytes already taken off the socket and not yet delivered (SSL_pending):
  // resume() delivers them without waiting for new network input.
  bool (*has_pending)(const Conn* c) noexcept;
  // Frees the transport's own state (tls); runs once, at teardown.
  void (*release)(Conn* c) noexcept;
};

// Read and written with read() and sendmsg(MSG_NOSIGNAL): no SIGPIPE.
extern const Transport kPlainTransport;

// What a connection tells its owner. Called from libevent callbacks (never
// from inside a Lua call), so owners may dispatch Lua callbacks from them.
struct ConnOwner {
  virtual void conn_connect_result(Conn* c, int err) noexcept = 0;  // err 0: connected
  virtual void conn_data(Conn* c, const char* data, size_t len) noexcept = 0;
  // Where 'data' lives, for the 'framing' option's messages (frames.cc:
  // every message of one read in one protected call): the anchored object,
  // its uservalue slot, and the id passed first (0: none).
  virtual void conn_data_callback(Conn* c, Call* call) noexcept = 0;
  virtual void conn_drain(Conn* c) noexcept = 0;
  virtual void conn_end(Conn* c) noexcept = 0;  // peer's FIN, with allow_half_open
  // The TLS handshake has finished (tls.hh). A failed one ends the
  // connection instead: conn_closed with tls_handshake_failed(c).
  virtual void conn_secured(Conn* c) noexcept = 0;
  // The socket is gone (state Closed). The owner defers its 'disconnected'.
  virtual void conn_closed(Conn* c) noexcept = 0;

 protected:
  ~ConnOwner() = default;
};

// net.co (co.cc): a coroutine parked until this connection's next data,
// which then goes to it straight from the read (no 'data' callback, no
// coroutine.resume in Lua).
struct CoBuffer;  // a net.co record's input buffer (co.cc)

struct CoWaiter {
  int slot = 0;                 // the connection's place in net.co's parked table (0: none yet)
  bool parked = false;          // a coroutine is in that place
  lua_Integer token = 0;        // < 0: valid while core reads with it; > 0: while net.co's waiting[thread] holds it
  size_t direct = 0;            // > 0: data up to this size is handed over as the string
  CoBuffer* buffer = nullptr;   // else: appended to this net.co input buffer first
  size_t max_input = 0;         // ... while it stays within this size
  CoBuffer* core = nullptr;     // the net.co record that reads this connection (linked both ways)
};

struct Conn {
  Deferred defer;  // first member: the owner's deferred work for this connection
  Context* ctx = nullptr;
  ConnOwner* owner = nullptr;
  ConnOptions opt;  // copied when the connection starts: later listen()s do not change it
  const Transport* transport = &kPlainTransport;
  void* transport_data = nullptr;  // the transport's own state (unused by tls: see tls)
  Tls* tls = nullptr;              // TLS state (tls.hh); outlives the socket until released
  evutil_socket_t fd = -1;         // owned by the connection
  event* rev = nullptr;            // EV_READ|EV_PERSIST on fd
  event* wev = nullptr;            // EV_WRITE|EV_PERSIST on fd: on while bytes wait
  evbuffer* out = nullptr;         // bytes the kernel did not take yet; made on need
  event* idle_ev = nullptr;        // idle_timeout
  event* linger_ev = nullptr;      // linger_timeout while Closing
  lua_Integer id = 0;              // server connections
  ConnState state = ConnState::Idle;
  EndKind end = EndKind::Orderly;
  WriteEnd write_end = WriteEnd::Open;
  bool paused = false;             // the application's pause(): kept across connects
  bool read_eof = false;           // the peer's FIN was read
  bool want_drain = false;         // send() went above high_water: 'drain' when empty
  bool close_queued = false;       // client: disconnect() before the connect completed
  bool write_wants_read = false;   // transport: the queued write waits for readable
  bool read_wants_write = false;   // transport: the read waits for writable
  int err = 0;                     // errno of an EndKind::Error end
  unsigned pending = 0;            // owner-defined deferred work bits
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;          // bytes the kernel accepted
  int64_t last_active = 0;         // ms: last traffic either way, for idle_timeout
  int64_t last_write = 0;          // ms: last bytes the peer took, for linger_timeout
  Framer* frames = nullptr;         // 'framing': the part of a message read so far (frames.cc)
  CoWaiter waiter;                  // net.co (co.cc)
};

enum class SendResult { Below, Above, MaxBuffer, NoMemory, NotConnected, Closing };

// Starts a connection, dropping what a previous connection of the same
// object left. Takes a copy of opt.
void conn_create(Conn* c, const Options& opt) noexcept;
// Gives the connection its socket (a client: once per address tried) and
// makes its events; false when out of memory (fd is then still the caller's).
bool conn_attach(Conn* c, evutil_socket_t fd) noexcept;
// A client's non-blocking connect() is in progress on the attached fd: the
// write event reports its result to owner->conn_connect_result.
void conn_connecting(Conn* c) noexcept;
// Closes the attached socket of a failed connect attempt (the Conn stays).
void conn_detach(Conn* c) noexcept;
// The connection is established: options applied, reading on (unless
// paused), idle timer armed, bytes queued while connecting sent. False when
// out of memory (the caller ends the connection).
bool conn_opened(Conn* c) noexcept;
SendResult conn_send(Conn* c, const char* data, size_t len) noexcept;
// Graceful: no more data callbacks, queue flushed, then closed. Before the
// connect completed: remembered, done after it.
void conn_disconnect(Conn* c) noexcept;
// THE teardown: events off, queue dropped, socket closed (reset for
// MaxBuffer/LingerTimeout), state Closed, owner told.
// Safe from any callback of the connection, and on a Closed or Idle one.
void conn_close(Conn* c, EndKind kind, int err) noexcept;
void conn_pause(Conn* c) noexcept;
void conn_resume(Conn* c) noexcept;
// Ends our direction after the queued bytes; before connect: after it.
void conn_shutdown(Conn* c) noexcept;
// Frees everything (events, queue, timers, socket) without telling anyone,
// off the deferred queue; state Idle. For finalizers and the end of a
// server connection; never from inside one of the connection's callbacks.
void conn_release(Conn* c) noexcept;

// With the 'framing' option: delivers the whole messages in data (or ends
// the connection: EndKind::Framing) and returns true; false without
// framing (frames.cc).
bool conn_frames(Conn* c, const char* data, size_t len) noexcept;
// Delivers the whole messages a halted loop left in the framer (a callback
// raised, or net.stop()); true if it did nothing or the connection may read
// on (frames.cc).
bool conn_frames_drain(Conn* c) noexcept;
// At the peer's end: true when the framer holds part of a message (the
// connection must end with EndKind::Framing, "INCOMPLETE_MESSAGE").
bool conn_frames_incomplete(Conn* c) noexcept;
void conn_frames_free(Conn* c) noexcept;
// The framing failure's message and code ("MESSAGE_TOO_LONG", "BAD_LENGTH").
const char* conn_frames_reason(const Conn* c) noexcept;
const char* conn_frames_code(const Conn* c) noexcept;

// net.co (co.cc): hands data read on c to the coroutine parked on it when
// one is and takes data of this size (true); false: the owner's conn_data.
bool co_deliver(Conn* c, const char* data, size_t len) noexcept;
// Drops the coroutine parked on c (the connection ends).
void co_forget(Conn* c) noexcept;
// For net.co's wait_data: the open connection of the server at idx with
// this id (server.cc), of the socket at idx (socket.cc); null otherwise.
Conn* server_conn(lua_State* L, int idx, lua_Integer id) noexcept;
Conn* socket_conn(lua_State* L, int idx) noexcept;

size_t conn_queued(const Conn* c) noexcept;
// The message and the stable code of the connection's end (static text);
// message "" and code null for an orderly end.
const char* conn_end_reason(const Conn* c) noexcept;
const char* conn_end_code(const Conn* c) noexcept;
// Pushes send()'s results: true / false, or nil, message, code.
int push_send_result(lua_State* L, SendResult r);
// Pushes the stats table {bytes_in, bytes_out, queued}.
void push_conn_stats(lua_State* L, const Conn* c);

}  // namespace lnet
