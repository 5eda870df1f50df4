//! The outbound SMTP client (PRODUCT §6): one connection to one server.
//!
//! [`Connection::open`] connects, reads the greeting, says EHLO (falling back to
//! HELO when EHLO is refused), upgrades with STARTTLS (RFC 3207) as the
//! [`TlsMode`] asks and authenticates (RFC 4954) as the [`AuthMode`] asks.
//! [`Connection::send`] then runs one mail transaction and maps the server's
//! replies to an outcome per recipient; the connection can carry further
//! transactions afterwards. Routing, DNS, pooling and retry decisions belong to
//! the caller.
//!
//! Choices worth knowing:
//!
//! - An 8-bit body sent to a server that does not offer 8BITMIME goes out as it
//!   is, without `BODY=8BITMIME` (what Postfix does by default): converting to
//!   quoted-printable would break signatures, and virtually every server copes.
//! - DATA bodies are dot-stuffed (RFC 5321 §4.5.2), a bare CR or LF is sent as
//!   CRLF (the receive side refuses them, but one must never reach the wire,
//!   where it could help SMTP smuggling), and a CRLF is added before the final `.` when
//!   the message does not end with one. BDAT chunks carry the bytes unchanged.
//! - A failed AUTH is a transient [`ConnectError`] (`permanent: false`): the
//!   administrator fixes the credentials and the queue retries; bouncing mail
//!   for a configuration error would be worse.
//! - Any `421` reply means the server is closing: the recipients still open are
//!   deferred with that reply and the connection is marked unusable.
//! - Replies outside 2xx/4xx/5xx where a completion is expected are a protocol
//!   error ([`SessionError`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::protocol_log::{Event, ProtocolLog};
use crate::smtp::auth::{encode_base64, encode_plain};
use crate::smtp::command::encode_xtext;
use crate::smtp::ehlo::{Extensions, parse_ehlo};
use crate::smtp::reply::{Reply, parse_reply};

/// Size of one BDAT chunk (RFC 3030) and of one read from the spool file.
const CHUNK: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 8 * 1024;
/// Longest wait for the reply to QUIT (and the courtesy QUIT after a refusal).
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The system CA bundle used when `$SSL_CERT_FILE` is not set.
const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(1);

/// How one send connector talks to its next hop.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Name for EHLO/HELO: the connector FQDN or the server host name.
    pub helo_name: String,
    /// Send HELO, never EHLO (then no extension, no STARTTLS, no AUTH).
    pub force_helo: bool,
    pub tls: TlsMode,
    /// `false`: encrypt without checking the certificate. `true`: verify chain
    /// and name against the roots in `$SSL_CERT_FILE`, else
    /// `/etc/ssl/certs/ca-certificates.crt` (read once per process).
    pub verify_certificate: bool,
    pub auth: AuthMode,
    pub connect_timeout: Duration,
    /// Wait for each reply (RFC 5321 §4.5.3.2) and for each write.
    pub command_timeout: Duration,
    /// Wait for the final reply after the end of the message data.
    pub data_timeout: Duration,
    /// When set, every line sent and received is logged; AUTH payloads as `****`.
    pub protocol_log: Option<ProtocolLog>,
    pub connector_name: String,
    /// The connector's size limit; larger messages fail with `5.3.4` unsent.
    pub max_message_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when offered, else plaintext. A failed handshake is a
    /// transient [`ConnectError`] (no plaintext retry).
    Opportunistic,
    /// No STARTTLS or a failed handshake is a transient [`ConnectError`].
    Required,
}

#[derive(Clone, PartialEq, Eq)]
pub enum AuthMode {
    None,
    /// AUTH PLAIN if offered, else LOGIN; allowed over plaintext.
    Basic {
        username: String,
        password: String,
    },
    /// Like `Basic`, but credentials are only ever sent inside TLS.
    BasicRequireTls {
        username: String,
        password: String,
    },
    /// The link is secured some other way: no AUTH.
    ExternallySecured,
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::None => f.write_str("None"),
            AuthMode::ExternallySecured => f.write_str("ExternallySecured"),
            AuthMode::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            AuthMode::BasicRequireTls { username, .. } => f
                .debug_struct("BasicRequireTls")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// One mail transaction.
#[derive(Debug, Clone, Copy)]
pub struct Transaction<'a> {
    /// Reverse path; `""` is the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [OutRecipient],
    /// The spool file: the message exactly as received, CRLF lines, not dot-stuffed.
    pub body: &'a Path,
    /// Declared with `SIZE=` and checked against the limits.
    pub size: u64,
    /// The body uses 8-bit octets (`BODY=8BITMIME` when the peer offers it).
    pub eight_bit: bool,
    /// The envelope needs SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// `FULL` or `HDRS` (RFC 3461), sent when the peer offers DSN.
    pub ret: Option<&'a str>,
    /// Decoded ENVID; xtext-encoded on the wire.
    pub envid: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY value, e.g. `SUCCESS,FAILURE` or `NEVER`.
    pub notify: Option<String>,
    /// `addr-type;address` with the address decoded, e.g. `rfc822;x@y`;
    /// the address part is xtext-encoded on the wire.
    pub orcpt: Option<String>,
}

/// What became of one recipient, with the reply that decided it (a remote
/// reply, or one we made up for a refusal before sending, e.g. `5.3.4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Delivered(Reply),
    Deferred(Reply),
    Failed(Reply),
}

