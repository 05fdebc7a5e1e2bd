// net.TLSContext{...}: an immutable TLS configuration (one SSL_CTX) shared
// by any number of connections; the TLS options of connect and listen.
// Secure by default: the system trust store, TLS 1.2 at least, peer
// certificates verified and names checked against the subject alternative
// names only; `insecure = true` is the one way to turn the checks off.
#include "context.hh"
#include "objects.hh"
#include "options.hh"
#include "tls_internal.hh"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace lnet {

namespace {

const char kTypeName[] = "net.TLSContext";
constexpr int kMaxCa = 32;

// Everything net.TLSContext was given, as plain data (the strings belong to
// the options table, alive on the Lua stack while the context is built).
struct Spec {
  const char* ca[kMaxCa] = {};
  size_t ca_len[kMaxCa] = {};
  int nca = 0;
  const char* cert = nullptr;
  size_t cert_len = 0;
  const char* key = nullptr;
  size_t key_len = 0;
  const char* password = nullptr;
  int min_version = TLS1_2_VERSION;
  int max_version = 0;
  const char* ciphers = nullptr;
  const char* ciphersuites = nullptr;
  unsigned char alpn[256] = {};
  unsigned alpn_len = 0;
  bool request_cert = false;
  bool require_cert = false;
  bool insecure = false;
};

bool is_pem(const char* s, size_t len) {
  static const char kBegin[] = "-----BEGIN ";
  return len >= sizeof kBegin && memmem(s, len, kBegin, sizeof kBegin - 1) != nullptr;
}

// "'path'" or "(PEM string)": how a message names a source.
void source_name(char* out, size_t n, const char* s, size_t len) {
  if (is_pem(s, len))
    std::snprintf(out, n, "(PEM string)");
  else
    std::snprintf(out, n, "'%.*s'", static_cast<int>(len > 200 ? 200 : len), s);
}

// OpenSSL's reason for the failure (the error queue is cleared): the first
// error queued is the root cause ("no start line" rather than "PEM lib").
const char* ssl_reason(char* buf, size_t n) {
  unsigned long e = ERR_peek_error();
  ERR_clear_error();
  const char* r = e ? ERR_reason_error_string(e) : nullptr;
  if (r == nullptr && e) {
    ERR_error_string_n(e, buf, n);
    return buf;
  }
  return r ? r : "unknown error";
}

int password_cb(char* buf, int size, int, void* u) {
  if (u == nullptr) return -1;  // an encrypted key and no password: fail, never prompt
  size_t len = std::strlen(static_cast<const char*>(u));
  if (len > static_cast<size_t>(size)) return -1;
  std::memcpy(buf, u, len);
  return static_cast<int>(len);
}

int alpn_select_cb(SSL*, const unsigned char** out, unsigned char* outlen,
                   const unsigned char* in, unsigned inlen, void* arg) {
  TlsConfig* cfg = static_cast<TlsConfig*>(arg);
  if (cfg->alpn_len == 0) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* sel = nullptr;
  // The server's order of preference.
  if (SSL_select_next_proto(&sel, outlen, cfg->alpn, cfg->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// A file's problem in words (stat's errno), or null when it is readable.
const char* file_problem(const char* path, bool* is_dir) {
  struct stat st;
  if (::stat(path, &st) != 0) return std::strerror(errno);
  *is_dir = S_ISDIR(st.st_mode);
  return nullptr;
}

bool load_ca(SSL_CTX* ctx, const char* s, size_t len, char* err, size_t n) {
  char name[220], rbuf[256];
  source_name(name, sizeof name, s, len);
  if (is_pem(s, len)) {
    BIO* bio = BIO_new_mem_buf(s, static_cast<int>(len));
    STACK_OF(X509_INFO)* infos = bio ? PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    int added = 0;
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
      X509_INFO* info = sk_X509_INFO_value(infos, i);
      if (info->x509 && X509_STORE_add_cert(store, info->x509) == 1) added++;
    }
    if (infos) sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (added == 0) {
      std::snprintf(err, n, "ca %s: no certificate found (%s)", name, ssl_reason(rbuf, sizeof rbuf));
      return false;
    }
    ERR_clear_error();
    return true;
  }
  bool dir = false;
  if (const char* why = file_problem(s, &dir)) {
    std::snprintf(err, n, "ca %s: %s", name, why);
    return false;
  }
  int ok = dir ? SSL_CTX_load_verify_dir(ctx, s) : SSL_CTX_load_verify_file(ctx, s);
  if (ok != 1) {
    std::snprintf(err, n, "ca %s: %s", name, ssl_reason(rbuf, sizeof rbuf));
    return false;
  }
  return true;
}

bool load_cert(SSL_CTX* ctx, const Spec& sp, char* err, size_t n) {
  char name[220], rbuf[256];
  source_name(name, sizeof name, sp.cert, sp.cert_len);
  if (!is_pem(sp.cert, sp.cert_len)) {
    bool dir = false;
    const char* why = file_problem(sp.cert, &dir);
    if (!why && dir) why = "is a directory";
    if (why) {
      std::snprintf(err, n, "cert %s: %s", name, why);
      return false;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, sp.cert) != 1) {
      std::snprintf(err, n, "cert %s: %s", name, ssl_reason(rbuf, sizeof rbuf));
      return false;
    }
    return true;
  }
  BIO* bio = BIO_new_mem_buf(sp.cert, static_cast<int>(sp.cert_len));
  X509* x = bio ? PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr) : nullptr;
  bool ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
  X509_free(x);
  // The rest of the string: the chain.
  while (ok) {
    X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (!extra) break;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  BIO_free(bio);
  if (!ok) {
    std::snprintf(err, n, "cert %s: %s", name, ssl_reason(rbuf, sizeof rbuf));
    return false;
  }
  ERR_clear_error();  // the end of the chain ("no start line")
  return true;
}

bool load_key(SSL_CTX* ctx, const Spec& sp, char* err, size_t n) {
  char name[220], rbuf[256];
  source_name(name, sizeof name, sp.key, sp.key_len);
  void* pw = const_cast<char*>(sp.password);
  bool ok;
  if (is_pem(sp.key, sp.key_len)) {
    BIO* bio = BIO_new_mem_buf(sp.key, static_cast<int>(sp.key_len));
    EVP_PKEY* pk = bio ? PEM_read_bio_PrivateKey(bio, nullptr, password_cb, pw) : nullptr;
    BIO_free(bio);
    ok = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1;
    EVP_PKEY_free(pk);
  } else {
    bool dir = false;
    const char* why = file_problem(sp.key, &dir);
    if (!why && dir) why = "is a directory";
    if (why) {
      std::snprintf(err, n, "key %s: %s", name, why);
      return false;
    }
    SSL_CTX_set_default_passwd_cb(ctx, password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, pw);
    ok = SSL_CTX_use_PrivateKey_file(ctx, sp.key, SSL_FILETYPE_PEM) == 1;
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);  // the string is Lua's
  }
  unsigned long e = ok ? 0 : ERR_peek_last_error();
  if (!ok && !(ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)) {
    std::snprintf(err, n, "key %s: %s", name, ssl_reason(rbuf, sizeof rbuf));
    return false;
  }
  if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
    char cname[220];
    source_name(cname, sizeof cname, sp.cert, sp.cert_len);
    std::snprintf(err, n, "key %s does not match cert %s: %s", name, cname,
                  ssl_reason(rbuf, sizeof rbuf));
    return false;
  }
  return true;
}

