// Support code for the test programs that run real processes and talk to
// them over loopback (processes, programs_net, programs_files): child
// processes, the lnet runner, temporary directories, sockets, deadlines and
// the environment. Every wait has a deadline.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lnet_test {

using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------ basics

// Milliseconds left until deadline, 0 once it has passed (a poll timeout).
int remaining_ms(Clock::time_point deadline);

// "what: " followed by the text of errno; fail_errno throws it.
std::string errno_text(const std::string& what);
[[noreturn]] void fail_errno(const std::string& what);

// The value of an environment variable, or fallback when it is not set.
std::string env_or(const char* name, const std::string& fallback = "");

// Whether LNET_PRELOAD is set (the ASan build: the stock lua5.4 that runs
// bin/lnet preloads the sanitizer runtime named there).
bool preloaded();

// How often needle occurs in hay, without overlaps.
size_t occurrences(const std::string& hay, const std::string& needle);

// Writes data to path (created or truncated); throws when it cannot.
void write_file(const std::string& path, const std::string& data);

// --------------------------------------------------------------- processes

// Names to set in a child's environment; an empty value removes the name.
using Env = std::vector<std::pair<std::string, std::string>>;

enum class Stream { out, err };

// A child process in its own process group, its stdout and stderr collected
// through pipes and its stdin /dev/null (or a pipe fed by write_stdin). The
// destructor SIGKILLs the group if the child still runs, then reaps it.
class Child {
 public:
  // Starts argv (argv[0] is looked up on PATH) with our environment changed
  // by env. SIGPIPE has its default action in the child.
  explicit Child(std::vector<std::string> argv, const Env& env = {}, bool with_stdin = false);
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }

  // What the child has written so far (the pipes are read first, without
  // waiting).
  const std::string& out();
  const std::string& err();

  // The command, its status and its output, for failure messages.
  std::string describe();

  void write_stdin(const std::string& data);
  void close_stdin();

  // Sends sig to the child's process group (it leads it).
  void terminate(int sig = SIGTERM);

  // Waits until the stream holds needle at least count times; false on
  // timeout or when the stream ends first.
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout, size_t count = 1,
                Stream s = Stream::out);

  // Waits for the first complete line of stdout that starts with prefix and
  // returns it without its '\n'; nullopt on timeout or when stdout ends first.
  std::optional<std::string> wait_line(const std::string& prefix, std::chrono::milliseconds timeout);

  // Waits for the child to end and its output to be read: the exit code, or
  // 128 + signal when a signal ended it; nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  // Reaps the child if it has ended; true while it runs.
  bool running();

  // SIGTERM, then SIGKILL if it does not end within 2 s: the status (-1 if
  // it could not be reaped).
  int stop();

  // SIGKILL to the group, then reaps the child.
  void kill_now();

  // Once it has ended: its peak resident set in KiB (from wait4), and the
  // seconds from start to end.
  long max_rss_kib() const { return max_rss_kib_; }
  double seconds_run() const;

 private:
  void reap();
  void pump(Clock::time_point deadline);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int fd_[2] = {-1, -1};
  int in_ = -1;
  std::string buf_[2];
  std::optional<int> status_;
  long max_rss_kib_ = 0;
  Clock::time_point start_, end_;
};

// The environment of a child that runs the stock lua5.4 with the built
// module: LUA_CPATH=$LNET_BUILD/?.so;; (and no other LUA_* setting). When
// LNET_PRELOAD is set, LD_PRELOAD names it and ASAN_OPTIONS gets
// detect_leaks=0, then more_asan_options.
Env lua_env(const std::string& more_asan_options = "");

// The argv of lua5.4 bin/lnet ARGS... (ARGS: normally the script and its
// arguments). With line_buffered, stdout is line buffered (a -e chunk before
// the runner), so that a server's lines can be waited for while it runs.
std::vector<std::string> lnet_argv(const std::vector<std::string>& args, bool line_buffered = false);

// Starts lnet_argv(args, line_buffered) with lua_env(more_asan_options).
std::unique_ptr<Child> lnet(const std::vector<std::string>& args, bool line_buffered = false,
                            const std::string& more_asan_options = "");

// What run saw.
struct Result {
  int status = -1;  // -1: it did not end in time (then it was stopped)
  std::string out, err;
  std::string text;  // Child::describe()
  long max_rss_kib = 0;
  double seconds = 0;
};

// The argv prefix that runs a command with no network at all (a new,
// empty network namespace: only a loopback interface that is down), e.g.
// {"unshare", "-rn"}; nullopt when this machine does not allow it (then
// *why says why).
std::optional<std::vector<std::string>> no_network_prefix(std::string* why);

// Runs a command to the end with some input on its stdin, bounded by timeout.
Result run(const std::vector<std::string>& argv, const Env& env = {}, const std::string& input = "",
           std::chrono::milliseconds timeout = std::chrono::seconds(20));

// ------------------------------------------------------- temporary files

// A new directory $TMPDIR/lnet-test-XXXXXX (TMPDIR: /tmp when not set),
// removed with everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

  // Writes text to the file name of the directory; returns its path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// ------------------------------------------------------------------ sockets

// A file descriptor, closed by the destructor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// 127.0.0.1:port.
sockaddr_in loopback(uint16_t port);

// The local port of a bound socket.
uint16_t local_port(int fd);

// A socket listening on 127.0.0.1:port (0: any free port; see local_port).
Fd listen_loopback(uint16_t port = 0);

// A loopback port where nothing listens, kept bound (and not listening) for
// as long as the object lives: a connect to it is refused, and the kernel
// cannot hand the port to another socket meanwhile (a port bound and then
// released could be listening again by the time the test connects).
class ClosedPort {
 public:
  // host: an IPv4 or IPv6 literal ("127.0.0.1", "::1"); port 0: any free
  // port. Throws when the address cannot be bound (say, the port is in use).
  explicit ClosedPort(const std::string& host = "127.0.0.1", uint16_t port = 0);
  uint16_t port() const { return port_; }

 private:
  Fd fd_;
  uint16_t port_ = 0;
};

// A non-blocking TCP connection to host:port (every address it resolves to
// is tried, until the deadline); throws on failure.
Fd connect_to(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

// A non-blocking TCP connection to 127.0.0.1:port.
Fd connect_to(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Waits until fd is ready for events; false at the deadline.
bool wait_io(int fd, short events, Clock::time_point deadline);

// Runs body in a forked child (crash signals back to their default, a C++
// exception caught): body returns "" on success, else the failure, which
// the child reports through a pipe. Waits until deadline, then kills it.
struct ChildEnd {
  bool timed_out = false;
  int status = 0;    // waitpid's
  std::string text;  // what the child reported
};
ChildEnd run_in_child(const std::function<std::string()>& body, Clock::time_point deadline);

// Sends all of data on a non-blocking socket; throws on timeout or error.
void send_all(int fd, const std::string& data, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// How a read ended.
enum class End { none, eof, reset };

// Reads until n bytes, EOF or a reset; throws on timeout.
std::string recv_bytes(int fd, size_t n, std::chrono::milliseconds timeout, End* end = nullptr);

// Reads until EOF (or a reset); throws on timeout or past limit bytes.
std::string recv_to_end(int fd, std::chrono::milliseconds timeout, End* end = nullptr, size_t limit = 64 << 20);

// One line (up to and excluding '\n'), read byte by byte so that nothing
// after it is consumed; throws when the connection ends first.
std::string recv_line(int fd, std::chrono::milliseconds timeout);

}  // namespace lnet_test
