// What tls.cc and tls_context.cc share (not for the rest of lnet).
#pragma once

#include "tls.hh"

#include <openssl/ssl.h>

namespace lnet {

struct TlsConfig {
  int refs = 1;
  SSL_CTX* ctx = nullptr;
  bool insecure = false;       // no certificate or name checks (client)
  bool request_cert = false;   // server: ask for a client certificate
  bool require_cert = false;   // server: refuse a client without a valid one
  unsigned char alpn[256] = {};  // wire format, for the server's choice
  unsigned alpn_len = 0;
};

struct TlsSniEntry {
  char name[256];  // lowercase
  TlsConfig* cfg;
};

struct TlsSni {
  int refs = 1;
  int n = 0;
  TlsSniEntry e[1];  // n entries (allocated to size)
};

struct TlsShared {
  BIO_METHOD* bio = nullptr;            // lnet's socket BIO (tls.cc)
  TlsConfig* default_client = nullptr;  // tls = true
};

void tls_sni_retain(TlsSni* s) noexcept;
void tls_sni_release(TlsSni* s) noexcept;
// The state's shared TLS data, made on first use; null when out of memory.
TlsShared* tls_shared(Context* ctx) noexcept;
// The SSL_CTX servername callback (tls.cc): picks the sni context.
int tls_servername_cb(SSL* ssl, int* alert, void* arg);

}  // namespace lnet
