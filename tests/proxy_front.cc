// The PROXY protocol end to end: lnet servers (examples/deploy/backend.lua)
// behind real front ends started by the tests on free loopback ports with
// the configurations of examples/deploy/: HAProxy (send-proxy-v2 and
// send-proxy, health checks with check-send-proxy) and nginx's stream module
// (proxy_protocol on); then lnet's own examples/lb.lua and proxy.lua with
// --send-proxy. Each server must report the client's real address, checked
// against the client's own getsockname. Also runs tests/lua/proxy_server.lua.
#define BOOST_TEST_MODULE proxy_front
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
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
namespace utf = boost::unit_test;

// A free loopback port for a server another process binds (reuseport
// workers, HAProxy, nginx): bound, then released at once.
uint16_t free_port() {
  Fd fd = lnet_test::listen_loopback(0);
  return lnet_test::local_port(fd.get());
}

std::string deploy(const std::string& name) { return lnet_test::source_path("examples/deploy/" + name); }

std::string addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

bool on_path(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"})
    if (executable(std::string(dir) + "/" + name)) return true;
  return false;
}

// An lnet backend (examples/deploy/backend.lua NAME), logging each
// connection's header; waits until it listens.
// trusted: its TRUSTED arguments (default: loopback).
std::unique_ptr<Child> backend(uint16_t port, const std::string& name, const std::string& trusted = "") {
  lnet_test::Env env = lnet_test::lua_env();
  env.push_back({"LNET_DEPLOY_LOG", "1"});
  std::vector<std::string> args = {deploy("backend.lua"), std::to_string(port), name};
  if (!trusted.empty()) args.push_back(trusted);
  auto c = std::make_unique<Child>(lnet_test::lnet_argv(args, true), env);
  BOOST_REQUIRE_MESSAGE(c->wait_for("listening on", seconds(20)), c->describe());
  return c;
}

// What a backend answered through the front end, parsed.
struct Answer {
  bool ok = false;
  std::string client_ip, via_ip, version, command, server;
  int client_port = 0, via_port = 0;
  uint16_t own_port = 0;  // the client's getsockname
  std::string raw;
};

Answer ask(uint16_t port) {
  Answer a;
  try {
    Fd fd = lnet_test::connect_to(port, seconds(5));
    a.own_port = lnet_test::local_port(fd.get());
    lnet_test::send_all(fd.get(), "whoami\n");
    a.raw = lnet_test::recv_line(fd.get(), seconds(5));
  } catch (const std::exception& e) {
    a.raw = e.what();
    return a;
  }
  // "client IP PORT via IP PORT vN COMMAND server NAME worker I/N"
  std::istringstream in(a.raw);
  std::string w[12];
  for (std::string& x : w) in >> x;
  if (w[0] != "client" || w[3] != "via" || w[6].size() != 2 || w[6][0] != 'v' || w[8] != "server" ||
      w[10] != "worker")
    return a;
  a.ok = true;
  a.client_ip = w[1];
  a.client_port = std::atoi(w[2].c_str());
  a.via_ip = w[4];
  a.via_port = std::atoi(w[5].c_str());
  a.version = w[6].substr(1);
  a.command = w[7];
  a.server = w[9];
  return a;
}

// The client's real address reached the server: same ip, same port as the
// client's own socket, and the connection came from the front end.
void check_real_client(const Answer& a, const std::string& version) {
  BOOST_TEST_CONTEXT("answer: " << a.raw) {
    BOOST_REQUIRE(a.ok);
    BOOST_CHECK_EQUAL(a.client_ip, "127.0.0.1");
    BOOST_CHECK_EQUAL(a.client_port, a.own_port);
    BOOST_CHECK_NE(a.via_port, a.own_port);  // the front end's own connection
    BOOST_CHECK_EQUAL(a.version, version);
    BOOST_CHECK_EQUAL(a.command, "PROXY");
  }
}

// Waits until the front end at port answers; false at the deadline.
bool wait_answering(uint16_t port, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ask(port).ok) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
    s.replace(pos, from.size(), to);
  return s;
}

