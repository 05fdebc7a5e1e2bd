// luaopen_net_co and luaopen_net_ngx: the coroutine layer and the OpenResty
// compatibility layer. Both are Lua (co.lua, ngx.lua) compiled into net.so,
// so that Lua's all-in-one loader finds them wherever net.so is. Their C
// parts live here: the input buffer of a cosocket (the framing scanner
// behind receive("*l") and receiveuntil, and the state of its reads), the
// parking of a waiting coroutine on its connection, the hot cosocket
// methods (receive, receiveany, send) and a few helpers for net.ngx.
#include "conn.hh"
#include "context.hh"
#include "framing.hh"
#include "objects.hh"
#include "tls.hh"

#include <cstring>
#include <ctime>
#include <new>

namespace lnet {

extern const char kCoLua[];
extern const size_t kCoLua_len;
extern const char kNgxLua[];
extern const size_t kNgxLua_len;

// A cosocket's received bytes, and the state of its record that the C
// methods use (co.lua keeps the rest in the record's table). User values:
// 1 the coroutine reading (while one waits), 2 the net object (server or
// socket) of the connection, 3 the record.
struct CoBuffer {
  FrameBuffer fb;
  char delim[kMaxDelimiter];  // the last receiveuntil delimiter (for the scan memory)
  size_t delim_len = 0;
  size_t max_input = 0;       // the record's max_input and max_line
  size_t max_line = 0;
  bool closed = false;        // the record's end was seen (co.lua: c.closed)
  bool reading = false;       // a coroutine waits for input (user value 1)
  bool has_deadline = false;  // ... until rdeadline (net.now() ms)
  bool has_timer = false;     // the read timer is armed, for timer_at
  lua_Integer rtoken = 0;     // the reader's token (< 0: a C method's wait, valid while reading)
  lua_Integer wid = 0;        // the server's id of the connection; 0: a socket
  lua_Number rdeadline = 0;
  lua_Number timer_at = 0;
  Conn* conn = nullptr;       // the open connection, once found (co_forget unlinks it)
};

namespace {

const char kBufferType[] = "net.co.Buffer";

// The methods have the context as upvalue 1 (for the cached type check).
CoBuffer* check_buffer(lua_State* L) {
  return static_cast<CoBuffer*>(check_udata(L, 1, kBufferType, &upvalue_context(L)->mt_co_buffer));
}

// Pushes n bytes from the front and consumes them.
void push_take(lua_State* L, CoBuffer* b, size_t n) {
  lua_pushlstring(L, b->fb.begin(), n);
  fb_consume(&b->fb, n);
}

// new_buffer(max_input, max_line) -> buffer
int buffer_new(lua_State* L) {
  lua_Integer max_input = luaL_checkinteger(L, 1);
  lua_Integer max_line = luaL_checkinteger(L, 2);
  CoBuffer* b = new (lua_newuserdatauv(L, sizeof(CoBuffer), 3)) CoBuffer();
  b->max_input = max_input > 0 ? static_cast<size_t>(max_input) : 0;
  b->max_line = max_line > 0 ? static_cast<size_t>(max_line) : 0;
  luaL_setmetatable(L, kBufferType);
  return 1;
}

void unlink(CoBuffer* b) {
  if (b->conn != nullptr) b->conn->waiter.core = nullptr;
  b->conn = nullptr;
}

int buffer_gc(lua_State* L) {
  CoBuffer* b = static_cast<CoBuffer*>(luaL_checkudata(L, 1, kBufferType));
  unlink(b);
  fb_clear(&b->fb);
  return 0;
}

// b:bind(net object, id | false, record): the connection it reads.
int buffer_bind(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  lua_settop(L, 4);
  b->wid = lua_isinteger(L, 3) ? lua_tointeger(L, 3) : 0;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, 2);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, 1, 3);
  unlink(b);
  return 0;
}

// b:close(): the record's end was seen.
int buffer_close(lua_State* L) {
  check_buffer(L)->closed = true;
  return 0;
}

// b:reader() -> thread, token, deadline | nothing: who waits for input (a
// thread closed by co.kill waits no more).
int buffer_reader(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  if (!b->reading) return 0;
  lua_getiuservalue(L, 1, 1);
  lua_State* T = lua_tothread(L, -1);
  if (T == nullptr || lua_status(T) != LUA_YIELD) {
    b->reading = false;
    return 0;
  }
  lua_pushinteger(L, b->rtoken);
  if (b->has_deadline) lua_pushnumber(L, b->rdeadline); else lua_pushboolean(L, 0);
  return 3;
}

