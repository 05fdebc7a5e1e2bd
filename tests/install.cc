// Packaging and linkage checks, run against real tools:
//  - the rockspec builds and installs with luarocks into a private tree, and
//    the installed module and `lnet` runner work from another directory,
//    without `luarocks path` (also with --deps-mode=none); lnet.h is in
//    the rock's directory (include/), and a C file compiles against it;
//  - README's pack command makes a rock that installs into a fresh tree and
//    runs an example;
//  - the built net.so exports luaopen_net and nothing else of ours, and does
//    not link liblua (the interpreter that loads it provides Lua);
//  - the stock lua5.4 loads the built module, and require sets no global.
// Every child process runs in its own process group with a time limit.
#define BOOST_TEST_MODULE install
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : fallback;
}

std::string source_dir() { return env_or("LNET_SOURCE", "."); }
std::string build_dir() { return env_or("LNET_BUILD", "."); }

// Environment changes for a child: a value sets the variable, nullopt unsets it.
using EnvChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

struct Result {
  bool started = false;    // fork/exec worked
  bool timed_out = false;  // killed at the deadline
  int status = -1;         // exit status, or 128 + signal
  std::string output;      // stdout and stderr, interleaved

  bool ok() const { return started && !timed_out && status == 0; }
  std::string describe() const {
    std::ostringstream s;
    if (!started) {
      s << "could not start";
    } else if (timed_out) {
      s << "timed out";
    } else {
      s << "exit status " << status;
    }
    s << "; output:\n" << output;
    return s.str();
  }
};

// The variables that would change which Lua modules a child loads.
EnvChanges clean_lua_env() {
  return {{"LUA_PATH", std::nullopt},      {"LUA_CPATH", std::nullopt},
          {"LUA_PATH_5_4", std::nullopt},  {"LUA_CPATH_5_4", std::nullopt},
          {"LUA_INIT", std::nullopt},      {"LUA_INIT_5_4", std::nullopt},
          {"LD_PRELOAD", std::nullopt}};
}

// Runs argv (looked up in PATH) in cwd with the environment changes, for at
// most timeout_s seconds; the whole process group is killed at the deadline
// and after the child ends (no stray grandchildren).
Result run(const std::vector<std::string>& argv, const std::string& cwd, const EnvChanges& env,
           int timeout_s) {
  Result r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.output = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    r.output = std::string("fork: ") + std::strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return r;
  }
  if (pid == 0) {
    // Child: only async-signal-safe-ish calls until exec, then _exit.
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    signal(SIGPIPE, SIG_DFL);
    for (const auto& [name, value] : env) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      const char msg[] = "install test: chdir failed\n";
      ssize_t ignored = write(2, msg, sizeof msg - 1);
      (void)ignored;
      _exit(126);
    }
    execvp(args[0], args.data());
    const char msg[] = "install test: exec failed: ";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    ignored = write(2, args[0], std::strlen(args[0]));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before any kill
  close(fds[1]);
  r.started = true;

  // Read the output until the child has exited and the pipe is closed. A
  // grandchild left holding the pipe gets a short grace, then the group is
  // killed; at the deadline everything is killed.
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::seconds(timeout_s);
  auto grace_end = deadline;
  bool eof = false;
  bool exited = false;
  int status = 0;
  for (;;) {
    if (!exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        grace_end = std::min(deadline, clock::now() + std::chrono::seconds(2));
      } else if (w < 0 && errno != EINTR) {  // cannot wait for it: report a failure
        exited = true;
        status = -1;
        grace_end = clock::now();
      }
    }
    if (exited && eof) break;
    const auto now = clock::now();
    if (now >= deadline && !exited) {
      r.timed_out = true;
      break;
    }
    if (exited && now >= grace_end) break;
    if (eof) {  // output closed, child still running
      usleep(10000);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    (exited ? grace_end : deadline) - now).count();
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
    if (n <= 0) continue;  // timeout, or EINTR
    char buf[4096];
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got > 0) {
      r.output.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      eof = true;
    }
  }
  close(fds[0]);
  kill(-pid, SIGKILL);  // on timeout the child, else whatever it left behind
  if (!exited) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (status == -1) {
    r.output += "\ninstall test: waitpid failed\n";
  } else if (WIFEXITED(status)) {
    r.status = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.status = 128 + WTERMSIG(status);
  }
  return r;
}

