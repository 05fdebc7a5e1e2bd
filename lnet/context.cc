#include "context.hh"

#include "lnet.h"
#include "resolver.hh"
#include "tls.hh"

#include <event2/event.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

namespace lnet {

namespace {

// Registry keys: addresses of these objects (constant, not state).
const char kContextKey = 'c';
const char kAnchorsKey = 'a';
const char kHostThreadKey = 'h';

void run_deferred(evutil_socket_t, short, void* arg) {
  Context* ctx = static_cast<Context*>(arg);
  // Take the items queued so far; what they queue runs on the next round.
  Deferred batch;  // a sentinel (run is null)
  if (!ctx->defer_head.queued()) return;
  batch.next = ctx->defer_head.next;
  batch.prev = ctx->defer_head.prev;
  batch.next->prev = &batch;
  batch.prev->next = &batch;
  ctx->defer_head.next = ctx->defer_head.prev = nullptr;
  while (batch.queued()) {
    if (halted(ctx)) {
      // Put the rest back for the next net.loop().
      while (batch.queued()) {
        Deferred* d = batch.next;
        undefer(d);
        defer(ctx, d);
      }
      break;
    }
    Deferred* d = batch.next;
    undefer(d);
    d->run(d);
  }
}

void context_free(Context* ctx) noexcept {
  // Objects are finalized before the context (they are made after it), so
  // nothing uses the base any more.
  resolver_close(ctx);
  if (ctx->defer_ev) event_free(ctx->defer_ev);
  if (ctx->base && ctx->own_base) event_base_free(ctx->base);
  ctx->defer_ev = nullptr;
  ctx->base = nullptr;
  tls_shared_free(ctx->tls);
  ctx->tls = nullptr;
  std::free(ctx->read_buf);
  ctx->read_buf = nullptr;
  slot_list_free(&ctx->co_dead);
  slot_list_free(&ctx->co_free);
}

// What the anchored objects are, for the at-exit line: by metatable name.
struct Kind {
  const char* tname;
  const char* one;
  const char* many;
};
const Kind kKinds[] = {{"net.TCPServer", "server", "servers"},
                       {"net.TCPSocket", "socket", "sockets"},
                       {"net.UDPSocket", "UDP socket", "UDP sockets"},
                       {"net.Timer", "timer", "timers"},
                       {nullptr, "other object", "other objects"}};
constexpr int kKindCount = sizeof kKinds / sizeof kKinds[0];

// Whether the metatable name is tname, or tname followed by " (...)".
bool same_type(const char* tname, const char* name) {
  size_t n = std::strlen(tname);
  return !std::strncmp(tname, name, n) && (name[n] == '\0' || name[n] == ' ');
}

// A script that set things up and ended without running the loop would
// otherwise exit silently having done nothing: one line says why.
// "lnet: 1 server, 2 sockets were never run: call net.loop()".
void report_never_run(lua_State* L) {
  long count[kKindCount] = {};
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kAnchorsKey);
  int anchors = lua_gettop(L);
  if (lua_type(L, anchors) != LUA_TTABLE) return;
  lua_pushnil(L);
  while (lua_next(L, anchors)) {
    int k = 0;
    if (luaL_getmetafield(L, -1, "__name") == LUA_TSTRING) {
      // Finalized by now: "net.TCPServer (finalized)" (objects.cc).
      const char* name = lua_tostring(L, -1);
      while (kKinds[k].tname && !same_type(kKinds[k].tname, name)) k++;
      lua_pop(L, 1);
    } else {
      k = kKindCount - 1;
    }
    count[k]++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  char line[256];
  size_t len = 0;
  long total = 0;
  for (int k = 0; k < kKindCount; k++) {
    if (count[k] == 0) continue;
    int n = std::snprintf(line + len, sizeof line - len, "%s%ld %s", total ? ", " : "", count[k],
                          count[k] == 1 ? kKinds[k].one : kKinds[k].many);
    if (n > 0) len = std::min(len + static_cast<size_t>(n), sizeof line - 1);
    total += count[k];
  }
  if (total == 0) return;
  int n = std::snprintf(line + len, sizeof line - len, " %s never run: call net.loop()",
                        total == 1 ? "was" : "were");
  if (n > 0) len = std::min(len + static_cast<size_t>(n), sizeof line - 1);
  report_unhandled(line, len);
}

// lua_close finalizes objects newest first: the objects lnet made have
// released their events by now, but an object the program made before
// require "net" is finalized after this and may still call lnet: closed
// makes every function refuse (objects.cc) instead of using a freed base.
int context_gc(lua_State* L) {
  Context* ctx = static_cast<Context*>(lua_touserdata(L, 1));
  if (ctx->closed) return 0;
  ctx->closed = true;
  context_free(ctx);
  // Last: it may raise (out of memory), and only the line is lost then.
  if (ctx->anchored > 0 && !ctx->loop_ran) report_never_run(L);
  return 0;
}

}  // namespace

Context* context_push(lua_State* L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kContextKey) == LUA_TUSERDATA)
    return static_cast<Context*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  lua_newtable(L);  // anchors
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kAnchorsKey);
  // Made closed and empty first, with its finalizer, before owning anything.
  Context* ctx = new (lua_newuserdatauv(L, sizeof(Context), 0)) Context();
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, context_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "net.context");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  ctx->defer_head.next = ctx->defer_head.prev = nullptr;
  // lnet.h: a host's base, left in the registry by lnet_use_event_base().
  lua_getfield(L, LUA_REGISTRYINDEX, LNET_REGISTRY_EVENT_BASE);
  if (lua_islightuserdata(L, -1)) {
    ctx->base = static_cast<event_base*>(lua_touserdata(L, -1));
    ctx->own_base = false;
  }
  lua_pop(L, 1);
  event_config* cfg = ctx->base ? nullptr : event_config_new();
  if (cfg) {
    // No locking: one thread per state. Not EVENT_BASE_FLAG_PRECISE_TIMER:
    // with epoll it re-arms a timerfd on every loop round (a system call
    // per round trip); timer.cc keeps timers from firing early instead.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    ctx->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
  }
  if (ctx->base) ctx->defer_ev = event_new(ctx->base, -1, 0, run_deferred, ctx);
  if (!ctx->base || !ctx->defer_ev) {
    context_free(ctx);
    luaL_error(L, "net: cannot create the libevent event base");
  }
  if (!ctx->own_base) {
    // The host's loop runs callbacks outside net.loop(): they run on this
    // thread, which keeps a callback's error for the next net.loop().
    lua_State* T = lua_newthread(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kHostThreadKey);
    if (!lua_checkstack(T, 32)) luaL_error(L, "net: out of memory");
    ctx->host_L = ctx->L = T;
    ctx->loop_ran = true;  // the host runs it: no "never run" line at exit
  }
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LNET_REGISTRY_CONTEXT);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kContextKey);
  return ctx;
}

