// lnet-embed: a host program that owns its main loop, the way a game, a GUI
// or a daemon does, and embeds Lua with lnet. Each frame it does its own
// work, then pumps lnet with net.loop("nowait"), which runs what is ready
// and never blocks, so networking costs the frame nothing when idle.
//
// usage: lnet-embed SCRIPT [args...]
//
// SCRIPT runs once with `net` (require "net") as its first argument and the
// extra arguments after it; it returns a function frame(n) that the host
// calls every frame. The host exits when frame returns false, with status
// 0, or on an error (in the script, a frame, or a network callback, which
// net.loop re-raises), with status 1.
#include <lua.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

namespace {

constexpr auto kFrame = std::chrono::milliseconds(10);  // a 100 Hz "render" loop

int traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

// Calls the function below nargs arguments under a traceback handler.
bool call(lua_State* L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (rc != LUA_OK) {
    std::fprintf(stderr, "lnet-embed: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return false;
  }
  return true;
}

// Loads the script and calls it with net and the arguments; leaves the
// frame function and the net.loop function on the stack.
bool start(lua_State* L, int argc, char** argv) {
  luaL_openlibs(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "net");
  if (!call(L, 1, 1)) return false;  // net
  lua_getfield(L, -1, "loop");         // net, loop
  lua_insert(L, -2);                   // loop, net
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    std::fprintf(stderr, "lnet-embed: %s\n", lua_tostring(L, -1));
    return false;
  }
  lua_insert(L, -2);  // loop, chunk, net
  for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  if (!call(L, argc - 1, 1)) return false;  // loop, frame
  if (!lua_isfunction(L, -1)) {
    std::fprintf(stderr, "lnet-embed: the script must return a frame function\n");
    return false;
  }
  return true;
}

int run(lua_State* L, int argc, char** argv) {
  if (!start(L, argc, argv)) return 1;
  int loop = lua_gettop(L) - 1, frame = lua_gettop(L);
  auto next = std::chrono::steady_clock::now();
  for (lua_Integer n = 1;; n++) {
    // The application's own work for this frame would go here.
    lua_pushvalue(L, loop);
    lua_pushliteral(L, "nowait");
    if (!call(L, 1, 0)) return 1;  // network callbacks run inside
    lua_pushvalue(L, frame);
    lua_pushinteger(L, n);
    if (!call(L, 1, 1)) return 1;
    bool more = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!more) return 0;
    next += kFrame;
    std::this_thread::sleep_until(next);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lnet-embed SCRIPT [args...]\n");
    return 2;
  }
  lua_State* L = luaL_newstate();
  if (L == nullptr) return 1;
  int status = run(L, argc, argv);
  lua_close(L);
  return status;
}
