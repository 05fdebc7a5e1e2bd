// TLS against real peers: openssl s_server / s_client, curl and Python's
// ssl module, with certificates made at test time by tests/tls/make-certs.sh
// in a temporary directory (never committed). Lua scenarios in
// tests/lua/tls/ get a global TLS = { certs, port, case, pid, ... }.
// Sizes of the load cases scale with LNET_TLS_SCALE (a divisor; the ASan
// run sets none, the cases pick smaller sizes under LNET_PRELOAD/ASan).
#define BOOST_TEST_MODULE tls
#include <boost/test/unit_test.hpp>

#include "harness.hh"
#include "support.hh"

#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

using lnet_test::Child;
using lnet_test::closed_port;
using lnet_test::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

bool with_asan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

// The certificates, made once per test program run.
const std::string& certs() {
  static std::unique_ptr<TempDir> dir;
  if (!dir) {
    dir = std::make_unique<TempDir>();
    auto r = lnet_test::run({"sh", lnet_test::source_path("tests/tls/make-certs.sh"), dir->path()}, {}, "",
                            seconds(60));
    if (r.status != 0) throw std::runtime_error("make-certs.sh failed: " + r.text);
  }
  return dir->path();
}

bool tls_built() {
  lua_State* L = lnet_test::new_state();
  std::string err = lnet_test::run_string(L, "assert(require('net').features.tls)", "features");
  lua_close(L);
  return err.empty();
}

// The precondition of every suite: skipped with the reason, never passed.
boost::test_tools::assertion_result tls_is_built(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(tls_built());
  if (!r) r.message() << "net.features.tls is false: lnet was built without TLS (-Dtls=disabled)";
  return r;
}

std::string lua_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// Runs tests/lua/tls/NAME.lua with TLS = { certs = ..., <fields> } (fields:
// Lua table-constructor text); "" on success.
std::string scenario(const std::string& name, const std::string& fields) {
  lua_State* L = lnet_test::new_state();
  std::string setup = "TLS = { certs = " + lua_quote(certs()) + ", source = " +
                      lua_quote(lnet_test::source_path("")) + ", asan = " +
                      (with_asan() ? "true" : "false") + ", " + fields + " }";
  std::string err = lnet_test::run_string(L, setup, "setup");
  if (err.empty()) err = lnet_test::run_file(L, lnet_test::source_path("tests/lua/tls/" + name + ".lua"));
  // The peers the scenario started, stopped by PID whether it passed or not.
  lnet_test::run_string(L, "local l = package.loaded['tls.tlslib'] if l then l.stop_all() end", "stop");
  lua_close(L);
  return err;
}

std::string cert(const std::string& name) { return certs() + "/" + name; }

// openssl s_server on a free loopback port, stopped (with its process
// group) when the test ends.
struct SServer {
  uint16_t port = 0;
  std::unique_ptr<Child> child;
  explicit SServer(std::vector<std::string> args) {
    port = closed_port();
    std::vector<std::string> argv = {"openssl", "s_server", "-accept",
                                     "127.0.0.1:" + std::to_string(port), "-naccept", "1000"};
    argv.insert(argv.end(), args.begin(), args.end());
    child = std::make_unique<Child>(argv);
    if (!child->wait_for("ACCEPT", seconds(20)))
      throw std::runtime_error("s_server did not start: " + child->describe());
  }
  std::string fields(const std::string& c) const {
    return "port = " + std::to_string(port) + ", pid = " + std::to_string(child->pid()) +
           ", case = \"" + c + "\"";
  }
};

