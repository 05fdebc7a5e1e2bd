// Name resolution through the system resolver (issue 8, items 6c, 7, 8).
//
// Each namespace case runs in a forked child that unshares its network and
// mount namespaces: /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf are
// bind-mounted from a temporary directory, only the loopback interface
// exists (up, or down for "no route at all"), and a fake DNS server answers
// on 127.0.0.53:53 inside the namespace. Nothing leaves the machine. The
// child runs a Lua script in-process (or the lnet runner) and reports a
// failure as text through a pipe. Without the right to unshare, the cases
// are skipped with the reason.
#define BOOST_TEST_MODULE resolver
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LNET_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define LNET_LSAN 1
#endif
#endif

#include "harness.hh"
#include "support.hh"

using namespace lnet_test;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// ------------------------------------------------------------- fake DNS

// Answers UDP queries on 127.0.0.53:53 for the names below; NXDOMAIN for
// any other name. Counts the queries per name (lowercase, no final dot).
//   svc.lnet.test     A 127.0.0.1 (no AAAA)
//   six.lnet.test     AAAA ::1 (no A)
//   slow.lnet.test    A 127.0.0.1, answered 1.5 s late
//   first.lnet.test   A 127.0.0.1, the first A query answered 800 ms late,
//                     later ones at once (a later lookup finishes first)
//   silent.lnet.test  never answered
class FakeDns {
 public:
  FakeDns() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    inet_pton(AF_INET, "127.0.0.53", &sa.sin_addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      fail_errno("fake DNS: bind 127.0.0.53:53");
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDns() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int queries(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counts_.find(name);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  struct Delayed {
    Clock::time_point due;
    std::string reply;
    sockaddr_storage to;
    socklen_t tolen;
  };

  void serve() {
    std::vector<Delayed> later;
    while (!stop_) {
      int wait = 50;
      auto now = Clock::now();
      for (auto it = later.begin(); it != later.end();) {
        if (it->due <= now) {
          ::sendto(fd_, it->reply.data(), it->reply.size(), 0, reinterpret_cast<sockaddr*>(&it->to), it->tolen);
          it = later.erase(it);
        } else {
          wait = std::min(wait, remaining_ms(it->due) + 1);
          ++it;
        }
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, wait) <= 0) continue;
      unsigned char q[512];
      Delayed d;
      d.tolen = sizeof d.to;
      ssize_t n = ::recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&d.to), &d.tolen);
      if (n < 12) continue;
      std::string name;
      size_t at = 12;
      while (at < static_cast<size_t>(n) && q[at] != 0) {
        size_t len = q[at++];
        if (at + len > static_cast<size_t>(n)) break;
        if (!name.empty()) name += '.';
        for (size_t i = 0; i < len; i++) name += static_cast<char>(std::tolower(q[at + i]));
        at += len;
      }
      if (at + 5 > static_cast<size_t>(n)) continue;
      size_t qend = at + 5;  // the root label, QTYPE, QCLASS
      int qtype = q[at + 1] << 8 | q[at + 2];
      int nth = 0;  // this query is the nth for its name and type
      {
        std::lock_guard<std::mutex> lock(mu_);
        counts_[name]++;
        nth = ++type_counts_[name + "/" + std::to_string(qtype)];
      }
      if (name == "silent.lnet.test") continue;
      std::string rdata;  // one answer record's data, if any
      bool known = true;
      bool a_name = name == "svc.lnet.test" || name == "slow.lnet.test" || name == "first.lnet.test";
      if (a_name && qtype == 1)
        rdata = std::string("\x7f\x00\x00\x01", 4);
      else if (name == "six.lnet.test" && qtype == 28)
        rdata = std::string(15, '\0') + '\x01';
      else
        known = a_name || name == "six.lnet.test";
      std::string r(reinterpret_cast<char*>(q), qend);
      r[2] = static_cast<char>(0x81);            // QR, RD
      r[3] = static_cast<char>(known ? 0x80 : 0x83);  // RA; NOERROR or NXDOMAIN
      r[4] = 0, r[5] = 1;                        // one question
      r[6] = 0, r[7] = rdata.empty() ? 0 : 1;    // answers
      r[8] = r[9] = r[10] = r[11] = 0;
      if (!rdata.empty()) {
        r += std::string("\xc0\x0c", 2);                      // the question's name
        r += static_cast<char>(0), r += static_cast<char>(qtype);
        r += std::string("\x00\x01\x00\x00\x00\x3c", 6);      // IN, TTL 60
        r += static_cast<char>(0), r += static_cast<char>(rdata.size());
        r += rdata;
      }
      d.reply = r;
      milliseconds delay(0);
      if (name == "slow.lnet.test") delay = milliseconds(1500);
      if (name == "first.lnet.test" && qtype == 1 && nth == 1) delay = milliseconds(800);
      d.due = Clock::now() + delay;
      later.push_back(d);
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, int> counts_;
  std::map<std::string, int> type_counts_;
  std::thread thread_;
};

FakeDns* g_dns = nullptr;  // the child's, for dns_queries()

// dns_queries(name) -> how many queries the fake DNS server got for name.
int lua_dns_queries(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  lua_pushinteger(L, g_dns ? g_dns->queries(name) : 0);
  return 1;
}

// ------------------------------------------------------------- namespaces

struct Setup {
  std::string resolv_conf = "nameserver 127.0.0.53\nsearch lnet.test\noptions timeout:3 attempts:1\n";
  std::string hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.0.1 made-up-lnet-host\n";
  std::string nsswitch = "hosts: files dns\n";
  bool loopback = true;   // bring lo up (else: no route at all)
  bool fake_dns = true;   // needs loopback
};

// In a fresh child: new network and mount namespaces (as root, or as root
// of a new user namespace), the three files bind-mounted over /etc, lo up
// if asked. "" when done, else why not.
std::string enter_namespaces(const TempDir& dir, const Setup& s) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    int first = errno;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) != 0)
      return std::string("unshare(CLONE_NEWNET | CLONE_NEWNS): ") + std::strerror(first) +
             "; with CLONE_NEWUSER: " + std::strerror(errno);
    try {
      write_file("/proc/self/setgroups", "deny");
      write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
      write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    } catch (const std::exception& e) {
      return std::string("user namespace maps: ") + e.what();
    }
  }
  if (mount("none", "/", "none", MS_REC | MS_PRIVATE, nullptr) != 0)
    return errno_text("mount --make-rprivate /");
  const std::pair<std::string, std::string> files[] = {
      {"resolv.conf", s.resolv_conf}, {"hosts", s.hosts}, {"nsswitch.conf", s.nsswitch}};
  for (const auto& [name, text] : files) {
    std::string src = dir.write(name, text);
    std::string dst = "/etc/" + name;
    if (mount(src.c_str(), dst.c_str(), "none", MS_BIND, nullptr) != 0)
      return errno_text("mount --bind " + src + " " + dst);
  }
  if (s.loopback) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    bool ok = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP;
    ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    std::string err = ok ? "" : errno_text("bring lo up");
    if (fd >= 0) ::close(fd);
    if (!ok) return err;
  }
  return "";
}

