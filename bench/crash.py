#!/usr/bin/python3
"""Crash test: kill -9 Bridgehead while clients send, restart it, and check that
every message a client saw a 250 for reaches the smart host (an smtp-sink).

Per round: a fresh data directory; accepted domains example.com and remote.test
(external relay); a send connector `*` -> smtp-sink; THREADS clients, one SMTP
session per message, each with a unique Subject and Message-ID; kill -9 at a
random moment; restart on the same data directory; clients keep sending for
--after seconds; then wait until the queue is empty and compare what the clients
saw acknowledged with what the sink received.

lost       = acknowledged but never received by the sink (must be 0)
duplicates = received more than once (allowed by SMTP's at-least-once contract,
             reported)
Exit status 1 if any round lost a message or failed to drain its queue."""

import argparse
import random
import re
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import Bridgehead, Sink, bridgehead_bin  # noqa: E402

SUBJECT = re.compile(rb"^Subject: (crash-\S+)", re.M)


class Client(threading.Thread):
    def __init__(self, rnd, t, port, stop, size):
        super().__init__(daemon=True)
        self.rnd, self.t, self.port, self.stop, self.size = rnd, t, port, stop, size
        self.acked = []
        self.refused = Counter()  # reply code -> count (4xx/5xx at any stage)
        self.errors = 0  # connection refused / reset / timeout
        self.i = 0

    def run(self):
        pad = ("x" * 76 + "\r\n") * (self.size // 78)
        while not self.stop.is_set():
            self.i += 1
            tag = f"crash-{self.rnd}-{self.t}-{self.i}"
            msg = (f"From: load@elsewhere.test\r\nTo: someone@remote.test\r\n"
                   f"Subject: {tag}\r\nMessage-ID: <{tag}@bench.test>\r\n\r\n"
                   f"body of {tag}\r\n{pad}")
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as s:
                    s.ehlo("load.test")
                    for code, _ in (s.mail("load@elsewhere.test"),
                                    s.rcpt("someone@remote.test")):
                        if code >= 400:
                            self.refused[code] += 1
                            raise smtplib.SMTPResponseException(code, b"")
                    code, _ = s.data(msg.encode())
                    if code == 250:
                        self.acked.append(tag)
                    else:
                        self.refused[code] += 1
            except smtplib.SMTPResponseException:
                time.sleep(0.02)
            except (OSError, smtplib.SMTPException):
                self.errors += 1
                time.sleep(0.05)  # server down: retry soon


def received(sink):
    seen = Counter()
    for p in sink.files():
        try:
            data = p.read_bytes()
        except OSError:
            continue
        m = SUBJECT.search(data)
        if m:
            seen[m.group(1).decode()] += 1
    return seen


def one_round(rnd, args, binary, base):
    work = tempfile.mkdtemp(prefix=f"round{rnd}-", dir=base)
    sink = Sink(f"{work}/sink")
    bh = Bridgehead(f"{work}/bh", binary)
    try:
        bh.setup_relay(sink.port)
        bh.start()
        stop = threading.Event()
        clients = [Client(rnd, t, bh.port, stop, args.size) for t in range(args.threads)]
        for c in clients:
            c.start()
        delay = random.uniform(args.kill_min, args.kill_max)
        time.sleep(delay)
        acked_at_kill = sum(len(c.acked) for c in clients)
        bh.kill9()
        t0 = time.time()
        bh.start()
        restart = time.time() - t0
        time.sleep(args.after)
        stop.set()
        for c in clients:
            c.join(30)
        acked = [tag for c in clients for tag in c.acked]
        # Drain: the queue empty and the sink's count stable.
        deadline = time.time() + args.drain_timeout
        drained = False
        while time.time() < deadline:
            if bh.queued() == 0:
                drained = True
                break
            time.sleep(0.2)
        time.sleep(0.5)
        seen = received(sink)
        lost = sorted(set(acked) - set(seen))
        dups = sum(n - 1 for n in seen.values() if n > 1)
        unacked_delivered = len(set(seen) - set(acked))
        refused = sum((c.refused for c in clients), Counter())
        ok = drained and not lost
        print(f"round {rnd:2}: kill at {delay:4.2f}s ({acked_at_kill} acked before), "
              f"restart {restart:4.2f}s, acked {len(acked)}, received {len(seen)} distinct, "
              f"lost {len(lost)}, duplicates {dups}, delivered-without-ack {unacked_delivered}, "
              f"refused {dict(refused) or 0}, queue {'empty' if drained else 'NOT DRAINED: %s' % bh.queued()}"
              f"{'' if ok else '  <-- FAIL'}", flush=True)
        if lost:
            print("   lost: " + " ".join(lost[:20]) + (" ..." if len(lost) > 20 else ""))
        return ok, len(acked), len(lost), dups, work
    finally:
        bh.stop()
        sink.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--size", type=int, default=4096, help="approximate message size in bytes")
    ap.add_argument("--kill-min", type=float, default=0.5)
    ap.add_argument("--kill-max", type=float, default=3.0)
    ap.add_argument("--after", type=float, default=1.0,
                    help="seconds of load after the restart (default 1)")
    ap.add_argument("--drain-timeout", type=float, default=120)
    ap.add_argument("--seed", type=int, help="random seed (kill moments)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = ap.parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    binary = bridgehead_bin()
    base = tempfile.mkdtemp(prefix="bridgehead-crash-")
    print(f"crash test: {args.rounds} rounds, {args.threads} clients, ~{args.size} B messages, "
          f"kill -9 at {args.kill_min}-{args.kill_max}s, binary {binary}", flush=True)
    total_acked = total_lost = total_dups = failed = 0
    for rnd in range(1, args.rounds + 1):
        ok, acked, lost, dups, work = one_round(rnd, args, binary, base)
        total_acked += acked
        total_lost += lost
        total_dups += dups
        if not ok:
            failed += 1
            print(f"   kept {work} for inspection")
        elif not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if failed == 0 and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"summary: {args.rounds} rounds, {total_acked} acknowledged, {total_lost} lost, "
          f"{total_dups} duplicates, {failed} failed rounds")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
