#!/usr/bin/python3
"""Open-relay check from outside: nmap's smtp-open-relay script against a real
Bridgehead on loopback.

Bridgehead starts on a fresh data directory with its default configuration: the
three default receive connectors (moved to 127.0.0.1 high ports by environment
variables, before the database is created), one accepted domain example.com (what
an administrator sets up first), and a send connector `*` to a Postfix smtp-sink,
so that anything relayed would really leave and be counted. Protocol logging is
turned on for the three connectors (it changes nothing else) so that the replies
nmap got can be shown.

Runs, each a separate nmap:
  0. calibration: the smtp-sink itself (accepts everything) must come out as
     "Server is an open relay (16/16 tests)", or the parsing below is broken;
  1. the internet connector, default settings, from 127.0.0.1 and (as root) from
     127.0.0.2: the verdict must be exactly "Server doesn't seem to be an open
     relay, all tests failed". (nmap's tests 4-16 use the sender
     antispam@[127.0.0.1], which Bridgehead refuses at MAIL with 501 5.1.7, an
     address literal; refusals count as bad commands, and the default limit is 20,
     Postfix's smtpd_hard_error_limit, so all 16 tests run. With --max-bad-commands
     10 the session ends with 421 after test 13 and nmap prints "connection
     closed" instead.)
  2. the submission connector (STARTTLS then AUTH) from both addresses, and the
     implicit-TLS one from 127.0.0.1: "Server isn't an open relay, authentication
     needed" (or "doesn't seem to be an open relay");
then a replay of nmap's 16 recipient forms with a sender Bridgehead accepts (so
that the relay tricks nmap's own runs never reach are tried too, one session each):
every RCPT must be refused. Finally nothing may have been queued (no RECEIVE
tracking event, no message) or reached the sink.

The relay domain given to nmap (smtp-open-relay.domain) is a foreign domain,
elsewhere.test: giving it the accepted domain would make nmap test local
delivery, not relaying. No packet leaves 127.0.0.0/8 (nmap -Pn -n, target
127.0.0.1, the script only builds address strings from its arguments).

Exit 1 on any open-relay verdict, unexpected nmap output or relayed message."""

import argparse
import glob
from collections import Counter
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import Bridgehead, Sink, bridgehead_bin  # noqa: E402

RELAY_DOMAIN = "elsewhere.test"
NOT_RELAY = "Server doesn't seem to be an open relay, all tests failed"
AUTH_NEEDED = "Server isn't an open relay, authentication needed"
CLOSED = "SMTP RSET: failed to receive data: connection closed"
RELAY = re.compile(r"Server is an open relay \((\d+)/16 tests\)")


