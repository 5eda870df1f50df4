//! SMTP command parsing (RFC 5321 §4.1) with the ESMTP parameters we support.
//!
//! [`parse_command`] turns one command line into a [`Command`] or a
//! [`CommandError`] that already carries the [`Reply`] to send. Paths are
//! checked strictly: classic relay tricks come back as
//! [`PathError::RelayTrick`] so the session can refuse them with `550 5.7.1`.
//! Policy (who may relay, which recipients exist) is not decided here.

use super::address::{AddressError, EmailAddress};
use super::reply::Reply;

/// Longest command line we accept, without CRLF. RFC 5321 §4.5.3.1.4 sets 512
/// octets, but §4.5.3.1 lets extensions raise it: SIZE, DSN (ENVID, ORCPT up to
/// 500 characters alone, RFC 3461 §4.2) and AUTH= (RFC 4954 §5) parameters do
/// not fit in 512, so, like Postfix, we allow more.
pub const MAX_COMMAND_LINE: usize = 1024;

/// Longest ENVID value, encoded (RFC 3461 §4.4).
pub const MAX_ENVID: usize = 100;
/// Longest ORCPT value, encoded (RFC 3461 §4.2).
pub const MAX_ORCPT: usize = 500;

/// Finds the end of the first command line in `buf`.
///
/// Returns the line length without its terminator and the bytes consumed
/// including it. CRLF is the terminator (RFC 5321 §2.3.8); a bare LF is accepted
/// too for commands, because many simple clients send it and a command line
/// cannot smuggle anything. Never use this for DATA: see [`super::data`].
/// When it returns `None` and `buf` is already longer than
/// [`MAX_COMMAND_LINE`] + 2, the session should answer [`Reply::line_too_long`].
pub fn find_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let len = if lf > 0 && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((len, lf + 1))
}

/// One parsed SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain` (RFC 5321 §4.1.1.1). The argument is kept as sent; how
    /// strictly to check it is policy.
    Helo(String),
    /// `EHLO domain` or `EHLO [address-literal]`.
    Ehlo(String),
    /// `MAIL FROM:<reverse-path> [params]`; `from` is `None` for `<>`.
    Mail {
        from: Option<EmailAddress>,
        params: MailParams,
    },
    /// `RCPT TO:<forward-path> [params]`.
    Rcpt {
        to: ForwardPath,
        params: RcptParams,
    },
    Data,
    /// `BDAT size [LAST]` (RFC 3030 §2). The session then reads exactly `size`
    /// bytes, with no dot-unstuffing and no line-ending checks.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4). The mechanism is
    /// upper-cased. An initial response of `=` (empty) is returned as `Some("")`;
    /// other responses stay base64. Never log `initial`: it holds credentials.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

impl Command {
    /// The verb, upper-case, for logs and counters.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

/// A forward path: an address, or the special `<Postmaster>` (RFC 5321 §4.1.1.3),
/// which every server must accept without a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Address(EmailAddress),
}

impl ForwardPath {
    pub fn address(&self) -> Option<&EmailAddress> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Address(a) => Some(a),
        }
    }

    /// True when the path needs SMTPUTF8 (RFC 6531 §3.4); the session refuses
    /// it with [`Reply::smtputf8_required`] if MAIL did not carry SMTPUTF8.
    pub fn is_utf8(&self) -> bool {
        self.address().is_some_and(EmailAddress::is_utf8)
    }
}

/// `BODY=` (RFC 6152 §2, RFC 3030 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// Only valid with BDAT; the session answers DATA with 503 (RFC 3030 §3).
    BinaryMime,
}

/// `RET=` (RFC 3461 §4.3): what a failure DSN should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// `AUTH=` on MAIL (RFC 4954 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailAuth {
    /// `AUTH=<>`: the submitter is not known or not trusted.
    Unknown,
    /// The xtext-decoded identity of the original submitter.
    Identity(String),
}

/// Parameters of MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n` (RFC 1870 §3): the client's size estimate.
    pub size: Option<u64>,
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), xtext-decoded.
    pub envid: Option<String>,
    pub auth: Option<MailAuth>,
}

