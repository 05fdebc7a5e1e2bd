// loadgen: a one-thread epoll load generator for TCP echo servers (loopback).
//
//   loadgen --mode pingpong|stream|churn|idle --port P [options]
//
//   --host A        server address (default 127.0.0.1)
//   --port P        server port (required)
//   --conns N       connections (pingpong, stream, idle) or concurrency (churn)
//   --duration S    measured time in seconds (idle: how long to hold)
//   --warmup S      seconds run before the measured window (not counted)
//   --count K       pingpong/churn: stop after K measured operations; stream
//                   (one connection): stop after K bytes echoed back (without
//                   --duration: no time limit but --timeout, default 300 s)
//   --size B        message size for pingpong/churn (default 64)
//   --chunk B       write size for stream (default 16384)
//   --window B      stream: most bytes in flight per connection (default 262144)
//   --timeout S     hard bound on the whole run, setup included (default duration+warmup+60)
//   --tls           speak TLS (OpenSSL, TLS 1.3, no certificate check: a
//                   benchmark peer); churn then measures full handshakes
//   --sources K     churn: spread connections over source addresses 127.0.0.1 ..
//                   127.0.0.K (default 1). Each closed connection leaves the
//                   client in TIME_WAIT; Linux reuses such a port only after
//                   1 s and connect() uses every other port, so one source
//                   address caps churn near 14,000 connections/s whatever the
//                   server. Still loopback: 127.0.0.0/8 is all on 'lo'.
//
// pingpong and idle open the connections in batches of at most 256 not yet
// echoed (the servers listen with a backlog of 511), and every connection
// first echoes one unmeasured message, so that the server has accepted and
// served all of them. pingpong then starts every connection at once, and the
// measured window begins --warmup seconds later. Any --conns works up to the
// descriptor limit (RLIMIT_NOFILE, which bench/run raises).
//
// Prints exactly one line on stdout starting with "RESULT", key=value pairs.
// idle mode also prints "READY conns=N" once every connection is open and has
// echoed one message, then holds them for --duration seconds.
// Exit status: 0 on success, 1 when no operation succeeded or on usage errors.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

enum class Mode { pingpong, stream, churn, idle };

struct Config {
  Mode mode = Mode::pingpong;
  std::string host = "127.0.0.1";
  int port = 0;
  int conns = 1;
  double duration = 5;
  double warmup = 0;
  long long count = 0;
  int size = 64;
  int chunk = 16384;
  long long window = 262144;
  double timeout = -1;
  int sources = 1;
  bool tls = false;
};

inline int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void usage(const char* msg) {
  bool help = msg == nullptr;
  if (!help) std::fprintf(stderr, "loadgen: %s\n", msg);
  std::fprintf(help ? stdout : stderr,
               "usage: loadgen --mode pingpong|stream|churn|idle --port P [--host A] [--conns N]\n"
               "       [--duration S] [--warmup S] [--count K] [--size B] [--chunk B] [--window B]\n"
               "       [--timeout S] [--sources K] [--tls]\n"
               "See the comment at the top of bench/loadgen.cc for what each flag does.\n");
  std::exit(help ? 0 : 2);
}

// The stream pattern: byte at stream offset o is pattern[o % kPeriod]; a prime
// period keeps chunk boundaries from lining up with it.
constexpr size_t kPeriod = 251;
constexpr size_t kReadBuf = 256 * 1024;

enum class State { connecting, active, closed };

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;      // --tls
  bool handshaking = false;
  State state = State::closed;
  bool want_out = false;   // EPOLLOUT currently requested
  bool ready = false;      // pingpong / idle: the first (unmeasured) echo came back
  // pingpong / churn
  int sent = 0;            // bytes of the current message written
  int got = 0;             // bytes of the current echo read
  int64_t t_start = 0;     // when the current message (or churn cycle) began
  // stream
  uint64_t out_off = 0;    // stream bytes written
  uint64_t in_off = 0;     // stream bytes read back
};

