// The network programs of examples/, run as real processes: lb.lua (round-
// robin load balancer with health checks) and proxy.lua (TCP forwarder and
// HTTP CONNECT proxy). The stock lua5.4 runs bin/lnet, which loads the built
// net.so through LUA_CPATH; the tests drive the programs over loopback with
// raw sockets, small servers of their own (threads, or lnet echo processes)
// and curl. Every wait has a deadline; every child is killed (with its
// process group) and reaped when its test ends, pass or fail.
#define BOOST_TEST_MODULE programs_net
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hh"
#include "support.hh"

namespace {

using lnet_test::Child;
using lnet_test::ClosedPort;
using lnet_test::Clock;
using lnet_test::connect_to;
using lnet_test::End;
using lnet_test::fail_errno;
using lnet_test::Fd;
using lnet_test::listen_loopback;
using lnet_test::local_port;
using lnet_test::loopback;
using lnet_test::preloaded;
using lnet_test::recv_bytes;
using lnet_test::recv_line;
using lnet_test::recv_to_end;
using lnet_test::remaining_ms;
using lnet_test::send_all;
using lnet_test::Stream;
using lnet_test::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ------------------------------------------------------------ child processes

// lua5.4 bin/lnet SCRIPT ARGS..., with a small ASan quarantine under
// LNET_PRELOAD: it keeps the RSS of the children meaningful.
std::unique_ptr<Child> lnet(const std::string& script, std::vector<std::string> args) {
  args.insert(args.begin(), script);
  return lnet_test::lnet(args, false, "quarantine_size_mb=16");
}

std::string example(const std::string& name) { return lnet_test::source_path("examples/" + name); }

// The number after the last ':' (or space) of the first line of stdout that
// starts with `prefix`; waits for it.
uint16_t read_port(Child& c, const std::string& prefix, milliseconds timeout = seconds(20)) {
  auto line = c.wait_line(prefix, timeout);
  if (!line) throw std::runtime_error("no '" + prefix + "' line in time; " + c.describe());
  size_t sep = line->find_last_of(": ");
  long port = std::strtol(line->c_str() + sep + 1, nullptr, 10);
  if (port <= 0 || port > 65535) throw std::runtime_error("bad port line: " + *line);
  return static_cast<uint16_t>(port);
}

// VmRSS / VmHWM of a process, in kB (0 when unreadable).
long proc_status_kb(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  return 0;
}

int open_fds(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') n++;
  ::closedir(d);
  return n;
}

// Waits until the process has at most `n` descriptors open.
bool wait_fds_at_most(pid_t pid, int n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int now = open_fds(pid);
    if (now >= 0 && now <= n) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// ------------------------------------------------------------------ sockets

// Sends `data` while reading back as many bytes (an echo through whatever is
// in between); returns what was read.
std::string exchange(int fd, const std::string& data, milliseconds timeout = seconds(60)) {
  auto deadline = Clock::now() + timeout;
  size_t sent = 0;
  std::string got;
  while (got.size() < data.size()) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, remaining_ms(deadline)) != 1)
      throw std::runtime_error("exchange: timed out, sent " + std::to_string(sent) + ", got " +
                               std::to_string(got.size()));
    if (sent < data.size() && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd, data.data() + sent, std::min<size_t>(data.size() - sent, 1 << 16), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) fail_errno("exchange: send");
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) got.append(buf, static_cast<size_t>(r));
      else if (r == 0) throw std::runtime_error("exchange: EOF after " + std::to_string(got.size()) + " bytes");
      else if (errno != EAGAIN && errno != EINTR) fail_errno("exchange: recv");
    }
  }
  return got;
}

// Deterministic bytes, different for every seed.
std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// ------------------------------------------------------ servers in threads

