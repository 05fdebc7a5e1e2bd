// Runs the examples and the runner as real processes: the stock interpreter
// lua5.4 runs bin/lnet, which loads the built net.so through LUA_CPATH, and
// the tests talk to them over loopback with nc, curl and a small socket
// client of their own. Every wait has a deadline; every child is killed at
// the end of its test, pass or fail.
#define BOOST_TEST_MODULE processes
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hh"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// "✓" and "✗" as they appear in the seed document, and so in the unchanged
// examples: UTF-8 text that was once decoded as Mac Roman ("‚úì", "‚úó").
const std::string kCheck = "\xe2\x80\x9a\xc3\xba\xc3\xac";
const std::string kCross = "\xe2\x80\x9a\xc3\xba\xc3\xb3";

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// ---------------------------------------------------------------- processes

enum class Stream { out, err };

// A child process with its stdout and stderr collected through pipes, and
// optionally its stdin fed through one. The destructor kills it (and its
// process group) if it still runs, then reaps it.
class Process {
 public:
  Process(std::vector<std::string> argv, const std::vector<std::pair<std::string, std::string>>& env,
          bool with_stdin = false)
      : argv_(std::move(argv)) {
    int out[2], err[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    if (pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]), ::close(out[1]);
      throw std::runtime_error(errno_text("pipe2"));
    }
    if (with_stdin && pipe2(in, O_CLOEXEC) != 0) {
      ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
      throw std::runtime_error(errno_text("pipe2"));
    }
    // The environment: ours, with the given names replaced (an empty value
    // removes the name).
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      std::string name = kv.substr(0, kv.find('='));
      bool replaced = false;
      for (auto& [k, v] : env) replaced = replaced || k == name;
      if (!replaced) envs.push_back(kv);
    }
    for (auto& [k, v] : env)
      if (!v.empty()) envs.push_back(k + "=" + v);
    std::vector<char*> envp, args;
    for (auto& s : envs) envp.push_back(s.data());
    envp.push_back(nullptr);
    for (auto& s : argv_) args.push_back(s.data());
    args.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (with_stdin)
      posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    else
      posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group, so that everything it starts is killed with it;
    // default SIGPIPE handling in the child (the test ignores SIGPIPE).
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    ::close(err[1]);
    if (with_stdin) ::close(in[0]);
    if (rc != 0) {
      ::close(out[0]), ::close(err[0]);
      if (with_stdin) ::close(in[1]);
      pid_ = -1;
      throw std::runtime_error("cannot start " + argv_[0] + ": " + std::strerror(rc));
    }
    fd_[0] = out[0];
    fd_[1] = err[0];
    in_ = in[1];
  }

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  ~Process() {
    close_stdin();
    if (pid_ > 0 && !status_) {
      terminate(SIGKILL);
      wait_exit(seconds(5));
    }
    for (int& fd : fd_)
      if (fd >= 0) ::close(fd), fd = -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& out() const { return buf_[0]; }
  const std::string& err() const { return buf_[1]; }

  void write_stdin(const std::string& data) {
    size_t done = 0;
    auto deadline = Clock::now() + seconds(5);
    while (done < data.size()) {
      ssize_t n = ::write(in_, data.data() + done, data.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        throw std::runtime_error(errno_text("write to the child's stdin"));
      }
      if (Clock::now() > deadline) throw std::runtime_error("write to the child's stdin: timed out");
    }
  }

  void close_stdin() {
    if (in_ >= 0) ::close(in_), in_ = -1;
  }

  // Sends sig to the child's process group (it leads it).
  void terminate(int sig = SIGTERM) {
    if (pid_ > 0 && !status_) ::kill(-pid_, sig);
  }

  // Waits until needle appears in the stream; false on timeout or when the
  // stream ends without it.
  bool wait_for(const std::string& needle, milliseconds timeout, Stream s = Stream::out) {
    auto deadline = Clock::now() + timeout;
    int i = s == Stream::out ? 0 : 1;
    for (;;) {
      if (buf_[i].find(needle) != std::string::npos) return true;
      if (fd_[i] < 0 || Clock::now() >= deadline) return false;
      pump(deadline);
    }
  }

  // Counts the occurrences of needle in stdout, waiting until there are n.
  bool wait_count(const std::string& needle, size_t n, milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      if (count(buf_[0], needle) >= n) return true;
      if (fd_[0] < 0 || Clock::now() >= deadline) return false;
      pump(deadline);
    }
  }

  // Waits for the child to end and its output to be read: the exit code, or
  // 128 + signal when a signal ended it; nullopt on timeout.
  std::optional<int> wait_exit(milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!status_) {
      reap();
      if (status_) break;
      if (Clock::now() >= deadline) return std::nullopt;
      // Wake up regularly: a grandchild could keep the pipes open.
      pump(std::min(deadline, Clock::now() + milliseconds(20)));
    }
    // Whatever is still in the pipes (bounded: a grandchild may hold them).
    auto drain_deadline = Clock::now() + seconds(2);
    while ((fd_[0] >= 0 || fd_[1] >= 0) && Clock::now() < drain_deadline) pump(drain_deadline);
    return status_;
  }

  // SIGTERM, then SIGKILL if it does not end within a second: the status.
  int stop() {
    terminate(SIGTERM);
    auto st = wait_exit(seconds(2));
    if (!st) {
      terminate(SIGKILL);
      st = wait_exit(seconds(5));
    }
    return st.value_or(-1);
  }

  // For failure messages.
  std::string describe() const {
    std::ostringstream os;
    os << "command:";
    for (auto& a : argv_) os << " " << a;
    os << "\nstatus: ";
    if (status_)
      os << *status_;
    else
      os << "(running)";
    os << "\n--- stdout ---\n" << buf_[0] << "\n--- stderr ---\n" << buf_[1] << "\n---";
    return os.str();
  }

  static size_t count(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
    return n;
  }

 private:
  void reap() {
    if (pid_ <= 0 || status_) return;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }

  // Reads what the pipes hold, waiting at most until deadline for some.
  void pump(Clock::time_point deadline) {
    pollfd p[2];
    int n = 0, which[2];
    for (int i = 0; i < 2; ++i)
      if (fd_[i] >= 0) p[n] = {fd_[i], POLLIN, 0}, which[n++] = i;
    if (n == 0) {
      std::this_thread::sleep_for(milliseconds(std::min(remaining_ms(deadline), 10)));
      return;
    }
    int r = ::poll(p, static_cast<nfds_t>(n), remaining_ms(deadline));
    if (r <= 0) return;
    for (int k = 0; k < n; ++k) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char chunk[65536];
      ssize_t got = ::read(p[k].fd, chunk, sizeof chunk);
      int i = which[k];
      if (got > 0) {
        buf_[i].append(chunk, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fd_[i]);
        fd_[i] = -1;
      }
    }
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int fd_[2] = {-1, -1};
  int in_ = -1;
  std::string buf_[2];
  std::optional<int> status_;
};

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The environment of a child running lua5.4 with the built module.
std::vector<std::pair<std::string, std::string>> lua_env() {
  std::vector<std::pair<std::string, std::string>> env = {
      {"LUA_CPATH", lnet_test::build_path("?.so") + ";;"},
      {"LUA_INIT", ""},
      {"LUA_INIT_5_4", ""},
  };
  std::string preload = env_or_empty("LNET_PRELOAD");
  if (!preload.empty()) {
    env.emplace_back("LD_PRELOAD", preload);
    std::string asan = env_or_empty("ASAN_OPTIONS");
    env.emplace_back("ASAN_OPTIONS", asan.empty() ? "detect_leaks=0" : asan + ":detect_leaks=0");
  }
  return env;
}

