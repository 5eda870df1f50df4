#!/usr/bin/python3
"""Scale benchmark: Bridgehead with a deep queue and many idle sessions.

Every instance: accepted domains example.com and remote.test (external relay), a
send connector `*` -> a smart host on a closed loopback port (the smart host is
down, so every message stays queued, deferred), the Default Internet receive
connector's connection limits raised, a retry interval of --retry-interval (2h, so
that no retry comes due unless the script makes it). Messages are 4 KB, one
message per SMTP session (Postfix's smtp-source, -s 50); queues on the disk
(TMPDIR, default /var/tmp). Each fresh instance is first warmed up with
--warm-up messages (1 000) to a local mailbox, delivered and gone from the queue
before anything is measured (a brand-new database and spool are slower).

  a) fill: accept --fill messages (default 100 000) -> msgs/s and seconds; then
     how long the queue manager stays busy after the last 250 until every message
     is categorized and deferred ("backlog");
  b) accept rate of --probe messages (default 5 000): against an empty queue (a
     fresh instance each time) and against the deep one (queue manager idle),
     in ABBA order, --reps times each. Then retry waves:
     - one wave: `queue retry HOP` makes every deferred message due at once, as
       when the hop's retry comes due; a probe, the end-of-DATA latency and one
       message to a local mailbox (how long until it is delivered) run while the
       queue manager goes through them; the wave's length, throughput and
       connection attempts;
     - the default retry policy (--cycle-interval 1m): the hop is retried now and
       watched for --observe seconds (240): is anything left due at any moment,
       how busy the server is, a probe every --probe-every seconds (60);
  c) start-up with the deep queue: stop the server (SIGTERM twice, kill -9 once),
     exec it again and time the SMTP banner and /healthz; RSS and Pss at /healthz
     and once the queue manager has loaded the queue and gone idle;
  d) idle sessions on a fresh instance: RSS/Pss idle, with --sessions (10 000)
     SMTP sessions open (banner read, EHLO answered, then held) from --sources
     loopback addresses (127.0.0.1, .2, ...), and after closing them; a few
     messages are sent while they are held (the server must still accept).

Memory is VmRSS from /proc/PID/status and Pss from /proc/PID/smaps_rollup.
--quick (CI): 5 000 queued, 1 000-message probes once each, no retry waves, one
start-up of each kind, 1 000 idle sessions.

Exit status 1 if any message was refused or lost (the queue did not grow by
exactly the number sent), a session could not be opened or the server stopped
accepting while they were held, or the accept rate with the queue loaded fell
below --min-ratio (0.5) of the empty-queue rate."""

import argparse
import asyncio
import datetime
import json
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, Bridgehead, bridgehead_bin, free_port  # noqa: E402
from latency import measure as latency  # noqa: E402
from relay import cpu_seconds, machine  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SIZE = 4096


T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring

def mem_kb(pid):
    """(VmRSS, Pss) of one process in kB."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


def mb(kb):
    return round(kb / 1024, 1)


class CpuSampler(threading.Thread):
    """The server's CPU use and peak RSS over a phase."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_rss = pid, threading.Event(), 0
        self.cpu0 = cpu_seconds([pid], False)
        self.t0 = time.time()

    def run(self):
        while not self.stop.is_set():
            self.peak_rss = max(self.peak_rss, mem_kb(self.pid)[0])
            self.stop.wait(0.2)

    def finish(self):
        self.stop.set()
        self.join()
        return {"cpu_s": round(cpu_seconds([self.pid], False) - self.cpu0, 2),
                "wall_s": round(time.time() - self.t0, 2), "peak_rss_mb": mb(self.peak_rss)}


def db_query(bh, sql, *args):
    for _ in range(50):
        try:
            c = sqlite3.connect(f"file:{bh.db}?mode=ro", uri=True, timeout=10)
            try:
                return c.execute(sql, args).fetchone()[0]
            finally:
                c.close()
        except sqlite3.OperationalError:
            time.sleep(0.1)
    raise SystemExit(f"cannot read {bh.db}")


