#include "harness.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace lnet_test {

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// ---------------------------------------------------------------- lnet_test
// A module for the scenario scripts, preloaded as require "lnet_test":
//   bound_port(host[, port]) -> port, handle | nil, message
// binds a TCP socket to host (an IPv4 or IPv6 literal) and port (default 0:
// any free port; SO_REUSEADDR, so a port whose listener has closed can be
// claimed while its old connections finish) and never listens on it: connects to the port are refused, and no other socket can
// get the port while the handle lives (handle:close(), or its finalizer).
// Plain C style: nothing here has a destructor, so raising is safe.

constexpr const char* kBoundPort = "lnet_test.BoundPort";

int bound_port_close(lua_State* L) {
  int* fd = static_cast<int*>(luaL_checkudata(L, 1, kBoundPort));
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
  return 0;
}

int bound_port(lua_State* L) {
  const char* host = luaL_checkstring(L, 1);
  lua_Integer want = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, want >= 0 && want <= 65535, 2, "port out of range");
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(want));
    len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(want));
    len = sizeof *a6;
  } else {
    return luaL_argerror(L, 1, "not an IP address");
  }
  // The handle first (it may raise), then the socket it will own.
  int* fd = static_cast<int*>(lua_newuserdatauv(L, sizeof(int), 0));
  *fd = -1;
  luaL_setmetatable(L, kBoundPort);
  *fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (*fd >= 0 && want != 0) ::setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (*fd < 0 || ::bind(*fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::getsockname(*fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    int err = errno;
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
    lua_pushnil(L);
    lua_pushfstring(L, "bound_port(%s): %s", host, std::strerror(err));
    return 2;
  }
  lua_Integer port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
  lua_pushinteger(L, port);
  lua_insert(L, -2);  // port, handle
  return 2;
}

int open_lnet_test(lua_State* L) {
  if (luaL_newmetatable(L, kBoundPort)) {
    lua_pushcfunction(L, bound_port_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, bound_port_close);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, bound_port_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, bound_port);
  lua_setfield(L, -2, "bound_port");
  return 1;
}

// The paths setup_paths() installs; they live in new_state(), outside the
// protected call, so that a Lua error (out of memory) inside it skips no
// destructor.
struct Paths {
  std::string cpath, path;
};

int traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) msg = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

// Sets package.cpath/path and preloads lnet_test; runs protected so an
// allocation failure is caught. Argument 1: the Paths (light userdata).
int setup_paths(lua_State* L) {
  const Paths* paths = static_cast<const Paths*>(lua_touserdata(L, 1));
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushlstring(L, paths->cpath.data(), paths->cpath.size());
  lua_setfield(L, -2, "cpath");
  lua_pushlstring(L, paths->path.data(), paths->path.size());
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open_lnet_test);
  lua_setfield(L, -2, "lnet_test");
  return 0;
}

}  // namespace

std::string source_path(const std::string& rel) { return env_or("LNET_SOURCE", ".") + "/" + rel; }
std::string build_path(const std::string& rel) { return env_or("LNET_BUILD", ".") + "/" + rel; }

void* failing_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* b = static_cast<AllocBudget*>(ud);
  if (nsize == 0) {
    std::free(ptr);
    return nullptr;
  }
  bool grows = ptr == nullptr || nsize > osize;
  if (grows && b->fail_from > 0 && ++b->count >= b->fail_from) {
    b->failed = true;
    return nullptr;
  }
  return std::realloc(ptr, nsize);
}

lua_State* new_state(lua_Alloc alloc, void* ud) {
  lua_State* L = alloc ? lua_newstate(alloc, ud) : luaL_newstate();
  if (L == nullptr) return nullptr;
  Paths paths{build_path("?.so"), source_path("tests/lua/?.lua") + ";" + source_path("examples/?.lua")};
  lua_pushcfunction(L, setup_paths);
  lua_pushlightuserdata(L, &paths);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_close(L);
    return nullptr;
  }
  return L;
}

namespace {

// Calls the chunk that load() pushed (or reports its load error) under the
// traceback handler; "" on success.
std::string call_loaded(lua_State* L, int load_status) {
  // The handler goes below the chunk.
  lua_pushcfunction(L, traceback);
  lua_insert(L, -2);
  int rc = load_status == LUA_OK ? lua_pcall(L, 0, 0, -2) : load_status;
  std::string err;
  if (rc != LUA_OK) {
    // Only a string is read as is: converting a number could raise (out of
    // memory) outside any protected call, with err alive.
    const char* m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
    err = m ? m : std::string("(error object is a ") + luaL_typename(L, -1) + ")";
    if (err.empty()) err = "(empty error)";
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  // the handler
  return err;
}

}  // namespace

std::string run_string(lua_State* L, const std::string& code, const std::string& name) {
  return call_loaded(L, luaL_loadbuffer(L, code.data(), code.size(), name.c_str()));
}

std::string run_file(lua_State* L, const std::string& path) {
  return call_loaded(L, luaL_loadfile(L, path.c_str()));
}

std::string run_scenario(const std::string& name) {
  lua_State* L = new_state();
  if (L == nullptr) return "cannot create a Lua state";
  std::string err = run_file(L, source_path("tests/lua/" + name + ".lua"));
  lua_close(L);
  return err;
}

}  // namespace lnet_test
