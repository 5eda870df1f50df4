//! SMTP replies (RFC 5321 §4.2) with RFC 3463 enhanced status codes (RFC 2034).
//!
//! The server builds [`Reply`] values and writes them with [`Reply::to_wire`];
//! the delivery client reads a server's replies with [`parse_reply`].

use std::fmt;

/// Longest reply line [`parse_reply`] accepts. RFC 5321 §4.5.3.1.5 says 512
/// octets, but real servers exceed it (long EHLO keywords, verbose rejections),
/// so we are lenient while still bounding memory.
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines one reply may have before [`parse_reply`] gives up (bounds memory
/// against a server that never sends the last line).
pub const MAX_REPLY_LINES: usize = 256;

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode(pub u8, pub u16, pub u16);

impl EnhancedCode {
    /// Parses `class.subject.detail` (RFC 3463 §2: class is 2, 4 or 5; subject
    /// and detail are 1 to 3 digits). Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        let number = |p: &str| -> Option<u16> {
            if (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        };
        Some(EnhancedCode(class, number(subject)?, number(detail)?))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply: a three-digit code, an optional enhanced code and one or more
/// text lines (multi-line replies, RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply. `enhanced` is `"5.1.1"`-style, or `""` for none
    /// (e.g. for 334 AUTH challenges and the 220 greeting).
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Self::multi(code, enhanced, [text])
    }

    /// A multi-line reply; every line gets the same code and enhanced code.
    pub fn multi<I, S>(code: u16, enhanced: &str, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let parsed = EnhancedCode::parse(enhanced);
        debug_assert!(
            enhanced.is_empty() || parsed.is_some(),
            "bad enhanced code {enhanced:?}"
        );
        Reply {
            code,
            enhanced: parsed,
            lines: lines.into_iter().map(Into::into).collect(),
        }
    }

    /// The reply as sent on the wire: `250-first`, ..., `250 last`, each line
    /// CRLF-terminated, the enhanced code repeated on every line (RFC 2034 §4).
    /// CR and LF inside the text are replaced by spaces so that text taken from
    /// elsewhere (an address, a remote server's reply) can never inject a line.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 16).sum());
        let count = self.lines.len().max(1);
        for i in 0..count {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 == count { ' ' } else { '-' };
            let mut line = format!("{:03}", self.code);
            match (&self.enhanced, text.is_empty()) {
                (Some(e), true) => line.push_str(&format!("{sep}{e}")),
                (Some(e), false) => line.push_str(&format!("{sep}{e} {text}")),
                (None, true) if sep == '-' => line.push('-'),
                (None, true) => {}
                (None, false) => {
                    line.push(sep);
                    line.push_str(text);
                }
            }
            out.extend(
                line.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// All text lines joined with a space (for logs and DSNs).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// 2yz or 3yz: positive completion or positive intermediate (RFC 5321 §4.2.1).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 3yz: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4yz: transient negative completion; retry later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5yz: permanent negative completion; do not retry.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    /// One-line form for logs: `550 5.1.1 text text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Named constructors for the replies the receive session sends. Texts follow
/// Postfix where a client might recognise them.
impl Reply {
    /// `220 host ESMTP text` — the connection greeting (RFC 5321 §4.2, §3.1).
    pub fn greeting(hostname: &str, text: &str) -> Self {
        Reply::new(220, "", join(hostname, &join("ESMTP", text)))
    }
    /// `221 2.0.0 Bye` — reply to QUIT.
    pub fn closing() -> Self {
        Reply::new(221, "2.0.0", "Bye")
    }
    /// `250 hostname` — reply to HELO (no enhanced code: RFC 2034 §3 only
    /// applies after EHLO negotiated ENHANCEDSTATUSCODES, and HELO did not).
    pub fn helo(hostname: &str) -> Self {
        Reply::new(250, "", hostname)
    }
    /// `250 2.0.0 Ok` — RSET, NOOP and other plain successes.
    pub fn ok() -> Self {
        Reply::new(250, "2.0.0", "Ok")
    }
    /// `250 2.1.0 Ok` — MAIL accepted (RFC 3463: 2.1.0 "other address status").
    pub fn sender_ok() -> Self {
        Reply::new(250, "2.1.0", "Ok")
    }
    /// `250 2.1.5 Ok` — RCPT accepted (2.1.5 "destination address valid").
    pub fn recipient_ok() -> Self {
        Reply::new(250, "2.1.5", "Ok")
    }
    /// `354 End data with <CR><LF>.<CR><LF>` (RFC 5321 §4.1.1.4). 354 carries
    /// no enhanced code: it is intermediate, not a completion.
    pub fn start_data() -> Self {
        Reply::new(354, "", "End data with <CR><LF>.<CR><LF>")
    }
    /// `250 2.0.0 Ok: queued as ID` — the message is durable on disk.
    pub fn queued(queue_id: &str) -> Self {
        Reply::new(250, "2.0.0", format!("Ok: queued as {queue_id}"))
    }
    /// `250 2.0.0 Ok: N octets` — a non-LAST BDAT chunk was received (RFC 3030 §2).
    pub fn chunk_ok(octets: u64) -> Self {
        Reply::new(250, "2.0.0", format!("Ok: {octets} octets"))
    }
    /// `252 2.0.0 ...` — VRFY answer that confirms nothing (RFC 5321 §3.5.3:
    /// 252 is the recommended answer when the server will not verify).
    pub fn cannot_vrfy() -> Self {
        Reply::new(
            252,
            "2.0.0",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    /// `502 5.5.1 Error: command not implemented` — EXPN (RFC 5321 §3.5.3
    /// allows refusing it; it would leak distribution-list membership).
    pub fn not_implemented() -> Self {
        Reply::new(502, "5.5.1", "Error: command not implemented")
    }
    /// `214 2.0.0 ...` — HELP.
    pub fn help() -> Self {
        Reply::new(
            214,
            "2.0.0",
            "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
        )
    }
    /// `220 2.0.0 Ready to start TLS` (RFC 3207 §4).
    pub fn ready_to_start_tls() -> Self {
        Reply::new(220, "2.0.0", "Ready to start TLS")
    }
    /// `454 4.7.0 TLS not available` (RFC 3207 §4).
    pub fn tls_not_available() -> Self {
        Reply::new(454, "4.7.0", "TLS not available due to temporary reason")
    }
    /// `334 challenge` — SASL continuation (RFC 4954 §4); the text is base64.
    pub fn auth_challenge(base64: &str) -> Self {
        Reply::new(334, "", base64)
    }
    /// `235 2.7.0 Authentication successful` (RFC 4954 §6).
    pub fn auth_ok() -> Self {
        Reply::new(235, "2.7.0", "Authentication successful")
    }
    /// `535 5.7.8 Error: authentication failed` (RFC 4954 §6).
    pub fn auth_failed() -> Self {
        Reply::new(535, "5.7.8", "Error: authentication failed")
    }
    /// `501 5.7.0 Authentication aborted` — the client sent `*` (RFC 4954 §4).
    pub fn auth_cancelled() -> Self {
        Reply::new(501, "5.7.0", "Authentication aborted")
    }
    /// `504 5.5.4 Unrecognized authentication type` (RFC 4954 §6).
    pub fn auth_unknown_mechanism() -> Self {
        Reply::new(504, "5.5.4", "Unrecognized authentication type")
    }
    /// `530 5.7.0 Authentication required` (RFC 4954 §6).
    pub fn auth_required() -> Self {
        Reply::new(530, "5.7.0", "Authentication required")
    }
    /// `538 5.7.11 Encryption required for requested authentication mechanism`
    /// (RFC 4954 §6) — AUTH PLAIN/LOGIN before STARTTLS.
    pub fn auth_needs_tls() -> Self {
        Reply::new(
            538,
            "5.7.11",
            "Encryption required for requested authentication mechanism",
        )
    }
    /// `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207 §4).
    pub fn tls_required() -> Self {
        Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
    }
    /// `503 5.5.1 Error: ...` — command out of sequence (RFC 5321 §4.1.4),
    /// e.g. `bad_sequence("need MAIL command")`.
    pub fn bad_sequence(what: &str) -> Self {
        Reply::new(503, "5.5.1", format!("Error: {what}"))
    }
    /// `452 4.5.3 Error: too many recipients` (RFC 5321 §4.5.3.1.10: 452, so
    /// the client retries the rest in another transaction).
    pub fn too_many_recipients() -> Self {
        Reply::new(452, "4.5.3", "Error: too many recipients")
    }
    /// `552 5.3.4 Error: message file too big` (RFC 1870 §6.2).
    pub fn message_too_big() -> Self {
        Reply::new(552, "5.3.4", "Error: message file too big")
    }
    /// `550 5.5.2 Error: bare <CR> or <LF> received` — refused DATA that could
    /// be an SMTP smuggling attempt (RFC 5321 §2.3.8, CVE-2023-51764).
    pub fn bare_line_ending() -> Self {
        Reply::new(550, "5.5.2", "Error: bare <CR> or <LF> received")
    }
    /// `500 5.5.2 Error: line too long` (RFC 5321 §4.5.3.1.4).
    pub fn line_too_long() -> Self {
        Reply::new(500, "5.5.2", "Error: line too long")
    }
    /// `550 5.7.1 Relay access denied` (RFC 5321 §3.6.2, RFC 3463 5.7.1).
    pub fn relay_denied() -> Self {
        Reply::new(550, "5.7.1", "Relay access denied")
    }
    /// `550 5.1.1 Recipient address rejected: User unknown`.
    pub fn unknown_user() -> Self {
        Reply::new(550, "5.1.1", "Recipient address rejected: User unknown")
    }
    /// `553 5.6.7 ...` — non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
    pub fn smtputf8_required() -> Self {
        Reply::new(
            553,
            "5.6.7",
            "Error: non-ASCII address requires the SMTPUTF8 parameter",
        )
    }
    /// `421 4.7.0 Error: too many errors` — closing after repeated bad commands.
    pub fn too_many_errors(hostname: &str) -> Self {
        Reply::new(421, "4.7.0", format!("{hostname} Error: too many errors"))
    }
    /// `421 4.4.2 Error: timeout exceeded` (RFC 5321 §4.5.3.2).
    pub fn timeout(hostname: &str) -> Self {
        Reply::new(421, "4.4.2", format!("{hostname} Error: timeout exceeded"))
    }
    /// `421 4.3.2 Service shutting down` (RFC 5321 §3.8).
    pub fn shutting_down(hostname: &str) -> Self {
        Reply::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, closing transmission channel"),
        )
    }
    /// `451 4.3.0 Error: queue file write error` — the message could not be
    /// made durable, so the client must keep it and retry.
    pub fn local_error() -> Self {
        Reply::new(451, "4.3.0", "Error: queue file write error")
    }
    /// `452 4.3.1 Insufficient system storage` (RFC 1870 §6.1, RFC 3463).
    pub fn insufficient_storage() -> Self {
        Reply::new(452, "4.3.1", "Insufficient system storage")
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_string()
    } else {
        format!("{a} {b}")
    }
}

/// Why a server's reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line does not start with a valid reply code")]
    BadCode,
    #[error("reply line has an invalid separator after the code")]
    BadSeparator,
    #[error("lines of a multi-line reply have different codes")]
    CodeMismatch,
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    #[error("reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
}

/// Reads one complete reply from the start of `buf` (client side).
///
/// Returns `Ok(None)` when more input is needed, or the reply and the number of
/// bytes it used (the rest may be further pipelined replies, RFC 2920). Lines end
/// with CRLF; a bare LF is tolerated since we only read here. An enhanced code is
/// extracted when the first line starts with one whose class matches the reply
/// code (RFC 2034 §4), and stripped from every line that repeats it.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - pos > MAX_REPLY_LINE {
                Err(ReplyError::LineTooLong)
            } else {
                Ok(None)
            };
        };
        let mut line = &buf[pos..pos + nl];
        pos += nl + 1;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.len() > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let this = parse_code(line).ok_or(ReplyError::BadCode)?;
        if *code.get_or_insert(this) != this {
            return Err(ReplyError::CodeMismatch);
        }
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::BadSeparator),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            break;
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
    let code = code.ok_or(ReplyError::BadCode)?;
    let enhanced = lines.first().and_then(|first| {
        let token = first.split(' ').next()?;
        EnhancedCode::parse(token).filter(|e| u16::from(e.0) == code / 100)
    });
    if let Some(e) = enhanced {
        let prefix = e.to_string();
        for line in &mut lines {
            if let Some(rest) = line.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with(' '))
            {
                *line = rest.strip_prefix(' ').unwrap_or(rest).to_string();
            }
        }
    }
    Ok(Some((
        Reply {
            code,
            enhanced,
            lines,
        },
        pos,
    )))
}

