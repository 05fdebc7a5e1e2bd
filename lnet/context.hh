// Per-lua_State state: the event base, the resolver, the anchors that keep
// active objects alive, the queue of work deferred to the loop, and the
// protected dispatcher through which libevent calls Lua.
#pragma once

#include <lua.hpp>

#include <sys/time.h>

#include <cstdint>

struct event;
struct event_base;

#define LNET_EXPORT __attribute__((visibility("default")))

namespace lnet {

struct Context;
struct Resolver;
struct TlsShared;

// Work that must run from the loop, never inside the Lua call that caused it
// (SPEC Part C). An object embeds one node; queueing it twice is a no-op.
struct Deferred {
  Deferred* prev = nullptr;
  Deferred* next = nullptr;
  void (*run)(Deferred*) = nullptr;
  void* owner = nullptr;  // the object run() works on
  bool queued() const noexcept { return next != nullptr; }
};

// A growable array of ints (malloc'd: the Context has no destructor).
struct SlotList {
  int* items = nullptr;
  size_t n = 0;
  size_t cap = 0;
};
// Appends v; false when out of memory.
bool slot_push(SlotList* l, int v) noexcept;
void slot_list_free(SlotList* l) noexcept;

struct Context {
  event_base* base = nullptr;
  Resolver* resolver = nullptr;  // name lookups (resolver.cc), made on the first one
  event* defer_ev = nullptr;   // activated while the deferred queue is not empty
  Deferred defer_head;         // sentinel of a circular list
  lua_State* L = nullptr;      // the thread running net.loop(); outside it host_L
  lua_State* host_L = nullptr; // lnet.h: a thread of lnet's for callbacks run by the host's loop
  bool own_base = true;        // false: the host's base (lnet_use_event_base), never freed here
  long anchored = 0;           // objects kept alive because they are active
  bool running = false;
  bool stop_requested = false;
  bool error_pending = false;  // a callback raised: the error is on L's stack top
  bool loop_ran = false;       // net.loop() was called at least once
  bool closing = false;        // lua_close finalized an anchored object (objects.cc)
  bool closed = false;         // finalized by lua_close: every function refuses (objects.hh)
  char* read_buf = nullptr;    // every connection reads into it (made on first use)
  int64_t timer_clock_us = 0;  // last timer start time: strictly increasing (timer.cc)
  TlsShared* tls = nullptr;    // the TLS BIO method and default client context (tls.hh)
  // Network errors written to stderr for want of an `error` callback
  // (fire() with Call::report); net.unhandled_errors() returns it.
  lua_Integer unhandled_errors = 0;
  // net.co's table of parked coroutines (thread -> token) and its function
  // finished(thread, ok, result): registry references (co.cc).
  int co_waiting = LUA_NOREF;
  int co_finished = LUA_NOREF;
  // net.co's coroutines parked on a connection: conn.waiter.slot -> thread
  // (co.cc). Slots of ended connections wait in co_dead until a Lua call
  // clears them, then in co_free for reuse; co_slots were ever handed out.
  int co_parked = LUA_NOREF;
  int co_slots = 0;
  // The tokens of waits made by the cosocket methods in C (co.cc): negative,
  // so they never equal one of co.lua's (positive) tokens.
  lua_Integer co_tokens = 0;
  SlotList co_dead;
  SlotList co_free;
  // Metatable addresses, for objects.hh's check_udata.
  const void* mt_server = nullptr;
  const void* mt_socket = nullptr;
  const void* mt_co_buffer = nullptr;
};

// A callback raised or called net.stop(): no further callback of any kind
// runs until net.loop() is called again. Whoever would fire one keeps its
// work (deferred, or in the socket) for the next loop.
inline bool halted(const Context* ctx) noexcept { return ctx->error_pending || ctx->stop_requested; }

// The size of Context::read_buf: the most one read() takes.
constexpr size_t kReadBufferSize = 64 * 1024;
// The read buffer, made on first use; null when out of memory.
char* context_read_buffer(Context* ctx) noexcept;

// The context is the upvalue 1 of every function of the module.
inline Context* upvalue_context(lua_State* L) {
  return static_cast<Context*>(lua_touserdata(L, lua_upvalueindex(1)));
}

// Creates the context on first use and pushes its userdata. Raises on
// memory errors (call it only where raising is allowed).
Context* context_push(lua_State* L);

// Anchors: key is the object's address, value its userdata (at idx).
// anchor raises on memory errors; unanchor never raises (clearing an
// existing key does not allocate).
void anchor(lua_State* L, Context* ctx, const void* key, int idx);
void unanchor(lua_State* L, Context* ctx, const void* key) noexcept;
// Pushes the anchored userdata for key (nil if none). Never raises.
void push_anchored(lua_State* L, const void* key) noexcept;

void defer(Context* ctx, Deferred* d) noexcept;
void undefer(Deferred* d) noexcept;

// Runs body(L) under lua_pcall with arg as its only (light userdata)
// argument. An error is left on the stack, the loop is broken and
// net.loop() raises it. Only valid while the loop runs (ctx->L set).
void dispatch(Context* ctx, lua_CFunction body, void* arg) noexcept;

// A Lua callback to fire: the function in uservalue `slot` of the anchored
// userdata `key`, called with (id,) (text,) (code).
struct Call {
  const void* key = nullptr;
  int slot = 0;
  lua_Integer id = 0;           // pushed first when not 0
  const char* text = nullptr;   // pushed as a string when not null
  size_t len = 0;
  const char* code = nullptr;   // a stable error code, pushed last when not null
                                // (after nil when text is null)
  bool report = false;          // no callback: write text to stderr
};
void fire(Context* ctx, Call* call) noexcept;

// Writes "lnet: msg" to stderr: failures nobody listens for are not lost.
void report_unhandled(const char* msg, size_t len) noexcept;

// Milliseconds and microseconds on the (precise) monotonic clock.
int64_t now_ms() noexcept;
int64_t now_us() noexcept;

// A delay in milliseconds as libevent wants it.
inline timeval ms_timeval(int64_t ms) noexcept {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

}  // namespace lnet
