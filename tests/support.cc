#include "support.hh"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "harness.hh"

extern char** environ;

namespace lnet_test {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ------------------------------------------------------------------ basics

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

void fail_errno(const std::string& what) { throw std::runtime_error(errno_text(what)); }

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

bool preloaded() { return !env_or("LNET_PRELOAD").empty(); }

size_t occurrences(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size())) ++n;
  return n;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// --------------------------------------------------------------- processes

Child::Child(std::vector<std::string> argv, const Env& env, bool with_stdin) : argv_(std::move(argv)) {
  int out[2], err[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) fail_errno("pipe2");
  if (pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]);
    fail_errno("pipe2");
  }
  if (with_stdin && pipe2(in, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
    fail_errno("pipe2");
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
  // default SIGPIPE handling in the child (a test may ignore SIGPIPE).
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  start_ = Clock::now();
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
  // The reads never block: pump reads what there is.
  for (int fd : fd_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

Child::~Child() {
  close_stdin();
  kill_now();
  for (int& fd : fd_)
    if (fd >= 0) ::close(fd), fd = -1;
}

const std::string& Child::out() {
  pump(Clock::now());
  return buf_[0];
}

const std::string& Child::err() {
  pump(Clock::now());
  return buf_[1];
}

std::string Child::describe() {
  pump(Clock::now());
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

void Child::write_stdin(const std::string& data) {
  size_t done = 0;
  auto deadline = Clock::now() + seconds(5);
  while (done < data.size()) {
    ssize_t n = ::write(in_, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      fail_errno("write to the child's stdin");
    }
    if (Clock::now() > deadline) throw std::runtime_error("write to the child's stdin: timed out");
  }
}

void Child::close_stdin() {
  if (in_ >= 0) ::close(in_), in_ = -1;
}

void Child::terminate(int sig) {
  if (pid_ > 0 && !status_) ::kill(-pid_, sig);
}

bool Child::wait_for(const std::string& needle, milliseconds timeout, size_t count, Stream s) {
  auto deadline = Clock::now() + timeout;
  int i = s == Stream::out ? 0 : 1;
  for (;;) {
    if (occurrences(buf_[i], needle) >= count) return true;
    if (fd_[i] < 0 || Clock::now() >= deadline) return false;
    pump(deadline);
  }
}

std::optional<std::string> Child::wait_line(const std::string& prefix, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    const std::string& out = buf_[0];
    for (size_t at = 0, eol; (eol = out.find('\n', at)) != std::string::npos; at = eol + 1)
      if (eol - at >= prefix.size() && out.compare(at, prefix.size(), prefix) == 0) return out.substr(at, eol - at);
    if (fd_[0] < 0 || Clock::now() >= deadline) return std::nullopt;
    pump(deadline);
  }
}

std::optional<int> Child::wait_exit(milliseconds timeout) {
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

bool Child::running() {
  reap();
  return pid_ > 0 && !status_;
}

int Child::stop() {
  terminate(SIGTERM);
  auto st = wait_exit(seconds(2));
  if (!st) {
    terminate(SIGKILL);
    st = wait_exit(seconds(5));
  }
  return st.value_or(-1);
}

void Child::kill_now() {
  if (pid_ <= 0 || status_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  wait_exit(seconds(10));
}

double Child::seconds_run() const { return std::chrono::duration<double>(end_ - start_).count(); }

void Child::reap() {
  if (pid_ <= 0 || status_) return;
  int st = 0;
  struct rusage ru {};
  pid_t r = ::wait4(pid_, &st, WNOHANG, &ru);
  if (r == pid_) {
    end_ = Clock::now();
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    max_rss_kib_ = ru.ru_maxrss;
    ::kill(-pid_, SIGKILL);  // anything it left behind in its group
  }
}

// Reads what the pipes hold, waiting at most until deadline for some.
void Child::pump(Clock::time_point deadline) {
  pollfd p[2];
  int which[2];
  nfds_t n = 0;
  for (int i = 0; i < 2; ++i)
    if (fd_[i] >= 0) p[n] = {fd_[i], POLLIN, 0}, which[n++] = i;
  if (n == 0) {
    std::this_thread::sleep_for(milliseconds(std::min(remaining_ms(deadline), 10)));
    return;
  }
  if (::poll(p, n, remaining_ms(deadline)) <= 0) return;
  for (nfds_t k = 0; k < n; ++k) {
    if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    int i = which[k];
    char chunk[65536];
    for (;;) {
      ssize_t got = ::read(fd_[i], chunk, sizeof chunk);
      if (got > 0) {
        buf_[i].append(chunk, static_cast<size_t>(got));
      } else if (got < 0 && errno == EINTR) {
        continue;
      } else {
        if (got == 0 || errno != EAGAIN) ::close(fd_[i]), fd_[i] = -1;  // EOF or an error
        break;
      }
    }
  }
}

Env lua_env(const std::string& more_asan_options) {
  Env env = {
      {"LUA_CPATH", build_path("?.so") + ";;"},
      {"LUA_CPATH_5_4", ""},
      {"LUA_PATH", ""},
      {"LUA_PATH_5_4", ""},
      {"LUA_INIT", ""},
      {"LUA_INIT_5_4", ""},
  };
  std::string preload = env_or("LNET_PRELOAD");
  std::string asan;
  if (!preload.empty()) {
    asan = env_or("ASAN_OPTIONS");
    asan += (asan.empty() ? "" : ":") + std::string("detect_leaks=0");
    if (!more_asan_options.empty()) asan += ":" + more_asan_options;
  }
  env.emplace_back("LD_PRELOAD", preload);
  env.emplace_back("ASAN_OPTIONS", asan);
  return env;
}

std::vector<std::string> lnet_argv(const std::vector<std::string>& args, bool line_buffered) {
  std::vector<std::string> argv = {"lua5.4"};
  if (line_buffered) argv.insert(argv.end(), {"-e", "io.stdout:setvbuf('line')"});
  argv.push_back(source_path("bin/lnet"));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::unique_ptr<Child> lnet(const std::vector<std::string>& args, bool line_buffered,
                            const std::string& more_asan_options) {
  return std::make_unique<Child>(lnet_argv(args, line_buffered), lua_env(more_asan_options));
}

std::optional<std::vector<std::string>> no_network_prefix(std::string* why) {
  // -r maps us to root in a new user namespace, so no privilege is needed
  // where user namespaces are allowed; plain -n where only root may.
  std::string tried;
  for (std::vector<std::string> prefix : {std::vector<std::string>{"unshare", "-rn"},
                                          std::vector<std::string>{"unshare", "-n"}}) {
    std::vector<std::string> argv = prefix;
    // Inside, /proc/net/dev must list the loopback interface only.
    argv.insert(argv.end(), {"awk", "NR > 2 && $1 != \"lo:\" { bad = 1 } END { exit bad ? 3 : 0 }",
                             "/proc/net/dev"});
    Result r = run(argv, {}, "", seconds(10));
    if (r.status == 0) return prefix;
    tried += "\n  " + prefix[0] + " " + prefix[1] + ": status " + std::to_string(r.status) + " " + r.err;
  }
  if (why) *why = "cannot make a network namespace here (util-linux unshare):" + tried;
  return std::nullopt;
}

Result run(const std::vector<std::string>& argv, const Env& env, const std::string& input, milliseconds timeout) {
  Child p(argv, env, true);
  if (!input.empty()) p.write_stdin(input);
  p.close_stdin();
  auto st = p.wait_exit(timeout);
  if (!st) p.stop();
  Result r;
  r.status = st.value_or(-1);
  r.out = p.out();
  r.err = p.err();
  r.text = p.describe();
  r.max_rss_kib = p.max_rss_kib();
  r.seconds = p.seconds_run();
  return r;
}

// ------------------------------------------------------- temporary files

TempDir::TempDir() {
  std::string tmpl = env_or("TMPDIR", "/tmp") + "/lnet-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail_errno("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string p = *this / name;
  write_file(p, text);
  return p;
}

// ------------------------------------------------------------------ sockets

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) fail_errno("getsockname");
  return ntohs(a.sin_port);
}

Fd listen_loopback(uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail_errno("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail_errno("bind");
  if (::listen(fd.get(), 64) != 0) fail_errno("listen");
  return fd;
}

ClosedPort::ClosedPort(const std::string& host, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
  } else {
    throw std::runtime_error("ClosedPort: not an IP address: " + host);
  }
  fd_.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd_.get() < 0) fail_errno("socket");
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    fail_errno("bind " + host + " port " + std::to_string(port));
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&bound), &blen) != 0) fail_errno("getsockname");
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

Fd connect_to(const std::string& host, uint16_t port, milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) throw std::runtime_error("getaddrinfo " + host + ": " + gai_strerror(rc));
  std::string last = "no address";
  auto deadline = Clock::now() + timeout;
  Fd result;
  for (addrinfo* ai = res; ai && result.get() < 0; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) continue;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = errno_text("connect");
      continue;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int err = ETIMEDOUT;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, remaining_ms(deadline)) == 1) ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last = std::string("connect: ") + std::strerror(err);
      continue;
    }
    result = std::move(fd);
  }
  freeaddrinfo(res);
  if (result.get() < 0) throw std::runtime_error(host + ":" + service + ": " + last);
  return result;
}

