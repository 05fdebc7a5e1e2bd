// The other socket families: UDP (net.UDPSocket) and Unix domain sockets
// ("unix:/path", "unix:@name"). Each case runs tests/lua/fam/NAME.lua in a
// fresh lua_State that also holds a global table `famc` of C++ helpers:
// child processes (socat, python3) started by the script and stopped by the
// test, file modes, a temporary directory. Every wait is bounded by the
// script's own deadline (testlib.run) and by the Boost timeout.
#define BOOST_TEST_MODULE families
#include <boost/test/unit_test.hpp>

#include "harness.hh"
#include "support.hh"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using lnet_test::Child;

// What one case owns; the destructor stops every child and removes the
// directory.
struct CaseState {
  std::vector<std::unique_ptr<Child>> children;
  std::unique_ptr<lnet_test::TempDir> dir;
  lnet_test::Result last_run;  // of famc.run
};
CaseState* g_case = nullptr;

bool on_path(const std::string& cmd) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string file = p.substr(start, end - start) + "/" + cmd;
    if (access(file.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

// The strings of the array at arg (checked before anything is built).
int check_argv(lua_State* L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  int n = static_cast<int>(luaL_len(L, arg));
  luaL_argcheck(L, n > 0, arg, "empty argv");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, i);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, arg, "argv holds a non-string");
    lua_pop(L, 1);
  }
  return n;
}

Child* check_child(lua_State* L, int arg) {
  lua_Integer h = luaL_checkinteger(L, arg);
  luaL_argcheck(L, h >= 1 && static_cast<size_t>(h) <= g_case->children.size(), arg, "no such child");
  return g_case->children[static_cast<size_t>(h - 1)].get();
}

// spawn(argv [, stdin_data]) -> handle: starts a child (its stdin a pipe
// fed with stdin_data and closed when given, else /dev/null).
int l_spawn(lua_State* L) {
  int n = check_argv(L, 1);
  size_t inlen = 0;
  const char* in = luaL_optlstring(L, 2, nullptr, &inlen);
  std::string err;
  {
    std::vector<std::string> argv;
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 1, i);
      argv.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    try {
      auto c = std::make_unique<Child>(argv, lnet_test::Env{}, in != nullptr);
      if (in) {
        c->write_stdin(std::string(in, inlen));
        c->close_stdin();
      }
      g_case->children.push_back(std::move(c));
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  if (!err.empty()) {
    lua_pushstring(L, err.c_str());
    return lua_error(L);
  }
  lua_pushinteger(L, static_cast<lua_Integer>(g_case->children.size()));
  return 1;
}

// out(h), err(h) -> what the child wrote so far.
int l_out(lua_State* L) {
  Child* c = check_child(L, 1);
  const std::string& s = c->out();
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

int l_err(lua_State* L) {
  Child* c = check_child(L, 1);
  const std::string& s = c->err();
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

// running(h) -> whether the child still runs.
int l_running(lua_State* L) {
  lua_pushboolean(L, check_child(L, 1)->running());
  return 1;
}

// stop(h) -> its status (SIGTERM, then SIGKILL).
int l_stop(lua_State* L) {
  lua_pushinteger(L, check_child(L, 1)->stop());
  return 1;
}

// tmpdir() -> a directory removed when the case ends.
int l_tmpdir(lua_State* L) {
  if (!g_case->dir) g_case->dir = std::make_unique<lnet_test::TempDir>();
  lua_pushstring(L, g_case->dir->path().c_str());
  return 1;
}

// mode(path) -> permission bits, "socket" | "file" | "other"; or nil.
int l_mode(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, std::strerror(errno));
    return 2;
  }
  lua_pushinteger(L, st.st_mode & 07777);
  lua_pushstring(L, S_ISSOCK(st.st_mode) ? "socket" : S_ISREG(st.st_mode) ? "file" : "other");
  return 2;
}

// has(cmd) -> whether cmd is on PATH.
int l_has(lua_State* L) {
  lua_pushboolean(L, on_path(luaL_checkstring(L, 1)));
  return 1;
}

// stale_socket(path): a Unix socket file that nothing accepts on (bound,
// then closed without removing the file).
int l_stale_socket(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  luaL_argcheck(L, std::strlen(path) < sizeof sa.sun_path, 1, "path too long");
  std::strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  int rc = fd >= 0 ? bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) : -1;
  int e = errno;
  if (fd >= 0) close(fd);
  if (rc != 0) return luaL_error(L, "stale_socket(%s): %s", path, std::strerror(e));
  return 0;
}

