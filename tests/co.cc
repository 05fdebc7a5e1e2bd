// net.co, net.ngx and framing: the framing scanner on its own (every split
// point, a fuzz test with random chunking, length fields of 1/2/4/8 bytes in
// both byte orders, linear time for a message split over many reads), the
// coroutine layer's scenarios (tests/lua/co/*.lua), Debian's lua-resty-redis
// against a real redis-server, and the co_* examples.
#define BOOST_TEST_MODULE co
#include <boost/test/unit_test.hpp>

#include "../lnet/framing.hh"
#include "harness.hh"
#include "support.hh"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using lnet::FeedResult;
using lnet::Framer;
using lnet::FrameSpec;

// ------------------------------------------------------------- the scanner

FrameSpec line_spec() {
  FrameSpec s;
  s.kind = FrameSpec::Line;
  return s;
}

FrameSpec delim_spec(const std::string& d) {
  FrameSpec s;
  s.kind = FrameSpec::Delimiter;
  std::memcpy(s.delim, d.data(), d.size());
  s.delim_len = static_cast<uint8_t>(d.size());
  return s;
}

FrameSpec length_spec(int bytes, bool little, int64_t adjust = 0) {
  FrameSpec s;
  s.kind = FrameSpec::Length;
  s.length_bytes = static_cast<uint8_t>(bytes);
  s.little = little;
  s.adjust = adjust;
  return s;
}

// One message as it goes on the wire under spec.
std::string encode(const FrameSpec& spec, const std::string& msg, bool crlf = false) {
  switch (spec.kind) {
    case FrameSpec::Line:
      return msg + (crlf ? "\r\n" : "\n");
    case FrameSpec::Delimiter:
      return msg + std::string(spec.delim, spec.delim_len);
    default: {
      unsigned char h[8];
      BOOST_REQUIRE(lnet::frame_header(spec, msg.size(), h));
      return std::string(reinterpret_cast<char*>(h), spec.length_bytes) + msg;
    }
  }
}

struct Collected {
  std::vector<std::string> msgs;
};

bool collect(void* ud, const char* msg, size_t len) {
  static_cast<Collected*>(ud)->msgs.emplace_back(msg, len);
  return true;
}

// Feeds stream cut at the given points; returns the messages.
std::vector<std::string> feed_split(const FrameSpec& spec, const std::string& stream,
                                    const std::vector<size_t>& cuts, FeedResult* last = nullptr) {
  Framer f;
  Collected out;
  size_t pos = 0;
  FeedResult r = FeedResult::Ok;
  for (size_t i = 0; i <= cuts.size() && r == FeedResult::Ok; i++) {
    size_t end = i < cuts.size() ? cuts[i] : stream.size();
    r = lnet::framer_feed(&f, spec, stream.data() + pos, end - pos, collect, &out);
    pos = end;
  }
  if (last) *last = r;
  return out.msgs;
}

// A message body that cannot contain the delimiter of spec.
std::string random_body(std::mt19937& rng, const FrameSpec& spec, size_t max_len) {
  std::uniform_int_distribution<size_t> len_d(0, max_len);
  size_t n = len_d(rng);
  std::string s(n, 'a');
  std::uniform_int_distribution<int> byte_d(0, 255);
  for (auto& ch : s) {
    ch = static_cast<char>(byte_d(rng));
    if (spec.kind == FrameSpec::Line && (ch == '\n' || ch == '\r')) ch = 'n';
    if (spec.kind == FrameSpec::Delimiter && std::memchr(spec.delim, ch, spec.delim_len)) ch = 'd';
  }
  return s;
}

std::vector<FrameSpec> all_specs() {
  std::vector<FrameSpec> v = {line_spec(), delim_spec("\r\n\r\n"), delim_spec("|"),
                              delim_spec("abcab")};
  for (int b : {1, 2, 4, 8})
    for (bool little : {false, true}) v.push_back(length_spec(b, little));
  v.push_back(length_spec(2, false, 3));  // field = body - 3... (adjust +3)
  v.push_back(length_spec(4, true, -4));  // field counts itself (adjust -4)
  return v;
}

