"""Shared helpers for the bench scripts: free ports, a Bridgehead instance in a
scratch directory, a Postfix smtp-sink that dumps every message to a file.

Only the Python standard library (Debian's /usr/bin/python3)."""

import os
import pathlib
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request

SMTP_SINK = "/usr/sbin/smtp-sink"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def bridgehead_bin():
    b = os.environ.get("BRIDGEHEAD_BIN")
    if b:
        return os.path.abspath(b)
    for p in (ROOT / "target/release/bridgehead", ROOT / "target/debug/bridgehead"):
        if p.exists():
            return str(p)
    raise SystemExit("no bridgehead binary: build it or set BRIDGEHEAD_BIN")


def current_user():
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()


class Sink:
    """`smtp-sink -u USER -d DIR/msg. 127.0.0.1:PORT BACKLOG`."""

    def __init__(self, dump_dir, backlog=1000, extra=()):
        self.dump = pathlib.Path(dump_dir)
        self.dump.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-u", current_user(), "-d", f"{self.dump}/msg.", *extra,
                 f"127.0.0.1:{self.port}", str(backlog)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_open(self.port):
                    return
                time.sleep(0.02)
            self.stop()
        raise SystemExit("smtp-sink did not start")

    def files(self):
        return [p for p in self.dump.iterdir() if p.is_file()]

    def count(self):
        try:
            return sum(1 for _ in os.scandir(self.dump))
        except FileNotFoundError:
            return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bridgehead:
    """A Bridgehead server in DIR (data in DIR/data), on free loopback ports."""

    def __init__(self, directory, binary=None):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = os.path.abspath(binary or bridgehead_bin())
        self.smtp = [free_port(), free_port(), free_port()]
        self.admin = free_port()
        self.proc = None
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("BRIDGEHEAD_"):
                del self.env[k]
        self.env.update({
            "BRIDGEHEAD_HOSTNAME": "mail.bench.test",
            "BRIDGEHEAD_DATA_DIR": str(self.dir / "data"),
            "BRIDGEHEAD_LOG_LEVEL": "warn",
            "BRIDGEHEAD_SMTP_INTERNET": f"127.0.0.1:{self.smtp[0]}",
            "BRIDGEHEAD_SMTP_SUBMISSION": f"127.0.0.1:{self.smtp[1]}",
            "BRIDGEHEAD_SMTP_SUBMISSIONS": f"127.0.0.1:{self.smtp[2]}",
            "BRIDGEHEAD_ADMIN_LISTEN": f"127.0.0.1:{self.admin}",
            "BRIDGEHEAD_ADMIN_PASSWORD": "bench-admin-password",
        })

    @property
    def port(self):
        return self.smtp[0]

    @property
    def db(self):
        return self.dir / "data" / "bridgehead.db"

    def cli(self, *args, stdin=None):
        r = subprocess.run([self.bin, *args], cwd=self.dir, env=self.env, input=stdin,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bridgehead {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def setup_relay(self, sink_port, max_connections=5000, per_ip=1000, retry="1s"):
        """example.com (authoritative), remote.test (external relay: anonymous
        clients may send there and it is routed out), a `*` send connector to the
        sink, no per-IP connection limit worth speaking of, 1 s retries."""
        self.cli("accepted-domain", "new", "example.com", "--default")
        self.cli("accepted-domain", "new", "remote.test", "--type", "external-relay")
        self.cli("send-connector", "new", "--name", "Sink", "--address-space", "*",
                 "--smart-host", f"127.0.0.1:{sink_port}")
        self.cli("receive-connector", "set", "Default Internet",
                 "--max-connections-per-ip", str(per_ip), "--max-connections", str(max_connections))
        self.cli("server", "set", "--retry-interval", retry)

    def start(self, timeout=60):
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen([self.bin, "serve"], cwd=self.dir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bridgehead exited early ({self.proc.returncode}); "
                                 f"see {self.dir / 'server.log'}")
            if port_open(self.port) and self.healthy():
                return
            time.sleep(0.05)
        raise SystemExit("bridgehead did not become ready")

    def healthy(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def queued(self):
        """Messages still in the queue (rows of `messages`), or None if unreadable."""
        try:
            c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                return c.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            finally:
                c.close()
        except sqlite3.Error:
            return None


def proc_rss_cpu(pids):
    """(sum of VmHWM in kB, sum of utime+stime in seconds) over live pids."""
    hz = os.sysconf("SC_CLK_TCK")
    hwm = 0
    cpu = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                cpu += (int(fields[11]) + int(fields[12])) / hz
        except (OSError, IndexError, ValueError):
            pass
    return hwm, cpu
