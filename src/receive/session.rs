//! One SMTP server session (RFC 5321) on a receive connector: greeting, EHLO,
//! STARTTLS (RFC 3207), AUTH (RFC 4954), MAIL/RCPT with the relay policy, DATA and
//! BDAT (RFC 3030) streamed to the spool, and the durable submit before `250`.
//!
//! Replies are buffered and flushed only when no further pipelined command is
//! waiting (RFC 2920), and always before the session blocks on a read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::connector::{AuthMechanism, PermissionGroup, ProtocolLogging, ReceiveConnector};
use super::listener::ReceiveContext;
use super::policy::{self, RcptDecision};
use crate::directory::Directory;
use crate::password;
use crate::protocol_log::Event as LogEvent;
use crate::queue::QueueId;
use crate::queue::spool::SpoolWriter;
use crate::queue::submit::{Envelope, EnvelopeRecipient};
use crate::smtp::address::EmailAddress;
use crate::smtp::auth;
use crate::smtp::command::{self, Body, Command, ForwardPath, MailParams, Notify, RcptParams, Ret};
use crate::smtp::data::{DataDecoder, DataOutcome, LineEndingCheck};
use crate::smtp::ehlo::Extensions;
use crate::smtp::reply::Reply;

/// Room for one network read while the client sends commands: a pipelined batch
/// fits, and an idle session holds no more than this (10 000 idle sessions must
/// stay far below the 64 KB each that a body-sized buffer would cost).
const COMMAND_CHUNK: usize = 4 * 1024;
/// Room for one network read while a message body (DATA, BDAT) streams in.
const BODY_CHUNK: usize = 64 * 1024;
/// Headers kept in memory to find Message-ID and Subject (the rest streams by).
const HEADER_PEEK: usize = 64 * 1024;
/// Free space the data directory's file system must keep beyond a message's
/// declared size for MAIL to be accepted (the queue database and the
/// delivery side need room too); below it MAIL gets `452 4.3.1`.
const RESERVED_SPACE: u64 = 4 * 1024 * 1024;

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(1);

/// What the client's TLS session negotiated, for the Received header.
#[derive(Debug, Clone)]
struct TlsInfo {
    version: String,
    cipher: String,
}

