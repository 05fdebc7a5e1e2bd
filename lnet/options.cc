#include "options.hh"

#include <arpa/inet.h>
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

// "0660" (octal digits) or an integer 0..07777.
int opt_mode(lua_State* L, int arg) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len = 0;
    const char* s = lua_tolstring(L, -1, &len);
    int v = 0;
    bool ok = len > 0 && len <= 5;
    for (size_t i = 0; ok && i < len; i++) {
      ok = s[i] >= '0' && s[i] <= '7';
      v = v * 8 + (s[i] - '0');
    }
    if (!ok || v > 07777) luaL_argerror(L, arg, "option 'mode' must be octal digits such as \"0660\"");
    return v;
  }
  return static_cast<int>(opt_int(L, arg, "mode", 0, 07777));
}

constexpr int64_t kMaxMs = int64_t{1} << 40;  // ~35 years

// proxy_trusted = {"127.0.0.1", "10.0.0.0/8", "fd00::/8", ...}
void opt_proxy_trusted(lua_State* L, int arg, ProxyListen* o) {
  if (!lua_istable(L, -1))
    luaL_argerror(L, arg, lua_pushfstring(L, "option 'proxy_trusted' must be a table, got %s",
                                          luaL_typename(L, -1)));
  lua_Integer n = luaL_len(L, -1);
  if (n > static_cast<lua_Integer>(kMaxProxyTrusted))
    luaL_argerror(L, arg, "option 'proxy_trusted' has more than 32 entries");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    const char* text = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : nullptr;
    if (text == nullptr || !proxy_parse_cidr(text, &o->trusted[i - 1]))
      luaL_argerror(L, arg, lua_pushfstring(L, "option 'proxy_trusted': entry %I is not an "
                                               "IP address or CIDR range", i));
    lua_pop(L, 1);
  }
  o->trusted_set = true;
  o->trusted_count = static_cast<uint8_t>(n);
}