// Accepts connections on a loopback port and runs `handler` on each, one at
// a time, in its own thread. Accepted sockets are blocking with 60 s send
// and receive timeouts, so a handler never waits forever. The destructor
// stops and joins the thread. A handler's exception is kept in error().
class ThreadServer {
 public:
  using Handler = std::function<void(int fd)>;
  explicit ThreadServer(Handler h) : listener_(listen_loopback()), handler_(std::move(h)) {
    port_ = local_port(listener_.get());
    thread_ = std::thread([this] { run(); });
  }
  ~ThreadServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int handled() const { return handled_; }
  std::string error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  // Waits until `n` handlers have returned.
  bool wait_handled(int n, milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (handled_ < n) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return true;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.get() < 0) continue;
      accepted_++;
      timeval tv{60, 0};
      ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      try {
        handler_(conn.get());
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ += std::string(e.what()) + "\n";
      }
      handled_++;
    }
  }

  Fd listener_;
  uint16_t port_ = 0;
  Handler handler_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0}, handled_{0};
  std::mutex mu_;
  std::string error_;
};

// Blocking helpers for handlers.
std::string read_to_eof_blocking(int fd, size_t limit = 64 << 20) {
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r > 0) got.append(buf, static_cast<size_t>(r));
    else if (r == 0) return got;
    else if (errno == EINTR) continue;
    else fail_errno("handler recv");
    if (got.size() > limit) throw std::runtime_error("handler: too much data");
  }
}

void write_all_blocking(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n > 0) data += n, len -= static_cast<size_t>(n);
    else if (n < 0 && errno == EINTR) continue;
    else fail_errno("handler send");
  }
}

// Echoes until EOF, then sends FIN and returns (the socket is closed after).
void echo_handler(int fd) {
  std::vector<char> buf(256 * 1024);
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r > 0) write_all_blocking(fd, buf.data(), static_cast<size_t>(r));
    else if (r == 0) break;
    else if (errno == EINTR) continue;
    else fail_errno("echo recv");
  }
  ::shutdown(fd, SHUT_WR);
}

// ------------------------------------------------------ lnet echo backends

// An lnet echo server that greets each client with its name and a newline,
// then echoes; prints "port N" once listening. Listens on the port given
// (0: any), with SO_REUSEADDR (set by lnet), so that a killed backend can be
// restarted on the same port.
const char* kEchoBackend = R"(
local name, port = arg[1], math.tointeger(tonumber(arg[2]))
local server = net.TCPServer()
server:listen("127.0.0.1", port, {
  connected = function(id) server:send(id, name .. "\n") end,
  data = function(id, data)
    if server:send(id, data) == false then server:pause(id) end
  end,
  drain = function(id) server:resume(id) end,
  started = function()
    local _, p = server:address()
    print("port " .. p)
    io.stdout:flush()
  end,
  error = function(message) io.stderr:write(message, "\n") os.exit(1) end,
})
)";