Fd connect_to(uint16_t port, milliseconds timeout) { return connect_to("127.0.0.1", port, timeout); }

bool wait_io(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, remaining_ms(deadline)) == 1;
}

void send_all(int fd, const std::string& data, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_io(fd, POLLOUT, deadline)) throw std::runtime_error("send: timed out");
    } else {
      fail_errno("send");
    }
  }
}

std::string recv_bytes(int fd, size_t n, milliseconds timeout, End* end) {
  auto deadline = Clock::now() + timeout;
  std::string got;
  if (end) *end = End::none;
  while (got.size() < n) {
    char buf[65536];
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), 0);
    if (r > 0) {
      got.append(buf, static_cast<size_t>(r));
    } else if (r == 0 || (r < 0 && errno == ECONNRESET)) {
      if (end) *end = r == 0 ? End::eof : End::reset;
      return got;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_io(fd, POLLIN, deadline))
        throw std::runtime_error("recv: timed out after " + std::to_string(got.size()) + " of " +
                                 std::to_string(n) + " bytes: '" + got.substr(0, 200) + "'");
    } else {
      fail_errno("recv");
    }
  }
  return got;
}

std::string recv_to_end(int fd, milliseconds timeout, End* end, size_t limit) {
  End e;
  std::string got = recv_bytes(fd, limit + 1, timeout, &e);
  if (e == End::none) throw std::runtime_error("recv_to_end: more than the limit");
  if (end) *end = e;
  return got;
}