// Phase 2 of net.TLSContext: builds the context from plain data. Null with
// the reason in err on failure; never raises.
TlsConfig* build(const Spec& sp, char* err, size_t n) noexcept {
  char rbuf[256];
  TlsConfig* cfg = new (std::nothrow) TlsConfig();
  if (!cfg) {
    std::snprintf(err, n, "out of memory");
    return nullptr;
  }
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  cfg->ctx = ctx;
  if (!ctx) {
    std::snprintf(err, n, "cannot create an SSL_CTX: %s", ssl_reason(rbuf, sizeof rbuf));
    tls_config_release(cfg);
    return nullptr;
  }
  cfg->insecure = sp.insecure;
  cfg->request_cert = sp.request_cert || sp.require_cert;
  cfg->require_cert = sp.require_cert;
  // Idle connections hold no read or write buffer (RSS per connection).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(ctx, password_cb);  // never a terminal prompt
  bool ok = SSL_CTX_set_min_proto_version(ctx, sp.min_version) == 1 &&
            SSL_CTX_set_max_proto_version(ctx, sp.max_version) == 1;
  if (!ok) std::snprintf(err, n, "min_version/max_version: %s", ssl_reason(rbuf, sizeof rbuf));
  if (ok && sp.ciphers && SSL_CTX_set_cipher_list(ctx, sp.ciphers) != 1) {
    std::snprintf(err, n, "ciphers '%s': %s", sp.ciphers, ssl_reason(rbuf, sizeof rbuf));
    ok = false;
  }
  if (ok && sp.ciphersuites && SSL_CTX_set_ciphersuites(ctx, sp.ciphersuites) != 1) {
    std::snprintf(err, n, "ciphersuites '%s': %s", sp.ciphersuites, ssl_reason(rbuf, sizeof rbuf));
    ok = false;
  }
  if (ok) {
    if (sp.nca == 0) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        std::snprintf(err, n, "the system trust store: %s", ssl_reason(rbuf, sizeof rbuf));
        ok = false;
      }
    }
    for (int i = 0; ok && i < sp.nca; i++) ok = load_ca(ctx, sp.ca[i], sp.ca_len[i], err, n);
  }
  if (ok && sp.cert) ok = load_cert(ctx, sp, err, n);
  if (ok && sp.key) ok = load_key(ctx, sp, err, n);
  if (ok && sp.cert) {
    // The chain sent with the certificate: when its file had none, OpenSSL
    // would look the issuers up in the trust store on every handshake (the
    // system store: a directory search each time). Built once here, the
    // same way (issuers from the store, failures ignored), and used as is.
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    if (chain && sk_X509_num(chain) > 0)
      SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);  // the file's chain: auto chain unused anyway
    else if (SSL_CTX_build_cert_chain(ctx, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR |
                                               SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR) > 0)
      SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    ERR_clear_error();  // a chain not built: OpenSSL builds it per handshake, as before
  }
  if (ok && sp.alpn_len) {
    std::memcpy(cfg->alpn, sp.alpn, sp.alpn_len);
    cfg->alpn_len = sp.alpn_len;
    if (SSL_CTX_set_alpn_protos(ctx, sp.alpn, sp.alpn_len) != 0) {  // 0 is success here
      std::snprintf(err, n, "alpn: %s", ssl_reason(rbuf, sizeof rbuf));
      ok = false;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, cfg);
  }
  if (!ok) {
    tls_config_release(cfg);
    return nullptr;
  }
  SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb);
  // Server: one session cache per context; clients resume nothing.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  static const unsigned char kSid[] = "lnet";
  SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1);
  // TLS 1.3: one session ticket after a full handshake, not OpenSSL's two
  // (each is a session encoded, encrypted and sent: work on every new
  // connection). A client resuming once needs one.
  SSL_CTX_set_num_tickets(ctx, 1);
  ERR_clear_error();
  return cfg;
}

