// Each case runs tests/lua/NAME.lua in a fresh lua_State: real sockets on
// loopback, bounded by the script's own deadline (testlib.run) and by the
// Boost timeout below.
#define BOOST_TEST_MODULE scenarios
#include <boost/test/unit_test.hpp>

#include "harness.hh"

#define SCENARIO(name)                                                     \
  BOOST_AUTO_TEST_CASE(name, *boost::unit_test::timeout(120)) {            \
    std::string err = lnet_test::run_scenario(#name);                      \
    BOOST_CHECK_MESSAGE(err.empty(), err);                                 \
  }

SCENARIO(smoke)
