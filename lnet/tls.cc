// The TLS transform of a connection: a Transport (conn.hh) that drives
// OpenSSL directly on the connection's socket (never bufferevent_openssl).
// The Conn's read path, write path, queue (plaintext) and teardown are the
// same as for plaintext; only the transport's functions differ:
//   read:  SSL_read, as many records as fit in the 64 KiB buffer;
//   write: SSL_write (partial writes: a record at a time);
//   shutdown_write: close_notify, then the FIN;
//   has_pending: decrypted bytes OpenSSL holds (delivered after resume()).
// OpenSSL reads and writes the socket through lnet's BIO (recv, and send
// with MSG_NOSIGNAL). The handshake runs from the connection's read and
// write events (tls_handshake); the owner hears of its end through
// conn_secured, or a close with EndKind::Tls. The OpenSSL error queue is
// cleared before every call, so one connection's errors never show up on
// another.
#include "address.hh"
#include "conn.hh"
#include "errors.hh"
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
  TlsConfig* cfg = nullptr;   // retained
  TlsSni* sni = nullptr;      // retained (server)
  evbuffer* prefix = nullptr; // starttls: plaintext queued before the upgrade, sent first
  event* hs_ev = nullptr;     // handshake_timeout
  TlsRole role = TlsRole::Client;
  bool handshaking = true;
  bool failed = false;        // the handshake failed: msg says why
  bool starttls = false;
  bool starved = false;       // the last SSL_read wanted more input
  bool drained = false;       // a recv in this tls_read took less than asked: the socket is empty
  bool close_notify_sent = false;
  int io_err = 0;             // errno of the BIO's last failed recv/send
  int stashed = 0;            // an end met after bytes were returned: 1 EOF, -1 failure
  int stashed_err = 0;
  const char* code = nullptr;
  char servername[256] = "";  // the SNI sent (client)
  char ip[kIpLen] = "";
  int port = 0;
  char msg[300] = "";
};

namespace {

constexpr size_t kStage = 16384;  // one record of plaintext

// Empties the thread's OpenSSL error queue before an SSL call (SSL_get_error
// reads it). ERR_clear_error walks all 16 slots (about 400 instructions);
// the queue is nearly always empty already, which ERR_peek_error sees for
// a fraction of that: the hot paths (tls_read, tls_write) use this.
inline void clear_errors() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

// --- the BIO: recv and send on the connection's socket --------------------

// Sends what starttls found queued in plaintext; true when none is left.
bool flush_prefix(Tls* t) noexcept {
  Conn* c = t->c;
  while (t->prefix && evbuffer_get_length(t->prefix) > 0) {
    size_t n = evbuffer_get_contiguous_space(t->prefix);
    ssize_t w = ::send(c->fd, evbuffer_pullup(t->prefix, static_cast<ssize_t>(n)), n,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w <= 0) {
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) t->io_err = errno;
      return false;
    }
    evbuffer_drain(t->prefix, static_cast<size_t>(w));
    c->bytes_out += static_cast<uint64_t>(w);
  }
  if (t->prefix) evbuffer_free(t->prefix);
  t->prefix = nullptr;
  return true;
}

int bio_write(BIO* b, const char* data, int len) {
  Tls* t = static_cast<Tls*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (!flush_prefix(t)) {
    if (t->io_err) return -1;
    BIO_set_retry_write(b);
    return -1;
  }
  ssize_t n = ::send(t->c->fd, data, static_cast<size_t>(len), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) return static_cast<int>(n);
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
    BIO_set_retry_write(b);
  else
    t->io_err = err;
  return -1;
}