std::string recv_line(int fd, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string line;
  for (;;) {
    End e;
    std::string c = recv_bytes(fd, 1, milliseconds(remaining_ms(deadline)), &e);
    if (c.empty()) throw std::runtime_error("connection ended before a line: '" + line + "'");
    if (c[0] == '\n') return line;
    line += c;
    if (line.size() > 4096) throw std::runtime_error("line too long");
  }
}

ChildEnd run_in_child(const std::function<std::string()>& body, Clock::time_point deadline) {
  ChildEnd end;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    end.text = std::string("pipe2: ") + std::strerror(errno);
    end.status = 1 << 8;
    return end;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    end.text = std::string("fork: ") + std::strerror(errno);
    end.status = 1 << 8;
    return end;
  }
  if (pid == 0) {
    ::close(p[0]);
    // A crash ends this child, not Boost's monitor copied into it.
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGALRM, SIGTRAP, SIGSYS})
      std::signal(sig, SIG_DFL);
    std::string why;
    try {
      why = body();
    } catch (const std::exception& e) {
      why = std::string("exception: ") + e.what();
    }
    if (!why.empty()) (void)!::write(p[1], why.data(), why.size());
    ::_exit(why.empty() ? 0 : 1);
  }
  ::close(p[1]);
  for (;;) {
    pollfd pf{p[0], POLLIN, 0};
    int rc = ::poll(&pf, 1, remaining_ms(deadline));
    if (rc == 0) {
      end.timed_out = true;
      break;
    }
    if (rc < 0 && errno == EINTR) continue;
    char buf[4096];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    end.text.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  if (end.timed_out) ::kill(pid, SIGKILL);
  while (waitpid(pid, &end.status, 0) < 0 && errno == EINTR) {
  }
  return end;
}

}  // namespace lnet_test
