// Timers: net.setTimeout / net.setInterval return a net.Timer that stays
// alive (anchored) while it is pending; clearing it is idempotent.
#include "context.hh"
#include "objects.hh"
#include "options.hh"

#include <event2/event.h>

#include <cmath>
#include <ctime>
#include <new>

namespace lnet {

namespace {

const char kTypeName[] = "net.Timer";

enum Slot { kFunction = 1, kArgs, kSlots = kArgs };

struct Timer {
  Context* ctx = nullptr;
  event* ev = nullptr;
  int64_t due_us = 0;       // when it should fire, on the precise monotonic clock
  int64_t interval_us = 0;  // for setInterval
  bool repeat = false;
  bool pending = false;
};

// libevent's timers run on CLOCK_MONOTONIC_COARSE (its precise mode costs a
// timerfd_settime per loop round), which lags the real clock by up to its
// resolution, and event_add() counts a delay from that lagging "now": a
// plain delay can fire early. So the delay asked for is the time from the
// coarse clock's now to the due time on the precise clock: libevent's
// deadline is then the due time itself, which the coarse clock reaches only
// after the real one has. Never early; equal delays fire in the order they
// were set; intervals advance by exactly their period, so they do not drift.
void arm(Timer* t) noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  int64_t coarse_now = static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  int64_t left = t->due_us - coarse_now;
  if (left < 0) left = 0;
  timeval tv{static_cast<time_t>(left / 1000000), static_cast<suseconds_t>(left % 1000000)};
  event_base_update_cache_time(t->ctx->base);  // inside callbacks the cache is stale
  event_add(t->ev, &tv);
}

int timer_body(lua_State* L) {
  Timer* t = static_cast<Timer*>(lua_touserdata(L, 1));
  push_anchored(L, t);
  lua_getiuservalue(L, -1, kFunction);
  int nargs = 0;
  if (lua_getiuservalue(L, -2, kArgs) == LUA_TTABLE) {
    int args = lua_gettop(L);
    lua_getfield(L, args, "n");
    nargs = static_cast<int>(lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, nargs, "too many timer arguments");
    for (int i = 1; i <= nargs; i++) lua_rawgeti(L, args, i);
    lua_remove(L, args);
  } else {
    lua_pop(L, 1);
  }
  lua_call(L, nargs, 0);
  return 0;
}

void on_timer(evutil_socket_t, short, void* arg) {
  Timer* t = static_cast<Timer*>(arg);
  Context* ctx = t->ctx;
  if (t->repeat) {
    t->due_us += t->interval_us;
    int64_t now = now_us();
    if (t->due_us < now) t->due_us = now;  // late (a long callback): no burst of catch-up ticks
    arm(t);  // before the call, so clearInterval inside it cancels this one
  } else {
    t->pending = false;
  }
  dispatch(ctx, timer_body, t);
  // Unanchor after the call: the timer had to stay reachable during it.
  if (!t->pending) unanchor(ctx->L, ctx, t);
}

void clear(lua_State* L, Timer* t) {
  if (!t->pending) return;
  t->pending = false;
  event_del(t->ev);
  unanchor(L, t->ctx, t);
}

int start_timer(lua_State* L, bool repeat) {
  Context* ctx = upvalue_context(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Number ms = check_number(L, 2);  // not the string "10"
  if (!(ms > 0)) ms = 0;  // negative and NaN: as soon as possible
  if (ms > 1e12) ms = 1e12;
  int nargs = lua_gettop(L) - 2;
  Timer* t = new (lua_newuserdatauv(L, sizeof(Timer), kSlots)) Timer();
  luaL_setmetatable(L, kTypeName);
  int ud = lua_gettop(L);
  t->ctx = ctx;
  t->repeat = repeat;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, ud, kFunction);
  if (nargs > 0) {
    lua_createtable(L, nargs, 1);
    for (int i = 1; i <= nargs; i++) {
      lua_pushvalue(L, 2 + i);
      lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, nargs);
    lua_setfield(L, -2, "n");
    lua_setiuservalue(L, ud, kArgs);
  }
  t->ev = event_new(ctx->base, -1, 0, on_timer, t);
  if (!t->ev) return luaL_error(L, "cannot create a timer: out of memory");
  anchor(L, ctx, t, ud);
  t->interval_us = static_cast<int64_t>(ms * 1000);
  // libevent breaks no ties between equal deadlines: start times never
  // repeat, so timers set in a row with one delay fire in that order.
  int64_t now = now_us();
  if (now <= ctx->timer_clock_us) now = ctx->timer_clock_us + 1;
  ctx->timer_clock_us = now;
  t->due_us = now + t->interval_us;
  arm(t);
  t->pending = true;
  lua_settop(L, ud);
  return 1;
}

int set_timeout(lua_State* L) { return start_timer(L, false); }
int set_interval(lua_State* L) { return start_timer(L, true); }

int clear_timer(lua_State* L) {
  if (lua_isnoneornil(L, 1)) return 0;
  clear(L, static_cast<Timer*>(luaL_checkudata(L, 1, kTypeName)));
  return 0;
}

int timer_gc(lua_State* L) {
  Timer* t = static_cast<Timer*>(luaL_checkudata(L, 1, kTypeName));
  if (t->ev) event_free(t->ev);
  t->ev = nullptr;
  t->pending = false;
  return 0;
}

int timer_tostring(lua_State* L) {
  Timer* t = static_cast<Timer*>(luaL_checkudata(L, 1, kTypeName));
  lua_pushfstring(L, "%s (%s)", kTypeName,
                  t->pending ? (t->repeat ? "interval" : "pending") : "done");
  return 1;
}

const luaL_Reg kMethods[] = {{"clear", clear_timer}, {nullptr, nullptr}};
const luaL_Reg kMeta[] = {{"__gc", timer_gc}, {"__tostring", timer_tostring}, {nullptr, nullptr}};
const luaL_Reg kFunctions[] = {{"setTimeout", set_timeout},
                               {"setInterval", set_interval},
                               {"clearTimeout", clear_timer},
                               {"clearInterval", clear_timer},
                               {nullptr, nullptr}};

}  // namespace

void register_timer(lua_State* L, int ctx_idx, int module_idx) {
  register_type(L, ctx_idx, kTypeName, kMethods, kMeta);
  register_functions(L, ctx_idx, module_idx, kFunctions);
}

}  // namespace lnet