// b:set_reader(thread, token, deadline | false) | b:set_reader(false)
int buffer_set_reader(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  lua_settop(L, 4);
  b->reading = lua_type(L, 2) == LUA_TTHREAD;
  b->rtoken = b->reading ? luaL_checkinteger(L, 3) : 0;
  b->has_deadline = b->reading && lua_type(L, 4) == LUA_TNUMBER;
  b->rdeadline = b->has_deadline ? lua_tonumber(L, 4) : 0;
  if (b->reading) lua_pushvalue(L, 2); else lua_pushnil(L);
  lua_setiuservalue(L, 1, 1);
  return 0;
}

// b:timer(at | false): the read timer is armed for at (net.now() ms), or not.
int buffer_timer(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  b->has_timer = lua_type(L, 2) == LUA_TNUMBER;
  b->timer_at = b->has_timer ? lua_tonumber(L, 2) : 0;
  return 0;
}

// b:push(s) -> size; false when out of memory.
int buffer_push(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  size_t len = 0;
  const char* s = luaL_checklstring(L, 2, &len);
  if (!fb_append(&b->fb, s, len)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushinteger(L, static_cast<lua_Integer>(b->fb.size()));
  return 1;
}

int buffer_size(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_buffer(L)->fb.size()));
  return 1;
}

// b:line(max) -> line without "\n" or "\r\n"; nil: no whole line yet;
// false: the line is longer than max.
int buffer_line(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  FrameSpec spec;
  spec.kind = FrameSpec::Line;
  spec.max_message = static_cast<size_t>(luaL_checkinteger(L, 2));
  const char* msg = nullptr;
  size_t len = 0;
  switch (fb_next(&b->fb, spec, &msg, &len)) {
    case FrameStatus::Message:
      lua_pushlstring(L, msg, len);
      break;
    case FrameStatus::More:
      lua_pushnil(L);
      break;
    default:
      lua_pushboolean(L, 0);
      break;
  }
  return 1;
}

// b:take(n) -> n bytes, or nil when fewer are held.
int buffer_take(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0 || static_cast<size_t>(n) > b->fb.size()) return 0;
  push_take(L, b, static_cast<size_t>(n));
  return 1;
}

// b:takeany(max) -> 1..max bytes and the bytes left, or nil when empty.
int buffer_takeany(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  lua_Integer max = luaL_checkinteger(L, 2);
  size_t n = b->fb.size();
  if (n == 0) return 0;
  if (max > 0 && static_cast<size_t>(max) < n) n = static_cast<size_t>(max);
  push_take(L, b, n);
  lua_pushinteger(L, static_cast<lua_Integer>(b->fb.size()));
  return 2;
}

// b:all() -> every byte held ("" when empty).
int buffer_all(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  push_take(L, b, b->fb.size());
  return 1;
}

// b:upto(delim, inclusive[, size]) -> data, found
//   Without size: the bytes before the delimiter (with it when inclusive)
//   and true, the delimiter consumed; nil while it has not arrived.
//   With size: at most size bytes known to come before the delimiter,
//   found = false; or the rest before it (and the delimiter consumed),
//   found = true; nil when neither is known yet.
int buffer_upto(lua_State* L) {
  CoBuffer* b = check_buffer(L);
  size_t dlen = 0;
  const char* d = luaL_checklstring(L, 2, &dlen);
  bool inclusive = lua_toboolean(L, 3);
  lua_Integer size = luaL_optinteger(L, 4, 0);
  const char* key = d;
  if (dlen <= kMaxDelimiter) {
    if (dlen != b->delim_len || std::memcmp(b->delim, d, dlen) != 0) {
      std::memcpy(b->delim, d, dlen);
      b->delim_len = dlen;
      b->fb.scanned = 0;
    }
    key = b->delim;  // a stable address: the scan goes on where it stopped
  } else {
    b->fb.scan_delim = nullptr;  // no memory for long delimiters
  }
  size_t pos = 0;
  bool found = fb_find(&b->fb, key, dlen, &pos);
  if (size <= 0) {
    if (!found) return 0;
    lua_pushlstring(L, b->fb.begin(), inclusive ? pos + dlen : pos);
    fb_consume(&b->fb, pos + dlen);
    lua_pushboolean(L, 1);
    return 2;
  }
  size_t want = static_cast<size_t>(size);
  if (found && pos <= want) {
    lua_pushlstring(L, b->fb.begin(), inclusive ? pos + dlen : pos);
    fb_consume(&b->fb, pos + dlen);
    lua_pushboolean(L, 1);
    return 2;
  }
  size_t held = b->fb.size();
  size_t safe = found ? pos : (held >= dlen ? held - dlen + 1 : 0);
  if (safe < want) return 0;
  push_take(L, b, want);
  lua_pushboolean(L, 0);
  return 2;
}