std::string sh_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

bool contains_line(const std::string& text, const std::string& wanted) {
  for (const auto& l : lines(text)) {
    if (l == wanted) return true;
  }
  return false;
}

// A temporary directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lnet-install-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    }
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Build directories inside the source tree are not sources.
bool is_build_dir_name(const std::string& first_component) {
  return first_component.rfind("build", 0) == 0 || first_component == ".git";
}

void copy_file_to(const fs::path& from, const fs::path& to) {
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::status(from).permissions());
}

// Copies the source tree: the files git knows about (tracked, or untracked
// and not ignored) in a git checkout, else everything but build directories.
// Returns a description of how, for the log.
std::string copy_sources(const fs::path& src, const fs::path& dst) {
  fs::create_directories(dst);
  Result top = run({"git", "-C", src.string(), "rev-parse", "--show-toplevel"}, "", {}, 60);
  bool is_checkout = top.ok() && !top.output.empty();
  if (is_checkout) {
    std::string toplevel = lines(top.output).front();
    std::error_code ec;
    is_checkout = fs::equivalent(toplevel, src, ec) && !ec;
  }
  if (is_checkout) {
    Result ls = run({"git", "-C", src.string(), "ls-files", "-z", "--cached", "--others",
                     "--exclude-standard"},
                    "", {}, 60);
    BOOST_REQUIRE_MESSAGE(ls.ok(), "git ls-files: " + ls.describe());
    size_t copied = 0;
    std::string name;
    std::istringstream in(ls.output);
    std::set<std::string> seen;
    while (std::getline(in, name, '\0')) {
      if (name.empty() || !seen.insert(name).second) continue;
      fs::path rel(name);
      if (is_build_dir_name(rel.begin()->string())) continue;
      fs::path from = src / rel;
      // Deleted but still in the index, or a submodule directory.
      if (!fs::is_regular_file(fs::symlink_status(from))) continue;
      copy_file_to(from, dst / rel);
      ++copied;
    }
    return "copied " + std::to_string(copied) + " files listed by git ls-files";
  }
  size_t copied = 0;
  for (auto it = fs::recursive_directory_iterator(src); it != fs::recursive_directory_iterator();
       ++it) {
    fs::path rel = fs::relative(it->path(), src);
    if (it.depth() == 0 && is_build_dir_name(rel.string())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) {
      copy_file_to(it->path(), dst / rel);
      ++copied;
    }
  }
  return "copied " + std::to_string(copied) + " files (not a git checkout)";
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " + path.string());
}

// Which sanitizer runtime, if any, the stock interpreter needs preloaded to
// load this build's module (tools/check sets it for the sanitizer build).
EnvChanges preload_env() {
  EnvChanges env = clean_lua_env();
  std::string preload = env_or("LNET_PRELOAD", "");
  if (!preload.empty()) env.emplace_back("LD_PRELOAD", preload);
  return env;
}

// One copy of the sources for the luarocks cases that build, made on first
// use and removed at exit. luarocks builds in it (build-rock/), so the
// later cases' `luarocks make` only re-runs meson, and compiles nothing.
fs::path rock_sources() {
  static TempDir dir;
  static bool copied = false;
  const fs::path src = dir.path / "src";
  if (!copied) {
    BOOST_TEST_MESSAGE(copy_sources(source_dir(), src));
    BOOST_REQUIRE_MESSAGE(fs::exists(src / "lnet-0.1.0-1.rockspec"),
                          "the copied tree has no lnet-0.1.0-1.rockspec");
    copied = true;
  }
  return src;
}

// A luarocks config of our own (the user's stays out). luarocks cannot reach
// its servers here, and Debian's lua-dkjson is not a rock: dkjson is declared
// provided, so that luarocks resolves the dependencies the normal way.
EnvChanges luarocks_env(const fs::path& dir) {
  const fs::path config = dir / "luarocks-config.lua";
  write_file(config, "rocks_provided = { dkjson = \"2.6-1\" }\n");
  EnvChanges env = clean_lua_env();
  env.emplace_back("LUAROCKS_CONFIG", config.string());
  env.emplace_back("LUAROCKS_CONFIG_5_4", std::nullopt);
  return env;
}