struct Outcome {
  bool ok = false;
  std::string text;  // the failure, or "" on success
};

// Runs body in a child inside the namespaces of s; body returns "" on
// success, else the failure. Bounded by timeout.
Outcome in_namespace(const Setup& s, const std::function<std::string()>& body, milliseconds timeout) {
  TempDir dir;
  auto end = run_in_child(
      [&] {
        std::string why = enter_namespaces(dir, s);
        if (!why.empty()) return why;
        std::unique_ptr<FakeDns> dns;
        if (s.fake_dns) dns = std::make_unique<FakeDns>();
        g_dns = dns.get();
        why = body();
        g_dns = nullptr;
        return why;
      },
      Clock::now() + timeout);
  const std::string& text = end.text;
  int status = end.status;
  if (end.timed_out) return {false, "did not end within the time limit; reported: " + text};
  if (WIFSIGNALED(status)) return {false, "killed by signal " + std::to_string(WTERMSIG(status)) + "; " + text};
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && text.empty();
  return {ok, text};
}

// Skips a case when the namespaces cannot be made here (tried once).
boost::test_tools::assertion_result namespaces_available(boost::unit_test::test_unit_id) {
  static int state = -1;  // -1 unknown, 0 no, 1 yes
  static std::string reason;
  if (state < 0) {
    Setup s;
    s.fake_dns = false;
    Outcome o = in_namespace(s, [] { return std::string(); }, seconds(20));
    state = o.ok ? 1 : 0;
    reason = o.text;
  }
  boost::test_tools::assertion_result r(state == 1);
  if (state != 1) r.message() << "network and mount namespaces are not available here: " << reason;
  return r;
}