char* context_read_buffer(Context* ctx) noexcept {
  if (!ctx->read_buf) ctx->read_buf = static_cast<char*>(std::malloc(kReadBufferSize));
  return ctx->read_buf;
}

void anchor(lua_State* L, Context* ctx, const void* key, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kAnchorsKey);
  if (lua_rawgetp(L, -1, key) == LUA_TNIL) ctx->anchored++;
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_rawsetp(L, -2, key);  // may raise: nothing is done yet
  lua_pop(L, 1);
}

void unanchor(lua_State* L, Context* ctx, const void* key) noexcept {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kAnchorsKey);
  if (lua_rawgetp(L, -1, key) != LUA_TNIL) {
    ctx->anchored--;
    lua_pushnil(L);
    lua_rawsetp(L, -3, key);  // clearing a present key never allocates
  }
  lua_pop(L, 2);
}

void push_anchored(lua_State* L, const void* key) noexcept {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kAnchorsKey);
  lua_rawgetp(L, -1, key);
  lua_remove(L, -2);
}

void defer(Context* ctx, Deferred* d) noexcept {
  if (d->queued()) return;
  Deferred* head = &ctx->defer_head;
  if (!head->queued()) {
    head->next = head->prev = head;
    event_active(ctx->defer_ev, 0, 0);
  }
  d->prev = head->prev;
  d->next = head;
  head->prev->next = d;
  head->prev = d;
}