// Runs the installed lnet (TREE/bin/lnet) on a script from another
// directory, with no LUA_PATH/LUA_CPATH (no `luarocks path`): it must find
// its module, run the script with its globals and run the loop.
void check_installed_runner(const fs::path& tree, const fs::path& elsewhere) {
  const fs::path runner = tree / "bin" / "lnet";
  BOOST_REQUIRE_MESSAGE(fs::exists(runner), "luarocks installed no " + runner.string());
  write_file(elsewhere / "hello.lua",
             "print('hello from lnet', type(net), type(json), type(setTimeout), ...)\n"
             "setTimeout(function() print('timer fired') end, 10)\n");
  Result script = run({runner.string(), "hello.lua", "first", "second"}, elsewhere.string(),
                      clean_lua_env(), 120);
  BOOST_REQUIRE_MESSAGE(script.ok(), runner.string() + " hello.lua: " + script.describe());
  BOOST_CHECK_MESSAGE(
      contains_line(script.output, "hello from lnet\ttable\ttable\tfunction\tfirst\tsecond"),
      "unexpected runner output:\n" + script.output);
  BOOST_CHECK_MESSAGE(contains_line(script.output, "timer fired"),
                      "the runner did not run the loop:\n" + script.output);
}

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The rock installed lnet.h in its directory (README: $(luarocks show
// --rock-dir lnet)/include/lnet.h), the same as the source's, and a C
// file that includes it from there compiles.
void check_installed_header(const fs::path& rock_dir, const fs::path& work) {
  const fs::path header = rock_dir / "include" / "lnet.h";
  BOOST_REQUIRE_MESSAGE(fs::exists(header), "the rock installed no " + header.string());
  BOOST_CHECK_MESSAGE(file_text(header) == file_text(fs::path(source_dir()) / "lnet" / "lnet.h"),
                      header.string() + " differs from lnet/lnet.h");
  write_file(work / "uses_lnet_h.c",
             "#include <lnet.h>\n"
             "int use(lua_State *L, struct event_base *b) { return lnet_use_event_base(L, b); }\n");
  // The Lua headers luarocks builds against (lnet.h includes lua.h).
  Result incdir = run({"luarocks", "--lua-version", "5.4", "config", "variables.LUA_INCDIR"}, work.string(),
                      clean_lua_env(), 60);
  BOOST_REQUIRE_MESSAGE(incdir.ok() && !lines(incdir.output).empty(), "luarocks config: " + incdir.describe());
  Result cc = run({"cc", "-fsyntax-only", "-Wall", "-Werror", "-I" + (rock_dir / "include").string(),
                   "-I" + lines(incdir.output).back(), (work / "uses_lnet_h.c").string()},
                  work.string(), {}, 120);
  BOOST_CHECK_MESSAGE(cc.ok(), "cc -I<rock>/include with #include <lnet.h>: " + cc.describe());
}

}  // namespace

// (a) luarocks builds the rockspec from a copy of the sources into a private
// tree; the installed module and runner work from another directory.
BOOST_AUTO_TEST_CASE(luarocks_make_installs_module_and_runner) {
  TempDir tmp;
  const fs::path src = rock_sources();
  const fs::path tree = tmp.path / "tree";
  const fs::path elsewhere = tmp.path / "elsewhere";
  fs::create_directories(elsewhere);

  const EnvChanges env = luarocks_env(tmp.path);

  // luarocks is installed by tools/deps.sh: its absence is a failure.
  Result make = run({"luarocks", "--lua-version", "5.4", "make", "--tree", tree.string(),
                     "lnet-0.1.0-1.rockspec"},
                    src.string(), env, 900);
  BOOST_REQUIRE_MESSAGE(make.ok(), "luarocks make: " + make.describe());

  // The module, found through `luarocks path` from another directory.
  const std::string lua_code =
      "require 'net'; print(package.loaded.net ~= nil); "
      "print(package.searchpath('net', package.cpath)); "
      "print(type(require('net.co').spawn), type(require('net.ngx').socket.tcp))";
  Result load = run({"sh", "-c",
                     "eval \"$(luarocks --lua-version 5.4 path --tree " + sh_quote(tree.string()) +
                         ")\" && exec lua5.4 -e " + sh_quote(lua_code)},
                    elsewhere.string(), env, 120);
  BOOST_REQUIRE_MESSAGE(load.ok(), "lua5.4 require 'net' from the tree: " + load.describe());
  auto out = lines(load.output);
  BOOST_REQUIRE_MESSAGE(out.size() >= 2, "unexpected output: " + load.output);
  BOOST_CHECK_EQUAL(out[0], "true");
  BOOST_CHECK_MESSAGE(out[1].rfind(tree.string() + "/", 0) == 0,
                      "net was loaded from " + out[1] + ", not from the tree " + tree.string());
  // net.co and net.ngx live in net.so (issue 9): the rock installs no other file for them.
  BOOST_REQUIRE_MESSAGE(out.size() >= 3, "unexpected output: " + load.output);
  BOOST_CHECK_EQUAL(out[2], "function\tfunction");

  // The installed runner runs a script with its globals and the loop.
  check_installed_runner(tree, elsewhere);

  // lnet.h where README says: in the directory `luarocks show --rock-dir` names.
  Result show = run({"luarocks", "--lua-version", "5.4", "show", "--rock-dir", "--tree", tree.string(), "lnet"},
                    elsewhere.string(), env, 120);
  BOOST_REQUIRE_MESSAGE(show.ok(), "luarocks show --rock-dir: " + show.describe());
  auto shown = lines(show.output);
  BOOST_REQUIRE_MESSAGE(!shown.empty() && shown.back().rfind(tree.string() + "/", 0) == 0,
                        "luarocks show --rock-dir: " + show.output);
  check_installed_header(shown.back(), elsewhere);
}

// With --deps-mode=none (the way to install where luarocks.org cannot be
// reached), luarocks 3.8 writes a bin/lnet wrapper that sets no paths at all
// when the tree is not one of its configured rocks_trees: the runner must
// find its tree's module by itself, with no `luarocks path`.
BOOST_AUTO_TEST_CASE(installed_runner_needs_no_luarocks_path) {
  TempDir tmp;
  const fs::path tree = tmp.path / "tree";
  const fs::path elsewhere = tmp.path / "elsewhere";
  fs::create_directories(elsewhere);
  Result make = run({"luarocks", "--lua-version", "5.4", "make", "--deps-mode=none", "--tree",
                     tree.string(), "lnet-0.1.0-1.rockspec"},
                    rock_sources().string(), luarocks_env(tmp.path), 900);
  BOOST_REQUIRE_MESSAGE(make.ok(), "luarocks make --deps-mode=none: " + make.describe());
  check_installed_runner(tree, elsewhere);
}

// README's commands make an installable rock from a checkout:
//   luarocks --lua-version 5.4 make --tree T lnet-0.1.0-1.rockspec
//   luarocks --lua-version 5.4 pack --tree T lnet 0.1.0-1
// That rock installs into a fresh tree, whose lnet runs an example shipped
// in the rock (examples/test_connection.lua: an echo server on localhost:9999
// and a client; it ends by itself).
BOOST_AUTO_TEST_CASE(packed_rock_installs_and_runs_an_example) {
  TempDir tmp;
  const fs::path build_tree = tmp.path / "build-tree";
  const fs::path fresh = tmp.path / "fresh-tree";
  const fs::path out = tmp.path / "rocks";
  fs::create_directories(out);
  const EnvChanges env = luarocks_env(tmp.path);
  Result make = run({"luarocks", "--lua-version", "5.4", "make", "--tree", build_tree.string(),
                     "lnet-0.1.0-1.rockspec"},
                    rock_sources().string(), env, 900);
  BOOST_REQUIRE_MESSAGE(make.ok(), "luarocks make: " + make.describe());
  Result pack = run({"luarocks", "--lua-version", "5.4", "pack", "--tree", build_tree.string(),
                     "lnet", "0.1.0-1"},
                    out.string(), env, 300);
  BOOST_REQUIRE_MESSAGE(pack.ok(), "luarocks pack: " + pack.describe());
  std::vector<fs::path> rocks;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().extension() == ".rock") rocks.push_back(e.path());
  BOOST_REQUIRE_MESSAGE(rocks.size() == 1, "luarocks pack made " + std::to_string(rocks.size()) +
                                               " .rock files:\n" + pack.output);
  BOOST_TEST_MESSAGE("packed " << rocks[0].filename().string());

  // Installed from the rock file alone: the build tree is gone by then.
  fs::remove_all(build_tree);
  Result install = run({"luarocks", "--lua-version", "5.4", "install", "--tree", fresh.string(),
                        rocks[0].string()},
                       out.string(), env, 300);
  BOOST_REQUIRE_MESSAGE(install.ok(), "luarocks install " + rocks[0].string() + ": " +
                                          install.describe());
  const fs::path example =
      fresh / "lib" / "luarocks" / "rocks-5.4" / "lnet" / "0.1.0-1" / "examples" / "test_connection.lua";
  BOOST_REQUIRE_MESSAGE(fs::exists(example), "the installed rock has no " + example.string());
  check_installed_header(example.parent_path().parent_path(), tmp.path);
  Result ran = run({(fresh / "bin" / "lnet").string(), example.string()}, tmp.path.string(),
                   clean_lua_env(), 60);
  BOOST_REQUIRE_MESSAGE(ran.ok(), "installed lnet test_connection.lua: " + ran.describe());
  for (const char* line : {"\xe2\x9c\x93 Test server ready", "\xe2\x9c\x93 Received:\tEcho: Hello, test!",
                           "\xe2\x9c\x93 Test completed"})
    BOOST_CHECK_MESSAGE(contains_line(ran.output, line), "missing line " << line << " in:\n" << ran.output);
}