impl RcptOutcome {
    /// The reply behind the outcome.
    pub fn reply(&self) -> &Reply {
        match self {
            RcptOutcome::Delivered(r) | RcptOutcome::Deferred(r) | RcptOutcome::Failed(r) => r,
        }
    }

    /// Outcome of a negative completion reply (4xx deferred, else failed).
    fn negative(reply: Reply) -> Self {
        if reply.is_transient() {
            RcptOutcome::Deferred(reply)
        } else {
            RcptOutcome::Failed(reply)
        }
    }
}

/// Opening the connection failed; nothing was sent.
#[derive(thiserror::Error, Debug, Clone)]
#[error("{message}")]
pub struct ConnectError {
    /// The next hop refused us for good (5xx greeting or EHLO/HELO). Network
    /// errors, TLS and AUTH problems are transient.
    pub permanent: bool,
    /// The server's reply, when there was one.
    pub reply: Option<Reply>,
    /// One line, e.g. `mx.example[192.0.2.1]:25: connection refused`.
    pub message: String,
}

/// The connection broke in the middle of a transaction (I/O error, timeout,
/// protocol violation). Every recipient not yet final must be deferred and the
/// connection dropped.
#[derive(thiserror::Error, Debug, Clone)]
#[error("{message}")]
pub struct SessionError {
    pub message: String,
}

/// Plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a read or write failed (before it becomes a [`ConnectError`] or
/// [`SessionError`]).
#[derive(Debug)]
enum IoFail {
    Io(io::Error),
    Timeout(&'static str),
    Closed,
    BadReply(String),
}

impl fmt::Display for IoFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoFail::Io(e) => write!(f, "{}", io_text(e)),
            IoFail::Timeout(what) => write!(f, "timeout {what}"),
            IoFail::Closed => f.write_str("connection closed by the server"),
            IoFail::BadReply(e) => write!(f, "malformed reply: {e}"),
        }
    }
}

fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::BrokenPipe => "connection closed by the server".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// One open SMTP connection to one server.
pub struct Connection {
    stream: Option<Stream>,
    inbuf: Vec<u8>,
    cfg: Arc<ClientConfig>,
    ext: Extensions,
    tls: bool,
    server_name: String,
    /// `name[ip]:port` for error messages.
    peer: String,
    local: String,
    remote: String,
    session: String,
    seq: u32,
    /// Set while a command exchange is in progress and when the connection can no
    /// longer be used (an error, a 421, a cancelled `send`).
    broken: bool,
    disconnect_logged: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("session", &self.session)
            .field("tls", &self.tls)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// TCP connect (with `connect_timeout`) to `addr`, read the 220 greeting,
    /// EHLO (HELO when `force_helo` or when EHLO gets a 5xx), STARTTLS per
    /// [`TlsMode`] followed by a new EHLO, then AUTH per [`AuthMode`].
    /// `server_name` is used for TLS SNI and certificate verification (a DNS
    /// name or the IP address as text) and is reported by [`Self::remote_name`].
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        cfg: Arc<ClientConfig>,
    ) -> Result<Connection, ConnectError> {
        let peer = if server_name == addr.ip().to_string() {
            addr.to_string()
        } else {
            format!("{server_name}[{}]:{}", addr.ip(), addr.port())
        };
        let tcp = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(transient(&peer, io_text(&e), None)),
            Err(_) => return Err(transient(&peer, "connection timed out".into(), None)),
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let session = format!("{:016X}", SESSION_COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut c = Connection {
            stream: Some(Stream::Plain(tcp)),
            inbuf: Vec::with_capacity(READ_SIZE),
            cfg,
            ext: Extensions::default(),
            tls: false,
            server_name: server_name.to_string(),
            peer,
            local,
            remote: addr.to_string(),
            session,
            seq: 0,
            broken: false,
            disconnect_logged: false,
        };
        c.log(Event::Connect, "");
        match c.handshake().await {
            Ok(()) => Ok(c),
            Err(e) => {
                c.log(Event::Info, &e.message);
                if c.broken {
                    c.stream = None;
                } else {
                    c.courtesy_quit().await;
                }
                c.log_disconnect();
                Err(e)
            }
        }
    }

    /// The extensions the server offered in its last EHLO reply (empty after HELO).
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// True once STARTTLS succeeded.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The server name given to [`Self::open`] (for the DSN `Remote-MTA`).
    pub fn remote_name(&self) -> &str {
        &self.server_name
    }

    /// False once the connection broke; the pool should drop it.
    pub fn is_usable(&self) -> bool {
        !self.broken && self.stream.is_some()
    }

    async fn handshake(&mut self) -> Result<(), ConnectError> {
        let cmd_timeout = self.cfg.command_timeout;
        let banner = self
            .read_reply(cmd_timeout, "waiting for the greeting")
            .await
            .map_err(|e| self.connect_fail(e))?;
        if banner.code != 220 {
            return Err(self.refused("greeting", banner));
        }
        self.greet().await?;
        self.start_tls().await?;
        self.authenticate().await
    }

    /// EHLO, or HELO when forced or when EHLO gets a 5xx.
    async fn greet(&mut self) -> Result<(), ConnectError> {
        let name = self.cfg.helo_name.clone();
        if !self.cfg.force_helo {
            let reply = self
                .command(&format!("EHLO {name}"))
                .await
                .map_err(|e| self.connect_fail(e))?;
            if reply.code == 250 {
                self.ext = parse_ehlo(&reply);
                return Ok(());
            }
            if !reply.is_permanent() || self.tls {
                return Err(self.refused("EHLO", reply));
            }
            self.log(Event::Info, "EHLO refused; falling back to HELO");
        }
        self.ext = Extensions::default();
        let reply = self
            .command(&format!("HELO {name}"))
            .await
            .map_err(|e| self.connect_fail(e))?;
        if reply.code != 250 {
            return Err(self.refused("HELO", reply));
        }
        Ok(())
    }

    async fn start_tls(&mut self) -> Result<(), ConnectError> {
        let required = self.cfg.tls == TlsMode::Required;
        if !self.ext.starttls {
            if required {
                return Err(transient(
                    &self.peer,
                    "STARTTLS required but not offered".into(),
                    None,
                ));
            }
            return Ok(());
        }
        let reply = self
            .command("STARTTLS")
            .await
            .map_err(|e| self.connect_fail(e))?;
        if reply.code != 220 {
            if required {
                return Err(transient(
                    &self.peer,
                    format!("STARTTLS refused: {reply}"),
                    Some(reply),
                ));
            }
            self.log(
                Event::Info,
                &format!("STARTTLS refused, continuing in plaintext: {reply}"),
            );
            return Ok(());
        }
        if !self.inbuf.is_empty() {
            // Bytes after the 220 were sent in plaintext and would be read as if
            // they came through TLS (CVE-2011-0411 response injection).
            return Err(transient(
                &self.peer,
                "STARTTLS: the server sent data after its 220 reply".into(),
                None,
            ));
        }
        let config = client_tls_config(self.cfg.verify_certificate)
            .map_err(|e| transient(&self.peer, e, None))?;
        let name = self.tls_server_name()?;
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(transient(&self.peer, "TLS is already active".into(), None));
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = match tokio::time::timeout(self.cfg.command_timeout, connector.connect(name, tcp))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(transient(
                    &self.peer,
                    format!("TLS handshake failed: {e}"),
                    None,
                ));
            }
            Err(_) => {
                return Err(transient(
                    &self.peer,
                    "TLS handshake timed out".into(),
                    None,
                ));
            }
        };
        let (_, state) = tls.get_ref();
        let version = state
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("TLS")
            .replace('_', ".");
        let cipher = state
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or("unknown")
            .to_string();
        self.stream = Some(Stream::Tls(Box::new(tls)));
        self.tls = true;
        self.log(Event::Info, &format!("TLS negotiated: {version} {cipher}"));
        // RFC 3207 §4.2: forget everything learned before TLS and start over.
        self.ext = Extensions::default();
        self.greet().await
    }

    fn tls_server_name(&self) -> Result<ServerName<'static>, ConnectError> {
        match ServerName::try_from(self.server_name.clone()) {
            Ok(n) => Ok(n),
            Err(_) if !self.cfg.verify_certificate => {
                let ip: SocketAddr = self
                    .remote
                    .parse()
                    .map_err(|_| transient(&self.peer, "invalid TLS server name".into(), None))?;
                Ok(ServerName::IpAddress(ip.ip().into()))
            }
            Err(_) => Err(transient(
                &self.peer,
                format!("invalid TLS server name {:?}", self.server_name),
                None,
            )),
        }
    }

    async fn authenticate(&mut self) -> Result<(), ConnectError> {
        let (username, password) = match &self.cfg.auth {
            AuthMode::None | AuthMode::ExternallySecured => return Ok(()),
            AuthMode::Basic { username, password } => (username.clone(), password.clone()),
            AuthMode::BasicRequireTls { username, password } => {
                if !self.tls {
                    return Err(transient(
                        &self.peer,
                        "AUTH requires TLS, but TLS is not active; credentials not sent".into(),
                        None,
                    ));
                }
                (username.clone(), password.clone())
            }
        };
        let reply = if self.ext.auth.contains(&"PLAIN") {
            let line = format!("AUTH PLAIN {}", encode_plain(&username, &password));
            self.command_masked(&line, "AUTH PLAIN ****")
                .await
                .map_err(|e| self.connect_fail(e))?
        } else if self.ext.auth.contains(&"LOGIN") {
            let mut reply = self
                .command("AUTH LOGIN")
                .await
                .map_err(|e| self.connect_fail(e))?;
            // The prompts are not standardised (aiosmtpd sends "User Name\0",
            // others "Username:"): any 334 gets the next value, in order.
            for value in [&username, &password] {
                if reply.code != 334 {
                    break;
                }
                reply = self
                    .command_masked(&encode_base64(value.as_bytes()), "****")
                    .await
                    .map_err(|e| self.connect_fail(e))?;
            }
            reply
        } else {
            return Err(transient(
                &self.peer,
                if self.ext.auth.is_empty() {
                    "AUTH not offered by the server".into()
                } else {
                    format!(
                        "no supported AUTH mechanism (server offers {})",
                        self.ext.auth.join(" ")
                    )
                },
                None,
            ));
        };
        if reply.code == 235 {
            Ok(())
        } else {
            if reply.code == 334 {
                // Cancel the exchange (RFC 4954 §4) before giving up.
                let _ = self.command("*").await;
            }
            Err(transient(
                &self.peer,
                format!("AUTH failed: {reply}"),
                Some(reply),
            ))
        }
    }

    /// Runs one transaction and returns one outcome per recipient, in order.
    pub async fn send(&mut self, tx: &Transaction<'_>) -> Result<Vec<RcptOutcome>, SessionError> {
        if !self.is_usable() {
            return Err(self.session_error("the connection is not usable".into()));
        }
        if tx.recipients.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(refusal) = self.refuse_before_sending(tx) {
            self.log(Event::Info, &refusal.to_string());
            return Ok(vec![RcptOutcome::Failed(refusal); tx.recipients.len()]);
        }
        // Set until the transaction completes, so a cancelled `send` (dropped
        // future) leaves the connection marked unusable.
        self.broken = true;
        let result = self.transaction(tx).await;
        match result {
            Ok((outcomes, usable)) => {
                self.broken = !usable;
                Ok(outcomes)
            }
            Err(e) => {
                self.log(Event::Info, &e.to_string());
                Err(self.session_error(e.to_string()))
            }
        }
    }

    /// A refusal decided without talking to the server.
    fn refuse_before_sending(&self, tx: &Transaction<'_>) -> Option<Reply> {
        if tx.smtputf8 && !self.ext.smtputf8 {
            return Some(Reply::new(
                553,
                "5.6.7",
                format!(
                    "SMTPUTF8 is required, but was not offered by host {}",
                    self.server_name
                ),
            ));
        }
        if let Some(limit) = self.cfg.max_message_size
            && tx.size > limit
        {
            return Some(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size {} exceeds the send connector limit of {limit} bytes",
                    tx.size
                ),
            ));
        }
        if let Some(limit) = self.ext.size
            && limit > 0
            && tx.size > limit
        {
            return Some(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size {} exceeds the fixed maximum message size of {limit} bytes at host {}",
                    tx.size, self.server_name
                ),
            ));
        }
        let bad = |s: &str| {
            s.bytes()
                .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
        };
        if bad(tx.sender)
            || tx
                .ret
                .is_some_and(|r| !r.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Some(Reply::new(553, "5.1.7", "Bad sender address syntax"));
        }
        None
    }

    /// The transaction proper. Returns the outcomes and whether the connection
    /// can carry another transaction.
    async fn transaction(
        &mut self,
        tx: &Transaction<'_>,
    ) -> Result<(Vec<RcptOutcome>, bool), IoFail> {
        let mail = mail_command(tx, &self.ext);
        let rcpts: Vec<Option<String>> = tx
            .recipients
            .iter()
            .map(|r| rcpt_command(r, &self.ext))
            .collect();
        let chunking = self.ext.chunking;
        let pipelining = self.ext.pipelining;

        // Recipients whose command could not even be written fail at once.
        let mut outcomes: Vec<Option<RcptOutcome>> = rcpts
            .iter()
            .map(|c| {
                c.is_none().then(|| {
                    RcptOutcome::Failed(Reply::new(553, "5.1.3", "Bad recipient address syntax"))
                })
            })
            .collect();
        let sent: Vec<usize> = (0..rcpts.len()).filter(|&i| rcpts[i].is_some()).collect();
        if sent.is_empty() {
            return Ok((finish(outcomes), true));
        }

        // MAIL, RCPT... and (without CHUNKING) DATA: in one write when pipelining.
        let mut accepted: Vec<usize> = Vec::new();
        let data_reply: Option<Reply>;
        if pipelining {
            let mut lines: Vec<&str> = vec![&mail];
            lines.extend(sent.iter().filter_map(|&i| rcpts[i].as_deref()));
            if !chunking {
                lines.push("DATA");
            }
            self.write_lines(&lines).await?;
            let mail_reply = self.expect_completion("MAIL").await?;
            let mut closing = mail_reply.code == 421;
            if !mail_reply.is_positive() {
                // RFC 2920 §3.1: the RCPTs (and DATA) still get replies; read them
                // unless the server is closing.
                let pending = sent.len() + usize::from(!chunking);
                for _ in 0..pending {
                    if closing {
                        break;
                    }
                    let r = self
                        .read_reply(self.cfg.command_timeout, "waiting for a pipelined reply")
                        .await?;
                    closing = r.code == 421;
                }
                return self.abandon(outcomes, &mail_reply, closing).await;
            }
            for &i in &sent {
                let r = self.expect_completion("RCPT").await?;
                if r.is_positive() {
                    accepted.push(i);
                } else {
                    outcomes[i] = Some(RcptOutcome::negative(r.clone()));
                }
                if r.code == 421 {
                    return self.abandon(outcomes, &r, true).await;
                }
            }
            data_reply = if chunking {
                None
            } else {
                let r = self
                    .read_reply(self.cfg.command_timeout, "waiting for the DATA reply")
                    .await?;
                Some(r)
            };
        } else {
            let mail_reply = self.command_reply(&mail, "MAIL").await?;
            if !mail_reply.is_positive() {
                let closing = mail_reply.code == 421;
                return self.abandon(outcomes, &mail_reply, closing).await;
            }
            for &i in &sent {
                let line = rcpts[i].clone().unwrap_or_default();
                let r = self.command_reply(&line, "RCPT").await?;
                if r.is_positive() {
                    accepted.push(i);
                } else {
                    outcomes[i] = Some(RcptOutcome::negative(r.clone()));
                }
                if r.code == 421 {
                    return self.abandon(outcomes, &r, true).await;
                }
            }
            data_reply = if chunking || accepted.is_empty() {
                None
            } else {
                let r = self.command("DATA").await?;
                Some(r)
            };
        }

        if accepted.is_empty() {
            if data_reply.as_ref().is_some_and(|r| r.code == 354) {
                // A server that wants data without a recipient: send an empty
                // message to end the state, then reset.
                self.write_raw(b".\r\n").await?;
                self.read_reply(self.cfg.data_timeout, "waiting for the end-of-data reply")
                    .await?;
            }
            let closing = data_reply.as_ref().is_some_and(|r| r.code == 421);
            let r = Reply::new(554, "5.5.1", "no valid recipients");
            return self.abandon(outcomes, &r, closing).await;
        }

        let final_reply = if chunking {
            self.send_bdat(tx.body).await?
        } else {
            let r = data_reply.unwrap_or_else(|| Reply::new(554, "5.5.1", "no DATA reply"));
            if r.code != 354 {
                let closing = r.code == 421;
                if !(r.is_transient() || r.is_permanent()) {
                    return Err(IoFail::BadReply(format!("unexpected DATA reply: {r}")));
                }
                for &i in &accepted {
                    outcomes[i] = Some(RcptOutcome::negative(r.clone()));
                }
                return self.abandon(outcomes, &r, closing).await;
            }
            self.send_data(tx.body).await?;
            self.read_reply(self.cfg.data_timeout, "waiting for the end-of-data reply")
                .await?
        };
        let closing = final_reply.code == 421;
        let ok = final_reply.code / 100 == 2;
        if !(ok || final_reply.is_transient() || final_reply.is_permanent()) {
            return Err(IoFail::BadReply(format!(
                "unexpected reply after the message data: {final_reply}"
            )));
        }
        for &i in &accepted {
            outcomes[i] = Some(if ok {
                RcptOutcome::Delivered(final_reply.clone())
            } else {
                RcptOutcome::negative(final_reply.clone())
            });
        }
        if !ok && !closing && chunking {
            // A refused BDAT chunk leaves the transaction open (RFC 3030 §2).
            return self.abandon(outcomes, &final_reply, false).await;
        }
        Ok((finish(outcomes), !closing))
    }

    /// Ends a transaction that will not deliver: every recipient without an
    /// outcome gets `reply`'s; then RSET (unless the server is closing).
    async fn abandon(
        &mut self,
        mut outcomes: Vec<Option<RcptOutcome>>,
        reply: &Reply,
        closing: bool,
    ) -> Result<(Vec<RcptOutcome>, bool), IoFail> {
        for o in outcomes.iter_mut().filter(|o| o.is_none()) {
            *o = Some(if reply.code / 100 == 2 {
                RcptOutcome::Deferred(reply.clone())
            } else {
                RcptOutcome::negative(reply.clone())
            });
        }
        let outcomes = finish(outcomes);
        if closing {
            return Ok((outcomes, false));
        }
        // The outcomes are known; a failing RSET only makes the connection unusable.
        let usable = matches!(self.command("RSET").await, Ok(r) if r.code == 250);
        Ok((outcomes, usable))
    }

    /// DATA body: dot-stuffed, streamed from the file.
    async fn send_data(&mut self, body: &Path) -> Result<(), IoFail> {
        let mut file = tokio::fs::File::open(body).await.map_err(IoFail::Io)?;
        let mut stuffer = DotStuffer::default();
        let mut buf = vec![0u8; CHUNK];
        let mut out = Vec::with_capacity(CHUNK * 2 + 8);
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(IoFail::Io)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            out.clear();
            stuffer.encode(&buf[..n], &mut out);
            self.write_raw(&out).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write_raw(&out).await?;
        self.log(Event::Info, &format!("sent {total} octets of message data"));
        self.log(Event::Sent, ".");
        Ok(())
    }

    /// BDAT body (RFC 3030): chunks of [`CHUNK`] octets, the last with LAST.
    /// Returns the reply that decides the transaction: the first negative one,
    /// or the reply to the LAST chunk.
    async fn send_bdat(&mut self, body: &Path) -> Result<Reply, IoFail> {
        let mut file = tokio::fs::File::open(body).await.map_err(IoFail::Io)?;
        let mut remaining = file.metadata().await.map_err(IoFail::Io)?.len();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = usize::try_from(remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
            // Read the whole chunk before announcing it: once BDAT n is sent,
            // exactly n octets must follow.
            file.read_exact(&mut buf[..n]).await.map_err(IoFail::Io)?;
            remaining -= n as u64;
            let last = remaining == 0;
            let cmd = if last {
                format!("BDAT {n} LAST")
            } else {
                format!("BDAT {n}")
            };
            self.log(Event::Sent, &cmd);
            let mut out = Vec::with_capacity(cmd.len() + 2 + n);
            out.extend_from_slice(cmd.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&buf[..n]);
            self.write_raw(&out).await?;
            let timeout = if last {
                self.cfg.data_timeout
            } else {
                self.cfg.command_timeout
            };
            let r = self
                .read_reply(timeout, "waiting for the BDAT reply")
                .await?;
            if last || r.code / 100 != 2 {
                return Ok(r);
            }
        }
    }

    /// RSET, to check a pooled connection is alive before reusing it.
    pub async fn reset(&mut self) -> Result<(), SessionError> {
        if !self.is_usable() {
            return Err(self.session_error("the connection is not usable".into()));
        }
        self.broken = true;
        match self.command("RSET").await {
            Ok(r) if r.code == 250 => {
                self.broken = false;
                Ok(())
            }
            Ok(r) => Err(self.session_error(format!("RSET refused: {r}"))),
            Err(e) => Err(self.session_error(e.to_string())),
        }
    }

    /// QUIT, wait briefly for the 221, close. Never fails.
    pub async fn quit(mut self) {
        if self.stream.is_some() && !self.broken {
            self.courtesy_quit().await;
        } else if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, s.shutdown()).await;
        }
        self.log_disconnect();
    }

    async fn courtesy_quit(&mut self) {
        let timeout = self.cfg.command_timeout.min(QUIT_TIMEOUT);
        if self.write_lines(&["QUIT"]).await.is_ok() {
            let _ = self.read_reply(timeout, "waiting for the QUIT reply").await;
        }
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(timeout, s.shutdown()).await;
        }
    }

    // ----- I/O helpers -----

    fn log(&mut self, event: Event, data: &str) {
        if let Some(log) = &self.cfg.protocol_log {
            log.write(
                &self.cfg.connector_name,
                &self.session,
                self.seq,
                &self.local,
                &self.remote,
                event,
                data,
            );
            self.seq += 1;
        }
    }

    fn log_disconnect(&mut self) {
        if !self.disconnect_logged {
            self.disconnect_logged = true;
            self.log(Event::Disconnect, "");
        }
    }

    fn session_error(&mut self, message: String) -> SessionError {
        self.broken = true;
        SessionError {
            message: format!("{}: {message}", self.peer),
        }
    }

    /// An I/O failure during the opening: the connection is beyond saving.
    fn connect_fail(&mut self, e: IoFail) -> ConnectError {
        self.broken = true;
        transient(&self.peer, e.to_string(), None)
    }

    /// A negative (or unexpected) reply during the opening.
    fn refused(&self, what: &str, reply: Reply) -> ConnectError {
        ConnectError {
            permanent: reply.is_permanent(),
            message: format!("{}: {what} refused: {reply}", self.peer),
            reply: Some(reply),
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), IoFail> {
        let timeout = self.cfg.command_timeout;
        let stream = self.stream.as_mut().ok_or(IoFail::Closed)?;
        match tokio::time::timeout(timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(IoFail::Io(e)),
            Err(_) => Err(IoFail::Timeout("sending to the server")),
        }
    }

    /// Sends command lines in one write (pipelining), logging each.
    async fn write_lines(&mut self, lines: &[&str]) -> Result<(), IoFail> {
        let mut out = Vec::new();
        for line in lines {
            self.log(Event::Sent, line);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.write_raw(&out).await
    }

    async fn command(&mut self, line: &str) -> Result<Reply, IoFail> {
        self.write_lines(&[line]).await?;
        self.read_reply(self.cfg.command_timeout, "waiting for a reply")
            .await
    }

    /// A command whose text must not be logged (AUTH payloads).
    async fn command_masked(&mut self, line: &str, shown: &str) -> Result<Reply, IoFail> {
        self.log(Event::Sent, shown);
        let mut out = line.as_bytes().to_vec();
        out.extend_from_slice(b"\r\n");
        self.write_raw(&out).await?;
        self.read_reply(self.cfg.command_timeout, "waiting for a reply")
            .await
    }

    /// A command that expects a completion reply (2xx/4xx/5xx).
    async fn command_reply(&mut self, line: &str, what: &str) -> Result<Reply, IoFail> {
        self.write_lines(&[line]).await?;
        self.expect_completion(what).await
    }

    async fn expect_completion(&mut self, what: &str) -> Result<Reply, IoFail> {
        let r = self
            .read_reply(self.cfg.command_timeout, "waiting for a reply")
            .await?;
        if r.code / 100 == 2 || r.is_transient() || r.is_permanent() {
            Ok(r)
        } else {
            Err(IoFail::BadReply(format!("unexpected {what} reply: {r}")))
        }
    }

    async fn read_reply(&mut self, timeout: Duration, what: &'static str) -> Result<Reply, IoFail> {
        loop {
            match parse_reply(&self.inbuf) {
                Ok(Some((reply, used))) => {
                    let raw = String::from_utf8_lossy(&self.inbuf[..used])
                        .trim_end()
                        .replace("\r\n", " | ");
                    self.inbuf.drain(..used);
                    self.log(Event::Received, &raw);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(IoFail::BadReply(e.to_string())),
            }
            let stream = self.stream.as_mut().ok_or(IoFail::Closed)?;
            let start = self.inbuf.len();
            self.inbuf.resize(start + READ_SIZE, 0);
            let n = match tokio::time::timeout(timeout, stream.read(&mut self.inbuf[start..])).await
            {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    self.inbuf.truncate(start);
                    return Err(IoFail::Io(e));
                }
                Err(_) => {
                    self.inbuf.truncate(start);
                    return Err(IoFail::Timeout(what));
                }
            };
            self.inbuf.truncate(start + n);
            if n == 0 {
                return Err(IoFail::Closed);
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.log_disconnect();
    }
}

fn transient(peer: &str, message: String, reply: Option<Reply>) -> ConnectError {
    ConnectError {
        permanent: false,
        reply,
        message: format!("{peer}: {message}"),
    }
}

fn finish(outcomes: Vec<Option<RcptOutcome>>) -> Vec<RcptOutcome> {
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                RcptOutcome::Deferred(Reply::new(451, "4.4.0", "transaction not completed"))
            })
        })
        .collect()
}