void fuzz(uint32_t seed, int iterations) {
  std::mt19937 rng(seed);
  auto specs = all_specs();
  for (int it = 0; it < iterations; it++) {
    const FrameSpec& spec = specs[static_cast<size_t>(it) % specs.size()];
    size_t max_body = spec.kind == FrameSpec::Length && spec.length_bytes == 1 ? 200 : 300;
    std::uniform_int_distribution<int> count_d(0, 12);
    int count = count_d(rng);
    std::vector<std::string> msgs;
    std::string stream;
    for (int i = 0; i < count; i++) {
      std::string body = random_body(rng, spec, max_body);
      if (spec.kind == FrameSpec::Length && spec.adjust > 0 && body.size() < 3) body += "pad";
      msgs.push_back(body);
      stream += encode(spec, body, (rng() & 1) != 0);
    }
    std::uniform_int_distribution<size_t> cut_d(0, stream.size());
    std::uniform_int_distribution<int> ncut_d(0, 20);
    std::vector<size_t> cuts;
    int ncuts = ncut_d(rng);
    for (int i = 0; i < ncuts; i++) cuts.push_back(cut_d(rng));
    std::sort(cuts.begin(), cuts.end());
    FeedResult r;
    auto got = feed_split(spec, stream, cuts, &r);
    BOOST_REQUIRE_MESSAGE(r == FeedResult::Ok, "seed " << seed << " iteration " << it);
    BOOST_REQUIRE_MESSAGE(got == msgs, "seed " << seed << " iteration " << it << ": "
                                                << got.size() << " messages, expected "
                                                << msgs.size());
  }
}