int bio_read(BIO* b, char* buf, int len) {
  Tls* t = static_cast<Tls*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  ssize_t n = ::recv(t->c->fd, buf, static_cast<size_t>(len), 0);
  if (n > 0) t->drained = n < len;
  if (n >= 0) return static_cast<int>(n);  // 0: the peer's FIN
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
    BIO_set_retry_read(b);
  else
    t->io_err = err;
  return -1;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // every write already went to the socket
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
  t->code = kCodeTlsHandshake;
  if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
    std::snprintf(t->msg, sizeof t->msg, "%s (%s)", why ? why : "certificate verify failed",
                  X509_verify_cert_error_string(vr));
    t->code = kCodeTlsVerify;
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

void on_handshake_timeout(evutil_socket_t, short, void* arg) {
  Conn* c = static_cast<Conn*>(arg);
  Tls* t = c->tls;
  if (!t || !t->handshaking || c->state != ConnState::Open) return;
  std::snprintf(t->msg, sizeof t->msg, "handshake timed out");
  t->code = kCodeTlsHandshakeTimeout;
  t->failed = true;
  conn_close(c, EndKind::Error, kTlsFailed);
}

// An SSL_read or SSL_write failed: the errno, or kTlsFailed with msg/code set.
int io_failure(Tls* t, int ssl_err) noexcept {
  unsigned long e = ERR_peek_last_error();
  if ((ssl_err == SSL_ERROR_SYSCALL && t->io_err == 0) ||
      (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error();
    std::snprintf(t->msg, sizeof t->msg, "TLS connection truncated (no close_notify)");
    t->code = kCodeTlsTruncated;
    return kTlsFailed;
  }
  if (ssl_err == SSL_ERROR_SYSCALL) {
    ERR_clear_error();
    return t->io_err;
  }
  const char* why = e ? ERR_reason_error_string(e) : nullptr;
  std::snprintf(t->msg, sizeof t->msg, "TLS error: %s", why ? why : "unknown");
  t->code = kCodeTlsError;
  ERR_clear_error();
  return kTlsFailed;
}

// --- the transport ---------------------------------------------------------

ssize_t tls_read(Conn* c, char* buf, size_t cap, int* err) noexcept {
  Tls* t = c->tls;
  if (t == nullptr || t->ssl == nullptr || t->handshaking) {
    *err = EAGAIN;  // the handshake reads for itself (tls_handshake)
    return -1;
  }
  if (t->stashed) {  // met after the bytes returned last time
    int s = t->stashed;
    t->stashed = 0;
    if (s > 0) return 0;
    *err = t->stashed_err;
    return -1;
  }
  // Fill the buffer with as many records as there are: one data callback
  // for up to 64 KiB, as on plaintext. A short recv emptied the socket:
  // once OpenSSL holds nothing more, stop rather than call recv again only
  // to meet EAGAIN (one system call per round trip saved; the loop's level
  // triggered read event tells of what arrives later).
  size_t got = 0;
  t->drained = false;
  while (got < cap) {
    clear_errors();
    t->io_err = 0;
    int want = cap - got > (1u << 30) ? (1 << 30) : static_cast<int>(cap - got);
    int n = SSL_read(t->ssl, buf + got, want);
    if (n > 0) {
      got += static_cast<size_t>(n);
      t->starved = false;
      if (t->drained && !SSL_has_pending(t->ssl)) break;
      continue;
    }
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      t->starved = e == SSL_ERROR_WANT_READ;
      if (got > 0) return static_cast<ssize_t>(got);
      *err = e == SSL_ERROR_WANT_READ ? EAGAIN : kWantWrite;
      return -1;
    }
    int result = 0;  // EOF
    if (e != SSL_ERROR_ZERO_RETURN) result = io_failure(t, e);  // the peer's close_notify: EOF
    else ERR_clear_error();
    if (got > 0) {
      t->stashed = result == 0 ? 1 : -1;
      t->stashed_err = result;
      return static_cast<ssize_t>(got);
    }
    if (result == 0) return 0;
    *err = result;
    return -1;
  }
  return static_cast<ssize_t>(got);
}

ssize_t tls_write(Conn* c, const iovec* iov, int iovcnt, int* err) noexcept {
  Tls* t = c->tls;
  if (t == nullptr || t->ssl == nullptr) {
    *err = EPIPE;
    return -1;
  }
  if (t->handshaking) {  // the queue waits: the handshake goes first
    *err = kWantRead;
    return -1;
  }
  const char* data = static_cast<const char*>(iov[0].iov_base);
  size_t len = iov[0].iov_len;
  // A retried record must be offered again whole: gather up to one record
  // when the queue's first piece is shorter (the buffer may move:
  // SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
  char stage[kStage];
  if (len < kStage && iovcnt > 1) {
    size_t k = 0;
    for (int i = 0; i < iovcnt && k < kStage; i++) {
      size_t take = iov[i].iov_len < kStage - k ? iov[i].iov_len : kStage - k;
      std::memcpy(stage + k, iov[i].iov_base, take);
      k += take;
    }
    data = stage;
    len = k;
  }
  if (len > (1u << 30)) len = 1u << 30;
  // Record after record (partial-write mode returns after each) until the
  // kernel takes no more; a record that did not go out completely stays in
  // OpenSSL and is offered again from the queue.
  size_t done = 0;
  while (done < len) {
    clear_errors();
    t->io_err = 0;
    int n = SSL_write(t->ssl, data + done, static_cast<int>(len - done));
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (done > 0) return static_cast<ssize_t>(done);  // the error shows on the next call
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE) {
      *err = EAGAIN;
    } else if (e == SSL_ERROR_WANT_READ) {
      *err = kWantRead;
    } else {
      *err = io_failure(t, e);
      if (*err == 0) *err = EPIPE;
    }
    return -1;
  }
  return static_cast<ssize_t>(done);
}