class LoadGen {
 public:
  explicit LoadGen(const Config& c) : cfg_(c) {}
  int run();

 private:
  bool open_conn(Conn& c);
  void close_conn(Conn& c);
  void set_events(Conn& c, bool out);
  void on_event(Conn& c, uint32_t ev);
  void on_connected(Conn& c);
  void start_message(Conn& c);
  void flush_message(Conn& c);
  void stream_write(Conn& c);
  void on_readable(Conn& c);
  void finish_op(Conn& c, int64_t t);
  bool measuring(int64_t t) const { return t >= t_measure_ && t_measure_ > 0; }
  void print_result();
  void handshake(Conn& c);
  ssize_t xsend(Conn& c, const void* p, size_t n);
  ssize_t xrecv(Conn& c, void* p, size_t n);
  SSL_CTX* tls_ctx_ = nullptr;

  Config cfg_;
  int ep_ = -1;
  unsigned next_source_ = 0;
  sockaddr_in addr_{};
  std::vector<Conn> conns_;
  std::vector<char> msg_;
  std::vector<unsigned char> pattern_;
  std::vector<unsigned char> rbuf_;

  int64_t t_begin_ = 0;      // process start
  int64_t t_measure_ = 0;    // start of the measured window (0 = not started)
  int64_t t_end_ = 0;        // end of measured window (deadline)
  int64_t t_stop_ = 0;       // actual stop time
  int64_t t_hard_ = 0;       // hard deadline
  bool done_ = false;

  long long ops_ = 0;        // measured operations (round trips, churn cycles)
  long long errors_ = 0;     // connect failures, resets, unexpected closes
  long long mismatches_ = 0; // echoed bytes that differ from what was sent
  uint64_t bytes_in_ = 0;    // measured bytes read back (stream)
  uint64_t bytes_out_ = 0;   // measured bytes written (stream)
  std::vector<uint32_t> lat_; // measured latencies in ns
  int connected_ = 0;         // connections that reached 'active'
  int ready_ = 0;             // pingpong / idle: connections that echoed their first message
  bool idle_announced_ = false;
  int64_t t_ready_ = 0;       // pingpong / idle: when every connection had echoed once
};

bool LoadGen::open_conn(Conn& c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    errors_++;
    return false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg_.sources > 1) {
    // Bind the source address only; the port is still chosen at connect().
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + uint32_t(next_source_++ % cfg_.sources));
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0) {
      errors_++;
      ::close(fd);
      return false;
    }
  }
  c = Conn{};
  c.fd = fd;
  c.state = State::connecting;
  c.t_start = now_ns();
  int r = connect(fd, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
  if (r < 0 && errno != EINPROGRESS) {
    errors_++;
    ::close(fd);
    c.fd = -1;
    c.state = State::closed;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = &c;
  c.want_out = true;
  epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  return true;
}

// send/recv, or SSL_write/SSL_read with --tls: errno EAGAIN when it would block.
ssize_t LoadGen::xsend(Conn& c, const void* p, size_t n) {
  if (!c.ssl) return ::send(c.fd, p, n, MSG_NOSIGNAL);
  ERR_clear_error();
  int r = SSL_write(c.ssl, p, int(n));
  if (r > 0) return r;
  int e = SSL_get_error(c.ssl, r);
  errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
  return -1;
}

ssize_t LoadGen::xrecv(Conn& c, void* p, size_t n) {
  if (!c.ssl) return ::recv(c.fd, p, n, 0);
  ERR_clear_error();
  int r = SSL_read(c.ssl, p, int(n));
  if (r > 0) return r;
  int e = SSL_get_error(c.ssl, r);
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  errno = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? EAGAIN : ECONNRESET;
  return -1;
}

void LoadGen::close_conn(Conn& c) {
  if (c.ssl) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  c.state = State::closed;
}

void LoadGen::set_events(Conn& c, bool out) {
  if (c.want_out == out) return;
  c.want_out = out;
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
}

void LoadGen::on_connected(Conn& c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    errors_++;
    close_conn(c);
    return;
  }
  if (cfg_.tls && !c.ssl) {
    c.ssl = SSL_new(tls_ctx_);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_connect_state(c.ssl);
    c.handshaking = true;
    handshake(c);
    return;
  }
  c.state = State::active;
  connected_++;
  // From now on we always watch EPOLLIN; EPOLLOUT only while output is blocked.
  c.want_out = true;
  set_events(c, false);
  switch (cfg_.mode) {
    case Mode::pingpong:  // first, unmeasured echo; the clock starts in run()
    case Mode::churn:
    case Mode::idle:
      start_message(c);
      break;
    case Mode::stream:
      if (connected_ + errors_ >= cfg_.conns) {
        t_measure_ = now_ns() + int64_t(cfg_.warmup * 1e9);
        t_end_ = t_measure_ + int64_t(cfg_.duration * 1e9);
        for (auto& o : conns_)
          if (o.state == State::active) stream_write(o);
      }
      break;
  }
}

