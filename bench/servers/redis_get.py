#!/usr/bin/env python3
"""Redis GET round trips from a blocking Python socket and a hand-written
request: python3 redis_get.py PORT N [--epoll-after-send]. Prints
"RESULT rt_per_s=...". A reference for bench/co_run: the simplest client
there is, in another runtime. With --epoll-after-send it also makes four
useless epoll_ctl calls after each send (as redis-benchmark's event loop
makes epoll_ctl calls around each request): on some machines (the 2-core VM
of the README's figures) that alone makes the round trip much faster, which
shows how much of the comparison is the machine's wake-up path rather than
the client. Expects the key set to a 3-byte value (bench/co_run sets it)."""
import select, socket, sys, time

port, n = int(sys.argv[1]), int(sys.argv[2])
busy = "--epoll-after-send" in sys.argv[3:]
ep = select.epoll()
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"*2\r\n$3\r\nget\r\n$16\r\nkey:__rand_int__\r\n"
reply = b"$3\r\nxxx\r\n"


def get():
    s.sendall(req)
    if busy:
        for _ in range(2):
            ep.register(s.fileno(), select.EPOLLIN)
            ep.unregister(s.fileno())
    got = s.recv(64)
    while len(got) < len(reply):
        got += s.recv(64)
    assert got == reply, got


for _ in range(1000):
    get()
t0 = time.monotonic()
for _ in range(n):
    get()
dt = time.monotonic() - t0
print("RESULT rt_per_s=%.0f n=%d ms=%d" % (n / dt, n, dt * 1000))
