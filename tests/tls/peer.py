#!/usr/bin/env python3
"""A Python ssl peer for the TLS tests (tests/lua/tls/*.lua start it).

peer.py unwrap PORT CAFILE      read up to "bye\\n", then unwrap(): lnet's
                                close_notify must make it succeed
peer.py truncate PORT CAFILE    send "hi\\n", read it back, close the socket
                                without close_notify
peer.py stream PORT CAFILE N    send N pattern bytes while reading the echo
                                back; compare the CRC-32 of both directions
                                (the pattern's odd period makes a lost or
                                reordered block change it), then unwrap()
Prints one result line; exit status 0 only on success.
"""
import hashlib
import selectors
import zlib
import socket
import ssl
import sys
import time


def connect(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    deadline = time.time() + 20
    while True:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=20)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_until(s, end):
    got = b""
    while not got.endswith(end):
        d = s.recv(65536)
        if not d:
            break
        got += d
    return got


def unwrap(port, cafile):
    s = connect(port, cafile)
    got = read_until(s, b"bye\n")
    try:
        s.unwrap()
        print("UNWRAP OK", got.decode(), flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 (any failure is the result)
        print("UNWRAP FAILED", type(e).__name__, e, flush=True)
        return 1


def truncate(port, cafile):
    s = connect(port, cafile)
    s.sendall(b"hi\n")
    got = read_until(s, b"hi\n")
    s.close()  # Python's close sends no close_notify
    print("CLOSED", got.decode().strip(), flush=True)
    return 0


def stream(port, cafile, total):
    s = connect(port, cafile)
    s.setblocking(False)
    period = 65521 * 7  # odd, and no divisor of any chunk size
    base = (hashlib.sha256(b"lnet").digest() * (period // 32 + 1))[:period]
    chunk = 1 << 20
    big = memoryview(base * (chunk // period + 2))
    sent = recvd = 0
    cs = cr = 0
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.time() + 600
    pending = None
    while recvd < total and time.time() < deadline:
        if s.pending() == 0:
            sel.select(1)
        if sent < total:
            if pending is None:
                off = sent % period
                pending = big[off: off + min(chunk, total - sent)]
            try:
                n = s.send(pending)
                cs = zlib.crc32(pending[:n], cs)
                sent += n
                pending = pending[n:] if n < len(pending) else None
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            if sent >= total:
                sel.modify(s, selectors.EVENT_READ)
        try:
            while True:
                d = s.recv(1 << 20)
                if not d:
                    print("EOF after", recvd, flush=True)
                    return 1
                cr = zlib.crc32(d, cr)
                recvd += len(d)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
    ok = sent == total and recvd == total and cs == cr
    print("STREAM", "OK" if ok else "BAD", sent, recvd, "%08x %08x" % (cs, cr), flush=True)
    s.setblocking(True)
    s.unwrap()  # an orderly end: close_notify
    s.close()
    return 0 if ok else 1


def main():
    mode, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "unwrap":
        return unwrap(port, cafile)
    if mode == "truncate":
        return truncate(port, cafile)
    if mode == "stream":
        return stream(port, cafile, int(sys.argv[4]))
    print("unknown mode", mode)
    return 2


sys.exit(main())
