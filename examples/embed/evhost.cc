// lnet-evhost: a host that already runs libevent (a daemon, a game server)
// and hands its own event_base to lnet through lnet.h, so that one
// event_base_dispatch() drives the host's events and lnet's together; the
// host never calls net.loop() while it runs.
//
// usage: lnet-evhost SCRIPT [args...]
//
// Same contract as lnet-embed (host.cc): SCRIPT runs with `net` and the extra
// arguments and returns frame(n). Here frame is called from the host's own
// libevent timer every 10 ms. The host exits with status 0 when frame
// returns false, and with status 1 on an error in the script, a frame or a
// network callback (lnet breaks the host's loop; net.loop("nowait") then
// raises the error with its traceback).
#include <lua.hpp>

#include <event2/event.h>

#include "lnet.h"

#include <cstdio>

namespace {

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
    std::fprintf(stderr, "lnet-evhost: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return false;
  }
  return true;
}

struct Host {
  lua_State* L = nullptr;
  event_base* base = nullptr;
  int loop_idx = 0;   // net.loop on L's stack
  int frame_idx = 0;  // the script's frame function
  lua_Integer frames = 0;
  int status = -1;  // -1: still running
};

// The host's own timer: one "frame" of its work, then the script's frame().
void on_tick(evutil_socket_t, short, void* arg) {
  Host* h = static_cast<Host*>(arg);
  lua_pushvalue(h->L, h->frame_idx);
  lua_pushinteger(h->L, ++h->frames);
  if (!call(h->L, 1, 1)) {
    h->status = 1;
  } else {
    if (!lua_toboolean(h->L, -1)) h->status = 0;
    lua_pop(h->L, 1);
  }
  if (h->status >= 0) event_base_loopbreak(h->base);
}

int run(Host* h, int argc, char** argv) {
  lua_State* L = h->L;
  luaL_openlibs(L);
  if (lnet_use_event_base(L, h->base) != 0) {
    std::fprintf(stderr, "lnet-evhost: lnet_use_event_base failed\n");
    return 1;
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "net");
  if (!call(L, 1, 1)) return 1;  // net
  lua_getfield(L, -1, "loop");
  lua_insert(L, -2);  // loop, net
  h->loop_idx = lua_gettop(L) - 1;
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    std::fprintf(stderr, "lnet-evhost: %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_insert(L, -2);  // loop, chunk, net
  for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  if (!call(L, argc - 1, 1)) return 1;  // loop, frame
  if (!lua_isfunction(L, -1)) {
    std::fprintf(stderr, "lnet-evhost: the script must return a frame function\n");
    return 1;
  }
  h->frame_idx = lua_gettop(L);

  event* tick = event_new(h->base, -1, EV_PERSIST, on_tick, h);
  timeval every{0, 10 * 1000};
  event_add(tick, &every);
  while (h->status < 0) {
    event_base_dispatch(h->base);  // the host's loop: its timer and lnet's events
    if (h->status >= 0) break;
    // lnet broke the loop: a callback raised, and net.loop raises it here.
    lua_pushvalue(L, h->loop_idx);
    lua_pushliteral(L, "nowait");
    if (!call(L, 1, 0)) h->status = 1;
  }
  event_free(tick);
  return h->status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lnet-evhost SCRIPT [args...]\n");
    return 2;
  }
  Host h;
  h.base = event_base_new();
  h.L = luaL_newstate();
  if (h.base == nullptr || h.L == nullptr) return 1;
  int status = run(&h, argc, argv);
  lua_close(h.L);  // before the base it uses
  event_base_free(h.base);
  return status;
}
