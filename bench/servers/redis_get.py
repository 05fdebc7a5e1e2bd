#!/usr/bin/env python3
"""Redis GET round trips from a blocking Python socket and a hand-written
request: python3 redis_get.py PORT N. Prints "RESULT rt_per_s=...".
A reference for bench/co_run: the simplest client there is, in another
runtime. Expects the key set to a 3-byte value (bench/co_run sets it)."""
import socket, sys, time

port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"*2\r\n$3\r\nget\r\n$16\r\nkey:__rand_int__\r\n"
reply = b"$3\r\nxxx\r\n"


def get():
    s.sendall(req)
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