bool have_ipv6_loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

// A state with dns_queries() and HAVE_IPV6 set.
lua_State* test_state() {
  lua_State* L = new_state();
  if (L == nullptr) return nullptr;
  lua_register(L, "dns_queries", lua_dns_queries);
  lua_pushboolean(L, have_ipv6_loopback());
  lua_setglobal(L, "HAVE_IPV6");
  return L;
}

// Runs tests/lua/resolve/NAME.lua in a fresh state: "" on success.
std::string run_script(const std::string& name) {
  lua_State* L = test_state();
  if (L == nullptr) return "cannot create a Lua state";
  std::string err = run_file(L, source_path("tests/lua/resolve/" + name + ".lua"));
  lua_close(L);
  return err;
}

#define NS_CASE(name, setup, body, limit)                                       \
  BOOST_AUTO_TEST_CASE(name, *boost::unit_test::timeout(120) *                  \
                                 boost::unit_test::precondition(namespaces_available)) { \
    Outcome o = in_namespace(setup, body, limit);                               \
    BOOST_CHECK_MESSAGE(o.ok, o.text);                                          \
  }

Setup with_nsswitch(const std::string& nsswitch) {
  Setup s;
  s.nsswitch = nsswitch;
  return s;
}

Setup with_resolv_conf(const std::string& conf) {
  Setup s;
  s.resolv_conf = conf;
  return s;
}

// How many threads and open descriptors this process has.
size_t count_entries(const char* dir) {
  size_t n = 0;
  if (DIR* d = opendir(dir)) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') n++;
    closedir(d);
  }
  return n;
}