/// Serves one accepted connection until QUIT, an error, a timeout or a limit.
pub async fn serve(
    ctx: &ReceiveContext,
    conn: Arc<ReceiveConnector>,
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
) {
    let id = format!("{:016X}", SESSION_COUNTER.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!("smtp", session = %id, connector = %conn.name, client = %remote);
    let limit = Duration::from_secs(conn.connection_timeout_secs);
    async move {
        let mut s = Session::new(ctx, conn, id, local, remote);
        s.log(LogEvent::Connect, "");
        match tokio::time::timeout(limit, s.run(stream)).await {
            Ok(()) => {}
            Err(_) => tracing::info!("connection time limit reached"),
        }
        s.log(LogEvent::Disconnect, "");
    }
    .instrument(span)
    .await
}

struct Transaction {
    id: QueueId,
    sender: Option<EmailAddress>,
    params: MailParams,
    recipients: Vec<EnvelopeRecipient>,
    /// Set while a BDAT sequence is in progress.
    bdat: Option<BodyWriter>,
}

/// Why the command loop ended.
enum End {
    Close,
    StartTls,
}

struct Session<'a> {
    ctx: &'a ReceiveContext,
    /// The server's stop signal, taken once per session (see `fill`).
    shutdown: tokio::sync::watch::Receiver<bool>,
    conn: Arc<ReceiveConnector>,
    id: String,
    local: SocketAddr,
    remote: SocketAddr,
    fqdn: String,
    tls: Option<TlsInfo>,
    helo: Option<String>,
    esmtp: bool,
    auth_user: Option<String>,
    tx: Option<Transaction>,
    bad_commands: u32,
    auth_failures: u32,
    log_seq: u32,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

impl<'a> Session<'a> {
    fn new(
        ctx: &'a ReceiveContext,
        conn: Arc<ReceiveConnector>,
        id: String,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Self {
        let fqdn = conn.fqdn.clone().unwrap_or_else(|| ctx.hostname.clone());
        Session {
            ctx,
            shutdown: ctx.shutdown.clone(),
            conn,
            id,
            local,
            remote,
            fqdn,
            tls: None,
            helo: None,
            esmtp: false,
            auth_user: None,
            tx: None,
            bad_commands: 0,
            auth_failures: 0,
            log_seq: 0,
            inbuf: Vec::with_capacity(4096),
            outbuf: Vec::with_capacity(1024),
        }
    }

    fn log(&mut self, event: LogEvent, data: &str) {
        if self.conn.protocol_logging == ProtocolLogging::Verbose {
            self.ctx.protocol_log.write(
                &self.conn.name,
                &self.id,
                self.log_seq,
                &self.local.to_string(),
                &self.remote.to_string(),
                event,
                data,
            );
            self.log_seq += 1;
        }
    }

    /// The TLS part and the body and AUTH commands run in futures boxed when
    /// they start, so that the task of every idle session (thousands at a time)
    /// holds only what waiting for the next command line needs.
    async fn run(&mut self, stream: TcpStream) {
        if self.conn.implicit_tls {
            // Port 465 style (RFC 8314): TLS first, then the greeting inside it.
            Box::pin(self.run_tls(stream, true)).await;
            return;
        }
        let mut stream = stream;
        if let End::StartTls = self.command_loop(&mut stream, true).await {
            // After STARTTLS the client starts over with EHLO; no new greeting.
            Box::pin(self.run_tls(stream, false)).await;
        }
    }

    async fn run_tls(&mut self, stream: TcpStream, greet: bool) {
        if let Some(mut tls) = self.handshake(stream).await {
            self.command_loop(&mut tls, greet).await;
        }
    }

    /// TLS handshake; forgets everything learned before it (RFC 3207 §4.2).
    async fn handshake(
        &mut self,
        stream: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.ctx.tls.clone());
        let timeout = Duration::from_secs(self.conn.command_timeout_secs);
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
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
                self.log(
                    LogEvent::Info,
                    &format!("TLS negotiated: {version} {cipher}"),
                );
                self.tls = Some(TlsInfo { version, cipher });
                self.helo = None;
                self.esmtp = false;
                self.auth_user = None;
                self.tx = None;
                self.inbuf.clear();
                Some(tls)
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                self.log(LogEvent::Info, &format!("TLS handshake failed: {e}"));
                None
            }
            Err(_) => None,
        }
    }

    fn reply(&mut self, r: Reply) {
        let wire = r.to_wire();
        if self.conn.protocol_logging == ProtocolLogging::Verbose {
            let text = String::from_utf8_lossy(&wire)
                .trim_end()
                .replace("\r\n", " | ");
            self.log(LogEvent::Sent, &text);
        }
        self.outbuf.extend_from_slice(&wire);
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<()> {
        if !self.outbuf.is_empty() {
            stream.write_all(&self.outbuf).await?;
            stream.flush().await?;
            self.outbuf.clear();
        }
        Ok(())
    }

    /// Reads more input (up to `chunk` bytes, into spare capacity: nothing is
    /// zeroed or touched beforehand), flushing pending replies first. `Ok(false)`
    /// on EOF.
    async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        chunk: usize,
    ) -> std::io::Result<bool> {
        self.flush(stream).await?;
        let timeout = Duration::from_secs(self.conn.command_timeout_secs);
        let start = self.inbuf.len();
        self.inbuf.reserve_exact(chunk);
        // Between commands a shutdown ends the session with 421 4.3.2 (RFC 5321
        // §3.8); a message body being read is left to finish (the server waits
        // a bounded time for those, see `app`).
        let idle = chunk == COMMAND_CHUNK;
        let read = {
            let read = stream.read_buf(&mut self.inbuf);
            tokio::select! {
                r = tokio::time::timeout(timeout, read) => Some(r),
                _ = self.shutdown.wait_for(|s| *s), if idle => None,
            }
        };
        let Some(read) = read else {
            self.inbuf.truncate(start);
            self.reply(Reply::shutting_down(&self.fqdn));
            let _ = self.flush(stream).await;
            return Ok(false);
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.inbuf.truncate(start);
                return Err(e);
            }
            Err(_) => {
                self.inbuf.truncate(start);
                self.reply(Reply::new(
                    421,
                    "4.4.2",
                    format!("{} Error: timeout exceeded", self.fqdn),
                ));
                let _ = self.flush(stream).await;
                return Ok(false);
            }
        };
        Ok(n > 0)
    }

    /// After a message body: give back the body-sized read buffer, so that a
    /// session that goes idle holds only a command-sized one.
    fn shrink_input(&mut self) {
        if self.inbuf.capacity() > 2 * COMMAND_CHUNK {
            self.inbuf.shrink_to(COMMAND_CHUNK);
        }
    }

    /// The next command line (without its terminator), or `None` when the client
    /// is gone. Over-long lines are answered here and skipped.
    async fn next_line<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        kind: LineKind,
    ) -> Option<Vec<u8>> {
        let mut discarding = false;
        loop {
            let max = kind.max_len(&self.inbuf);
            if let Some((len, used)) = command::find_line(&self.inbuf) {
                let line = self.inbuf[..len].to_vec();
                self.inbuf.drain(..used);
                if discarding || len > max {
                    self.reply(Reply::new(500, "5.5.2", "Error: line too long"));
                    if self.count_bad_command() {
                        return None;
                    }
                    discarding = false;
                    continue;
                }
                return Some(line);
            }
            if self.inbuf.len() > max {
                // Keep memory bounded: drop what we have and skip to the next line end.
                self.inbuf.clear();
                discarding = true;
            }
            match self.fill(stream, COMMAND_CHUNK).await {
                Ok(true) => {}
                _ => return None,
            }
        }
    }

    /// Counts a protocol error; true when the limit is reached (421 queued).
    fn count_bad_command(&mut self) -> bool {
        self.bad_commands += 1;
        if self.bad_commands >= self.conn.max_bad_commands {
            self.reply(Reply::new(
                421,
                "4.7.0",
                format!("{} Error: too many errors", self.fqdn),
            ));
            return true;
        }
        false
    }

    async fn command_loop<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        greet: bool,
    ) -> End {
        if greet {
            let banner = self
                .conn
                .banner
                .clone()
                .unwrap_or_else(|| "Bridgehead ESMTP ready".into());
            self.reply(Reply::new(220, "", format!("{} {}", self.fqdn, banner)));
        }
        loop {
            let Some(line) = self.next_line(stream, LineKind::Command).await else {
                let _ = self.flush(stream).await;
                return End::Close;
            };
            let parsed = command::parse_command(&line);
            let loggable = match &parsed {
                Ok(Command::Auth { mechanism, .. }) => format!("AUTH {mechanism} ****"),
                _ => String::from_utf8_lossy(&line).into_owned(),
            };
            self.log(LogEvent::Received, &loggable);
            let cmd = match parsed {
                Ok(c) => c,
                Err(e) => {
                    self.reply(e.reply.clone());
                    if self.count_bad_command() {
                        let _ = self.flush(stream).await;
                        return End::Close;
                    }
                    continue;
                }
            };
            match self.dispatch(stream, cmd).await {
                Flow::Continue => {}
                Flow::Close => {
                    let _ = self.flush(stream).await;
                    return End::Close;
                }
                Flow::StartTls => {
                    if self.flush(stream).await.is_err() {
                        return End::Close;
                    }
                    return End::StartTls;
                }
            }
        }
    }

    async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        cmd: Command,
    ) -> Flow {
        match cmd {
            Command::Helo(domain) => self.helo(domain, false),
            Command::Ehlo(domain) => self.helo(domain, true),
            Command::StartTls => return self.starttls(),
            Command::Auth { mechanism, initial } => {
                return Box::pin(self.auth(stream, &mechanism, initial)).await;
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => return Box::pin(self.data(stream)).await,
            Command::Bdat { size, last } => return Box::pin(self.bdat(stream, size, last)).await,
            Command::Rset => {
                self.tx = None;
                self.reply(Reply::new(250, "2.0.0", "Ok"));
            }
            Command::Noop => self.reply(Reply::new(250, "2.0.0", "Ok")),
            Command::Quit => {
                self.reply(Reply::new(221, "2.0.0", format!("{} Bye", self.fqdn)));
                return Flow::Close;
            }
            Command::Vrfy(_) => self.reply(Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => {
                self.reply(Reply::new(502, "5.5.1", "Error: EXPN is not available"))
            }
            Command::Help(_) => self.reply(Reply::new(
                214,
                "2.0.0",
                "Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
            )),
        }
        Flow::Continue
    }

    fn may_authenticate(&self) -> bool {
        self.conn.has_group(PermissionGroup::Users)
            && (self.conn.has_auth(AuthMechanism::Basic)
                || (self.conn.has_auth(AuthMechanism::BasicRequireTls) && self.tls.is_some()))
    }

    fn offers_starttls(&self) -> bool {
        self.tls.is_none() && self.conn.has_auth(AuthMechanism::Tls)
    }

    fn helo(&mut self, domain: String, esmtp: bool) {
        self.helo = Some(domain);
        self.esmtp = esmtp;
        self.tx = None;
        if !esmtp {
            self.reply(Reply::new(250, "", self.fqdn.clone()));
            return;
        }
        let ext = Extensions {
            size: Some(self.conn.max_message_size),
            starttls: self.offers_starttls(),
            auth: if self.may_authenticate() && self.auth_user.is_none() {
                vec!["PLAIN", "LOGIN"]
            } else {
                vec![]
            },
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            enhanced_status_codes: true,
            dsn: true,
            chunking: true,
            binarymime: false,
        };
        let greeting = format!("Hello [{}]", self.remote.ip());
        self.reply(ext.reply(&self.fqdn, &greeting));
    }

    fn starttls(&mut self) -> Flow {
        if !self.offers_starttls() {
            self.reply(Reply::new(502, "5.5.1", "Error: STARTTLS not available"));
            return Flow::Continue;
        }
        // Anything pipelined after STARTTLS was sent in plaintext and must not be
        // executed inside TLS (CVE-2011-0411 command injection).
        if !self.inbuf.is_empty() {
            self.inbuf.clear();
            self.log(LogEvent::Info, "discarded input pipelined after STARTTLS");
        }
        self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
        Flow::StartTls
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        mechanism: &str,
        initial: Option<String>,
    ) -> Flow {
        if self.helo.is_none() || !self.esmtp {
            self.reply(Reply::new(503, "5.5.1", "Error: send EHLO first"));
            return Flow::Continue;
        }
        if self.auth_user.is_some() {
            self.reply(Reply::new(503, "5.5.1", "Error: already authenticated"));
            return Flow::Continue;
        }
        if self.tx.is_some() {
            self.reply(Reply::new(
                503,
                "5.5.1",
                "Error: AUTH not allowed during a mail transaction",
            ));
            return Flow::Continue;
        }
        if !self.may_authenticate() {
            if self.tls.is_none()
                && self.conn.has_auth(AuthMechanism::BasicRequireTls)
                && self.conn.has_group(PermissionGroup::Users)
            {
                self.reply(Reply::new(
                    530,
                    "5.7.0",
                    "Must issue a STARTTLS command first",
                ));
            } else {
                self.reply(Reply::new(
                    503,
                    "5.5.1",
                    "Error: authentication not enabled",
                ));
            }
            return Flow::Continue;
        }
        // PLAIN's authorization identity (RFC 4616 §2), checked after the password.
        let mut authzid: Option<String> = None;
        let creds = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let answer = match initial {
                    Some(i) => Some(i),
                    None => self.challenge(stream, "").await,
                };
                let Some(answer) = answer else {
                    return Flow::Close;
                };
                if answer == "*" {
                    self.reply(Reply::new(501, "5.0.0", "Authentication cancelled"));
                    return Flow::Continue;
                }
                auth::decode_plain(&answer).map(|p| {
                    authzid = p.authzid;
                    (p.authcid, p.password)
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => Some(i),
                    None => self.challenge(stream, auth::LOGIN_USERNAME_PROMPT).await,
                };
                let Some(user) = user else { return Flow::Close };
                let Some(pass) = (if user == "*" {
                    Some("*".into())
                } else {
                    self.challenge(stream, auth::LOGIN_PASSWORD_PROMPT).await
                }) else {
                    return Flow::Close;
                };
                if user == "*" || pass == "*" {
                    self.reply(Reply::new(501, "5.0.0", "Authentication cancelled"));
                    return Flow::Continue;
                }
                auth::decode_base64_line(&user)
                    .and_then(|u| auth::decode_base64_line(&pass).map(|p| (u, p)))
            }
            _ => {
                self.reply(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
                return Flow::Continue;
            }
        };
        let Ok((user, password)) = creds else {
            self.reply(Reply::new(
                501,
                "5.5.2",
                "Cannot decode the authentication data",
            ));
            return Flow::Continue;
        };
        let directory = self.ctx.directory.borrow().clone();
        let verdict = match policy::authenticate(&directory, &user, password).await {
            Ok(v) => v,
            Err(password::Busy) => {
                // Too many checks in flight (an AUTH flood): not a failure of
                // this client's password (RFC 4954 §6: 454 4.7.0).
                tracing::warn!("authentication refused: password checks saturated");
                self.reply(Reply::new(
                    454,
                    "4.7.0",
                    "Temporary authentication failure, try again later",
                ));
                return Flow::Continue;
            }
        };
        // RFC 4616 §2: the server decides whether the authenticated identity may
        // act as the authzid. Only the mailbox itself may (any of its addresses);
        // anything else fails the exchange like a wrong password, or alice could
        // log in as `bob\0alice\0pw` and send as bob.
        let verdict = verdict.filter(|primary| {
            authzid
                .as_deref()
                .is_none_or(|z| policy::same_mailbox(&directory, z, primary))
        });
        match verdict {
            Some(primary) => {
                tracing::info!(user = %primary, "authenticated");
                self.log(LogEvent::Info, &format!("authenticated as {primary}"));
                self.auth_user = Some(primary);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
                Flow::Continue
            }
            None => {
                self.auth_failures += 1;
                tracing::info!(failures = self.auth_failures, "authentication failed");
                // Tarpit: each failure costs the client more time.
                let delay = Duration::from_millis(500 * u64::from(self.auth_failures.min(10)));
                let _ = self.flush(stream).await;
                tokio::time::sleep(delay).await;
                self.reply(Reply::new(535, "5.7.8", "Error: authentication failed"));
                if self.auth_failures >= self.conn.max_auth_failures {
                    self.reply(Reply::new(
                        421,
                        "4.7.0",
                        format!("{} Error: too many authentication failures", self.fqdn),
                    ));
                    return Flow::Close;
                }
                Flow::Continue
            }
        }
    }

    /// Sends a `334` challenge and reads the answer line (never logged).
    async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        prompt: &str,
    ) -> Option<String> {
        self.outbuf
            .extend_from_slice(format!("334 {prompt}\r\n").as_bytes());
        self.log(LogEvent::Sent, &format!("334 {prompt}"));
        let line = self.next_line(stream, LineKind::AuthResponse).await?;
        self.log(LogEvent::Received, "****");
        Some(String::from_utf8_lossy(&line).trim().to_string())
    }

    fn authenticated(&self) -> bool {
        self.auth_user.is_some() || self.conn.has_auth(AuthMechanism::ExternallySecured)
    }

    fn mail(&mut self, from: Option<EmailAddress>, params: MailParams) {
        if self.helo.is_none() {
            self.reply(Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
            return;
        }
        if self.tx.is_some() {
            self.reply(Reply::new(503, "5.5.1", "Error: nested MAIL command"));
            return;
        }
        if self.conn.require_tls && self.tls.is_none() {
            self.reply(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
            return;
        }
        let anonymous_ok = self.conn.has_group(PermissionGroup::Anonymous)
            || (self.conn.has_group(PermissionGroup::Partners) && self.tls.is_some());
        if !self.authenticated() && !anonymous_ok {
            self.reply(Reply::new(530, "5.7.0", "Authentication required"));
            return;
        }
        if let Some(size) = params.size
            && size > self.conn.max_message_size
        {
            self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            return;
        }
        if from.as_ref().is_some_and(EmailAddress::is_utf8) && !params.smtputf8 {
            self.reply(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII sender address requires SMTPUTF8",
            ));
            return;
        }
        // Back pressure: a nearly full disk refuses new mail before its data
        // is sent (RFC 1870 §6.1), instead of failing half-way through it.
        if self
            .ctx
            .spool
            .free_space()
            .is_ok_and(|free| free < RESERVED_SPACE + params.size.unwrap_or(0))
        {
            self.reply(Reply::new(452, "4.3.1", "Insufficient system storage"));
            return;
        }
        self.tx = Some(Transaction {
            id: QueueId::generate(),
            sender: from,
            params,
            recipients: Vec::new(),
            bdat: None,
        });
        self.reply(Reply::new(250, "2.1.0", "Sender OK"));
    }

    fn rcpt(&mut self, to: ForwardPath, params: RcptParams) {
        let Some(tx) = self.tx.as_ref() else {
            self.reply(Reply::new(503, "5.5.1", "Error: need MAIL command"));
            return;
        };
        if tx.bdat.is_some() {
            self.reply(Reply::new(
                503,
                "5.5.1",
                "Error: RCPT not allowed during BDAT",
            ));
            return;
        }
        if tx.recipients.len() >= self.conn.max_recipients as usize {
            self.reply(Reply::new(452, "4.5.3", "Error: too many recipients"));
            return;
        }
        let directory: Arc<Directory> = self.ctx.directory.borrow().clone();
        let address = match to {
            ForwardPath::Postmaster => match policy::postmaster(&directory, &self.ctx.hostname) {
                Some(a) => a,
                None => {
                    self.reply(Reply::new(
                        550,
                        "5.1.1",
                        "Recipient address rejected: user unknown",
                    ));
                    return;
                }
            },
            ForwardPath::Address(a) => a,
        };
        if address.is_utf8() && !tx.params.smtputf8 {
            self.reply(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII recipient address requires SMTPUTF8",
            ));
            return;
        }
        let may_relay = self.authenticated() || self.conn.anonymous_relay;
        let sender = tx.sender.clone();
        let decision = policy::check_recipient(
            &directory,
            &address,
            sender.as_ref(),
            self.auth_user.as_deref(),
            may_relay,
        );
        match decision {
            RcptDecision::Accept => {
                let notify = params.notify.map(notify_text);
                let orcpt = params
                    .orcpt
                    .as_ref()
                    .map(|o| format!("{};{}", o.addr_type, o.address));
                if let Some(tx) = self.tx.as_mut()
                    && !tx
                        .recipients
                        .iter()
                        .any(|r| r.address.key() == address.key())
                {
                    tx.recipients.push(EnvelopeRecipient {
                        address,
                        orcpt,
                        notify,
                    });
                }
                self.reply(Reply::new(250, "2.1.5", "Recipient OK"));
            }
            RcptDecision::Reject(reply) => {
                tracing::info!(recipient = %address, reply = %reply.lines.join(" "), "recipient refused");
                self.reply(reply);
            }
        }
    }

    fn check_ready_for_body(&mut self) -> bool {
        match &self.tx {
            None => {
                self.reply(Reply::new(503, "5.5.1", "Error: need MAIL command"));
                false
            }
            Some(tx) if tx.recipients.is_empty() => {
                self.reply(Reply::new(554, "5.5.1", "Error: no valid recipients"));
                false
            }
            Some(_) => true,
        }
    }

    async fn data<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: &mut S) -> Flow {
        let _body = self.ctx.bodies.enter();
        if self.tx.as_ref().is_some_and(|t| t.bdat.is_some()) {
            self.reply(Reply::new(
                503,
                "5.5.1",
                "Error: DATA not allowed during BDAT",
            ));
            return Flow::Continue;
        }
        if !self.check_ready_for_body() {
            return Flow::Continue;
        }
        if self
            .tx
            .as_ref()
            .is_some_and(|t| t.params.body == Some(Body::BinaryMime))
        {
            // RFC 3030 §3: BINARYMIME bodies can only be sent with BDAT.
            self.reply(Reply::new(
                503,
                "5.5.1",
                "Error: BODY=BINARYMIME requires BDAT",
            ));
            return Flow::Continue;
        }
        let mut body = self.start_body().await;
        self.reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        let mut decoder = DataDecoder::new(self.conn.max_message_size);
        let mut out = Vec::with_capacity(BODY_CHUNK);
        loop {
            let feed = decoder.feed(&self.inbuf, &mut out);
            self.inbuf.drain(..feed.consumed);
            body.write(&out).await;
            out.clear();
            if feed.done {
                break;
            }
            match self.fill(stream, BODY_CHUNK).await {
                Ok(true) => {}
                _ => {
                    // Client gone mid-DATA: nothing was accepted.
                    self.tx = None;
                    return Flow::Close;
                }
            }
        }
        drop(out);
        self.shrink_input();
        let outcome = decoder.outcome();
        self.log(
            LogEvent::Info,
            &format!("DATA {} bytes: {outcome:?}", decoder.size()),
        );
        let reply = match outcome {
            DataOutcome::Ok => self.finish(body).await,
            DataOutcome::TooLarge => Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ),
            DataOutcome::BareLineEnding => bare_line_ending_reply(),
            DataOutcome::Nul => nul_reply(),
        };
        self.tx = None;
        self.reply(reply);
        Flow::Continue
    }

    async fn bdat<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        size: u64,
        last: bool,
    ) -> Flow {
        let _body = self.ctx.bodies.enter();
        // The chunk's bytes follow whatever we answer, so read them in any case.
        let ready = self.tx.as_ref().is_some_and(|t| !t.recipients.is_empty());
        if ready && self.tx.as_ref().is_some_and(|t| t.bdat.is_none()) {
            let body = self.start_body().await;
            if let Some(tx) = self.tx.as_mut() {
                tx.bdat = Some(body);
            }
        }
        let mut remaining = size;
        while remaining > 0 {
            if self.inbuf.is_empty() {
                match self.fill(stream, BODY_CHUNK).await {
                    Ok(true) => {}
                    _ => {
                        self.tx = None;
                        return Flow::Close;
                    }
                }
            }
            let take = remaining.min(self.inbuf.len() as u64) as usize;
            if let Some(body) = self.tx.as_mut().and_then(|t| t.bdat.as_mut()) {
                body.write_limited(&self.inbuf[..take], self.conn.max_message_size)
                    .await;
            }
            self.inbuf.drain(..take);
            remaining -= take as u64;
        }
        self.shrink_input();
        if !ready {
            self.check_ready_for_body();
            return Flow::Continue;
        }
        // A bare CR or LF is refused as in DATA (see smtp::data): the message may
        // leave again over DATA, where it could end the data at the next hop.
        let bare = self
            .tx
            .as_ref()
            .and_then(|t| t.bdat.as_ref())
            .is_some_and(|b| {
                if last {
                    b.line_ends.bare_at_end()
                } else {
                    b.line_ends.bare_seen()
                }
            });
        if bare {
            self.log(LogEvent::Info, "BDAT: bare <CR> or <LF>, refused");
            self.tx = None;
            self.reply(bare_line_ending_reply());
            return Flow::Continue;
        }
        let nul = self
            .tx
            .as_ref()
            .and_then(|t| t.bdat.as_ref())
            .is_some_and(|b| b.line_ends.nul_seen());
        if nul {
            self.log(LogEvent::Info, "BDAT: NUL octet, refused");
            self.tx = None;
            self.reply(nul_reply());
            return Flow::Continue;
        }
        let too_large = self
            .tx
            .as_ref()
            .and_then(|t| t.bdat.as_ref())
            .is_some_and(|b| b.too_large);
        if too_large {
            self.tx = None;
            self.reply(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
            return Flow::Continue;
        }
        if !last {
            self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
            return Flow::Continue;
        }
        let body = self.tx.as_mut().and_then(|t| t.bdat.take());
        let reply = match body {
            Some(body) => self.finish(body).await,
            None => Reply::new(451, "4.3.0", "Error: internal state"),
        };
        self.tx = None;
        self.reply(reply);
        Flow::Continue
    }

    /// Opens the spool file and writes the Received header (RFC 5321 §4.4).
    async fn start_body(&mut self) -> BodyWriter {
        let Some(tx) = self.tx.as_ref() else {
            return BodyWriter::failed();
        };
        let received = self.received_header(tx);
        let mut body = match self.ctx.spool.create(&tx.id).await {
            Ok(w) => BodyWriter::new(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot create a spool file");
                BodyWriter::failed()
            }
        };
        body.write_raw(received.as_bytes()).await;
        body
    }

    fn received_header(&self, tx: &Transaction) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let protocol = match (self.esmtp, self.tls.is_some(), self.auth_user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let mut h = format!(
            "Received: from {} ([{}])\r\n\tby {} (Bridgehead) with {}",
            sanitize(helo),
            self.remote.ip(),
            self.fqdn,
            protocol
        );
        if let Some(t) = &self.tls {
            h += &format!("\r\n\t(version={} cipher={})", t.version, t.cipher);
        }
        if let Some(u) = &self.auth_user {
            h += &format!("\r\n\t(Authenticated sender: {u})");
        }
        h += &format!("\r\n\tid {}", tx.id);
        if let [only] = tx.recipients.as_slice() {
            h += &format!("\r\n\tfor <{}>", only.address);
        }
        h += &format!(";\r\n\t{}\r\n", chrono::Utc::now().to_rfc2822());
        h
    }

    /// Makes the message durable and queues it: spool fsync + rename, then the
    /// group-committed envelope row. Only then 250.
    async fn finish(&mut self, body: BodyWriter) -> Reply {
        let started = std::time::Instant::now();
        let reply = self.make_durable(body).await;
        self.ctx.metrics.accept_latency(started.elapsed());
        reply
    }

    async fn make_durable(&mut self, body: BodyWriter) -> Reply {
        let Some(tx) = self.tx.as_ref() else {
            return Reply::new(451, "4.3.0", "Error: internal state");
        };
        let (size, headers) = (body.size, body.headers_text());
        let writer = match body.into_writer() {
            Ok(w) => w,
            Err(()) => return Reply::new(452, "4.3.1", "Insufficient system storage"),
        };
        let envelope = Envelope {
            id: tx.id.clone(),
            received_at: crate::tracking::now_rfc3339(),
            sender: tx.sender.clone(),
            recipients: tx.recipients.clone(),
            size,
            message_id: header_value(&headers, "message-id"),
            subject: header_value(&headers, "subject"),
            ret: tx.params.ret.map(|r| match r {
                Ret::Full => "FULL".to_string(),
                Ret::Hdrs => "HDRS".to_string(),
            }),
            envid: tx.params.envid.clone(),
            body_type: match tx.params.body {
                Some(Body::EightBitMime) => "8bitmime",
                Some(Body::BinaryMime) => "binarymime",
                Some(Body::SevenBit) | None => "7bit",
            }
            .to_string(),
            smtputf8: tx.params.smtputf8,
            source: self.conn.name.clone(),
            client_ip: Some(self.remote.ip().to_string()),
            client_helo: self.helo.clone(),
            auth_user: self.auth_user.clone(),
        };
        let id = envelope.id.clone();
        // The body's fsyncs and the envelope's commit run side by side; the 250
        // waits for both (see `Submitter::commit`).
        let started = std::time::Instant::now();
        let spool = async {
            let r = writer.commit().await;
            (r, started.elapsed())
        };
        let ((spooled, spool_time), committed) =
            tokio::join!(spool, self.ctx.submitter.commit(envelope));
        match (spooled, committed) {
            (Ok(_), Ok(())) => {
                self.ctx.submitter.announce(id.clone(), &self.conn.name);
                tracing::info!(
                    queue_id = %id,
                    size,
                    recipients = tx.recipients.len(),
                    spool_ms = spool_time.as_secs_f64() * 1000.0,
                    total_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "message queued"
                );
                Reply::new(
                    250,
                    "2.6.0",
                    format!("<{id}@{}> Queued mail for delivery", self.fqdn),
                )
            }
            (Err(e), committed) => {
                tracing::error!(queue_id = %id, error = %e, "cannot make the spool file durable");
                if committed.is_ok()
                    && let Err(e) = self.ctx.submitter.withdraw(&id).await
                {
                    // Start-up drops it (`drop_unspooled`); it was never acknowledged.
                    tracing::error!(queue_id = %id, error = %e, "cannot withdraw the queue rows");
                }
                Reply::new(452, "4.3.1", "Insufficient system storage")
            }
            (Ok(_), Err(e)) => {
                tracing::error!(queue_id = %id, error = %e, "submit failed");
                let _ = self.ctx.spool.remove(id.as_str());
                if e.is_disk_full() {
                    return Reply::new(452, "4.3.1", "Insufficient system storage");
                }
                Reply::new(
                    451,
                    "4.3.0",
                    "Error: queue file write error, try again later",
                )
            }
        }
    }
}