const luaL_Reg kBufferMethods[] = {
    {"push", buffer_push}, {"size", buffer_size}, {"line", buffer_line},
    {"take", buffer_take}, {"takeany", buffer_takeany}, {"all", buffer_all},
    {"upto", buffer_upto}, {"bind", buffer_bind}, {"close", buffer_close},
    {"reader", buffer_reader}, {"set_reader", buffer_set_reader}, {"timer", buffer_timer},
    {nullptr, nullptr}};

// --- coroutines parked on a connection -------------------------------------
// A coroutine waiting for input parks itself on its connection with
// wait_data; the read then resumes it straight from C (co_deliver) instead
// of through the 'data' callback and coroutine.resume. net.co stays the
// judge of who waits: a parked coroutine is resumed only while its token
// is valid (see deliver_body): a timeout, a close or co.kill that woke it
// first leaves a stale parking, dropped at the next data.

// The record's open connection (CoBuffer::conn, found once and linked).
// Needs the context as upvalue 1 (server_conn, socket_conn); idx: b's index.
Conn* core_conn(lua_State* L, CoBuffer* b, int idx) {
  if (b->conn != nullptr) return b->conn->state == ConnState::Open ? b->conn : nullptr;
  lua_getiuservalue(L, idx, 2);
  Conn* c = b->wid != 0 ? server_conn(L, -1, b->wid) : socket_conn(L, -1);
  lua_pop(L, 1);
  if (c != nullptr) {
    if (c->waiter.core != nullptr) c->waiter.core->conn = nullptr;
    c->waiter.core = b;
    b->conn = c;
  }
  return c;
}

// co_setup(waiting, finished): where net.co keeps its waiting threads, and
// the function that ends a thread (finished(thread, ok, result)).
int co_setup(lua_State* L) {
  Context* ctx = upvalue_context(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (ctx->co_parked == LUA_NOREF) {  // kept across a second require of net.co
    lua_newtable(L);
    ctx->co_parked = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  int finished = luaL_ref(L, LUA_REGISTRYINDEX);  // pops the top: argument 2
  int waiting = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->co_waiting);
  luaL_unref(L, LUA_REGISTRYINDEX, ctx->co_finished);
  ctx->co_waiting = waiting;
  ctx->co_finished = finished;
  return 0;
}

// Parks the running coroutine on c (see CoWaiter): co_deliver resumes it
// with the connection's next data while its token is valid.
void park(lua_State* L, Context* ctx, Conn* c, lua_Integer token, size_t direct, CoBuffer* buffer,
          size_t max_input) {
  CoWaiter& w = c->waiter;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_parked);
  // Slots of ended connections: their threads let go, then reusable.
  while (ctx->co_dead.n > 0) {
    int dead = ctx->co_dead.items[--ctx->co_dead.n];
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, dead);
    if (!slot_push(&ctx->co_free, dead)) break;  // out of memory: that slot is not reused
  }
  if (w.slot == 0) {
    if (ctx->co_free.n > 0) {
      w.slot = ctx->co_free.items[--ctx->co_free.n];
    } else {
      lua_pushboolean(L, 0);  // grows the table here, where raising is allowed
      lua_rawseti(L, -2, ctx->co_slots + 1);
      w.slot = ++ctx->co_slots;
    }
  }
  if (lua_pushthread(L)) luaL_error(L, "net.co: wait_data outside a coroutine");
  lua_rawseti(L, -2, w.slot);
  lua_pop(L, 1);
  w.parked = true;
  w.token = token;
  w.direct = direct;
  w.buffer = direct > 0 ? nullptr : buffer;  // a direct wait never touches the buffer
  w.max_input = max_input;
}

// wait_data(buffer, token): yields the running coroutine until the next
// data of the buffer's connection, or until net.co wakes it (co.lua's own
// waits; the C methods park in read_on). Resumed by co_deliver with nothing
// once the data is in the buffer (within its max_input). Without an open
// connection it yields all the same (net.co wakes it).
int co_wait(lua_State* L) {
  Context* ctx = upvalue_context(L);
  CoBuffer* b = static_cast<CoBuffer*>(test_udata(L, 1, kBufferType, &ctx->mt_co_buffer));
  Conn* c = b != nullptr ? core_conn(L, b, 1) : nullptr;
  if (c != nullptr && ctx->co_parked != LUA_NOREF) {
    // net.co's own call: an integer, no argument errors.
    park(L, ctx, c, lua_tointegerx(L, 2, nullptr), 0, b, b->max_input);
  }
  return lua_yield(L, 0);
}