// Item 6c and 8: lookups in flight at lua_close. Two states side by side;
// A is closed while its lookups of slow.lnet.test are in workers' hands:
// lua_close does not wait for it, B's lookups are unaffected, and once the
// worker has finished, the threads, descriptors and memory are all back
// (LeakSanitizer checks the memory in the ASan build).
std::string lookup_in_flight_at_close() {
  size_t threads0 = count_entries("/proc/self/task");
  size_t fds0 = count_entries("/proc/self/fd");
  lua_State* A = test_state();
  lua_State* B = test_state();
  if (!A || !B) {
    if (A) lua_close(A);
    if (B) lua_close(B);
    return "cannot create the Lua states";
  }
  // Six lookups: four workers take one each, two wait in the queue.
  std::string err = run_string(A, R"(
    net = require "net"
    sockets = {}
    for i = 1, 6 do
      sockets[i] = net.TCPSocket()
      sockets[i]:connect("slow.lnet.test", 9, { error = function() end })
    end
    -- The lookups start from the loop; wait until a query reached DNS.
    local limit = net.now() + 10000
    while dns_queries("slow.lnet.test") == 0 do
      assert(net.now() < limit, "the lookup of slow.lnet.test never reached the DNS server")
      local tick = net.setTimeout(function() end, 10)
      net.loop("once")
      net.clearTimeout(tick)
    end
  )", "A");
  auto deadline = Clock::now() + seconds(5);
  while (err.empty() && count_entries("/proc/self/task") < threads0 + 4 && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  size_t threads = count_entries("/proc/self/task");
  if (err.empty() && threads != threads0 + 4)
    err = std::to_string(threads - threads0) + " worker threads for 6 lookups (expected 4)";
  // Closing a socket whose lookup is queued frees it at once; the other
  // four are in flight at lua_close.
  if (err.empty()) err = run_string(A, "sockets[5]:close(); sockets[6]:close(); sockets = nil", "A");
  if (!err.empty()) {
    lua_close(A);
    lua_close(B);
    return "state A: " + err;
  }
  auto t0 = Clock::now();
  lua_close(A);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
  if (took > 750) {
    lua_close(B);
    return "lua_close waited " + std::to_string(took) + " ms for the lookup";
  }
  // B resolves the same slow name and connects while A's worker still runs.
  err = run_string(B, R"(
    local t = require "testlib"
    local net = require "net"
    t.run(5000, function(done)
      local srv, port = t.listen({})
      t.closing(srv)
      local c = net.TCPSocket()
      c:connect("slow.lnet.test", port, {
        connected = function()
          t.eq(c:peer(), "127.0.0.1", "peer")
          c:close()
          done()
        end,
        error = function(msg) error("state B: " .. msg) end,
      })
    end)
  )", "B");
  lua_close(B);
  if (!err.empty()) return "state B: " + err;
  // Every worker ends once getaddrinfo returns (the answer comes after 1.5 s).
  deadline = Clock::now() + seconds(5);
  while (count_entries("/proc/self/task") > threads0 && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(20));
  if (count_entries("/proc/self/task") > threads0) return "worker threads still run 5 s after lua_close";
  // The pipe of A's resolver is closed by its last worker.
  size_t fds = count_entries("/proc/self/fd");
  if (fds > fds0) return std::to_string(fds - fds0) + " descriptors more than before the states";
#ifdef LNET_LSAN
  if (__lsan_do_recoverable_leak_check() != 0) return "LeakSanitizer found leaks (see stderr)";
#endif
  return "";
}

// A seed example that connects to a host on the internet, run with no route
// at all (lo down, the nameservers unreachable): its error line, from its
// error callback, comes within 2 s (15 s with evdns).
std::string example_without_network(const std::string& name, const std::string& line) {
  Env env = lua_env();
  auto t0 = Clock::now();
  Result r = run(lnet_argv({source_path("examples/" + name + ".lua")}), env, "", seconds(20));
  double took = std::chrono::duration<double>(Clock::now() - t0).count();
  std::string what = " (" + std::to_string(took) + " s)\n" + r.text;
  if (r.status != 0) return "exit status " + std::to_string(r.status) + what;
  if (r.out.find(line) == std::string::npos) return "no line " + line + what;
  if (took >= 2.0) return "the error took 2 s or more" + what;
  if (!r.err.empty()) return "stderr is not empty" + what;
  return "";
}

Setup no_route() {
  Setup s;
  s.resolv_conf = "nameserver 192.0.2.1\nnameserver 127.0.0.53\n";
  s.loopback = false;
  s.fake_dns = false;
  return s;
}

}  // namespace

// Without namespaces: endpoints in messages.
BOOST_AUTO_TEST_CASE(endpoint_format, *boost::unit_test::timeout(60)) {
  lua_State* L = test_state();
  BOOST_REQUIRE(L);
  std::string err = run_file(L, source_path("tests/lua/resolve/endpoints.lua"));
  lua_close(L);
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

NS_CASE(names_through_dns_hosts_and_search, Setup(), [] { return run_script("names"); }, seconds(60))
// Answers for one name come in the order the lookups started, whichever
// worker finishes first: listen(name) then connect(name) binds first.
NS_CASE(same_name_answers_in_order, Setup(), [] { return run_script("order"); }, seconds(60))
NS_CASE(nsswitch_files_only, with_nsswitch("hosts: files\n"), [] { return run_script("files_only"); },
        seconds(60))
NS_CASE(timeout_bounds_resolution,
        with_resolv_conf("nameserver 127.0.0.53\noptions timeout:5 attempts:2\n"),
        [] { return run_script("timeout"); }, seconds(60))
NS_CASE(lookup_in_flight_at_lua_close, Setup(), lookup_in_flight_at_close, seconds(60))
NS_CASE(basic_client_without_network, no_route(), [] {
  return example_without_network("basic_client", "Connection error:\tconnect to www.google.com:80 failed: ");
}, seconds(60))
NS_CASE(http_client_without_network, no_route(), [] {
  return example_without_network("http_client", "HTTP request failed:\tconnect to httpbin.org:80 failed: ");
}, seconds(60))
