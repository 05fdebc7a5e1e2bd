// lnet --workers N as real processes: the stock lua5.4 runs bin/lnet, which
// supervises N workers listening with reuseport on one loopback port. The
// tests count which worker answers, kill workers, stop them with SIGTERM,
// and hand a listening socket over as fd 3.
#define BOOST_TEST_MODULE workers
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness.hh"
#include "support.hh"

namespace {

using lnet_test::Child;
using lnet_test::Clock;
using lnet_test::Fd;
using lnet_test::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A free loopback port for a server another process binds (reuseport
// workers, HAProxy, nginx): bound, then released at once.
uint16_t free_port() {
  Fd fd = lnet_test::listen_loopback(0);
  return lnet_test::local_port(fd.get());
}

// Each connection gets "<index>/<count>\n", then the server closes it.
const char* kIndexServer = R"lua(
local i, n = net.worker()
local srv = net.TCPServer()
srv:listen("127.0.0.1", tonumber(arg[1]), {
  connected = function(id) srv:send(id, i .. "/" .. n .. "\n"); srv:disconnect(id) end,
  started = function() print("listening " .. i .. "/" .. n) end,
  error = function(msg) print("error " .. msg) end,
})
)lua";

// One connection: what the server sent before it closed ("" when the
// connection was refused or reset).
std::string ask(uint16_t port, const std::string& request = "", milliseconds timeout = seconds(10)) {
  try {
    Fd fd = lnet_test::connect_to(port, timeout);
    if (!request.empty()) lnet_test::send_all(fd.get(), request);
    return lnet_test::recv_to_end(fd.get(), timeout);
  } catch (const std::exception&) {
    return "";
  }
}

// The pid of worker i from the supervisor's "started worker i (pid P)" lines
// (the latest one when it was restarted).
std::optional<pid_t> worker_pid(Child& c, int i) {
  const std::string needle = "started worker " + std::to_string(i) + " (pid ";
  std::optional<pid_t> pid;
  const std::string& err = c.err();
  for (size_t pos = err.find(needle); pos != std::string::npos; pos = err.find(needle, pos + 1))
    pid = static_cast<pid_t>(std::atol(err.c_str() + pos + needle.size()));
  return pid;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

std::unique_ptr<Child> start_workers(TempDir& dir, const std::string& script_text, uint16_t port,
                                     const std::vector<std::string>& options) {
  std::string script = dir.write("server.lua", script_text);
  std::vector<std::string> args = options;
  args.push_back(script);
  args.push_back(std::to_string(port));
  auto c = lnet_test::lnet(args, true);
  int n = 2;
  for (size_t k = 0; k + 1 < options.size(); k++)
    if (options[k] == "--workers") n = std::stoi(options[k + 1]);
  BOOST_REQUIRE_MESSAGE(c->wait_for("listening ", seconds(20), static_cast<size_t>(n)), c->describe());
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(connections_spread_over_two_workers, *boost::unit_test::timeout(120)) {
  TempDir dir;
  uint16_t port = free_port();
  auto c = start_workers(dir, kIndexServer, port, {"--workers", "2"});
  BOOST_CHECK(c->out().find("listening 1/2") != std::string::npos);
  BOOST_CHECK(c->out().find("listening 2/2") != std::string::npos);
  std::map<std::string, int> seen;
  const int total = 2000;
  for (int k = 0; k < total; k++) seen[ask(port)]++;
  BOOST_TEST_MESSAGE("worker 1: " << seen["1/2\n"] << ", worker 2: " << seen["2/2\n"]);
  BOOST_CHECK_EQUAL(seen["1/2\n"] + seen["2/2\n"], total);
  BOOST_CHECK_GT(seen["1/2\n"], total / 4);
  BOOST_CHECK_GT(seen["2/2\n"], total / 4);
  c->terminate(SIGTERM);
  auto st = c->wait_exit(seconds(20));
  BOOST_REQUIRE(st);
  BOOST_CHECK_MESSAGE(*st == 0, "exit status " << *st << "; " << c->describe());
}

BOOST_AUTO_TEST_CASE(killed_worker_is_restarted, *boost::unit_test::timeout(120)) {
  TempDir dir;
  uint16_t port = free_port();
  auto c = start_workers(dir, kIndexServer, port, {"--workers", "2"});
  auto victim = worker_pid(*c, 1);
  BOOST_REQUIRE_MESSAGE(victim, c->describe());
  BOOST_REQUIRE_EQUAL(::kill(*victim, SIGKILL), 0);
  // Logged, restarted after its back-off, listening again.
  BOOST_REQUIRE_MESSAGE(c->wait_for("was killed by signal 9", seconds(10), 1, lnet_test::Stream::err),
                        c->describe());
  BOOST_CHECK(c->err().find("restarting it in 100 ms") != std::string::npos);
  // The port keeps answering meanwhile (worker 2 takes what comes).
  int answered = 0;
  for (int k = 0; k < 50; k++) answered += !ask(port).empty();
  BOOST_CHECK_EQUAL(answered, 50);
  BOOST_REQUIRE_MESSAGE(c->wait_for("started worker 1", seconds(10), 2, lnet_test::Stream::err),
                        c->describe());
  BOOST_REQUIRE_MESSAGE(c->wait_for("listening 1/2", seconds(10), 2), c->describe());
  auto fresh = worker_pid(*c, 1);
  BOOST_REQUIRE(fresh);
  BOOST_CHECK_NE(*fresh, *victim);
  std::map<std::string, int> seen;
  for (int k = 0; k < 400; k++) seen[ask(port)]++;
  BOOST_CHECK_GT(seen["1/2\n"], 0);  // the new worker 1 answers
  BOOST_CHECK_GT(seen["2/2\n"], 0);
  BOOST_CHECK_EQUAL(seen["1/2\n"] + seen["2/2\n"], 400);
  // Killed again soon after: the back-off has doubled.
  BOOST_REQUIRE_EQUAL(::kill(*fresh, SIGKILL), 0);
  BOOST_CHECK_MESSAGE(c->wait_for("restarting it in 200 ms", seconds(10), 1, lnet_test::Stream::err),
                      c->describe());
  BOOST_CHECK_MESSAGE(c->wait_for("listening 1/2", seconds(10), 3), c->describe());
  c->terminate(SIGTERM);
  auto st = c->wait_exit(seconds(20));
  BOOST_REQUIRE(st);
  BOOST_CHECK_MESSAGE(*st == 0, "exit status " << *st << "; " << c->describe());
}

BOOST_AUTO_TEST_CASE(workers_that_keep_dying_end_the_supervisor, *boost::unit_test::timeout(120)) {
  TempDir dir;
  std::string script = dir.write("crash.lua", "error('boom')\n");
  auto c = lnet_test::lnet({"--workers", "2", "--max-restarts", "3", script});
  auto st = c->wait_exit(seconds(30));
  BOOST_REQUIRE_MESSAGE(st, c->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK(c->err().find("workers keep dying (3 restarts within a minute): stopping") !=
              std::string::npos);
  BOOST_CHECK_EQUAL(lnet_test::occurrences(c->err(), "restarting it in"), 3u);
  BOOST_CHECK(c->err().find("boom") != std::string::npos);
}

// SIGTERM to the supervisor alone: it is forwarded; both workers stop
// accepting at once, finish the requests in flight (answered 600 ms after
// they arrive), cut a connection still open when the grace period ends, and
// all exit 0.
BOOST_AUTO_TEST_CASE(sigterm_is_graceful, *boost::unit_test::timeout(120)) {
  const char* script = R"lua(
local i = net.worker()
local srv = net.TCPServer()
srv:listen("127.0.0.1", tonumber(arg[1]), {
  started = function() print("listening " .. i) end,
  data = function(id, d)
    print("request " .. d:gsub("%s", ""))
    if d:find("hang") then return end
    setTimeout(function() srv:send(id, "answer from " .. i .. "\n"); srv:disconnect(id) end, 600)
  end,
})
)lua";
  TempDir dir;
  uint16_t port = free_port();
  auto c = start_workers(dir, script, port, {"--workers", "2", "--grace", "2500"});
  std::vector<Fd> conns;
  for (int k = 0; k < 8; k++) {
    conns.push_back(lnet_test::connect_to(port));
    lnet_test::send_all(conns.back().get(), "get\n");
  }
  Fd hung = lnet_test::connect_to(port);
  lnet_test::send_all(hung.get(), "hang\n");
  BOOST_REQUIRE_MESSAGE(c->wait_for("request ", seconds(10), 9), c->describe());
  auto t0 = Clock::now();
  BOOST_REQUIRE_EQUAL(::kill(c->pid(), SIGTERM), 0);  // the supervisor only
  // New connections are refused soon (both listeners closed) ...
  bool refused = false;
  for (int k = 0; k < 100 && !refused; k++) {
    std::this_thread::sleep_for(milliseconds(20));
    try {
      lnet_test::connect_to(port, seconds(1));
    } catch (const std::exception&) {
      refused = true;
    }
  }
  BOOST_CHECK_MESSAGE(refused, "the port still accepts after SIGTERM");
  // ... while every request in flight is answered in full.
  for (Fd& fd : conns) {
    std::string got = lnet_test::recv_to_end(fd.get(), seconds(10));
    BOOST_CHECK_MESSAGE(got == "answer from 1\n" || got == "answer from 2\n", "got " << got);
  }
  // The hung one is cut when the grace period ends, not before.
  lnet_test::End end = lnet_test::End::none;
  std::string rest = lnet_test::recv_to_end(hung.get(), seconds(10), &end);
  double cut_after = std::chrono::duration<double>(Clock::now() - t0).count();
  BOOST_CHECK_EQUAL(rest, "");
  BOOST_CHECK_GE(cut_after, 2.0);
  auto st = c->wait_exit(seconds(20));
  BOOST_REQUIRE_MESSAGE(st, c->describe());
  BOOST_CHECK_MESSAGE(*st == 0, "exit status " << *st << "; " << c->describe());
  BOOST_CHECK_MESSAGE(c->err().find("stopping the workers") != std::string::npos, c->describe());
  BOOST_CHECK(c->err().find("restarting") == std::string::npos);
  for (int i : {1, 2}) {
    auto pid = worker_pid(*c, i);
    BOOST_REQUIRE(pid);
    BOOST_CHECK_MESSAGE(!alive(*pid), "worker " << i << " still runs");
  }
}

// SIGINT (a terminal's Ctrl-C) to the supervisor alone: forwarded, graceful, status 0.
BOOST_AUTO_TEST_CASE(sigint_stops_the_workers, *boost::unit_test::timeout(60)) {
  TempDir dir;
  uint16_t port = free_port();
  auto c = start_workers(dir, kIndexServer, port, {"--workers", "2"});
  BOOST_REQUIRE_EQUAL(::kill(c->pid(), SIGINT), 0);
  auto st = c->wait_exit(seconds(20));
  BOOST_REQUIRE_MESSAGE(st, c->describe());
  BOOST_CHECK_MESSAGE(*st == 0, "exit status " << *st << "; " << c->describe());
  BOOST_CHECK_MESSAGE(c->err().find("stopping the workers (Interrupt)") != std::string::npos, c->describe());
  for (int i : {1, 2}) {
    auto pid = worker_pid(*c, i);
    BOOST_REQUIRE(pid);
    BOOST_CHECK_MESSAGE(!alive(*pid), "worker " << i << " still runs");
  }
}

BOOST_AUTO_TEST_CASE(worker_outside_worker_mode, *boost::unit_test::timeout(60)) {
  TempDir dir;
  std::string script = dir.write("w.lua", "print(net.worker())\n");
  auto r = lnet_test::run(lnet_test::lnet_argv({script}), lnet_test::lua_env());
  BOOST_CHECK_EQUAL(r.status, 0);
  BOOST_CHECK_EQUAL(r.out, "1\t1\n");
  auto bad = lnet_test::run(lnet_test::lnet_argv({"--workers", "0", script}), lnet_test::lua_env());
  BOOST_CHECK_EQUAL(bad.status, 2);
  BOOST_CHECK(bad.err.find("--workers needs a positive integer") != std::string::npos);
}

namespace {

// A listening socket on a free loopback port, inheritable (no CLOEXEC).
Fd inheritable_listener(uint16_t* port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  BOOST_REQUIRE(fd.get() >= 0);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = lnet_test::loopback(0);
  BOOST_REQUIRE_EQUAL(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  BOOST_REQUIRE_EQUAL(::listen(fd.get(), 128), 0);
  *port = lnet_test::local_port(fd.get());
  return fd;
}

const char* kFdServer = R"lua(
local i, n = net.worker()
local srv = net.TCPServer()
srv:listen("fd:3", nil, {
  connected = function(id) srv:send(id, "fd " .. i .. "/" .. n .. "\n"); srv:disconnect(id) end,
  started = function() print("listening", srv:address()) end,
  error = function(msg) print("error " .. msg) end,
})
if i == 1 then
  for _, host in ipairs({"fd:0", "fd:4", "fd:99", "fd:x"}) do
    local bad = net.TCPServer()
    bad:listen(host, nil, { error = function(msg) print("error " .. msg) end })
  end
end
)lua";

}  // namespace

// listen("fd:3") adopts the socket the parent process passed (as systemd
// socket activation does); the workers of `lnet --workers 2` share it.
BOOST_AUTO_TEST_CASE(inherited_listening_socket, *boost::unit_test::timeout(120)) {
  TempDir dir;
  std::string script = dir.write("fd.lua", kFdServer);
  uint16_t port = 0;
  Fd listener = inheritable_listener(&port);
  Fd udp(::socket(AF_INET, SOCK_DGRAM, 0));  // fd 4 in the child: not a listener
  BOOST_REQUIRE(udp.get() >= 0);
  std::string redirect = "3<&" + std::to_string(listener.get()) + " 4<&" + std::to_string(udp.get());
  for (int workers : {1, 2}) {
    std::vector<std::string> args;
    if (workers == 2) args = {"--workers", "2"};
    args.push_back(script);
    std::vector<std::string> argv = {"sh", "-c", "exec \"$@\" " + redirect, "sh"};
    for (const std::string& a : lnet_test::lnet_argv(args, true)) argv.push_back(a);
    Child c(argv, lnet_test::lua_env());
    BOOST_REQUIRE_MESSAGE(c.wait_for("listening\t127.0.0.1\t" + std::to_string(port), seconds(20),
                                     static_cast<size_t>(workers)),
                          c.describe());
    int answered = 0;
    for (int k = 0; k < 50; k++) {
      std::string got = ask(port);
      answered += got == "fd 1/" + std::to_string(workers) + "\n" || got == "fd 2/2\n";
    }
    BOOST_CHECK_EQUAL(answered, 50);
    BOOST_CHECK_MESSAGE(c.wait_for("error listen on fd:x failed", seconds(5)), c.describe());
    BOOST_CHECK(c.out().find("error listen on fd:0 failed: Socket operation on non-socket") != std::string::npos);
    BOOST_CHECK(c.out().find("error listen on fd:4 failed: not a listening stream socket") != std::string::npos);
    BOOST_CHECK(c.out().find("error listen on fd:99 failed: Bad file descriptor") != std::string::npos);
    BOOST_CHECK(c.out().find("error listen on fd:x failed: not a file descriptor number") != std::string::npos);
    ::kill(c.pid(), SIGTERM);
    auto st = c.wait_exit(seconds(20));
    BOOST_REQUIRE(st);
    // The single process has no graceful handler: SIGTERM ends it.
    BOOST_CHECK_EQUAL(*st, workers == 2 ? 0 : 128 + SIGTERM);
  }
}
