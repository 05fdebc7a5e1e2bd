// Runs the examples and the runner as real processes: the stock interpreter
// lua5.4 runs bin/lnet, which loads the built net.so through LUA_CPATH, and
// the tests talk to them over loopback with nc, curl and a small socket
// client of their own. Every wait has a deadline; every child is killed at
// the end of its test, pass or fail.
#define BOOST_TEST_MODULE processes
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hh"
#include "support.hh"

namespace {

using lnet_test::Child;
using lnet_test::Clock;
using lnet_test::ClosedPort;
using lnet_test::Env;
using lnet_test::Fd;
using lnet_test::lnet;
using lnet_test::lua_env;
using lnet_test::remaining_ms;
using lnet_test::Result;
using lnet_test::run;
using lnet_test::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The examples' check and cross marks: U+2713 "✓" and U+2717 "✗" in UTF-8.
// (The seed document has them mis-decoded as Mac Roman, "‚úì" and "‚úó";
// the examples print the real marks.)
const std::string kCheck = "\xe2\x9c\x93";
const std::string kCross = "\xe2\x9c\x97";

std::string example(const std::string& name) { return lnet_test::source_path("examples/" + name + ".lua"); }

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
  TcpClient(const std::string& host, int port, milliseconds timeout = seconds(5))
      : fd_(lnet_test::connect_to(host, static_cast<uint16_t>(port), timeout)) {
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  void close() { fd_.reset(); }

  void send(const std::string& data, milliseconds timeout = seconds(5)) {
    lnet_test::send_all(fd_.get(), data, timeout);
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
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r <= 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n > 0)
      buf_.append(chunk, static_cast<size_t>(n));
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
      eof_ = true;
    return true;
  }

  Fd fd_;
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
std::unique_ptr<Child> start_server(const std::string& name, int port, const std::string& ready) {
  require_free(port);
  auto server = lnet({example(name)}, true);
  BOOST_REQUIRE_MESSAGE(server->wait_for(ready, seconds(10)), "no ready line\n" << server->describe());
  BOOST_REQUIRE_MESSAGE(wait_listening(port, seconds(5)), "port not listening\n" << server->describe());
  return server;
}

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

// env with name set to value (replacing it if present).
Env with(Env env, const std::string& name, const std::string& value) {
  for (auto& [k, v] : env)
    if (k == name) {
      v = value;
      return env;
    }
  env.emplace_back(name, value);
  return env;
}

// Precondition: a command can be run with no network at all.
boost::test_tools::assertion_result no_network_available(boost::unit_test::test_unit_id) {
  std::string why;
  boost::test_tools::assertion_result r(lnet_test::no_network_prefix(&why).has_value());
  if (!r) r.message() << why;
  return r;
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
  Child nc({"nc", "-q1", "localhost", "8888"}, {}, true);
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
                      {}, time.out);
  BOOST_CHECK_MESSAGE(parsed.status == 0 && parsed.out == "valid\n", "body: " << time.out << "\n" << parsed.text);
  CHECK_HAS(time.text, time.out, "\"server\":\"plua2-tcp\"");

  Result nope = run({"curl", "-s", "-S", "-i", "--max-time", "10", "http://localhost:8890/nope"});
  BOOST_REQUIRE_MESSAGE(nope.status == 0, nope.text);
  BOOST_CHECK_MESSAGE(nope.out.rfind("HTTP/1.1 404 ", 0) == 0, nope.text);
  BOOST_CHECK_MESSAGE(nope.out.size() >= 9 && nope.out.compare(nope.out.size() - 9, 9, "Not Found") == 0, nope.text);