// HAProxy's "show stat" on its stats socket: server name -> "STATUS CHECK"
// (e.g. "UP L7OK") for the servers of backend lnet_servers.
std::map<std::string, std::string> haproxy_servers(const std::string& socket) {
  std::map<std::string, std::string> out;
  lnet_test::Result r = lnet_test::run({"socat", "-", "UNIX-CONNECT:" + socket}, {}, "show stat\n", seconds(5));
  std::istringstream in(r.out);
  std::string line;
  std::vector<std::string> names;
  auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::string x;
    std::istringstream ls(l);
    while (std::getline(ls, x, ',')) f.push_back(x);
    return f;
  };
  size_t status = 0, check = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      names = split(line.substr(2));
      for (size_t i = 0; i < names.size(); i++) {
        if (names[i] == "status") status = i;
        if (names[i] == "check_status") check = i;
      }
      continue;
    }
    std::vector<std::string> f = split(line);
    if (status == 0 || check == 0 || f.size() <= check || f[0] != "lnet_servers" || f[1] == "BACKEND") continue;
    out[f[1]] = f[status] + " " + f[check];
  }
  return out;
}

const char* kNginxStream = "/usr/lib/nginx/modules/ngx_stream_module.so";

boost::test_tools::assertion_result have_haproxy(utf::test_unit_id) {
  boost::test_tools::assertion_result r(on_path("haproxy"));
  r.message() << "haproxy is not installed (Debian package haproxy; tools/deps.sh installs it)";
  return r;
}

boost::test_tools::assertion_result have_nginx_stream(utf::test_unit_id) {
  boost::test_tools::assertion_result r(on_path("nginx") && ::access(kNginxStream, R_OK) == 0);
  r.message() << "nginx with the stream module is not installed (Debian nginx-light + libnginx-mod-stream)";
  return r;
}

