// Each case runs tests/lua/NAME.lua in a fresh lua_State: real sockets on
// loopback, bounded by the script's own deadline (testlib.run) and by the
// Boost timeout below.
#define BOOST_TEST_MODULE scenarios
#include <boost/test/unit_test.hpp>

#include "harness.hh"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#define SCENARIO(name)                                                     \
  BOOST_AUTO_TEST_CASE(name, *boost::unit_test::timeout(120)) {            \
    std::string err = lnet_test::run_scenario(#name);                      \
    BOOST_CHECK_MESSAGE(err.empty(), err);                                 \
  }

SCENARIO(smoke)
SCENARIO(callbacks_order)
SCENARIO(binary)
SCENARIO(echo_10mb)
SCENARIO(errors_network)
SCENARIO(callback_error)
SCENARIO(bad_input)
SCENARIO(lifetime)
SCENARIO(timers)
SCENARIO(ipv6)
SCENARIO(graceful)
SCENARIO(send_results)
SCENARIO(limits)
SCENARIO(reentrancy)
SCENARIO(types)
SCENARIO(nowait)
SCENARIO(callbacks_table)
SCENARIO(strict_numbers)

namespace {

// Each state runs its own echo server and client: the client sends
// "<tag>:<n>" every few milliseconds, the server checks the tag and echoes,
// and the client checks the echo. Globals read from C++: done, received
// (what the server got), echoed (what the client got back), failure.
const char* kPeerChunk = R"lua(
local tag, rounds = ...
net = require "net"
done, received, echoed, failure = false, "", "", nil
local function check(cond, msg)
  if not cond then failure = failure or msg; error(msg) end
end
local srv = net.TCPServer()
srv:listen("127.0.0.1", 0, {
  data = function(id, d)
    received = received .. d
    srv:send(id, d)
  end,
  error = function(m) check(false, tag .. " server error: " .. m) end,
})
local _, port = srv:address()
local c = net.TCPSocket()
local n = 0
local iv
c:connect("127.0.0.1", port, {
  connected = function()
    iv = net.setInterval(function()
      n = n + 1
      c:send(("%s:%d;"):format(tag, n))
      if n == rounds then net.clearInterval(iv) end
    end, 3)
  end,
  data = function(d)
    echoed = echoed .. d
    if #echoed == #received and n == rounds and echoed == received then
      c:disconnect()
    end
  end,
  disconnected = function()
    srv:stop()
    done = true
  end,
  error = function(m) check(false, tag .. " client error: " .. m) end,
})
function pump() return net.loop("nowait") end
)lua";

std::string expected_traffic(const std::string& tag, int rounds) {
  std::string s;
  for (int i = 1; i <= rounds; ++i) s += tag + ":" + std::to_string(i) + ";";
  return s;
}

// Runs the peer chunk with (tag, rounds) as its arguments.
std::string start_peer(lua_State* L, const std::string& tag, int rounds) {
  std::string chunk = std::string("return (function(...)\n") + kPeerChunk + "\nend)(\"" + tag +
                      "\", " + std::to_string(rounds) + ")";
  return lnet_test::run_string(L, chunk, "=peer_" + tag);
}

std::string global_string(lua_State* L, const char* name) {
  lua_getglobal(L, name);
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::string out = s ? std::string(s, len) : std::string();
  lua_pop(L, 1);
  return out;
}

bool global_bool(lua_State* L, const char* name) {
  lua_getglobal(L, name);
  bool b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

// Calls the global pump() once: "" on success, else the error.
std::string pump(lua_State* L, bool* active) {
  std::string err = lnet_test::run_string(L, "ACTIVE = pump()", "=pump");
  *active = global_bool(L, "ACTIVE");
  return err;
}

}  // namespace

// Two lua_States side by side, pumped alternately with net.loop("nowait"):
// no process-wide state, each sees only its own traffic; closing one state
// (with a server listening and a connection open) leaves the other working.
BOOST_AUTO_TEST_CASE(two_states, *boost::unit_test::timeout(120)) {
  using clock = std::chrono::steady_clock;
  const int rounds = 40;
  lua_State* A = lnet_test::new_state();
  lua_State* B = lnet_test::new_state();
  BOOST_REQUIRE(A != nullptr && B != nullptr);
  BOOST_REQUIRE_EQUAL(start_peer(A, "A", rounds), "");
  BOOST_REQUIRE_EQUAL(start_peer(B, "B", rounds), "");

  bool active_a = true, active_b = true;
  auto limit = clock::now() + std::chrono::seconds(30);
  long iterations = 0;
  while ((active_a || active_b) && clock::now() < limit && iterations < 1000000) {
    ++iterations;
    BOOST_REQUIRE_EQUAL(pump(A, &active_a), "");
    BOOST_REQUIRE_EQUAL(pump(B, &active_b), "");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  BOOST_CHECK_MESSAGE(!active_a && !active_b, "states still active after the bounded pump");
  BOOST_CHECK(global_bool(A, "done"));
  BOOST_CHECK(global_bool(B, "done"));
  BOOST_CHECK_EQUAL(global_string(A, "failure"), "");
  BOOST_CHECK_EQUAL(global_string(B, "failure"), "");
  BOOST_CHECK_EQUAL(global_string(A, "received"), expected_traffic("A", rounds));
  BOOST_CHECK_EQUAL(global_string(A, "echoed"), expected_traffic("A", rounds));
  BOOST_CHECK_EQUAL(global_string(B, "received"), expected_traffic("B", rounds));
  BOOST_CHECK_EQUAL(global_string(B, "echoed"), expected_traffic("B", rounds));

  // Second round: both start again; A is closed mid-exchange.
  BOOST_REQUIRE_EQUAL(start_peer(A, "A", rounds), "");
  BOOST_REQUIRE_EQUAL(start_peer(B, "B", rounds), "");
  limit = clock::now() + std::chrono::seconds(30);
  iterations = 0;
  while (clock::now() < limit && iterations < 1000000 &&
         (global_string(A, "received").size() < 20 || global_string(B, "received").size() < 20)) {
    ++iterations;
    BOOST_REQUIRE_EQUAL(pump(A, &active_a), "");
    BOOST_REQUIRE_EQUAL(pump(B, &active_b), "");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  BOOST_REQUIRE_MESSAGE(active_a && active_b, "both states mid-exchange before closing A");
  BOOST_REQUIRE(!global_bool(A, "done"));
  lua_close(A);  // a listening server, an open connection and an interval die with it

  limit = clock::now() + std::chrono::seconds(30);
  iterations = 0;
  active_b = true;
  while (active_b && clock::now() < limit && iterations < 1000000) {
    ++iterations;
    BOOST_REQUIRE_EQUAL(pump(B, &active_b), "");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  BOOST_CHECK(!active_b);
  BOOST_CHECK(global_bool(B, "done"));
  BOOST_CHECK_EQUAL(global_string(B, "failure"), "");
  BOOST_CHECK_EQUAL(global_string(B, "received"), expected_traffic("B", rounds));
  BOOST_CHECK_EQUAL(global_string(B, "echoed"), expected_traffic("B", rounds));
  lua_close(B);
}

// Failures nobody listens for go to stderr as "lnet: MESSAGE"; a server
// connection's end (reset, idle timeout) writes nothing (SPEC Part C).
namespace {

const char* kStderrChunk = R"lua(
local net = require "net"
local t = require "testlib"
t.run(10000, function(done)
  local pending = 4
  local function one() pending = pending - 1; if pending == 0 then done() end end
  -- 1. refused connect, no error callback
  refused_port = t.closed_port()
  local c = net.TCPSocket()
  c:connect("127.0.0.1", refused_port, {})
  t.after(300, one)
  -- 2. listen on a port in use, no error callback
  local srv1, port1 = t.listen({})
  t.closing(srv1)
  inuse_port = port1
  local srv2 = net.TCPServer()
  srv2:listen("127.0.0.1", port1, {})
  t.after(300, one)
  -- 3. a server connection reset by its client, no callbacks but disconnected
  local chunk = ("r"):rep(256 * 1024)
  local srv3
  srv3 = t.listen({
    connected = function(id)
      for _ = 1, 256 do if srv3:send(id, chunk) ~= true then break end end
    end,
    disconnected = function(_, reason)
      assert(reason, "a reset must give a reason")
      one()
    end,
  })
  t.closing(srv3)
  local c3 = net.TCPSocket()
  c3:connect("127.0.0.1", select(2, srv3:address()), {
    connected = function() c3:pause(); t.after(100, function() c3:close() end) end,
  })
  -- 4. a server connection ended by idle timeout
  local srv4 = t.listen({
    disconnected = function(_, reason)
      assert(reason == "idle timeout", tostring(reason))
      one()
    end,
  }, nil, { idle_timeout = 100 })
  t.closing(srv4)
  local c4 = net.TCPSocket()
  c4:connect("127.0.0.1", select(2, srv4:address()), {})
end)
)lua";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

BOOST_AUTO_TEST_CASE(stderr_reports, *boost::unit_test::timeout(60)) {
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L != nullptr);
  char path[] = "/tmp/lnet-stderr-XXXXXX";
  int fd = mkstemp(path);
  BOOST_REQUIRE(fd >= 0);
  std::fflush(stderr);
  int saved = dup(2);
  BOOST_REQUIRE(saved >= 0);
  dup2(fd, 2);
  std::string err = lnet_test::run_string(L, kStderrChunk, "=stderr_reports");
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::string out = read_file(path);
  unlink(path);
  BOOST_REQUIRE_MESSAGE(err.empty(), err);
  lua_getglobal(L, "refused_port");
  long refused = static_cast<long>(lua_tointeger(L, -1));
  lua_getglobal(L, "inuse_port");
  long inuse = static_cast<long>(lua_tointeger(L, -1));
  lua_pop(L, 2);
  lua_close(L);
  // The two reports, in either order, and nothing else.
  std::string refused_line =
      "lnet: connect to 127.0.0.1:" + std::to_string(refused) + " failed: Connection refused\n";
  std::string inuse_line =
      "lnet: listen on 127.0.0.1:" + std::to_string(inuse) + " failed: Address already in use\n";
  BOOST_CHECK_MESSAGE(out == refused_line + inuse_line || out == inuse_line + refused_line,
                      "stderr was:\n" << out << "expected these two lines:\n"
                                       << refused_line << inuse_line);
}
