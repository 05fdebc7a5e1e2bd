// The embedding hosts: examples/embed/host.cc serves clients from its own
// frame loop with net.loop("nowait"), examples/embed/evhost.cc from its own
// libevent loop (lnet.h): a real client's bytes come back, and "quit" ends
// the host with status 0 after a plausible number of frames. In process, a
// test host drives lnet from its own event_base and libevent timer.
#define BOOST_TEST_MODULE embed
#include <boost/test/unit_test.hpp>

#include "harness.hh"
#include "lnet.h"

#include <event2/event.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <string>
#include <thread>

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Reads from fd until `want` bytes arrived or 5 s passed.
std::string read_some(int fd, size_t want) {
  std::string got;
  char buf[256];
  for (int i = 0; i < 50 && got.size() < want; i++) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Runs the host named by the environment variable host_env with the echo
// script, echoes through it and makes it quit.
void echo_through_host(const char* host_env) {
  std::string cmd = "LUA_CPATH='" + env("LNET_BUILD") + "/?.so;;' timeout 30 '" +
                    env(host_env) + "' '" + env("LNET_SOURCE") +
                    "/examples/embed/echo.lua'; echo \"status $?\"";
  FILE* out = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(out != nullptr);
  char line[256] = "";
  BOOST_REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
  int port = 0;
  BOOST_REQUIRE_EQUAL(std::sscanf(line, "listening on port %d", &port), 1);
  BOOST_REQUIRE(port > 0 && port < 65536);
  // Frames run while the host waits for a client, too.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE_EQUAL(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  std::string msg(3000, 'x');
  for (size_t i = 0; i < msg.size(); i++) msg[i] = static_cast<char>('a' + i % 26);
  BOOST_REQUIRE_EQUAL(write(fd, msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  BOOST_CHECK(read_some(fd, msg.size()) == msg);
  BOOST_REQUIRE_EQUAL(write(fd, "quit", 4), 4);
  BOOST_CHECK_EQUAL(read_some(fd, 4), "bye\n");
  close(fd);

  std::string rest;
  while (std::fgets(line, sizeof line, out)) rest += line;
  pclose(out);
  int frames = 0, status = -1;
  const char* f = std::strstr(rest.c_str(), "frames: ");
  BOOST_REQUIRE_MESSAGE(f != nullptr, "host output: " + rest);
  std::sscanf(f, "frames: %d", &frames);
  const char* s = std::strstr(rest.c_str(), "status ");
  BOOST_REQUIRE(s != nullptr);
  std::sscanf(s, "status %d", &status);
  BOOST_CHECK_EQUAL(status, 0);
  BOOST_CHECK_GT(frames, 1);  // the host kept running frames while serving
}

// Runs a script that raises from a timer in the host named by host_env.
void error_in_host(const char* host_env) {
  char script[] = "/tmp/lnet-embed-XXXXXX";
  int fd = mkstemp(script);
  BOOST_REQUIRE(fd >= 0);
  const char code[] =
      "local net = ...\n"
      "net.setTimeout(function() error('boom from a timer') end, 20)\n"
      "return function() return true end\n";
  BOOST_REQUIRE_EQUAL(write(fd, code, sizeof code - 1), static_cast<ssize_t>(sizeof code - 1));
  close(fd);
  std::string cmd = "LUA_CPATH='" + env("LNET_BUILD") + "/?.so;;' timeout 30 '" +
                    env(host_env) + "' " + script + " 2>&1; echo \"status $?\"";
  FILE* out = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(out != nullptr);
  std::string all;
  char line[512];
  while (std::fgets(line, sizeof line, out)) all += line;
  pclose(out);
  unlink(script);
  BOOST_CHECK_MESSAGE(all.find("boom from a timer") != std::string::npos, all);
  BOOST_CHECK_MESSAGE(all.find("stack traceback") != std::string::npos, all);
  BOOST_CHECK_MESSAGE(all.find("status 1") != std::string::npos, all);
}

}  // namespace

BOOST_AUTO_TEST_CASE(host_pumps_the_loop_from_its_frames, *boost::unit_test::timeout(60)) {
  echo_through_host("LNET_EMBED");
}

BOOST_AUTO_TEST_CASE(callback_error_ends_the_host_with_its_traceback,
                     *boost::unit_test::timeout(60)) {
  error_in_host("LNET_EMBED");
}

// lnet.h: the host's own event_base_dispatch() drives lnet (never net.loop).
BOOST_AUTO_TEST_CASE(evhost_drives_lnet_from_its_own_event_base, *boost::unit_test::timeout(60)) {
  echo_through_host("LNET_EVHOST");
}

BOOST_AUTO_TEST_CASE(evhost_callback_error_breaks_its_loop_with_the_traceback,
                     *boost::unit_test::timeout(60)) {
  error_in_host("LNET_EVHOST");
}

namespace {

struct Ticks {
  int n = 0;
  lua_State* L = nullptr;
  event_base* base = nullptr;
};

// The test host's own libevent timer: counts, and stops the host's loop
// once the Lua side says it is done.
void on_host_tick(evutil_socket_t, short, void* arg) {
  Ticks* t = static_cast<Ticks*>(arg);
  t->n++;
  lua_getglobal(t->L, "done");
  if (lua_toboolean(t->L, -1) || t->n > 3000) event_base_loopbreak(t->base);
  lua_pop(t->L, 1);
}

}  // namespace

BOOST_AUTO_TEST_CASE(host_event_base_with_its_own_timers_in_process, *boost::unit_test::timeout(60)) {
  event_base* base = event_base_new();
  BOOST_REQUIRE(base != nullptr);
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L != nullptr);
  BOOST_REQUIRE_EQUAL(lnet_use_event_base(L, base), 0);
  // An echo over loopback and an lnet timer:
  // all of it runs only when the host's loop runs.
  std::string err = lnet_test::run_string(L, R"lua(
    net = require "net"
    done, echoed, timer_fired = false, "", false
    local srv = net.TCPServer()
    srv:listen("127.0.0.1", 0, { data = function(id, d) srv:send(id, d) end })
    local _, port = srv:address()
    local c = net.TCPSocket()
    c:connect("127.0.0.1", port, {
      connected = function() c:send("hello from the host's loop") end,
      data = function(d)
        echoed = echoed .. d
        if #echoed == 26 then c:disconnect() end
      end,
      disconnected = function()
        srv:stop()
        net.setTimeout(function() timer_fired = true; done = true end, 30)
      end,
    })
  )lua", "=evbase");
  BOOST_REQUIRE_MESSAGE(err.empty(), err);
  // Nothing has run yet: no net.loop, and the host's loop has not started.
  lua_getglobal(L, "echoed");
  BOOST_CHECK_EQUAL(std::string(lua_tostring(L, -1)), "");
  lua_pop(L, 1);

  Ticks ticks;
  ticks.L = L;
  ticks.base = base;
  event* tick = event_new(base, -1, EV_PERSIST, on_host_tick, &ticks);
  timeval every{0, 5 * 1000};
  event_add(tick, &every);
  event_base_dispatch(base);
  event_free(tick);

  lua_getglobal(L, "echoed");
  BOOST_CHECK_EQUAL(std::string(lua_tostring(L, -1)), "hello from the host's loop");
  lua_getglobal(L, "timer_fired");
  BOOST_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 2);
  BOOST_CHECK_GT(ticks.n, 1);     // the host's timer ran beside lnet
  BOOST_CHECK_LT(ticks.n, 3000);  // and lnet finished on its own
  // Too late now: lnet already runs in this state.
  BOOST_CHECK_EQUAL(lnet_use_event_base(L, base), -1);
  lua_close(L);
  event_base_free(base);
}

BOOST_AUTO_TEST_CASE(use_event_base_after_require_is_refused, *boost::unit_test::timeout(30)) {
  event_base* base = event_base_new();
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L != nullptr && base != nullptr);
  BOOST_REQUIRE(lnet_test::run_string(L, "require 'net'", "=req").empty());
  BOOST_CHECK_EQUAL(lnet_use_event_base(L, base), -1);
  BOOST_CHECK_EQUAL(lnet_use_event_base(L, nullptr), -1);
  // lnet still runs on its own base: net.loop works.
  BOOST_CHECK(lnet_test::run_string(L, R"lua(
    local net = require "net"
    local fired = false
    net.setTimeout(function() fired = true end, 1)
    net.loop()
    assert(fired, "timer did not fire")
  )lua", "=own").empty());
  lua_close(L);
  event_base_free(base);
}