// --- phase 1: the options table into a Spec (raises) ---------------------

[[noreturn]] void bad(lua_State* L, const char* fmt, const char* key, const char* extra = "") {
  luaL_argerror(L, 1, lua_pushfstring(L, fmt, key, extra));
  std::abort();  // not reached
}

const char* str_opt(lua_State* L, const char* key, size_t* len = nullptr) {
  if (lua_type(L, -1) != LUA_TSTRING)
    bad(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
  return lua_tolstring(L, -1, len);
}

bool bool_opt(lua_State* L, const char* key) {
  if (!lua_isboolean(L, -1)) bad(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
  return lua_toboolean(L, -1);
}

int version_opt(lua_State* L, const char* key) {
  const char* v = str_opt(L, key);
  static const char* const kNames[] = {"1.0", "1.1", "1.2", "1.3"};
  static const int kVersions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
  for (int i = 0; i < 4; i++)
    if (!std::strcmp(v, kNames[i]) || (!std::strncmp(v, "TLSv", 4) && !std::strcmp(v + 4, kNames[i])))
      return kVersions[i];
  bad(L, "option '%s' must be \"1.0\", \"1.1\", \"1.2\" or \"1.3\", got '%s'", key, v);
}

void ca_opt(lua_State* L, Spec* sp) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    sp->ca[0] = lua_tolstring(L, -1, &sp->ca_len[0]);
    sp->nca = 1;
    return;
  }
  if (!lua_istable(L, -1)) bad(L, "option '%s' must be a string or a list of strings, got %s", "ca", luaL_typename(L, -1));
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  if (n == 0) bad(L, "option '%s' is an empty list%s", "ca");
  if (n > kMaxCa) bad(L, "option '%s' lists more than 32 sources%s", "ca");
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING) bad(L, "option '%s' must list strings, got %s", "ca", luaL_typename(L, -1));
    // The string stays referenced by the list, itself held by the options table.
    sp->ca[sp->nca] = lua_tolstring(L, -1, &sp->ca_len[sp->nca]);
    sp->nca++;
    lua_pop(L, 1);
  }
}

