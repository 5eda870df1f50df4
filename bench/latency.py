#!/usr/bin/python3
"""End-of-DATA -> 250 latency: CONCURRENCY clients, one SMTP session per message,
each timing from writing the final "<CRLF>.<CRLF>" to reading the whole reply.
Runs the compiled client bench/latency.rs when it is built (`cargo build --release
--example latency`; LATENCY_CLIENT=python forces this file's own): at 50 sessions
this interpreter's per-reply cost shows up as server latency.

  latency.py PORT COUNT CONCURRENCY SIZE [FROM] [TO]   -> prints JSON
  {"n": ..., "p50_ms": ..., "p99_ms": ..., "failed": ...}"""

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time

# One event loop drives every session (no threads), so a reply is timed when it
# arrives, not when a thread next gets the interpreter lock: with 50 threads the
# client's own scheduling showed up as tens of milliseconds of "latency".


async def reply(r):
    """Reads one (possibly multi-line) reply; returns the code."""
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def session(port, body, mail_from, rcpt):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        if await reply(r) != 220:
            raise ConnectionError("greeting")
        for cmd, want in ((b"EHLO latency.test", 250), (f"MAIL FROM:<{mail_from}>".encode(), 250),
                          (f"RCPT TO:<{rcpt}>".encode(), 250), (b"DATA", 354)):
            w.write(cmd + b"\r\n")
            if await reply(r) != want:
                raise ConnectionError(cmd.decode())
        w.write(body)
        await w.drain()
        t0 = time.perf_counter()
        w.write(b".\r\n")
        code = await reply(r)
        dt = time.perf_counter() - t0
        w.write(b"QUIT\r\n")
        await w.drain()
        if code != 250:
            raise ConnectionError(f"DATA {code}")
        return dt
    finally:
        w.close()


async def run(port, count, conc, size, mail_from, rcpt):
    line = b"x" * 76 + b"\r\n"
    body = (f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: latency\r\n\r\n").encode() + line * max(1, size // 78)
    left = [count]
    times, failed = [], [0]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            try:
                times.append(await asyncio.wait_for(session(port, body, mail_from, rcpt), 60))
            except (OSError, asyncio.TimeoutError):
                failed[0] += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    return times, failed[0]


def rust_client():
    """The compiled client (bench/latency.rs), unless LATENCY_CLIENT=python."""
    if os.environ.get("LATENCY_CLIENT") == "python":
        return None
    root = pathlib.Path(__file__).resolve().parent.parent
    for p in (root / "target/release/examples/latency", root / "target/debug/examples/latency"):
        if p.exists():
            return p
    return None


def measure(port, count, conc, size, mail_from="from@example.com", rcpt="to@remote.test"):
    client = rust_client()
    if client:
        out = subprocess.run([str(client), str(port), str(count), str(conc), str(size), mail_from, rcpt],
                             capture_output=True, text=True, timeout=600)
        if out.returncode == 0:
            return json.loads(out.stdout)
        print(f"latency: {client} failed ({out.stderr.strip()}); using the Python client", file=sys.stderr)
    times, failed = asyncio.run(run(port, count, conc, size, mail_from, rcpt))
    times.sort()

    def pct(p):
        return round(times[min(len(times) - 1, int(p * len(times)))] * 1000, 2) if times else None

    return {"n": len(times), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "failed": failed, "client": "python"}


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(measure(int(a[0]), int(a[1]), int(a[2]), int(a[3]), *a[4:6])))