/// `MAIL FROM:<sender>` with the parameters the peer understands.
fn mail_command(tx: &Transaction<'_>, ext: &Extensions) -> String {
    let mut s = format!("MAIL FROM:<{}>", tx.sender);
    if ext.size.is_some() {
        s.push_str(&format!(" SIZE={}", tx.size));
    }
    if tx.eight_bit && ext.eight_bit_mime {
        s.push_str(" BODY=8BITMIME");
    }
    if tx.smtputf8 && ext.smtputf8 {
        s.push_str(" SMTPUTF8");
    }
    if ext.dsn {
        if let Some(ret) = tx.ret {
            s.push_str(&format!(" RET={}", ret.to_ascii_uppercase()));
        }
        if let Some(envid) = tx.envid {
            s.push_str(&format!(" ENVID={}", encode_xtext(envid)));
        }
    }
    s
}

/// `RCPT TO:<address>` with NOTIFY/ORCPT when the peer offers DSN; `None` when
/// the address or a parameter could inject text into the command.
fn rcpt_command(r: &OutRecipient, ext: &Extensions) -> Option<String> {
    let unsafe_text = |s: &str| s.bytes().any(|b| b < 0x20 || b == 0x7f);
    if r.address.is_empty() || unsafe_text(&r.address) || r.address.contains(['<', '>']) {
        return None;
    }
    let mut s = format!("RCPT TO:<{}>", r.address);
    if ext.dsn {
        if let Some(notify) = &r.notify {
            if !notify.bytes().all(|b| b.is_ascii_alphabetic() || b == b',') {
                return None;
            }
            s.push_str(&format!(" NOTIFY={}", notify.to_ascii_uppercase()));
        }
        if let Some(orcpt) = &r.orcpt {
            let (kind, addr) = orcpt.split_once(';')?;
            if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            s.push_str(&format!(" ORCPT={kind};{}", encode_xtext(addr)));
        }
    }
    Some(s)
}

