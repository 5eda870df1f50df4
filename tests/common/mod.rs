//! Helpers for end-to-end tests: run the real `bridgehead` binary in a scratch
//! directory, talk to it over real sockets.
#![allow(dead_code)]

pub mod dnsmasq;
pub mod http;
pub mod peers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bridgehead");

/// A free loopback port (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A `bridgehead` command run in `dir`, with the SMTP defaults moved off the
/// privileged ports.
pub fn command(dir: &Path) -> Command {
    let smtp = smtp_ports(dir);
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("BRIDGEHEAD_CONFIG")
        .env_remove("BRIDGEHEAD_ADMIN_PASSWORD")
        .env("BRIDGEHEAD_LOG_LEVEL", "info")
        .env("BRIDGEHEAD_HOSTNAME", "mail.test")
        .env("BRIDGEHEAD_SMTP_INTERNET", format!("127.0.0.1:{}", smtp[0]))
        .env(
            "BRIDGEHEAD_SMTP_SUBMISSION",
            format!("127.0.0.1:{}", smtp[1]),
        )
        .env(
            "BRIDGEHEAD_SMTP_SUBMISSIONS",
            format!("127.0.0.1:{}", smtp[2]),
        );
    c
}

/// The three default connector ports of a test directory, chosen once and kept
/// in `dir/ports`, so the CLI (which may create the database) and the server agree.
pub fn smtp_ports(dir: &Path) -> [u16; 3] {
    let file = dir.join("ports");
    if let Ok(text) = std::fs::read_to_string(&file) {
        let p: Vec<u16> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [a, b, c] = p[..] {
            return [a, b, c];
        }
    }
    let p = [free_port(), free_port(), free_port()];
    std::fs::write(&file, format!("{} {} {}", p[0], p[1], p[2])).expect("write ports");
    p
}

pub fn cli(dir: &Path, args: &[&str]) -> Output {
    command(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bridgehead")
}

pub fn cli_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bridgehead");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub admin: SocketAddr,
    pub smtp: [u16; 3],
}

impl Server {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let smtp = smtp_ports(dir);
        let mut c = command(dir);
        c.arg("serve")
            .env("BRIDGEHEAD_ADMIN_LISTEN", admin.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("server.log")).expect("server.log"));
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("start bridgehead serve");
        let mut server = Server {
            child,
            dir: dir.to_path_buf(),
            admin,
            smtp,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited early: {status}");
            }
            let smtp_up = TcpStream::connect(("127.0.0.1", self.smtp[0])).is_ok();
            if smtp_up
                && http_get(self.admin, "/healthz")
                    .map(|(s, _)| s == 200)
                    .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready");
    }

    /// Everything the server printed on stdout so far (reads until EOF: call
    /// after stopping it).
    pub fn read_stdout(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut s);
        }
        s
    }

    /// The first line printed on stdout (the generated password notice).
    pub fn first_stdout_line(&mut self) -> String {
        let mut line = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        line
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop on SIGTERM");
    }

    pub fn healthz(&self) -> serde_json::Value {
        let (status, body) = http_get(self.admin, "/healthz").expect("healthz");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("healthz json")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // The body may be chunked; keep the JSON object only.
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b >= a => body[a..=b].to_string(),
        _ => body,
    };
    Ok((status, body))
}

/// A minimal HTTP/1.1 GET returning the status, the header block and the body
/// as sent (for bodies that are not JSON; chunked bodies are not decoded).
pub fn http_get_raw(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp.as_str(), ""));
    Ok((status, head.to_string(), body.to_string()))
}

/// A raw SMTP client over a plain socket, for talking to the server exactly as
/// a test needs (pipelining, smuggling attempts, relay tricks).
pub struct RawSmtp {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
}

impl RawSmtp {
    pub fn connect(port: u16) -> RawSmtp {
        Self::connect_from(port, None)
    }