// A numeric address and port of send_proxy into ss.
void send_proxy_addr(lua_State* L, int arg, int t, const char* ip_key, const char* port_key,
                     sockaddr_storage* ss) {
  lua_getfield(L, t, ip_key);
  lua_getfield(L, t, port_key);
  const char* ip = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : nullptr;
  int isnum = 0;
  lua_Integer port = lua_tointegerx(L, -1, &isnum);
  if (lua_type(L, -1) != LUA_TNUMBER) isnum = 0;
  std::memset(ss, 0, sizeof *ss);
  auto* sin = reinterpret_cast<sockaddr_in*>(ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (ip && inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
  } else if (ip && inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    luaL_argerror(L, arg, lua_pushfstring(L, "option 'send_proxy': '%s' must be a numeric IP "
                                             "address", ip_key));
  }
  if (!isnum || port < 0 || port > 65535)
    luaL_argerror(L, arg, lua_pushfstring(L, "option 'send_proxy': '%s' must be an integer "
                                             "from 0 to 65535", port_key));
  lua_pop(L, 2);
}

// send_proxy = {version = 1|2, source_ip =, source_port =, dest_ip =,
// dest_port =, alpn =, authority =, unique_id =}: the header, built now.
void opt_send_proxy(lua_State* L, int arg, SendProxy* o) {
  if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    o->len = 0;
    return;
  }
  if (!lua_istable(L, -1))
    luaL_argerror(L, arg, lua_pushfstring(L, "option 'send_proxy' must be a table, got %s",
                                          luaL_typename(L, -1)));
  int t = lua_gettop(L);
  static const char* const kKeys[] = {"version",   "source_ip", "source_port", "dest_ip",
                                      "dest_port", "alpn",      "authority",   "unique_id",
                                      nullptr};
  lua_pushnil(L);
  while (lua_next(L, t)) {
    bool known = false;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; kKeys[i]; i++) known = known || !std::strcmp(lua_tostring(L, -2), kKeys[i]);
    if (!known)
      luaL_argerror(L, arg, lua_pushfstring(L, "option 'send_proxy': unknown field '%s'",
                                            luaL_tolstring(L, -2, nullptr)));
    lua_pop(L, 1);
  }
  lua_getfield(L, t, "version");
  lua_Integer version = lua_type(L, -1) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
  if (version != 1 && version != 2)
    luaL_argerror(L, arg, "option 'send_proxy': 'version' must be 1 or 2");
  lua_pop(L, 1);
  sockaddr_storage src, dst;
  bool addresses = lua_getfield(L, t, "source_ip") != LUA_TNIL;
  lua_pop(L, 1);
  if (addresses) {
    send_proxy_addr(L, arg, t, "source_ip", "source_port", &src);
    send_proxy_addr(L, arg, t, "dest_ip", "dest_port", &dst);
    if (src.ss_family != dst.ss_family)
      luaL_argerror(L, arg, "option 'send_proxy': source and destination of different families");
  }
  ProxyTlvOut tlvs[3];
  size_t ntlvs = 0;
  const struct {
    const char* key;
    uint8_t type;
  } kTlvs[] = {{"alpn", kPp2Alpn}, {"authority", kPp2Authority}, {"unique_id", kPp2UniqueId}};
  for (const auto& k : kTlvs) {
    int type = lua_getfield(L, t, k.key);
    if (type != LUA_TNIL) {
      size_t len = 0;
      const char* v = type == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
      if (v == nullptr || len > 160 || version == 1)
        luaL_argerror(L, arg, lua_pushfstring(L, "option 'send_proxy': '%s' must be a string of "
                                                 "at most 160 bytes, with version 2", k.key));
      tlvs[ntlvs++] = ProxyTlvOut{k.type, v, len};  // the table keeps v alive
    }
    lua_pop(L, 1);
  }
  size_t n = proxy_build(static_cast<int>(version), addresses ? reinterpret_cast<sockaddr*>(&src) : nullptr,
                         addresses ? reinterpret_cast<sockaddr*>(&dst) : nullptr, tlvs, ntlvs,
                         o->bytes, sizeof o->bytes);
  o->len = static_cast<uint16_t>(n);
}
constexpr int64_t kMaxBytes = int64_t{1} << 46;

}  // namespace

void parse_options(lua_State* L, int idx, int arg, Options* o) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  idx = lua_absindex(L, idx);
  // The PROXY options of an object that has no place for them: checked, dropped.
  ProxyListen listen_scratch;
  SendProxy send_scratch;
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
    } else if (!std::strcmp(k, "mode")) {
      o->mode = opt_mode(L, arg);
    } else if (!std::strcmp(k, "proxy_protocol")) {
      static const char* const kModes[] = {"off", "v1", "v2", "any", nullptr};
      int mode = -1;
      if (lua_type(L, -1) == LUA_TSTRING)
        for (int i = 0; kModes[i]; i++)
          if (!std::strcmp(lua_tostring(L, -1), kModes[i])) mode = i;
      if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) mode = 0;
      if (mode < 0) luaL_argerror(L, arg, "option 'proxy_protocol' must be \"v1\", \"v2\" or \"any\"");
      (o->proxy_listen ? o->proxy_listen : &listen_scratch)->mode = static_cast<ProxyMode>(mode);
    } else if (!std::strcmp(k, "proxy_trusted")) {
      opt_proxy_trusted(L, arg, o->proxy_listen ? o->proxy_listen : &listen_scratch);
    } else if (!std::strcmp(k, "proxy_header_timeout")) {
      (o->proxy_listen ? o->proxy_listen : &listen_scratch)->header_timeout_ms =
          opt_int(L, arg, k, 1, kMaxMs);
    } else if (!std::strcmp(k, "send_proxy")) {
      opt_send_proxy(L, arg, o->send_proxy ? o->send_proxy : &send_scratch);
    } else if (!std::strcmp(k, "framing")) {
      parse_framing(L, -1, arg, &o->framing);
    } else if (!std::strcmp(k, "max_message")) {
      parse_max_message(L, arg, &o->framing);
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
