// The framing option and net.frame: the Lua-facing side of framing.hh, and
// the hook through which a connection's owner delivers whole messages.
#include "conn.hh"
#include "framing.hh"
#include "objects.hh"

#include <event2/event.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace lnet {

namespace {

int64_t field_int(lua_State* L, int arg, const char* key, int64_t lo, int64_t hi) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < lo || v > hi)
    luaL_argerror(L, arg, lua_pushfstring(L, "framing '%s' must be an integer from %I to %I", key,
                                          static_cast<lua_Integer>(lo),
                                          static_cast<lua_Integer>(hi)));
  return v;
}

constexpr int64_t kMaxMessage = int64_t{1} << 46;

}  // namespace

void parse_framing(lua_State* L, int idx, int arg, FrameSpec* spec) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    if (std::strcmp(lua_tostring(L, idx), "line") != 0)
      luaL_argerror(L, arg, "option 'framing' must be \"line\" or a table");
    spec->kind = FrameSpec::Line;
    return;
  }
  if (lua_type(L, idx) == LUA_TBOOLEAN && !lua_toboolean(L, idx)) {
    spec->kind = FrameSpec::None;
    return;
  }
  if (!lua_istable(L, idx))
    luaL_argerror(L, arg, lua_pushfstring(L, "option 'framing' must be \"line\" or a table, got %s",
                                          luaL_typename(L, idx)));
  FrameSpec s;
  s.max_message = spec->max_message;
  bool has_delim = false, has_length = false;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char* k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (!std::strcmp(k, "delimiter")) {
      size_t len = 0;
      const char* d = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
      if (d == nullptr || len == 0 || len > kMaxDelimiter)
        luaL_argerror(L, arg, "framing 'delimiter' must be a string of 1 to 64 bytes");
      std::memcpy(s.delim, d, len);
      s.delim_len = static_cast<uint8_t>(len);
      has_delim = true;
    } else if (!std::strcmp(k, "length")) {
      int64_t n = field_int(L, arg, k, 1, 8);
      if (n != 1 && n != 2 && n != 4 && n != 8)
        luaL_argerror(L, arg, "framing 'length' must be 1, 2, 4 or 8");
      s.length_bytes = static_cast<uint8_t>(n);
      has_length = true;
    } else if (!std::strcmp(k, "endian")) {
      const char* e = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (!std::strcmp(e, "big"))
        s.little = false;
      else if (!std::strcmp(e, "little"))
        s.little = true;
      else
        luaL_argerror(L, arg, "framing 'endian' must be \"big\" or \"little\"");
    } else if (!std::strcmp(k, "adjust")) {
      s.adjust = field_int(L, arg, k, -kMaxMessage, kMaxMessage);
    } else if (!std::strcmp(k, "max_message")) {
      s.max_message = static_cast<size_t>(field_int(L, arg, k, 1, kMaxMessage));
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown framing field '%s'", k));
    }
    lua_pop(L, 1);
  }
  if (has_delim == has_length)
    luaL_argerror(L, arg, "option 'framing' needs either 'delimiter' or 'length'");
  s.kind = has_delim ? FrameSpec::Delimiter : FrameSpec::Length;
  *spec = s;
}

void parse_max_message(lua_State* L, int arg, FrameSpec* spec) {
  spec->max_message = static_cast<size_t>(field_int(L, arg, "max_message", 1, kMaxMessage));
}