    pub fn connect_from(port: u16, _source: Option<&str>) -> RawSmtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        RawSmtp {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, data: &str) {
        self.stream.write_all(data.as_bytes()).expect("write");
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.stream.write_all(data).expect("write");
    }

    /// Reads one whole (possibly multi-line) reply: (code, full text).
    pub fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let line = self.line();
            text.push_str(&line);
            text.push('\n');
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return (code, text);
            }
        }
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return line;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    let rest = String::from_utf8_lossy(&self.buf).into_owned();
                    self.buf.clear();
                    return rest;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a command and returns the reply.
    pub fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }

    /// Like `cmd`, but `None` when the connection is gone (for crash tests).
    pub fn try_cmd(&mut self, line: &str) -> Option<(u16, String)> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .ok()?;
        let r = self.reply();
        (r.0 != 0).then_some(r)
    }

    /// Greeting + EHLO.
    pub fn start(port: u16) -> RawSmtp {
        let mut s = RawSmtp::connect(port);
        assert_eq!(s.reply().0, 220);
        assert_eq!(s.cmd("EHLO client.test").0, 250);
        s
    }

    /// True when the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// Runs swaks; returns (exit code, combined output).
pub fn swaks(args: &[&str]) -> (i32, String) {
    let out = Command::new("swaks")
        .args(["--timeout", "20", "--hide-informational"])
        .args(args)
        .output()
        .expect("swaks is installed by .ci/run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs an SQL query against the server's database with Python's sqlite3 (not
/// our own code): rows joined by `|`, one per line.
pub fn sql(dir: &Path, query: &str) -> String {
    let db = dir.join("data/bridgehead.db");
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print('|'.join(map(str,r))) for r in c.execute(sys.argv[2])]")
        .arg(db)
        .arg(query)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A message the load generator saw a 250 for.
pub struct Acked {
    pub subject: String,
    /// The queue id from "250 2.6.0 <ID@host> ...".
    pub id: Option<String>,
}

/// A load run by [`load`]: the clients, and how many 250s they have seen so far.
pub struct Load {
    pub clients: Vec<std::thread::JoinHandle<Vec<Acked>>>,
    pub acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Load {
    /// Waits until `n` messages were acknowledged (or 60 s passed): a kill -9
    /// test then strikes mid-load however slow the machine is.
    pub fn wait_for_acks(&self, n: usize) {
        let acked = self.acked.clone();
        eventually(60, move || {
            acked.load(std::sync::atomic::Ordering::Relaxed) >= n
        });
    }

    /// Everything the clients saw accepted (call after the server stopped).
    pub fn join(self) -> Vec<Acked> {
        self.clients
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }
}

/// `threads` clients each send up to `per_thread` one-recipient messages, one
/// session per message, until the server stops answering (it is about to be
/// killed).
pub fn load(port: u16, threads: usize, per_thread: usize, rcpt: &'static str) -> Load {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients = (0..threads)
        .map(|t| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..per_thread {
                    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        break;
                    };
                    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut c = RawSmtp {
                        stream,
                        buf: Vec::new(),
                    };
                    if c.reply().0 != 220 {
                        break;
                    }
                    let rcpt_cmd = format!("RCPT TO:<{rcpt}>");
                    let steps = [
                        "EHLO load.test",
                        "MAIL FROM:<load@elsewhere.test>",
                        rcpt_cmd.as_str(),
                        "DATA",
                    ];
                    if steps
                        .iter()
                        .any(|s| c.try_cmd(s).is_none_or(|(code, _)| code >= 400))
                    {
                        break;
                    }
                    let subject = format!("load-{t}-{i}");
                    match c.try_cmd(&format!("Subject: {subject}\r\n\r\nbody {i}\r\n.")) {
                        Some((250, text)) => {
                            let id = text
                                .split('<')
                                .nth(1)
                                .and_then(|r| r.split('@').next())
                                .map(String::from);
                            acked.push(Acked { subject, id });
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    Load {
        clients,
        acked: counter,
    }
}