struct Delivery {
  Conn* c;
  const char* data;
  size_t len;
  bool taken;
};

// Takes the parked thread out of its place: pushes it (or nil) on L.
void unpark(lua_State* L, Context* ctx, CoWaiter& w) {
  w.parked = false;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_parked);
  lua_rawgeti(L, -1, w.slot);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -3, w.slot);
  lua_remove(L, -2);
}

int deliver_body(lua_State* L) {
  Delivery* d = static_cast<Delivery*>(lua_touserdata(L, 1));
  Context* ctx = d->c->ctx;
  CoWaiter& w = d->c->waiter;
  unpark(L, ctx, w);  // 2: the thread
  lua_State* T = lua_tothread(L, 2);
  if (T == nullptr || lua_status(T) != LUA_YIELD || !lua_checkstack(T, 3)) return 0;
  if (w.token < 0) {  // a read of the C methods: valid while its buffer says so
    if (w.core == nullptr || !w.core->reading || w.core->rtoken != w.token) return 0;
  } else {  // co.lua's wait_data: while waiting[thread] holds its token
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_waiting);  // 3
    lua_pushvalue(L, 2);
    int isnum = 0;
    if (lua_rawget(L, 3) != LUA_TNUMBER || lua_tointegerx(L, 4, &isnum) != w.token || !isnum) return 0;
  }
  int nargs = 0;
  if (w.direct > 0) {
    lua_pushlstring(L, d->data, d->len);  // raises here (L), never in T
    lua_pushnil(T);
    lua_xmove(L, T, 1);
    nargs = 2;
  } else {
    CoBuffer* b = w.buffer;
    if (b->fb.size() + d->len > w.max_input || !fb_append(&b->fb, d->data, d->len)) return 0;
  }
  d->taken = true;
  int nres = 0;
  int status = lua_resume(T, L, nargs, &nres);
  if (status == LUA_YIELD) {
    lua_pop(T, nres);
    return 0;
  }
  // The coroutine ended (returned its end mark, or raised): net.co's
  // finished(thread, ok, result), as after coroutine.resume.
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_finished);
  lua_pushvalue(L, 2);
  lua_pushboolean(L, status == LUA_OK);
  if (lua_gettop(T) > 0) lua_xmove(T, L, 1); else lua_pushnil(L);
  lua_call(L, 3, 0);
  return 0;
}

}  // namespace

bool co_deliver(Conn* c, const char* data, size_t len) noexcept {
  const CoWaiter& w = c->waiter;
  if (!w.parked || (w.direct > 0 && len > w.direct) || (w.direct == 0 && !w.buffer)) return false;
  Delivery d{c, data, len, false};
  dispatch(c->ctx, deliver_body, &d);
  return d.taken;
}

// No Lua here (a connection may end inside any call): the slot is cleared
// by the next wait_data.
void co_forget(Conn* c) noexcept {
  CoWaiter& w = c->waiter;
  if (w.core != nullptr) w.core->conn = nullptr;
  if (w.slot != 0 && c->ctx && !c->ctx->closed) slot_push(&c->ctx->co_dead, w.slot);
  w = CoWaiter();
}

namespace {

// Writes v in decimal ending at end; returns where it starts.
char* format_integer(lua_Integer v, char* end) {
  char* p = end;
  lua_Unsigned u = v < 0 ? 0 - static_cast<lua_Unsigned>(v) : static_cast<lua_Unsigned>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  return p;
}

// concat(array) -> string | nil: the strings and numbers of a flat array
// joined (send() of a protocol command, as lua-resty-redis builds them);
// nil when an element is neither (the caller walks it in Lua).
int flat_concat(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 1));
  luaL_Buffer out;
  luaL_buffinit(L, &out);
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (t == LUA_TSTRING) {
      luaL_addvalue(&out);  // the buffer's own way with a value on the stack
    } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
      lua_Integer v = lua_tointeger(L, -1);
      lua_pop(L, 1);  // balanced before the buffer is used again
      char digits[24];
      char* e = digits + sizeof digits;
      char* p = format_integer(v, e);
      luaL_addlstring(&out, p, static_cast<size_t>(e - p));
    } else if (t == LUA_TNUMBER) {
      luaL_tolstring(L, -1, nullptr);  // a float, as tostring() writes it
      lua_remove(L, -2);
      luaL_addvalue(&out);
    } else {
      return 0;  // the buffer is dropped with the stack
    }
  }
  luaL_pushresult(&out);
  return 1;
}