/// Streaming DATA encoder (RFC 5321 §4.5.2): doubles a `.` at the start of a
/// line, writes a bare LF as CRLF, and [`finish`](Self::finish) adds the
/// terminating `.` (after a CRLF when the data does not end with one). State
/// carries across buffer boundaries.
#[derive(Debug)]
struct DotStuffer {
    at_line_start: bool,
    /// The last chunk ended in a CR; whether an LF follows is not known yet.
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }
}

impl DotStuffer {
    /// Dot-stuffs `input`, and sends every line ending as CRLF: a bare CR or LF
    /// becomes CRLF, so no next hop can read a `<CR>.<CR>`-style end of data
    /// into a message (SMTP smuggling). The receive side already refuses bare
    /// line endings; this also covers pickup files and anything else spooled.
    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        loop {
            if self.pending_cr {
                self.pending_cr = false;
                self.end_line(out);
                if rest.first() == Some(&b'\n') {
                    rest = &rest[1..]; // the CRLF was split across chunks
                }
            }
            let Some(&first) = rest.first() else {
                return;
            };
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            let Some(i) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
                out.extend_from_slice(rest);
                self.at_line_start = false;
                return;
            };
            out.extend_from_slice(&rest[..i]);
            self.at_line_start = false;
            match (rest[i], rest.get(i + 1)) {
                (b'\r', None) => {
                    self.pending_cr = true;
                    return;
                }
                (b'\r', Some(b'\n')) => rest = &rest[i + 2..],
                _ => rest = &rest[i + 1..],
            }
            self.end_line(out);
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            self.end_line(out);
        }
        if !self.at_line_start {
            self.end_line(out);
        }
        out.extend_from_slice(b".\r\n");
    }
}