void LoadGen::handshake(Conn& c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c.ssl);
  if (r != 1) {
    int e = SSL_get_error(c.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      epoll_event ev{};
      ev.events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
      ev.data.ptr = &c;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = e == SSL_ERROR_WANT_WRITE;
      return;
    }
    errors_++;
    close_conn(c);
    return;
  }
  c.handshaking = false;
  on_connected(c);  // now established: the rest as for plaintext
}

void LoadGen::start_message(Conn& c) {
  if (done_) return;
  c.sent = 0;
  c.got = 0;
  if (cfg_.mode != Mode::churn) c.t_start = now_ns();
  flush_message(c);
}

void LoadGen::flush_message(Conn& c) {
  while (c.sent < cfg_.size) {
    ssize_t n = xsend(c, msg_.data() + c.sent, size_t(cfg_.size - c.sent));
    if (n > 0) {
      c.sent += int(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, true);
      return;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      errors_++;
      close_conn(c);
      return;
    }
  }
  set_events(c, false);
}

void LoadGen::stream_write(Conn& c) {
  if (done_) return;
  while (c.out_off - c.in_off + size_t(cfg_.chunk) <= uint64_t(cfg_.window)) {
    size_t off = size_t(c.out_off % kPeriod);
    size_t len = size_t(cfg_.chunk);
    if (cfg_.count > 0) {  // --count: exactly that many bytes, no more
      if (c.out_off >= uint64_t(cfg_.count)) break;
      len = size_t(std::min<uint64_t>(len, uint64_t(cfg_.count) - c.out_off));
    }
    ssize_t n = xsend(c, pattern_.data() + off, len);
    if (n > 0) {
      c.out_off += uint64_t(n);
      if (measuring(now_ns())) bytes_out_ += uint64_t(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(c, true);
      return;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      errors_++;
      close_conn(c);
      return;
    }
  }
  set_events(c, false);
}

void LoadGen::finish_op(Conn& c, int64_t t) {
  if (measuring(t) && t <= t_end_) {
    ops_++;
    int64_t d = t - c.t_start;
    lat_.push_back(uint32_t(std::min<int64_t>(d, UINT32_MAX)));
    if (cfg_.count > 0 && ops_ >= cfg_.count) {
      done_ = true;
      t_stop_ = t;
    }
  }
}

void LoadGen::on_readable(Conn& c) {
  for (;;) {
    ssize_t n = xrecv(c, rbuf_.data(), rbuf_.size());
    if (n == 0) {  // the server closed: unexpected for an echo server
      errors_++;
      close_conn(c);
      if (cfg_.mode == Mode::churn && !done_) {
        // keep the concurrency: replace it
        open_conn(c);
      }
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      errors_++;
      close_conn(c);
      if (cfg_.mode == Mode::churn && !done_) open_conn(c);
      return;
    }
    int64_t t = now_ns();
    if (cfg_.mode == Mode::stream) {
      size_t off = size_t(c.in_off % kPeriod);
      if (std::memcmp(rbuf_.data(), pattern_.data() + off, size_t(n)) != 0) mismatches_++;
      c.in_off += uint64_t(n);
      if (measuring(t) && t <= t_end_) bytes_in_ += uint64_t(n);
      if (cfg_.count > 0 && c.in_off >= uint64_t(cfg_.count)) {
        done_ = true;
        t_stop_ = t;
        return;
      }
      stream_write(c);
      if (size_t(n) < rbuf_.size() && !c.ssl) return;
      continue;
    }
    // pingpong / churn / idle: one message of cfg_.size bytes in flight
    if (c.got + n > cfg_.size || std::memcmp(rbuf_.data(), msg_.data() + c.got, size_t(n)) != 0)
      mismatches_++;
    c.got += int(n);
    if (c.got < cfg_.size) continue;
    switch (cfg_.mode) {
      case Mode::pingpong:
        if (!c.ready) {  // the first echo: wait for the others (see run())
          c.ready = true;
          ready_++;
          return;
        }
        finish_op(c, t);
        start_message(c);
        break;
      case Mode::churn:
        finish_op(c, t);
        close_conn(c);
        if (!done_) open_conn(c);
        return;
      case Mode::idle:
        if (!c.ready) {
          c.ready = true;
          ready_++;
        }
        return;
      case Mode::stream:
        break;
    }
    return;
  }
}

void LoadGen::on_event(Conn& c, uint32_t ev) {
  if (c.state == State::closed) return;
  if (c.state == State::connecting) {
    if (c.handshaking)
      handshake(c);
    else if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
      on_connected(c);
    // A failed connect (or handshake): keep the churn concurrency.
    if (c.state == State::closed && cfg_.mode == Mode::churn && !done_) open_conn(c);
    return;
  }
  if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    on_readable(c);
    if (c.state != State::active) return;
  }
  if (ev & EPOLLOUT) {
    if (cfg_.mode == Mode::stream)
      stream_write(c);
    else if (c.sent < cfg_.size)
      flush_message(c);
    else
      set_events(c, false);
  }
}