std::vector<std::string> server_cert(const std::string& name) {
  return {"-cert", cert(name + ".pem"), "-key", cert(name + ".key")};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void client_case(const std::string& c, const std::vector<std::string>& args,
                 const std::string& extra = "") {
  SServer s(plus({"-rev"}, args));
  std::string err = scenario("client", s.fields(c) + (extra.empty() ? "" : ", " + extra));
  BOOST_TEST(err == "", err << "\ns_server: " << s.child->describe());
}

std::string fingerprint(const std::string& pem) {
  auto r = lnet_test::run({"openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"});
  // "sha256 Fingerprint=AA:BB:..."
  size_t eq = r.out.find('=');
  if (r.status != 0 || eq == std::string::npos) throw std::runtime_error("openssl x509: " + r.text);
  std::string fp = r.out.substr(eq + 1);
  while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
  return fp;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(client_against_s_server, *boost::unit_test::precondition(tls_is_built))

BOOST_AUTO_TEST_CASE(good_certificate) {
  client_case("good", server_cert("server"),
              "fingerprint = " + lua_quote(fingerprint(cert("server.pem"))));
}
BOOST_AUTO_TEST_CASE(wrong_host_name) { client_case("wrong_host", server_cert("server")); }
BOOST_AUTO_TEST_CASE(ip_san_mismatch) { client_case("ip_mismatch", server_cert("alt")); }
BOOST_AUTO_TEST_CASE(expired) { client_case("expired", server_cert("expired")); }
BOOST_AUTO_TEST_CASE(unknown_ca) { client_case("unknown_ca", server_cert("unknown")); }
BOOST_AUTO_TEST_CASE(self_signed_and_insecure) { client_case("self_signed", server_cert("self")); }
BOOST_AUTO_TEST_CASE(tls1_1_refused_by_default) {
  client_case("old_version", plus(server_cert("server"), {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"}));
}
BOOST_AUTO_TEST_CASE(sni_seen_by_the_server) {
  // -cert2 is what s_server uses when the client's SNI is -servername.
  client_case("sni", plus(server_cert("alt"), {"-servername", "localhost", "-servername_fatal",
                                               "-cert2", cert("server.pem"), "-key2", cert("server.key")}));
}
BOOST_AUTO_TEST_CASE(alpn_chosen) {
  client_case("alpn", plus(server_cert("server"), {"-alpn", "h2"}));
}
BOOST_AUTO_TEST_CASE(truncation_without_close_notify) {
  client_case("truncated", server_cert("server"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(server, *boost::unit_test::precondition(tls_is_built))

BOOST_AUTO_TEST_CASE(s_client_echo) { BOOST_TEST(scenario("server", "case = 's_client'") == ""); }
BOOST_AUTO_TEST_CASE(mutual_tls) { BOOST_TEST(scenario("server", "case = 'mutual'") == ""); }
BOOST_AUTO_TEST_CASE(disconnect_sends_close_notify) {
  BOOST_TEST(scenario("server", "case = 'unwrap'") == "");
}
BOOST_AUTO_TEST_CASE(truncation_seen_by_the_server) {
  BOOST_TEST(scenario("server", "case = 'server_truncation'") == "");
}
BOOST_AUTO_TEST_CASE(close_notify_and_handshake_timeout) {
  BOOST_TEST(scenario("server", "case = 'client_close_notify'") == "");
}
BOOST_AUTO_TEST_CASE(stop_closes_handshaking_connections) {
  BOOST_TEST(scenario("server", "case = 'stop_handshaking'") == "");
}
BOOST_AUTO_TEST_CASE(sni_contexts) { BOOST_TEST(scenario("server", "case = 'sni'") == ""); }

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(flow, *boost::unit_test::precondition(tls_is_built))

BOOST_AUTO_TEST_CASE(context_errors) { BOOST_TEST(scenario("flow", "case = 'context_errors'") == ""); }
BOOST_AUTO_TEST_CASE(starttls_lnet_both_ends) { BOOST_TEST(scenario("flow", "case = 'starttls'") == ""); }
BOOST_AUTO_TEST_CASE(pause_resume_10mb_and_1_byte_records) {
  BOOST_TEST(scenario("flow", "case = 'pause_resume'") == "");
}
BOOST_AUTO_TEST_CASE(concurrent_1000) {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  BOOST_TEST(scenario("flow", "case = 'many'") == "");
}
BOOST_AUTO_TEST_CASE(stream_1gb_checksummed) {
  // LNET_TLS_STREAM_MB: another size (the ASan run divides it by 8).
  std::string mb = lnet_test::env_or("LNET_TLS_STREAM_MB", "1024");
  BOOST_TEST(scenario("flow", "case = 'stream', total = " + mb + " * 1024 * 1024") == "");
}

BOOST_AUTO_TEST_SUITE_END()
