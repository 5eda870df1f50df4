#!/usr/bin/python3
"""SMTP smuggling probe (the SEC Consult research, Dec 2023; CVE-2023-51764 and
relatives), run from outside against a real Bridgehead on loopback.

Bridgehead gets accepted domain example.com and two external-relay domains:
raw.test, relayed by a send connector `*` to a raw sink that does not offer
CHUNKING (so Bridgehead sends DATA, dot-stuffed), and chunk.test, relayed by a
second connector to a raw sink that offers CHUNKING (so Bridgehead sends BDAT).
The raw sinks (bench/common.py RawSink) keep the exact bytes they were sent.

For each fake end-of-data sequence (`\\n.\\n`, `\\r.\\r\\n`, ... and bare LF / bare
CR without a dot) one anonymous session on the internet connector sends, first
with DATA and then with BDAT, a message to victim@raw.test and victim@chunk.test:

    headers, "BEGIN-tag" <fake end of data>
    MAIL FROM:<smuggled@elsewhere.test> / RCPT TO:... / DATA
    the smuggled message (From: ceo@example.com), "END-tag"
    <CRLF>.<CRLF>   (DATA only; BDAT sends the same bytes as one LAST chunk)

and then, on the same connection, `RCPT TO:` (must be 503: no transaction may be
open, i.e. the smuggled MAIL FROM was not executed) and NOOP (250).

A variant passes when: the server gave exactly one reply to the message text
(a server that split it would answer the smuggled MAIL, RCPT and DATA too), the
session state afterwards is sane, no RECEIVE tracking event and no sink
transaction exists for the smuggled message or sender, and, if the message was
accepted, each sink got it whole (END marker present) and the DATA hop carried
no bare CR or LF (what a lenient next hop could take for the end of data).
Variants with a bare CR or LF must be refused with 550 5.5.2 (README); the NUL
variants (`\\r\\n\\x00.\\r\\n`, `\\r\\n.\\x00\\r\\n`) must be refused with 550 5.6.0: a
next hop that drops NULs before looking for the end of data would find one there.

Controls: a clean message and one with dot lines must be accepted and arrive
byte-exact (dot-stuffing both ways); a legitimate pipelined second transaction
after the real end of data must yield two messages (the probe sees replies to
commands that follow an end of data, so a split would not go unnoticed).

Prints one line per variant and a Markdown table; exit 1 if any check fails.
Standard library only; loopback only."""

import argparse
import os
import re
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import Bridgehead, RawSink, bare_line_ends, bridgehead_bin, unstuff  # noqa: E402

SMUGGLED_SENDER = "smuggled@elsewhere.test"

# (id, fake end of data). The first ten are the inbound and outbound sequences of
# the SEC Consult scanner and smtpsmug; the NUL ones are the scanner's too.
FAKES = [
    ("lf-dot-lf", b"\n.\n"),
    ("lf-dot-crlf", b"\n.\r\n"),
    ("cr-dot-lf", b"\r.\n"),
    ("cr-dot-crlf", b"\r.\r\n"),
    ("crlf-dot-cr", b"\r\n.\r"),
    ("crlf-dot-lf", b"\r\n.\n"),
    ("lf-dot-cr", b"\n.\r"),
    ("cr-dot-cr", b"\r.\r"),
    ("crlf-dot-crcrlf", b"\r\n.\r\r\n"),
    ("crcrlf-dot-crcrlf", b"\r\r\n.\r\r\n"),
    ("bare-lf", b"\n"),
    ("bare-cr", b"\r"),
    ("crlf-nul-dot-crlf", b"\r\n\x00.\r\n"),
    ("crlf-dot-nul-crlf", b"\r\n.\x00\r\n"),
]

# Sequences a lenient next hop has been seen to take for the end of data
# (the scanner's outbound list); searched for in what Bridgehead forwards.
LENIENT_EODS = [b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n",
                b"\r\n.\r\r\n", b"\r\r\n.\r\r\n", b"\r\n\x00.\r\n"]

