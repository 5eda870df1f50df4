//! A real dnsmasq on loopback serving a handful of test records, for the DNS
//! tests (`dnsmasq` must be installed; `.ci/run` installs it).
//!
//! It runs in the foreground (`--no-daemon`, which also keeps dnsmasq from
//! changing user id, so it works as root and unprivileged alike), reads no
//! configuration, resolv.conf or hosts file, and answers everything under
//! `test.` from its own records only (`--local=/test/`): an unknown name there is
//! NXDOMAIN, a known name without the record type asked for is NOERROR with no
//! answer. Names outside `test.` get REFUSED (no upstream servers).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dnsmasq {
    pub addr: SocketAddr,
    child: Child,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1:<free port> with these extra arguments, e.g.
    /// `"--mx-host=example.test,mx1.example.test,10"`,
    /// `"--host-record=mx1.example.test,127.0.0.2"`, `"--cname=alias.test,target.test"`,
    /// `"--dns-rr=nullmx.test,15,000000"` (null MX), or
    /// `"--server=/slow.test/127.0.0.1#9"` (forwarded to a dead port: no answer).
    /// Returns once it answers queries.
    pub fn start(records: &[&str]) -> Dnsmasq {
        let bin = if Path::new("/usr/sbin/dnsmasq").exists() {
            "/usr/sbin/dnsmasq"
        } else {
            "dnsmasq"
        };
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_udp_tcp_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let spawned = Command::new(bin)
                .args([
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    &format!("--port={port}"),
                    "--log-facility=-",
                    "--local=/test/",
                ])
                .args(records)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) => panic!("cannot run {bin} (install the dnsmasq package): {e}"),
            };
            let mut dnsmasq = Dnsmasq { addr, child };
            match dnsmasq.wait_ready() {
                Ok(()) => return dnsmasq,
                // Most likely the port was taken in the meantime: try another.
                Err(e) => last_error = e,
            }
        }
        panic!("dnsmasq did not start: {last_error}");
    }

    /// Polls with a UDP query until dnsmasq answers anything.
    fn wait_ready(&mut self) -> Result<(), String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        // ID 0x4242, RD, one question: ready.test. IN A
        let mut query = vec![0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(b"\x05ready\x04test\x00\x00\x01\x00\x01");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("dnsmasq exited: {status}"));
            }
            let _ = socket.send_to(&query, self.addr);
            let mut buf = [0u8; 512];
            if let Ok((n, from)) = socket.recv_from(&mut buf)
                && from == self.addr
                && n >= 2
                && buf[..2] == [0x42, 0x42]
            {
                return Ok(());
            }
        }
        Err("dnsmasq did not answer within 10 s".into())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free for both UDP and TCP (dnsmasq listens on both).
fn free_udp_tcp_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else {
            continue;
        };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}
