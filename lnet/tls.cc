// The TLS transform of a connection: OpenSSL driven directly on the
// connection's socket and write path (never bufferevent_openssl).
//
// Reading: the connection's read event calls tls_on_readable, which runs
// the handshake or SSL_read; OpenSSL pulls ciphertext with recv() through
// lnet's BIO. Decrypted bytes go to the owner exactly as plaintext reads do.
// Writing: SSL_write and SSL_shutdown push records through the BIO into
// conn_write (write-through, then the connection's queue), so writes never
// block inside OpenSSL and use MSG_NOSIGNAL like every other write.
// The OpenSSL error queue is cleared before every call, so one connection's
// errors never show up on another.
#include "address.hh"
#include "conn.hh"
#include "tls_internal.hh"

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>

namespace lnet {

struct Tls {
  Conn* c = nullptr;
  SSL* ssl = nullptr;
  TlsConfig* cfg = nullptr;  // retained
  TlsSni* sni = nullptr;     // retained (server)
  TlsRole role = TlsRole::Client;
  bool handshaking = true;
  bool failed = false;       // the handshake failed: msg says why
  bool starttls = false;
  bool close_notify_sent = false;
  int io_err = 0;            // the errno of the BIO's last failed recv
  event* hs_ev = nullptr;    // handshake_timeout
  evbuffer* early = nullptr; // plaintext sent before the handshake finished
  uint64_t plain_out = 0;
  const char* code = nullptr;
  char servername[256] = "";  // the SNI sent (client)
  char ip[kIpLen] = "";
  int port = 0;
  char msg[300] = "";
};

namespace {

constexpr int kReadRounds = 4;  // buffers of plaintext per readable event

// --- the BIO: recv from the socket, write through the connection ----------

int bio_write(BIO* b, const char* data, int len) {
  Conn* c = static_cast<Conn*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  // Never a retry: what the kernel does not take waits in the queue.
  return conn_write(c, data, static_cast<size_t>(len)) ? len : -1;
}

int bio_read(BIO* b, char* buf, int len) {
  Conn* c = static_cast<Conn*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0 || c->fd < 0) return 0;
  ssize_t n = ::recv(c->fd, buf, static_cast<size_t>(len), 0);
  if (n >= 0) return static_cast<int>(n);  // 0: the peer's FIN
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
    BIO_set_retry_read(b);
  } else if (c->tls) {
    c->tls->io_err = err;
  }
  return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // writes are already on their way
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* bio_method(Context* ctx) noexcept {
  TlsShared* sh = tls_shared(ctx);
  if (!sh) return nullptr;
  if (!sh->bio) {
    BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_get_new_index(), "lnet socket");
    if (!m) return nullptr;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    sh->bio = m;
  }
  return sh->bio;
}

bool is_ip_literal(const char* host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

// Why the handshake failed, in OpenSSL's words, into t->msg and t->code.
void describe_failure(Tls* t, int ssl_err) {
  unsigned long e = ERR_peek_last_error();
  const char* why = e ? ERR_reason_error_string(e) : nullptr;
  long vr = SSL_get_verify_result(t->ssl);
  t->code = "TLS_HANDSHAKE";
  if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
    std::snprintf(t->msg, sizeof t->msg, "%s (%s)", why ? why : "certificate verify failed",
                  X509_verify_cert_error_string(vr));
    t->code = "TLS_VERIFY";
  } else if (why) {
    std::snprintf(t->msg, sizeof t->msg, "%s", why);
  } else if (e) {
    ERR_error_string_n(e, t->msg, sizeof t->msg);
  } else if (t->io_err) {
    std::snprintf(t->msg, sizeof t->msg, "%s", std::strerror(t->io_err));
  } else if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN) {
    std::snprintf(t->msg, sizeof t->msg, "connection closed by the peer during the handshake");
  } else {
    std::snprintf(t->msg, sizeof t->msg, "handshake failed (SSL error %d)", ssl_err);
  }
  ERR_clear_error();
}

void end_with(Conn* c, const char* code) noexcept {
  Tls* t = c->tls;
  t->code = code;
  conn_close(c, EndKind::Error, 0);
  c->reason = t->msg;  // after conn_close, which set the errno text
}

void handshake_failed(Conn* c, int ssl_err) noexcept {
  Tls* t = c->tls;
  describe_failure(t, ssl_err);
  t->failed = true;
  end_with(c, t->code);
}

void on_handshake_timeout(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  Tls* t = c->tls;
  if (!t || !t->handshaking || c->state != ConnState::Open) return;
  std::snprintf(t->msg, sizeof t->msg, "handshake timed out");
  t->failed = true;
  end_with(c, "TLS_HANDSHAKE_TIMEOUT");
}

