// The module built without OpenSSL (meson -Dtls=disabled): net.features.tls
// is false and every TLS option or call raises "lnet was built without TLS".
#include "conn.hh"
#include "objects.hh"
#include "options.hh"
#include "tls.hh"

#include <cstring>

namespace lnet {

namespace {

[[noreturn]] void no_tls(lua_State* L) {
  luaL_error(L, "lnet was built without TLS");
  __builtin_unreachable();
}

int tlsctx_new(lua_State* L) { no_tls(L); }

}  // namespace

bool tls_built() noexcept { return false; }

void register_tls(lua_State* L, int ctx_idx, int module_idx) {
  const luaL_Reg constructor[] = {{"TLSContext", tlsctx_new}, {nullptr, nullptr}};
  register_functions(L, ctx_idx, module_idx, constructor);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "tls");
  lua_setfield(L, module_idx, "features");
}

void tls_shared_free(TlsShared*) noexcept {}

bool parse_tls_option(lua_State* L, int arg, const char* key, Options*) {
  if (!std::strcmp(key, "tls")) {
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) return true;  // tls = false is fine
    no_tls(L);
  }
  if (!std::strcmp(key, "servername") || !std::strcmp(key, "sni") ||
      !std::strcmp(key, "handshake_timeout")) {
    (void)arg;
    no_tls(L);
  }
  return false;
}

void tls_options_prepare(lua_State*, Options*) {}
void tls_options_retain(lua_State*, Options*) noexcept {}
void tls_options_release(Options*) noexcept {}
TlsConfig* check_tls_config(lua_State* L, int, bool) { no_tls(L); }

void tls_config_retain(TlsConfig*) noexcept {}
void tls_config_release(TlsConfig*) noexcept {}
bool tls_start(Conn*, TlsConfig*, TlsRole, const char*, const Options*, bool) noexcept { return false; }
bool tls_handshake(Conn*) noexcept { return true; }
bool tls_handshaking(const Conn*) noexcept { return false; }
bool tls_handshake_failed(const Conn*) noexcept { return false; }
bool tls_is_starttls(const Conn*) noexcept { return false; }
const char* tls_peer_ip(const Conn*) noexcept { return ""; }
int tls_peer_port(const Conn*) noexcept { return 0; }
const char* tls_end_reason(const Conn*) noexcept { return "TLS failure"; }
const char* tls_end_code(const Conn*) noexcept { return kCodeTlsError; }
void tls_free(Conn*) noexcept {}

int push_digest(lua_State* L, Digest, bool) { no_tls(L); }

int push_tlsinfo(lua_State* L, const Conn*) {
  lua_pushnil(L);
  lua_pushliteral(L, "not a TLS connection");
  return 2;
}

}  // namespace lnet
