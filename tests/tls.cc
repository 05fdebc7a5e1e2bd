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
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

using lnet_test::Child;
using lnet_test::TempDir;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A free loopback port for a peer (s_server) to bind: bound to port 0,
// read, released.
uint16_t free_port() {
  lnet_test::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = lnet_test::loopback(0);
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    lnet_test::fail_errno("free_port");
  return lnet_test::local_port(fd.get());
}

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

// For the one suite that checks a build without TLS (-Dtls=disabled).
boost::test_tools::assertion_result tls_not_built(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(!tls_built());
  if (!r) r.message() << "lnet was built with TLS: the build without it is checked by a -Dtls=disabled build";
  return r;
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
    port = free_port();
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
BOOST_AUTO_TEST_CASE(no_shared_cipher) {
  client_case("no_cipher", plus(server_cert("server"), {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"}));
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
// TLS behind a PROXY protocol front (issue 10 meets issue 11).
BOOST_AUTO_TEST_CASE(behind_proxy) { BOOST_TEST(scenario("flow", "case = 'behind_proxy'") == ""); }
BOOST_AUTO_TEST_CASE(pause_resume_10mb_and_1_byte_records) {
  BOOST_TEST(scenario("flow", "case = 'pause_resume'") == "");
}
BOOST_AUTO_TEST_CASE(half_close_idle_max_buffer_close_nowait) {
  BOOST_TEST(scenario("flow", "case = 'everything_else'") == "");
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

// ------------------------------------------------------------- examples/

namespace {

std::string example(const std::string& name) { return lnet_test::source_path("examples/" + name); }

uint16_t port_from(Child& c, const std::string& prefix) {
  auto line = c.wait_line(prefix, seconds(20));
  if (!line) throw std::runtime_error("no '" + prefix + "' line: " + c.describe());
  return static_cast<uint16_t>(std::stoi(line->substr(line->find_last_of(':') + 1)));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(examples, *boost::unit_test::precondition(tls_is_built))

BOOST_AUTO_TEST_CASE(https_server_with_curl) {
  TempDir root;
  root.write("index.html", "<h1>lnet over TLS</h1>\n");
  std::string blob;
  for (size_t i = 0; i < 300000; i++) blob += static_cast<char>(i * 7919 % 251);
  root.write("blob.bin", blob);
  auto srv = lnet_test::lnet({example("https_server.lua"), root.path(), cert("chain.pem"), cert("server.key"), "0"},
                             true);
  uint16_t port = port_from(*srv, "https_server: listening on");
  std::string base = "https://localhost:" + std::to_string(port);
  auto r = lnet_test::run({"curl", "-sS", "--cacert", cert("ca.pem"), "-w", "\n%{http_code} %{http_version}",
                           base + "/"});
  BOOST_TEST(r.status == 0, r.text);
  BOOST_TEST(r.out == "<h1>lnet over TLS</h1>\n\n200 1.1", r.text);
  TempDir out;
  r = lnet_test::run({"curl", "-sS", "--cacert", cert("ca.pem"), "-o", out / "blob", "-w", "%{http_code}",
                      base + "/blob.bin"});
  BOOST_TEST(r.out == "200", r.text);
  auto cmp = lnet_test::run({"cmp", out / "blob", root / "blob.bin"});
  BOOST_TEST(cmp.status == 0, "the 300 KB file differs: " << cmp.text);
  r = lnet_test::run({"curl", "-sS", "--cacert", cert("ca.pem"), "-w", "%{http_code}", base + "/missing"});
  BOOST_TEST(r.out == "not found\n404", r.text);
  // Without the CA, curl refuses lnet's certificate; the server logs the failure and goes on.
  r = lnet_test::run({"curl", "-sS", base + "/"});
  BOOST_TEST(r.status != 0, r.text);
  BOOST_TEST(srv->wait_for("https_server: TLS handshake with 127.0.0.1:", seconds(10)), srv->describe());
  r = lnet_test::run({"curl", "-sS", "--cacert", cert("ca.pem"), "-o", "/dev/null", "-w", "%{http_code}", base + "/"});
  BOOST_TEST(r.out == "200", r.text);
  // openssl s_client too, by IP address.
  r = lnet_test::run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile",
                      cert("ca.pem"), "-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-crlf"},
                     {}, "GET /index.html HTTP/1.0\n\n", seconds(20));
  BOOST_TEST(r.out.find("HTTP/1.1 200 OK") != std::string::npos, r.text);
  BOOST_TEST(r.out.find("<h1>lnet over TLS</h1>") != std::string::npos, r.text);
  BOOST_TEST(srv->running(), srv->describe());
}

// The chain a server sends when its cert file holds the leaf only: built
// once from the context's trust store (ca) when the context is made, still
// sent whole (OpenSSL's per-handshake auto chain is off). And one TLS 1.3
// session ticket per full handshake, not OpenSSL's default two.
BOOST_AUTO_TEST_CASE(chain_from_ca_and_one_ticket) {
  TempDir d;
  std::string script = d.write("srv.lua", R"(
local net = require "net"
local server = net.TCPServer()
server:listen("127.0.0.1", 0, {
  started = function()
    print(("listening on %s:%d"):format(server:address()))
    io.stdout:flush()
  end,
  data = function(id, data)
    server:send(id, data)
    server:disconnect(id)  -- s_client (-ign_eof) ends at our close_notify
  end,
}, { tls = net.TLSContext { cert = arg[1], key = arg[2], ca = arg[3] } })
net.loop()
)");
  auto srv = lnet_test::lnet({script, cert("server.pem"), cert("server.key"), cert("ca.pem")}, true);
  uint16_t port = port_from(*srv, "listening on");
  auto r = lnet_test::run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-tls1_3",
                           "-CAfile", cert("ca.pem"), "-verify_return_error", "-showcerts", "-ign_eof"},
                          {}, "ping\n", seconds(20));
  BOOST_TEST(r.out.find("Verify return code: 0 (ok)") != std::string::npos, r.text);
  BOOST_TEST(r.out.find("\nping\n") != std::string::npos, r.text);  // the echo: the tickets came before it
  // Depth 0 the server, depth 1 the CA: the chain came from ca, not the file.
  BOOST_TEST(r.out.find(" 0 s:") != std::string::npos, r.text);
  BOOST_TEST(r.out.find(" 1 s:") != std::string::npos, r.text);
  BOOST_TEST(r.out.find("lnet test CA") != std::string::npos, r.text);
  size_t tickets = 0;
  for (size_t at = r.out.find("New Session Ticket arrived"); at != std::string::npos;
       at = r.out.find("New Session Ticket arrived", at + 1))
    tickets++;
  BOOST_TEST(tickets == 1u, "session tickets: " << tickets << "\n" << r.text);
  BOOST_TEST(srv->running(), srv->describe());
}

BOOST_AUTO_TEST_CASE(https_client_against_s_server_www) {
  TempDir www;
  www.write("page.html", "served by s_server -WWW\n");
  uint16_t port = free_port();
  Child s({"sh", "-c", "cd '" + www.path() + "' && exec openssl s_server -WWW -accept 127.0.0.1:" +
                           std::to_string(port) + " -cert " + cert("server.pem") + " -key " + cert("server.key")});
  BOOST_REQUIRE_MESSAGE(s.wait_for("ACCEPT", seconds(20)), s.describe());
  std::string url = "https://localhost:" + std::to_string(port) + "/page.html";
  auto c = lnet_test::lnet({example("https_client.lua"), url, cert("ca.pem")});
  auto st = c->wait_exit(seconds(30));
  BOOST_TEST((st && *st == 0), c->describe());
  BOOST_TEST(c->out().find("HTTP/1.0 200 ok") != std::string::npos, c->describe());
  BOOST_TEST(c->out().find("served by s_server -WWW") != std::string::npos, c->describe());
  // Verification is on: the system trust store does not know the test CA.
  auto c2 = lnet_test::lnet({example("https_client.lua"), url});
  st = c2->wait_exit(seconds(30));
  BOOST_TEST((st && *st == 1), c2->describe());
  BOOST_TEST(c2->err().find("certificate verify failed (unable to get local issuer certificate)") !=
                 std::string::npos, c2->describe());
}

BOOST_AUTO_TEST_CASE(smtp_starttls_with_s_client) {
  auto srv = lnet_test::lnet({example("smtp_starttls.lua"), cert("server.pem"), cert("server.key"), "0"}, true);
  uint16_t port = port_from(*srv, "smtp_starttls: listening on");
  auto r = lnet_test::run({"openssl", "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:" + std::to_string(port),
                           "-CAfile", cert("ca.pem"), "-verify_return_error", "-servername", "localhost",
                           "-quiet", "-crlf"},
                          {}, "NOOP\nQUIT\n", seconds(20));
  BOOST_TEST(r.out.find("250 ok (tls)") != std::string::npos, r.text);
  BOOST_TEST(r.out.find("221 bye") != std::string::npos, r.text);
  BOOST_TEST(srv->wait_for("secured with TLSv1.3", seconds(10)), srv->describe());
  // Pipelined plaintext before the upgrade: answered in order.
  auto fd = lnet_test::connect_to(port);
  BOOST_TEST(lnet_test::recv_line(fd.get(), seconds(10)) == "220 lnet ESMTP\r");
  lnet_test::send_all(fd.get(), "EHLO a\r\nNOOP\r\nSTARTTLS\r\n");
  std::vector<std::string> want = {"250-lnet greets you\r", "250 STARTTLS\r", "250 ok (plain)\r",
                                   "220 ready to start TLS\r"};
  for (const auto& w : want) BOOST_TEST(lnet_test::recv_line(fd.get(), seconds(10)) == w);
  BOOST_TEST(srv->running(), srv->describe());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(without_tls, *boost::unit_test::precondition(tls_not_built))

BOOST_AUTO_TEST_CASE(tls_options_raise) {
  lua_State* L = lnet_test::new_state();
  std::string err = lnet_test::run_string(L, R"(
    local net = require "net"
    assert(net.features.tls == false, "net.features.tls")
    local function raises(f, ...)
      local ok, e = pcall(f, ...)
      assert(not ok and tostring(e):find("lnet was built without TLS", 1, true), tostring(e))
    end
    raises(net.TLSContext, {})
    raises(net.TCPSocket, { tls = true })
    local s = net.TCPSocket()
    raises(s.connect, s, "127.0.0.1", 1, {}, { tls = true })
    raises(net.TCPServer().listen, net.TCPServer(), "127.0.0.1", 0, {}, { servername = "x" })
    assert(net.TCPSocket { tls = false }, "tls = false is fine")
  )", "without_tls");
  lua_close(L);
  BOOST_TEST(err == "");
}

BOOST_AUTO_TEST_SUITE_END()