/// `NOTIFY=` (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Never,
    /// At least one of the flags is set.
    On {
        success: bool,
        failure: bool,
        delay: bool,
    },
}

/// `ORCPT=addr-type;xtext` (RFC 3461 §4.2), with the address xtext-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// Usually `rfc822` (or `utf-8`, RFC 6533); kept as sent.
    pub addr_type: String,
    pub address: String,
}

/// Parameters of RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Malformed path; answered with 501 5.1.7 (sender) or 501 5.1.3 (recipient).
    #[error("bad address syntax: {0}")]
    Syntax(&'static str),
    /// A routing form that asks us to relay somewhere else: source route,
    /// percent hack, bang path, quoted `@`, trailing dot, address literal.
    #[error("relay trick: {0}")]
    RelayTrick(&'static str),
}

/// What kind of error a [`CommandError`] is, for counters and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandErrorKind {
    /// Unknown verb (500 5.5.2).
    Unrecognized,
    /// Bad syntax: missing/extra arguments, bad characters (500/501 5.5.x).
    Syntax,
    /// The MAIL or RCPT path was refused.
    Path(PathError),
    /// A MAIL/RCPT parameter is unknown, repeated or has a bad value (555 5.5.4).
    Parameter,
    /// MAIL with a non-ASCII sender but no SMTPUTF8 parameter (553 5.6.7).
    NeedsSmtpUtf8,
}

/// A command that could not be parsed, with the reply to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reply}")]
pub struct CommandError {
    pub kind: CommandErrorKind,
    pub reply: Reply,
}

impl CommandError {
    fn new(kind: CommandErrorKind, code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        CommandError {
            kind,
            reply: Reply::new(code, enhanced, text),
        }
    }

    fn unrecognized() -> Self {
        Self::new(
            CommandErrorKind::Unrecognized,
            500,
            "5.5.2",
            "Error: command not recognized",
        )
    }

    fn syntax(usage: &str) -> Self {
        Self::new(
            CommandErrorKind::Syntax,
            501,
            "5.5.4",
            format!("Syntax: {usage}"),
        )
    }

    fn param(text: String) -> Self {
        Self::new(CommandErrorKind::Parameter, 555, "5.5.4", text)
    }

    fn sender(err: PathError) -> Self {
        let text = match err {
            PathError::Syntax(why) => format!("Bad sender address syntax ({why})"),
            PathError::RelayTrick(why) => format!("Bad sender address syntax ({why})"),
        };
        Self::new(CommandErrorKind::Path(err), 501, "5.1.7", text)
    }

    fn recipient(err: PathError) -> Self {
        match err {
            PathError::Syntax(why) => Self::new(
                CommandErrorKind::Path(err),
                501,
                "5.1.3",
                format!("Bad recipient address syntax ({why})"),
            ),
            PathError::RelayTrick(why) => Self::new(
                CommandErrorKind::Path(err),
                550,
                "5.7.1",
                format!("Relay access denied ({why})"),
            ),
        }
    }
}

/// Parses one command line (without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line).map_err(|_| {
        CommandError::new(
            CommandErrorKind::Syntax,
            500,
            "5.5.2",
            "Error: bad UTF-8 syntax",
        )
    })?;
    // Controls (NUL, TAB, a stray CR...) have no place in a command (RFC 5321
    // §4.1.2 builds everything from SP and printable characters).
    if line.chars().any(|c| c.is_control()) {
        return Err(CommandError::new(
            CommandErrorKind::Syntax,
            500,
            "5.5.2",
            "Error: control characters in command",
        ));
    }
    // Trailing spaces are common ("DATA ") and harmless.
    let line = line.trim_end_matches(' ');
    let (verb, args) = match line.split_once(' ') {
        Some((v, a)) => (v, a.trim_start_matches(' ')),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |cmd: Command, usage: &str| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::syntax(usage))
        }
    };
    match verb.as_str() {
        "HELO" => single_token(args)
            .map(Command::Helo)
            .ok_or_else(|| CommandError::syntax("HELO hostname")),
        "EHLO" => single_token(args)
            .map(Command::Ehlo)
            .ok_or_else(|| CommandError::syntax("EHLO hostname")),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => parse_bdat(args),
        "RSET" => no_args(Command::Rset, "RSET"),
        // RFC 5321 §4.1.1.9: NOOP's argument is ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "VRFY" if !args.is_empty() => Ok(Command::Vrfy(args.to_string())),
        "VRFY" => Err(CommandError::syntax("VRFY address")),
        "EXPN" if !args.is_empty() => Ok(Command::Expn(args.to_string())),
        "EXPN" => Err(CommandError::syntax("EXPN mailing-list")),
        "HELP" => Ok(Command::Help((!args.is_empty()).then(|| args.to_string()))),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        "AUTH" => parse_auth(args),
        _ => Err(CommandError::unrecognized()),
    }
}

