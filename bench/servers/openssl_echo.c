#define _GNU_SOURCE
/* C OpenSSL TLS echo server, the limit for TLS: one thread, epoll (level
 * triggered), non-blocking sockets, OpenSSL on the fd (SSL_set_fd).
 *
 *   openssl_echo PORT CERT KEY
 *
 * Each connection: the handshake, then SSL_read into a 64 KiB buffer and
 * SSL_write of what was read; a write that would block keeps the rest and
 * stops reading until it has gone (EPOLLOUT). SSL_MODE_RELEASE_BUFFERS, as
 * lnet does, so idle connections hold no TLS buffers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)

struct conn {
  int fd;
  SSL *ssl;
  int handshaking;
  char *pend; /* bytes read but not yet written */
  int pend_len, pend_off;
  unsigned events;
};

static int ep;
static SSL_CTX *ctx;
static char buf[BUF];

static void set_events(struct conn *c, unsigned ev) {
  if (c->events == ev) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

static void drop(struct conn *c) {
  SSL_free(c->ssl);
  close(c->fd);
  free(c->pend);
  free(c);
}

/* Writes what is pending; 1 when all is written, 0 when it must wait, -1 on error. */
static int flush_pending(struct conn *c) {
  while (c->pend_off < c->pend_len) {
    ERR_clear_error();
    int n = SSL_write(c->ssl, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (n > 0) {
      c->pend_off += n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE) { set_events(c, EPOLLOUT); return 0; }
    if (e == SSL_ERROR_WANT_READ) { set_events(c, EPOLLIN); return 0; }
    return -1;
  }
  c->pend_len = c->pend_off = 0;
  set_events(c, EPOLLIN);
  return 1;
}

static void serve(struct conn *c) {
  if (c->handshaking) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) { set_events(c, EPOLLIN); return; }
      if (e == SSL_ERROR_WANT_WRITE) { set_events(c, EPOLLOUT); return; }
      drop(c);
      return;
    }
    c->handshaking = 0;
  }
  if (c->pend_len) {
    int r = flush_pending(c);
    if (r < 0) { drop(c); return; }
    if (r == 0) return;
  }
  for (int rounds = 0; rounds < 16; rounds++) {
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, BUF);
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_READ) { set_events(c, EPOLLIN); return; }
      if (e == SSL_ERROR_WANT_WRITE) { set_events(c, EPOLLOUT); return; }
      drop(c); /* close_notify, EOF or an error */
      return;
    }
    ERR_clear_error();
    int w = SSL_write(c->ssl, buf, n);
    if (w == n) continue;
    int e = SSL_get_error(c->ssl, w);
    if (w > 0 || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      int done = w > 0 ? w : 0;
      if (!c->pend) c->pend = malloc(BUF);
      memcpy(c->pend, buf + done, (size_t)(n - done));
      c->pend_len = n - done;
      c->pend_off = 0;
      /* A retried SSL_write must see the same bytes: flush_pending retries
       * with the pending copy (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
      if (flush_pending(c) < 0) drop(c);
      return;
    }
    drop(c);
    return;
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: openssl_echo PORT CERT KEY\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 511) != 0) {
    perror("bind/listen");
    return 1;
  }
  ep = epoll_create1(0);
  struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c == NULL) {
        for (int k = 0; k < 64; k++) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          c->fd = fd;
          c->ssl = SSL_new(ctx);
          SSL_set_fd(c->ssl, fd);
          SSL_set_accept_state(c->ssl);
          c->handshaking = 1;
          c->events = EPOLLIN;
          struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      serve(c);
    }
  }
}
