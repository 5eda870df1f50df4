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
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))
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


def send_one(port, tag, size=4096):
    """One session, one message; the DATA reply code (or the first 4xx/5xx code),
    None when the connection failed."""
    pad = ("x" * 76 + "\r\n") * (size // 78)
    msg = (f"From: load@elsewhere.test\r\nTo: someone@remote.test\r\n"
           f"Subject: {tag}\r\nMessage-ID: <{tag}@bench.test>\r\n\r\nbody of {tag}\r\n{pad}")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
            s.ehlo("load.test")
            for code, _ in (s.mail("load@elsewhere.test"), s.rcpt("someone@remote.test")):
                if code >= 400:
                    return code
            return s.data(msg.encode())[0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    except (OSError, smtplib.SMTPException) as e:
        return type(e).__name__  # no SMTP reply: the connection failed


def disk_full_round(args, binary, base):
    """The data directory on a 16 MB tmpfs filled to the last byte: the server must
    refuse with 4xx (never a 250 it cannot keep), stay up, and accept and deliver
    again once space is freed."""
    work = tempfile.mkdtemp(prefix="diskfull-", dir=base)
    mnt = f"{work}/bh"
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt]).returncode != 0:
        print("disk-full: cannot mount a tmpfs (needs root); skipped")
        return True
    sink = Sink(f"{work}/sink")
    bh = Bridgehead(mnt, binary)
    try:
        bh.setup_relay(sink.port)
        bh.start()
        acked = []
        for i in range(5):  # warm up: the database and spool directories exist
            if send_one(bh.port, f"crash-df-warm-{i}") == 250:
                acked.append(f"crash-df-warm-{i}")
        filler = f"{mnt}/filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        full = Counter()
        for i in range(20):
            tag = f"crash-df-full-{i}"
            code = send_one(bh.port, tag)
            full[code] += 1
            if code == 250:
                acked.append(tag)
        alive = bh.proc.poll() is None
        os.unlink(filler)
        time.sleep(1)
        after = Counter()
        for i in range(20):
            tag = f"crash-df-after-{i}"
            code = send_one(bh.port, tag)
            after[code] += 1
            if code == 250:
                acked.append(tag)
        deadline = time.time() + args.drain_timeout
        while time.time() < deadline and bh.queued() != 0:
            time.sleep(0.2)
        drained = bh.queued() == 0
        time.sleep(0.5)
        seen = received(sink)
        lost = sorted(set(acked) - set(seen))
        dups = sum(n - 1 for n in seen.values() if n > 1)
        # Every attempt while full must get a 452 (4.3.1), not a dropped connection.
        ok = alive and drained and not lost and full.get(452, 0) == 20 and after.get(250, 0) == 20
        print(f"disk-full: while full {dict(full)}, server {'up' if alive else 'DIED'}; after freeing "
              f"{dict(after)}; acked {len(acked)}, lost {len(lost)}, duplicates {dups}, "
              f"queue {'empty' if drained else 'NOT DRAINED'}{'' if ok else '  <-- FAIL'}", flush=True)
        if not ok:
            tail = open(f"{mnt}/server.log", errors="replace").read()[-1500:]
            print("   server.log tail:\n" + tail)
        return ok
    finally:
        bh.stop()
        sink.stop()
        subprocess.run(["umount", mnt])
        shutil.rmtree(work, ignore_errors=True)


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
    ap.add_argument("--disk-full", action="store_true",
                    help="also run a disk-full round (data dir on a full 16 MB tmpfs; root)")
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
    if args.disk_full and not disk_full_round(args, binary, base):
        failed += 1
    if failed == 0 and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"summary: {args.rounds} rounds, {total_acked} acknowledged, {total_lost} lost, "
          f"{total_dups} duplicates, {failed} failed rounds")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