// A cosocket's send in one C call, for a string of up to kSendChunk bytes
// or a flat array (at most 32 strings and integers, up to kFlatMax bytes:
// lua-resty-redis's commands), written without making a Lua string of it.
// Pushes the byte count and send()'s results (true / false / nil, message,
// code) and returns their number; 0 when it does not apply (other data: the
// caller takes net.co's general path).
constexpr size_t kSendChunk = 256 << 10;  // co.lua's SEND_CHUNK
constexpr size_t kFlatMax = 4096;

int send_flat(lua_State* L, Conn* c, int data) {
  if (lua_type(L, data) == LUA_TSTRING) {
    size_t len = 0;
    const char* s = lua_tolstring(L, data, &len);
    if (len > kSendChunk) return 0;
    lua_pushinteger(L, static_cast<lua_Integer>(len));
    return 1 + push_send_result(L, conn_send(c, s, len));
  }
  if (lua_type(L, data) != LUA_TTABLE) return 0;
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, data));
  if (n > 32 || !lua_checkstack(L, static_cast<int>(n) + 4)) return 0;
  // The pieces stay on the stack until copied (one settop for all).
  int top = lua_gettop(L);
  char buf[kFlatMax];
  size_t len = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, data, i);
    const char* piece;
    size_t plen;
    char digits[24];
    if (t == LUA_TSTRING) {
      piece = lua_tolstring(L, -1, &plen);
    } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
      piece = format_integer(lua_tointeger(L, -1), digits + sizeof digits);
      plen = static_cast<size_t>(digits + sizeof digits - piece);
    } else {
      lua_settop(L, top);
      return 0;
    }
    if (plen > kFlatMax - len) {
      lua_settop(L, top);
      return 0;
    }
    std::memcpy(buf + len, piece, plen);
    len += plen;
  }
  lua_settop(L, top);
  lua_pushinteger(L, static_cast<lua_Integer>(len));
  return 1 + push_send_result(L, conn_send(c, buf, len));
}

// --- a cosocket's hot methods -------------------------------------------------
// receive (a line or a byte count), receiveany and send run in C. A
// cosocket holds its record's buffer at self[1] (false once detached), and
// the buffer the record's state these methods need (CoBuffer); the common
// case (data held, or a wait parked on the connection and resumed by
// co_deliver) runs no Lua. Everything else calls net.co's Lua helpers
// (upvalue 2), which also own the timers, pools and ends. Upvalue 1: the
// context.

// The stack of a read: the method's arguments, then what it works on.
constexpr int kSelf = 1;      // the cosocket (a table)
constexpr int kArg = 2;       // the pattern, the count or receiveany's max
constexpr int kBuf = 3;       // self[1]: its record's buffer
constexpr int kDeadline = 4;  // nil: not known yet; false: none; else net.now() ms

enum class Want : lua_KContext { Line, Count, Any };

// Pushes net.co's helpers[name].
void push_helper(lua_State* L, const char* name) { lua_getfield(L, lua_upvalueindex(2), name); }

// Calls helpers[name](record) (consumed, unpause); no yield.
void record_helper(lua_State* L, const char* name) {
  push_helper(L, name);
  lua_getiuservalue(L, kBuf, 3);
  lua_call(L, 1, 0);
}

// A continuation that returns what a Lua helper called with lua_callk
// left on the stack above index base.
int results_above(lua_State* L, int, lua_KContext base) { return lua_gettop(L) - static_cast<int>(base); }

// Calls helpers[name] with the method's own arguments (all of the stack),
// as the method: net.co's Lua path, which may wait.
int lua_path(lua_State* L, const char* name) {
  push_helper(L, name);
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, results_above);
  return lua_gettop(L);
}

// Returns helpers[name](self, record, value on top): a read that ended
// (the record's end) or failed.
int finish_with(lua_State* L, const char* name) {
  int base = lua_gettop(L) - 1;
  push_helper(L, name);
  lua_pushvalue(L, kSelf);
  lua_getiuservalue(L, kBuf, 3);
  lua_rotate(L, base + 1, 3);
  lua_call(L, 3, LUA_MULTRET);
  return lua_gettop(L) - base;
}

// nil, "timeout" and, but for receiveany, the partial data.
int timed_out(lua_State* L, Want want, CoBuffer* b) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  if (want == Want::Any) return 2;
  push_take(L, b, b->fb.size());
  return 3;
}

int read_on(lua_State* L, Want want);