void alpn_opt(lua_State* L, Spec* sp) {
  if (!lua_istable(L, -1)) bad(L, "option '%s' must be a list of strings, got %s", "alpn", luaL_typename(L, -1));
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len = 0;
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING) bad(L, "option '%s' must list strings, got %s", "alpn", luaL_typename(L, -1));
    const char* p = lua_tolstring(L, -1, &len);
    if (len == 0 || len > 255 || sp->alpn_len + 1 + len > sizeof sp->alpn)
      bad(L, "option '%s': protocol names must be 1 to 255 bytes, 255 bytes in all%s", "alpn");
    sp->alpn[sp->alpn_len++] = static_cast<unsigned char>(len);
    std::memcpy(sp->alpn + sp->alpn_len, p, len);
    sp->alpn_len += static_cast<unsigned>(len);
    lua_pop(L, 1);
  }
}

void parse_spec(lua_State* L, Spec* sp) {
  if (lua_isnoneornil(L, 1)) return;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 1, "option names must be strings");
    const char* k = lua_tostring(L, -2);
    if (!std::strcmp(k, "ca")) {
      ca_opt(L, sp);
    } else if (!std::strcmp(k, "cert")) {
      sp->cert = str_opt(L, k, &sp->cert_len);
    } else if (!std::strcmp(k, "key")) {
      sp->key = str_opt(L, k, &sp->key_len);
    } else if (!std::strcmp(k, "password")) {
      sp->password = str_opt(L, k);
    } else if (!std::strcmp(k, "min_version")) {
      sp->min_version = version_opt(L, k);
    } else if (!std::strcmp(k, "max_version")) {
      sp->max_version = version_opt(L, k);
    } else if (!std::strcmp(k, "ciphers")) {
      sp->ciphers = str_opt(L, k);
    } else if (!std::strcmp(k, "ciphersuites")) {
      sp->ciphersuites = str_opt(L, k);
    } else if (!std::strcmp(k, "alpn")) {
      alpn_opt(L, sp);
    } else if (!std::strcmp(k, "request_cert")) {
      sp->request_cert = bool_opt(L, k);
    } else if (!std::strcmp(k, "require_cert")) {
      sp->require_cert = bool_opt(L, k);
    } else if (!std::strcmp(k, "insecure")) {
      sp->insecure = bool_opt(L, k);
    } else {
      bad(L, "unknown option '%s'%s", k);
    }
    lua_pop(L, 1);
  }
  if (sp->key && !sp->cert) luaL_argerror(L, 1, "option 'key' needs option 'cert'");
  if (sp->cert && !sp->key) luaL_argerror(L, 1, "option 'cert' needs option 'key'");
  if (sp->max_version && sp->max_version < sp->min_version)
    luaL_argerror(L, 1, "max_version is below min_version");
}

TlsConfig** check_ctx_ud(lua_State* L, int idx) {
  return static_cast<TlsConfig**>(luaL_checkudata(L, idx, kTypeName));
}

int tlsctx_new(lua_State* L) {
  Spec sp;
  parse_spec(L, &sp);
  // Made empty, with its finalizer, before it owns anything.
  TlsConfig** ud = static_cast<TlsConfig**>(lua_newuserdatauv(L, sizeof(TlsConfig*), 0));
  *ud = nullptr;
  luaL_setmetatable(L, kTypeName);
  char err[1024];
  *ud = build(sp, err, sizeof err);
  if (!*ud) return luaL_error(L, "net.TLSContext: %s", err);
  return 1;
}

int tlsctx_gc(lua_State* L) {
  TlsConfig** ud = check_ctx_ud(L, 1);
  tls_config_release(*ud);
  *ud = nullptr;
  return 0;
}

int tlsctx_tostring(lua_State* L) {
  TlsConfig** ud = check_ctx_ud(L, 1);
  lua_pushfstring(L, "%s (%s)", kTypeName, *ud && (*ud)->insecure ? "insecure" : "verifying");
  return 1;
}