BOOST_AUTO_TEST_CASE(framing_every_split_point, *boost::unit_test::timeout(60)) {
  for (const FrameSpec& spec : all_specs()) {
    std::vector<std::string> msgs = {"", "hello", std::string(70, 'x'), "a", "end"};
    if (spec.kind == FrameSpec::Length && spec.adjust > 0) msgs = {"abc", "hello", "xyz"};
    std::string stream;
    for (size_t i = 0; i < msgs.size(); i++) stream += encode(spec, msgs[i], i % 2 == 1);
    for (size_t a = 0; a <= stream.size(); a++) {
      for (size_t b = a; b <= stream.size(); b += 7) {
        auto got = feed_split(spec, stream, {a, b});
        BOOST_REQUIRE_MESSAGE(got == msgs, "kind " << int(spec.kind) << " cuts " << a << "," << b);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(framing_fuzz, *boost::unit_test::timeout(120)) {
  fuzz(20261129, 10000);
  uint32_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("framing_fuzz: random seed " << seed << " (rerun with this seed to reproduce)");
  std::fprintf(stderr, "framing_fuzz: random seed %u\n", seed);
  fuzz(seed, 10000);
}

BOOST_AUTO_TEST_CASE(framing_length_fields, *boost::unit_test::timeout(30)) {
  // The byte order on the wire, field by field.
  const std::string body(300, 'b');
  struct Case {
    int bytes;
    bool little;
    std::string header;
  } cases[] = {
      {2, false, std::string("\x01\x2c", 2)},
      {2, true, std::string("\x2c\x01", 2)},
      {4, false, std::string("\x00\x00\x01\x2c", 4)},
      {4, true, std::string("\x2c\x01\x00\x00", 4)},
      {8, false, std::string("\0\0\0\0\0\0\x01\x2c", 8)},
      {8, true, std::string("\x2c\x01\0\0\0\0\0\0", 8)},
  };
  for (const auto& c : cases) {
    FrameSpec spec = length_spec(c.bytes, c.little);
    BOOST_CHECK_EQUAL(encode(spec, body).substr(0, c.header.size()), c.header);
    auto got = feed_split(spec, c.header + body + c.header + body, {1, c.header.size() + 5});
    BOOST_REQUIRE_EQUAL(got.size(), 2u);
    BOOST_CHECK(got[0] == body && got[1] == body);
  }
  // A 1-byte field cannot announce 300 bytes.
  unsigned char h[8];
  BOOST_CHECK(!lnet::frame_header(length_spec(1, false), 300, h));
  BOOST_CHECK(lnet::frame_header(length_spec(1, false), 255, h));
  // adjust: the field counts the header too (adjust = -4).
  auto got = feed_split(length_spec(4, false, -4), std::string("\0\0\0\x07" "abc", 7), {});
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_CHECK_EQUAL(got[0], "abc");
  // A field below -adjust is a bad length.
  FeedResult r;
  feed_split(length_spec(4, false, -4), std::string("\0\0\0\x02", 4), {}, &r);
  BOOST_CHECK(r == FeedResult::Failed);
}

BOOST_AUTO_TEST_CASE(framing_oversize, *boost::unit_test::timeout(30)) {
  // A length prefix is refused from its header, before any body byte.
  FrameSpec spec = length_spec(4, false);
  spec.max_message = 1000;
  Framer f;
  Collected out;
  std::string header("\x00\x10\x00\x00", 4);  // 1 MiB announced
  BOOST_CHECK(lnet::framer_feed(&f, spec, header.data(), header.size(), collect, &out) ==
              FeedResult::Failed);
  BOOST_CHECK_EQUAL(std::string(f.reason), "message too long (1048576 > 1000)");
  BOOST_CHECK_EQUAL(std::string(f.code), "MESSAGE_TOO_LONG");
  BOOST_CHECK_EQUAL(f.buf.cap, 0u);  // nothing held
  // With body bytes in the same read: refused before any is buffered.
  Framer fb;
  std::string header_body = header + std::string(3000, 'b');
  BOOST_CHECK(lnet::framer_feed(&fb, spec, header_body.data(), header_body.size(), collect, &out) ==
              FeedResult::Failed);
  BOOST_CHECK_EQUAL(std::string(fb.code), "MESSAGE_TOO_LONG");
  BOOST_CHECK_EQUAL(fb.buf.cap, 0u);
  // A line: refused once more than max_message bytes hold no newline, and
  // no more than the bytes read so far were ever buffered.
  FrameSpec ls = line_spec();
  ls.max_message = 1000;
  Framer g;
  std::string chunk(600, 'x');
  BOOST_CHECK(lnet::framer_feed(&g, ls, chunk.data(), chunk.size(), collect, &out) == FeedResult::Ok);
  BOOST_CHECK(lnet::framer_feed(&g, ls, chunk.data(), chunk.size(), collect, &out) ==
              FeedResult::Failed);
  BOOST_CHECK_EQUAL(std::string(g.reason), "message too long (1200 > 1000)");
  // Exactly max_message is fine (with CR LF).
  Framer k;
  std::string exact = std::string(1000, 'y') + "\r\n";
  BOOST_CHECK(lnet::framer_feed(&k, ls, exact.data(), exact.size(), collect, &out) == FeedResult::Ok);
  BOOST_CHECK_EQUAL(out.msgs.back().size(), 1000u);
}

BOOST_AUTO_TEST_CASE(framing_linear_time, *boost::unit_test::timeout(60)) {
  // A 1 MiB line arriving 1 byte per read: the scanner searches each byte
  // once (a scanner that restarted at every read would search ~550 G bytes).
  const size_t n = 1u << 20;
  std::string line(n, 'q');
  FrameSpec spec = line_spec();
  spec.max_message = 2u << 20;
  Framer f;
  Collected out;
  for (size_t i = 0; i < n; i++)
    BOOST_REQUIRE(lnet::framer_feed(&f, spec, &line[i], 1, collect, &out) == FeedResult::Ok);
  BOOST_REQUIRE(lnet::framer_feed(&f, spec, "\n", 1, collect, &out) == FeedResult::Ok);
  BOOST_REQUIRE_EQUAL(out.msgs.size(), 1u);
  BOOST_CHECK(out.msgs[0] == line);
  BOOST_CHECK_MESSAGE(f.buf.examined <= 2 * n, "bytes examined: " << f.buf.examined);
  // The same with a multi-byte delimiter.
  FrameSpec ds = delim_spec("\r\n\r\n");
  ds.max_message = 2u << 20;
  Framer g;
  Collected out2;
  std::string msg = line + "\r\n\r\n";
  for (size_t i = 0; i < msg.size(); i++)
    BOOST_REQUIRE(lnet::framer_feed(&g, ds, &msg[i], 1, collect, &out2) == FeedResult::Ok);
  BOOST_REQUIRE_EQUAL(out2.msgs.size(), 1u);
  BOOST_CHECK_MESSAGE(g.buf.examined <= 5 * msg.size(), "bytes examined: " << g.buf.examined);
}

// ------------------------------------------------------ Lua scenarios

void raise_nofile() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

#define CO_SCENARIO(name, secs)                                            \
  BOOST_AUTO_TEST_CASE(co_##name, *boost::unit_test::timeout(secs)) {      \
    raise_nofile();                                                        \
    std::string err = lnet_test::run_scenario("co/" #name);                \
    BOOST_CHECK_MESSAGE(err.empty(), err);                                 \
  }

CO_SCENARIO(api, 60)
CO_SCENARIO(backpressure, 180)
CO_SCENARIO(pool, 60)
CO_SCENARIO(many, 120)
CO_SCENARIO(errors, 60)
CO_SCENARIO(nowait, 60)
CO_SCENARIO(framing, 120)
CO_SCENARIO(modules, 60)
CO_SCENARIO(unix, 60)
CO_SCENARIO(parked, 60)
CO_SCENARIO(cmethods, 60)

// ------------------------------------------------------------------ TLS

bool tls_built() {
  lua_State* L = lnet_test::new_state();
  std::string err = lnet_test::run_string(L, "assert(require('net').features.tls)", "features");
  lua_close(L);
  return err.empty();
}

boost::test_tools::assertion_result tls_is_built(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(tls_built());
  if (!r) r.message() << "net.features.tls is false: lnet was built without TLS (-Dtls=disabled)";
  return r;
}

// The certificates of tests/tls/make-certs.sh, made once per run in a
// temporary directory (never committed).
const std::string& certs() {
  static std::unique_ptr<lnet_test::TempDir> dir;
  if (!dir) {
    dir = std::make_unique<lnet_test::TempDir>();
    auto made = lnet_test::run({"sh", lnet_test::source_path("tests/tls/make-certs.sh"), dir->path()}, {}, "",
                               60s);
    if (made.status != 0) throw std::runtime_error("make-certs.sh failed: " + made.text);
  }
  return dir->path();
}

// sock:sslhandshake and connect's tls against lnet TLS servers.
BOOST_AUTO_TEST_CASE(co_tls, *boost::unit_test::timeout(120) *
                                 boost::unit_test::precondition(tls_is_built)) {
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L);
  lua_pushstring(L, certs().c_str());
  lua_setglobal(L, "CERTS");
  std::string err = lnet_test::run_file(L, lnet_test::source_path("tests/lua/co/tls.lua"));
  lua_close(L);
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

// A copy of net.so alone in a directory: require "net.co" and "net.ngx" work
// with no Lua file anywhere on package.path.
BOOST_AUTO_TEST_CASE(copied_module, *boost::unit_test::timeout(60)) {
  lnet_test::TempDir dir;
  auto cp = lnet_test::run({"cp", lnet_test::build_path("net.so"), dir / "net.so"});
  BOOST_REQUIRE_MESSAGE(cp.status == 0, cp.text);
  lnet_test::Env env = lnet_test::lua_env();
  for (auto& kv : env)
    if (kv.first == "LUA_CPATH") kv.second = dir / "?.so";
  env.emplace_back("LUA_PATH", "/nonexistent/?.lua");
  auto r = lnet_test::run({"lua5.4", "-e",
                           "local co = require 'net.co'; local ngx = require 'net.ngx'; "
                           "print(package.searchpath('net', package.cpath), type(co.tcp), "
                           "type(ngx.socket.tcp), ngx.socket.tcp == co.tcp)"},
                          env, "", 30s);
  BOOST_CHECK_MESSAGE(r.status == 0, r.text);
  BOOST_CHECK_MESSAGE(r.out == dir / "net.so" + "\tfunction\tfunction\ttrue\n", r.text);
}

// ---------------------------------------------------------------- redis

bool have(const char* cmd) {
  std::string c = std::string("command -v ") + cmd + " >/dev/null 2>&1";
  return std::system(c.c_str()) == 0;
}

// A redis-server on a free loopback port, stopped (by PID) at the end.
struct Redis {
  std::unique_ptr<lnet_test::Child> child;
  uint16_t port = 0;

  // With tls_dir: TLS only (--port 0 --tls-port), the certificates of
  // make-certs.sh, no client certificates asked for.
  explicit Redis(const std::string& tls_dir = "") {
    for (int attempt = 0; attempt < 5 && !child; attempt++) {
      {
        lnet_test::ClosedPort free_port;  // a free port, released for redis to bind
        port = free_port.port();
      }
      std::vector<std::string> argv = {"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--daemonize", "no",
                                       "--protected-mode", "no"};
      if (!tls_dir.empty()) {
        argv[2] = "0";
        argv.insert(argv.end(), {"--tls-port", std::to_string(port), "--tls-cert-file", tls_dir + "/server.pem",
                                 "--tls-key-file", tls_dir + "/server.key", "--tls-ca-cert-file",
                                 tls_dir + "/ca.pem", "--tls-auth-clients", "no"});
      }
      auto c = std::make_unique<lnet_test::Child>(argv);
      if (c->wait_for("Ready to accept connections", 10s)) child = std::move(c);
    }
    BOOST_REQUIRE_MESSAGE(child, "redis-server did not start");
  }
};

Redis* the_redis = nullptr;

int lua_kill_redis(lua_State*) {
  if (the_redis && the_redis->child) {
    the_redis->child->terminate(SIGKILL);
    the_redis->child->wait_exit(10s);
  }
  return 0;
}

bool redis_available() {
  return have("redis-server") && access("/usr/share/lua/5.1/nginx/redis.lua", R_OK) == 0;
}

BOOST_AUTO_TEST_CASE(resty_redis, *boost::unit_test::timeout(180)) {
  if (!redis_available()) {
    BOOST_FAIL("needs redis-server and lua-nginx-redis (tools/deps.sh installs them)");
  }
  Redis redis;
  the_redis = &redis;
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L);
  lua_pushinteger(L, redis.port);
  lua_setglobal(L, "REDIS_PORT");
  lua_pushcfunction(L, lua_kill_redis);
  lua_setglobal(L, "REDIS_KILL");
  std::string err = lnet_test::run_file(L, lnet_test::source_path("tests/lua/co/redis.lua"));
  lua_close(L);
  the_redis = nullptr;
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

// lua-resty-redis (its connect passes options through to sock:connect:
// tls, servername) and a bare cosocket's sslhandshake against redis-server
// with TLS only.
BOOST_AUTO_TEST_CASE(resty_redis_tls, *boost::unit_test::timeout(120) *
                                          boost::unit_test::precondition(tls_is_built)) {
  if (!redis_available()) {
    BOOST_FAIL("needs redis-server and lua-nginx-redis (tools/deps.sh installs them)");
  }
  Redis redis(certs());
  lua_State* L = lnet_test::new_state();
  BOOST_REQUIRE(L);
  lua_pushinteger(L, redis.port);
  lua_setglobal(L, "REDIS_PORT");
  lua_pushstring(L, certs().c_str());
  lua_setglobal(L, "CERTS");
  std::string err = lnet_test::run_file(L, lnet_test::source_path("tests/lua/co/redis_tls.lua"));
  lua_close(L);
  BOOST_CHECK_MESSAGE(err.empty(), err);
}

// ------------------------------------------------------------- examples

BOOST_AUTO_TEST_CASE(example_co_redis, *boost::unit_test::timeout(120)) {
  if (!redis_available()) BOOST_FAIL("needs redis-server (tools/deps.sh installs it)");
  Redis redis;
  auto r = lnet_test::run(
      lnet_test::lnet_argv({lnet_test::source_path("examples/co_redis.lua"),
                            "127.0.0.1", std::to_string(redis.port)}),
      lnet_test::lua_env(), "", 60s);
  BOOST_CHECK_MESSAGE(r.status == 0, r.text);
  BOOST_CHECK_MESSAGE(r.out.find("GET greeting -> hello from lnet") != std::string::npos, r.text);
  BOOST_CHECK_MESSAGE(r.out.find("INCR visits -> 3") != std::string::npos, r.text);
  BOOST_CHECK_MESSAGE(r.out.find("pipeline: 100 replies") != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(example_co_http_client, *boost::unit_test::timeout(120)) {
  // A local HTTP server: the callback-style example server of the repo.
  lnet_test::TempDir dir;
  std::string server = dir.write("server.lua", R"lua(
local net = require "net"
local co = require "net.co"
local srv = co.listen("127.0.0.1", 0, function(sock)
  local line = sock:receive()
  repeat local h = sock:receive() until not h or h == ""
  local body = "hello over http: " .. tostring(line)
  sock:send({"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ", #body,
             "\r\nConnection: close\r\n\r\n", body})
end)
local _, port = srv:address()
print("port " .. port)
io.stdout:flush()
)lua");
  auto srv = lnet_test::lnet({server}, true);
  auto line = srv->wait_line("port ", 20s);
  BOOST_REQUIRE_MESSAGE(line, srv->describe());
  std::string url = "http://127.0.0.1:" + line->substr(5) + "/path?q=1";
  auto r = lnet_test::run(
      lnet_test::lnet_argv({lnet_test::source_path("examples/co_http_client.lua"), url}),
      lnet_test::lua_env(), "", 60s);
  BOOST_CHECK_MESSAGE(r.status == 0, r.text);
  BOOST_CHECK_MESSAGE(r.out.find("HTTP status: 200") != std::string::npos, r.text);
  BOOST_CHECK_MESSAGE(r.out.find("hello over http: GET /path?q=1 HTTP/1.1") != std::string::npos,
                      r.text);
  srv->stop();
}

}  // namespace