  for (const char* line : {"HTTP GET /\n", "HTTP GET /time\n", "HTTP GET /nope\n"})
    CHECK_SEEN(*server, line, 5);
  BOOST_CHECK_MESSAGE(server->wait_for(kCheck + " HTTP client disconnected:", seconds(5), 3), server->describe());
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
  BOOST_CHECK_EQUAL(lnet_test::occurrences(alice.received(), "alice: "), 0u);

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

// Run with no network at all (a new network namespace: no interface but a
// loopback that is down): the name lookup fails, the connect error reaches
// the example's error callback, and the script ends normally. Skipped, with
// the reason, where no network namespace can be made.
void offline(const std::string& name, const std::string& error_line, const std::string& target) {
  std::string why;
  auto prefix = lnet_test::no_network_prefix(&why);
  BOOST_REQUIRE_MESSAGE(prefix, why);
  std::vector<std::string> argv = *prefix;
  for (auto& a : lnet_test::lnet_argv({example(name)})) argv.push_back(a);
  Child p(argv, lua_env());
  auto st = p.wait_exit(seconds(40));
  BOOST_REQUIRE_MESSAGE(st, name << " did not end within 40 s with no network\n" << p.describe());
  BOOST_CHECK_MESSAGE(*st == 0, p.describe());
  CHECK_HAS(p.describe(), p.out(), error_line + "\tconnect to " + target + " failed: ");
  BOOST_CHECK_MESSAGE(p.err().empty(), p.describe());
}

BOOST_AUTO_TEST_CASE(basic_client_offline,
                     *boost::unit_test::timeout(90) * boost::unit_test::precondition(no_network_available)) {
  offline("basic_client", kCross + " Connection error:", "www.google.com:80");
}

BOOST_AUTO_TEST_CASE(http_client_offline,
                     *boost::unit_test::timeout(90) * boost::unit_test::precondition(no_network_available)) {
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
  BOOST_REQUIRE_MESSAGE(server->wait_for("session lasted", seconds(5), 2), server->describe());
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
  // The example's "closed" port, held bound for the whole run (on both
  // loopback addresses: localhost may resolve to either).
  ClosedPort closed4("127.0.0.1", 8892);
  std::optional<ClosedPort> closed6;
  try {
    closed6.emplace("::1", 8892);
  } catch (const std::exception& e) {
    BOOST_TEST_MESSAGE("no IPv6 loopback: " << e.what());
  }
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

// Without lua-cjson and dkjson the runner still runs scripts; json is a
// table whose functions raise one line that names what to install.
BOOST_AUTO_TEST_CASE(runs_without_a_json_library, *boost::unit_test::timeout(30)) {
  TempDir dir;
  // Lua's default paths (where Debian puts cjson.so and dkjson.lua) left out.
  Env env = with(with(lua_env(), "LUA_CPATH", lnet_test::build_path("?.so")), "LUA_PATH",
                 dir.path() + "/?.lua");
  Result probe = run({"lua5.4", "-e", "print(pcall(require, 'cjson'), pcall(require, 'dkjson'))"}, env);
  BOOST_REQUIRE_MESSAGE(probe.status == 0 && probe.out.rfind("false\t", 0) == 0 &&
                            probe.out.find("\tfalse\t") != std::string::npos,
                        "a JSON library is still found:\n" << probe.text);

  const std::string missing =
      "no JSON library: install lua-cjson or dkjson (apt-get install lua-cjson, or luarocks install dkjson)";
  std::string script = dir.write("nojson.lua",
                                 "print(type(json))\n"
                                 "print(pcall(json.encode, {1, 2}))\n"
                                 "print(pcall(json.decode, '[1]'))\n"
                                 "setTimeout(function() print('timer fired') end, 5)\n");
  Child p(lnet_test::lnet_argv({script}), env);
  auto st = p.wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p.describe());
  BOOST_CHECK_MESSAGE(*st == 0, p.describe());
  BOOST_CHECK_EQUAL(p.out(), "table\nfalse\tjson.encode: " + missing + "\nfalse\tjson.decode: " + missing +
                                 "\ntimer fired\n");
  BOOST_CHECK_MESSAGE(p.err().empty(), p.describe());

  // Uncaught: the runner's usual error report, exit status 1.
  std::string uses = dir.write("usesjson.lua", "local body = json.encode({ok = true})\nprint(body)\n");
  Child q(lnet_test::lnet_argv({uses}), env);
  st = q.wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, q.describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_EQUAL(q.out(), "");
  BOOST_CHECK_MESSAGE(q.err().rfind("lnet: " + uses + ":1: json.encode: " + missing + "\nstack traceback:\n", 0) == 0,
                      q.describe());
}

// A network error written to stderr because the script gave no error
// callback makes the run fail (status 1); with an error callback the same
// failure is the script's business (status 0).
BOOST_AUTO_TEST_CASE(unhandled_network_error_exits_1, *boost::unit_test::timeout(30)) {
  TempDir dir;
  ClosedPort closed;
  const std::string port = std::to_string(closed.port());
  std::string bare = dir.write("bare.lua",
                               "local c = net.TCPSocket()\n"
                               "c:connect('127.0.0.1', tonumber(arg[1]), {})\n"
                               "setTimeout(function() print('after', net.unhandled_errors()) end, 200)\n");
  auto p = lnet({bare, port});
  auto st = p->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, p->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_EQUAL(p->out(), "after\t1\n");
  BOOST_CHECK_EQUAL(p->err(), "lnet: connect to 127.0.0.1:" + port + " failed: Connection refused\n");

  std::string handled = dir.write("handled.lua",
                                  "local c = net.TCPSocket()\n"
                                  "c:connect('127.0.0.1', tonumber(arg[1]), {\n"
                                  "  error = function(m) print('handled', m, net.unhandled_errors()) end })\n");
  auto q = lnet({handled, port});
  st = q->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, q->describe());
  BOOST_CHECK_EQUAL(*st, 0);
  BOOST_CHECK_EQUAL(q->out(), "handled\tconnect to 127.0.0.1:" + port + " failed: Connection refused\t0\n");
  BOOST_CHECK_MESSAGE(q->err().empty(), q->describe());