const luaL_Reg kMethods[] = {{nullptr, nullptr}};
const luaL_Reg kMeta[] = {{"__gc", tlsctx_gc}, {"__tostring", tlsctx_tostring}, {nullptr, nullptr}};

// The default client context (tls = true), made on first use; raises when
// it cannot be made.
TlsConfig* default_client(lua_State* L, Context* ctx) {
  TlsShared* sh = tls_shared(ctx);
  if (!sh) luaL_error(L, "tls: out of memory");
  if (!sh->default_client) {
    Spec sp;
    char err[1024];
    sh->default_client = build(sp, err, sizeof err);
    if (!sh->default_client) luaL_error(L, "tls = true: %s", err);
  }
  return sh->default_client;
}

TlsConfig* opt_config(lua_State* L, int idx) {
  TlsConfig** ud = static_cast<TlsConfig**>(luaL_testudata(L, idx, kTypeName));
  return ud ? *ud : nullptr;
}

}  // namespace

bool tls_built() noexcept { return true; }

void tls_config_retain(TlsConfig* c) noexcept {
  if (c) c->refs++;
}

void tls_config_release(TlsConfig* c) noexcept {
  if (!c || --c->refs > 0) return;
  SSL_CTX_free(c->ctx);
  delete c;
}

void tls_sni_retain(TlsSni* s) noexcept {
  if (s) s->refs++;
}

void tls_sni_release(TlsSni* s) noexcept {
  if (!s || --s->refs > 0) return;
  for (int i = 0; i < s->n; i++) tls_config_release(s->e[i].cfg);
  std::free(s);
}

TlsShared* tls_shared(Context* ctx) noexcept {
  if (!ctx->tls) ctx->tls = new (std::nothrow) TlsShared();
  return ctx->tls;
}

void tls_shared_free(TlsShared* s) noexcept {
  if (!s) return;
  if (s->bio) BIO_meth_free(s->bio);
  tls_config_release(s->default_client);
  delete s;
}

bool parse_tls_option(lua_State* L, int arg, const char* key, Options* o) {
  if (!std::strcmp(key, "tls")) {
    o->tls = nullptr;
    o->tls_default = false;
    if (lua_isboolean(L, -1)) {
      o->tls_default = lua_toboolean(L, -1);
    } else if (TlsConfig* cfg = opt_config(L, -1)) {
      o->tls = cfg;  // borrowed: the options table holds the userdata
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "option 'tls' must be a net.TLSContext or a boolean, got %s",
                                            luaL_typename(L, -1)));
    }
    return true;
  }
  if (!std::strcmp(key, "servername")) {
    if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
      o->servername_mode = -1;
      o->servername[0] = '\0';
      return true;
    }
    size_t len = 0;
    const char* s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : nullptr;
    if (!s) luaL_argerror(L, arg, lua_pushfstring(L, "option 'servername' must be a string or false, got %s",
                                                  luaL_typename(L, -1)));
    if (len == 0 || len > 255 || std::memchr(s, '\0', len))
      luaL_argerror(L, arg, "option 'servername' must be 1 to 255 bytes without NUL");
    std::memcpy(o->servername, s, len);
    o->servername[len] = '\0';
    o->servername_mode = 1;
    return true;
  }
  if (!std::strcmp(key, "handshake_timeout")) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 0 || v > (lua_Integer{1} << 40))
      luaL_argerror(L, arg, "option 'handshake_timeout' must be an integer from 0 (none) to 2^40 ms");
    o->handshake_timeout_ms = v;
    return true;
  }
  if (!std::strcmp(key, "sni")) {
    if (!lua_istable(L, -1))
      luaL_argerror(L, arg, lua_pushfstring(L, "option 'sni' must be a table of name = net.TLSContext, got %s",
                                            luaL_typename(L, -1)));
    int t = lua_absindex(L, -1);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      size_t len = 0;
      if (lua_type(L, -2) != LUA_TSTRING || (lua_tolstring(L, -2, &len), len == 0 || len > 255))
        luaL_argerror(L, arg, "option 'sni': names must be strings of 1 to 255 bytes");
      if (!opt_config(L, -1))
        luaL_argerror(L, arg, lua_pushfstring(L, "option 'sni': the value for '%s' must be a net.TLSContext",
                                              lua_tostring(L, -2)));
      lua_pop(L, 1);
    }
    o->sni_idx = lua_absindex(L, -3);  // the options table: tls_options_prepare reads it again
    o->sni = nullptr;  // a copy's table is replaced, not released (it is not owned yet)
    return true;
  }
  return false;
}

