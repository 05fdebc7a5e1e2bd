/* udp_loadgen: echoed UDP datagrams per second against an echo server on
 * 127.0.0.1:PORT. Keeps WINDOW datagrams of SIZE bytes in flight; each
 * reply sends the next; when no reply comes for 20 ms (losses), the window
 * is refilled. Counts replies after a 0.5 s warm-up for SECONDS seconds.
 *   udp_loadgen PORT SECONDS [WINDOW [SIZE]]
 * Prints: datagrams_per_s=N refills=M */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: udp_loadgen PORT SECONDS [WINDOW [SIZE]]\n");
    return 1;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[2]);
  int window = argc > 3 ? atoi(argv[3]) : 32;
  int size = argc > 4 ? atoi(argv[4]) : 64;
  char buf[65536];
  memset(buf, 'u', sizeof buf);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    perror("udp_loadgen: connect");
    return 1;
  }
  double start = now(), warm = start + 0.5, end = warm + seconds;
  long counted = 0, refills = 0;
  for (int i = 0; i < window; i++) send(fd, buf, (size_t)size, 0);
  for (;;) {
    double t = now();
    if (t >= end) break;
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, 20);
    if (rc == 0) {  // the window was lost: refill it
      refills++;
      for (int i = 0; i < window; i++) send(fd, buf, (size_t)size, 0);
      continue;
    }
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0) break;
      if (now() >= warm) counted++;
      send(fd, buf, (size_t)size, 0);
    }
  }
  printf("datagrams_per_s=%.0f refills=%ld\n", counted / seconds, refills);
  return counted > 0 ? 0 : 1;
}
