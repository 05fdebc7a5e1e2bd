/* lnet.h: for C and C++ programs that embed Lua and load lnet (net.so).
 *
 * A host that already runs a libevent event loop (a daemon, a game, a GUI)
 * can make lnet use that loop instead of lnet's own:
 *
 *   struct event_base *base = event_base_new();
 *   lua_State *L = luaL_newstate();
 *   luaL_openlibs(L);
 *   lnet_use_event_base(L, base);   (before the first require "net" in L)
 *   ... run Lua code that does require "net" and starts servers, sockets, timers ...
 *   event_base_dispatch(base);      (lnet's callbacks run from here)
 *
 * net.loop() is then optional: the host's own event_base_dispatch() or
 * event_base_loop() drives lnet together with the host's events. When a Lua
 * callback raises an error, lnet breaks the host's loop
 * (event_base_loopbreak) and keeps the error, with its traceback, for the
 * next net.loop() call, which raises it: after the host's loop returns, call
 * net.loop("nowait") under lua_pcall to learn whether it was lnet.
 * Rules: the base must outlive the lua_State (lua_close() first, then
 * event_base_free()); libevent must be the one net.so is linked with (one
 * libevent per process); one thread runs the base and the Lua state.
 *
 * The function is defined here, inline, rather than in net.so: the module
 * exports nothing but luaopen_net, and the host needs no link to it. It
 * leaves the base in the Lua registry, where lnet takes it on first use.
 */
#ifndef LNET_H
#define LNET_H

#ifdef __cplusplus
extern "C" {
#endif
#include <lauxlib.h>
#include <lua.h>
#ifdef __cplusplus
}
#endif

struct event_base;

/* Registry fields shared with net.so (part of this interface). */
#define LNET_REGISTRY_EVENT_BASE "lnet.event_base" /* light userdata: the host's base */
#define LNET_REGISTRY_CONTEXT "lnet.context"       /* set once lnet runs in the state */

/* Makes lnet in L run on base. Call it before lnet's first use in L (the
 * first require "net"). Returns 0, or -1 (nothing changed) when base is
 * NULL or lnet already runs in L with its own base. Like any Lua API call
 * it may raise a memory error (call it where that is allowed). */
static inline int lnet_use_event_base(lua_State *L, struct event_base *base) {
  int in_use;
  if (base == NULL) return -1;
  lua_getfield(L, LUA_REGISTRYINDEX, LNET_REGISTRY_CONTEXT);
  in_use = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (in_use) return -1;
  lua_pushlightuserdata(L, (void *)base);
  lua_setfield(L, LUA_REGISTRYINDEX, LNET_REGISTRY_EVENT_BASE);
  return 0;
}

#endif /* LNET_H */
