#!/usr/bin/python3
"""Relay benchmark: Bridgehead vs a stock Postfix on the same machine, each on
loopback relaying everything to its own Postfix smtp-sink.

For each size and concurrency, on a fresh instance of each server:
  1. smtp-source -s CONC -m COUNT -l SIZE (one message per session) -> accepted msg/s
     (COUNT / smtp-source wall time) and delivered msg/s (COUNT / time until the
     sink holds COUNT messages, from the start of smtp-source);
  2. CPU seconds of the server per 1000 messages (utime+stime, for Postfix of
     master, its reaped children and live children) over phase 1;
  3. latency.py: end-of-DATA -> 250 p50/p99 at the same concurrency (the compiled
     client bench/latency.rs when built, else asyncio);
  4. peak memory: the largest sum of Pss (/proc/PID/smaps_rollup) over the
     server's processes, sampled every 100 ms over phases 1-3 (Pss, not RSS, so
     that Postfix's shared pages are not counted once per process).
Queues and spools are on the disk (TMPDIR, default /var/tmp); the sinks write to
/dev/shm so that the sink is not the bottleneck."""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, Bridgehead, Sink, bridgehead_bin, free_port  # noqa: E402
from latency import measure  # noqa: E402
from postfix import Postfix  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
DEFAULT_COUNTS = {4096: 2000, 102400: 1000, 1048576: 200}


def cpu_seconds(pids, include_children):
    total = 0.0
    for i, pid in enumerate(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / HZ
        if include_children and i == 0:  # master: children it has reaped
            total += (int(fields[13]) + int(fields[14])) / HZ
    return total


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    def __init__(self, pids_fn):
        super().__init__(daemon=True)
        self.pids_fn, self.peak, self.stop = pids_fn, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, pss_kb(self.pids_fn()))
            self.stop.wait(0.1)