struct Backend {
  std::string name;
  uint16_t port = 0;
  std::unique_ptr<Child> proc;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

void start_backend(Backend& b, const std::string& script) {
  b.proc = lnet(script, {b.name, std::to_string(b.port)});
  b.port = read_port(*b.proc, "port ");
}

// A client of the balancer: its socket and the backend that greeted it.
struct LbClient {
  Fd fd;
  std::string backend;
};

LbClient lb_connect(uint16_t port) {
  LbClient c;
  c.fd = connect_to(port);
  c.backend = recv_line(c.fd.get(), seconds(20));
  return c;
}

// What stream_echo saw.
struct StreamResult {
  bool eof = false;
  size_t sent = 0, got = 0, sent_before_reading = 0;
  long max_rss = 0, hwm = 0;  // kB, of the watched process
  double secs = 0;
};

// Streams `total` bytes of a deterministic pattern into fd while checking
// that the same bytes come back (through an echo), reading nothing for the
// first `pause`; half-closes once all is sent and reads until EOF. Samples
// the RSS of process `watched` every 100 ms. Bounded by `timeout`.
StreamResult stream_echo(int fd, size_t total, milliseconds pause, pid_t watched, seconds timeout) {
  StreamResult r;
  const size_t period = (1u << 20) + 7;  // the pattern repeats with an odd period
  const size_t chunk = 256 * 1024;
  std::string pat = pattern(period + chunk, 42);
  for (size_t i = period; i < pat.size(); i++) pat[i] = pat[i - period];

  auto t0 = Clock::now();
  auto reading_from = t0 + pause;
  auto deadline = t0 + timeout;
  size_t& sent = r.sent;
  size_t& got = r.got;
  size_t& sent_before_reading = r.sent_before_reading;
  bool& eof = r.eof;
  long& max_rss = r.max_rss;
  bool shut = false, reading = false;
  auto next_sample = t0;
  std::vector<char> buf(chunk);
  while (!eof) {
    auto now = Clock::now();
    if (now >= deadline) break;
    if (now >= next_sample) {
      max_rss = std::max(max_rss, proc_status_kb(watched, "VmRSS"));
      next_sample = now + milliseconds(100);
    }
    if (!reading && now >= reading_from) {
      reading = true;
      sent_before_reading = sent;
    }
    short events = 0;
    if (sent < total) events |= POLLOUT;
    if (reading) events |= POLLIN;
    pollfd p{fd, events, 0};
    int pr = ::poll(&p, 1, 100);
    if (pr < 0 && errno != EINTR) fail_errno("poll");
    if (pr <= 0) continue;
    if (p.revents & POLLOUT) {
      size_t off = sent % period;
      size_t len = std::min(chunk, total - sent);
      ssize_t n = ::send(fd, pat.data() + off, len, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) fail_errno("send");
      if (sent == total && !shut) {
        ::shutdown(fd, SHUT_WR);  // the echo target ends once it has all
        shut = true;
      }
    }
    if (reading && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n == 0) {
        eof = true;
      } else if (n > 0) {
        size_t off = got % period;
        // buf holds at most `chunk` bytes, and pat covers off + chunk.
        if (std::memcmp(buf.data(), pat.data() + off, static_cast<size_t>(n)) != 0) {
          size_t k = 0;
          while (buf[k] == pat[off + k]) k++;
          BOOST_FAIL("content differs at byte " << got + k);
        }
        got += static_cast<size_t>(n);
        if (got > total) BOOST_FAIL("more bytes than sent: " << got);
      } else if (errno != EAGAIN && errno != EINTR) {
        fail_errno("recv");
      }
    }
  }
  r.secs = std::chrono::duration<double>(Clock::now() - t0).count();
  r.hwm = proc_status_kb(watched, "VmHWM");
  max_rss = std::max(max_rss, proc_status_kb(watched, "VmRSS"));
  return r;
}

}  // namespace

// ====================================================================== lb

BOOST_AUTO_TEST_SUITE(load_balancer)

