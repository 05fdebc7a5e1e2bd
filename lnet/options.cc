#include "options.hh"

#include "tls.hh"

#include <cstring>

namespace lnet {

namespace {

bool opt_bool(lua_State* L, int arg, const char* key) {
  if (!lua_isboolean(L, -1)) {
    const char* msg = lua_pushfstring(L, "option '%s' must be a boolean, got %s", key,
                                      luaL_typename(L, -1));
    luaL_argerror(L, arg, msg);
  }
  return lua_toboolean(L, -1);
}

int64_t opt_int(lua_State* L, int arg, const char* key, int64_t lo, int64_t hi) {
  int isnum = 0;
  // lua_tointegerx alone would take the string "80" as well.
  lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : 0;
  if (!isnum || v < lo || v > hi) {
    const char* msg =
        lua_type(L, -1) == LUA_TNUMBER
            ? lua_pushfstring(L, "option '%s' must be an integer from %I to %I", key,
                              static_cast<lua_Integer>(lo), static_cast<lua_Integer>(hi))
            : lua_pushfstring(L, "option '%s' must be a number, got %s", key,
                              luaL_typename(L, -1));
    luaL_argerror(L, arg, msg);
  }
  return v;
}

constexpr int64_t kMaxMs = int64_t{1} << 40;  // ~35 years
constexpr int64_t kMaxBytes = int64_t{1} << 46;

}  // namespace

void parse_options(lua_State* L, int idx, int arg, Options* o) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, arg, "option names must be strings");
    const char* k = lua_tostring(L, -2);
    if (!std::strcmp(k, "nodelay")) {
      o->nodelay = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "keepalive")) {
      if (lua_isboolean(L, -1)) {
        o->keepalive = lua_toboolean(L, -1);
        o->keepalive_ms = 0;
      } else {
        o->keepalive_ms = static_cast<int>(opt_int(L, arg, k, 1000, 1000 * 32767));
        o->keepalive = true;
      }
    } else if (!std::strcmp(k, "timeout")) {
      o->timeout_ms = opt_int(L, arg, k, 0, kMaxMs);
    } else if (!std::strcmp(k, "idle_timeout")) {
      o->idle_timeout_ms = opt_int(L, arg, k, 0, kMaxMs);
    } else if (!std::strcmp(k, "backlog")) {
      o->backlog = static_cast<int>(opt_int(L, arg, k, 1, 65535));
    } else if (!std::strcmp(k, "reuseport")) {
      o->reuseport = opt_bool(L, arg, k);
    } else if (!std::strcmp(k, "max_connections")) {
      o->max_connections = opt_int(L, arg, k, 0, int64_t{1} << 31);
    } else if (!std::strcmp(k, "max_buffer")) {
      o->max_buffer = static_cast<size_t>(opt_int(L, arg, k, 0, kMaxBytes));
    } else if (!std::strcmp(k, "high_water")) {
      o->high_water = static_cast<size_t>(opt_int(L, arg, k, 0, kMaxBytes));
    } else if (!std::strcmp(k, "linger_timeout")) {
      o->linger_timeout_ms = opt_int(L, arg, k, 0, kMaxMs);
    } else if (!std::strcmp(k, "allow_half_open")) {
      o->allow_half_open = opt_bool(L, arg, k);
    } else if (!parse_tls_option(L, arg, k, o)) {
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
    }
    lua_pop(L, 1);
  }
}

const char* check_host(lua_State* L, int arg, size_t* len) {
  const char* host = luaL_checklstring(L, arg, len);
  if (*len == 0) luaL_argerror(L, arg, "host is empty");
  if (*len > 255) luaL_argerror(L, arg, "host is longer than 255 bytes");
  if (std::memchr(host, '\0', *len)) luaL_argerror(L, arg, "host contains a NUL byte");
  return host;
}

lua_Integer check_integer(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "number");
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, arg, &isnum);
  if (!isnum) luaL_argerror(L, arg, "number has no integer representation");
  return v;
}

lua_Number check_number(lua_State* L, int arg) {
  if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "number");
  return lua_tonumber(L, arg);
}

int check_port(lua_State* L, int arg) {
  lua_Integer port = check_integer(L, arg);
  if (port < 0 || port > 65535) luaL_argerror(L, arg, "port out of range (0..65535)");
  return static_cast<int>(port);
}

}  // namespace lnet