/// A reply code is three digits, the first 2-5 and the second 0-5
/// (RFC 5321 §4.2: `%x32-35 %x30-35 %x30-39`).
fn parse_code(line: &[u8]) -> Option<u16> {
    match line.get(..3)? {
        &[a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9'] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_code_parse_and_display() {
        assert_eq!(EnhancedCode::parse("5.1.1"), Some(EnhancedCode(5, 1, 1)));
        assert_eq!(EnhancedCode::parse("4.7.11"), Some(EnhancedCode(4, 7, 11)));
        assert_eq!(EnhancedCode(2, 0, 0).to_string(), "2.0.0");
        for bad in [
            "", "5", "5.1", "3.1.1", "5.1.1.1", "5.1234.1", "5.a.1", "5..1",
        ] {
            assert_eq!(EnhancedCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn single_line_wire() {
        assert_eq!(Reply::ok().to_wire(), b"250 2.0.0 Ok\r\n");
        assert_eq!(
            Reply::start_data().to_wire(),
            b"354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        assert_eq!(Reply::new(250, "", "").to_wire(), b"250\r\n");
        assert_eq!(Reply::new(250, "2.0.0", "").to_wire(), b"250 2.0.0\r\n");
    }

    #[test]
    fn multi_line_wire() {
        let r = Reply::multi(250, "", ["mx.example.com hello", "PIPELINING", "SIZE 10"]);
        assert_eq!(
            r.to_wire(),
            b"250-mx.example.com hello\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        let r = Reply::multi(550, "5.7.1", ["first", "second"]);
        assert_eq!(r.to_wire(), b"550-5.7.1 first\r\n550 5.7.1 second\r\n");
    }

    #[test]
    fn wire_never_injects_lines() {
        let r = Reply::new(550, "5.1.1", "evil\r\n250 ok");
        assert_eq!(r.to_wire(), b"550 5.1.1 evil  250 ok\r\n");
    }

    #[test]
    fn classes() {
        assert!(Reply::ok().is_positive());
        assert!(Reply::start_data().is_positive());
        assert!(Reply::start_data().is_intermediate());
        assert!(Reply::too_many_recipients().is_transient());
        assert!(Reply::relay_denied().is_permanent());
        assert!(!Reply::relay_denied().is_positive());
    }

    #[test]
    fn display_for_logs() {
        assert_eq!(
            Reply::unknown_user().to_string(),
            "550 5.1.1 Recipient address rejected: User unknown"
        );
        assert_eq!(Reply::helo("mx").to_string(), "250 mx");
    }

    #[test]
    fn round_trip_through_parser() {
        for r in [
            Reply::ok(),
            Reply::greeting("mx.example.com", "Bridgehead"),
            Reply::multi(250, "", ["mx", "PIPELINING", "CHUNKING"]),
            Reply::multi(451, "4.3.0", ["a", "b", "c"]),
            Reply::auth_challenge("VXNlcm5hbWU6"),
        ] {
            let wire = r.to_wire();
            let (parsed, used) = parse_reply(&wire).unwrap().unwrap();
            assert_eq!(parsed, r);
            assert_eq!(used, wire.len());
        }
    }

    #[test]
    fn parse_incomplete_and_pipelined() {
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"250 2.1.0 O"), Ok(None));
        assert_eq!(parse_reply(b"250-a\r\n250-b\r\n"), Ok(None));
        let buf = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go";
        let (r, used) = parse_reply(buf).unwrap().unwrap();
        assert_eq!(r.enhanced, Some(EnhancedCode(2, 1, 0)));
        assert_eq!(r.lines, ["Ok"]);
        let (r2, used2) = parse_reply(&buf[used..]).unwrap().unwrap();
        assert_eq!(r2.enhanced, Some(EnhancedCode(2, 1, 5)));
        assert_eq!(parse_reply(&buf[used + used2..]), Ok(None));
    }

    #[test]
    fn parse_variants() {
        // Bare LF, no text, no separator.
        let (r, used) = parse_reply(b"250\n").unwrap().unwrap();
        assert_eq!((r.code, r.lines.len(), used), (250, 1, 4));
        // Enhanced code only on the first line.
        let (r, _) = parse_reply(b"550-5.1.1 No such user\r\n550 here\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced, Some(EnhancedCode(5, 1, 1)));
        assert_eq!(r.lines, ["No such user", "here"]);
        // Class mismatch: not an enhanced code, stays in the text.
        let (r, _) = parse_reply(b"250 5.1.1 odd\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["5.1.1 odd"]);
        // Version-like text is not an enhanced code.
        let (r, _) = parse_reply(b"220 mx ESMTP 2.0.0-beta\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced, None);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_reply(b"25 x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"abc x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"650 x\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"250x\r\n"), Err(ReplyError::BadSeparator));
        assert_eq!(
            parse_reply(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::CodeMismatch)
        );
        let long = vec![b'a'; MAX_REPLY_LINE + 10];
        assert_eq!(parse_reply(&long), Err(ReplyError::LineTooLong));
        let many = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(parse_reply(&many), Err(ReplyError::TooManyLines));
    }
}