// run(argv) -> status, stdout, stderr: runs a command to its end (at most
// 20 s; status -1 when it did not end in time). The result is kept in the
// case's state, so that nothing with a destructor lives in this frame when
// a push raises.
int l_run(lua_State* L) {
  int n = check_argv(L, 1);
  bool failed = false;
  {
    std::vector<std::string> argv;
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, 1, i);
      argv.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    try {
      g_case->last_run = lnet_test::run(argv);
    } catch (const std::exception& e) {
      g_case->last_run = {};
      g_case->last_run.err = e.what();
      failed = true;
    }
  }
  const lnet_test::Result& r = g_case->last_run;
  if (failed) return luaL_error(L, "run: %s", r.err.c_str());
  lua_pushinteger(L, r.status);
  lua_pushlstring(L, r.out.data(), r.out.size());
  lua_pushlstring(L, r.err.data(), r.err.size());
  return 3;
}

// ids() -> pid, uid, gid of this process.
int l_ids(lua_State* L) {
  lua_pushinteger(L, getpid());
  lua_pushinteger(L, getuid());
  lua_pushinteger(L, getgid());
  return 3;
}

const luaL_Reg kFamc[] = {{"spawn", l_spawn},   {"out", l_out},   {"err", l_err},
                          {"running", l_running}, {"stop", l_stop}, {"tmpdir", l_tmpdir},
                          {"mode", l_mode},     {"has", l_has},   {"ids", l_ids}, {"stale_socket", l_stale_socket}, {"run", l_run},
                          {nullptr, nullptr}};

std::string run_fam(const std::string& name) {
  CaseState state;
  g_case = &state;
  lua_State* L = lnet_test::new_state();
  std::string err = "cannot create a Lua state";
  if (L) {
    lua_newtable(L);
    luaL_setfuncs(L, kFamc, 0);
    lua_setglobal(L, "famc");
    err = lnet_test::run_file(L, lnet_test::source_path("tests/lua/fam/" + name + ".lua"));
    lua_close(L);
  }
  g_case = nullptr;
  return err;  // state's destructor stops the children, removes the directory
}

}  // namespace

// ------------------------------------------------- a private network

namespace {

// What multicast_loop = false changes cannot be seen on the loopback
// interface (a packet sent there comes back in as input either way), and
// IPv6 multicast needs an interface with the multicast flag: those cases
// run in a forked child with a network namespace of its own (as root, or
// as root of a new user namespace) holding a veth pair v0 <-> v1 (v0:
// 10.9.9.1/24 and fd09::1/64) and lo. Nothing leaves the namespace.
// Without the right to make one, the cases are skipped with the reason.

const std::vector<std::vector<std::string>> kNetnsSetup = {
    {"ip", "link", "set", "lo", "up"},
    {"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
    {"ip", "link", "set", "v0", "up", "multicast", "on"},
    {"ip", "link", "set", "v1", "up", "multicast", "on"},
    {"ip", "addr", "add", "10.9.9.1/24", "dev", "v0"},
    {"ip", "-6", "addr", "add", "fd09::1/64", "dev", "v0", "nodad"},
};

// In this (forked) process: the namespace above. "" when made, else why not.
std::string enter_netns() {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWNET) != 0) {
    int first = errno;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
      return std::string("unshare(CLONE_NEWNET): ") + std::strerror(first) +
             "; with CLONE_NEWUSER: " + std::strerror(errno);
    try {
      lnet_test::write_file("/proc/self/setgroups", "deny");
      lnet_test::write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
      lnet_test::write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    } catch (const std::exception& e) {
      return std::string("user namespace maps: ") + e.what();
    }
  }
  // iproute2's ip lives in sbin, which a user's PATH may lack.
  std::string ip = "ip";
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (access(path, X_OK) == 0) {
      ip = path;
      break;
    }
  for (auto argv : kNetnsSetup) {
    argv[0] = ip;
    lnet_test::Result r = lnet_test::run(argv, {}, "", std::chrono::seconds(10));
    if (r.status != 0) {
      std::string cmd;
      for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
      return cmd + ": status " + std::to_string(r.status) + " " + r.err;
    }
  }
  return "";
}

// Runs body in a forked child inside the namespace: "" on success, else the
// failure (or "SKIP: why" when the namespace could not be made).
std::string in_netns(const std::function<std::string()>& body, int timeout_s) {
  auto end = lnet_test::run_in_child(
      [&] {
        std::string why = enter_netns();
        if (!why.empty()) return "cannot make a private network namespace with a veth pair here: " + why;
        return body();
      },
      lnet_test::Clock::now() + std::chrono::seconds(timeout_s));
  const std::string& text = end.text;
  int status = end.status;
  if (end.timed_out) return "did not end within " + std::to_string(timeout_s) + " s; reported: " + text;
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + "; " + text;
  if (WEXITSTATUS(status) != 0 && text.empty()) return "exit status " + std::to_string(WEXITSTATUS(status));
  return text;
}

// Whether the namespace can be made here (tried once, in a child).
boost::test_tools::assertion_result netns_possible(boost::unit_test::test_unit_id) {
  static std::optional<std::string> why;
  if (!why) why = in_netns([] { return std::string(); }, 30);
  boost::test_tools::assertion_result r(why->empty());
  if (!why->empty()) r.message() << *why;
  return r;
}

}  // namespace