int tls_shutdown_write(Conn* c) noexcept {
  Tls* t = c->tls;
  if (t && t->ssl && !t->handshaking && !t->close_notify_sent) {
    t->close_notify_sent = true;
    ERR_clear_error();
    SSL_shutdown(t->ssl);  // close_notify goes out now; the peer's is not awaited
    ERR_clear_error();
  }
  return ::shutdown(c->fd, SHUT_WR) == 0 ? 0 : errno;
}

bool tls_has_pending(const Conn* c) noexcept {
  const Tls* t = c->tls;
  if (!t || !t->ssl || t->handshaking) return false;
  if (t->stashed) return true;
  return SSL_pending(t->ssl) > 0 || (SSL_has_pending(t->ssl) && !t->starved);
}

// The connection closed: OpenSSL's state goes; what messages need stays
// until tls_free.
void tls_release(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t) return;
  if (t->hs_ev) event_free(t->hs_ev);
  t->hs_ev = nullptr;
  if (t->prefix) evbuffer_free(t->prefix);
  t->prefix = nullptr;
  if (t->ssl) SSL_free(t->ssl);
  t->ssl = nullptr;
  tls_config_release(t->cfg);
  t->cfg = nullptr;
  tls_sni_release(t->sni);
  t->sni = nullptr;
}

const Transport kTlsTransport = {tls_read, tls_write, tls_shutdown_write, tls_has_pending,
                                 tls_release};

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

bool tls_handshake(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t || !t->ssl || !t->handshaking) return true;
  ERR_clear_error();
  t->io_err = 0;
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    t->handshaking = false;
    if (t->hs_ev) event_del(t->hs_ev);
    c->owner->conn_secured(c);
    return true;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return false;
  if (e == SSL_ERROR_WANT_WRITE) {
    event_add(c->wev, nullptr);
    return false;
  }
  describe_failure(t, e);
  t->failed = true;
  conn_close(c, EndKind::Error, kTlsFailed);
  return false;
}