/// Exactly one space-free argument.
fn single_token(args: &str) -> Option<String> {
    (!args.is_empty() && !args.contains(' ')).then(|| args.to_string())
}

fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    let usage = || CommandError::syntax("BDAT size [LAST]");
    let mut parts = args.split(' ').filter(|p| !p.is_empty());
    let size = parts.next().ok_or_else(usage)?;
    let size = parse_number(size).ok_or_else(usage)?;
    let last = match parts.next() {
        None => false,
        Some(p) if p.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(usage()),
    };
    if parts.next().is_some() {
        return Err(usage());
    }
    Ok(Command::Bdat { size, last })
}

fn parse_auth(args: &str) -> Result<Command, CommandError> {
    let usage = || CommandError::syntax("AUTH mechanism [initial-response]");
    let mut parts = args.split(' ').filter(|p| !p.is_empty());
    let mechanism = parts.next().ok_or_else(usage)?;
    // RFC 4422 §3.1: mechanism names are 1-20 of A-Z, 0-9, '-' and '_'.
    if mechanism.len() > 20
        || !mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(usage());
    }
    let initial = parts.next().map(|r| {
        if r == "=" {
            String::new()
        } else {
            r.to_string()
        }
    });
    if parts.next().is_some() {
        return Err(usage());
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial,
    })
}

/// Digits only (no sign, no spaces), fitting in u64.
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits `FROM:<path> params` after the keyword; a space after the colon is
/// tolerated, as Postfix does, because common clients send it.
fn split_path<'a>(args: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args[keyword.len()..].trim_start_matches(' ');
    let rest = rest.strip_prefix('<')?;
    // Find the closing '>' outside any quoted string, so that `<"a>b"@c>` is
    // seen whole (and then refused as a quoted local part).
    let mut in_quotes = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let (path, params) = (&rest[..end], &rest[end + 1..]);
    // Parameters must be separated from the path by a space.
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    Some((path, params.trim_start_matches(' ')))
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let (path, params) =
        split_path(args, "FROM:").ok_or_else(|| CommandError::syntax("MAIL FROM:<address>"))?;
    let from = if path.is_empty() {
        None
    } else {
        Some(parse_path(path).map_err(CommandError::sender)?)
    };
    let params = parse_mail_params(params)?;
    if !params.smtputf8 && from.as_ref().is_some_and(EmailAddress::is_utf8) {
        return Err(CommandError {
            kind: CommandErrorKind::NeedsSmtpUtf8,
            reply: Reply::smtputf8_required(),
        });
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let (path, params) =
        split_path(args, "TO:").ok_or_else(|| CommandError::syntax("RCPT TO:<address>"))?;
    let to = if path.eq_ignore_ascii_case("postmaster") {
        ForwardPath::Postmaster
    } else if path.is_empty() {
        return Err(CommandError::recipient(PathError::Syntax("empty path")));
    } else {
        ForwardPath::Address(parse_path(path).map_err(CommandError::recipient)?)
    };
    let params = parse_rcpt_params(params)?;
    Ok(Command::Rcpt { to, params })
}