// Sends what was queued before the handshake finished.
bool flush_early(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t->early) return true;
  while (evbuffer_get_length(t->early) > 0) {
    size_t n = evbuffer_get_contiguous_space(t->early);
    if (!tls_send(c, reinterpret_cast<const char*>(evbuffer_pullup(t->early, static_cast<ssize_t>(n))), n))
      return false;
    evbuffer_drain(t->early, n);
  }
  evbuffer_free(t->early);
  t->early = nullptr;
  return true;
}

// One step of the handshake; true when it has finished (and the owner was
// told), false while it goes on or once it failed.
bool handshake(Conn* c) noexcept {
  Tls* t = c->tls;
  ERR_clear_error();
  t->io_err = 0;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->handshaking = false;
    if (t->hs_ev) event_del(t->hs_ev);
    if (!flush_early(c)) {
      std::snprintf(t->msg, sizeof t->msg, "out of memory");
      end_with(c, "ENOMEM");
      return false;
    }
    c->owner->conn_secured(c);
    return true;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
  handshake_failed(c, e);
  return false;
}

void read_failed(Conn* c, int ssl_err) noexcept {
  Tls* t = c->tls;
  unsigned long e = ERR_peek_last_error();
  if ((ssl_err == SSL_ERROR_SYSCALL && t->io_err == 0) ||
      (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    std::snprintf(t->msg, sizeof t->msg, "TLS connection truncated (no close_notify)");
    end_with(c, "TLS_TRUNCATED");
    return;
  }
  if (ssl_err == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    int err = t->io_err;
    conn_close(c, EndKind::Error, err);  // an errno: its own code
    return;
  }
  const char* why = e ? ERR_reason_error_string(e) : nullptr;
  std::snprintf(t->msg, sizeof t->msg, "TLS error: %s", why ? why : "unknown");
  ERR_clear_error();
  end_with(c, "TLS_ERROR");
}

}  // namespace

