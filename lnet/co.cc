// luaopen_net_co and luaopen_net_ngx: the coroutine layer and the OpenResty
// compatibility layer. Both are Lua (co.lua, ngx.lua) compiled into net.so,
// so that Lua's all-in-one loader finds them wherever net.so is. Their C
// parts live here: the input buffer of a cosocket (the framing scanner
// behind receive("*l") and receiveuntil) and a few helpers for net.ngx.
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

namespace {

const char kBufferType[] = "net.co.Buffer";

// A cosocket's received bytes. The Lua layer pushes what the connection
// delivers and takes lines, counts or delimited parts out of it.
struct Buffer {
  FrameBuffer fb;
  char delim[kMaxDelimiter];  // the last receiveuntil delimiter (for the scan memory)
  size_t delim_len = 0;
};

// The methods have the context as upvalue 1 (for the cached type check).
Buffer* check_buffer(lua_State* L) {
  return static_cast<Buffer*>(check_udata(L, 1, kBufferType, &upvalue_context(L)->mt_co_buffer));
}

// Pushes n bytes from the front and consumes them.
void push_take(lua_State* L, Buffer* b, size_t n) {
  lua_pushlstring(L, b->fb.begin(), n);
  fb_consume(&b->fb, n);
}

int buffer_new(lua_State* L) {
  new (lua_newuserdatauv(L, sizeof(Buffer), 0)) Buffer();
  luaL_setmetatable(L, kBufferType);
  return 1;
}

int buffer_gc(lua_State* L) {
  Buffer* b = static_cast<Buffer*>(luaL_checkudata(L, 1, kBufferType));
  fb_clear(&b->fb);
  return 0;
}

// b:push(s) -> size; false when out of memory.
int buffer_push(lua_State* L) {
  Buffer* b = check_buffer(L);
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
  Buffer* b = check_buffer(L);
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
  Buffer* b = check_buffer(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0 || static_cast<size_t>(n) > b->fb.size()) return 0;
  push_take(L, b, static_cast<size_t>(n));
  return 1;
}

// b:takeany(max) -> 1..max bytes and the bytes left, or nil when empty.
int buffer_takeany(lua_State* L) {
  Buffer* b = check_buffer(L);
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
  Buffer* b = check_buffer(L);
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
  Buffer* b = check_buffer(L);
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
    {"upto", buffer_upto}, {nullptr, nullptr}};

// --- coroutines parked on a connection -------------------------------------
// A coroutine waiting for input parks itself on its connection with
// wait_data; the read then resumes it straight from C (co_deliver) instead
// of through the 'data' callback and coroutine.resume. net.co stays the
// judge of who waits: a parked coroutine is resumed only while net.co's
// waiting[thread] still holds its token (a timeout, a close or co.kill
// that woke it first leaves a stale parking, dropped at the next data).

// Arguments 1 and 2 of wait_data and send_flat: (server, id) or (socket,
// false). The open connection they name, or null.
Conn* conn_arg(lua_State* L) {
  return lua_isinteger(L, 2) ? server_conn(L, 1, lua_tointeger(L, 2)) : socket_conn(L, 1);
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

// wait_data(server, id | socket, false, token, direct, buffer, max_input):
// yields the running coroutine until its connection's next data (see
// CoWaiter), or until net.co wakes it. Resumed by co_deliver with (nil,
// data) when direct, else with nothing after the data went into buffer.
// Without an open connection it yields all the same (net.co wakes it).
int co_wait(lua_State* L) {
  Context* ctx = upvalue_context(L);
  Conn* c = conn_arg(L);
  if (c != nullptr && ctx->co_parked != LUA_NOREF) {
    CoWaiter& w = c->waiter;
    // net.co's own call: integers or nil/false (0), no argument errors.
    lua_Integer token = lua_tointegerx(L, 3, nullptr);
    lua_Integer direct = lua_tointegerx(L, 4, nullptr);
    lua_Integer max_input = lua_tointegerx(L, 6, nullptr);
    // A direct wait never touches the buffer.
    void* buffer = direct > 0 ? nullptr : test_udata(L, 5, kBufferType, &ctx->mt_co_buffer);
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
    if (lua_pushthread(L)) return luaL_error(L, "net.co: wait_data outside a coroutine");
    lua_rawseti(L, -2, w.slot);
    w.parked = true;
    w.token = token;
    w.direct = direct > 0 ? static_cast<size_t>(direct) : 0;
    w.buffer = buffer;
    w.max_input = max_input > 0 ? static_cast<size_t>(max_input) : 0;
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
  lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->co_waiting);  // 3
  lua_pushvalue(L, 2);
  int isnum = 0;
  if (lua_rawget(L, 3) != LUA_TNUMBER || lua_tointegerx(L, 4, &isnum) != w.token || !isnum) return 0;
  int nargs = 0;
  if (w.direct > 0) {
    lua_pushlstring(L, d->data, d->len);  // raises here (L), never in T
    lua_pushnil(T);
    lua_xmove(L, T, 1);
    nargs = 2;
  } else {
    Buffer* b = static_cast<Buffer*>(w.buffer);
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

// send_flat(server, id | socket, false, data) -> bytes, send()'s results:
// a cosocket's send in one C call, for a string of up to kSendChunk bytes
// or a flat array (at most 32 strings and integers, up to kFlatMax bytes:
// lua-resty-redis's commands), written without making a Lua string of it.
// Nothing when it does not apply (the caller takes the general path): other
// data, or no open connection (send() then gives the method's own error).
constexpr size_t kSendChunk = 256 << 10;  // co.lua's SEND_CHUNK
constexpr size_t kFlatMax = 4096;

int send_flat(lua_State* L) {
  Conn* c = conn_arg(L);
  if (c == nullptr) return 0;
  if (lua_type(L, 3) == LUA_TSTRING) {
    size_t len = 0;
    const char* s = lua_tolstring(L, 3, &len);
    if (len > kSendChunk) return 0;
    lua_pushinteger(L, static_cast<lua_Integer>(len));
    return 1 + push_send_result(L, conn_send(c, s, len));
  }
  if (lua_type(L, 3) != LUA_TTABLE) return 0;
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 3));
  if (n > 32) return 0;
  char buf[kFlatMax];
  size_t len = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 3, i);
    const char* piece;
    size_t plen;
    char digits[24];
    if (t == LUA_TSTRING) {
      piece = lua_tolstring(L, -1, &plen);
    } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
      piece = format_integer(lua_tointeger(L, -1), digits + sizeof digits);
      plen = static_cast<size_t>(digits + sizeof digits - piece);
    } else {
      return 0;
    }
    if (plen > kFlatMax - len) return 0;
    std::memcpy(buf + len, piece, plen);
    len += plen;
    lua_pop(L, 1);
  }
  lua_pushinteger(L, static_cast<lua_Integer>(len));
  return 1 + push_send_result(L, conn_send(c, buf, len));
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
      {"wait_data", co_wait}, {"setup", co_setup}, {"send_flat", send_flat}, {nullptr, nullptr}};
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