BOOST_AUTO_TEST_CASE(round_robin_failover_and_return) {
  TempDir dir;
  std::string echo = dir.write("echo_backend.lua", kEchoBackend);
  Backend b[3];
  for (int i = 0; i < 3; i++) {
    b[i].name = "B" + std::to_string(i + 1);
    start_backend(b[i], echo);
  }
  auto lb = lnet(example("lb.lua"), {"--interval=200", "0", b[0].address(), b[1].address(), b[2].address()});
  uint16_t port = read_port(*lb, "listening on ");
  for (auto& be : b)
    BOOST_REQUIRE_MESSAGE(lb->wait_for("backend " + be.address() + " up", seconds(20)),
                          "no 'up' for " << be.address() << "; " << lb->describe());

  // 1. Nine clients, one after the other: the backends take turns.
  std::vector<LbClient> clients;
  std::map<std::string, int> share;
  for (int i = 0; i < 9; i++) {
    clients.push_back(lb_connect(port));
    share[clients.back().backend]++;
  }
  for (int i = 0; i < 9; i++)
    BOOST_CHECK_MESSAGE(clients[i].backend == clients[i % 3].backend,
                        "client " << i << " went to " << clients[i].backend << ", expected "
                                  << clients[i % 3].backend);
  for (auto& be : b) BOOST_CHECK_MESSAGE(share[be.name] == 3, be.name << " got " << share[be.name] << " of 9");
  for (size_t i = 0; i < clients.size(); i++) {
    std::string data = pattern(64 * 1024, static_cast<uint32_t>(i));
    BOOST_REQUIRE_MESSAGE(exchange(clients[i].fd.get(), data) == data, "client " << i << ": echo differs");
  }

  // 2. B2 dies. Its clients see their connection end; the others carry on
  // and lose nothing.
  b[1].proc->kill_now();
  for (size_t i = 0; i < clients.size(); i++) {
    if (clients[i].backend != "B2") continue;
    End end;
    std::string rest = recv_to_end(clients[i].fd.get(), seconds(20), &end);
    BOOST_CHECK_MESSAGE(rest.empty(), "client " << i << " of the dead backend got " << rest.size() << " bytes");
    clients[i].fd.reset();
  }
  for (size_t i = 0; i < clients.size(); i++) {
    if (clients[i].backend == "B2") continue;
    std::string data = pattern(1 << 20, static_cast<uint32_t>(100 + i));
    BOOST_REQUIRE_MESSAGE(exchange(clients[i].fd.get(), data) == data,
                          "client " << i << " on " << clients[i].backend << ": echo differs after B2 died");
  }

  // 3. New clients at once (before or after a health check notices): only
  // the live backends, in turn.
  std::map<std::string, int> after;
  std::vector<LbClient> more;
  for (int i = 0; i < 6; i++) {
    more.push_back(lb_connect(port));
    after[more.back().backend]++;
    std::string data = pattern(4096, static_cast<uint32_t>(200 + i));
    BOOST_REQUIRE(exchange(more.back().fd.get(), data) == data);
  }
  BOOST_CHECK_MESSAGE(after["B2"] == 0, "the dead backend got " << after["B2"] << " clients");
  BOOST_CHECK_MESSAGE(after["B1"] == 3 && after["B3"] == 3,
                      "B1 got " << after["B1"] << ", B3 got " << after["B3"] << " of 6");
  BOOST_REQUIRE_MESSAGE(lb->wait_for("backend " + b[1].address() + " down", seconds(20)),
                        "no 'down' for B2; " << lb->describe());

  // 4. B2 comes back on the same port: the health check returns it to the
  // rotation.
  start_backend(b[1], echo);
  BOOST_REQUIRE_MESSAGE(lb->wait_for("backend " + b[1].address() + " up", seconds(20), 2),
                        "B2 not back up; " << lb->describe());
  std::map<std::string, int> back;
  for (int i = 0; i < 6; i++) {
    more.push_back(lb_connect(port));
    back[more.back().backend]++;
    std::string data = pattern(4096, static_cast<uint32_t>(300 + i));
    BOOST_REQUIRE(exchange(more.back().fd.get(), data) == data);
  }
  for (auto& be : b) BOOST_CHECK_MESSAGE(back[be.name] == 2, be.name << " got " << back[be.name] << " of 6 after B2 returned");

  // The balancer itself is still fine.
  BOOST_CHECK(lb->running());
  BOOST_TEST_MESSAGE("lb log:\n" << lb->out());
}

BOOST_AUTO_TEST_CASE(no_live_backend_closes_the_client) {
  ClosedPort dead1, dead2;  // bound, not listening: refused for the whole test
  std::string a1 = "127.0.0.1:" + std::to_string(dead1.port()), a2 = "127.0.0.1:" + std::to_string(dead2.port());
  auto lb = lnet(example("lb.lua"), {"--interval=200", "0", a1, a2});
  uint16_t port = read_port(*lb, "listening on ");
  // Right away (the probes may not have answered) and after both are down.
  for (int round = 0; round < 2; round++) {
    Fd c = connect_to(port);
    End end;
    std::string got = recv_to_end(c.get(), seconds(20), &end);
    BOOST_CHECK_MESSAGE(got.empty(), "got " << got.size() << " bytes");
    if (round == 0) {
      BOOST_REQUIRE_MESSAGE(lb->wait_for("backend " + a1 + " down", seconds(20)) &&
                                lb->wait_for("backend " + a2 + " down", seconds(20)),
                            lb->describe());
    }
  }
  BOOST_CHECK(lb->running());
  BOOST_CHECK_MESSAGE(lb->out().find(" up") == std::string::npos, lb->describe());
}

