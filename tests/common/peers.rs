//! SMTP servers we did not write, run on loopback for the delivery client's
//! tests: Postfix's `smtp-sink` and a small aiosmtpd script
//! (`tests/peers/aiosmtpd_server.py`). Also test certificates.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// The Debian interpreter: the one on PATH may lack python3-aiosmtpd.
pub const PYTHON: &str = "/usr/bin/python3";
pub const AIOSMTPD_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/aiosmtpd_server.py"
);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `smtp-sink` that dumps every message into its own directory.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dump: tempfile::TempDir,
}

/// One message as `smtp-sink -d` dumped it (LF line ends, dot-unstuffed).
#[derive(Debug, Clone)]
pub struct SinkMessage {
    pub proto: String,
    pub helo: Option<String>,
    pub mail_args: String,
    pub rcpt_args: Vec<String>,
    /// The message as received, with CRLF turned into LF by smtp-sink.
    pub body: String,
}

impl SmtpSink {
    /// Starts `smtp-sink FLAGS 127.0.0.1:PORT 10` on a free port and waits until it accepts.
    pub fn start(flags: &[&str]) -> SmtpSink {
        for _ in 0..5 {
            if let Some(sink) = Self::try_start("127.0.0.1", free_port(), flags) {
                return sink;
            }
        }
        panic!("smtp-sink did not start");
    }

    /// Starts it on a given address (e.g. 127.0.0.3 for a second MX host, or the
    /// port of a sink that was stopped).
    pub fn start_on(ip: &str, port: u16, flags: &[&str]) -> SmtpSink {
        for _ in 0..50 {
            if let Some(sink) = Self::try_start(ip, port, flags) {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(100)); // the port may linger
        }
        panic!("smtp-sink did not start on {ip}:{port}");
    }

    fn try_start(ip: &str, port: u16, flags: &[&str]) -> Option<SmtpSink> {
        let dump = tempfile::tempdir().expect("tempdir");
        let template = format!("{}/msg.", dump.path().display());
        let mut child = Command::new(SMTP_SINK)
            .args(["-u", &current_user(), "-d", &template])
            .args(flags)
            .arg(format!("{ip}:{port}"))
            .arg("10")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run smtp-sink (Postfix; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None; // exited: the port is taken
            }
            if TcpStream::connect((ip, port)).is_ok() {
                return Some(SmtpSink { child, port, dump });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The raw dump files so far (complete or still being written), oldest first.
    pub fn raw(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dump.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
            .collect()
    }

    /// Waits up to `secs` for a dump containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str, secs: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(m) = self.raw().into_iter().find(|m| m.contains(needle)) {
                return Some(m);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The dumped messages, once there are `n` complete ones (or after 5 s).
    pub fn messages(&self, n: usize) -> Vec<SinkMessage> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let msgs = self.read_dumps();
            if msgs.len() >= n || Instant::now() > deadline {
                return msgs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read_dumps(&self) -> Vec<SinkMessage> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dump.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|bytes| parse_dump(&String::from_utf8_lossy(&bytes)))
            .collect()
    }
}

/// Parses one dump; `None` while it is incomplete.
fn parse_dump(text: &str) -> Option<SinkMessage> {
    // The dump ends with the message and one empty line.
    let text = text.strip_suffix("\n\n")?;
    let mut msg = SinkMessage {
        proto: String::new(),
        helo: None,
        mail_args: String::new(),
        rcpt_args: Vec::new(),
        body: String::new(),
    };
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        let l = line.trim_end_matches('\n');
        if let Some(v) = l.strip_prefix("X-Client-Proto: ") {
            msg.proto = v.into();
        } else if let Some(v) = l.strip_prefix("X-Helo-Args: ") {
            msg.helo = Some(v.into());
        } else if let Some(v) = l.strip_prefix("X-Mail-Args: ") {
            msg.mail_args = v.into();
        } else if let Some(v) = l.strip_prefix("X-Rcpt-Args: ") {
            msg.rcpt_args.push(v.into());
        } else if l.starts_with("Received: ") {
            break;
        }
    }
    // The Received header's two continuation lines.
    lines.next()?;
    lines.next()?;
    msg.body = lines.collect::<String>();
    msg.body.push('\n');
    Some(msg)
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tests/peers/aiosmtpd_server.py`.
pub struct Aiosmtpd {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// One saved message: envelope (JSON) and the exact bytes received.
#[derive(Debug, Clone)]
pub struct SavedMessage {
    pub envelope: serde_json::Value,
    pub content: Vec<u8>,
}

impl SavedMessage {
    pub fn mail_options(&self) -> Vec<String> {
        self.envelope["mail_options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn rcpts(&self) -> Vec<String> {
        self.envelope["rcpts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r[0].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Aiosmtpd {
    /// Starts the script with `args` (plus `--save` and `--transcript` into a
    /// fresh directory) and waits for its "ready PORT" line.
    pub fn start(args: &[&str]) -> Aiosmtpd {
        let dir = tempfile::tempdir().expect("tempdir");
        let save = dir.path().join("messages");
        std::fs::create_dir(&save).expect("mkdir");
        let mut child = Command::new(PYTHON)
            .arg(AIOSMTPD_SCRIPT)
            .arg("0")
            .arg("--save")
            .arg(&save)
            .arg("--transcript")
            .arg(dir.path().join("transcript"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run aiosmtpd_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("aiosmtpd did not start");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("aiosmtpd said {line:?}"));
        Aiosmtpd { child, port, dir }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every command line the server received, in order.
    pub fn transcript(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("transcript"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The saved messages in arrival order.
    pub fn messages(&self) -> Vec<SavedMessage> {
        let save = self.dir.path().join("messages");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&save)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|eml| {
                let json = std::fs::read_to_string(eml.with_extension("json")).expect("json");
                SavedMessage {
                    envelope: serde_json::from_str(&json).expect("envelope"),
                    content: std::fs::read(eml).expect("eml"),
                }
            })
            .collect()
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PEM files for TLS tests.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (for `SSL_CERT_FILE`), when the leaf is CA-signed.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A self-signed certificate for `names`.
    pub fn self_signed(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).expect("rcgen");
        let cert = write(dir.path(), "cert.pem", &c.cert.pem());
        let key = write(dir.path(), "key.pem", &c.key_pair.serialize_pem());
        Pki {
            ca: cert.clone(),
            dir,
            cert,
            key,
        }
    }

    /// A test CA and a leaf certificate for `names` signed by it.
    pub fn ca_signed(names: &[&str]) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Bridgehead Test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf cert");
        Pki {
            ca: write(dir.path(), "ca.pem", &ca_cert.pem()),
            cert: write(dir.path(), "cert.pem", &leaf.pem()),
            key: write(dir.path(), "key.pem", &leaf_key.serialize_pem()),
            dir,
        }
    }

    pub fn cert_str(&self) -> &str {
        self.cert.to_str().expect("utf-8 path")
    }

    pub fn key_str(&self) -> &str {
        self.key.to_str().expect("utf-8 path")
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write pem");
    p
}
