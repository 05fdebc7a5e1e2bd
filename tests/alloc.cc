// Allocation-failure sweep: a whole client/server scenario runs in a state
// whose allocator fails every allocation from the Nth on, for N from 1 until
// the scenario completes. Every run must end cleanly (an error is expected,
// a crash or a leak is not; run under AddressSanitizer to see the latter).
#define BOOST_TEST_MODULE alloc
#include <boost/test/unit_test.hpp>

#include "harness.hh"

#include <cstdlib>
#include <string>

namespace {

using lnet_test::AllocBudget;
using lnet_test::failing_alloc;

const char kScenario[] = R"lua(
local net = require "net"
local srv = net.TCPServer({ nodelay = true })
local received, echoed, order = {}, {}, {}
srv:listen("127.0.0.1", 0, {
  started = function() order[#order + 1] = "started" end,
  connected = function(id) srv:send(id, "welcome") end,
  data = function(id, d) received[#received + 1] = d; srv:send(id, d) end,
  disconnected = function(id, reason) order[#order + 1] = "gone"; srv:stop() end,
})
local _, port = srv:address()
local c = net.TCPSocket({ timeout = 5000 })
local t = net.setTimeout(function() error("scenario timed out") end, 5000)
c:connect("127.0.0.1", port, {
  connected = function() c:send(string.rep("x", 1000)) end,
  data = function(d)
    echoed[#echoed + 1] = d
    if #table.concat(echoed) >= 1007 then c:disconnect() end
  end,
  disconnected = function() net.clearTimeout(t) end,
  error = function(m) error(m) end,
}, { keepalive = true })
net.setInterval(function() end, 1):clear()
assert(net.loop() == false)
assert(#table.concat(echoed) == 1007, "echo incomplete")
done = true
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(sweep_every_allocation, *boost::unit_test::timeout(600)) {
  long n = 1;
  long failures_seen = 0;
  for (; n < 200000; n++) {
    AllocBudget budget;
    lua_State* L = lnet_test::new_state(failing_alloc, &budget);
    BOOST_REQUIRE_MESSAGE(L != nullptr, "state setup failed without injected failures");
    budget.fail_from = n;  // counting starts after the standard libraries
    std::string err = lnet_test::run_string(L, kScenario, "=sweep");
    bool done = false;
    if (err.empty()) {
      budget.fail_from = 0;
      lua_getglobal(L, "done");
      done = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    lua_close(L);
    if (!budget.failed) {
      // The scenario ran to its end with no injected failure: the sweep is over.
      BOOST_CHECK_MESSAGE(err.empty() && done, "scenario failed on its own: " + err);
      break;
    }
    failures_seen++;
  }
  BOOST_TEST_MESSAGE("allocation points swept: " << n - 1);
  BOOST_CHECK_GT(failures_seen, 100);  // the scenario really allocates
}