namespace {

int sni_gc(lua_State* L) {
  TlsSni** box = static_cast<TlsSni**>(lua_touserdata(L, 1));
  tls_sni_release(*box);
  *box = nullptr;
  return 0;
}

// The sni table as a TlsSni, owned by a userdata left on the stack (so an
// error raised before tls_options_retain frees it with the userdata).
void make_sni(lua_State* L, Options* o) {
  lua_getfield(L, o->sni_idx, "sni");
  int t = lua_gettop(L);
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) n++, lua_pop(L, 1);
  TlsSni** box = static_cast<TlsSni**>(lua_newuserdatauv(L, sizeof(TlsSni*), 0));
  *box = nullptr;
  if (luaL_newmetatable(L, "net.tls_sni")) {
    lua_pushcfunction(L, sni_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_remove(L, t);  // the table; the box stays on the stack
  t = lua_absindex(L, o->sni_idx);
  lua_getfield(L, o->sni_idx, "sni");
  TlsSni* s = static_cast<TlsSni*>(std::calloc(1, sizeof(TlsSni) + sizeof(TlsSniEntry) * (n > 0 ? n : 1)));
  if (!s) luaL_error(L, "sni: out of memory");
  s->refs = 1;
  *box = s;
  int tbl = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, tbl) && s->n < n) {
    size_t len = 0;
    const char* name = lua_tolstring(L, -2, &len);  // a string key: no conversion
    TlsConfig* cfg = opt_config(L, -1);
    if (cfg) {
      TlsSniEntry& e = s->e[s->n++];
      for (size_t i = 0; i < len && i < sizeof e.name - 1; i++)
        e.name[i] = static_cast<char>(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
      e.cfg = cfg;
      tls_config_retain(cfg);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);  // the table
  o->sni = s;
  o->sni_idx = 0;
}

}  // namespace

void tls_options_prepare(lua_State* L, Options* o) {
  if (o->tls_default && !o->tls) o->tls = default_client(L, upvalue_context(L));
  if (o->sni_idx) make_sni(L, o);
}

void tls_options_retain(lua_State*, Options* o) noexcept {
  tls_config_retain(o->tls);
  tls_sni_retain(o->sni);
}

void tls_options_release(Options* o) noexcept {
  tls_config_release(o->tls);
  o->tls = nullptr;
  tls_sni_release(o->sni);
  o->sni = nullptr;
}

TlsConfig* check_tls_config(lua_State* L, int idx, bool client) {
  if (client && lua_isboolean(L, idx) && lua_toboolean(L, idx))
    return default_client(L, upvalue_context(L));
  TlsConfig* cfg = opt_config(L, idx);
  if (!cfg) luaL_typeerror(L, idx, client ? "net.TLSContext or true" : "net.TLSContext");
  return cfg;
}

int push_digest(lua_State* L, Digest kind, bool hex) {
  size_t len = 0;
  const char* s = lua_isnoneornil(L, 1) ? "" : luaL_checklstring(L, 1, &len);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(s, len, md, &n, kind == Digest::Md5 ? EVP_md5() : EVP_sha1(), nullptr)) {
    ERR_clear_error();
    return luaL_error(L, "%s: OpenSSL cannot compute it", kind == Digest::Md5 ? "md5" : "sha1");
  }
  if (!hex) {
    lua_pushlstring(L, reinterpret_cast<const char*>(md), n);
    return 1;
  }
  static const char kHex[] = "0123456789abcdef";
  char out[2 * EVP_MAX_MD_SIZE];
  for (unsigned int i = 0; i < n; i++) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 15];
  }
  lua_pushlstring(L, out, 2 * n);
  return 1;
}

void register_tls(lua_State* L, int ctx_idx, int module_idx) {
  register_type(L, ctx_idx, kTypeName, kMethods, kMeta);
  const luaL_Reg constructor[] = {{"TLSContext", tlsctx_new}, {nullptr, nullptr}};
  register_functions(L, ctx_idx, module_idx, constructor);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "tls");
  lua_setfield(L, module_idx, "features");
}

}  // namespace lnet