// The sni listen option: the context for the name the client asked for.
int tls_servername_cb(SSL* ssl, int*, void*) {
  Tls* t = static_cast<Tls*>(SSL_get_app_data(ssl));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!t || !t->sni || !name) return SSL_TLSEXT_ERR_OK;
  for (int i = 0; i < t->sni->n; i++) {
    if (strcasecmp(t->sni->e[i].name, name) == 0) {
      if (SSL_set_SSL_CTX(ssl, t->sni->e[i].cfg->ctx) == nullptr) return SSL_TLSEXT_ERR_ALERT_FATAL;
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;  // an unknown name: the tls context
}

bool tls_start(Conn* c, TlsConfig* cfg, TlsRole role, const char* host, int port,
               const Options* o, bool starttls) noexcept {
  tls_free(c);
  BIO_METHOD* m = bio_method(c->ctx);
  Tls* t = m ? new (std::nothrow) Tls() : nullptr;
  if (!t) return false;
  t->c = c;
  t->role = role;
  t->starttls = starttls;
  t->cfg = cfg;
  tls_config_retain(cfg);
  ERR_clear_error();
  t->ssl = SSL_new(cfg->ctx);
  BIO* bio = t->ssl ? BIO_new(m) : nullptr;
  if (!bio) {
    tls_config_release(cfg);
    if (t->ssl) SSL_free(t->ssl);
    delete t;
    ERR_clear_error();
    return false;
  }
  t->plain_out = conn_bytes_out(c);  // starttls: what went out in plaintext
  c->tls = t;
  BIO_set_data(bio, c);
  SSL_set_bio(t->ssl, bio, bio);  // the SSL owns the BIO
  SSL_set_app_data(t->ssl, t);
  SSL_set_read_ahead(t->ssl, 1);  // fewer recv calls: whole records at once
  // The peer's address, for messages once the socket is gone.
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (c->fd >= 0 && getpeername(c->fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
    sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), t->ip, sizeof t->ip, &t->port);
  bool ok = true;
  if (role == TlsRole::Client) {
    SSL_set_connect_state(t->ssl);
    const char* name = o->servername_mode == 1 ? o->servername : host;
    bool ip = is_ip_literal(name);
    if (o->servername_mode >= 0 && !ip) {
      std::snprintf(t->servername, sizeof t->servername, "%s", name);
      ok = SSL_set_tlsext_host_name(t->ssl, name) == 1;
    }
    if (!cfg->insecure) {
      SSL_set_verify(t->ssl, SSL_VERIFY_PEER, nullptr);
      // servername = false: no SNI, and the host given to connect is checked.
      const char* check = o->servername_mode == 1 ? o->servername : host;
      X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl);
      // Subject alternative names only (never the CN); a wildcard covers
      // exactly one whole label.
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                 X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      if (is_ip_literal(check))
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(param, check) == 1;
      else
        ok = ok && SSL_set1_host(t->ssl, check) == 1;
    } else {
      SSL_set_verify(t->ssl, SSL_VERIFY_NONE, nullptr);
    }
  } else {
    SSL_set_accept_state(t->ssl);
    t->sni = o->sni;
    tls_sni_retain(t->sni);
    if (cfg->require_cert)
      SSL_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    else if (cfg->request_cert)
      // Asked for, checked (tlsinfo's verified), never required.
      SSL_set_verify(t->ssl, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    else
      SSL_set_verify(t->ssl, SSL_VERIFY_NONE, nullptr);
  }
  (void)port;
  if (!ok) {
    tls_free(c);
    ERR_clear_error();
    return false;
  }
  if (o->handshake_timeout_ms > 0) {
    t->hs_ev = event_new(c->ctx->base, -1, 0, on_handshake_timeout, c);
    if (t->hs_ev) {
      timeval tv = ms_timeval(o->handshake_timeout_ms);
      event_add(t->hs_ev, &tv);
    }
  }
  if (role == TlsRole::Client) handshake(c);  // the ClientHello goes out now
  return true;
}

bool tls_handshaking(const Conn* c) noexcept { return c->tls && c->tls->handshaking; }
bool tls_handshake_failed(const Conn* c) noexcept { return c->tls && c->tls->failed; }
bool tls_is_starttls(const Conn* c) noexcept { return c->tls && c->tls->starttls; }
const char* tls_peer_ip(const Conn* c) noexcept { return c->tls ? c->tls->ip : ""; }
int tls_peer_port(const Conn* c) noexcept { return c->tls ? c->tls->port : 0; }
const char* tls_code(const Conn* c) noexcept { return c->tls ? c->tls->code : nullptr; }
size_t tls_early_queued(const Conn* c) noexcept {
  return c->tls && c->tls->early ? evbuffer_get_length(c->tls->early) : 0;
}
uint64_t tls_plain_out(const Conn* c) noexcept { return c->tls ? c->tls->plain_out : 0; }

void tls_on_readable(Conn* c) noexcept {
  Tls* t = c->tls;
  if (t->handshaking) {
    if (!handshake(c)) return;
    // The owner's callback may have closed, paused or upgraded it.
    if (c->tls != t || c->state != ConnState::Open || c->paused || c->read_eof) return;
  }
  char* buf = context_read_buffer(c->ctx);
  if (buf == nullptr) {
    conn_close(c, EndKind::Error, ENOMEM);
    return;
  }
  for (int round = 0; round < kReadRounds; round++) {
    size_t got = 0;
    int err = SSL_ERROR_NONE;
    while (got < kReadBufferSize) {
      ERR_clear_error();
      t->io_err = 0;
      int n = SSL_read(t->ssl, buf + got, static_cast<int>(kReadBufferSize - got));
      if (n > 0) {
        got += static_cast<size_t>(n);
        continue;
      }
      err = SSL_get_error(t->ssl, n);
      break;
    }
    if (got > 0) {
      c->bytes_in += got;
      c->last_active = now_ms();
      c->owner->conn_data(c, buf, got);
      if (c->tls != t || c->state != ConnState::Open || c->paused || c->read_eof) return;
    }
    switch (err) {
      case SSL_ERROR_NONE:
        continue;  // the buffer filled up: more may be there
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return;
      case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify: an orderly end
        ERR_clear_error();
        conn_read_eof(c);
        return;
      default:
        read_failed(c, err);
        return;
    }
  }
  // Fairness: others get their turn; what OpenSSL holds is read next round.
  if (SSL_has_pending(t->ssl) && c->rev) event_active(c->rev, EV_READ, 1);
}

bool tls_send(Conn* c, const char* data, size_t len) noexcept {
  Tls* t = c->tls;
  if (t->handshaking) {
    if (!t->early) t->early = evbuffer_new();
    return t->early && evbuffer_add(t->early, data, len) == 0;
  }
  while (len > 0) {
    int chunk = len > (1u << 30) ? 1 << 30 : static_cast<int>(len);
    ERR_clear_error();
    int n = SSL_write(t->ssl, data, chunk);
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    t->plain_out += static_cast<uint64_t>(n);
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void tls_close_notify(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t || t->close_notify_sent || t->handshaking) return;
  t->close_notify_sent = true;
  ERR_clear_error();
  SSL_shutdown(t->ssl);  // queues close_notify; the peer's is not awaited
  ERR_clear_error();
}

void tls_resume(Conn* c) noexcept {
  Tls* t = c->tls;
  if (t && !t->handshaking && c->rev && SSL_has_pending(t->ssl)) event_active(c->rev, EV_READ, 1);
}

void tls_closed(Conn* c) noexcept {
  Tls* t = c->tls;
  if (t && t->hs_ev) event_del(t->hs_ev);
}

void tls_free(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t) return;
  c->tls = nullptr;
  if (t->hs_ev) event_free(t->hs_ev);
  if (t->early) evbuffer_free(t->early);
  if (t->ssl) SSL_free(t->ssl);
  tls_config_release(t->cfg);
  tls_sni_release(t->sni);
  delete t;
}

// --- tlsinfo ---------------------------------------------------------------

namespace {

void push_name(lua_State* L, X509_NAME* name) {
  BIO* b = BIO_new(BIO_s_mem());
  if (!b) {
    lua_pushliteral(L, "");
    return;
  }
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, static_cast<size_t>(n));  // may raise: b leaks only then
  BIO_free(b);
}

void push_time(lua_State* L, const ASN1_TIME* t) {
  struct tm tm;
  if (t && ASN1_TIME_to_tm(t, &tm) == 1)
    lua_pushinteger(L, static_cast<lua_Integer>(timegm(&tm)));
  else
    lua_pushnil(L);
}

void push_san(lua_State* L, X509* x) {
  lua_newtable(L);
  GENERAL_NAMES* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return;
  int k = 0;
  char text[300];
  for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
    GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    text[0] = '\0';
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      const ASN1_STRING* s = g->d.ia5;
      std::snprintf(text, sizeof text, "%.*s", ASN1_STRING_length(s),
                    reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)));
    } else if (g->type == GEN_IPADD) {
      const ASN1_STRING* s = g->d.ip;
      int af = ASN1_STRING_length(s) == 4 ? AF_INET : ASN1_STRING_length(s) == 16 ? AF_INET6 : 0;
      if (af == 0 || !inet_ntop(af, ASN1_STRING_get0_data(s), text, sizeof text)) text[0] = '\0';
    }
    if (text[0]) {
      lua_pushstring(L, text);  // may raise: names leaks only on a memory error
      lua_rawseti(L, -2, ++k);
    }
  }
  GENERAL_NAMES_free(names);
}