int LoadGen::run() {
  signal(SIGPIPE, SIG_IGN);
  addr_.sin_family = AF_INET;
  addr_.sin_port = htons(uint16_t(cfg_.port));
  if (inet_pton(AF_INET, cfg_.host.c_str(), &addr_.sin_addr) != 1) usage("--host must be an IPv4 address");
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) {
    std::perror("epoll_create1");
    return 1;
  }
  msg_.resize(size_t(cfg_.size));
  for (size_t i = 0; i < msg_.size(); i++) msg_[i] = char('a' + i % 26);
  pattern_.resize(kPeriod + kReadBuf + size_t(cfg_.chunk));
  for (size_t i = 0; i < pattern_.size(); i++) pattern_[i] = (unsigned char)((i % kPeriod) * 7 + 13);
  rbuf_.resize(kReadBuf);
  conns_.resize(size_t(cfg_.conns));
  if (cfg_.tls) {
    tls_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(tls_ctx_, TLS1_3_VERSION);
    SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);  // churn: full handshakes
    SSL_CTX_set_mode(tls_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }

  t_begin_ = now_ns();
  double bound = cfg_.timeout > 0 ? cfg_.timeout : cfg_.duration + cfg_.warmup + 60;
  t_hard_ = t_begin_ + int64_t(bound * 1e9);

  if (cfg_.mode == Mode::churn) {
    t_measure_ = t_begin_ + int64_t(cfg_.warmup * 1e9);
    if (t_measure_ == 0) t_measure_ = 1;
    t_end_ = t_measure_ + int64_t(cfg_.duration * 1e9);
  }
  if (cfg_.mode == Mode::churn) lat_.reserve(1 << 20);
  if (cfg_.mode == Mode::pingpong) lat_.reserve(1 << 20);

  // Open connections; pingpong and idle open them in bounded batches (at
  // most 256 not yet echoed) so that the server's accept queue never overflows.
  const bool batched = cfg_.mode == Mode::idle || cfg_.mode == Mode::pingpong;
  const int batch = batched ? 256 : cfg_.conns;
  int opened = 0;
  auto open_more = [&] {
    long long inflight = opened - (batched ? ready_ : connected_) - errors_;
    while (opened < cfg_.conns && inflight < batch) {
      open_conn(conns_[size_t(opened)]);
      opened++;
      inflight++;
    }
  };
  open_more();

  std::vector<epoll_event> evs(1024);
  for (;;) {
    int64_t t = now_ns();
    if (t >= t_hard_) break;
    if (done_) break;
    if (t_end_ != 0 && t >= t_end_ && cfg_.mode != Mode::idle) {
      t_stop_ = t_end_;
      break;
    }
    if (cfg_.mode == Mode::pingpong && t_measure_ == 0) {
      if (ready_ + errors_ >= cfg_.conns && opened == cfg_.conns) {
        // every connection has echoed once: start the clock and all messages
        t_ready_ = t;
        t_measure_ = t + int64_t(cfg_.warmup * 1e9);
        t_end_ = t_measure_ + int64_t(cfg_.duration * 1e9);
        for (auto& o : conns_)
          if (o.state == State::active && o.ready) start_message(o);
      } else if (opened < cfg_.conns) {
        open_more();
      }
    }
    if (cfg_.mode == Mode::idle) {
      if (!idle_announced_ && ready_ + errors_ >= cfg_.conns && opened == cfg_.conns) {
        idle_announced_ = true;
        t_ready_ = t;
        std::printf("READY conns=%d errors=%lld setup_s=%.3f\n", ready_, errors_,
                    double(t - t_begin_) / 1e9);
        std::fflush(stdout);
        t_end_ = t + int64_t(cfg_.duration * 1e9);
      }
      if (idle_announced_ && t >= t_end_) {
        t_stop_ = t;
        break;
      }
      if (opened < cfg_.conns) open_more();
    }
    int64_t wait_until = t_hard_;
    if (t_end_ != 0) wait_until = std::min(wait_until, t_end_);
    int timeout_ms = int(std::max<int64_t>(0, (wait_until - t) / 1000000) + 1);
    if (timeout_ms > 100) timeout_ms = 100;
    int n = epoll_wait(ep_, evs.data(), int(evs.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n && !done_; i++) on_event(*static_cast<Conn*>(evs[size_t(i)].data.ptr), evs[size_t(i)].events);
  }
  if (t_stop_ == 0) t_stop_ = now_ns();
  print_result();
  for (auto& c : conns_) close_conn(c);
  bool ok = cfg_.mode == Mode::idle ? ready_ > 0 : (ops_ > 0 || bytes_in_ > 0);
  return ok ? 0 : 1;
}

double percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = size_t(p * double(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return double(v[k]) / 1000.0;  // µs
}

void LoadGen::print_result() {
  double secs = 0;
  if (t_measure_ > 0 && t_stop_ > t_measure_) secs = double(t_stop_ - t_measure_) / 1e9;
  const char* incomplete = "";
  if (cfg_.mode != Mode::idle && !done_ && (t_end_ == 0 || t_stop_ < t_end_)) incomplete = " incomplete=1";
  switch (cfg_.mode) {
    case Mode::pingpong: {
      double p50 = percentile(lat_, 0.50), p99 = percentile(lat_, 0.99);
      std::printf("RESULT mode=pingpong conns=%d connected=%d ready=%d setup_s=%.3f secs=%.3f roundtrips=%lld "
                  "rt_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%lld mismatches=%lld%s\n",
                  cfg_.conns, connected_, ready_, t_ready_ ? double(t_ready_ - t_begin_) / 1e9 : 0.0, secs, ops_,
                  secs > 0 ? double(ops_) / secs : 0.0, p50, p99, errors_, mismatches_, incomplete);
      break;
    }
    case Mode::stream:
      std::printf("RESULT mode=stream conns=%d connected=%d secs=%.3f bytes_in=%llu bytes_out=%llu "
                  "mb_per_s=%.1f errors=%lld mismatches=%lld%s\n",
                  cfg_.conns, connected_, secs, (unsigned long long)bytes_in_, (unsigned long long)bytes_out_,
                  secs > 0 ? double(bytes_in_) / secs / 1e6 : 0.0, errors_, mismatches_, incomplete);
      break;
    case Mode::churn: {
      double p50 = percentile(lat_, 0.50), p99 = percentile(lat_, 0.99);
      std::printf("RESULT mode=churn conns=%d secs=%.3f cycles=%lld conn_per_s=%.1f p50_us=%.1f "
                  "p99_us=%.1f errors=%lld mismatches=%lld%s\n",
                  cfg_.conns, secs, ops_, secs > 0 ? double(ops_) / secs : 0.0, p50, p99, errors_,
                  mismatches_, incomplete);
      break;
    }
    case Mode::idle:
      std::printf("RESULT mode=idle conns=%d held=%d secs=%.3f setup_s=%.3f errors=%lld mismatches=%lld%s\n",
                  cfg_.conns, ready_,
                  t_ready_ ? double(t_stop_ - t_ready_) / 1e9 : 0.0,
                  t_ready_ ? double(t_ready_ - t_begin_) / 1e9 : 0.0, errors_, mismatches_,
                  idle_announced_ ? "" : " incomplete=1");
      break;
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  bool duration_set = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--mode") {
      std::string m = val();
      if (m == "pingpong") cfg.mode = Mode::pingpong;
      else if (m == "stream") cfg.mode = Mode::stream;
      else if (m == "churn") cfg.mode = Mode::churn;
      else if (m == "idle") cfg.mode = Mode::idle;
      else usage("unknown mode");
    } else if (a == "--host") cfg.host = val();
    else if (a == "--port") cfg.port = std::atoi(val().c_str());
    else if (a == "--conns") cfg.conns = std::atoi(val().c_str());
    else if (a == "--duration") cfg.duration = std::atof(val().c_str()), duration_set = true;
    else if (a == "--warmup") cfg.warmup = std::atof(val().c_str());
    else if (a == "--count") cfg.count = std::atoll(val().c_str());
    else if (a == "--size") cfg.size = std::atoi(val().c_str());
    else if (a == "--chunk") cfg.chunk = std::atoi(val().c_str());
    else if (a == "--window") cfg.window = std::atoll(val().c_str());
    else if (a == "--timeout") cfg.timeout = std::atof(val().c_str());
    else if (a == "--sources") cfg.sources = std::atoi(val().c_str());
    else if (a == "--tls") cfg.tls = true;
    else if (a == "-h" || a == "--help") usage(nullptr);
    else usage(("unknown argument " + a).c_str());
  }
  if (cfg.port <= 0 || cfg.port > 65535) usage("--port is required (1..65535)");
  if (cfg.conns < 1) usage("--conns must be >= 1");
  if (cfg.size < 1 || cfg.size > 65536) usage("--size must be 1..65536");
  if (cfg.chunk < 1 || size_t(cfg.chunk) > kReadBuf) usage("--chunk must be 1..262144");
  if (cfg.window < cfg.chunk) cfg.window = cfg.chunk;
  if (cfg.sources < 1 || cfg.sources > 250) usage("--sources must be 1..250");
  if (cfg.duration < 0 || cfg.warmup < 0) usage("--duration and --warmup must be >= 0");
  if (cfg.count > 0 && (!duration_set || cfg.duration == 0)) {
    // --count alone: run until the count, bounded by --timeout (default 300 s)
    cfg.duration = 1e6;
    if (cfg.timeout <= 0) cfg.timeout = 300;
  }
  LoadGen g(cfg);
  return g.run();
}