// Without libevent's development files the rock stops with a message that
// names what is missing: luarocks' own when the headers are not found, the
// build script's (with the install commands) when pkg-config lacks them.
BOOST_AUTO_TEST_CASE(luarocks_make_without_libevent_says_what_to_install) {
  TempDir tmp;
  const fs::path src = tmp.path / "src";
  const fs::path tree = tmp.path / "tree";
  const fs::path no_pc = tmp.path / "no-pkgconfig";
  fs::create_directories(no_pc);
  const std::string copied = copy_sources(source_dir(), src);
  BOOST_TEST_MESSAGE(copied);

  EnvChanges env = clean_lua_env();
  env.emplace_back("PKG_CONFIG_PATH", no_pc.string());
  env.emplace_back("PKG_CONFIG_LIBDIR", no_pc.string());

  Result no_headers = run({"luarocks", "--lua-version", "5.4", "make", "--deps-mode=none",
                           "--tree", tree.string(), "lnet-0.1.0-1.rockspec",
                           "LIBEVENT_DIR=" + (tmp.path / "no-libevent").string()},
                          src.string(), env, 300);
  BOOST_CHECK_MESSAGE(!no_headers.ok() && !no_headers.timed_out,
                      "luarocks make without libevent headers: " + no_headers.describe());
  BOOST_CHECK_MESSAGE(no_headers.output.find("LIBEVENT") != std::string::npos &&
                          no_headers.output.find("event2/bufferevent.h") != std::string::npos,
                      "the failure does not say that libevent is missing:\n" + no_headers.output);

  Result no_pkgconfig = run({"luarocks", "--lua-version", "5.4", "make", "--deps-mode=none",
                             "--tree", tree.string(), "lnet-0.1.0-1.rockspec"},
                            src.string(), env, 300);
  BOOST_CHECK_MESSAGE(!no_pkgconfig.ok() && !no_pkgconfig.timed_out,
                      "luarocks make without libevent's pkg-config files: " +
                          no_pkgconfig.describe());
  BOOST_CHECK_MESSAGE(
      no_pkgconfig.output.find("lnet needs libevent 2.1 development files: apt-get install "
                               "libevent-dev (Debian/Ubuntu)") != std::string::npos,
      "the failure does not say how to install libevent:\n" + no_pkgconfig.output);
}