// ----- TLS client configuration -----

/// The client TLS configuration for one verification mode, built once.
fn client_tls_config(verify: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    static VERIFYING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    static NOT_VERIFYING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    if verify {
        VERIFYING.get_or_init(|| build_tls_config(true)).clone()
    } else {
        NOT_VERIFYING
            .get_or_init(|| build_tls_config(false))
            .clone()
    }
}

fn build_tls_config(verify: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let config = if verify {
        let path = std::env::var_os("SSL_CERT_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| DEFAULT_CA_FILE.into());
        let pem = std::fs::read(&path)
            .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?;
        let mut reader = pem.as_slice();
        let certs = rustls_pemfile::certs(&mut reader).filter_map(Result::ok);
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("no CA certificate in {}", path.display()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Opportunistic TLS without verification: any certificate is accepted, but the
/// handshake signatures are still checked, so the session key really belongs
/// to whoever presented the certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            s.encode(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(
            stuff(&[b"a\r\n.b\r\n..\r\n.\r\n"]),
            b"a\r\n..b\r\n...\r\n..\r\n.\r\n"
        );
        assert_eq!(stuff(&[b".start\r\n"]), b"..start\r\n.\r\n");
        assert_eq!(stuff(&[b""]), b".\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
        // No final CRLF: one is added before the dot.
        assert_eq!(stuff(&[b"x\r\n.y"]), b"x\r\n..y\r\n.\r\n");
        // A dot in the middle of a line is left alone.
        assert_eq!(stuff(&[b"a.b\r\n"]), b"a.b\r\n.\r\n");
        // Bare LF and bare CR become CRLF, and a dot after them is stuffed.
        assert_eq!(stuff(&[b"a\n.b\r.c\r\n"]), b"a\r\n..b\r\n..c\r\n.\r\n");
        // The smuggling sequences turn into a stuffed dot line.
        for fake in [&b"\n.\n"[..], b"\r.\r", b"\r.\n", b"\n.\r", b"\r\n.\r"] {
            let out = stuff(&[b"x", fake, b"y"]);
            assert_eq!(out, b"x\r\n..\r\ny\r\n.\r\n", "{fake:?}");
        }
        // A CR ending the message, in the last chunk or alone.
        assert_eq!(stuff(&[b"a\r"]), b"a\r\n.\r\n");
        assert_eq!(stuff(&[b"a", b"\r"]), b"a\r\n.\r\n");
        // 8-bit bytes pass through.
        assert_eq!(stuff(&["été\r\n".as_bytes()]), "été\r\n.\r\n".as_bytes());
    }

    #[test]
    fn dot_stuffing_across_buffer_boundaries() {
        let input: &[u8] = b"one\r\n.two\r\n..three\r\nfour.\r\n.\r\nbare\r.cr\n.lf\r\nlast.";
        let whole = stuff(&[input]);
        assert_eq!(
            whole,
            b"one\r\n..two\r\n...three\r\nfour.\r\n..\r\nbare\r\n..cr\r\n..lf\r\nlast.\r\n.\r\n"
        );
        // Every split point, including between CR and LF and just before a dot.
        for i in 0..=input.len() {
            assert_eq!(stuff(&[&input[..i], &input[i..]]), whole, "split at {i}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(stuff(&bytes), whole);
        // CR at the end of one buffer, LF at the start of the next: no extra CR.
        assert_eq!(stuff(&[b"a\r", b"\n.b\r\n"]), b"a\r\n..b\r\n.\r\n");
        // Ends exactly with CRLF split over buffers: no extra CRLF.
        assert_eq!(stuff(&[b"a\r", b"\n"]), b"a\r\n.\r\n");
    }

    #[test]
    fn xtext_on_the_wire() {
        assert_eq!(encode_xtext("abc@example.com"), "abc@example.com");
        assert_eq!(encode_xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(encode_xtext("é"), "+C3+A9");
        for s in ["<id+1=2@host>", "plain", "sp ace", "ünï"] {
            assert_eq!(
                crate::smtp::command::decode_xtext(&encode_xtext(s)).as_deref(),
                Some(s)
            );
        }
    }

    fn tx<'a>(rcpts: &'a [OutRecipient]) -> Transaction<'a> {
        Transaction {
            sender: "alice@example.com",
            recipients: rcpts,
            body: Path::new("/nonexistent"),
            size: 1234,
            eight_bit: true,
            smtputf8: false,
            ret: Some("hdrs"),
            envid: Some("id+1=x"),
        }
    }

    #[test]
    fn mail_parameters() {
        let all = Extensions {
            size: Some(0),
            eight_bit_mime: true,
            dsn: true,
            smtputf8: true,
            ..Default::default()
        };
        assert_eq!(
            mail_command(&tx(&[]), &all),
            "MAIL FROM:<alice@example.com> SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx"
        );
        // Nothing offered: no parameters at all (8-bit body sent as is).
        assert_eq!(
            mail_command(&tx(&[]), &Extensions::default()),
            "MAIL FROM:<alice@example.com>"
        );
        let mut t = tx(&[]);
        t.sender = "";
        t.eight_bit = false;
        t.smtputf8 = true;
        t.ret = None;
        t.envid = None;
        assert_eq!(mail_command(&t, &all), "MAIL FROM:<> SIZE=1234 SMTPUTF8");
    }

    #[test]
    fn rcpt_parameters() {
        let dsn = Extensions {
            dsn: true,
            ..Default::default()
        };
        let r = OutRecipient {
            address: "bob@example.net".into(),
            notify: Some("success,failure".into()),
            orcpt: Some("rfc822;bob+tag@example.net".into()),
        };
        assert_eq!(
            rcpt_command(&r, &dsn).unwrap(),
            "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Btag@example.net"
        );
        assert_eq!(
            rcpt_command(&r, &Extensions::default()).unwrap(),
            "RCPT TO:<bob@example.net>"
        );
        let evil = OutRecipient {
            address: "x@y>\r\nRSET".into(),
            notify: None,
            orcpt: None,
        };
        assert_eq!(rcpt_command(&evil, &dsn), None);
        let evil = OutRecipient {
            notify: Some("NEVER\r\nDATA".into()),
            ..r.clone()
        };
        assert_eq!(rcpt_command(&evil, &dsn), None);
        let bad_orcpt = OutRecipient {
            orcpt: Some("no-semicolon".into()),
            ..r
        };
        assert_eq!(rcpt_command(&bad_orcpt, &dsn), None);
    }

    #[test]
    fn debug_hides_passwords() {
        let a = AuthMode::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        let a = AuthMode::BasicRequireTls {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let cfg = ClientConfig {
            helo_name: "h".into(),
            force_helo: false,
            tls: TlsMode::Opportunistic,
            verify_certificate: false,
            auth: a,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            data_timeout: Duration::from_secs(1),
            protocol_log: None,
            connector_name: "c".into(),
            max_message_size: None,
        };
        let dbg = format!("{cfg:?}");
        assert!(dbg.contains("BasicRequireTls") && !dbg.contains("hunter2"));
    }
}
