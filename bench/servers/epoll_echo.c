/* epoll_echo: the smallest echo server, level-triggered epoll, one thread.
 * The physical limit the other servers are compared with.
 * usage: epoll_echo PORT   (listens on 127.0.0.1) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pending { char *buf; size_t len, off; };

static struct pending *pend;   /* indexed by fd: bytes the kernel did not take */
static size_t npend;
static char rbuf[256 * 1024];
static int ep;

static void drop(int fd) {
    if ((size_t)fd < npend) { free(pend[fd].buf); memset(&pend[fd], 0, sizeof pend[fd]); }
    close(fd);
}

static void watch(int fd, int op, unsigned events) {
    struct epoll_event ev = { .events = events, .data.fd = fd };
    epoll_ctl(ep, op, fd, &ev);
}

/* Write p[0..n) now; keep what the kernel did not take and wait for EPOLLOUT
 * (reading stops meanwhile: that is the flow control). 0 = ok, -1 = closed. */
static int out(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((size_t)fd >= npend) {
                size_t nn = (size_t)fd * 2 + 16;
                pend = realloc(pend, nn * sizeof *pend);
                memset(pend + npend, 0, (nn - npend) * sizeof *pend);
                npend = nn;
            }
            struct pending *q = &pend[fd];
            q->buf = realloc(q->buf, n);
            memcpy(q->buf, p, n);
            q->len = n;
            q->off = 0;
            watch(fd, EPOLL_CTL_MOD, EPOLLOUT);
            return 0;
        }
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT\n", argv[0]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 511) < 0) { perror("listen"); return 1; }
    ep = epoll_create1(EPOLL_CLOEXEC);
    watch(lfd, EPOLL_CTL_ADD, EPOLLIN);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    watch(c, EPOLL_CTL_ADD, EPOLLIN);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                struct pending *q = &pend[fd];
                while (q->off < q->len) {
                    ssize_t w = send(fd, q->buf + q->off, q->len - q->off, MSG_NOSIGNAL);
                    if (w > 0) { q->off += (size_t)w; continue; }
                    if (w < 0 && errno == EINTR) continue;
                    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    drop(fd); goto next;
                }
                if (q->off == q->len) { q->len = q->off = 0; watch(fd, EPOLL_CTL_MOD, EPOLLIN); }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, rbuf, sizeof rbuf);
                if (r > 0) { if (out(fd, rbuf, (size_t)r) < 0) drop(fd); }
                else if (r == 0 || (errno != EAGAIN && errno != EINTR)) drop(fd);
            }
        next:;
        }
    }
}