// (b) The module's dynamic symbol table holds luaopen_net and nothing else
// of ours, and the module does not link liblua.
BOOST_AUTO_TEST_CASE(module_exports_only_luaopen_net) {
  const std::string so = build_dir() + "/net.so";
  BOOST_REQUIRE_MESSAGE(fs::exists(so), so + " does not exist");

  Result nm = run({"nm", "-D", "--defined-only", so}, "", {}, 60);
  BOOST_REQUIRE_MESSAGE(nm.ok(), "nm -D: " + nm.describe());
  // Linker-made symbols, and the sanitizer build's runtime hooks.
  const std::set<std::string> linker_symbols = {"_init", "_fini", "__bss_start", "_edata",
                                                "_end", "__data_start", "_IO_stdin_used"};
  const std::vector<std::string> sanitizer_prefixes = {"__asan", "__ubsan", "__sanitizer",
                                                       "__lsan", "__odr_asan"};
  bool found_luaopen = false;
  std::vector<std::string> unexpected;
  for (const auto& line : lines(nm.output)) {
    // "ADDRESS TYPE NAME[@VERSION]"
    std::istringstream fields(line);
    std::string address, type, name;
    if (!(fields >> address >> type >> name)) continue;
    name = name.substr(0, name.find('@'));
    if (name == "luaopen_net") {
      found_luaopen = true;
      BOOST_CHECK_MESSAGE(type == "T", "luaopen_net has symbol type " + type + ", not T");
      continue;
    }
    // The entry points of net.co and net.ngx (Lua compiled into net.so; SPEC Part D).
    if (name == "luaopen_net_co" || name == "luaopen_net_ngx") {
      BOOST_CHECK_MESSAGE(type == "T", name + " has symbol type " + type + ", not T");
      continue;
    }
    if (linker_symbols.count(name) != 0) continue;
    bool sanitizer = false;
    for (const auto& prefix : sanitizer_prefixes) {
      if (name.rfind(prefix, 0) == 0) sanitizer = true;
    }
    if (sanitizer) continue;
    unexpected.push_back(type + " " + name);
  }
  BOOST_CHECK_MESSAGE(found_luaopen, "net.so does not export luaopen_net:\n" + nm.output);
  std::string list;
  for (const auto& u : unexpected) list += "  " + u + "\n";
  BOOST_CHECK_MESSAGE(unexpected.empty(),
                      "net.so exports symbols besides luaopen_net (hide them):\n" + list);

  Result readelf = run({"readelf", "-d", so}, "", {}, 60);
  BOOST_REQUIRE_MESSAGE(readelf.ok(), "readelf -d: " + readelf.describe());
  for (const auto& line : lines(readelf.output)) {
    if (line.find("(NEEDED)") != std::string::npos) {
      BOOST_TEST_MESSAGE("net.so needs: " << line.substr(line.find("(NEEDED)") + 8));
      BOOST_CHECK_MESSAGE(line.find("liblua") == std::string::npos,
                          "net.so must not link liblua: " + line);
    }
  }
}

// (c) The stock interpreter loads the built module; require sets no global.
BOOST_AUTO_TEST_CASE(stock_lua_loads_module_without_globals) {
  const std::string code =
      "package.cpath = [==[" + build_dir() + "/?.so]==]\n"
      "local before = {}\n"
      "for k in pairs(_G) do before[k] = true end\n"
      "local net = require 'net'\n"
      "local added = {}\n"
      "for k in pairs(_G) do if not before[k] then added[#added + 1] = tostring(k) end end\n"
      "print(type(net), type(net.loop), type(net.TCPSocket), type(net.TCPServer),\n"
      "      package.loaded.net == net and require('net') == net,\n"
      "      #added == 0 and 'no new globals' or 'new globals: ' .. table.concat(added, ' '))\n";
  Result r = run({"lua5.4", "-e", code}, "", preload_env(), 60);
  BOOST_REQUIRE_MESSAGE(r.ok(), "lua5.4 require 'net': " + r.describe());
  BOOST_CHECK_MESSAGE(
      contains_line(r.output, "table\tfunction\tfunction\tfunction\ttrue\tno new globals"),
      "unexpected output:\n" + r.output);
}
