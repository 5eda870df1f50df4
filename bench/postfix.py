"""A private, stock Postfix instance on loopback for the relay benchmark: its own
config directory and queue, smtpd on a high port of 127.0.0.1 (nothing on port
25), relayhost = the benchmark's smtp-sink. Must run as root (Postfix drops to
mail_owner=postfix itself)."""

import os
import pathlib
import re
import subprocess
import time

from common import port_open


class Postfix:
    def __init__(self, directory, port, relay_port):
        self.dir = pathlib.Path(directory)
        self.conf = self.dir / "etc"
        self.queue = self.dir / "queue"
        self.port = port
        self.conf.mkdir(parents=True, exist_ok=True)
        self.queue.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        import shutil
        shutil.chown(self.dir / "data", "postfix", "postfix")
        main = f"""# Written by bench/postfix.py: a stock Postfix relaying everything to a sink.
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.dir}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
alias_maps =
alias_database =
smtpd_tls_security_level = none
smtp_tls_security_level = none
maillog_file = {self.dir}/maillog
"""
        (self.conf / "main.cf").write_text(main)
        # Debian's master.cf with the smtpd listener moved to 127.0.0.1:PORT and
        # chroot off (the chroot would need copies of /etc files in the queue dir).
        out = []
        for line in pathlib.Path("/etc/postfix/master.cf").read_text().splitlines():
            if re.match(r"^smtp\s+inet\s", line):
                line = re.sub(r"^smtp(\s+)inet", f"127.0.0.1:{port}\\1inet", line)
            m = re.match(r"^(\S+\s+\S+\s+\S+\s+\S+\s+)y(\s.*)$", line)
            if m and not line.startswith("#"):
                line = m.group(1) + "n" + m.group(2)
            out.append(line)
        (self.conf / "master.cf").write_text("\n".join(out) + "\n")
        # Make sure nothing else would bind port 25.
        for line in out:
            if re.match(r"^(smtp|\S*:25)\s+inet\s", line):
                raise SystemExit("postfix.py: master.cf still has a port-25 listener")

    def postfix(self, *args, check=True):
        r = subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"postfix {' '.join(args)}: {r.stderr.strip()}\n"
                             f"(log: {self.dir}/maillog)")
        return r

    def start(self, timeout=30):
        self.postfix("start")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if port_open(self.port):
                return
            time.sleep(0.1)
        raise SystemExit(f"postfix did not listen on 127.0.0.1:{self.port}; see {self.dir}/maillog")

    def stop(self):
        self.postfix("stop", check=False)
        # postfix stop returns before master has exited.
        deadline = time.time() + 15
        while time.time() < deadline and self.master_pid():
            time.sleep(0.1)

    def master_pid(self):
        try:
            pid = int((self.queue / "pid" / "master.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def pids(self):
        """master and its children (every Postfix daemon is a child of master)."""
        master = self.master_pid()
        if not master:
            return []
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    if ppid == master:
                        kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return [master] + kids

    def queued(self):
        n = 0
        for sub in ("incoming", "active", "deferred", "maildrop", "hold"):
            for _root, _dirs, files in os.walk(self.queue / sub):
                n += len(files)
        return n