// lua5.4 bin/lnet ARGS... With line_buffered, stdout is line buffered (a
// -e chunk before the runner), so that a server's lines can be waited for
// while it runs; the runner itself does not change buffering.
std::unique_ptr<Process> lnet(const std::vector<std::string>& args, bool line_buffered = false) {
  std::vector<std::string> argv = {"lua5.4"};
  if (line_buffered) argv.insert(argv.end(), {"-e", "io.stdout:setvbuf('line')"});
  argv.push_back(lnet_test::source_path("bin/lnet"));
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Process>(argv, lua_env());
}

std::string example(const std::string& name) { return lnet_test::source_path("examples/" + name + ".lua"); }

// Runs a command to completion with some input: (status, stdout, stderr).
struct Result {
  int status = -1;
  std::string out, err, text;
};
Result run(const std::vector<std::string>& argv, const std::string& input = "",
           milliseconds timeout = seconds(20)) {
  Process p(argv, {}, true);
  if (!input.empty()) p.write_stdin(input);
  p.close_stdin();
  auto st = p.wait_exit(timeout);
  Result r;
  if (!st) p.stop();
  r.status = st.value_or(-1);
  r.out = p.out();
  r.err = p.err();
  r.text = p.describe();
  return r;
}

// ------------------------------------------------------------------ sockets