/// Parses the inside of `<...>`, refusing relay tricks before ordinary syntax
/// so the session can tell them apart.
pub fn parse_path(path: &str) -> Result<EmailAddress, PathError> {
    use PathError::{RelayTrick, Syntax};
    // RFC 5321 §4.1.1.3 and Appendix C: source routes are obsolete and the
    // classic way to ask an open relay to forward.
    if path.starts_with('@') {
        return Err(RelayTrick("source route"));
    }
    if let Some(quoted) = path.strip_prefix('"') {
        // A quoted local part (RFC 5321 §4.1.2). With an '@' inside it is the
        // `"user@victim"@us` relay trick; otherwise we simply do not accept it.
        // Find the closing quote, honouring backslash escapes (`"a\"@b"@c`).
        let mut escaped = false;
        let close = quoted
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .map_or(quoted.len(), |(i, _)| i);
        return Err(if quoted[..close].contains('@') {
            RelayTrick("quoted local part with @")
        } else {
            Syntax("quoted local parts are not accepted")
        });
    }
    if path.contains('"') {
        return Err(Syntax("misplaced quote"));
    }
    let Some((local, domain)) = path.rsplit_once('@') else {
        return Err(Syntax("no @domain"));
    };
    if local.contains('@') {
        return Err(RelayTrick("multiple @"));
    }
    // `user%host@us` (percent hack) and `host!user@us` (UUCP bang path) make
    // some MTAs forward to `host`.
    if local.contains('%') {
        return Err(RelayTrick("percent hack"));
    }
    if local.contains('!') {
        return Err(RelayTrick("bang path"));
    }
    // `user@[192.0.2.1]` (RFC 5321 §4.1.3) bypasses the accepted-domain check.
    if domain.starts_with('[') {
        return Err(RelayTrick("address literal"));
    }
    // `user@example.com.` can slip past domain comparisons.
    if domain.ends_with('.') {
        return Err(RelayTrick("trailing dot in domain"));
    }
    EmailAddress::parse(path).map_err(|e| match e {
        AddressError::Empty => Syntax("empty address"),
        AddressError::NoDomain(_) => Syntax("no @domain"),
        AddressError::TooLong(_) => Syntax("address too long"),
        AddressError::BadLocalPart(_, why) | AddressError::BadDomain(_, why) => Syntax(why),
    })
}

/// Splits `KEY[=value]` parameters (RFC 5321 §4.1.2 esmtp-param) and rejects
/// repeated keywords. Keywords are returned upper-cased.
fn params(s: &str) -> Result<Vec<(String, Option<&str>)>, CommandError> {
    let mut out: Vec<(String, Option<&str>)> = Vec::new();
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let keyword_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        // esmtp-value: printable ASCII except '=' (plus UTF-8, RFC 6531 §3.3).
        let value_ok = value.is_none_or(|v| !v.is_empty() && !v.contains('='));
        if !keyword_ok || !value_ok {
            return Err(CommandError::param(format!("Bad parameter syntax: {p}")));
        }
        let key = key.to_ascii_uppercase();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(CommandError::param(format!("Duplicate parameter: {key}")));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn bad_value(key: &str) -> CommandError {
    CommandError::param(format!("Bad value for parameter {key}"))
}

fn unknown_param(key: &str) -> CommandError {
    CommandError::param(format!("Unsupported parameter: {key}"))
}

fn parse_mail_params(s: &str) -> Result<MailParams, CommandError> {
    let mut out = MailParams::default();
    for (key, value) in params(s)? {
        let need = || value.ok_or_else(|| bad_value(&key));
        match key.as_str() {
            "SIZE" => out.size = Some(parse_number(need()?).ok_or_else(|| bad_value(&key))?),
            "BODY" => {
                let v = need()?.to_ascii_uppercase();
                out.body = Some(match v.as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(bad_value(&key)),
                });
            }
            "SMTPUTF8" if value.is_none() => out.smtputf8 = true,
            "SMTPUTF8" => return Err(bad_value(&key)),
            "RET" => {
                let v = need()?.to_ascii_uppercase();
                out.ret = Some(match v.as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(bad_value(&key)),
                });
            }
            "ENVID" => {
                let v = need()?;
                if v.len() > MAX_ENVID {
                    return Err(bad_value(&key));
                }
                out.envid = Some(decode_xtext(v).ok_or_else(|| bad_value(&key))?);
            }
            "AUTH" => {
                let v = need()?;
                out.auth = Some(if v == "<>" {
                    MailAuth::Unknown
                } else {
                    MailAuth::Identity(decode_xtext(v).ok_or_else(|| bad_value(&key))?)
                });
            }
            _ => return Err(unknown_param(&key)),
        }
    }
    Ok(out)
}