def nmap_version():
    out = subprocess.run(["nmap", "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def nmap(port, source=None, timeout=120):
    """Runs smtp-open-relay on 127.0.0.1:port; returns (verdict line, full output,
    seconds). The `+` runs the script whatever the port's service guess is."""
    cmd = ["nmap", "-Pn", "-n", "-p", str(port)]
    if source:
        cmd += ["-S", source, "-e", "lo"]
    cmd += ["--script", "+smtp-open-relay", "--script-args",
            f"smtp-open-relay.domain={RELAY_DOMAIN},smtp-open-relay.ip=127.0.0.1", "127.0.0.1"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    took = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"open-relay: nmap failed ({r.returncode}): {r.stderr.strip()}\n{r.stdout}")
    lines = [line for line in r.stdout.splitlines() if "smtp-open-relay:" in line]
    if len(lines) != 1:
        return None, r.stdout, took
    verdict = lines[0].split("smtp-open-relay:", 1)[1].strip()
    return verdict, r.stdout, took


def protocol_log(bh, connector):
    """Receive protocol log lines of one connector: (session, event, data)."""
    rows = []
    for path in sorted(glob.glob(str(bh.dir / "data/logs/protocol/receive/*.log"))):
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split(",", 7)
                if len(parts) == 8 and parts[1] == connector:
                    rows.append((parts[2], parts[6], parts[7]))
    return rows


def session_summary(rows):
    """For the log rows of the sessions they cover: RCPTs sent, their reply codes,
    MAIL reply codes, and the last reply of each session."""
    sessions = {}
    for sid, event, data in rows:
        s = sessions.setdefault(sid, {"last": None, "pending": None, "mail": [], "rcpt": []})
        if event == "<":
            verb = data.split(" ", 1)[0].upper()
            s["pending"] = verb if verb in ("MAIL", "RCPT") else None
        elif event == ">":
            code = data[:3]
            if s["pending"] == "MAIL":
                s["mail"].append(code)
            elif s["pending"] == "RCPT":
                s["rcpt"].append(code)
            s["pending"] = None
            s["last"] = data
    return sessions


def relay_tests(ip, srvname):
    """nmap smtp-open-relay's 16 (sender, recipient) pairs, as in its source."""
    d, f, t = RELAY_DOMAIN, "antispam", "relaytest"
    lit = f"{f}@[{ip}]"
    return [
        ("", f"{t}@{d}"),
        (f"{f}@{d}", f"{t}@{d}"),
        (f"{f}@{srvname}", f"{t}@{d}"),
        (lit, f"{t}@{d}"),
        (lit, f"{t}%{d}@[{ip}]"),
        (lit, f"{t}%{d}@{srvname}"),
        (lit, f'"{t}@{d}"'),
        (lit, f'"{t}%{d}"'),
        (lit, f"{t}@{d}@[{ip}]"),
        (lit, f'"{t}@{d}"@[{ip}]'),
        (lit, f"{t}@{d}@{srvname}"),
        (lit, f"@[{ip}]:{t}@{d}"),
        (lit, f"@{srvname}:{t}@{d}"),
        (lit, f"{d}!{t}"),
        (lit, f"{d}!{t}@[{ip}]"),
        (lit, f"{d}!{t}@{srvname}"),
    ]


def replay(port, srvname):
    """Each of nmap's recipients after a sender Bridgehead accepts, one session
    each (so the bad-command limit cannot cut the list short). Returns a list of
    (recipient, RCPT code, text)."""
    out = []
    for _, rcpt in relay_tests("127.0.0.1", srvname):
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
            s.ehlo(RELAY_DOMAIN)
            code, text = s.mail(f"antispam@{RELAY_DOMAIN}")
            if code != 250:
                raise SystemExit(f"open-relay: replay MAIL FROM refused: {code} {text}")
            code, text = s.docmd("RCPT", f"TO:<{rcpt}>")
            out.append((rcpt, code, text.decode(errors="replace")))
            s.rset()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-smtps", action="store_true",
                    help="skip the implicit-TLS connector (nmap needs about 20 s there)")
    args = ap.parse_args()
    if not shutil.which("nmap"):
        raise SystemExit("open-relay: nmap missing (apt-get install nmap)")
    root = os.geteuid() == 0
    sources = [None, "127.0.0.2"] if root else [None]
    binary = bridgehead_bin()
    work = tempfile.mkdtemp(prefix="bridgehead-open-relay-")
    version = nmap_version()
    print(f"open-relay check: {version}, binary {binary}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    if not root:
        print("   (not root: no probes from 127.0.0.2)")
    failures = []
    sink = Sink(f"{work}/sink")
    bh = Bridgehead(f"{work}/bh", binary)
    results = []  # (connector, settings, source, verdict, seconds, ok)
    try:
        # 0. Calibration on something that is an open relay.
        verdict, out, took = nmap(sink.port)
        ok = bool(verdict and RELAY.fullmatch(verdict) and RELAY.fullmatch(verdict).group(1) == "16")
        results.append(("smtp-sink (calibration: accepts everything)", "", "127.0.0.1", verdict, took, ok))
        if not ok:
            failures.append(f"calibration: nmap said {verdict!r} about smtp-sink\n{out}")

        bh.cli("accepted-domain", "new", "example.com", "--default")
        bh.cli("send-connector", "new", "--name", "Internet", "--address-space", "*",
               "--smart-host", f"127.0.0.1:{sink.port}")
        for name in ("Default Internet", "Client Submission", "Client Submissions TLS"):
            bh.cli("receive-connector", "set", name, "--protocol-logging", "verbose")
        bh.start()
        internet, submission, submissions = bh.smtp
        srvname = "mail.bench.test"

        def check(label, settings, port, connector, allowed, source=None):
            before = len(protocol_log(bh, connector))
            verdict, out, took = nmap(port, source)
            # The protocol log is written asynchronously: wait until every session
            # nmap opened has its disconnect line.
            deadline = time.time() + 10
            while True:
                rows = protocol_log(bh, connector)[before:]
                opened = {sid for sid, event, _ in rows if event == "+"}
                closed = {sid for sid, event, _ in rows if event == "-"}
                if (opened and opened <= closed) or time.time() > deadline:
                    break
                time.sleep(0.1)
            sessions = session_summary(rows)
            rcpt_ok = [c for s in sessions.values() for c in s["rcpt"] if c.startswith("2")]
            mails = [c for s in sessions.values() for c in s["mail"]]
            rcpts = [c for s in sessions.values() for c in s["rcpt"]]
            ok = verdict in allowed and not rcpt_ok
            note = ""
            if verdict == CLOSED:
                lasts = [s["last"] or "" for s in sessions.values() if s["mail"]]
                note = f" (the last reply: {lasts[-1] if lasts else '?'})"
            summary = (f"MAIL replies {dict(sorted(Counter(mails).items()))}, "
                       f"RCPT replies {dict(sorted(Counter(rcpts).items()))}")
            results.append((label, settings, source or "127.0.0.1", verdict, took, ok, summary + note))
            if not ok:
                failures.append(f"{label} from {source or '127.0.0.1'}: nmap said {verdict!r}; {summary}{note}\n{out}")

        for src in sources:
            check("Default Internet", "defaults", internet, "Default Internet", (NOT_RELAY,), src)
        for src in sources:
            check("Client Submission", "defaults", submission, "Client Submission", (AUTH_NEEDED, NOT_RELAY), src)
        if not args.no_smtps:
            check("Client Submissions TLS", "defaults", submissions, "Client Submissions TLS",
                  (AUTH_NEEDED, NOT_RELAY))

        replayed = replay(internet, srvname)
        accepted = [(r, c, t) for r, c, t in replayed if 200 <= c < 300]
        if accepted:
            failures.append(f"replay: RCPT accepted for {accepted}")

        time.sleep(1)
        queued = bh.queued()
        received = bh.sql("SELECT COUNT(*) FROM tracking_events WHERE event = 'RECEIVE'")[0][0]
        at_sink = sink.count()
        if queued != 0 or received != 0 or at_sink != 0:
            failures.append(f"something was relayed: {queued} queued, {received} RECEIVE events, "
                            f"{at_sink} at the sink")

        print("\n| connector | settings | probed from | nmap verdict | s | result |")
        print("|---|---|---|---|---:|---|")
        for r in results:
            label, settings, src, verdict, took, ok = r[:6]
            print(f"| {label} | {settings} | {src} | {verdict} | {took:.1f} | {'pass' if ok else '**FAIL**'} |")
        print()
        for r in results[1:]:
            print(f"{r[0]} ({r[1]}) from {r[2]}: {r[6]}")
        codes = Counter(f"{c} {t.split(' ', 1)[0]}" for _, c, t in replayed)
        print(f"\nreplay of nmap's 16 recipient forms after MAIL FROM:<antispam@{RELAY_DOMAIN}>: "
              f"{len(replayed) - len(accepted)}/16 refused ({', '.join(f'{k} x{v}' for k, v in sorted(codes.items()))})")
        for rcpt, code, text in replayed:
            print(f"   RCPT TO:<{rcpt}> -> {code} {text}")
        print(f"\nrelayed: {queued} messages queued, {received} RECEIVE events, {at_sink} at the sink")
    finally:
        bh.stop()
        sink.stop()
    if failures:
        print("\nFAIL:\n" + "\n".join(failures))
        print(f"scratch directory kept: {work}")
        sys.exit(1)
    print("\nopen-relay check: passed")
    if args.keep:
        print(f"scratch directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
