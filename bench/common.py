"""Shared helpers for the bench scripts: free ports, a Bridgehead instance in a
scratch directory, a Postfix smtp-sink that dumps every message to a file, and a
raw SMTP sink that keeps the exact bytes each transaction carried.

Only the Python standard library (Debian's /usr/bin/python3)."""

import json
import os
import pathlib
import re
import signal
import socket
import socketserver
import sqlite3
import subprocess
import threading
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


class _RawSession(socketserver.BaseRequestHandler):
    """One SMTP session of a RawSink: strict about line ends (a command ends with
    CRLF, DATA ends only at <CRLF>.<CRLF>), lenient about everything else."""

    def handle(self):
        sink = self.server.sink
        sock = self.request
        sock.settimeout(60)
        buf = bytearray()

        def send(text):
            sock.sendall(text.encode() + b"\r\n")

        def fill():
            data = sock.recv(65536)
            if not data:
                raise EOFError
            buf.extend(data)

        def line():
            while b"\r\n" not in buf:
                if len(buf) > 100_000:
                    raise EOFError
                fill()
            i = buf.index(b"\r\n")
            text = bytes(buf[:i])
            del buf[:i + 2]
            return text

        def path(arg):
            m = re.search(rb"<([^>]*)>", arg)
            return m.group(1).decode(errors="replace") if m else arg.decode(errors="replace")

        tx = None
        try:
            send("220 rawsink.test ESMTP")
            while True:
                cmd = line()
                verb = cmd.split(b" ", 1)[0].upper()
                if verb == b"EHLO":
                    ext = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
                    if sink.chunking:
                        ext.append("CHUNKING")
                    send("\r\n".join([f"250-rawsink.test"] + [f"250-{e}" for e in ext[:-1]]
                                      + [f"250 {ext[-1]}"]))
                elif verb == b"HELO":
                    send("250 rawsink.test")
                elif verb == b"MAIL":
                    tx = {"sender": path(cmd[5:]), "rcpts": [], "mode": None, "wire": bytearray()}
                    send("250 2.1.0 Ok")
                elif verb == b"RCPT" and tx is not None:
                    tx["rcpts"].append(path(cmd[5:]))
                    send("250 2.1.5 Ok")
                elif verb == b"DATA" and tx and tx["rcpts"]:
                    send("354 End data with <CR><LF>.<CR><LF>")
                    # The text starts as if after a CRLF, so a first line of "." ends it.
                    while True:
                        end = (b"\r\n" + buf).find(b"\r\n.\r\n")
                        if end >= 0:
                            break
                        fill()
                    tx["mode"], tx["wire"] = "DATA", bytes(buf[:end])
                    del buf[:end + 3]
                    sink.record(tx)
                    tx = None
                    send("250 2.0.0 Ok: stored")
                elif verb == b"BDAT" and tx and tx["rcpts"]:
                    parts = cmd.split()
                    size = int(parts[1])
                    while len(buf) < size:
                        fill()
                    tx["mode"] = "BDAT"
                    tx["wire"] += buf[:size]
                    del buf[:size]
                    if len(parts) > 2 and parts[2].upper() == b"LAST":
                        tx["wire"] = bytes(tx["wire"])
                        sink.record(tx)
                        tx = None
                        send("250 2.0.0 Ok: stored")
                    else:
                        send(f"250 2.0.0 {size} octets received")
                elif verb in (b"RSET", b"NOOP"):
                    if verb == b"RSET":
                        tx = None
                    send("250 2.0.0 Ok")
                elif verb == b"QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("502 5.5.1 Error: command not recognized or out of sequence")
        except (EOFError, OSError, ValueError, IndexError):
            return


class RawSink:
    """A minimal SMTP server on 127.0.0.1 (standard library, one thread per
    session) that keeps every transaction as it came over the wire:
    {"sender", "rcpts", "mode": "DATA"|"BDAT", "wire": bytes}. For DATA, `wire` is
    the still dot-stuffed text up to the first strict <CRLF>.<CRLF> (the CRLF before
    the dot included); for BDAT, the chunks concatenated. CHUNKING is offered only
    with chunking=True. Unlike smtp-sink, which rewrites line ends in its dumps,
    this shows exactly which bytes a next hop would have to interpret."""

    def __init__(self, chunking=False):
        self.chunking = chunking
        self.transactions = []
        self._lock = threading.Lock()
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _RawSession)
        self.server.daemon_threads = True
        self.server.sink = self
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def record(self, tx):
        with self._lock:
            self.transactions.append(tx)

    def received(self):
        with self._lock:
            return list(self.transactions)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def bare_line_ends(data):
    """(bare CRs, bare LFs) in `data`: a CR not followed by LF, an LF not after CR."""
    cr = sum(1 for i, b in enumerate(data) if b == 13 and data[i + 1:i + 2] != b"\n")
    lf = sum(1 for i, b in enumerate(data) if b == 10 and (i == 0 or data[i - 1] != 13))
    return cr, lf


def unstuff(wire):
    """DATA text as a receiver stores it: the leading dot of each CRLF line removed."""
    return b"\r\n".join(x[1:] if x.startswith(b".") else x for x in wire.split(b"\r\n"))


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

    def directory_version(self):
        """The organization version the running server has loaded (/healthz)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/healthz", timeout=5) as r:
            return json.load(r).get("directory_version", 0)

    def cli_and_wait(self, *args, timeout=30):
        """A CLI change, then wait until the running server has applied it."""
        before = self.directory_version()
        out = self.cli(*args)
        deadline = time.time() + timeout
        while self.directory_version() <= before:
            if time.time() > deadline:
                raise SystemExit(f"bridgehead did not apply `{' '.join(args)}` in {timeout} s")
            time.sleep(0.1)
        return out

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

    def sql(self, query, *params):
        """Rows of a read-only query on the server's database."""
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return c.execute(query, params).fetchall()
        finally:
            c.close()


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