namespace {

// Every message of one read goes to 'data' inside one protected call (one
// dispatch per read, as without framing, instead of one per message), each
// with a plain lua_call: a callback's error leaves through the dispatch,
// and framer_feed keeps the messages after it for later (never
// lost). Nothing in these frames has a destructor.
struct Batch {
  Conn* conn;
  Call* target;
  const char* data;
  size_t len;
  lua_State* L = nullptr;
  int fn = 0;  // stack index of the callback (0: none)
  FeedResult result = FeedResult::Ok;
};

bool emit_lua(void* ud, const char* msg, size_t len) {
  Batch* b = static_cast<Batch*>(ud);
  if (b->fn == 0) return true;  // no 'data' callback: messages are dropped
  lua_State* L = b->L;
  lua_pushvalue(L, b->fn);
  int nargs = 1;
  if (b->target->id != 0) lua_pushinteger(L, b->target->id), nargs++;
  lua_pushlstring(L, msg, len);
  lua_call(L, nargs, 0);
  // A pause() stops reading from the socket; the messages already read are
  // still delivered (as a whole read is without framing). net.stop() halts
  // delivery: the rest waits for the next net.loop().
  return b->conn->state == ConnState::Open && !b->conn->read_eof && !halted(b->conn->ctx);
}

int batch_body(lua_State* L) {
  Batch* b = static_cast<Batch*>(lua_touserdata(L, 1));
  b->L = L;
  push_anchored(L, b->target->key);
  if (lua_type(L, -1) == LUA_TUSERDATA &&
      lua_getiuservalue(L, -1, b->target->slot) == LUA_TFUNCTION)
    b->fn = lua_gettop(L);
  b->result = framer_feed(b->conn->frames, b->conn->opt.framing, b->data, b->len, emit_lua, b);
  return 0;
}

}  // namespace

bool conn_frames_incomplete(Conn* c) noexcept {
  return c->frames != nullptr && framer_incomplete(c->frames);
}

bool conn_frames_drain(Conn* c) noexcept {
  if (c->frames == nullptr || c->frames->buf.size() == 0 || c->state != ConnState::Open) return true;
  conn_frames(c, nullptr, 0);
  return c->state == ConnState::Open && !c->read_eof && !halted(c->ctx);
}

bool conn_frames(Conn* c, const char* data, size_t len) noexcept {
  const FrameSpec& spec = c->opt.framing;
  if (spec.kind == FrameSpec::None) return false;
  if (c->frames == nullptr) {
    c->frames = new (std::nothrow) Framer();
    if (c->frames == nullptr) {
      conn_close(c, EndKind::Error, ENOMEM);
      return true;
    }
  }
  Call target;
  c->owner->conn_data_callback(c, &target);
  Batch b{c, &target, data, len};
  dispatch(c->ctx, batch_body, &b);
  FeedResult r = b.result;
  if (r == FeedResult::Failed && c->state == ConnState::Open)
    conn_close(c, EndKind::Framing, 0);  // the reason lives until conn_release
  // A callback raised or stopped the loop with messages still buffered:
  // the next net.loop() delivers them (read_some drains first), even if
  // the peer sends nothing more.
  if (halted(c->ctx) && c->state == ConnState::Open && c->frames && c->frames->buf.size() > 0)
    event_active(c->rev, EV_READ, 0);
  return true;
}

const char* conn_frames_reason(const Conn* c) noexcept {
  return c->frames ? c->frames->reason : "message refused by framing";
}

const char* conn_frames_code(const Conn* c) noexcept {
  return c->frames && c->frames->code ? c->frames->code : "MESSAGE_TOO_LONG";
}

void conn_frames_free(Conn* c) noexcept {
  delete c->frames;
  c->frames = nullptr;
}

namespace {

// net.frame(payload[, spec]) -> the length field followed by payload
// (spec: {length = 1|2|4|8, endian = "big"|"little", adjust = n};
// default {length = 4, endian = "big"}).
int net_frame(lua_State* L) {
  size_t len = 0;
  const char* payload = luaL_checklstring(L, 1, &len);
  FrameSpec spec;
  spec.kind = FrameSpec::Length;
  spec.length_bytes = 4;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    spec.max_message = static_cast<size_t>(kMaxMessage);
    parse_framing(L, 2, 2, &spec);
    if (spec.kind != FrameSpec::Length) luaL_argerror(L, 2, "net.frame needs a 'length' framing");
  }
  unsigned char header[8];
  if (!frame_header(spec, len, header))
    luaL_argerror(L, 1, lua_pushfstring(L, "payload of %I bytes does not fit a %d-byte length field",
                                        static_cast<lua_Integer>(len), spec.length_bytes));
  luaL_Buffer b;
  luaL_buffinitsize(L, &b, len + spec.length_bytes);
  luaL_addlstring(&b, reinterpret_cast<const char*>(header), spec.length_bytes);
  luaL_addlstring(&b, payload, len);
  luaL_pushresult(&b);
  return 1;
}

}  // namespace

void register_framing(lua_State* L, int, int module_idx) {
  lua_pushcfunction(L, net_frame);
  lua_setfield(L, module_idx, "frame");
}

}  // namespace lnet