void push_fingerprint(lua_State* L, X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (X509_digest(x, EVP_sha256(), md, &n) != 1) {
    ERR_clear_error();
    lua_pushnil(L);
    return;
  }
  char hex[EVP_MAX_MD_SIZE * 3 + 1];
  static const char kDigits[] = "0123456789ABCDEF";
  size_t p = 0;
  for (unsigned i = 0; i < n; i++) {
    if (i) hex[p++] = ':';
    hex[p++] = kDigits[md[i] >> 4];
    hex[p++] = kDigits[md[i] & 15];
  }
  lua_pushlstring(L, hex, p);
}

}  // namespace

int push_tlsinfo(lua_State* L, const Conn* c) {
  Tls* t = c->tls;
  if (!t || t->handshaking || c->state == ConnState::Closed || c->state == ConnState::Idle) {
    lua_pushnil(L);
    lua_pushstring(L, !t ? "not a TLS connection" : t->handshaking ? "TLS handshake not finished"
                                                                   : "not connected");
    return 2;
  }
  SSL* ssl = t->ssl;
  lua_createtable(L, 0, 7);
  lua_pushstring(L, SSL_get_version(ssl));
  lua_setfield(L, -2, "protocol");
  lua_pushstring(L, SSL_get_cipher_name(ssl));
  lua_setfield(L, -2, "cipher");
  const unsigned char* alpn = nullptr;
  unsigned alen = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alen);
  if (alen) {
    lua_pushlstring(L, reinterpret_cast<const char*>(alpn), alen);
    lua_setfield(L, -2, "alpn");
  }
  const char* sn = t->role == TlsRole::Client ? (t->servername[0] ? t->servername : nullptr)
                                              : SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sn) {
    lua_pushstring(L, sn);
    lua_setfield(L, -2, "servername");
  }
  X509* peer = SSL_get0_peer_certificate(ssl);
  bool checked = t->role == TlsRole::Client ? !t->cfg->insecure : t->cfg->request_cert;
  lua_pushboolean(L, peer && checked && SSL_get_verify_result(ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  if (peer) {
    lua_createtable(L, 0, 6);
    push_name(L, X509_get_subject_name(peer));
    lua_setfield(L, -2, "subject");
    push_name(L, X509_get_issuer_name(peer));
    lua_setfield(L, -2, "issuer");
    push_san(L, peer);
    lua_setfield(L, -2, "san");
    push_time(L, X509_get0_notBefore(peer));
    lua_setfield(L, -2, "not_before");
    push_time(L, X509_get0_notAfter(peer));
    lua_setfield(L, -2, "not_after");
    push_fingerprint(L, peer);
    lua_setfield(L, -2, "fingerprint");
    lua_setfield(L, -2, "peer");
  }
  return 1;
}

}  // namespace lnet
