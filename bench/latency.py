#!/usr/bin/python3
"""End-of-DATA -> 250 latency: CONCURRENCY clients, one SMTP session per message,
each timing from writing the final "<CRLF>.<CRLF>" to reading the whole reply.

  latency.py PORT COUNT CONCURRENCY SIZE [FROM] [TO]   -> prints JSON
  {"n": ..., "p50_ms": ..., "p99_ms": ..., "failed": ...}"""

import json
import socket
import sys
import threading
import time


def reply(f):
    """Reads one (possibly multi-line) reply; returns the code."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


def session(port, body, mail_from, rcpt):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        if reply(f) != 220:
            raise ConnectionError("greeting")
        for cmd, want in ((b"EHLO latency.test", 250), (f"MAIL FROM:<{mail_from}>".encode(), 250),
                          (f"RCPT TO:<{rcpt}>".encode(), 250), (b"DATA", 354)):
            s.sendall(cmd + b"\r\n")
            if reply(f) != want:
                raise ConnectionError(cmd.decode())
        s.sendall(body)
        t0 = time.perf_counter()
        s.sendall(b".\r\n")
        code = reply(f)
        dt = time.perf_counter() - t0
        s.sendall(b"QUIT\r\n")
        if code != 250:
            raise ConnectionError(f"DATA {code}")
        return dt


def measure(port, count, conc, size, mail_from="from@example.com", rcpt="to@remote.test"):
    line = b"x" * 76 + b"\r\n"
    body = (f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: latency\r\n\r\n").encode() + line * max(1, size // 78)
    lock = threading.Lock()
    left = [count]
    times, failed = [], [0]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                dt = session(port, body, mail_from, rcpt)
                with lock:
                    times.append(dt)
            except OSError:
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()

    def pct(p):
        return round(times[min(len(times) - 1, int(p * len(times)))] * 1000, 2) if times else None

    return {"n": len(times), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "failed": failed[0]}


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(measure(int(a[0]), int(a[1]), int(a[2]), int(a[3]), *a[4:6])))