def now_text():
    """Now, as the server writes times (RFC 3339, milliseconds, Z): comparable as text."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unsettled(bh):
    """Messages not yet categorized, and queued recipients due now (0, 0 = nothing to do)."""
    return (db_query(bh, "SELECT COUNT(*) FROM messages WHERE stage = 'submission'"),
            db_query(bh, "SELECT COUNT(*) FROM recipients WHERE status = 'queued' "
                         "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)", now_text()))


def wait_settled(bh, timeout, idle_cpu=0.05):
    """Waits until the queue manager has nothing due and the server is idle (less
    than `idle_cpu` CPU seconds per second, twice in a row). Returns the seconds
    waited, or None on timeout."""
    t0 = time.time()
    quiet = 0
    last = cpu_seconds([bh.proc.pid], False)
    while time.time() - t0 < timeout:
        time.sleep(1)
        cpu = cpu_seconds([bh.proc.pid], False)
        busy, last = cpu - last, cpu
        if busy < idle_cpu and unsettled(bh) == (0, 0):
            quiet += 1
            if quiet >= 2:
                return round(time.time() - t0 - 2, 1)
        else:
            quiet = 0
    return None


def smtp_source(port, count, conc, to="to@remote.test"):
    """smtp-source, one 4 KB message per session. (seconds, returncode, stderr)."""
    cmd = [SMTP_SOURCE, "-s", str(conc), "-m", str(count), "-l", str(SIZE),
           "-f", "from@example.com", "-t", to, f"127.0.0.1:{port}"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return time.time() - t0, r.returncode, r.stderr.strip()


def accept(bh, count, conc, label):
    """Sends `count` messages; checks that the queue grew by exactly that many."""
    before = bh.queued()
    sampler = CpuSampler(bh.proc.pid)
    sampler.start()
    secs, rc, err = smtp_source(bh.port, count, conc)
    use = sampler.finish()
    after = bh.queued()
    missing = count - (after - before)
    r = {"phase": label, "msgs": count, "conc": conc, "secs": round(secs, 2),
         "msgs_per_s": round(count / secs, 1), "queued_before": before, "queued_after": after,
         "missing": missing, "source_rc": rc, "source_err": err[-300:],
         "server_cpu_per_1000": round(use["cpu_s"] * 1000 / count, 2),
         "peak_rss_mb": use["peak_rss_mb"]}
    log(json.dumps(r))
    return r


# ---------------------------------------------------------------- instances

LIVE = []  # every instance made, stopped at the end whatever happens


def make_instance(base, name, binary, retry_interval):
    """A configured (not started) Bridgehead whose smart host is down."""
    bh = Bridgehead(tempfile.mkdtemp(prefix=f"{name}-", dir=base), binary)
    LIVE.append(bh)
    # The smart host is a free port nothing listens on: connection refused.
    bh.setup_relay(free_port(), max_connections=60000, per_ip=60000, retry=retry_interval)
    bh.cli("mailbox", "new", "sink@example.com", "--name", "Sink")
    return bh


def warm_up(bh, count, timeout):
    """A fresh instance is slower (new database and WAL files, new spool
    directories): `count` messages to a local mailbox, delivered and gone from the
    queue, warm it up without leaving anything queued."""
    secs, rc, err = smtp_source(bh.port, count, 10, to="sink@example.com")
    deadline = time.time() + timeout
    while bh.queued() and time.time() < deadline:
        time.sleep(0.2)
    log(f"warm-up: {count} messages delivered locally in {time.time() - deadline + timeout:.1f} s")
    if rc or bh.queued():
        raise SystemExit(f"warm-up failed: smtp-source rc {rc} {err[-200:]}, {bh.queued()} still queued")
    wait_settled(bh, timeout)


def discard(bh):
    bh.stop()
    shutil.rmtree(bh.dir, ignore_errors=True)


# ---------------------------------------------------------------- start-up

def time_startup(bh, how, settle_timeout):
    """Stops the server (`term` or `kill`), starts it again and times the banner
    and /healthz from exec; memory at /healthz and after the queue is loaded."""
    if how == "kill":
        bh.kill9()
    else:
        bh.stop()
    log_file = open(bh.dir / "server.log", "ab")
    t0 = time.time()
    bh.proc = subprocess.Popen([bh.bin, "serve"], cwd=bh.dir, env=bh.env,
                               stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    got = {}

    def banner():
        while time.time() - t0 < 120 and bh.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", bh.port), timeout=5) as s:
                    if s.makefile("rb").readline().startswith(b"220"):
                        got["banner"] = time.time() - t0
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                time.sleep(0.005)

    def health():
        while time.time() - t0 < 120 and bh.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{bh.admin}/healthz", timeout=5) as r:
                    if r.status == 200:
                        got["healthz"] = time.time() - t0
                        got["mem_at_healthz"] = mem_kb(bh.proc.pid)
                        return
            except OSError:
                time.sleep(0.005)

    threads = [threading.Thread(target=banner), threading.Thread(target=health)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if "banner" not in got or "healthz" not in got:
        raise SystemExit(f"the server did not come up after {how}; see {bh.dir / 'server.log'}")
    settled = wait_settled(bh, settle_timeout)
    rss, pss = mem_kb(bh.proc.pid)
    r = {"phase": f"startup-{how}", "queued": bh.queued(), "banner_s": round(got["banner"], 3),
         "healthz_s": round(got["healthz"], 3),
         "rss_at_healthz_mb": mb(got["mem_at_healthz"][0]), "pss_at_healthz_mb": mb(got["mem_at_healthz"][1]),
         "settled_after_s": settled, "rss_settled_mb": mb(rss), "pss_settled_mb": mb(pss)}
    log(json.dumps(r))
    return r


# ---------------------------------------------------------------- the retry wave

def hop_name(bh):
    return db_query(bh, "SELECT next_hop FROM recipients WHERE status = 'queued' LIMIT 1")


def attempts_since(bh, since):
    """Connection attempts to the hop recorded since `since` (DEFER events whose
    status says the connection failed; a message only rescheduled because its hop
    is in Retry records none)."""
    return db_query(bh, "SELECT COUNT(*) FROM tracking_events WHERE time >= ? AND event = 'DEFER' "
                        "AND status LIKE '%Connection failed%'", since)


def local_delivery_s(bh, timeout):
    """Sends one message to the local mailbox and times it into the Maildir: how
    long new mail for a hop that works waits behind whatever the queue manager is
    doing."""
    new = list((bh.dir / "data" / "mailboxes").glob("*/Maildir/new"))
    count = lambda: sum(len(os.listdir(d)) for d in new)  # noqa: E731
    before = count()
    t0 = time.time()
    secs, rc, err = smtp_source(bh.port, 1, 1, to="sink@example.com")
    while count() == before and time.time() - t0 < timeout:
        time.sleep(0.05)
    return round(time.time() - t0, 2) if count() > before else None


def hop_retry_at(bh, hop):
    return db_query(bh, "SELECT retry_at FROM queue_state WHERE name = ?", hop)


def one_wave(bh, args, hop):
    """The hop's retry comes due with every deferred message waiting on it: `queue
    retry HOP` makes them all due at once (the retry interval stays long, so the
    wave's one failed attempt puts the hop back in Retry for an hour). A probe runs
    while the wave goes through; measured until nothing is due and the server is
    idle again."""
    since = now_text()
    t0 = time.time()
    cpu0 = cpu_seconds([bh.proc.pid], False)
    bh.cli("queue", "retry", hop)
    time.sleep(1)
    due0 = unsettled(bh)[1]
    probe = accept(bh, args.probe, args.probe_conc, "wave-probe")
    due_after_probe = unsettled(bh)[1]
    lat = latency(bh.port, args.latency_count, 10, SIZE) if due_after_probe else None
    local = local_delivery_s(bh, args.settle_timeout)
    settled = wait_settled(bh, args.settle_timeout)
    secs = time.time() - t0 - 2 if settled is not None else None
    r = {"phase": "wave", "due_1s_in": due0, "due_after_probe": due_after_probe,
         "wave_s": round(secs, 1) if secs else None,
         "processed_per_s": round((due0 + args.probe + args.latency_count + 1) / secs, 1) if secs else None,
         "server_cpu_s": round(cpu_seconds([bh.proc.pid], False) - cpu0, 1),
         "connection_attempts": attempts_since(bh, since), "probe_msgs_per_s": probe["msgs_per_s"],
         "latency": lat, "local_delivery_s": local}
    log(json.dumps(r))
    return r, probe


def retry_cycle(bh, args, hop):
    """The default retry policy (a retry every --cycle-interval, 1m by default) with
    the whole queue waiting on one dead hop: the hop is retried now, then watched
    for --observe seconds (is anything left due, how busy is the server, how many
    connection attempts), with a probe at the start and then every --probe-every
    seconds (60)."""
    bh.cli("server", "set", "--retry-interval", args.cycle_interval)
    since = now_text()
    t0 = time.time()
    cpu0 = cpu_seconds([bh.proc.pid], False)
    bh.cli("queue", "retry", hop)
    time.sleep(1)
    probes = [accept(bh, args.probe, args.probe_conc, "cycle-probe-1")]
    last_probe = time.time()
    samples = []
    retry_times = set()
    while time.time() - t0 < args.observe:
        samples.append((round(time.time() - t0, 1), unsettled(bh)[1]))
        retry_times.add(hop_retry_at(bh, hop))
        if time.time() - last_probe >= args.probe_every:
            probes.append(accept(bh, args.probe, args.probe_conc, f"cycle-probe-{len(probes) + 1}"))
            last_probe = time.time()
        else:
            time.sleep(2)
    window = time.time() - t0
    cpu = cpu_seconds([bh.proc.pid], False) - cpu0
    attempts = attempts_since(bh, since)
    # Back to a long interval: once the hop's next attempt fails, everything waits
    # an hour and the queue manager goes idle.
    bh.cli("server", "set", "--retry-interval", args.retry_interval)
    t1 = time.time()
    settled = wait_settled(bh, args.settle_timeout)
    r = {"phase": "retry-cycle", "interval": args.cycle_interval, "window_s": round(window, 1),
         "server_cpu_share": round(cpu / window, 2), "connection_attempts": attempts,
         "hop_retry_times_seen": len(retry_times - {None}),
         "min_due": min(d for _, d in samples) if samples else None,
         "due_samples": samples[::5],
         "probe_msgs_per_s": [p["msgs_per_s"] for p in probes],
         "drain_after_s": round(time.time() - t1 - 2, 1) if settled is not None else None}
    log(json.dumps(r))
    return r, probes


# ---------------------------------------------------------------- idle sessions

async def open_sessions(port, n, sources, ehlo, parallel=200):
    """Opens n SMTP sessions (banner read, EHLO answered); returns (writers, failures)."""
    sem = asyncio.Semaphore(parallel)
    writers, failures = [], []

    async def one(i):
        src = f"127.0.0.{1 + i % sources}"
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), 30)
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line.startswith(b"220"):
                    raise ConnectionError(f"greeting {line[:60]!r}")
                if ehlo:
                    writer.write(b"EHLO idle.test\r\n")
                    while True:
                        line = await asyncio.wait_for(reader.readline(), 30)
                        if not line.startswith(b"250"):
                            raise ConnectionError(f"EHLO {line[:60]!r}")
                        if line[3:4] == b" ":
                            break
                writers.append((reader, writer))
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                failures.append(f"{type(e).__name__}: {e}")

    await asyncio.gather(*(one(i) for i in range(n)))
    return writers, failures


async def hold_sessions(bh, n, sources, ehlo):
    rss0, pss0 = mem_kb(bh.proc.pid)
    t0 = time.time()
    writers, failures = await open_sessions(bh.port, n, sources, ehlo)
    opened_s = time.time() - t0
    await asyncio.sleep(2)
    rss1, pss1 = mem_kb(bh.proc.pid)
    # The server must still take mail with all of them open.
    loop = asyncio.get_running_loop()
    before = bh.queued()
    secs, rc, err = await loop.run_in_executor(None, smtp_source, bh.port, 20, 5)
    still_accepts = rc == 0 and bh.queued() - before == 20
    rss2, pss2 = mem_kb(bh.proc.pid)
    for _, w in writers:
        w.close()
    await asyncio.sleep(3)
    rss3, pss3 = mem_kb(bh.proc.pid)
    open_count = len(writers)
    r = {"phase": f"idle-{n}", "sessions_open": open_count, "failed": len(failures),
         "failures": sorted(set(failures))[:5], "ehlo": ehlo, "sources": sources,
         "open_s": round(opened_s, 1),
         "rss_idle_mb": mb(rss0), "pss_idle_mb": mb(pss0),
         "rss_sessions_mb": mb(rss1), "pss_sessions_mb": mb(pss1),
         "kb_per_session": round((rss1 - rss0) / max(open_count, 1), 1),
         "rss_after_send_mb": mb(rss2), "accepts_while_held": still_accepts,
         "rss_after_close_mb": mb(rss3), "pss_after_close_mb": mb(pss3)}
    log(json.dumps(r))
    return r


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- report

def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 1) if vals else None


def report(res, args, binary, started):
    """Markdown for BENCHMARKS.md (the phases that ran)."""
    out = ["| figure | value |", "|---|---|"]
    fill, empty, loaded = res.get("fill"), res.get("empty", []), res.get("loaded", [])
    if fill:
        out.append(f"| a) accept {fill['msgs']:,} × 4 KB, {fill['conc']} sessions, smart host down | "
                   f"{fill['secs']:,.0f} s, **{fill['msgs_per_s']:,.0f} msgs/s** "
                   f"(server CPU {fill['server_cpu_per_1000']} s / 1000 msgs, peak RSS {fill['peak_rss_mb']} MB) |")
        out.append(f"| a) queue manager still busy after the last 250 (until all are categorized and deferred) | "
                   f"{res.get('fill_backlog_s')} s |")
    if empty:
        out.append(f"| b) accept {args.probe:,} msgs, empty queue | **{median(empty, 'msgs_per_s')} msgs/s** "
                   f"median of {len(empty)} ({', '.join(str(r['msgs_per_s']) for r in empty)}) |")
    if loaded:
        out.append(f"| b) accept {args.probe:,} msgs, {res['deep']:,} deferred in the queue, queue manager idle | "
                   f"**{median(loaded, 'msgs_per_s')} msgs/s** median of {len(loaded)} "
                   f"({', '.join(str(r['msgs_per_s']) for r in loaded)}); loaded / empty = {res['ratio']:.2f} |")
    w = res.get("wave")
    if w:
        out.append(f"| b) the hop's retry comes due: {w['due_1s_in']:,} messages due at once "
                   f"(`queue retry`), {args.probe:,} msgs sent meanwhile | accept **{w['probe_msgs_per_s']} msgs/s**; "
                   f"the wave took {w['wave_s']} s ({w['processed_per_s']} msgs/s through the queue manager, "
                   f"{w['server_cpu_s']} CPU s), {w['connection_attempts']} connection attempts |")
        li, lw = res.get("latency_idle"), w.get("latency")
        if li and lw:
            out.append(f"| b) end-of-DATA → 250 latency, 10 sessions, {args.latency_count} msgs: "
                       f"queue manager idle vs during the wave | p50 {li['p50_ms']} / p99 {li['p99_ms']} ms vs "
                       f"p50 {lw['p50_ms']} / p99 {lw['p99_ms']} ms |")
        out.append(f"| b) one message to a local mailbox, from sending it to its Maildir file: queue manager idle vs "
                   f"sent during the wave | {res.get('local_delivery_idle_s')} s vs {w['local_delivery_s']} s |")
    c = res.get("cycle")
    if c:
        out.append(f"| b) retry interval {c['interval']}, watched {c['window_s']} s | accept "
                   f"**{' / '.join(str(x) for x in c['probe_msgs_per_s'])} msgs/s** (every {args.probe_every:.0f} s); "
                   f"fewest due at any sample {c['min_due']:,}; server CPU {c['server_cpu_share']:.0%} of a core; "
                   f"{c['connection_attempts']} connection attempts; idle {c['drain_after_s']} s after going back "
                   f"to {args.retry_interval} |")
    for s in res.get("startup", []):
        out.append(f"| c) start-up after {'kill -9' if s['phase'].endswith('kill') else 'SIGTERM'} "
                   f"with {s['queued']:,} queued | SMTP banner {s['banner_s']} s, /healthz {s['healthz_s']} s "
                   f"after exec; RSS {s['rss_at_healthz_mb']} MB (Pss {s['pss_at_healthz_mb']}) at /healthz, "
                   f"{s['rss_settled_mb']} MB (Pss {s['pss_settled_mb']}) once the queue is loaded and the server "
                   f"idle ({s['settled_after_s']} s later) |")
    i = res.get("idle")
    if i:
        out.append(f"| d) idle server, empty queue | RSS **{i['rss_idle_mb']} MB**, Pss {i['pss_idle_mb']} MB |")
        out.append(f"| d) {i['sessions_open']:,} idle SMTP sessions (EHLO done) from {i['sources']} addresses | "
                   f"RSS **{i['rss_sessions_mb']} MB**, Pss {i['pss_sessions_mb']} MB "
                   f"({i['kb_per_session']} KB per session); still accepts mail: {i['accepts_while_held']}; "
                   f"RSS {i['rss_after_close_mb']} MB after closing them |")
    cmd = "bench/scale.sh " + " ".join(sys.argv[1:])
    head = (f"### Scale run {started:%Y-%m-%d %H:%M} UTC\n\n"
            f"Machine: {machine()}. Bridgehead binary: `{binary}` (tree at commit {res['commit']}).\n"
            f"Command: `{cmd.strip()}`\n\n")
    return head + "\n".join(out) + "\n"


def git_commit():
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+changes" if dirty else "")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="5 000 queued, 1 000-message probes, no waves, 1 000 idle sessions (CI)")
    ap.add_argument("--fill", type=int, default=100_000, help="messages in the deep queue")
    ap.add_argument("--conc", type=int, default=50, help="smtp-source sessions for the fill")
    ap.add_argument("--probe", type=int, default=5000, help="messages per accept-rate probe")
    ap.add_argument("--probe-conc", type=int, default=50)
    ap.add_argument("--latency-count", type=int, default=300,
                    help="messages for the end-of-DATA latency (10 sessions), queue idle vs during the wave")
    ap.add_argument("--warm-up", type=int, default=1000,
                    help="messages to a local mailbox before measuring a fresh instance")
    ap.add_argument("--reps", type=int, default=3, help="probes against each queue (alternating)")
    ap.add_argument("--sessions", type=int, default=10_000, help="idle sessions to hold")
    ap.add_argument("--sources", type=int, default=10, help="client addresses 127.0.0.1..N")
    ap.add_argument("--retry-interval", default="2h",
                    help="retry interval while filling (default 2h: no retry before the wave phase)")
    ap.add_argument("--cycle-interval", default="1m",
                    help="retry interval for the retry-cycle phase (default 1m, the product's default)")
    ap.add_argument("--observe", type=float, default=240,
                    help="seconds to watch the retry cycle (0: skip it)")
    ap.add_argument("--probe-every", type=float, default=60,
                    help="seconds between probes while watching the retry cycle")
    ap.add_argument("--no-wave", action="store_true", help="skip the retry-wave phases")
    ap.add_argument("--idle-only", action="store_true", help="only phase d (idle sessions)")
    ap.add_argument("--settle-timeout", type=float, default=1800)
    ap.add_argument("--min-ratio", type=float, default=0.5,
                    help="fail if loaded/empty accept rate is below this")
    ap.add_argument("--write", action="store_true", help="append the results to BENCHMARKS.md")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.quick:
        args.fill, args.probe, args.reps, args.sessions, args.no_wave = 5000, 1000, 1, 1000, True
        args.warm_up = min(args.warm_up, 300)
        args.settle_timeout = min(args.settle_timeout, 300)
    nofile = raise_nofile(2 * args.sessions + 4096)
    if nofile < args.sessions + 1024:
        raise SystemExit(f"open file limit {nofile} too low for {args.sessions} sessions (ulimit -n)")
    binary = bridgehead_bin()
    base = tempfile.mkdtemp(prefix="bridgehead-scale-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    started = datetime.datetime.now(datetime.timezone.utc)
    res = {"commit": git_commit(), "binary": binary, "args": vars(args)}
    bad = []
    try:
        if not args.idle_only:
            deep_queue_phases(args, binary, base, res).stop()

        # d) idle sessions on a fresh instance.
        idle = make_instance(base, "idle", binary, args.retry_interval)
        try:
            idle.start()
            time.sleep(2)
            res["idle"] = asyncio.run(hold_sessions(idle, args.sessions, args.sources, ehlo=True))
        finally:
            discard(idle)

        # Verdict.
        for r in [res.get("fill"), *res.get("empty", []), *res.get("loaded", []), *res.get("wave_probes", [])]:
            if r and (r["missing"] or r["source_rc"]):
                bad.append(f"{r['phase']}: {r['missing']} of {r['msgs']} messages not queued, "
                           f"smtp-source rc {r['source_rc']} {r['source_err']}")
        if res.get("ratio") is not None and res["ratio"] < args.min_ratio:
            bad.append(f"accept rate with {res['deep']} queued is {res['ratio']:.2f} of the empty-queue rate "
                       f"(minimum {args.min_ratio})")
        i = res["idle"]
        if i["failed"] or not i["accepts_while_held"]:
            bad.append(f"idle sessions: {i['failed']} could not be opened {i['failures']}, "
                       f"accepts while held: {i['accepts_while_held']}")
    finally:
        for b in LIVE:
            b.stop()
        if not args.keep and not bad:
            shutil.rmtree(base, ignore_errors=True)
        elif bad:
            log(f"scale: kept {base}")
    md = report(res, args, os.path.relpath(binary, ROOT), started)
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.write:
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write("\n" + md)
    for b in bad:
        log(f"scale: FAILED {b}")
    sys.exit(1 if bad else 0)


def deep_queue_phases(args, binary, base, res):
    """Phases a, b and c; returns the deep-queue instance (running)."""
    empty = []
    res["empty"] = empty

    def empty_probe(i):
        e = make_instance(base, f"empty{i}", binary, args.retry_interval)
        try:
            e.start()
            warm_up(e, args.warm_up, args.settle_timeout)
            empty.append(accept(e, args.probe, args.probe_conc, f"empty-{i}"))
        finally:
            discard(e)

    # a) fill (it also warms up the machine for the probes that follow).
    bh = make_instance(base, "deep", binary, args.retry_interval)
    bh.start()
    warm_up(bh, args.warm_up, args.settle_timeout)
    res["fill"] = accept(bh, args.fill, args.conc, "fill")
    res["fill_backlog_s"] = wait_settled(bh, args.settle_timeout)
    log(json.dumps({"phase": "fill-backlog", "secs": res["fill_backlog_s"]}))
    res["deep"] = bh.queued()

    # b) probes against an empty queue (a fresh instance each time) and against
    # the deep one, in ABBA order (empty, loaded, loaded, empty, ...) so that a
    # machine getting busier or quieter favours neither.
    loaded = []
    res["loaded"] = loaded
    for i in range(1, args.reps + 1):
        for kind in ("empty", "loaded") if i % 2 else ("loaded", "empty"):
            if kind == "empty":
                empty_probe(i)
            else:
                loaded.append(accept(bh, args.probe, args.probe_conc, f"loaded-{i}"))
                wait_settled(bh, args.settle_timeout)
    if not args.no_wave:
        # End-of-DATA -> 250 latency with the queue manager idle, to compare with
        # the same during the wave.
        res["latency_idle"] = latency(bh.port, args.latency_count, 10, SIZE)
        wait_settled(bh, args.settle_timeout)
        res["local_delivery_idle_s"] = local_delivery_s(bh, 60)
        log(json.dumps({"phase": "latency-idle", **res["latency_idle"],
                        "local_delivery_s": res["local_delivery_idle_s"]}))
    res["ratio"] = median(loaded, "msgs_per_s") / median(empty, "msgs_per_s")

    # c) start-up with the deep queue.
    res["startup"] = [time_startup(bh, "term", args.settle_timeout)]
    if not args.quick:
        res["startup"].append(time_startup(bh, "term", args.settle_timeout))
    res["startup"].append(time_startup(bh, "kill", args.settle_timeout))

    # b) the hop's retry comes due: one wave; then the default retry policy.
    res["wave"] = res["cycle"] = None
    if not args.no_wave:
        hop = hop_name(bh)
        res["wave"], p = one_wave(bh, args, hop)
        res["wave_probes"] = [p]
        if args.observe > 0:
            res["cycle"], ps = retry_cycle(bh, args, hop)
            res["wave_probes"] += ps
    return bh


if __name__ == "__main__":
    main()