// Resumed: by co_deliver (data, or nothing: it is in the buffer), by
// net.co's on_data (nothing), or by a wake-up ("timeout", "closed").
int read_resumed(lua_State* L, int, lua_KContext k) {
  Want want = static_cast<Want>(k);
  CoBuffer* b = static_cast<CoBuffer*>(lua_touserdata(L, kBuf));
  b->reading = false;  // (the thread stays in user value 1 until the next wait)
  b->has_deadline = false;
  int top = lua_gettop(L);
  size_t len = 0;
  const char* r = top > kDeadline ? lua_tolstring(L, kDeadline + 1, &len) : nullptr;
  if (r != nullptr && len == 7 && std::memcmp(r, "timeout", 7) == 0) return timed_out(L, want, b);
  if (want == Want::Any && top >= kDeadline + 2 && lua_type(L, kDeadline + 2) == LUA_TSTRING) {
    lua_pushvalue(L, kDeadline + 2);  // handed over directly (never more than max)
    return 1;
  }
  lua_settop(L, kDeadline);
  return read_on(L, want);
}

// The deadline of this read (kDeadline): net.now() + self.read_timeout.
void set_deadline(lua_State* L) {
  lua_settop(L, kBuf);
  lua_pushliteral(L, "read_timeout");
  if (lua_rawget(L, kSelf) != LUA_TNUMBER) {
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
    return;
  }
  lua_Integer now = static_cast<lua_Integer>(now_ms());
  if (lua_isinteger(L, -1)) {
    lua_pushinteger(L, now + lua_tointeger(L, -1));
  } else {
    lua_pushnumber(L, static_cast<lua_Number>(now) + lua_tonumber(L, -1));
  }
  lua_remove(L, -2);
}

// A whole line, the count or some data from the buffer; else the end, or a
// wait for more.
int read_on(lua_State* L, Want want) {
  Context* ctx = upvalue_context(L);
  CoBuffer* b = static_cast<CoBuffer*>(lua_touserdata(L, kBuf));
  size_t held = b->fb.size();
  bool got = false;
  if (want == Want::Line) {
    FrameSpec spec;
    spec.kind = FrameSpec::Line;
    spec.max_message = b->max_line;
    const char* msg = nullptr;
    size_t len = 0;
    FrameStatus st = fb_next(&b->fb, spec, &msg, &len);
    if (st == FrameStatus::Message) {
      lua_pushlstring(L, msg, len);
      got = true;
    } else if (st != FrameStatus::More) {
      lua_pushliteral(L, "line too long");
      return finish_with(L, "failed");
    }
  } else {
    size_t n = static_cast<size_t>(lua_tointeger(L, kArg));  // a count, or receiveany's max
    if (want == Want::Count ? n <= held : held > 0) {
      push_take(L, b, want == Want::Any && held < n ? held : n);
      got = true;
    }
  }
  Conn* c = b->closed ? nullptr : core_conn(L, b, kBuf);
  if (got) {
    if (c == nullptr || c->paused) record_helper(L, "consumed");  // reading may resume
    return 1;
  }
  if (b->closed) {
    if (want == Want::Any) lua_pushnil(L); else push_take(L, b, held);
    return finish_with(L, "ended");
  }
  // Wait for more, until the deadline.
  if (!lua_isyieldable(L)) {
    bool main = lua_pushthread(L);
    return luaL_error(L, main ? "net.co: this call waits, so it must run in a coroutine (co.spawn)"
                              : "net.co: this call waits, and cannot here (attempt to yield across a C-call boundary)");
  }
  if (lua_isnil(L, kDeadline)) set_deadline(L);
  bool has_deadline = lua_toboolean(L, kDeadline);
  lua_Number deadline = has_deadline ? lua_tonumber(L, kDeadline) : 0;
  // A timer armed for this deadline or earlier stays (see co.lua's
  // read_timer_fired); else net.co arms one.
  if (has_deadline && !(b->has_timer && b->timer_at <= deadline)) {
    push_helper(L, "arm");
    lua_getiuservalue(L, kBuf, 3);
    lua_pushvalue(L, kDeadline);
    lua_call(L, 2, 1);
    bool in_time = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!in_time) return timed_out(L, want, b);
    c = core_conn(L, b, kBuf);  // (net.co's Lua ran)
  }
  if (c == nullptr || c->paused) {  // the reader asks for more: read past the limit
    record_helper(L, "unpause");
    c = core_conn(L, b, kBuf);
  }
  // Its token is negative (co.lua's are positive) and valid while the
  // buffer holds it: co.lua's wake_reader and co_deliver check it there.
  lua_Integer token = --ctx->co_tokens;
  lua_pushthread(L);
  lua_setiuservalue(L, kBuf, 1);
  b->reading = true;
  b->rtoken = token;
  b->has_deadline = has_deadline;
  b->rdeadline = deadline;
  // Parked on the connection: the read resumes it from C with the data.
  // Without one (it ends), net.co's wake-up comes.
  if (c != nullptr && ctx->co_parked != LUA_NOREF) {
    size_t direct = want == Want::Any ? static_cast<size_t>(lua_tointeger(L, kArg)) : 0;
    park(L, ctx, c, token, direct, b, b->max_input);
  }
  lua_settop(L, kDeadline);
  return lua_yieldk(L, 0, static_cast<lua_KContext>(want), read_resumed);
}