// Is something listening on TCP port (any address)? Reads /proc/net/tcp[6]:
// no connection is made, so servers see nothing. nullopt where /proc is not
// available.
std::optional<bool> listening(int port) {
  bool any_file = false;
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(path);
    if (!f) continue;
    any_file = true;
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream is(line);
      std::string sl, local, remote, state;
      is >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() >= 5 && local.compare(local.size() - 5, 5, want) == 0) return true;
    }
  }
  if (!any_file) return std::nullopt;
  return false;
}

// A blocking-free TCP client for the tests: every operation has a deadline.
class TcpClient {
 public:
  TcpClient(const std::string& host, int port, milliseconds timeout = seconds(5)) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) throw std::runtime_error("getaddrinfo " + host + ": " + gai_strerror(rc));
    std::string last = "no address";
    auto deadline = Clock::now() + timeout;
    for (addrinfo* ai = res; ai && fd_ < 0; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = errno_text("connect");
        ::close(fd);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      int err = ETIMEDOUT;
      socklen_t len = sizeof err;
      if (::poll(&p, 1, remaining_ms(deadline)) == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = std::string("connect: ") + std::strerror(err);
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
    }
    freeaddrinfo(res);
    if (fd_ < 0) throw std::runtime_error(host + ":" + service + ": " + last);
  }
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;
  ~TcpClient() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
  }

  void send(const std::string& data, milliseconds timeout = seconds(5)) {
    auto deadline = Clock::now() + timeout;
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        throw std::runtime_error(errno_text("send"));
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 0) throw std::runtime_error("send: timed out");
    }
  }

  // Waits until needle has arrived after what earlier calls consumed, and
  // consumes up to its end. False on timeout or end of stream.
  bool expect(const std::string& needle, milliseconds timeout = seconds(5)) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      size_t pos = buf_.find(needle, cursor_);
      if (pos != std::string::npos) {
        cursor_ = pos + needle.size();
        return true;
      }
      if (eof_ || !fill(deadline)) return false;
    }
  }

  // Waits for the peer to close; false on timeout.
  bool wait_closed(milliseconds timeout = seconds(5)) {
    auto deadline = Clock::now() + timeout;
    while (!eof_)
      if (!fill(deadline)) return eof_;
    return true;
  }

  const std::string& received() const { return buf_; }

 private:
  // Reads once; false on timeout.
  bool fill(Clock::time_point deadline) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r <= 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0)
      buf_.append(chunk, static_cast<size_t>(n));
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
      eof_ = true;
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  size_t cursor_ = 0;
  bool eof_ = false;
};

bool wait_listening(int port, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto l = listening(port);
    if (!l) {  // no /proc: try to connect
      try {
        TcpClient probe("localhost", port, milliseconds(500));
        return true;
      } catch (const std::exception&) {
      }
    } else if (*l) {
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// A fixed port of an example must be free before the example starts.
void require_free(int port) {
  auto l = listening(port);
  BOOST_REQUIRE_MESSAGE(!l || !*l, "port " << port << " is already in use by another process");
}

// Starts an example server and waits for its ready line and its port.
std::unique_ptr<Process> start_server(const std::string& name, int port, const std::string& ready) {
  require_free(port);
  auto server = lnet({example(name)}, true);
  BOOST_REQUIRE_MESSAGE(server->wait_for(ready, seconds(10)), "no ready line\n" << server->describe());
  BOOST_REQUIRE_MESSAGE(wait_listening(port, seconds(5)), "port not listening\n" << server->describe());
  return server;
}

// Temporary scripts for the runner tests.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lnet-processes-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error(errno_text("mkdtemp"));
    path_ = tmpl;
  }
  ~TempDir() {
    for (auto& f : files_) std::remove(f.c_str());
    ::rmdir(path_.c_str());
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    files_.push_back(p);
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// The middle parts of the lines of text that are prefix + middle + suffix.
std::vector<std::string> fields(const std::string& text, const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> found;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);)
    if (line.size() >= prefix.size() + suffix.size() && line.compare(0, prefix.size(), prefix) == 0 &&
        line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0)
      found.push_back(line.substr(prefix.size(), line.size() - prefix.size() - suffix.size()));
  return found;
}

