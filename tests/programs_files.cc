// The file-transfer and key-value example programs, run for real: the stock
// interpreter lua5.4 runs bin/lnet with examples/file_server.lua,
// file_send.lua and kv_server.lua (net.so through LUA_CPATH), and the tests
// talk to them with the senders, with raw sockets of their own and, in
// process, with the examples' Lua libraries (lib/sha256, lib/frames,
// lib/kv_client). Every wait has a deadline; every child is killed (SIGKILL
// to its process group) and reaped when its test ends, pass or fail; every
// temporary directory is removed.
#define BOOST_TEST_MODULE programs_files
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hh"
#include "support.hh"

namespace fs = std::filesystem;

namespace {

using lnet_test::Child;
using lnet_test::Clock;
using lnet_test::connect_to;
using lnet_test::errno_text;
using lnet_test::Fd;
using lnet_test::lua_env;
using lnet_test::preloaded;
using lnet_test::remaining_ms;
using lnet_test::TempDir;
using lnet_test::write_file;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every entry of dir (hidden ones too), sorted.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

// ---------------------------------------------------------------- processes

// argv running examples/SCRIPT under the runner with the stock interpreter.
std::vector<std::string> example_argv(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> all = {lnet_test::source_path("examples/" + script)};
  all.insert(all.end(), args.begin(), args.end());
  return lnet_test::lnet_argv(all);
}

// A server example started with port 0; knows the port it printed in its
// line "NAME: listening on 127.0.0.1:PORT ...".
struct Server {
  Child child;
  int port = 0;
  Server(const std::string& script, const std::vector<std::string>& args)
      : child(example_argv(script, args), lua_env()) {
    std::string prefix = script.substr(0, script.find('.')) + ": listening on 127.0.0.1:";
    if (auto line = child.wait_line(prefix, seconds(30))) port = std::atoi(line->c_str() + prefix.size());
    if (port <= 0)
      throw std::runtime_error(script + " did not report its port; stdout: " + child.out() +
                               " stderr: " + child.err());
  }
};

// Runs a command to the end (bounded), in the environment of the lua5.4
// children; returns exit status and stdout.
std::pair<int, std::string> run(const std::vector<std::string>& argv, milliseconds timeout,
                                std::string* err = nullptr, long* max_rss = nullptr, double* secs = nullptr) {
  lnet_test::Result r = lnet_test::run(argv, lua_env(), "", timeout);
  if (err) *err = r.err;
  if (max_rss) *max_rss = r.max_rss_kib;
  if (secs) *secs = r.seconds;
  return {r.status, r.out};
}

std::string sha256sum(const std::string& path) {
  auto [st, out] = run({"sha256sum", path}, seconds(120));
  if (st != 0 || out.size() < 64) throw std::runtime_error("sha256sum " + path + " failed: " + out);
  return out.substr(0, 64);
}

// ------------------------------------------------------------- raw sockets

// One upload over a raw socket: sends the pieces (pausing pause_ms between
// them), half-closes, and returns everything the server sent until it
// closed (or the deadline). Reads while sending, so an early answer never
// deadlocks; a send error (the server closed) ends the sending.
std::string raw_exchange(int port, const std::vector<std::string>& pieces, int pause_ms = 0,
                         bool half_close = true, milliseconds timeout = seconds(30)) {
  auto deadline = Clock::now() + timeout;
  Fd s = connect_to(port, timeout);
  std::string got;
  bool eof = false;
  auto read_some = [&](int wait_ms) {
    pollfd p{s.get(), POLLIN, 0};
    if (::poll(&p, 1, wait_ms) != 1) return;
    char buf[65536];
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n > 0)
      got.append(buf, static_cast<size_t>(n));
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
      eof = true;
  };
  bool broken = false;
  for (size_t i = 0; i < pieces.size() && !broken && !eof; ++i) {
    if (i > 0 && pause_ms > 0) {
      auto until = Clock::now() + milliseconds(pause_ms);
      while (Clock::now() < until && !eof) read_some(std::max(1, remaining_ms(until)));
    }
    size_t done = 0;
    const std::string& piece = pieces[i];
    while (done < piece.size() && !eof) {
      if (Clock::now() >= deadline) throw std::runtime_error("raw_exchange: send timed out");
      ssize_t n = ::send(s.get(), piece.data() + done, piece.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{s.get(), POLLOUT | POLLIN, 0};
        ::poll(&p, 1, 50);
        if (p.revents & POLLIN) read_some(0);
      } else {
        broken = true;
        break;
      }
    }
  }
  if (half_close) ::shutdown(s.get(), SHUT_WR);
  while (!eof && Clock::now() < deadline) read_some(std::max(1, remaining_ms(deadline)));
  return got;
}