bool tls_start(Conn* c, TlsConfig* cfg, TlsRole role, const char* host, const Options* o,
               bool starttls) noexcept {
  tls_free(c);
  BIO_METHOD* m = bio_method(c->ctx);
  Tls* t = m ? new (std::nothrow) Tls() : nullptr;
  if (!t) return false;
  t->c = c;
  t->role = role;
  t->starttls = starttls;
  t->cfg = cfg;
  tls_config_retain(cfg);
  c->tls = t;  // from here tls_free undoes everything
  ERR_clear_error();
  t->ssl = SSL_new(cfg->ctx);
  BIO* bio = t->ssl ? BIO_new(m) : nullptr;
  if (!bio) {
    tls_free(c);
    ERR_clear_error();
    return false;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio);  // the SSL owns the BIO
  SSL_set_app_data(t->ssl, t);
  SSL_set_read_ahead(t->ssl, 1);  // whole records per recv
  SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // The peer's address, for messages once the socket is gone.
  sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (c->fd >= 0 && getpeername(c->fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
    sockaddr_ip(reinterpret_cast<sockaddr*>(&ss), t->ip, sizeof t->ip, &t->port);
  bool ok = true;
  if (role == TlsRole::Client) {
    SSL_set_connect_state(t->ssl);
    const char* name = o->servername_mode == 1 ? o->servername : host;
    if (o->servername_mode >= 0 && !is_ip_literal(name)) {
      std::snprintf(t->servername, sizeof t->servername, "%s", name);
      ok = SSL_set_tlsext_host_name(t->ssl, name) == 1;
    }
    if (!cfg->insecure) {
      SSL_set_verify(t->ssl, SSL_VERIFY_PEER, nullptr);
      // servername = false: no SNI, and the host given to connect is checked.
      X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl);
      // Subject alternative names only (never the CN); a wildcard covers
      // exactly one whole label.
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                 X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      if (is_ip_literal(name))
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1;
      else
        ok = ok && SSL_set1_host(t->ssl, name) == 1;
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
  if (ok && o->handshake_timeout_ms > 0) {
    t->hs_ev = event_new(c->ctx->base, -1, 0, on_handshake_timeout, c);
    if (t->hs_ev) {
      timeval tv = ms_timeval(o->handshake_timeout_ms);
      event_add(t->hs_ev, &tv);
    } else {
      ok = false;
    }
  }
  if (ok && starttls && conn_queued(c) > 0) {
    // Plaintext queued before the upgrade goes out first, as plaintext.
    t->prefix = evbuffer_new();
    ok = t->prefix && evbuffer_add_buffer(t->prefix, c->out) == 0;
  }
  if (!ok) {
    tls_free(c);
    ERR_clear_error();
    return false;
  }
  c->transport = &kTlsTransport;
  if (t->prefix) event_add(c->wev, nullptr);
  // The hello goes from the loop (the socket is writable at once): under
  // starttls() this is a Lua call, and 'secured' must never fire inside it
  // (SPEC Part C), nor dispatch onto the loop's thread while a coroutine runs.
  if (role == TlsRole::Client && c->state == ConnState::Open) event_add(c->wev, nullptr);
  return true;
}

bool tls_handshaking(const Conn* c) noexcept { return c->tls && c->tls->ssl && c->tls->handshaking; }
bool tls_handshake_failed(const Conn* c) noexcept { return c->tls && c->tls->failed; }
bool tls_is_starttls(const Conn* c) noexcept { return c->tls && c->tls->starttls; }
const char* tls_peer_ip(const Conn* c) noexcept { return c->tls ? c->tls->ip : ""; }
int tls_peer_port(const Conn* c) noexcept { return c->tls ? c->tls->port : 0; }
const char* tls_end_reason(const Conn* c) noexcept { return c->tls ? c->tls->msg : "TLS failure"; }
const char* tls_end_code(const Conn* c) noexcept {
  return c->tls && c->tls->code ? c->tls->code : kCodeTlsError;
}

void tls_free(Conn* c) noexcept {
  Tls* t = c->tls;
  if (!t) return;
  tls_release(c);
  c->tls = nullptr;
  if (c->transport == &kTlsTransport) c->transport = &kPlainTransport;
  delete t;
}

// --- tlsinfo ---------------------------------------------------------------

namespace {

// The functions below copy what OpenSSL holds into fixed buffers and free
// it before pushing: a memory error raised by a push leaks nothing.

void push_name(lua_State* L, X509_NAME* name) {
  char text[1024];
  size_t n = 0;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
    char* p = nullptr;
    long len = BIO_get_mem_data(b, &p);
    n = len > 0 ? static_cast<size_t>(len) : 0;
    if (n > sizeof text) n = sizeof text;
    if (n) std::memcpy(text, p, n);
    BIO_free(b);
  }
  lua_pushlstring(L, text, n);
}

void push_time(lua_State* L, const ASN1_TIME* t) {
  struct tm tm;
  if (t && ASN1_TIME_to_tm(t, &tm) == 1)
    lua_pushinteger(L, static_cast<lua_Integer>(timegm(&tm)));
  else
    lua_pushnil(L);
}

constexpr int kMaxSan = 64;

void push_san(lua_State* L, X509* x) {
  static_assert(kMaxSan * 256 <= 16384, "stack use");
  char text[kMaxSan][256];
  int k = 0;
  GENERAL_NAMES* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && k < kMaxSan; i++) {
    GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    char* out = text[k];
    out[0] = '\0';
    if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
      const ASN1_STRING* s = g->d.ia5;
      std::snprintf(out, 256, "%.*s", ASN1_STRING_length(s),
                    reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)));
    } else if (g->type == GEN_IPADD) {
      const ASN1_STRING* s = g->d.ip;
      int af = ASN1_STRING_length(s) == 4 ? AF_INET : ASN1_STRING_length(s) == 16 ? AF_INET6 : 0;
      if (af == 0 || !inet_ntop(af, ASN1_STRING_get0_data(s), out, 256)) out[0] = '\0';
    }
    if (out[0]) k++;
  }
  GENERAL_NAMES_free(names);
  ERR_clear_error();
  lua_createtable(L, k, 0);
  for (int i = 0; i < k; i++) {
    lua_pushstring(L, text[i]);
    lua_rawseti(L, -2, i + 1);
  }
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
  if (!t || !t->ssl || t->handshaking || c->state == ConnState::Closed || c->state == ConnState::Idle) {
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