// Runs the read on self[1]; nil, "closed" for a detached cosocket; net.co's
// Lua path for anything else (which raises for what is not a cosocket).
int read_start(lua_State* L, Want want, const char* lua_name) {
  lua_settop(L, kArg);
  if (lua_type(L, kSelf) == LUA_TTABLE) {
    int t = lua_rawgeti(L, kSelf, 1);
    if (test_udata(L, kBuf, kBufferType, &upvalue_context(L)->mt_co_buffer) != nullptr) {
      lua_pushnil(L);  // kDeadline: known when the read waits
      return read_on(L, want);
    }
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, kBuf)) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    lua_settop(L, kArg);
  }
  return lua_path(L, lua_name);
}

// receive([pattern]): a line and a byte count here, the rest in co.lua.
int co_receive(lua_State* L) {
  int t = lua_type(L, kArg);
  if (t == LUA_TSTRING) {
    size_t len = 0;
    const char* p = lua_tolstring(L, kArg, &len);
    if ((len == 2 && p[0] == '*' && p[1] == 'l') || (len == 1 && p[0] == 'l')) return read_start(L, Want::Line, "receive");
  } else if (t <= LUA_TNIL) {
    return read_start(L, Want::Line, "receive");
  } else if (lua_isinteger(L, kArg) && lua_tointeger(L, kArg) >= 0) {
    return read_start(L, Want::Count, "receive");
  }
  return lua_path(L, "receive");
}

// receiveany(max): whatever has arrived, at most max bytes.
int co_receiveany(lua_State* L) {
  if (!lua_isinteger(L, kArg) || lua_tointeger(L, kArg) <= 0) {
    return luaL_error(L, "bad argument #1 to 'receiveany' (positive integer expected)");
  }
  return read_start(L, Want::Any, "receiveany");
}

// send(data) -> bytes: a string or a small flat array here (send_flat);
// waiting, and everything else, in co.lua.
int co_send(lua_State* L) {
  lua_settop(L, 2);
  CoBuffer* b = nullptr;
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_rawgeti(L, 1, 1);
    b = static_cast<CoBuffer*>(test_udata(L, 3, kBufferType, &upvalue_context(L)->mt_co_buffer));
  }
  if (b == nullptr || b->closed) {
    lua_settop(L, 2);
    return lua_path(L, "send");  // nil, "closed" (or its error)
  }
  Conn* c = core_conn(L, b, 3);
  int n = c != nullptr ? send_flat(L, c, 2) : 0;
  if (n == 0) {
    lua_settop(L, 2);
    return lua_path(L, "send");
  }
  if (lua_toboolean(L, 5)) {  // written, or queued under the high-water mark
    lua_settop(L, 4);
    return 1;
  }
  // Above the high-water mark, or failed: send_wait(self, record, bytes,
  // send()'s results), which may wait.
  int base = 3;
  push_helper(L, "send_wait");
  lua_pushvalue(L, 1);
  lua_getiuservalue(L, 3, 3);
  lua_rotate(L, base + 1, 3);  // above the buffer: the function, self, the record
  lua_callk(L, lua_gettop(L) - base - 1, LUA_MULTRET, base, results_above);
  return lua_gettop(L) - base;
}

// methods(helpers) -> {receive, receiveany, send}: the C methods, over
// net.co's Lua helpers for everything else.
int co_methods(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const luaL_Reg methods[] = {
      {"receive", co_receive}, {"receiveany", co_receiveany}, {"send", co_send}, {nullptr, nullptr}};
  lua_newtable(L);
  for (const luaL_Reg* m = methods; m->name != nullptr; m++) {
    context_push(L);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, m->func, 2);
    lua_setfield(L, -2, m->name);
  }
  return 1;
}