std::string header(const std::string& name, size_t size, const std::string& sha) {
  return "PUT " + name + " " + std::to_string(size) + " " + sha + "\n";
}

// Deterministic pseudo-random bytes (xorshift64*), any length.
struct Pattern {
  uint64_t s;
  explicit Pattern(uint64_t seed) : s(seed ? seed : 1) {}
  void fill(char* p, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
      s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
      uint64_t v = s * 0x2545F4914F6CDD1DULL;
      size_t k = std::min<size_t>(8, n - i);
      std::memcpy(p + i, &v, k);
    }
  }
  std::string bytes(size_t n) {
    std::string b(n, '\0');
    fill(b.data(), n);
    return b;
  }
};

void write_pattern_file(const std::string& path, uint64_t seed, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error(errno_text("fopen " + path));
  Pattern p(seed);
  std::vector<char> buf(1 << 20);
  for (size_t done = 0; done < size;) {
    size_t n = std::min(buf.size(), size - done);
    p.fill(buf.data(), n);
    if (std::fwrite(buf.data(), 1, n, f) != n) {
      std::fclose(f);
      throw std::runtime_error("short write to " + path);
    }
    done += n;
  }
  if (std::fclose(f) != 0) throw std::runtime_error("close " + path);
}

// "" when the two files hold the same bytes, else where they differ.
std::string compare_files(const std::string& a, const std::string& b) {
  std::FILE* fa = std::fopen(a.c_str(), "rb");
  std::FILE* fb = std::fopen(b.c_str(), "rb");
  if (!fa || !fb) {
    if (fa) std::fclose(fa);
    if (fb) std::fclose(fb);
    return "cannot open " + std::string(fa ? b : a);
  }
  std::vector<char> ba(1 << 20), bb(1 << 20);
  size_t offset = 0;
  std::string result;
  for (;;) {
    size_t na = std::fread(ba.data(), 1, ba.size(), fa);
    size_t nb = std::fread(bb.data(), 1, bb.size(), fb);
    size_t n = std::min(na, nb);
    if (std::memcmp(ba.data(), bb.data(), n) != 0) {
      size_t i = 0;
      while (ba[i] == bb[i]) ++i;
      result = "bytes differ at offset " + std::to_string(offset + i);
      break;
    }
    if (na != nb) {
      result = "sizes differ (one ends at " + std::to_string(offset + n) + ")";
      break;
    }
    if (na == 0) break;
    offset += n;
  }
  std::fclose(fa);
  std::fclose(fb);
  return result;
}

// Runs Lua code in a fresh in-process state (package.path has examples/);
// "" on success, else the error with its traceback.
std::string run_lua(const std::string& code, const std::string& name) {
  lua_State* L = lnet_test::new_state();
  if (!L) return "cannot create a Lua state";
  std::string err = lnet_test::run_string(L, code, "=" + name);
  lua_close(L);
  return err;
}

std::string lua_quote(const std::string& s) {
  std::string q = "\"";
  for (unsigned char c : s) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\%03u", c);
    q += buf;
  }
  return q + "\"";
}

}  // namespace

// ===================================================================== sha256

BOOST_AUTO_TEST_SUITE(sha256_lib)