bool is_number(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

struct IgnoreSigpipe {
  IgnoreSigpipe() { ::signal(SIGPIPE, SIG_IGN); }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(IgnoreSigpipe);

#define CHECK_HAS(proc_or_text, text, needle) \
  BOOST_CHECK_MESSAGE((text).find(needle) != std::string::npos, "missing: " << (needle) << "\n" << (proc_or_text))

// Waits (up to secs) for some output of a running process.
#define SEEN_(LEVEL, proc, needle, secs)                                         \
  do {                                                                         \
    bool seen_ = (proc).wait_for(needle, seconds(secs));                       \
    BOOST_##LEVEL##_MESSAGE(seen_, "missing: " << (needle) << "\n"              \
                                               << (proc).describe());          \
  } while (0)
#define CHECK_SEEN(proc, needle, secs) SEEN_(CHECK, proc, needle, secs)
#define REQUIRE_SEEN(proc, needle, secs) SEEN_(REQUIRE, proc, needle, secs)

// ---------------------------------------------------------------- examples

BOOST_AUTO_TEST_SUITE(examples)

BOOST_AUTO_TEST_CASE(echo_server_with_nc, *boost::unit_test::timeout(60)) {
  auto server = start_server("echo_server", 8888, kCheck + " TCP server listening on localhost:8888\n");
  Process nc({"nc", "-q1", "localhost", "8888"}, {}, true);
  nc.write_stdin("hello\n");
  BOOST_REQUIRE_MESSAGE(nc.wait_for("Echo: hello\n", seconds(5)), nc.describe() << "\n" << server->describe());
  CHECK_HAS(nc.describe(), nc.out(), "Welcome to echo server!\n");
  nc.close_stdin();
  auto st = nc.wait_exit(seconds(10));
  BOOST_CHECK_MESSAGE(st && *st == 0, nc.describe());
  CHECK_SEEN(*server, kCheck + " Client disconnected:\t1\n", 5);
  CHECK_SEEN(*server, kCheck + " Client connected:\t1\n", 5);
  CHECK_SEEN(*server, "Client 1 sent: hello\\n\n", 5);
  server->stop();
  BOOST_CHECK_MESSAGE(server->err().empty(), server->describe());
}

BOOST_AUTO_TEST_CASE(http_server_with_curl, *boost::unit_test::timeout(60)) {
  auto server = start_server("http_server", 8890, kCheck + " HTTP server listening on localhost:8890\n");
  BOOST_CHECK(server->wait_for("Visit: http://localhost:8890\n", seconds(2)));

  Result root = run({"curl", "-s", "-S", "-i", "--max-time", "10", "http://localhost:8890/"});
  BOOST_REQUIRE_MESSAGE(root.status == 0, root.text << "\n" << server->describe());
  BOOST_CHECK_MESSAGE(root.out.rfind("HTTP/1.1 200 ", 0) == 0, root.text);
  CHECK_HAS(root.text, root.out, "Content-Type: text/html\r\n");
  CHECK_HAS(root.text, root.out, "\r\n\r\n<!DOCTYPE html>\n<html>\n");
  CHECK_HAS(root.text, root.out, "<h1>Hello from plua2!</h1>");
  BOOST_CHECK_MESSAGE(root.out.size() >= 7 && root.out.compare(root.out.size() - 7, 7, "</html>") == 0, root.text);

  Result time = run({"curl", "-s", "-S", "--max-time", "10", "http://localhost:8890/time"});
  BOOST_REQUIRE_MESSAGE(time.status == 0, time.text << "\n" << server->describe());
  // Valid JSON, checked by a JSON decoder.
  Result parsed = run({"lua5.4", "-e",
                       "local ok, j = pcall(require, 'cjson') if not ok then j = require 'dkjson' end "
                       "local t = assert(j.decode(io.read('a'))) "
                       "assert(t.server == 'plua2-tcp', 'server') "
                       "assert(math.type(t.timestamp) == 'integer' or type(t.timestamp) == 'number', 'timestamp') "
                       "assert(type(t.time) == 'string', 'time') print('valid')"},
                      time.out);
  BOOST_CHECK_MESSAGE(parsed.status == 0 && parsed.out == "valid\n", "body: " << time.out << "\n" << parsed.text);
  CHECK_HAS(time.text, time.out, "\"server\":\"plua2-tcp\"");

  Result nope = run({"curl", "-s", "-S", "-i", "--max-time", "10", "http://localhost:8890/nope"});
  BOOST_REQUIRE_MESSAGE(nope.status == 0, nope.text);
  BOOST_CHECK_MESSAGE(nope.out.rfind("HTTP/1.1 404 ", 0) == 0, nope.text);
  BOOST_CHECK_MESSAGE(nope.out.size() >= 9 && nope.out.compare(nope.out.size() - 9, 9, "Not Found") == 0, nope.text);

  for (const char* line : {"HTTP GET /\n", "HTTP GET /time\n", "HTTP GET /nope\n"})
    CHECK_SEEN(*server, line, 5);
  BOOST_CHECK_MESSAGE(server->wait_count(kCheck + " HTTP client disconnected:", 3, seconds(5)), server->describe());
  server->stop();
  BOOST_CHECK_MESSAGE(server->err().empty(), server->describe());
}

BOOST_AUTO_TEST_CASE(chat_server_two_clients, *boost::unit_test::timeout(60)) {
  auto server = start_server("chat_server", 8889, kCheck + " Chat server listening on localhost:8889\n");
  BOOST_CHECK(server->wait_for("Connect with: telnet localhost 8889\n", seconds(2)));
  const std::string welcome = "Welcome to plua2 chat! Enter your name: ";

  TcpClient alice("localhost", 8889);
  BOOST_REQUIRE_MESSAGE(alice.expect(welcome), alice.received() << "\n" << server->describe());
  alice.send("alice\r\n");
  BOOST_REQUIRE_MESSAGE(alice.expect("Hello alice! You can now chat.\n"), alice.received());

  TcpClient bob("localhost", 8889);
  BOOST_REQUIRE_MESSAGE(bob.expect(welcome), bob.received());
  bob.send("bob\n");
  BOOST_REQUIRE_MESSAGE(bob.expect("Hello bob! You can now chat.\n"), bob.received());
  BOOST_REQUIRE_MESSAGE(alice.expect("bob joined the chat\n"), alice.received());

  alice.send("hi bob\n");
  BOOST_REQUIRE_MESSAGE(bob.expect("alice: hi bob\n"), bob.received());
  bob.send("hello alice\n");
  BOOST_REQUIRE_MESSAGE(alice.expect("bob: hello alice\n"), alice.received());

  bob.close();
  BOOST_REQUIRE_MESSAGE(alice.expect("bob left the chat\n"), alice.received() << "\n" << server->describe());
  // Nobody else got anything meant for others.
  BOOST_CHECK_EQUAL(Process::count(alice.received(), "alice: "), 0u);

  CHECK_SEEN(*server, "Chat:\talice: hi bob\t1\n", 2);
  CHECK_SEEN(*server, "Chat:\tbob: hello alice\t1\n", 5);
  CHECK_SEEN(*server, kCheck + " Client connected:\t1\n", 5);
  CHECK_SEEN(*server, kCheck + " Client connected:\t2\n", 5);
  CHECK_SEEN(*server, kCheck + " Client disconnected:\t2\n", 5);
  alice.close();
  CHECK_SEEN(*server, kCheck + " Client disconnected:\t1\n", 5);
  server->stop();
  BOOST_CHECK_MESSAGE(server->err().empty(), server->describe());
}

BOOST_AUTO_TEST_CASE(test_connection_runs_to_completion, *boost::unit_test::timeout(60)) {
  require_free(9999);
  auto p = lnet({example("test_connection")});
  auto st = p->wait_exit(seconds(20));
  BOOST_REQUIRE_MESSAGE(st, "did not end within 20 s\n" << p->describe());
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  const std::string expected = kCheck + " Test server ready\n" + "Test client connected\n" + kCheck +
                               " Test client connected\n" + kCheck + " Received:\tEcho: Hello, test!\n" + kCheck +
                               " Test completed\n";
  // The server's and the client's "connected" may come in either order.
  CHECK_HAS(p->describe(), p->out(), kCheck + " Test completed\n");
  CHECK_HAS(p->describe(), p->out(), kCheck + " Received:\tEcho: Hello, test!\n");
  CHECK_HAS(p->describe(), p->out(), "Test client connected\n");
  BOOST_CHECK_EQUAL(p->out().size(), expected.size());
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_CASE(echo_client_against_echo_server, *boost::unit_test::timeout(60)) {
  auto server = start_server("echo_server", 8888, kCheck + " TCP server listening on localhost:8888\n");
  auto client = lnet({example("echo_client")}, true);
  REQUIRE_SEEN(*client, kCheck + " Connected to echo server\n", 5);
  // One message a second: the third echo comes about 2 s after connecting.
  BOOST_REQUIRE_MESSAGE(client->wait_for("Echo: Goodbye!", seconds(10)),
                        client->describe() << "\n" << server->describe());
  CHECK_SEEN(*client, "Welcome to echo server!\n", 5);
  CHECK_SEEN(*client, "Echo: Hello, server!", 5);
  CHECK_SEEN(*client, "Echo received:\tEcho: This is message 2", 5);
  CHECK_SEEN(*client, "Echo received:\tEcho: Goodbye!", 5);
  // The connection stays open: the client never ends by itself.
  client->stop();
  CHECK_SEEN(*server, kCheck + " Client disconnected:\t1\n", 5);
  CHECK_SEEN(*server, "Client 1 sent: This is message 2\n", 5);
  CHECK_SEEN(*server, "Client 1 sent: Goodbye!\n", 5);
  server->stop();
  BOOST_CHECK_MESSAGE(client->err().empty() && server->err().empty(), client->describe() << server->describe());
}

BOOST_AUTO_TEST_CASE(performance_test_2000_messages, *boost::unit_test::timeout(120)) {
  auto server =
      start_server("performance_test", 10000, kCheck + " Performance test server ready on localhost:10000\n");
  TcpClient client("localhost", 10000);
  // The server counts data callbacks: send one message at a time and wait
  // for its echo, so that each is one callback.
  for (int i = 1; i <= 2000; ++i) {
    std::string msg = "message " + std::to_string(i) + "\n";
    client.send(msg);
    BOOST_REQUIRE_MESSAGE(client.expect(msg), "no echo for " << msg << server->describe());
  }
  CHECK_SEEN(*server, "Processed 1000 messages in ", 5);
  CHECK_SEEN(*server, "Processed 2000 messages in ", 5);
  client.close();
  server->stop();
  BOOST_CHECK_MESSAGE(server->err().empty(), server->describe());
}

BOOST_AUTO_TEST_CASE(basic_client_redirected, *boost::unit_test::timeout(60)) {
  auto p = lnet({lnet_test::source_path("tests/lua/example_redirect.lua"), example("basic_client")});
  auto st = p->wait_exit(seconds(20));
  BOOST_REQUIRE_MESSAGE(st, "did not end within 20 s\n" << p->describe());
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  for (const std::string& line :
       {std::string("redirect: connect(www.google.com, 80) -> local server\n"),
        std::string("redirect: request GET / HTTP/1.1 (Host: www.google.com)\n"), kCheck + " Connected to server\n",
        std::string("Received:\t"), std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"),
        kCheck + " Disconnected from server\n"})
    CHECK_HAS(p->describe(), p->out(), line);
  auto sizes = fields(p->out(), "Received:\t", "\tbytes");
  BOOST_CHECK_MESSAGE(!sizes.empty() && is_number(sizes[0]), p->describe());
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_CASE(http_client_redirected, *boost::unit_test::timeout(60)) {
  auto p = lnet({lnet_test::source_path("tests/lua/example_redirect.lua"), example("http_client")});
  auto st = p->wait_exit(seconds(20));
  BOOST_REQUIRE_MESSAGE(st, "did not end within 20 s\n" << p->describe());
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  CHECK_HAS(p->describe(), p->out(), "redirect: connect(httpbin.org, 80) -> local server\n");
  CHECK_HAS(p->describe(), p->out(), "redirect: request GET /json HTTP/1.1 (Host: httpbin.org)\n");
  CHECK_HAS(p->describe(), p->out(), "HTTP Status:\t200\n");
  CHECK_HAS(p->describe(), p->out(),
            "Response Body:\t{\"slideshow\": {\"title\": \"served by example_redirect.lua\"}}\n");
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

// Run directly, with no network: the connect error reaches the example's
// error callback and the script ends normally. Name resolution may hang
// here rather than fail: then this is not checked.
void offline(const std::string& name, const std::string& error_line, const std::string& target) {
  auto p = lnet({example(name)});
  auto st = p->wait_exit(seconds(8));
  if (!st) {
    p->stop();
    BOOST_TEST_MESSAGE(name << ": did not end within 8 s (name resolution hangs here): not checked");
    return;
  }
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  // If the network is there after all, the example simply works.
  if (p->out().find(error_line) == std::string::npos) {
    BOOST_TEST_MESSAGE(name << ": no connect error (network reachable?)\n" << p->describe());
    return;
  }
  CHECK_HAS(p->describe(), p->out(), error_line + "\tconnect to " + target + " failed: ");
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_CASE(basic_client_offline, *boost::unit_test::timeout(60)) {
  offline("basic_client", kCross + " Connection error:", "www.google.com:80");
}

BOOST_AUTO_TEST_CASE(http_client_offline, *boost::unit_test::timeout(60)) {
  offline("http_client", "HTTP request failed:", "httpbin.org:80");
}

BOOST_AUTO_TEST_CASE(connection_management_sessions, *boost::unit_test::timeout(60)) {
  auto server =
      start_server("connection_management", 8891, "Connection management server on localhost:8891");
  {
    TcpClient a("localhost", 8891);
    a.send("some bytes\n");
    TcpClient b("localhost", 8891);
    std::this_thread::sleep_for(milliseconds(100));
  }  // both close
  BOOST_REQUIRE_MESSAGE(server->wait_count("session lasted", 2, seconds(5)), server->describe());
  std::vector<std::string> ids;
  for (auto& session : fields(server->out(), "Client ", " seconds, 0 bytes in, 0 bytes out")) {
    auto colon = session.find(": session lasted ");
    if (colon != std::string::npos && is_number(session.substr(0, colon)) &&
        is_number(session.substr(colon + 17)))
      ids.push_back(session.substr(0, colon));
  }
  BOOST_CHECK_MESSAGE(ids.size() == 2, server->describe());
  BOOST_CHECK_MESSAGE(ids.size() == 2 && ids[0] != ids[1], server->describe());
  server->stop();
  BOOST_CHECK_MESSAGE(server->err().empty(), server->describe());
}

BOOST_AUTO_TEST_CASE(error_handling_retries, *boost::unit_test::timeout(90)) {
  require_free(8892);
  auto start = Clock::now();
  auto p = lnet({example("error_handling")});
  auto st = p->wait_exit(seconds(40));
  auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  BOOST_REQUIRE_MESSAGE(st, "did not end within 40 s\n" << p->describe());
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  std::string expected;
  for (int i = 1; i <= 3; ++i)
    expected += kCross + " Connection failed (attempt " + std::to_string(i) +
                "/3): connect to localhost:8892 failed: Connection refused\n";
  expected += kCross + " Max reconnection attempts reached\n";
  BOOST_CHECK_EQUAL(p->out(), expected);
  // Two retries, 5 s apart.
  BOOST_CHECK_MESSAGE(elapsed >= 9500 && elapsed < 30000, "took " << elapsed << " ms");
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_CASE(data_framing_lines, *boost::unit_test::timeout(60)) {
  require_free(8893);
  auto p = lnet({example("data_framing")});
  auto st = p->wait_exit(seconds(15));
  BOOST_REQUIRE_MESSAGE(st, "did not end within 15 s\n" << p->describe());
  BOOST_CHECK_MESSAGE(*st == 0, p->describe());
  BOOST_CHECK_EQUAL(p->out(), "line:\tfirst line\nline:\tsecond line\nline:\tthird line\n");
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------ runner

BOOST_AUTO_TEST_SUITE(runner)

BOOST_AUTO_TEST_CASE(arguments_reach_the_script, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("args.lua",
                                 "print('n', select('#', ...), ...)\n"
                                 "print('arg', #arg, arg[0], arg[1], arg[2], arg[3])\n"
                                 "print('neg', arg[-1]:match('[^/]*$'), arg[-2])\n");
  auto p = lnet({script, "one", "two words", ""});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st && *st == 0, p->describe());
  std::string expected = "n\t3\tone\ttwo words\t\narg\t3\t" + script + "\tone\ttwo words\t\nneg\tlnet\tlua5.4\n";
  BOOST_CHECK_EQUAL(p->out(), expected);
}

BOOST_AUTO_TEST_CASE(globals_and_json, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("globals.lua",
                                 "assert(net == package.loaded.net)\n"
                                 "assert(setTimeout == net.setTimeout and setInterval == net.setInterval)\n"
                                 "assert(clearTimeout == net.clearTimeout and clearInterval == net.clearInterval)\n"
                                 "assert(type(json) == 'table' and type(json.encode) == 'function')\n"
                                 "print(json.encode({1, 2, 3}))\n"
                                 "local n = 0\n"
                                 "local t; t = setInterval(function(step)\n"
                                 "  n = n + step; print('tick', n)\n"
                                 "  if n == 3 then clearInterval(t) end\n"
                                 "end, 10, 1)\n");
  auto p = lnet({script});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st && *st == 0, p->describe());
  BOOST_CHECK_EQUAL(p->out(), "[1,2,3]\ntick\t1\ntick\t2\ntick\t3\n");
  BOOST_CHECK_MESSAGE(p->err().empty(), p->describe());
}

BOOST_AUTO_TEST_CASE(syntax_error_exits_1, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("bad.lua", "print('never')\nlocal x = = 1\n");
  auto p = lnet({script});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_EQUAL(p->out(), "");
  BOOST_CHECK_MESSAGE(p->err().rfind("lnet: " + script + ":2: ", 0) == 0, p->describe());
  CHECK_HAS(p->describe(), p->err(), "near '='");
}

BOOST_AUTO_TEST_CASE(missing_script_exits_1, *boost::unit_test::timeout(30)) {
  auto p = lnet({"/nonexistent/script.lua"});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_MESSAGE(p->err().rfind("lnet: cannot open /nonexistent/script.lua", 0) == 0, p->describe());
}

BOOST_AUTO_TEST_CASE(script_error_exits_1, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("top.lua", "local function f() error('top level failure') end\nf()\n");
  auto p = lnet({script});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_MESSAGE(p->err().rfind("lnet: " + script + ":1: top level failure\nstack traceback:\n", 0) == 0,
                      p->describe());
  CHECK_HAS(p->describe(), p->err(), "in local 'f'");
}

BOOST_AUTO_TEST_CASE(callback_error_exits_1_with_traceback, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("cb.lua",
                                 "local function explode() error('boom in a callback') end\n"
                                 "setTimeout(function() explode() end, 10)\n"
                                 "setTimeout(function() print('not reached') end, 5000)\n");
  auto start = Clock::now();
  auto p = lnet({script});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK(Clock::now() - start < seconds(4));
  BOOST_CHECK_EQUAL(p->out(), "");
  BOOST_CHECK_MESSAGE(p->err().rfind("lnet: " + script + ":1: boom in a callback\n", 0) == 0, p->describe());
  CHECK_HAS(p->describe(), p->err(), "stack traceback:");
  CHECK_HAS(p->describe(), p->err(), "explode");
}

BOOST_AUTO_TEST_CASE(socket_callback_error_exits_1, *boost::unit_test::timeout(30)) {
  TempDir dir;
  std::string script = dir.write("sockcb.lua",
                                 "local server = net.TCPServer()\n"
                                 "server:listen('127.0.0.1', 0, { started = function()\n"
                                 "  local _, port = server:address()\n"
                                 "  local c = net.TCPSocket()\n"
                                 "  c:connect('127.0.0.1', port, { connected = function() error('from connected') end })\n"
                                 "end })\n");
  auto p = lnet({script});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_MESSAGE(p->err().rfind("lnet: " + script + ":5: from connected\nstack traceback:\n", 0) == 0,
                      p->describe());
}

BOOST_AUTO_TEST_CASE(no_arguments_prints_usage, *boost::unit_test::timeout(30)) {
  auto p = lnet({});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 2);
  BOOST_CHECK_EQUAL(p->out(), "");
  BOOST_CHECK_MESSAGE(p->err().rfind("usage: lnet script.lua [args...]\n", 0) == 0, p->describe());
}

BOOST_AUTO_TEST_CASE(version, *boost::unit_test::timeout(30)) {
  auto p = lnet({"--version"});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st && *st == 0, p->describe());
  BOOST_CHECK_MESSAGE(p->out().rfind("lnet ", 0) == 0, p->describe());
}

BOOST_AUTO_TEST_CASE(require_sets_no_global, *boost::unit_test::timeout(30)) {
  Process p({"lua5.4", "-e",
             "local n = require 'net' "
             "assert(rawget(_G, 'net') == nil, 'global net') "
             "assert(rawget(_G, 'setTimeout') == nil and rawget(_G, 'json') == nil, 'other globals') "
             "assert(type(n.loop) == 'function') print('ok')"},
            lua_env());
  auto st = p.wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p.describe());
  BOOST_CHECK_MESSAGE(*st == 0 && p.out() == "ok\n", p.describe());
}

BOOST_AUTO_TEST_SUITE_END()