enum Flow {
    Continue,
    Close,
    StartTls,
}

/// What the next input line is, for its length limit.
#[derive(Debug, Clone, Copy)]
enum LineKind {
    /// An SMTP command: at most [`command::MAX_COMMAND_LINE`] octets, except
    /// `AUTH` with an initial response, which may carry [`auth::MAX_AUTH_LINE`]
    /// octets of base64 after the mechanism name (RFC 4954 §4).
    Command,
    /// The answer to a `334` challenge: [`auth::MAX_AUTH_LINE`] (RFC 4954 §4).
    AuthResponse,
}

impl LineKind {
    /// Longest line allowed, judged from the start of the buffered input (the
    /// start of the line being read).
    fn max_len(self, buffered: &[u8]) -> usize {
        /// Room for `AUTH <mechanism> ` before the initial response.
        const AUTH_PREFIX: usize = 64;
        match self {
            LineKind::AuthResponse => auth::MAX_AUTH_LINE,
            LineKind::Command
                if buffered.len() >= 5 && buffered[..5].eq_ignore_ascii_case(b"AUTH ") =>
            {
                auth::MAX_AUTH_LINE + AUTH_PREFIX
            }
            LineKind::Command => command::MAX_COMMAND_LINE,
        }
    }
}

/// The refusal of a message with a NUL octet, sent with DATA or BDAT (see
/// `smtp::data`: a next hop that drops NULs could find a smuggled end of data).
fn nul_reply() -> Reply {
    Reply::new(
        550,
        "5.6.0",
        "Message refused: NUL character in message data (RFC 5322 section 2.3)",
    )
}