  // A listen on a port in use, no error callback.
  lnet_test::Fd taken = lnet_test::listen_loopback();
  std::string inuse = dir.write("inuse.lua",
                                "net.TCPServer():listen('127.0.0.1', tonumber(arg[1]), {})\n");
  const std::string taken_port = std::to_string(lnet_test::local_port(taken.get()));
  auto r = lnet({inuse, taken_port});
  st = r->wait_exit(seconds(10));
  BOOST_REQUIRE_MESSAGE(st, r->describe());
  BOOST_CHECK_EQUAL(*st, 1);
  BOOST_CHECK_EQUAL(r->err(), "lnet: listen on 127.0.0.1:" + taken_port + " failed: Address already in use\n");
}

// An error value that is not a string is shown readably: by its __tostring,
// else as a table constructor; never as "table: 0x...".
BOOST_AUTO_TEST_CASE(non_string_errors_are_readable, *boost::unit_test::timeout(30)) {
  TempDir dir;
  struct Case {
    std::string name, code, first_line;
    bool traceback;
  };
  const std::vector<Case> cases = {
      {"table_top.lua", "error({code = 42, message = 'boom', [1] = 'x', nested = {true}})\n",
       "lnet: {[1] = \"x\", code = 42, message = \"boom\", nested = {[1] = true}}", true},
      {"table_callback.lua", "setTimeout(function() error({code = 'E_APP', retry = false}) end, 5)\n",
       "lnet: {code = \"E_APP\", retry = false}", false},
      {"tostring_callback.lua",
       "local E = setmetatable({}, {__tostring = function() return 'AppError: disk full' end})\n"
       "setTimeout(function() error(E) end, 5)\n",
       "lnet: AppError: disk full", false},
      {"tostring_top.lua",
       "error(setmetatable({}, {__tostring = function() return 'AppError: at the top' end}))\n",
       "lnet: AppError: at the top", true},
      {"nil_top.lua", "error()\n", "lnet: nil", true},
  };
  for (const auto& c : cases) {
    std::string script = dir.write(c.name, c.code);
    auto p = lnet({script});
    auto st = p->wait_exit(seconds(10));
    BOOST_REQUIRE_MESSAGE(st, p->describe());
    BOOST_CHECK_MESSAGE(*st == 1, c.name << ": " << p->describe());
    const std::string& err = p->err();
    std::string first = err.substr(0, err.find('\n'));
    BOOST_CHECK_EQUAL(first, c.first_line);
    BOOST_CHECK_MESSAGE(err.find("table: 0x") == std::string::npos, c.name << ": " << p->describe());
    if (c.traceback) CHECK_HAS(p->describe(), err, "\nstack traceback:\n");
  }
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
  Child p({"lua5.4", "-e",
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