BOOST_AUTO_TEST_CASE(known_vectors_and_chunking) {
  std::string err = run_lua(R"lua(
    local sha256 = require "lib.sha256"
    local function eq(got, want, what)
      if got ~= want then error(("%s: expected %s, got %s"):format(what, want, got), 2) end
    end
    eq(sha256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty")
    eq(sha256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc")
    eq(sha256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448 bits")
    eq(sha256.hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", "896 bits")
    local h = sha256.new()
    local block = string.rep("a", 1000)
    for _ = 1, 1000 do h:update(block) end
    eq(h:hexdigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "a million a")
    eq(h:hexdigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "asked twice")
    eq(#h:digest(), 32, "raw digest length")
    assert(not pcall(h.update, h, "x"), "update after digest must raise")
    -- every length around the padding boundaries, whole and split at each byte
    local data = {}
    for i = 1, 300 do data[i] = string.char((i * 7 + 3) % 256) end
    data = table.concat(data)
    for len = 0, 200 do
      local s = data:sub(1, len)
      local whole = sha256.hex(s)
      for cut = 0, len, 13 do
        eq(sha256.new():update(s:sub(1, cut)):update(s:sub(cut + 1)):hexdigest(), whole,
           ("len %d cut %d"):format(len, cut))
      end
      local bytes = sha256.new()
      for i = 1, len do bytes:update(s:sub(i, i)) end
      eq(bytes:hexdigest(), whole, ("len %d byte by byte"):format(len))
    end
  )lua", "sha256_vectors");
  BOOST_TEST(err == "", err);
}

BOOST_AUTO_TEST_CASE(matches_sha256sum) {
  TempDir tmp;
  struct Case {
    std::string name;
    size_t size;
  };
  std::vector<Case> cases = {{"empty", 0}, {"one", 1}, {"55", 55}, {"56", 56}, {"64", 64},
                             {"1000", 1000}, {"multi_mb", 5 * 1024 * 1024 + 17}};
  uint64_t seed = 11;
  for (auto& c : cases) {
    std::string path = tmp / c.name;
    write_pattern_file(path, seed++, c.size);
    std::string want = sha256sum(path);
    // read in odd-sized chunks, so blocks straddle update() calls
    std::string err = run_lua("local path, want = " + lua_quote(path) + ", " + lua_quote(want) + R"lua(
      local sha256 = require "lib.sha256"
      local f = assert(io.open(path, "rb"))
      local h = sha256.new()
      while true do
        local chunk = f:read(65536 + 7)
        if not chunk then break end
        h:update(chunk)
      end
      f:close()
      local got = h:hexdigest()
      if got ~= want then error("sha256 of " .. path .. ": got " .. got .. ", sha256sum says " .. want) end
    )lua", "sha256_file");
    BOOST_TEST(err == "", c.name << ": " << err);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ============================================================ file transfer

BOOST_AUTO_TEST_SUITE(file_transfer)

BOOST_AUTO_TEST_CASE(small_files_arrive_intact) {
  TempDir tmp;
  fs::create_directory(tmp / "in");
  Server srv("file_server.lua", {tmp / "in", "0"});

  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes += static_cast<char>(i);
  struct Case {
    std::string file, name, data;
  };
  std::vector<Case> cases = {
      {"empty.bin", "", ""},
      {"one", "", "x"},
      {"all_bytes", "", all_bytes + all_bytes},
      {"src.bin", "stored name with spaces & %percent", Pattern(5).bytes(300000)},
      {"utf8", "na\xc3\xafve.txt", "caf\xc3\xa9\n"},
  };
  for (auto& c : cases) {
    std::string src = tmp / c.file;
    write_file(src, c.data);
    std::vector<std::string> args = {"127.0.0.1", std::to_string(srv.port), src};
    if (!c.name.empty()) args.push_back(c.name);
    std::string err;
    auto [st, out] = run(example_argv("file_send.lua", args), seconds(120), &err);
    std::string stored = c.name.empty() ? c.file : c.name;
    BOOST_TEST(st == 0, c.file << ": exit " << st << " stdout: " << out << " stderr: " << err);
    BOOST_TEST(out.rfind("OK " + stored + " " + std::to_string(c.data.size()) + " ", 0) == 0, out);
    BOOST_TEST(read_file(tmp / ("in/" + stored)) == c.data, c.file << ": stored bytes differ");
  }
  // every temporary file is gone: only the stored names remain
  BOOST_TEST(join(list_dir(tmp / "in")) ==
                 join({"all_bytes", "empty.bin", "na\xc3\xafve.txt", "one", "stored name with spaces & %percent"}));
  // a second upload of a name replaces the first
  write_file(tmp / "one", "second");
  auto [st2, out2] = run(example_argv("file_send.lua", {"127.0.0.1", std::to_string(srv.port), tmp / "one"}),
                         seconds(60));
  BOOST_TEST(st2 == 0, out2);
  BOOST_TEST(read_file(tmp / "in/one") == "second");
  BOOST_TEST(srv.child.running(), "the server must keep running");
}

BOOST_AUTO_TEST_CASE(two_hundred_mb_with_bounded_memory) {
  TempDir tmp;
  fs::create_directory(tmp / "in");
  const size_t size = 200u * 1000 * 1000;
  std::string src = tmp / "big.bin";
  write_pattern_file(src, 2024, size);
  Server srv("file_server.lua", {tmp / "in", "0"});

  std::string err;
  long sender_rss = 0;
  double secs = 0;
  auto [st, out] = run(example_argv("file_send.lua", {"127.0.0.1", std::to_string(srv.port), src, "copy.bin"}),
                       seconds(900), &err, &sender_rss, &secs);
  BOOST_TEST_REQUIRE(st == 0, "exit " << st << " stdout: " << out << " stderr: " << err);
  BOOST_TEST(srv.child.wait_for("saved copy.bin (200000000 bytes)", seconds(30)), srv.child.out());
  std::string diff = compare_files(src, tmp / "in/copy.bin");
  BOOST_TEST(diff == "", "received file: " << diff);
  BOOST_TEST(join(list_dir(tmp / "in")) == join({"copy.bin"}));

  // the server's peak: stop it and read its rusage
  srv.child.terminate(SIGTERM);
  BOOST_TEST_REQUIRE(srv.child.wait_exit(seconds(30)).has_value());
  long server_rss = srv.child.max_rss_kib();
  // Under LD_PRELOAD=libasan, ASan's allocator (its quarantine, shadow) is
  // in every child: the bound says "does not grow with the file" there.
  long bound_kib = preloaded() ? 512 * 1024 : 64 * 1024;
  BOOST_TEST_MESSAGE("200 MB transfer: " << secs << " s (sender hashes the file first, then sends); "
                                         << "peak RSS sender " << sender_rss / 1024 << " MiB, server "
                                         << server_rss / 1024 << " MiB");
  BOOST_TEST(sender_rss > 0);
  BOOST_TEST(sender_rss < bound_kib, "sender peak RSS " << sender_rss << " KiB");
  BOOST_TEST(server_rss > 0);
  BOOST_TEST(server_rss < bound_kib, "server peak RSS " << server_rss << " KiB");
}

BOOST_AUTO_TEST_CASE(lying_size_and_wrong_checksum_are_rejected) {
  TempDir tmp;
  fs::create_directory(tmp / "in");
  Server srv("file_server.lua", {tmp / "in", "0"});
  std::string data = Pattern(9).bytes(100000);
  write_file(tmp / "data", data);
  std::string sha = sha256sum(tmp / "data");
  write_file(tmp / "other", "other data");
  std::string other_sha = sha256sum(tmp / "other");

  auto in_is_empty = [&] { return list_dir(tmp / "in").empty(); };

  // the honest upload over the same raw client works (the checks below can fail)
  BOOST_TEST(raw_exchange(srv.port, {header("good", data.size(), sha) + data}) == "OK\n");
  BOOST_TEST(read_file(tmp / "in/good") == data);
  fs::remove(tmp / "in/good");

  struct Case {
    std::string what;
    std::vector<std::string> pieces;
    int pause_ms;
    std::string reply;
  };
  std::vector<Case> cases = {
      {"fewer bytes, then end of stream", {header("short", data.size(), sha) + data.substr(0, 60000)}, 0,
       "ERR size mismatch\n"},
      {"header only, then end of stream", {header("none", data.size(), sha)}, 0, "ERR size mismatch\n"},
      {"more bytes in the same write", {header("long", data.size(), sha) + data + "extra"}, 0,
       "ERR size mismatch\n"},
      {"more bytes, later", {header("later", data.size(), sha) + data, "x"}, 300, "ERR size mismatch\n"},
      {"wrong checksum", {header("sum", data.size(), other_sha) + data}, 0, "ERR checksum mismatch\n"},
      {"one byte changed", {header("flip", data.size(), sha) + data.substr(0, 500) + "?" + data.substr(501)}, 0,
       "ERR checksum mismatch\n"},
      {"uppercase checksum accepted, size 0 data",
       {header("zero", 0, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")}, 0, "OK\n"},
      {"not a PUT", {"GET x 1 " + sha + "\n"}, 0, "ERR bad header\n"},
      {"short checksum", {header("h", 1, sha.substr(0, 63)) + "x"}, 0, "ERR bad header\n"},
      {"no newline, end of stream", {"PUT x 1"}, 0, "ERR bad header\n"},
      {"header too long", {std::string(5000, 'P')}, 0, "ERR bad header\n"},
  };
  for (auto& c : cases) {
    std::string got = raw_exchange(srv.port, c.pieces, c.pause_ms);
    BOOST_TEST(got == c.reply, c.what << ": got '" << got << "'");
    if (c.reply == "OK\n") {
      BOOST_TEST(fs::exists(tmp / "in/zero"));
      fs::remove(tmp / "in/zero");
    }
    // the reply is sent after the temporary file is removed
    BOOST_TEST(in_is_empty(), c.what << ": left " << join(list_dir(tmp / "in")));
  }

  // the sender program reports an ERR with status 1 and the message
  std::string err;
  auto [st, out] =
      run(example_argv("file_send.lua", {"127.0.0.1", std::to_string(srv.port), tmp / "data", ".hidden"}),
          seconds(60), &err);
  BOOST_TEST(st == 1, "exit " << st);
  BOOST_TEST(err.find("ERR bad name") != std::string::npos, err);

  // and a failure to connect the same way
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);  // a port nobody listens on
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    int dead_port = ntohs(sa.sin_port);
    auto [st3, out3] =
        run(example_argv("file_send.lua", {"127.0.0.1", std::to_string(dead_port), tmp / "data"}), seconds(60),
            &err);
    ::close(fd);
    BOOST_TEST(st3 == 1, "exit " << st3);
    BOOST_TEST(err.find("Connection refused") != std::string::npos, err);
  }

  // a client that vanishes mid-upload (reset) leaves nothing behind
  {
    Fd s = connect_to(srv.port, seconds(30));
    std::string part = header("vanish", data.size(), sha) + data.substr(0, 50000);
    BOOST_TEST(::send(s.get(), part.data(), part.size(), MSG_NOSIGNAL) > 0);
    // wait for the server to start the temporary file
    auto until = Clock::now() + seconds(30);
    while (in_is_empty() && Clock::now() < until) std::this_thread::sleep_for(milliseconds(20));
    BOOST_TEST(!in_is_empty(), "no temporary file appeared");
    linger lg{1, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    s.reset();
    BOOST_TEST(srv.child.wait_for("aborted vanish", seconds(30)), srv.child.out());
    BOOST_TEST(in_is_empty(), "left " << join(list_dir(tmp / "in")));
  }
  BOOST_TEST(srv.child.running(), "the server must keep running");
}

BOOST_AUTO_TEST_CASE(names_that_escape_the_directory_are_refused) {
  TempDir tmp;
  fs::create_directory(tmp / "in");
  fs::create_directory(tmp / "in2");
  Server srv("file_server.lua", {tmp / "in", "0"});
  const std::string empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const std::string abc_sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  bool etc_x_existed = fs::exists("/etc/x");

  std::vector<std::string> names = {
      "../x", "/etc/x", "a/../../x", "..", ".", "../in2/x", tmp / "in2/abs", "%2E%2E%2Fx", "..%2fx",
      "a%2Fb", "%2Fetc%2Fx", "x%00y", "x%0Ay", "%", "%4", "%zz", "a\\b", ".hidden", "%2Ehidden",
      std::string(256, 'n'),
  };
  for (auto& name : names) {
    std::string got = raw_exchange(srv.port, {header(name, 3, abc_sha) + "abc"});
    BOOST_TEST(got == "ERR bad name\n", "name '" << name << "': got '" << got << "'");
  }
  // an empty name leaves "PUT  0 sha": the header itself is malformed
  BOOST_TEST(raw_exchange(srv.port, {"PUT  0 " + empty_sha + "\n"}) == "ERR bad header\n");
  // through the sender program, percent-encoded on the wire: still refused
  for (const std::string name : {"../x", "/etc/x", "a/../../x"}) {
    write_file(tmp / "abc", "abc");
    std::string err;
    auto [st, out] = run(
        example_argv("file_send.lua", {"127.0.0.1", std::to_string(srv.port), tmp / "abc", name}), seconds(60),
        &err);
    BOOST_TEST(st == 1, name << ": exit " << st);
    BOOST_TEST(err.find("ERR bad name") != std::string::npos, name << ": " << err);
  }
  BOOST_TEST(list_dir(tmp / "in").empty(), "left " << join(list_dir(tmp / "in")));
  BOOST_TEST(list_dir(tmp / "in2").empty(), "escaped into " << join(list_dir(tmp / "in2")));
  BOOST_TEST(!fs::exists(tmp / "x"));
  if (!etc_x_existed) {
    BOOST_TEST(!fs::exists("/etc/x"), "/etc/x was written");
    if (fs::exists("/etc/x")) fs::remove("/etc/x");
  }
  // the longest allowed name (255 bytes) and a name with a 3-byte escape still work
  std::string longest(255, 'n');
  BOOST_TEST(raw_exchange(srv.port, {header(longest, 3, abc_sha) + "abc"}) == "OK\n");
  BOOST_TEST(raw_exchange(srv.port, {header("a%2Bb", 3, abc_sha) + "abc"}) == "OK\n");
  BOOST_TEST(join(list_dir(tmp / "in")) == join({"a+b", longest}));
}

BOOST_AUTO_TEST_SUITE_END()

// =================================================================== frames

BOOST_AUTO_TEST_SUITE(frames_lib)

BOOST_AUTO_TEST_CASE(split_anywhere_parses_the_same) {
  std::string err = run_lua(R"lua(
    local frames = require "lib.frames"
    local payloads = { "", "a", "abc", "abcd", "\0\0\0\0", "\255\0\1", string.rep("x", 255), string.rep("y", 256),
                       "", "tail" }
    local big = {}
    for i = 1, 70000 do big[i] = string.char((i * 31) % 256) end
    table.insert(payloads, 5, table.concat(big))
    local parts = {}
    for i, p in ipairs(payloads) do parts[i] = frames.encode(p) end
    local stream = table.concat(parts)
    assert(#stream == 4 * #payloads + 70530, "encoded size")
    assert(frames.encode("hi") == "\0\0\0\2hi", "encode format")

    local function same(got, what)
      if #got ~= #payloads then error(what .. (": %d frames, expected %d"):format(#got, #payloads), 2) end
      for i = 1, #payloads do
        if got[i] ~= payloads[i] then error(what .. (": frame %d differs (%d bytes, expected %d)"):format(i, #got[i], #payloads[i]), 2) end
      end
    end
    local function feed_all(dec, list, chunk)
      local got, err = dec:feed(chunk)
      if err then error("unexpected error: " .. err, 2) end
      for _, p in ipairs(got) do list[#list + 1] = p end
    end

    -- all in one chunk
    local d = frames.decoder()
    local got = d:feed(stream)
    same(got, "one chunk")
    assert(d:pending() == 0, "nothing pending after whole frames")

    -- one byte at a time: every boundary at once
    d = frames.decoder()
    local list = {}
    for i = 1, #stream do feed_all(d, list, stream:sub(i, i)) end
    same(list, "byte by byte")

    -- two pieces, cut at every position of the stream without the big frame
    local small = stream:sub(1, #parts[1] + #parts[2] + #parts[3] + #parts[4]) ..
                  stream:sub(#stream - (#parts[#parts] + #parts[#parts - 1] + #parts[#parts - 2]) + 1)
    local small_payloads = { payloads[1], payloads[2], payloads[3], payloads[4],
                             payloads[#payloads - 2], payloads[#payloads - 1], payloads[#payloads] }
    for cut = 0, #small do
      d = frames.decoder()
      list = {}
      feed_all(d, list, small:sub(1, cut))
      feed_all(d, list, small:sub(cut + 1))
      if #list ~= #small_payloads then error(("cut %d: %d frames"):format(cut, #list)) end
      for i = 1, #list do
        if list[i] ~= small_payloads[i] then error(("cut %d: frame %d differs"):format(cut, i)) end
      end
    end

    -- three pieces at assorted positions, big frame included
    for a = 1, #stream, 997 do
      local b = math.min(#stream, a + 4093)
      d = frames.decoder()
      list = {}
      feed_all(d, list, stream:sub(1, a))
      feed_all(d, list, stream:sub(a + 1, b))
      feed_all(d, list, stream:sub(b + 1))
      same(list, "cuts " .. a .. "," .. b)
    end
  )lua", "frames_split");
  BOOST_TEST(err == "", err);
}

BOOST_AUTO_TEST_CASE(oversize_length_is_an_error) {
  std::string err = run_lua(R"lua(
    local frames = require "lib.frames"
    local function check(cond, msg) if not cond then error(msg, 2) end end

    -- exactly max is accepted; max + 1 is not
    local d = frames.decoder(10)
    local got, err = d:feed(frames.encode(string.rep("m", 10)))
    check(err == nil and #got == 1 and got[1] == string.rep("m", 10), "a frame of exactly max bytes")
    got, err = d:feed(frames.encode("ok") .. string.pack(">I4", 11) .. "12345678901")
    check(#got == 1 and got[1] == "ok", "the frame before the bad length is returned")
    check(err == "frame too large (11 bytes, max 10)", "error: " .. tostring(err))
    got, err = d:feed(frames.encode("later"))
    check(#got == 0 and err == "frame too large (11 bytes, max 10)", "the decoder stays broken")

    -- the default max is 1 MiB, and the length is judged from its 4 bytes,
    -- split or not, before any body arrives
    d = frames.decoder()
    local hdr = string.pack(">I4", 1024 * 1024 + 1)
    for i = 1, 3 do
      got, err = d:feed(hdr:sub(i, i))
      check(#got == 0 and err == nil, "no verdict before 4 bytes")
    end
    got, err = d:feed(hdr:sub(4, 4))
    check(#got == 0 and err == "frame too large (1048577 bytes, max 1048576)", "split oversize header: " .. tostring(err))
    d = frames.decoder()
    got, err = d:feed("\255\255\255\255")
    check(err == "frame too large (4294967295 bytes, max 1048576)", "0xffffffff: " .. tostring(err))
    d = frames.decoder(0)
    got, err = d:feed("\0\0\0\0\0\0\0\1")
    check(#got == 1 and got[1] == "" and err == "frame too large (1 bytes, max 0)", "max 0")

    check(not pcall(frames.decoder, -1), "negative max raises")
    check(not pcall(frames.encode, 42), "encoding a number raises")
    check(not pcall(frames.decoder().feed, frames.decoder(), {}), "feeding a table raises")
  )lua", "frames_oversize");
  BOOST_TEST(err == "", err);
}

BOOST_AUTO_TEST_SUITE_END()

// ================================================================ kv server

BOOST_AUTO_TEST_SUITE(kv)

// Lua helpers shared by the kv scripts: a bounded loop and a raw client.
const char* kv_prelude = R"lua(
  local net = require "net"
  local frames = require "lib.frames"
  local kv = require "lib.kv_client"
  local proto = require "lib.kv_protocol"
  local step = "start"
  local guard = net.setTimeout(function() error("timed out at step: " .. step) end, 60000)
  local function check(cond, msg) if not cond then error(msg, 2) end end
  local function finish() guard:clear() end
  -- A raw connection: sends bytes, decodes the frames that come back, and
  -- calls done(payloads, ferr, reason) once want frames are in (then closes)
  -- or when the server closes.
  local function raw(port, bytes, want, done)
    local s = net.TCPSocket()
    local d, got, ferr, reason, called = frames.decoder(), {}, nil, nil, false
    local function report()
      if not called then called = true; done(got, ferr, reason) end
    end
    s:connect("127.0.0.1", port, {
      connected = function() s:send(bytes) end,
      data = function(b)
        local list, e = d:feed(b)
        for _, p in ipairs(list) do got[#got + 1] = p end
        ferr = ferr or e
        if #got >= want then s:close(); report() end
      end,
      error = function(m) reason = m end,
      disconnected = report,
    })
    return s
  end
)lua";

BOOST_AUTO_TEST_CASE(round_trips_and_oversize_client_is_closed_alone) {
  Server srv("kv_server.lua", {"0"});
  std::string err = run_lua(std::string(kv_prelude) + "local port = " + std::to_string(srv.port) + R"lua(
    local bin_key, bin_value = "k\0ey\255", "v\0a\0l\1\0\255ue\n"
    local A
    local function pipelined()
      step = "pipelined"
      local n, replies = 300, 0
      for i = 1, n do
        A:set("key" .. i, ("\0%d\0"):format(i):rep(i % 7 + 1), function(s) check(s == "OK", "pipelined SET " .. i) end)
      end
      for i = 1, n do
        A:get("key" .. i, function(s, v)
          replies = replies + 1
          check(replies == i, "replies out of order")
          check(s == "OK" and v == ("\0%d\0"):format(i):rep(i % 7 + 1), "pipelined GET " .. i)
          if i == n then
            step = "largest value"
            -- the largest SET that fits the 1 MiB frame: 1 + 2 + #key + 4 + value
            local big = string.rep("\0\1\2", 349524) .. "z"     -- 1048573 bytes
            local key = ""
            A:set(key, big:sub(1, 1048576 - 7), function(s2, why)
              check(s2 == "OK", "largest SET: " .. tostring(s2) .. " " .. tostring(why))
              A:get(key, function(s3, v3)
                check(s3 == "OK" and v3 == big:sub(1, 1048576 - 7), "largest GET")
                step = "malformed"
                -- an unknown op and a truncated key get ERR, and the same
                -- connection goes on to answer a good request
                raw(port, frames.encode("Xjunk") .. frames.encode("G\0\5ab") .. frames.encode(proto.get(bin_key)), 3,
                  function(list, ferr, reason)
                    check(#list == 3, ("malformed: %d replies (%s)"):format(#list, tostring(reason)))
                    local s4, why4 = proto.parse_reply(list[1])
                    check(s4 == "ERR" and why4 == "unknown request", "unknown op: " .. tostring(why4))
                    local s5, why5 = proto.parse_reply(list[2])
                    check(s5 == "ERR" and why5 == "malformed request", "truncated key: " .. tostring(why5))
                    check(proto.parse_reply(list[3]) == "NOTFOUND", "still serving after malformed requests")
                    step = "done"
                    A:close()
                    finish()
                  end)
              end)
            end)
          end
        end)
      end
    end

    kv.connect("127.0.0.1", port, function(client, cerr)
      check(client, "connect: " .. tostring(cerr))
      A = client
      step = "basic"
      A:get(bin_key, function(s, v) check(s == "NOTFOUND" and v == nil, "GET before SET: " .. tostring(s)) end)
      A:del(bin_key, function(s) check(s == "NOTFOUND", "DEL before SET") end)
      A:set(bin_key, bin_value, function(s) check(s == "OK", "SET") end)
      A:get(bin_key, function(s, v)
        check(s == "OK" and v == bin_value, "GET after SET: " .. tostring(v))
        -- now a second client sends an oversize length; A waits for its fate
        step = "oversize client"
        raw(port, string.pack(">I4", 1024 * 1024 + 1) .. "some body bytes", 2, function(list, ferr, reason)
          check(ferr == nil and #list == 1, ("oversize client: %d frames back (%s)"):format(#list, tostring(reason)))
          local status, why = proto.parse_reply(list[1])
          check(status == "ERR" and why == "frame too large (1048577 bytes, max 1048576)",
                "oversize reply: " .. tostring(status) .. " " .. tostring(why))
          -- A is still served, and its data is intact
          step = "after oversize"
          A:set(bin_key, bin_value .. "2", function(s) check(s == "OK", "SET after") end)
          A:get(bin_key, function(s, v) check(s == "OK" and v == bin_value .. "2", "GET after") end)
          A:del(bin_key, function(s) check(s == "OK", "DEL") end)
          A:get(bin_key, function(s, v)
            check(s == "NOTFOUND" and v == nil, "GET after DEL")
            pipelined()
          end)
        end)
      end)
    end)
    net.loop()
    check(step == "done", "ended at step " .. step)
  )lua",
                            "kv_round_trips");
  BOOST_TEST(err == "", err);
  BOOST_TEST(srv.child.err().find("frame too large (1048577 bytes, max 1048576), closing") != std::string::npos,
             "server log: " << srv.child.err());
  BOOST_TEST(srv.child.running(), "the server must keep running");
}

BOOST_AUTO_TEST_CASE(max_frame_is_configurable) {
  Server srv("kv_server.lua", {"0", "100"});
  BOOST_TEST(srv.child.out().find("(max frame 100 bytes)") != std::string::npos, srv.child.out());
  std::string err = run_lua(std::string(kv_prelude) + "local port = " + std::to_string(srv.port) + R"lua(
    local done = 0
    local function bump()
      done = done + 1
      if done == 3 then finish() end
    end
    kv.connect("127.0.0.1", port, function(A, cerr)
      check(A, "connect: " .. tostring(cerr))
      A:set("fits", string.rep("f", 100 - 11), function(s) check(s == "OK", "a 100-byte frame fits") end)
      A:get("fits", function(s, v)
        check(s == "OK" and #v == 89, "GET fits")
        -- a second client sees what A stored, and outlives A's bad frame
        kv.connect("127.0.0.1", port, function(B, berr)
          check(B, "connect B: " .. tostring(berr))
          net.setTimeout(function()
            B:get("fits", function(s2, v2)
              check(s2 == "OK" and v2 == string.rep("f", 89), "B reads what A stored")
              B:close()
              bump()
            end)
          end, 200)
        end)
      end)
      A:set("too big", string.rep("b", 100), function(s, why)
        check(s == "ERR" and why == "frame too large (114 bytes, max 100)", "oversize SET: " .. tostring(why))
      end)
      A:get("fits", function(s, why)
        check(s == "ERR" and why:find("^connection closed"), "request after the bad frame: " .. tostring(why))
        bump()
      end)
    end, { closed = function(reason) check(reason, "closed by the server: a reason"); bump() end })
    net.loop()
    check(done == 3, "callbacks: " .. done)
  )lua",
                            "kv_max_frame");
  BOOST_TEST(err == "", err);
  BOOST_TEST(srv.child.running());
}

BOOST_AUTO_TEST_CASE(a_client_that_does_not_read_is_paced) {
  // A client pipelines 400 GETs of a 512 KiB value without reading the
  // replies: the server must pause it instead of queueing 200 MB (or
  // failing at max_buffer), and every reply must still arrive.
  Server srv("kv_server.lua", {"0"});
  std::string err = run_lua(std::string(kv_prelude) + "local port = " + std::to_string(srv.port) + R"lua(
    local value = string.rep("v", 512 * 1024)
    kv.connect("127.0.0.1", port, function(A, cerr)
      check(A, "connect: " .. tostring(cerr))
      A:set("v", value, function(s)
        check(s == "OK", "SET")
        -- 400 GETs in one burst: about 200 MB of replies
        local s2 = net.TCPSocket()
        local req = frames.encode(proto.get("v")):rep(400)
        local received = 0
        s2:connect("127.0.0.1", port, {
          connected = function() s2:send(req); s2:pause() end,
          data = function(b) received = received + #b end,
        })
        -- while it is not reading, watch the server grow for a second
        net.setTimeout(function()
          step = "reading"
          s2:resume()
          local t
          t = net.setInterval(function()
            if received >= 400 * (512 * 1024 + 9) then
              t:clear()
              check(received == 400 * (512 * 1024 + 9), "reply bytes: " .. received)
              s2:close()
              A:close()
              finish()
            end
          end, 50)
        end, 1000)
      end)
    end)
    net.loop()
  )lua",
                            "kv_paced");
  BOOST_TEST(err == "", err);
  srv.child.terminate(SIGTERM);
  BOOST_TEST_REQUIRE(srv.child.wait_exit(seconds(30)).has_value());
  long bound = preloaded() ? 1024 * 1024 : 128 * 1024;
  BOOST_TEST_MESSAGE("kv server peak RSS after 200 MB of replies to a paced client: " << srv.child.max_rss_kib() / 1024
                                                                                     << " MiB");
  BOOST_TEST(srv.child.max_rss_kib() < bound, "server peak RSS " << srv.child.max_rss_kib() << " KiB");
}

BOOST_AUTO_TEST_SUITE_END()