ENVELOPE = (b"MAIL FROM:<probe@elsewhere.test>\r\nRCPT TO:<victim@raw.test>\r\n"
            b"RCPT TO:<victim@chunk.test>\r\n")


def show(b):
    """A byte sequence as a Python-style literal without the b'' (for tables)."""
    return repr(b)[2:-1]


def headers(tag, subject=None):
    return (f"From: <probe@elsewhere.test>\r\nTo: <victim@raw.test>\r\n"
            f"Subject: {subject or tag}\r\nMessage-ID: <{tag}@probe.test>\r\n\r\n").encode()


def smuggling_message(tag, fake):
    smuggled = (f"MAIL FROM:<{SMUGGLED_SENDER}>\r\nRCPT TO:<victim@raw.test>\r\n"
                f"RCPT TO:<victim@chunk.test>\r\nDATA\r\n"
                f"From: <ceo@example.com>\r\nTo: <victim@raw.test>\r\nSubject: SMUGGLED {tag}\r\n"
                f"Message-ID: <smuggled-{tag}@probe.test>\r\n\r\n"
                f"smuggled message\r\nEND-{tag}\r\n").encode()
    return (headers(tag) + f"TESTING {show(fake)} as a fake end of data\r\nBEGIN-{tag}".encode()
            + fake + smuggled)


def stuff(message):
    """RFC 5321 4.5.2 transparency, for messages with CRLF lines only."""
    return b"\r\n".join(b"." + x if x.startswith(b".") else x for x in message.split(b"\r\n"))