/// The refusal of a message with a bare CR or LF, sent with DATA or BDAT.
fn bare_line_ending_reply() -> Reply {
    Reply::new(
        550,
        "5.5.2",
        "Message refused: bare <CR> or <LF> in message data (RFC 5321 section 2.3.8)",
    )
}

/// The spool file of a message being received, with its size, the first header
/// bytes (for Message-ID and Subject) and any write error (reported at the end, so
/// the client's data is still consumed and the session stays in sync).
struct BodyWriter {
    writer: Option<SpoolWriter>,
    size: u64,
    body_bytes: u64,
    headers: Vec<u8>,
    headers_done: bool,
    failed: bool,
    too_large: bool,
    /// BDAT only: bare CR/LF seen in the chunks so far.
    line_ends: LineEndingCheck,
}

impl BodyWriter {
    fn new(w: SpoolWriter) -> BodyWriter {
        BodyWriter {
            writer: Some(w),
            failed: false,
            ..BodyWriter::failed()
        }
    }

    /// A body whose spool file could not be created: data is consumed and the
    /// transaction answered 452 at the end.
    fn failed() -> BodyWriter {
        BodyWriter {
            writer: None,
            size: 0,
            body_bytes: 0,
            headers: Vec::new(),
            headers_done: false,
            failed: true,
            too_large: false,
            line_ends: LineEndingCheck::default(),
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.size += bytes.len() as u64;
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.write(bytes).await
        {
            tracing::error!(error = %e, "spool write failed");
            self.failed = true;
            self.writer = None;
        }
    }

    /// Message bytes from the client (after the Received header).
    async fn write(&mut self, bytes: &[u8]) {
        if !self.headers_done && !bytes.is_empty() {
            let room = HEADER_PEEK.saturating_sub(self.headers.len());
            self.headers
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
            if self.headers.windows(4).any(|w| w == b"\r\n\r\n")
                || self.headers.len() >= HEADER_PEEK
            {
                self.headers_done = true;
            }
        }
        self.body_bytes += bytes.len() as u64;
        self.write_raw(bytes).await;
    }

    /// BDAT: like `write`, but enforces the size limit itself and checks the
    /// line endings.
    async fn write_limited(&mut self, bytes: &[u8], max: u64) {
        self.line_ends.feed(bytes);
        if self.too_large || self.body_bytes + bytes.len() as u64 > max {
            self.too_large = true;
            self.writer = None;
            return;
        }
        self.write(bytes).await;
    }

    fn headers_text(&self) -> String {
        let end = self
            .headers
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(self.headers.len());
        String::from_utf8_lossy(&self.headers[..end]).into_owned()
    }

    fn into_writer(mut self) -> Result<SpoolWriter, ()> {
        if self.failed {
            return Err(());
        }
        self.writer.take().ok_or(())
    }
}

/// The value of the first header `name` (lower-case) in an unparsed header block,
/// unfolded and trimmed to 998 characters.
fn header_value(headers: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in headers.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((k, v)) = line.split_once(':')
                    && k.trim().eq_ignore_ascii_case(name)
                {
                    value = Some(v.to_string());
                }
            }
        }
    }
    value.map(|v| {
        v.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(998)
            .collect()
    })
}

/// DSN NOTIFY as stored with the recipient (RFC 3461 §4.1 syntax).
fn notify_text(n: Notify) -> String {
    match n {
        Notify::Never => "NEVER".into(),
        Notify::On {
            success,
            failure,
            delay,
        } => [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// HELO names go into a header: keep them printable and short.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || !c.is_ascii())
        .filter(|c| !"()\\\"".contains(*c))
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let h = "From: a@b\r\nSubject: hello\r\n world\r\nMessage-ID: <x@y>\r\nX: y";
        assert_eq!(header_value(h, "subject").as_deref(), Some("hello world"));
        assert_eq!(header_value(h, "message-id").as_deref(), Some("<x@y>"));
        assert_eq!(header_value(h, "to"), None);
        assert_eq!(sanitize("evil (x)\r\nBcc"), "evilxBcc");
    }
}