void undefer(Deferred* d) noexcept {
  if (!d->queued()) return;
  Deferred* prev = d->prev;
  Deferred* next = d->next;
  prev->next = next;
  next->prev = prev;
  d->next = d->prev = nullptr;
  // An emptied list: the sentinel points at itself; mark it unqueued.
  if (prev == next && prev->next == prev && prev->run == nullptr) prev->next = prev->prev = nullptr;
}

namespace {

int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) return 1;  // keep non-string error objects as they are
  luaL_traceback(L, L, msg, 1);
  return 1;
}

}  // namespace

void dispatch(Context* ctx, lua_CFunction body, void* arg) noexcept {
  lua_State* L = ctx->L;
  int top = lua_gettop(L);
  // Only non-raising calls before lua_pcall (the loop reserved the slots).
  lua_pushcfunction(L, traceback_handler);
  lua_pushcfunction(L, body);
  lua_pushlightuserdata(L, arg);
  if (lua_pcall(L, 1, 0, top + 1) == LUA_OK) {
    lua_settop(L, top);
    return;
  }
  lua_remove(L, top + 1);  // the handler; the error stays on top
  if (!ctx->error_pending) {
    ctx->error_pending = true;
    event_base_loopbreak(ctx->base);
    return;
  }
  // A second error before net.loop() could raise the first: not lost.
  size_t len = 0;
  const char* msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
  if (msg == nullptr) msg = "(error object is not a string)", len = 30;
  report_unhandled(msg, len);
  lua_settop(L, top);
}

namespace {

struct Firing {
  Context* ctx;
  Call* call;
};

int fire_body(lua_State* L) {
  Firing* firing = static_cast<Firing*>(lua_touserdata(L, 1));
  Call* call = firing->call;
  push_anchored(L, call->key);
  int type = lua_type(L, -1) == LUA_TUSERDATA ? lua_getiuservalue(L, -1, call->slot) : LUA_TNIL;
  if (type != LUA_TFUNCTION) {
    if (call->report && call->text) {
      report_unhandled(call->text, call->len);
      firing->ctx->unhandled_errors++;
    }
    return 0;
  }
  int nargs = 0;
  if (call->id != 0) lua_pushinteger(L, call->id), nargs++;
  if (call->text) {
    lua_pushlstring(L, call->text, call->len);
    nargs++;
  } else if (call->code) {
    lua_pushnil(L);
    nargs++;
  }
  if (call->code) {
    lua_pushstring(L, call->code);
    nargs++;
  }
  lua_call(L, nargs, 0);
  return 0;
}

}  // namespace

void fire(Context* ctx, Call* call) noexcept {
  Firing firing{ctx, call};
  dispatch(ctx, fire_body, &firing);
}

void report_unhandled(const char* msg, size_t len) noexcept {
  std::fprintf(stderr, "lnet: %.*s\n", static_cast<int>(len), msg);
  std::fflush(stderr);
}

int64_t now_us() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool slot_push(SlotList* l, int v) noexcept {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    void* p = std::realloc(l->items, cap * sizeof(int));
    if (p == nullptr) return false;
    l->items = static_cast<int*>(p);
    l->cap = cap;
  }
  l->items[l->n++] = v;
  return true;
}

void slot_list_free(SlotList* l) noexcept {
  std::free(l->items);
  *l = SlotList();
}

}  // namespace lnet