class Session:
    """A raw client connection that reads replies without assuming how many come."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def _reply(self):
        pos, lines = 0, []
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i < 0:
                return None
            line = self.buf[pos:i]
            lines.append(line.decode(errors="replace"))
            pos = i + 2
            if line[3:4] != b"-":
                self.buf = self.buf[pos:]
                code = int(line[:3]) if line[:3].isdigit() else 0
                return code, " | ".join(lines)

    def replies(self, n=1, quiet=0.3, timeout=15):
        """At least n complete replies (waiting up to `timeout` s), then every
        further reply that arrives before the line stays quiet for `quiet` s."""
        out = []
        deadline = time.time() + timeout
        while True:
            r = self._reply()
            if r:
                out.append(r)
                continue
            wait = quiet if len(out) >= n else deadline - time.time()
            if wait <= 0 or self.closed:
                return out
            self.sock.settimeout(wait)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return out
            except OSError:
                data = b""
            if not data:
                self.closed = True
            self.buf += data

    def close(self):
        try:
            self.send(b"QUIT\r\n")
            self.replies(1, quiet=0, timeout=2)
        except OSError:
            pass
        self.sock.close()


def open_session(port):
    s = Session(port)
    greeting = s.replies(1, quiet=0)
    s.send(b"EHLO probe.test\r\n")
    ehlo = s.replies(1, quiet=0)
    if not greeting or greeting[0][0] != 220 or not ehlo or ehlo[0][0] != 250:
        raise SystemExit(f"smuggling: bad greeting or EHLO: {greeting} {ehlo}")
    return s


def after_state(s):
    """The replies to RCPT TO (no transaction may be open: 503) and NOOP (250)."""
    s.send(b"RCPT TO:<victim@raw.test>\r\nNOOP\r\n")
    codes = [r[0] for r in s.replies(2, quiet=0.1)]
    return codes, codes == [503, 250]


def send_message(port, mode, wire):
    """One session: envelope, then the message text as DATA (wire = the bytes after
    354, terminator included) or as one BDAT LAST chunk (wire = the message).
    Returns (replies to the text, after-state codes, after-state ok)."""
    s = open_session(port)
    try:
        if mode == "DATA":
            s.send(ENVELOPE + b"DATA\r\n")
            env = s.replies(4, quiet=0)
            if [r[0] for r in env] != [250, 250, 250, 354]:
                raise SystemExit(f"smuggling: envelope refused: {env}")
            s.send(wire)
        else:
            s.send(ENVELOPE)
            env = s.replies(3, quiet=0)
            if [r[0] for r in env] != [250, 250, 250]:
                raise SystemExit(f"smuggling: envelope refused: {env}")
            s.send(f"BDAT {len(wire)} LAST\r\n".encode() + wire)
        answer = s.replies(1)
        codes, ok = after_state(s)
        return answer, codes, ok
    finally:
        s.close()


def pipelined_control(port, tag):
    """A message, its real end and a second, legitimate transaction in the same
    write: the replies to the commands after the end of data must show up."""
    s = open_session(port)
    try:
        s.send(ENVELOPE + b"DATA\r\n")
        env = s.replies(4)
        if [r[0] for r in env] != [250, 250, 250, 354]:
            raise SystemExit(f"smuggling: envelope refused: {env}")
        first = headers(tag) + f"first of two\r\nEND-{tag}\r\n".encode()
        second = headers(f"{tag}-second") + f"second of two\r\nEND-{tag}-second\r\n".encode()
        s.send(first + b".\r\n" + ENVELOPE + b"DATA\r\n")
        answer = s.replies(5)
        s.send(second + b".\r\n")
        answer += s.replies(1)
        codes, ok = after_state(s)
        return answer, codes, ok, {tag: first, f"{tag}-second": second}
    finally:
        s.close()


def sink_hits(sink, tag):
    """Transactions of `sink` that are message `tag`: Message-ID <tag@probe.test> in
    their header block (a smuggled message's headers inside another message's
    body do not count)."""
    mid = f"\r\nMessage-ID: <{tag}@probe.test>\r\n".encode()
    hits = []
    for t in sink.received():
        text = unstuff(t["wire"]) if t["mode"] == "DATA" else t["wire"]
        end = text.find(b"\r\n\r\n")
        if mid in text[:end + 2 if end >= 0 else len(text)]:
            hits.append(t)
    return hits


def check_delivery(tag, expected, sinks):
    """Problems with how message `tag` (the text Bridgehead should have stored)
    reached the two sinks, plus notes. The spool adds a Received header first,
    so the forwarded text must end with `expected`."""
    problems, notes = [], []
    for name, sink in sinks:
        hits = sink_hits(sink, tag)
        if len(hits) != 1:
            problems.append(f"{name} sink got it {len(hits)} times")
            continue
        t = hits[0]
        text = unstuff(t["wire"]) if t["mode"] == "DATA" else t["wire"]
        if not text.endswith(expected):
            problems.append(f"{name} sink got it altered")
        if t["mode"] == "DATA":
            cr, lf = bare_line_ends(t["wire"])
            if cr or lf:
                problems.append(f"forwarded with {cr} bare CR, {lf} bare LF over DATA")
            lenient = [show(p) for p in LENIENT_EODS if p in t["wire"]]
            if lenient:
                (problems if cr or lf else notes).append(
                    f"DATA hop carried {', '.join(lenient)}")
    return problems, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--drain-timeout", type=float, default=60)
    args = ap.parse_args()
    binary = bridgehead_bin()
    work = tempfile.mkdtemp(prefix="bridgehead-smuggling-")
    data_sink, bdat_sink = RawSink(chunking=False), RawSink(chunking=True)
    sinks = [("DATA", data_sink), ("BDAT", bdat_sink)]
    bh = Bridgehead(f"{work}/bh", binary)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"smuggling probe: binary {binary}, {started}", flush=True)
    rows, failed = [], 0
    try:
        bh.cli("accepted-domain", "new", "example.com", "--default")
        bh.cli("accepted-domain", "new", "raw.test", "--type", "external-relay")
        bh.cli("accepted-domain", "new", "chunk.test", "--type", "external-relay")
        bh.cli("send-connector", "new", "--name", "Raw DATA sink", "--address-space", "*",
               "--smart-host", f"127.0.0.1:{data_sink.port}")
        bh.cli("send-connector", "new", "--name", "Raw BDAT sink", "--address-space", "chunk.test",
               "--smart-host", f"127.0.0.1:{bdat_sink.port}")
        bh.cli("server", "set", "--retry-interval", "1s")
        bh.start()

        # (row label, how sent, tag, expected stored text or None, answer, after codes,
        #  after ok, enhanced code it must be refused with, or None)
        results = []
        controls = [
            ("clean message (control)", "clean",
             lambda t: headers(t) + f"a clean message\r\nEND-{t}\r\n".encode()),
            ("dot lines `.` `..` `.x` (control)", "dots",
             lambda t: headers(t) + f".\r\n..\r\n.x\r\nx.\r\n . \r\nEND-{t}\r\n".encode()),
        ]
        for label, cid, make in controls:
            for mode in ("DATA", "BDAT"):
                tag = f"{cid}-{mode.lower()}"
                msg = make(tag)
                wire = stuff(msg) + b".\r\n" if mode == "DATA" else msg
                answer, codes, ok = send_message(bh.port, mode, wire)
                results.append((label, mode, tag, msg, answer, codes, ok, None))
        for fid, fake in FAKES:
            refuse = "5.5.2" if any(bare_line_ends(fake)) else "5.6.0" if b"\x00" in fake else None
            for mode in ("DATA", "BDAT"):
                tag = f"{fid}-{mode.lower()}"
                msg = smuggling_message(tag, fake)
                # DATA: the bytes go out as they are (no stuffing: the fake dot must
                # stay a lone dot); what a receiver stores is the unstuffed text.
                wire = msg + b".\r\n" if mode == "DATA" else msg
                expected = unstuff(msg) if mode == "DATA" else msg
                answer, codes, ok = send_message(bh.port, mode, wire)
                results.append((f"`{show(fake)}`", mode, tag, expected, answer, codes, ok, refuse))
        ptag = "pipelined-data"
        p_answer, p_codes, p_ok, p_msgs = pipelined_control(bh.port, ptag)

        deadline = time.time() + args.drain_timeout
        while time.time() < deadline and bh.queued() != 0:
            time.sleep(0.2)
        drained = bh.queued() == 0
        time.sleep(0.3)
        received = bh.sql("SELECT sender, message_id FROM tracking_events WHERE event = 'RECEIVE'")

        def receive_events(tag):
            return sum(1 for _, mid in received if (mid or "").strip("<> ") == f"{tag}@probe.test")

        smuggled_sender_events = sum(1 for snd, _ in received if snd == SMUGGLED_SENDER)
        smuggled_at_sinks = [t for _, s in sinks for t in s.received() if t["sender"] == SMUGGLED_SENDER]

        for label, mode, tag, expected, answer, codes, ok, must_refuse in results:
            problems, notes = [], []
            first = answer[0] if answer else (0, "no reply")
            if len(answer) != 1:
                problems.append(f"{len(answer)} replies to the message text (split?)")
            if not ok:
                problems.append(f"state after it: RCPT/NOOP gave {codes}, want [503, 250]")
            if receive_events(f"smuggled-{tag}"):
                problems.append("smuggled message queued")
            if any(sink_hits(s, f"smuggled-{tag}") for _, s in sinks):
                problems.append("smuggled message delivered")
            accepted = first[0] == 250
            if must_refuse and not (first[0] == 550 and must_refuse in first[1]):
                problems.append(f"not refused with 550 {must_refuse}")
            if accepted:
                if receive_events(tag) != 1:
                    problems.append(f"{receive_events(tag)} RECEIVE events")
                p, n = check_delivery(tag, expected, sinks)
                problems += p
                notes += n
            else:
                if receive_events(tag):
                    problems.append("refused, yet queued")
                if any(sink_hits(s, tag) for _, s in sinks):
                    problems.append("refused, yet delivered")
            text = re.sub(r"\s+", " ", first[1])
            verdict = "FAIL: " + "; ".join(problems) if problems else "pass"
            if notes:
                verdict += " (" + "; ".join(notes) + ")"
            failed += bool(problems)
            print(f"{label:32} {mode:4}  {text[:70]:70}  after {codes}  {verdict}", flush=True)
            forwarded = "-"
            if accepted:
                hop = [t for t in sink_hits(data_sink, tag)]
                forwarded = ("CRLF only" if hop and not any(bare_line_ends(hop[0]["wire"]))
                             else "BARE CR/LF" if hop else "missing")
                if hop and b"\x00" in hop[0]["wire"]:
                    forwarded += ", NUL kept"
            rows.append((label, mode, text, "RCPT 503, NOOP 250" if ok else str(codes),
                         receive_events(tag) + receive_events(f"smuggled-{tag}"), forwarded,
                         "pass" if not problems else "**FAIL**"))

        # The pipelined control: two real transactions, both replies seen, both delivered.
        p_codes_seen = [r[0] for r in p_answer]
        problems = []
        if p_codes_seen != [250, 250, 250, 250, 354, 250]:
            problems.append(f"replies {p_codes_seen}, want [250, 250, 250, 250, 354, 250]")
        if not p_ok:
            problems.append(f"state after it: {p_codes}")
        for t, msg in p_msgs.items():
            if receive_events(t) != 1:
                problems.append(f"{t}: {receive_events(t)} RECEIVE events")
            p, _ = check_delivery(t, msg, sinks)
            problems += [f"{t}: {x}" for x in p]
        failed += bool(problems)
        verdict = "FAIL: " + "; ".join(problems) if problems else "pass"
        print(f"{'pipelined 2nd transaction':32} DATA  replies {p_codes_seen}  after {p_codes}  {verdict}")
        rows.append(("legitimate 2nd transaction pipelined after `\\r\\n.\\r\\n` (control)", "DATA",
                     " / ".join(str(c) for c in p_codes_seen),
                     "RCPT 503, NOOP 250" if p_ok else str(p_codes),
                     sum(receive_events(t) for t in p_msgs), "CRLF only" if not problems else "?",
                     "pass (2 messages)" if not problems else "**FAIL**"))

        if not drained:
            failed += 1
            print(f"FAIL: queue not drained after {args.drain_timeout:.0f} s ({bh.queued()} messages)")
        if smuggled_sender_events or smuggled_at_sinks:
            failed += 1
            print(f"FAIL: {smuggled_sender_events} RECEIVE events and {len(smuggled_at_sinks)} sink "
                  f"transactions from {SMUGGLED_SENDER}")
        total = sum(len(s.received()) for _, s in sinks)
        print(f"\nsinks: {len(data_sink.received())} transactions over DATA, "
              f"{len(bdat_sink.received())} over BDAT; RECEIVE events {len(received)}; "
              f"from {SMUGGLED_SENDER}: {smuggled_sender_events} queued, {len(smuggled_at_sinks)} delivered")
        if total == 0:
            failed += 1
            print("FAIL: nothing reached the sinks (the controls should have)")
        print("\n| variant | sent with | Bridgehead's answer | then | RECEIVE events | forwarded over DATA | verdict |")
        print("|---|---|---|---|---:|---|---|")
        for r in rows:
            print("| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |")
    finally:
        bh.stop()
        data_sink.stop()
        bdat_sink.stop()
    print(f"\nsmuggling probe: {'FAILED, ' + str(failed) + ' checks' if failed else 'all checks passed'}")
    if failed or args.keep:
        print(f"scratch directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