fn parse_rcpt_params(s: &str) -> Result<RcptParams, CommandError> {
    let mut out = RcptParams::default();
    for (key, value) in params(s)? {
        let need = || value.ok_or_else(|| bad_value(&key));
        match key.as_str() {
            "NOTIFY" => out.notify = Some(parse_notify(need()?).ok_or_else(|| bad_value(&key))?),
            "ORCPT" => {
                let v = need()?;
                if v.len() > MAX_ORCPT {
                    return Err(bad_value(&key));
                }
                let (addr_type, xtext) = v.split_once(';').ok_or_else(|| bad_value(&key))?;
                let type_ok = !addr_type.is_empty()
                    && addr_type
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                let address = decode_xtext(xtext).filter(|a| !a.is_empty());
                match (type_ok, address) {
                    (true, Some(address)) => {
                        out.orcpt = Some(Orcpt {
                            addr_type: addr_type.to_string(),
                            address,
                        })
                    }
                    _ => return Err(bad_value(&key)),
                }
            }
            _ => return Err(unknown_param(&key)),
        }
    }
    Ok(out)
}

/// `NEVER` alone, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1).
fn parse_notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::Never);
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for item in v.split(',') {
        let flag = match item.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut success,
            "FAILURE" => &mut failure,
            "DELAY" => &mut delay,
            _ => return None, // includes NEVER in a list, and empty items
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    Some(Notify::On {
        success,
        failure,
        delay,
    })
}

