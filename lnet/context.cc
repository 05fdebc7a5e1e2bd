#include "context.hh"

#include "address.hh"
#include "tls.hh"

#include <event2/dns.h>
#include <event2/event.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <new>

namespace lnet {

namespace {

// Registry keys: addresses of these objects (constant, not state).
const char kContextKey = 'c';
const char kAnchorsKey = 'a';

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
  if (ctx->dns) evdns_base_free(ctx->dns, 1);
  if (ctx->defer_ev) event_free(ctx->defer_ev);
  if (ctx->base) event_base_free(ctx->base);
  ctx->dns = nullptr;
  ctx->defer_ev = nullptr;
  ctx->base = nullptr;
  lookup_free_orphans(ctx);
  tls_shared_free(ctx->tls);
  ctx->tls = nullptr;
  std::free(ctx->read_buf);
  ctx->read_buf = nullptr;
}

int context_gc(lua_State* L) {
  context_free(static_cast<Context*>(lua_touserdata(L, 1)));
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
  event_config* cfg = event_config_new();
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
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kContextKey);
  return ctx;
}

namespace {

// evdns reports a dead nameserver at EVDNS_LOG_MSG level on stderr; the
// failure already reaches the caller's 'error' callback. Keep warnings.
void dns_log(int severity, const char* msg) {
  if (severity >= EVENT_LOG_WARN) std::fprintf(stderr, "lnet: evdns: %s\n", msg);
}

}  // namespace

char* context_read_buffer(Context* ctx) noexcept {
  if (!ctx->read_buf) ctx->read_buf = static_cast<char*>(std::malloc(kReadBufferSize));
  return ctx->read_buf;
}

evdns_base* context_dns(Context* ctx) noexcept {
  if (ctx->dns) return ctx->dns;
  evdns_set_log_fn(dns_log);  // libevent's only hook is process-wide; idempotent
  // LNET_RESOLV_CONF names another resolv.conf (sandboxes, tests).
  const char* conf = std::getenv("LNET_RESOLV_CONF");
  if (conf && *conf) {
    ctx->dns = evdns_base_new(ctx->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (ctx->dns) evdns_base_resolv_conf_parse(ctx->dns, DNS_OPTIONS_ALL, conf);
    return ctx->dns;
  }
  // Inactive, the resolver must not keep the loop from finishing.
  ctx->dns = evdns_base_new(ctx->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  // No usable resolv.conf: still resolve names from /etc/hosts.
  if (!ctx->dns) ctx->dns = evdns_base_new(ctx->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  return ctx->dns;
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

int fire_body(lua_State* L) {
  Call* call = static_cast<Call*>(lua_touserdata(L, 1));
  push_anchored(L, call->key);
  int type = lua_type(L, -1) == LUA_TUSERDATA ? lua_getiuservalue(L, -1, call->slot) : LUA_TNIL;
  if (type != LUA_TFUNCTION) {
    if (call->report && call->text) report_unhandled(call->text, call->len);
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

void fire(Context* ctx, Call* call) noexcept { dispatch(ctx, fire_body, call); }

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

}  // namespace lnet
