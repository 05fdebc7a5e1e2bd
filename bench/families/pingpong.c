/* pingpong: round trips per second of SIZE-byte messages over CONNS
 * connections to an echo server, over TCP (127.0.0.1:PORT) or a Unix socket
 * (PATH). Counts after a 0.5 s warm-up for SECONDS seconds.
 *   pingpong tcp PORT CONNS SECONDS [SIZE]
 *   pingpong unix PATH CONNS SECONDS [SIZE]
 * Prints: rt_per_s=N */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: pingpong tcp PORT|unix PATH CONNS SECONDS [SIZE]\n");
    return 1;
  }
  int unix_mode = strcmp(argv[1], "unix") == 0;
  int conns = atoi(argv[3]);
  double seconds = atof(argv[4]);
  int size = argc > 5 ? atoi(argv[5]) : 64;
  char msg[65536], buf[65536];
  memset(msg, 'p', sizeof msg);
  int ep = epoll_create1(0);
  int* got = calloc((size_t)conns, sizeof *got);
  for (int i = 0; i < conns; i++) {
    int fd;
    if (unix_mode) {
      struct sockaddr_un su;
      memset(&su, 0, sizeof su);
      su.sun_family = AF_UNIX;
      strncpy(su.sun_path, argv[2], sizeof su.sun_path - 1);
      fd = socket(AF_UNIX, SOCK_STREAM, 0);
      if (connect(fd, (struct sockaddr*)&su, sizeof su) != 0) { perror("connect"); return 1; }
    } else {
      struct sockaddr_in sa;
      memset(&sa, 0, sizeof sa);
      sa.sin_family = AF_INET;
      sa.sin_port = htons((unsigned short)atoi(argv[2]));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      fd = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct epoll_event ev = {EPOLLIN, {.u64 = ((uint64_t)i << 32) | (uint32_t)fd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (write(fd, msg, (size_t)size) != size) return 1;
  }
  double warm = now() + 0.5, end = warm + seconds;
  long counted = 0;
  struct epoll_event evs[256];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; k++) {
      int fd = (int)(uint32_t)evs[k].data.u64;
      int i = (int)(evs[k].data.u64 >> 32);
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) { fprintf(stderr, "connection ended\n"); return 1; }
      got[i] += (int)r;
      if (got[i] >= size) {
        got[i] -= size;
        if (now() >= warm) counted++;
        if (write(fd, msg, (size_t)size) != size) return 1;
      }
    }
  }
  printf("rt_per_s=%.0f\n", counted / seconds);
  return 0;
}