// A backend that stops answering (its accept queue is full, so SYNs are
// dropped and connects time out) is taken out by the health check, and from
// then on no client waits for it: they all go straight to the live one.
BOOST_AUTO_TEST_CASE(unresponsive_backend_is_skipped) {
  TempDir dir;
  Backend live;
  live.name = "LIVE";
  start_backend(live, dir.write("echo_backend.lua", kEchoBackend));

  Fd hole(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(0);
  if (::bind(hole.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail_errno("bind");
  if (::listen(hole.get(), 0) != 0) fail_errno("listen");
  uint16_t hole_port = local_port(hole.get());
  std::vector<Fd> fillers;  // never accepted: they fill the queue
  for (int i = 0; i < 3; i++) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in h = loopback(hole_port);
    ::connect(f.get(), reinterpret_cast<sockaddr*>(&h), sizeof h);
    fillers.push_back(std::move(f));
  }
  std::string hole_addr = "127.0.0.1:" + std::to_string(hole_port);

  auto lb = lnet(example("lb.lua"), {"--interval=200", "--probe-timeout=300", "--connect-timeout=5000", "0",
                                     live.address(), hole_addr});
  uint16_t port = read_port(*lb, "listening on ");
  BOOST_REQUIRE_MESSAGE(lb->wait_for("backend " + hole_addr + " down", seconds(20)), lb->describe());
  for (int i = 0; i < 4; i++) {
    auto t0 = Clock::now();
    LbClient c = lb_connect(port);
    auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    BOOST_CHECK_EQUAL(c.backend, "LIVE");
    BOOST_CHECK_MESSAGE(ms < 2500, "client " << i << " waited " << ms << " ms for its backend");
    std::string data = pattern(8192, static_cast<uint32_t>(i));
    BOOST_CHECK(exchange(c.fd.get(), data) == data);
  }
  BOOST_CHECK_MESSAGE(lb->out().find("backend " + hole_addr + " up") == std::string::npos, lb->describe());
}

// 64 MiB each way through the balancer to an lnet echo backend, behind a
// client that reads nothing for 1.5 s: exact content, bounded memory, and
// the half-close at the end comes back as EOF.
BOOST_AUTO_TEST_CASE(relays_with_backpressure) {
  TempDir dir;
  Backend be;
  be.name = "ECHO";
  start_backend(be, dir.write("echo_backend.lua", kEchoBackend));
  auto lb = lnet(example("lb.lua"), {"0", be.address()});
  uint16_t port = read_port(*lb, "listening on ");
  BOOST_REQUIRE(lb->wait_for("backend " + be.address() + " up", seconds(20)));
  int base_fds = open_fds(lb->pid());
  LbClient c = lb_connect(port);
  BOOST_REQUIRE_EQUAL(c.backend, "ECHO");
  const size_t total = 64u << 20;
  StreamResult r = stream_echo(c.fd.get(), total, milliseconds(1500), lb->pid(), seconds(600));
  BOOST_TEST_MESSAGE("lb 64 MiB each way: " << r.secs << " s; sent before reading " << r.sent_before_reading
                                            << " bytes; lb VmRSS max " << r.max_rss << " kB, VmHWM " << r.hwm
                                            << " kB");
  BOOST_REQUIRE_MESSAGE(r.eof, "no EOF: sent " << r.sent << ", got " << r.got << " in " << r.secs << " s");
  BOOST_CHECK_EQUAL(r.got, total);
  long limit_kb = preloaded() ? 256 * 1024 : 64 * 1024;
  BOOST_CHECK_MESSAGE(r.hwm > 0 && r.hwm < limit_kb, "lb VmHWM " << r.hwm << " kB, limit " << limit_kb);
  BOOST_CHECK_MESSAGE(wait_fds_at_most(lb->pid(), base_fds, seconds(20)),
                      "lb has " << open_fds(lb->pid()) << " fds, " << base_fds << " before");
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  auto lb = lnet(example("lb.lua"), {"0"});
  auto st = lb->wait_exit(seconds(20));
  BOOST_REQUIRE(st);
  BOOST_CHECK_EQUAL(*st, 2);
  BOOST_CHECK(lb->err().find("usage") != std::string::npos);
  auto lb2 = lnet(example("lb.lua"), {"0", "nohostport"});
  st = lb2->wait_exit(seconds(20));
  BOOST_REQUIRE(st);
  BOOST_CHECK_EQUAL(*st, 2);
  BOOST_CHECK(lb2->err().find("bad backend") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================= forward

BOOST_AUTO_TEST_SUITE(forward)

// 200 MiB up through the forwarder to an echo target and 200 MiB back down,
// to a client that reads nothing for the first 2 s: backpressure must hold
// the forwarder's memory down, and every byte must come back in order.
BOOST_AUTO_TEST_CASE(two_hundred_mb_slow_reader_bounded_memory) {
  ThreadServer target(echo_handler);
  auto proxy = lnet(example("proxy.lua"), {"forward", "0", "127.0.0.1", std::to_string(target.port())});
  uint16_t port = read_port(*proxy, "listening on ");
  int base_fds = open_fds(proxy->pid());

  const size_t total = 200u << 20;
  Fd c = connect_to(port);
  StreamResult r = stream_echo(c.get(), total, seconds(2), proxy->pid(), seconds(600));
  size_t sent = r.sent, got = r.got, sent_before_reading = r.sent_before_reading;
  bool eof = r.eof;
  long max_rss = r.max_rss, hwm = r.hwm;
  double secs = r.secs;
  BOOST_TEST_MESSAGE("forward 200 MiB each way: " << secs << " s; sent before reading " << sent_before_reading
                                                   << " bytes; proxy VmRSS max " << max_rss << " kB, VmHWM "
                                                   << hwm << " kB");
  BOOST_REQUIRE_MESSAGE(eof, "no EOF: sent " << sent << ", got " << got << " in " << secs << " s");
  BOOST_CHECK_EQUAL(sent, total);
  BOOST_CHECK_EQUAL(got, total);
  // Backpressure: while nothing was read, sending stalled. What went in is
  // what the kernel buffers on the four sockets hold (autotuned: tens of MB
  // here, at most ~150 MB with tcp_rmem's 32 MB maximum) plus the relay's
  // queues; the memory check below is the one about the forwarder itself.
  BOOST_CHECK_MESSAGE(sent_before_reading < (160u << 20), "sent " << sent_before_reading << " bytes unread");
  long limit_kb = preloaded() ? 256 * 1024 : 64 * 1024;
  BOOST_CHECK_MESSAGE(hwm > 0 && hwm < limit_kb, "proxy VmHWM " << hwm << " kB, limit " << limit_kb);
  BOOST_CHECK_MESSAGE(target.wait_handled(1, seconds(20)), "the echo target did not finish");
  BOOST_CHECK_EQUAL(target.error(), "");
  // Both connections of the pair are closed.
  BOOST_CHECK_MESSAGE(wait_fds_at_most(proxy->pid(), base_fds, seconds(20)),
                      "proxy has " << open_fds(proxy->pid()) << " fds, " << base_fds << " before");
  BOOST_CHECK(proxy->running());
}

// The client half-closes first: its FIN reaches the target, whose answer
// (sent only after that EOF) still comes back; then both connections close.
BOOST_AUTO_TEST_CASE(half_close_from_the_client) {
  std::string seen;
  std::mutex mu;
  ThreadServer target([&](int fd) {
    std::string req = read_to_eof_blocking(fd);
    {
      std::lock_guard<std::mutex> lock(mu);
      seen = req;
    }
    std::string reply = "got " + std::to_string(req.size()) + " bytes: " + req;
    write_all_blocking(fd, reply.data(), reply.size());
  });
  auto proxy = lnet(example("proxy.lua"), {"forward", "0", "127.0.0.1", std::to_string(target.port())});
  uint16_t port = read_port(*proxy, "listening on ");
  int base_fds = open_fds(proxy->pid());

  Fd c = connect_to(port);
  send_all(c.get(), "question");
  ::shutdown(c.get(), SHUT_WR);
  End end;
  std::string reply = recv_to_end(c.get(), seconds(20), &end);
  BOOST_CHECK_EQUAL(reply, "got 8 bytes: question");
  BOOST_CHECK(end == End::eof);
  BOOST_CHECK(target.wait_handled(1, seconds(20)));
  BOOST_CHECK_EQUAL(target.error(), "");
  BOOST_CHECK_MESSAGE(wait_fds_at_most(proxy->pid(), base_fds, seconds(20)),
                      "proxy has " << open_fds(proxy->pid()) << " fds, " << base_fds << " before");
}

// The target half-closes first: the client gets its bytes and EOF, and can
// still send; the target receives that, then EOF; then both close.
BOOST_AUTO_TEST_CASE(half_close_from_the_target) {
  std::string seen;
  std::mutex mu;
  ThreadServer target([&](int fd) {
    const char banner[] = "banner, then FIN\n";
    write_all_blocking(fd, banner, sizeof banner - 1);
    ::shutdown(fd, SHUT_WR);
    std::string req = read_to_eof_blocking(fd);
    std::lock_guard<std::mutex> lock(mu);
    seen = req;
  });
  auto proxy = lnet(example("proxy.lua"), {"forward", "0", "127.0.0.1", std::to_string(target.port())});
  uint16_t port = read_port(*proxy, "listening on ");
  int base_fds = open_fds(proxy->pid());

  Fd c = connect_to(port);
  End end;
  std::string banner = recv_to_end(c.get(), seconds(20), &end);
  BOOST_CHECK_EQUAL(banner, "banner, then FIN\n");
  BOOST_REQUIRE(end == End::eof);
  std::string late = pattern(300 * 1024, 7);  // after the target's FIN
  send_all(c.get(), late);
  ::shutdown(c.get(), SHUT_WR);
  BOOST_REQUIRE(target.wait_handled(1, seconds(20)));
  {
    std::lock_guard<std::mutex> lock(mu);
    BOOST_CHECK_MESSAGE(seen == late, "the target got " << seen.size() << " bytes of " << late.size());
  }
  BOOST_CHECK_EQUAL(target.error(), "");
  BOOST_CHECK_MESSAGE(wait_fds_at_most(proxy->pid(), base_fds, seconds(20)),
                      "proxy has " << open_fds(proxy->pid()) << " fds, " << base_fds << " before");
}

// A refused target closes the client.
BOOST_AUTO_TEST_CASE(refused_target_closes_the_client) {
  ClosedPort target;
  auto proxy = lnet(example("proxy.lua"), {"forward", "0", "127.0.0.1", std::to_string(target.port())});
  uint16_t port = read_port(*proxy, "listening on ");
  Fd c = connect_to(port);
  End end;
  std::string got = recv_to_end(c.get(), seconds(20), &end);
  BOOST_CHECK(got.empty());
  BOOST_CHECK_MESSAGE(proxy->wait_for("Connection refused", seconds(20), 1, Stream::err), proxy->describe());
  BOOST_CHECK(proxy->running());
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================= connect

BOOST_AUTO_TEST_SUITE(connect_mode)

namespace {

// A tiny HTTP/1.1 server: reads the request head, answers `body`, closes.
// Keeps the request lines it saw.
struct HttpServer {
  explicit HttpServer(std::string body)
      : body_(std::move(body)), server([this](int fd) {
          std::string head;
          char c;
          while (head.find("\r\n\r\n") == std::string::npos) {
            ssize_t r = ::recv(fd, &c, 1, 0);
            if (r <= 0) throw std::runtime_error("http: request head cut short");
            head += c;
            if (head.size() > 65536) throw std::runtime_error("http: head too large");
          }
          {
            std::lock_guard<std::mutex> lock(mu);
            lines.push_back(head.substr(0, head.find("\r\n")));
          }
          std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                              std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" + body_;
          write_all_blocking(fd, reply.data(), reply.size());
          ::shutdown(fd, SHUT_WR);
          read_to_eof_blocking(fd);  // until the client closes
        }) {}
  std::string body_;
  std::mutex mu;
  std::vector<std::string> lines;
  ThreadServer server;
};

std::string text_body(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; i++) s += "line " + std::to_string(i) + " of the page\n";
  s.resize(n);
  return s;
}

std::string raw_request(uint16_t proxy_port, const std::string& request) {
  Fd c = connect_to(proxy_port);
  send_all(c.get(), request);
  End end;
  return recv_to_end(c.get(), seconds(20), &end);
}

}  // namespace

BOOST_AUTO_TEST_CASE(curl_fetches_a_page_through_the_tunnel) {
  HttpServer http(text_body(300 * 1024));
  auto proxy = lnet(example("proxy.lua"), {"connect", "0"});
  uint16_t port = read_port(*proxy, "listening on ");
  std::string url = "http://127.0.0.1:" + std::to_string(http.server.port()) + "/page";
  Child curl(
      {"curl", "-s", "-S", "--max-time", "60", "-p", "--proxy", "http://127.0.0.1:" + std::to_string(port), url});
  auto st = curl.wait_exit(seconds(90));
  BOOST_REQUIRE_MESSAGE(st, "curl did not finish");
  BOOST_CHECK_MESSAGE(*st == 0, "curl exit " << *st << ": " << curl.err() << "\n" << proxy->describe());
  BOOST_CHECK_EQUAL(curl.out().size(), http.body_.size());
  BOOST_CHECK_MESSAGE(curl.out() == http.body_, "the page differs");
  BOOST_REQUIRE(http.server.wait_handled(1, seconds(20)));
  BOOST_CHECK_EQUAL(http.server.error(), "");
  std::lock_guard<std::mutex> lock(http.mu);
  BOOST_REQUIRE_EQUAL(http.lines.size(), 1u);
  BOOST_CHECK_EQUAL(http.lines[0], "GET /page HTTP/1.1");  // origin form: it came through the tunnel
}

BOOST_AUTO_TEST_CASE(bytes_after_the_head_are_relayed) {
  ThreadServer target(echo_handler);
  auto proxy = lnet(example("proxy.lua"), {"connect", "0"});
  uint16_t port = read_port(*proxy, "listening on ");
  int base_fds = open_fds(proxy->pid());
  std::string tp = std::to_string(target.port());
  Fd c = connect_to(port);
  // The head and the first tunnel bytes in one segment.
  send_all(c.get(), "CONNECT 127.0.0.1:" + tp + " HTTP/1.1\r\nHost: 127.0.0.1:" + tp + "\r\n\r\nearly bytes|");
  std::string ok = "HTTP/1.1 200 Connection Established\r\n\r\n";
  End end;
  std::string got = recv_bytes(c.get(), ok.size() + 12, seconds(20), &end);
  BOOST_CHECK_EQUAL(got, ok + "early bytes|");
  std::string data = pattern(2 << 20, 9);
  BOOST_CHECK(exchange(c.get(), data) == data);
  ::shutdown(c.get(), SHUT_WR);
  BOOST_CHECK_EQUAL(recv_to_end(c.get(), seconds(20), &end).size(), 0u);
  BOOST_CHECK(end == End::eof);
  BOOST_CHECK(target.wait_handled(1, seconds(20)));
  BOOST_CHECK_MESSAGE(wait_fds_at_most(proxy->pid(), base_fds, seconds(20)),
                      "proxy has " << open_fds(proxy->pid()) << " fds, " << base_fds << " before");
}

BOOST_AUTO_TEST_CASE(error_answers) {
  auto proxy = lnet(example("proxy.lua"), {"connect", "0"});
  uint16_t port = read_port(*proxy, "listening on ");

  std::string r = raw_request(port, "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0, r);
  BOOST_CHECK_MESSAGE(r.find("\r\nAllow: CONNECT\r\n") != std::string::npos, r);

  ClosedPort target;
  std::string refused = "127.0.0.1:" + std::to_string(target.port());
  r = raw_request(port, "CONNECT " + refused + " HTTP/1.1\r\nHost: " + refused + "\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0, r);

  r = raw_request(port, "CONNECT no-port-here HTTP/1.1\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0, r);
  r = raw_request(port, "CONNECT 127.0.0.1:70000 HTTP/1.1\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0, r);
  r = raw_request(port, "hello\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0, r);
  r = raw_request(port, "CONNECT 127.0.0.1:80 HTTP/1.1\r\nX: " + std::string(10000, 'x') + "\r\n\r\n");
  BOOST_CHECK_MESSAGE(r.rfind("HTTP/1.1 431 ", 0) == 0, r);

  // curl sees the 502 as a failed tunnel.
  Child curl({"curl", "-s", "--max-time", "30", "-p", "--proxy", "http://127.0.0.1:" + std::to_string(port),
              "http://" + refused + "/"});
  auto st = curl.wait_exit(seconds(60));
  BOOST_REQUIRE(st);
  BOOST_CHECK_NE(*st, 0);
  BOOST_CHECK(proxy->running());
}

BOOST_AUTO_TEST_SUITE_END()