#define FAM(name, needs)                                                                     \
  BOOST_AUTO_TEST_CASE(name, *boost::unit_test::timeout(120)) {                              \
    for (const char* cmd : needs) {                                                          \
      if (!on_path(cmd)) {                                                                   \
        BOOST_FAIL(std::string("needs ") + cmd + " on PATH (Debian package: see tools/deps.sh)"); \
      }                                                                                      \
    }                                                                                        \
    std::string err = run_fam(#name);                                                        \
    BOOST_CHECK_MESSAGE(err.empty(), err);                                                   \
  }

namespace {
const std::vector<const char*> kNothing;
const std::vector<const char*> kSocat = {"socat"};
const std::vector<const char*> kSocatPython = {"socat", "python3"};
const std::vector<const char*> kPython = {"python3"};
const std::vector<const char*> kSsPython = {"ss", "python3"};
}  // namespace

// UDP
FAM(udp_echo, kNothing)
FAM(udp_edges, kNothing)
FAM(udp_peers, kSocatPython)
FAM(udp_multicast, kNothing)
FAM(udp_flood, kPython)
FAM(udp_options, kSsPython)

// UDP in a private network namespace (see in_netns).
BOOST_AUTO_TEST_CASE(udp_netns_multicast, *boost::unit_test::timeout(120) *
                                              boost::unit_test::precondition(netns_possible)) {
  BOOST_REQUIRE_MESSAGE(on_path("python3"), "needs python3 on PATH (Debian package: see tools/deps.sh)");
  std::string err = in_netns([] { return run_fam("udp_netns_multicast"); }, 100);
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

// Unix domain sockets
FAM(unix_echo, kNothing)
FAM(unix_files, kNothing)
FAM(unix_socat, kSocat)

// Allocation-failure sweep over UDP and a Unix socket: every allocation
// from the Nth on fails, for N from 1 until the scenario completes; each
// run must end cleanly (ASan shows a leak or a bad access).
namespace {

using lnet_test::AllocBudget;
using lnet_test::failing_alloc;

const char kSweep[] = R"lua(
local path = ...
local net = require "net"
local got = {}
local a = net.UDPSocket({ max_datagram = 2000 })
a:bind("127.0.0.1", 0, {
  message = function(d, ip, port, truncated) got[#got + 1] = d; a:send(d, ip, port) end,
})
local _, port = a:sockname()
local b = net.UDPSocket()
local echoes = 0
b:bind("127.0.0.1", 0, { message = function() echoes = echoes + 1 end })
b:send("one", "127.0.0.1", port)
b:send("two", "localhost", port)
local srv = net.TCPServer()
srv:listen("unix:" .. path, nil, { data = function(id, d) srv:send(id, d) end }, { mode = "0600" })
local c = net.TCPSocket()
local echoed = ""
local t = net.setTimeout(function() error("sweep scenario timed out") end, 5000)
c:connect("unix:" .. path, nil, {
  connected = function() c:send(string.rep("u", 500)) end,
  data = function(d) echoed = echoed .. d; if #echoed == 500 then c:disconnect() end end,
  disconnected = function() srv:stop() end,
  error = function(m) error(m) end,
})
local iv
iv = net.setInterval(function()
  if echoes == 2 and not srv:address() then a:close(); b:close(); net.clearInterval(iv); net.clearTimeout(t) end
end, 2)
assert(net.loop() == false)
assert(echoes == 2 and #echoed == 500, "scenario incomplete")
done = true
)lua";

}  // namespace

BOOST_AUTO_TEST_CASE(alloc_sweep_udp_and_unix, *boost::unit_test::timeout(900)) {
  lnet_test::TempDir dir;
  std::string path = dir / "sweep.sock";
  long n = 1, failures_seen = 0;
  for (; n < 200000; n++) {
    AllocBudget budget;
    lua_State* L = lnet_test::new_state(failing_alloc, &budget);
    BOOST_REQUIRE_MESSAGE(L != nullptr, "state setup failed without injected failures");
    budget.fail_from = n;
    std::string chunk = std::string("return (function(...)\n") + kSweep + "\nend)('" + path + "')";
    std::string err = lnet_test::run_string(L, chunk, "=sweep");
    bool done = false;
    if (err.empty()) {
      budget.fail_from = 0;
      lua_getglobal(L, "done");
      done = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    lua_close(L);
    unlink(path.c_str());  // a run cut short may leave its socket file
    if (!budget.failed) {
      BOOST_CHECK_MESSAGE(err.empty() && done, "scenario failed on its own: " + err);
      break;
    }
    failures_seen++;
  }
  BOOST_TEST_MESSAGE("allocation points swept: " << n - 1);
  BOOST_CHECK_GT(failures_seen, 100);
}