// rst_client(port, bytes): connects to 127.0.0.1:port, sends bytes and
// closes with a reset (SO_LINGER 0), all before returning: the server's
// loop meets the connection already reset, its header complete in the queue.
int l_rst_client(lua_State* L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  size_t n = 0;
  const char* data = luaL_checklstring(L, 2, &n);
  char err[256] = "";  // no destructor alive when luaL_error jumps
  try {
    Fd fd = lnet_test::connect_to(static_cast<uint16_t>(port), seconds(5));
    lnet_test::send_all(fd.get(), std::string(data, n));
    linger lg{1, 0};
    if (setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
      std::snprintf(err, sizeof err, "SO_LINGER: %s", std::strerror(errno));
  } catch (const std::exception& e) {
    std::snprintf(err, sizeof err, "%s", e.what());
  }
  if (err[0]) return luaL_error(L, "rst_client: %s", err);
  return 0;
}

// A server that requires a header, and clients that send one and reset at
// once (HAProxy's v1 health checks do): each header is read and the
// connection made (connected, then disconnected with ECONNRESET), never
// dropped as untrusted because the reset socket has no peer name left.
const char kHeaderThenReset[] = R"lua(
local net = require "net"
local headers = {
  "PROXY UNKNOWN\r\n",
  "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n",
  "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",  -- v2 LOCAL
}
local srv = net.TCPServer()
local seen, ended = {}, {}
local limit = net.setTimeout(function() srv:stop() end, 5000)
srv:listen("127.0.0.1", 0, {
  started = function()
    local _, port = srv:address()
    -- Within this callback the loop accepts nothing: every connection is
    -- reset before lnet sees it.
    for _, h in ipairs(headers) do rst_client(port, h) end
  end,
  connected = function(id)
    local info = srv:proxy_info(id)
    seen[#seen + 1] = ("v%d %s %s %s"):format(info.version, info.command, info.family, tostring(srv:peer(id)))
  end,
  disconnected = function(id, why, code)
    ended[#ended + 1] = tostring(code)
    if #ended == #headers then net.clearTimeout(limit); srv:stop() end
  end,
  error = function(m) error(m) end,
}, { proxy_protocol = "any", proxy_trusted = { "127.0.0.1" } })
assert(net.loop() == false)
table.sort(seen)
local st = srv:stats()
result = table.concat(seen, ",") .. " | " .. table.concat(ended, ",") ..
  (" | untrusted %d invalid %d timeout %d"):format(st.proxy_untrusted, st.proxy_invalid, st.proxy_timeout)
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(header_then_reset, *utf::timeout(60)) {
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L != nullptr);
  lua_pushcfunction(L, l_rst_client);
  lua_setglobal(L, "rst_client");
  std::string err = lnet_test::run_string(L, kHeaderThenReset, "=header_then_reset");
  BOOST_CHECK_MESSAGE(err.empty(), err);
  lua_getglobal(L, "result");
  std::string result = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no result)";
  lua_close(L);
  BOOST_CHECK_EQUAL(result,
                    "v1 PROXY TCP4 192.0.2.7,v1 PROXY UNKNOWN nil,v2 LOCAL UNKNOWN nil"
                    " | ECONNRESET,ECONNRESET,ECONNRESET | untrusted 0 invalid 0 timeout 0");
}

BOOST_AUTO_TEST_CASE(lua_server_and_client, *utf::timeout(120)) {
  std::string err = lnet_test::run_scenario("proxy_server");
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

BOOST_AUTO_TEST_CASE(haproxy_in_front, *utf::timeout(180) * utf::precondition(have_haproxy)) {
  uint16_t p1 = free_port(), p2 = free_port(), p3 = free_port(), lb = free_port();
  auto one = backend(p1, "one");
  auto two = backend(p2, "two");
  // A control: a server that trusts no header from here (it closes every
  // connection, checks included), so its checks must fail.
  auto three = backend(p3, "three", "192.0.2.1");
  // examples/deploy/haproxy.cfg as it is, plus a stats socket and the control.
  TempDir dir;
  std::string conf = read_file(deploy("haproxy.cfg"));
  std::string stats = dir / "stats.sock";
  BOOST_REQUIRE(conf.find("\nglobal\n") != std::string::npos);
  conf = replace_all(conf, "\nglobal\n", "\nglobal\n    stats socket \"" + stats + "\"\n");
  conf += "    server three \"" + addr(p3) + "\" send-proxy-v2\n";
  Child haproxy({"haproxy", "-db", "-f", dir.write("haproxy.cfg", conf)},
                {{"LB_ADDR", addr(lb)}, {"BACKEND1", addr(p1)}, {"BACKEND2", addr(p2)}});
  BOOST_REQUIRE_MESSAGE(wait_answering(lb, seconds(20)), haproxy.describe());
  // Health checks carry a header (v2 LOCAL to one, v1 to two) and pass only
  // when the server accepted it and answered (tcp-check expect): L7OK.
  std::map<std::string, std::string> servers;
  for (auto deadline = Clock::now() + seconds(10); Clock::now() < deadline;) {
    servers = haproxy_servers(stats);
    if (servers["one"] == "UP L7OK" && servers["two"] == "UP L7OK" && servers["three"].rfind("DOWN ", 0) == 0)
      break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  BOOST_CHECK_EQUAL(servers["one"], "UP L7OK");
  BOOST_CHECK_EQUAL(servers["two"], "UP L7OK");
  BOOST_CHECK_MESSAGE(servers["three"].rfind("DOWN ", 0) == 0, "three: " << servers["three"]);
  BOOST_CHECK_MESSAGE(one->wait_for("connection v2 LOCAL", seconds(10), 3), one->describe());
  BOOST_CHECK_MESSAGE(two->wait_for("connection v1 PROXY", seconds(10), 3), two->describe());
  BOOST_CHECK_MESSAGE(three->out().find("connection ") == std::string::npos, three->describe());
  // Five check intervals later neither server has been taken out.
  std::this_thread::sleep_for(milliseconds(1000));
  BOOST_CHECK_MESSAGE(haproxy.err().find("one is DOWN") == std::string::npos &&
                          haproxy.err().find("two is DOWN") == std::string::npos,
                      haproxy.describe());
  // Both servers up, each client seen with its real address.
  std::map<std::string, int> by_server;
  for (int k = 0; k < 40; k++) {
    Answer a = ask(lb);
    check_real_client(a, a.server == "one" ? "2" : "1");
    by_server[a.server]++;
  }
  BOOST_CHECK_GT(by_server["one"], 5);
  BOOST_CHECK_GT(by_server["two"], 5);
  BOOST_CHECK(one->err().empty());
  BOOST_CHECK(two->err().empty());
  // One server dies: the checks take it out, traffic goes on through the other.
  two->kill_now();
  BOOST_CHECK_MESSAGE(haproxy.wait_for("two is DOWN", seconds(10), 1, lnet_test::Stream::err),
                      haproxy.describe());
  for (int k = 0; k < 20; k++) {
    Answer a = ask(lb);
    check_real_client(a, "2");
    BOOST_CHECK_EQUAL(a.server, "one");
  }
  BOOST_CHECK(haproxy.running());
  haproxy.stop();
}

BOOST_AUTO_TEST_CASE(nginx_stream_in_front, *utf::timeout(180) * utf::precondition(have_nginx_stream)) {
  uint16_t p1 = free_port(), p2 = free_port(), lb = free_port();
  auto one = backend(p1, "one");
  auto two = backend(p2, "two");
  TempDir dir;
  std::string conf = read_file(deploy("nginx-stream.conf"));
  BOOST_REQUIRE(!conf.empty());
  conf = replace_all(conf, "${PREFIX}", dir.path());
  conf = replace_all(conf, "${LB_ADDR}", addr(lb));
  conf = replace_all(conf, "${BACKEND1}", addr(p1));
  conf = replace_all(conf, "${BACKEND2}", addr(p2));
  BOOST_REQUIRE(conf.find("listen " + addr(lb) + ";") != std::string::npos);
  std::string path = dir.write("nginx.conf", conf);
  Child nginx({"nginx", "-p", dir.path(), "-c", path, "-e", "stderr"});
  BOOST_REQUIRE_MESSAGE(wait_answering(lb, seconds(20)), nginx.describe());
  std::map<std::string, int> by_server;
  for (int k = 0; k < 40; k++) {
    Answer a = ask(lb);
    check_real_client(a, "1");
    by_server[a.server]++;
  }
  BOOST_CHECK_GT(by_server["one"], 5);
  BOOST_CHECK_GT(by_server["two"], 5);
  // One server dies: nginx skips it and the clients still get through.
  two->kill_now();
  for (int k = 0; k < 20; k++) {
    Answer a = ask(lb);
    check_real_client(a, "1");
    BOOST_CHECK_EQUAL(a.server, "one");
  }
  BOOST_CHECK(nginx.running());
  nginx.stop();
}

// lnet's own examples as the front end: lb.lua --send-proxy=2 (its health
// probes send LOCAL headers) and proxy.lua forward --send-proxy=1.
BOOST_AUTO_TEST_CASE(lnet_examples_send_proxy, *utf::timeout(120)) {
  uint16_t p1 = free_port();
  auto one = backend(p1, "one");
  auto lb = lnet_test::lnet({lnet_test::source_path("examples/lb.lua"), "--send-proxy=2",
                             "--interval=100", "0", addr(p1)},
                            true);
  auto line = lb->wait_line("listening on ", seconds(20));
  BOOST_REQUIRE_MESSAGE(line, lb->describe());
  uint16_t lb_port = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  for (int k = 0; k < 10; k++) check_real_client(ask(lb_port), "2");
  BOOST_CHECK_MESSAGE(one->wait_for("connection v2 LOCAL", seconds(10), 2), one->describe());
  auto fwd = lnet_test::lnet({lnet_test::source_path("examples/proxy.lua"), "--send-proxy=1",
                              "forward", "0", "127.0.0.1", std::to_string(p1)},
                             true);
  line = fwd->wait_line("listening on ", seconds(20));
  BOOST_REQUIRE_MESSAGE(line, fwd->describe());
  uint16_t fwd_port = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
  for (int k = 0; k < 10; k++) check_real_client(ask(fwd_port), "1");
  BOOST_CHECK(one->err().empty());
  lb->stop();
  fwd->stop();
}