// --- helpers for net.ngx ----------------------------------------------------

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int encode_base64(lua_State* L) {
  size_t n = 0;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(luaL_checklstring(L, 1, &n));
  bool no_padding = lua_toboolean(L, 2);
  luaL_Buffer out;
  luaL_buffinit(L, &out);
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = s[i] << 16 | s[i + 1] << 8 | s[i + 2];
    char q[4] = {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
    luaL_addlstring(&out, q, 4);
  }
  if (i < n) {
    unsigned v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0);
    char q[4] = {kB64[v >> 18], kB64[(v >> 12) & 63], i + 1 < n ? kB64[(v >> 6) & 63] : '=', '='};
    size_t keep = no_padding ? (i + 1 < n ? 3 : 2) : 4;
    luaL_addlstring(&out, q, keep);
  }
  luaL_pushresult(&out);
  return 1;
}

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// nil for input that is not base64 (as ngx.decode_base64).
int decode_base64(lua_State* L) {
  size_t n = 0;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(luaL_checklstring(L, 1, &n));
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return 0;
  luaL_Buffer out;
  luaL_buffinit(L, &out);
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value(s[i]);
    if (v < 0) return 0;  // the buffer is dropped with the stack
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      luaL_addchar(&out, static_cast<char>((acc >> bits) & 0xff));
    }
  }
  luaL_pushresult(&out);
  return 1;
}

// Wall-clock seconds with milliseconds (ngx.now).
int wall_time(lua_State* L) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, static_cast<lua_Number>(ts.tv_sec) + static_cast<lua_Number>(ts.tv_nsec / 1000000) / 1000.0);
  return 1;
}

// ngx.md5 (hex), ngx.md5_bin, ngx.sha1_bin: OpenSSL's EVP (tls_context.cc);
// built without TLS they raise "lnet was built without TLS".
int md5_hex(lua_State* L) { return push_digest(L, Digest::Md5, true); }
int md5_bin(lua_State* L) { return push_digest(L, Digest::Md5, false); }
int sha1_bin(lua_State* L) { return push_digest(L, Digest::Sha1, false); }

// LuaJIT's table.new(narray, nhash) and table.clear(t), which OpenResty
// libraries require (lua-resty-redis builds every command in a table.new).
int table_new(lua_State* L) {
  lua_Integer narr = luaL_checkinteger(L, 1);
  lua_Integer nrec = luaL_checkinteger(L, 2);
  constexpr lua_Integer kMax = 1 << 26;  // a size hint, not a promise
  lua_createtable(L, static_cast<int>(narr < 0 ? 0 : narr > kMax ? kMax : narr),
                  static_cast<int>(nrec < 0 ? 0 : nrec > kMax ? kMax : nrec));
  return 1;
}

int table_clear(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {  // clearing a field during the traversal is allowed
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, 1);
  }
  return 0;
}

const luaL_Reg kNgxHelpers[] = {{"table_new", table_new},
                                {"table_clear", table_clear},
                                {"encode_base64", encode_base64},
                                {"decode_base64", decode_base64},
                                {"md5", md5_hex},
                                {"md5_bin", md5_bin},
                                {"sha1_bin", sha1_bin},
                                {"now", wall_time},
                                {nullptr, nullptr}};

// Pushes require(name).
void require_module(lua_State* L, const char* name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

// Loads an embedded chunk (raises its syntax error, which a build would
// have caught).
void load_embedded(lua_State* L, const char* src, size_t len, const char* name) {
  if (luaL_loadbufferx(L, src, len, name, "t") != LUA_OK) lua_error(L);
}

}  // namespace

}  // namespace lnet

extern "C" LNET_EXPORT int luaopen_net_co(lua_State* L) {
  using namespace lnet;
  load_embedded(L, kCoLua, kCoLua_len, "=[net.co]");
  require_module(L, "net");
  if (luaL_newmetatable(L, kBufferType)) {
    lua_newtable(L);
    context_push(L);
    luaL_setfuncs(L, kBufferMethods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, buffer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, buffer_new);
  lua_newtable(L);  // the C parts of the layer (see co.lua)
  context_push(L);
  // With the context as upvalue 1 (server_conn, socket_conn).
  const luaL_Reg parts[] = {
      {"wait_data", co_wait}, {"setup", co_setup}, {"methods", co_methods}, {nullptr, nullptr}};
  luaL_setfuncs(L, parts, 1);
  lua_pushcfunction(L, flat_concat);
  lua_setfield(L, -2, "concat");
  lua_call(L, 3, 1);
  return 1;
}

extern "C" LNET_EXPORT int luaopen_net_ngx(lua_State* L) {
  using namespace lnet;
  load_embedded(L, kNgxLua, kNgxLua_len, "=[net.ngx]");
  require_module(L, "net");
  require_module(L, "net.co");
  lua_newtable(L);
  luaL_setfuncs(L, kNgxHelpers, 0);
  lua_pushlightuserdata(L, nullptr);  // ngx.null, as in OpenResty (and cjson.null)
  lua_setfield(L, -2, "null");
  lua_call(L, 3, 1);
  return 1;
}