def accept_buckets(admin_port):
    """Bridgehead's own end-of-data -> reply histogram from /metrics: {le: count}."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("bridgehead_accept_latency_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = int(line.split()[-1])
    return out


def bucket_quantile(before, after, q):
    """The upper bound (ms) of the bucket holding quantile q of the samples
    observed between two scrapes."""
    les = sorted(after)
    total = after[les[-1]] - before.get(les[-1], 0)
    for le in les:
        if total and after[le] - before.get(le, 0) >= q * total:
            return le * 1000
    return None


def human(size):
    return f"{size // 1048576} MB" if size >= 1048576 else f"{size // 1024} KB"


def run_one(kind, size, conc, count, binary, base, lat_count):
    work = tempfile.mkdtemp(prefix=f"{kind}-{size}-{conc}-", dir=base)
    os.chmod(work, 0o755)  # Postfix's own users must reach its queue below it
    shm = tempfile.mkdtemp(prefix="bridgehead-bench-sink-", dir="/dev/shm")
    sink = Sink(f"{shm}/sink")
    server = None
    try:
        if kind == "bridgehead":
            server = Bridgehead(f"{work}/bh", binary)
            server.setup_relay(sink.port)
            server.start()
            port = server.port

            def pids():
                return [server.proc.pid]
            children = False
        else:
            server = Postfix(f"{work}/pf", free_port(), sink.port)
            server.start()
            port = server.port
            pids = server.pids
            children = True
        time.sleep(0.5)
        sampler = Sampler(pids)
        sampler.start()
        cpu0 = cpu_seconds(pids(), children)
        t0 = time.time()
        src = subprocess.run(["smtp-source", "-s", str(conc), "-m", str(count), "-l", str(size),
                              "-f", "from@example.com", "-t", "to@remote.test",
                              f"127.0.0.1:{port}"], capture_output=True, text=True)
        t_accept = time.time() - t0
        deadline = time.time() + 300
        while sink.count() < count and time.time() < deadline:
            time.sleep(0.02)
        t_e2e = time.time() - t0
        delivered = sink.count()
        time.sleep(0.3)  # let the last deliveries' processes settle before reading CPU
        cpu = cpu_seconds(pids(), children) - cpu0
        hist0 = accept_buckets(server.admin) if kind == "bridgehead" else None
        lat = measure(port, lat_count, conc, size)
        hist1 = accept_buckets(server.admin) if kind == "bridgehead" else None
        sampler.stop.set()
        sampler.join()
        row = {
            "server": kind, "size": size, "conc": conc, "count": count,
            "accepted_per_s": count / t_accept, "delivered_per_s": count / t_e2e if delivered >= count else None,
            "delivered": delivered, "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
            "lat_failed": lat["failed"], "lat_client": lat.get("client"),
            # Server-side end-of-data -> reply, as histogram bucket bounds.
            "server_p50_le_ms": hist1 and bucket_quantile(hist0, hist1, 0.5),
            "server_p99_le_ms": hist1 and bucket_quantile(hist0, hist1, 0.99), "peak_mb": sampler.peak / 1024,
            "cpu_per_1000": cpu * 1000 / count, "source_rc": src.returncode,
            "source_err": src.stderr.strip()[-300:],
        }
        return row
    finally:
        if server is not None:
            server.stop()
        sink.stop()
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def latency_client(rows):
    kinds = {r.get("lat_client") for r in rows} - {None}
    names = {"rust": "bench/latency.rs (compiled, one thread)", "python": "bench/latency.py (asyncio)"}
    return ", ".join(names.get(k, k) for k in sorted(kinds)) or "none"


def fmt(v, nd=0):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}"


def table(rows):
    out = ["| server | size | conc | msgs | accepted msg/s | delivered msg/s | p50 ms | p99 ms | peak MB (Pss) | CPU s / 1000 msgs |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['server']} | {human(r['size'])} | {r['conc']} | {r['count']} | {fmt(r['accepted_per_s'])} | "
                   f"{fmt(r['delivered_per_s'])} | {fmt(r['p50_ms'], 1)} | {fmt(r['p99_ms'], 1)} | "
                   f"{fmt(r['peak_mb'], 1)} | {fmt(r['cpu_per_1000'], 2)} |")
    by = {(r["server"], r["size"], r["conc"]): r for r in rows}
    ratios = []
    for (s, size, conc), b in by.items():
        p = by.get(("postfix", size, conc))
        if s != "bridgehead" or not p:
            continue

        def ratio(k):
            return f"{b[k] / p[k]:.2f}×" if b.get(k) and p.get(k) else "—"
        ratios.append(f"| {human(size)} | {conc} | {ratio('accepted_per_s')} | {ratio('delivered_per_s')} | "
                      f"{ratio('p50_ms')} | {ratio('p99_ms')} | {ratio('peak_mb')} | {ratio('cpu_per_1000')} |")
    if ratios:
        out += ["", "Ratio Bridgehead / Postfix (throughput: higher is better for Bridgehead; latency, memory, CPU: lower is better):", "",
                "| size | conc | accepted | delivered | p50 | p99 | peak memory | CPU / msg |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"] + ratios
    return "\n".join(out)


def fstype(path):
    out = subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True).stdout.split()
    return out[-1] if len(out) > 1 else "?"


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    pf = subprocess.run(["postconf", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({model}), {mem / 1024:.1f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Postfix {pf}, disk for queues: {fstype(os.environ.get('TMPDIR', '/var/tmp'))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 KB, concurrency 10, 500 messages (CI)")
    ap.add_argument("--sizes", default="4096,102400,1048576")
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--count", type=int, help="messages per run (default: 2000 / 1000 / 200 by size)")
    ap.add_argument("--latency-count", type=int, default=200, help="messages for the latency client")
    ap.add_argument("--servers", default="bridgehead,postfix")
    ap.add_argument("--write", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.concurrency, args.count = "4096", "10", args.count or 500
        args.latency_count = min(args.latency_count, 200)
    servers = args.servers.split(",")
    if "postfix" in servers and os.geteuid() != 0:
        print("relay: not root, Postfix skipped", file=sys.stderr)
        servers.remove("postfix")
    binary = bridgehead_bin()
    base = tempfile.mkdtemp(prefix="bridgehead-bench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    os.chmod(base, 0o755)
    rows, bad = [], []
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        for size in map(int, args.sizes.split(",")):
            for conc in map(int, args.concurrency.split(",")):
                count = args.count or DEFAULT_COUNTS.get(size, 500)
                for kind in servers:
                    r = run_one(kind, size, conc, count, binary, base, args.latency_count)
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
                    if r["delivered"] < count or r["source_rc"] != 0 or r["lat_failed"]:
                        bad.append(r)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    md = table(rows)
    print(md)
    if args.write:
        cmd = "bench/relay.sh " + " ".join(sys.argv[1:]).replace("--write", "").strip()
        with open(ROOT / "BENCHMARKS.md", "a") as f:
            f.write(f"\n### Relay run {started:%Y-%m-%d %H:%M} UTC\n\n"
                    f"Machine: {machine()}. Bridgehead binary: `{os.path.relpath(binary, ROOT)}`. "
                    f"Latency client: {latency_client(rows)}.\n"
                    f"Command: `{cmd.strip()}`\n\n{md}\n")
    for r in bad:
        print(f"relay: FAILED {r['server']} {human(r['size'])} c{r['conc']}: delivered {r['delivered']}/{r['count']}, "
              f"smtp-source rc {r['source_rc']} {r['source_err']}, latency failures {r['lat_failed']}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
