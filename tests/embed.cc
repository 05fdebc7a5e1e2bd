// The embedding host (examples/embed/host.cc) serves clients from its own
// frame loop with net.loop("nowait"): a real client's bytes come back, and
// "quit" ends the host with status 0 after a plausible number of frames.
#define BOOST_TEST_MODULE embed
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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

}  // namespace

BOOST_AUTO_TEST_CASE(host_pumps_the_loop_from_its_frames, *boost::unit_test::timeout(60)) {
  std::string cmd = "LUA_CPATH='" + env("LNET_BUILD") + "/?.so;;' timeout 30 '" +
                    env("LNET_EMBED") + "' '" + env("LNET_SOURCE") +
                    "/examples/embed/echo.lua'; echo \"status $?\"";
  FILE* out = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(out != nullptr);
  char line[256] = "";
  BOOST_REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
  int port = 0;
  BOOST_REQUIRE_EQUAL(std::sscanf(line, "listening on port %d", &port), 1);
  BOOST_REQUIRE(port > 0 && port < 65536);

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

BOOST_AUTO_TEST_CASE(callback_error_ends_the_host_with_its_traceback,
                     *boost::unit_test::timeout(60)) {
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
                    env("LNET_EMBED") + "' " + script + " 2>&1; echo \"status $?\"";
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