/// Decodes RFC 3461 §4 xtext: printable ASCII except `+` and `=`, with `+XX`
/// hex escapes. Lower-case hex is tolerated; non-ASCII UTF-8 passes through
/// (RFC 6533 unitext). Returns `None` if malformed or not UTF-8 once decoded.
pub fn decode_xtext(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'=' => return None,
            b if (b'!'..=b'~').contains(&b) || b >= 0x80 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes text as RFC 3461 §4 xtext (for the delivery client's ENVID/ORCPT).
pub fn encode_xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse_command(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    fn err(line: &str) -> CommandError {
        match parse_command(line.as_bytes()) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    fn code(line: &str) -> String {
        let e = err(line);
        format!(
            "{} {}",
            e.reply.code,
            e.reply.enhanced.map(|c| c.to_string()).unwrap_or_default()
        )
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn find_line_terminators() {
        assert_eq!(find_line(b"NOOP\r\nQUIT\r\n"), Some((4, 6)));
        assert_eq!(find_line(b"NOOP\nQUIT"), Some((4, 5)));
        assert_eq!(find_line(b"\r\n"), Some((0, 2)));
        assert_eq!(find_line(b"\n"), Some((0, 1)));
        assert_eq!(find_line(b"NOOP\r"), None);
        assert_eq!(find_line(b""), None);
    }

    #[test]
    fn simple_verbs_case_insensitive() {
        assert_eq!(ok("data"), Command::Data);
        assert_eq!(ok("DATA "), Command::Data);
        assert_eq!(ok("Rset"), Command::Rset);
        assert_eq!(ok("QUIT"), Command::Quit);
        assert_eq!(ok("noop"), Command::Noop);
        assert_eq!(ok("NOOP anything at all"), Command::Noop);
        assert_eq!(ok("starttls"), Command::StartTls);
        assert_eq!(ok("HELP"), Command::Help(None));
        assert_eq!(ok("HELP mail"), Command::Help(Some("mail".into())));
        assert_eq!(ok("VRFY alice"), Command::Vrfy("alice".into()));
        assert_eq!(ok("EXPN staff"), Command::Expn("staff".into()));
        assert_eq!(
            ok("helo mx.example.com"),
            Command::Helo("mx.example.com".into())
        );
        assert_eq!(ok("EHLO [192.0.2.1]"), Command::Ehlo("[192.0.2.1]".into()));
        assert_eq!(ok("EHLO  client"), Command::Ehlo("client".into()));
        assert_eq!(ok("DATA").verb(), "DATA");
    }

    #[test]
    fn simple_verb_errors() {
        assert_eq!(code("FOO"), "500 5.5.2");
        assert_eq!(code(""), "500 5.5.2");
        assert_eq!(err("FOO").kind, CommandErrorKind::Unrecognized);
        assert_eq!(code("DATA x"), "501 5.5.4");
        assert_eq!(code("QUIT now"), "501 5.5.4");
        assert_eq!(code("STARTTLS x"), "501 5.5.4");
        assert_eq!(code("EHLO"), "501 5.5.4");
        assert_eq!(code("HELO a b"), "501 5.5.4");
        assert_eq!(code("VRFY"), "501 5.5.4");
        assert_eq!(code("EXPN"), "501 5.5.4");
        assert_eq!(code("NOOP \0"), "500 5.5.2");
        assert_eq!(code("MAIL\tFROM:<a@b.c>"), "500 5.5.2");
        assert_eq!(
            parse_command(b"EHLO \xff").unwrap_err().reply.to_string(),
            "500 5.5.2 Error: bad UTF-8 syntax"
        );
    }

    #[test]
    fn bdat() {
        assert_eq!(
            ok("BDAT 100"),
            Command::Bdat {
                size: 100,
                last: false
            }
        );
        assert_eq!(
            ok("bdat 0 last"),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        for bad in [
            "BDAT",
            "BDAT x",
            "BDAT -1",
            "BDAT 1 FIRST",
            "BDAT 1 LAST x",
            "BDAT 99999999999999999999999",
        ] {
            assert_eq!(code(bad), "501 5.5.4", "{bad}");
        }
    }

    #[test]
    fn auth() {
        assert_eq!(
            ok("auth plain AGFsaWNlAHNlY3JldA=="),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFsaWNlAHNlY3JldA==".into())
            }
        );
        assert_eq!(
            ok("AUTH LOGIN"),
            Command::Auth {
                mechanism: "LOGIN".into(),
                initial: None
            }
        );
        assert_eq!(
            ok("AUTH PLAIN ="),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(String::new())
            }
        );
        assert_eq!(code("AUTH"), "501 5.5.4");
        assert_eq!(code("AUTH PLAIN a b"), "501 5.5.4");
        assert_eq!(code("AUTH PL@IN"), "501 5.5.4");
    }

    #[test]
    fn mail_from() {
        assert_eq!(
            ok("MAIL FROM:<Alice@Example.com>"),
            Command::Mail {
                from: Some(addr("Alice@example.com")),
                params: MailParams::default()
            }
        );
        assert_eq!(
            ok("mail from:<>"),
            Command::Mail {
                from: None,
                params: MailParams::default()
            }
        );
        // Postfix-style tolerance of a space after the colon.
        assert_eq!(
            ok("MAIL FROM: <a@example.com>"),
            Command::Mail {
                from: Some(addr("a@example.com")),
                params: MailParams::default()
            }
        );
        assert_eq!(ok("MAIL FROM:<>  SIZE=10 ").verb(), "MAIL");
        for bad in [
            "MAIL",
            "MAIL FROM",
            "MAIL FROM:",
            "MAIL FROM:a@b.com",
            "MAIL TO:<a@b.com>",
            "MAIL FROM:<a@b.com",
            "MAIL FROM:<a@b.com>SIZE=1",
            "MAIL FROM :<a@b.com>",
        ] {
            assert_eq!(code(bad), "501 5.5.4", "{bad}");
        }
        assert_eq!(code("MAIL FROM:<alice>"), "501 5.1.7");
        assert_eq!(code("MAIL FROM:<a b@c.com>"), "501 5.1.7");
        assert_eq!(code("MAIL FROM:<Postmaster>"), "501 5.1.7");
    }

    #[test]
    fn mail_params() {
        let Command::Mail { params, .. } = ok(
            "MAIL FROM:<a@example.com> size=1000 BODY=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=bob+2Bx@example.com",
        ) else {
            panic!()
        };
        assert_eq!(
            params,
            MailParams {
                size: Some(1000),
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Hdrs),
                envid: Some("QQ+1".into()),
                auth: Some(MailAuth::Identity("bob+x@example.com".into())),
            }
        );
        let Command::Mail { params, .. } = ok("MAIL FROM:<> BODY=BINARYMIME AUTH=<> RET=full")
        else {
            panic!()
        };
        assert_eq!(params.body, Some(Body::BinaryMime));
        assert_eq!(params.auth, Some(MailAuth::Unknown));
        assert_eq!(params.ret, Some(Ret::Full));
        let Command::Mail { params, .. } = ok("MAIL FROM:<> BODY=7BIT") else {
            panic!()
        };
        assert_eq!(params.body, Some(Body::SevenBit));

        for bad in [
            "MAIL FROM:<> SIZE",
            "MAIL FROM:<> SIZE=",
            "MAIL FROM:<> SIZE=abc",
            "MAIL FROM:<> SIZE=-5",
            "MAIL FROM:<> SIZE=1 size=2",
            "MAIL FROM:<> BODY=9BIT",
            "MAIL FROM:<> SMTPUTF8=yes",
            "MAIL FROM:<> RET=ALL",
            "MAIL FROM:<> ENVID=a+zz",
            "MAIL FROM:<> ENVID=a=b",
            "MAIL FROM:<> XFORWARD=1",
            "MAIL FROM:<> NOTIFY=NEVER",
            "MAIL FROM:<> =x",
            "MAIL FROM:<> -X",
        ] {
            let e = err(bad);
            assert_eq!(e.kind, CommandErrorKind::Parameter, "{bad}");
            assert_eq!(code(bad), "555 5.5.4", "{bad}");
        }
        let long_envid = format!("MAIL FROM:<> ENVID={}", "a".repeat(MAX_ENVID + 1));
        assert_eq!(code(&long_envid), "555 5.5.4");
    }

    #[test]
    fn utf8_sender_needs_smtputf8() {
        let e = err("MAIL FROM:<jörg@bücher.example>");
        assert_eq!(e.kind, CommandErrorKind::NeedsSmtpUtf8);
        assert_eq!(e.reply.code, 553);
        let Command::Mail { from, .. } = ok("MAIL FROM:<jörg@bücher.example> SMTPUTF8") else {
            panic!()
        };
        assert!(from.unwrap().is_utf8());
    }

    #[test]
    fn rcpt_to() {
        assert_eq!(
            ok("RCPT TO:<bob@example.com>"),
            Command::Rcpt {
                to: ForwardPath::Address(addr("bob@example.com")),
                params: RcptParams::default()
            }
        );
        assert_eq!(
            ok("rcpt to: <postMaster>"),
            Command::Rcpt {
                to: ForwardPath::Postmaster,
                params: RcptParams::default()
            }
        );
        let Command::Rcpt { to, .. } = ok("RCPT TO:<postmaster@example.com>") else {
            panic!()
        };
        assert_eq!(to.address(), Some(&addr("postmaster@example.com")));
        let Command::Rcpt { to, .. } = ok("RCPT TO:<jörg@bücher.example>") else {
            panic!()
        };
        assert!(to.is_utf8());
        assert!(!ForwardPath::Postmaster.is_utf8());
        assert_eq!(code("RCPT TO:<>"), "501 5.1.3");
        assert_eq!(code("RCPT TO:<bob>"), "501 5.1.3");
        assert_eq!(code("RCPT TO:bob@example.com"), "501 5.5.4");
        assert_eq!(code("RCPT FROM:<bob@example.com>"), "501 5.5.4");
    }

    #[test]
    fn rcpt_params() {
        let Command::Rcpt { params, .. } =
            ok("RCPT TO:<b@example.com> NOTIFY=success,Delay ORCPT=rfc822;b+2Bx@example.com")
        else {
            panic!()
        };
        assert_eq!(
            params.notify,
            Some(Notify::On {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(
            params.orcpt,
            Some(Orcpt {
                addr_type: "rfc822".into(),
                address: "b+x@example.com".into()
            })
        );
        let Command::Rcpt { params, .. } = ok("RCPT TO:<b@example.com> notify=never") else {
            panic!()
        };
        assert_eq!(params.notify, Some(Notify::Never));
        for bad in [
            "RCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS",
            "RCPT TO:<b@example.com> NOTIFY=SUCCESS,SUCCESS",
            "RCPT TO:<b@example.com> NOTIFY=",
            "RCPT TO:<b@example.com> NOTIFY=SUCCESS,",
            "RCPT TO:<b@example.com> NOTIFY=SOMETIMES",
            "RCPT TO:<b@example.com> NOTIFY",
            "RCPT TO:<b@example.com> ORCPT=b@example.com",
            "RCPT TO:<b@example.com> ORCPT=;b@example.com",
            "RCPT TO:<b@example.com> ORCPT=rfc822;",
            "RCPT TO:<b@example.com> ORCPT=rfc822;a+4",
            "RCPT TO:<b@example.com> NOTIFY=NEVER NOTIFY=NEVER",
            "RCPT TO:<b@example.com> SIZE=10",
        ] {
            assert_eq!(code(bad), "555 5.5.4", "{bad}");
        }
    }

    #[test]
    fn relay_tricks() {
        for (path, why) in [
            ("<@a.example,@b.example:user@c.example>", "source route"),
            ("<@a.example:user@c.example>", "source route"),
            ("<user%victim.example@example.com>", "percent hack"),
            ("<victim.example!user@example.com>", "bang path"),
            (
                "<\"user@victim.example\"@example.com>",
                "quoted local part with @",
            ),
            (
                "<\"a\\\"user@victim.example\"@example.com>",
                "quoted local part with @",
            ),
            ("<user@example.com.>", "trailing dot in domain"),
            ("<user@[192.0.2.1]>", "address literal"),
            ("<user@victim.example@example.com>", "multiple @"),
        ] {
            let e = err(&format!("RCPT TO:{path}"));
            assert_eq!(
                e.kind,
                CommandErrorKind::Path(PathError::RelayTrick(why)),
                "{path}"
            );
            assert_eq!(e.reply.code, 550);
            assert_eq!(
                e.reply.enhanced.map(|c| c.to_string()),
                Some("5.7.1".into())
            );
            // In MAIL FROM the same forms are refused as bad sender syntax.
            let e = err(&format!("MAIL FROM:{path}"));
            assert_eq!(
                e.kind,
                CommandErrorKind::Path(PathError::RelayTrick(why)),
                "{path}"
            );
            assert_eq!(e.reply.code, 501);
        }
    }

    #[test]
    fn quoted_local_parts_refused() {
        let e = err("RCPT TO:<\"john doe\"@example.com>");
        assert_eq!(
            e.kind,
            CommandErrorKind::Path(PathError::Syntax("quoted local parts are not accepted"))
        );
        assert_eq!(code("RCPT TO:<\"john doe\"@example.com>"), "501 5.1.3");
        // A '>' inside quotes does not end the path early.
        assert_eq!(code("RCPT TO:<\"a>b\"@example.com>"), "501 5.1.3");
        // An unbalanced quote hides the closing '>': plain syntax error.
        assert_eq!(code("RCPT TO:<a\"b@example.com>"), "501 5.5.4");
        assert_eq!(code("RCPT TO:<a\"b\"@example.com>"), "501 5.1.3");
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("abc+2B+3Ddef").as_deref(), Some("abc+=def"));
        assert_eq!(decode_xtext("a+2b").as_deref(), Some("a+"));
        assert_eq!(decode_xtext("").as_deref(), Some(""));
        assert_eq!(decode_xtext("jörg").as_deref(), Some("jörg"));
        for bad in ["a+", "a+4", "a+GG", "a=b", "a b", "+FF"] {
            assert_eq!(decode_xtext(bad), None, "{bad}");
        }
        for s in ["plain@example.com", "a+b=c d", "ünï", ""] {
            assert_eq!(decode_xtext(&encode_xtext(s)).as_deref(), Some(s));
        }
        assert_eq!(encode_xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn max_line_documented() {
        // A MAIL line with every parameter at its longest still fits.
        let line = format!(
            "MAIL FROM:<{}@{}> SIZE=36700160 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID={} AUTH=<>",
            "a".repeat(64),
            "b".repeat(60) + ".example",
            "e".repeat(MAX_ENVID)
        );
        assert!(line.len() < MAX_COMMAND_LINE);
        assert!(parse_command(line.as_bytes()).is_ok());
    }
}
