// luaopen_net: the module table and the loop functions.
#include "context.hh"
#include "objects.hh"
#include "tls.hh"

#include <event2/event.h>


namespace lnet {

namespace {

int net_loop(lua_State* L) {
  Context* ctx = upvalue_context(L);
  static const char* const kModes[] = {"default", "once", "nowait", nullptr};
  int mode = luaL_checkoption(L, 1, "default", kModes);
  if (ctx->running) return luaL_error(L, "net.loop: the loop is already running");
  if (ctx->error_pending && ctx->host_L) {
    // A callback that the host's own loop ran raised (lnet.h): raise it here.
    ctx->error_pending = false;
    lua_xmove(ctx->host_L, L, 1);
    lua_settop(ctx->host_L, 0);
    return lua_error(L);
  }
  // Room for the dispatcher's calls and for one stashed error.
  luaL_checkstack(L, 16, "net.loop");
  lua_settop(L, 0);
  ctx->loop_ran = true;
  ctx->L = L;
  ctx->running = true;
  ctx->stop_requested = false;
  switch (mode) {
    case 0:
      while (ctx->anchored > 0 && !ctx->stop_requested && !ctx->error_pending) {
        // 1: nothing is registered with libevent (say, only a paused socket
        // waits): return rather than spin.
        if (event_base_loop(ctx->base, EVLOOP_ONCE) != 0) break;
      }
      break;
    case 1:
      if (ctx->anchored > 0) event_base_loop(ctx->base, EVLOOP_ONCE);
      break;
    default:
      // NONBLOCK alone goes on polling while each round finds events, so a
      // busy peer could hold the caller's frame forever: one round only.
      event_base_loop(ctx->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
      break;
  }
  ctx->running = false;
  ctx->L = ctx->host_L;  // null unless a host's loop runs callbacks too
  if (ctx->error_pending) {
    ctx->error_pending = false;
    return lua_error(L);  // the callback's error, left on top by dispatch()
  }
  lua_pushboolean(L, ctx->anchored > 0);
  return 1;
}

int net_stop(lua_State* L) {
  Context* ctx = upvalue_context(L);
  if (ctx->running) {
    ctx->stop_requested = true;
    event_base_loopbreak(ctx->base);
  }
  return 0;
}

int net_now(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(now_ms()));
  return 1;
}

// How many network errors were written to stderr because no `error`
// callback was there to take them (the runner's exit status).
int net_unhandled_errors(lua_State* L) {
  lua_pushinteger(L, upvalue_context(L)->unhandled_errors);
  return 1;
}

const luaL_Reg kFunctions[] = {{"loop", net_loop},
                               {"stop", net_stop},
                               {"now", net_now},
                               {"unhandled_errors", net_unhandled_errors},
                               {nullptr, nullptr}};

}  // namespace

}  // namespace lnet

extern "C" LNET_EXPORT int luaopen_net(lua_State* L) {
  // No SIGPIPE handling here: every write passes MSG_NOSIGNAL (conn.cc),
  // so the host's signal dispositions stay its own.
  lnet::context_push(L);
  int ctx_idx = lua_gettop(L);
  lua_createtable(L, 0, 16);
  int module_idx = lua_gettop(L);
  lnet::register_functions(L, ctx_idx, module_idx, lnet::kFunctions);
  lnet::register_timer(L, ctx_idx, module_idx);
  lnet::register_socket(L, ctx_idx, module_idx);
  lnet::register_server(L, ctx_idx, module_idx);
  lnet::register_udp(L, ctx_idx, module_idx);
  lnet::register_workers(L, ctx_idx, module_idx);
  lnet::register_framing(L, ctx_idx, module_idx);
  lnet::register_tls(L, ctx_idx, module_idx);
  lua_pushliteral(L, "lnet 0.1.0");
  lua_setfield(L, module_idx, "_VERSION");
  lua_pushstring(L, event_get_version());
  lua_setfield(L, module_idx, "libevent_version");
  return 1;
}
