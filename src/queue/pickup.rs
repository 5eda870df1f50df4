//! The pickup directory (PRODUCT §5; Exchange's Pickup folder): a `.eml` file
//! dropped into `data/pickup/` is submitted like a message received over SMTP.
//!
//! This module holds the pure part: [`parse_pickup`] turns the file's bytes into an
//! envelope (sender and recipients) and the bytes to queue, or a [`PickupError`]
//! whose `Display` is the one-line reason written to the `.err` note when the
//! caller moves the file to `data/pickup/badmail/` ([`move_to_badmail`]).
//!
//! Envelope rules (Exchange 2003/2007 pickup semantics):
//! - `X-Sender:` names the sender (`X-Sender: <>` is the null sender); without it
//!   the sender is the first mailbox of `Sender:`, else of `From:`.
//! - `X-Receiver:` (any number of fields, each possibly a comma-separated list)
//!   names the recipients; without it they are every mailbox of `To:`, `Cc:` and
//!   `Bcc:`, in header order, groups included, duplicates removed.
//! - Exchange wants X-Sender/X-Receiver before the other fields; they are
//!   accepted anywhere in the header block here.
//!
//! The queued message is the file with its line endings normalised to CRLF
//! (bare-LF files are common when written by hand; a bare CR is refused), the
//! `X-Sender`, `X-Receiver` and `Bcc` fields removed (whole folded fields), and no
//! `Received` field added: the caller prepends its own. Dot-stuffing is not
//! applied: that belongs to the SMTP client that sends the message on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mail_parser::{HeaderName, HeaderValue, MessageParser};

use crate::smtp::address::{AddressError, EmailAddress};

/// Largest pickup file accepted (and largest message after CRLF normalisation).
pub const MAX_PICKUP_SIZE: usize = 35 * 1024 * 1024;

/// Longest piece of file text quoted back in an error message.
const MAX_QUOTE: usize = 120;

const X_SENDER: &str = "X-Sender";
const X_RECEIVER: &str = "X-Receiver";

/// A pickup file turned into an envelope and the message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupMessage {
    /// `None` only when the file names the null sender explicitly (`X-Sender: <>`).
    pub sender: Option<EmailAddress>,
    /// Deduplicated by [`EmailAddress::key`], first occurrence kept, order kept.
    pub recipients: Vec<EmailAddress>,
    /// The message to queue: CRLF line endings, ending with CRLF, without the
    /// X-Sender/X-Receiver/Bcc fields, not dot-stuffed, no Received added.
    pub body: Vec<u8>,
    /// As written in the file, with angle brackets (`<id@host>`).
    pub message_id: Option<String>,
    /// Decoded (RFC 2047 encoded words resolved).
    pub subject: Option<String>,
}

/// Why a pickup file is refused. Each `Display` is one line, fit for the `.err` note.
#[derive(Debug, thiserror::Error)]
pub enum PickupError {
    #[error("the file is empty")]
    Empty,
    #[error("the message is {size} bytes, larger than the pickup limit of {MAX_PICKUP_SIZE} bytes")]
    TooLarge { size: usize },
    #[error("bare CR (a carriage return not followed by a line feed) on line {line}")]
    BareCr { line: usize },
    #[error("NUL byte in the header block on line {line}")]
    NulInHeaders { line: usize },
    #[error("the file has no header fields (it starts with a blank line)")]
    NoHeaders,
    #[error("no blank line separates the header fields from the body")]
    NoSeparator,
    #[error("header line {line} is not a valid header field: {reason}")]
    MalformedHeader { line: usize, reason: &'static str },
    #[error("the header block cannot be parsed")]
    Unparseable,
    #[error("the {field} field on line {line} is not valid UTF-8")]
    NotUtf8 { field: &'static str, line: usize },
    #[error("the {field} field on line {line} has a mailbox without an address (`{text}`)")]
    MissingAddress {
        field: &'static str,
        line: usize,
        text: String,
    },
    #[error("bad address `{address}` in the {field} field on line {line}: {}", quote(&.error.to_string()))]
    BadAddress {
        field: &'static str,
        line: usize,
        address: String,
        #[source]
        error: AddressError,
    },
    #[error("more than one sender: the file has {count} X-Sender addresses")]
    SeveralSenders { count: usize },
    #[error("no sender: the file has no X-Sender field and no address in Sender or From")]
    NoSender,
    #[error("no recipients: the file has no address in X-Receiver, To, Cc or Bcc")]
    NoRecipients,
}

/// One header field of the (normalised) header block: `start..end` covers the
/// name, the value and every continuation line, including the final CRLF.
struct Field<'a> {
    name: &'a str,
    start: usize,
    end: usize,
    line: usize,
}

/// Turns a dropped file into a [`PickupMessage`]. Pure: no I/O.
pub fn parse_pickup(bytes: &[u8]) -> Result<PickupMessage, PickupError> {
    if bytes.len() > MAX_PICKUP_SIZE {
        return Err(PickupError::TooLarge { size: bytes.len() });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PickupError::Empty);
    }
    if let Some(at) = find_bare_cr(bytes) {
        return Err(PickupError::BareCr {
            line: line_of(bytes, at),
        });
    }
    let text = to_crlf(bytes);
    if text.len() > MAX_PICKUP_SIZE {
        return Err(PickupError::TooLarge { size: text.len() });
    }

    // The header block ends with the CRLF before the first empty line.
    let header_end = if text.starts_with(b"\r\n") {
        return Err(PickupError::NoHeaders);
    } else {
        find(&text, b"\r\n\r\n")
            .map(|i| i + 2)
            .ok_or(PickupError::NoSeparator)?
    };
    let header = &text[..header_end];
    if let Some(at) = header.iter().position(|&b| b == 0) {
        return Err(PickupError::NulInHeaders {
            line: line_of(&text, at),
        });
    }
    let fields = split_fields(header)?;

    // mail-parser reads the values: address lists (display names, quoted strings,
    // comments, groups, encoded words), the Message-ID and the Subject.
    let parser = MessageParser::new()
        .with_address_headers()
        .header_address(HeaderName::Other(X_SENDER.into()))
        .header_address(HeaderName::Other(X_RECEIVER.into()))
        .header_id(HeaderName::MessageId)
        .header_text(HeaderName::Subject);
    let parsed = parser
        .parse_headers(&text[..header_end + 2])
        .ok_or(PickupError::Unparseable)?;
    let headers = parsed.headers();
    let field_line = |offset: u32| line_of(&text, offset as usize);

    // Every field that names envelope addresses must be UTF-8 (RFC 6532), so an
    // address is never decoded lossily.
    for f in &fields {
        if let Some(field) = envelope_field(f.name)
            && std::str::from_utf8(&text[f.start..f.end]).is_err()
        {
            return Err(PickupError::NotUtf8 {
                field,
                line: f.line,
            });
        }
    }

    let is = |h: &mail_parser::Header<'_>, name: &str| h.name.as_str().eq_ignore_ascii_case(name);

    // Sender: X-Sender, else the first mailbox of Sender, else of From.
    let x_senders: Vec<_> = headers.iter().filter(|h| is(h, X_SENDER)).collect();
    let sender = if !x_senders.is_empty() {
        let mut found: Vec<Option<EmailAddress>> = Vec::new();
        for h in &x_senders {
            let raw = raw_value(&text, h);
            if raw.trim() == "<>" {
                found.push(None);
            } else {
                for a in mailboxes(&h.value, X_SENDER, field_line(h.offset_field))? {
                    found.push(Some(a));
                }
            }
        }
        match found.len() {
            0 => return Err(PickupError::NoSender),
            1 => found.pop().flatten(),
            count => return Err(PickupError::SeveralSenders { count }),
        }
    } else {
        let mut sender = None;
        for (name, field) in [("Sender", "Sender"), ("From", "From")] {
            for h in headers.iter().filter(|h| is(h, name)) {
                let first = mailboxes(&h.value, field, field_line(h.offset_field))?
                    .into_iter()
                    .next();
                if first.is_some() {
                    sender = first;
                    break;
                }
            }
            if sender.is_some() {
                break;
            }
        }
        Some(sender.ok_or(PickupError::NoSender)?)
    };

    // Recipients: every X-Receiver, else every To, Cc and Bcc, in header order.
    let from_x_receiver = headers.iter().any(|h| is(h, X_RECEIVER));
    let mut recipients = Vec::new();
    let mut seen = HashSet::new();
    for h in headers {
        let field = match envelope_field(h.name.as_str()) {
            Some(f @ X_RECEIVER) if from_x_receiver => f,
            Some(f @ ("To" | "Cc" | "Bcc")) if !from_x_receiver => f,
            _ => continue,
        };
        for a in mailboxes(&h.value, field, field_line(h.offset_field))? {
            if seen.insert(a.key()) {
                recipients.push(a);
            }
        }
    }
    if recipients.is_empty() {
        return Err(PickupError::NoRecipients);
    }

    let message_id = match parsed.header(HeaderName::MessageId) {
        Some(HeaderValue::Text(id)) => Some(id.as_ref()),
        Some(HeaderValue::TextList(ids)) => ids.first().map(|id| id.as_ref()),
        _ => None,
    }
    .map(str::trim)
    .filter(|id| !id.is_empty())
    .map(|id| format!("<{id}>"));
    let subject = match parsed.header(HeaderName::Subject) {
        Some(HeaderValue::Text(s)) => Some(s.trim().to_string()),
        _ => None,
    };

    // The message to queue: the kept fields, the blank line, the body.
    let mut body = Vec::with_capacity(text.len());
    for f in &fields {
        if !is_stripped(f.name) {
            body.extend_from_slice(&text[f.start..f.end]);
        }
    }
    body.extend_from_slice(&text[header_end..]);
    if !body.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }

    Ok(PickupMessage {
        sender,
        recipients,
        body,
        message_id,
        subject,
    })
}

/// Moves a refused pickup file into `badmail` and writes `<name>.err` beside it
/// with the reason. A name already taken in `badmail` gets a `.1`, `.2`, …
/// suffix. Returns the file's new path. Blocking: call it off the async runtime.
pub fn move_to_badmail(
    file: &Path,
    badmail: &Path,
    reason: &PickupError,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(badmail)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pickup.eml".to_string());
    let mut target = badmail.join(&name);
    let mut n = 0u32;
    while target.exists() || note_path(&target).exists() {
        n += 1;
        target = badmail.join(format!("{name}.{n}"));
    }
    std::fs::rename(file, &target)?;
    std::fs::write(note_path(&target), format!("{reason}\n"))?;
    Ok(target)
}

/// `badmail/x.eml` → `badmail/x.eml.err`.
fn note_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".err");
    PathBuf::from(s)
}

/// The canonical spelling of a field that carries envelope addresses.
fn envelope_field(name: &str) -> Option<&'static str> {
    [X_SENDER, X_RECEIVER, "Sender", "From", "To", "Cc", "Bcc"]
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(name.trim_end()))
}

/// Fields removed from the queued message.
fn is_stripped(name: &str) -> bool {
    [X_SENDER, X_RECEIVER, "Bcc"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name.trim_end()))
}

/// Every mailbox of an address field, validated. Group names (`undisclosed:;`)
/// carry no address and are skipped; a mailbox without an address is refused.
fn mailboxes(
    value: &HeaderValue<'_>,
    field: &'static str,
    line: usize,
) -> Result<Vec<EmailAddress>, PickupError> {
    let list: Vec<&mail_parser::Addr<'_>> = match value {
        HeaderValue::Address(a) => a.iter().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::with_capacity(list.len());
    for addr in list {
        match addr.address.as_deref().map(str::trim) {
            Some(a) => {
                out.push(
                    EmailAddress::parse(a).map_err(|error| PickupError::BadAddress {
                        field,
                        line,
                        address: quote(a),
                        error,
                    })?,
                );
            }
            _ => {
                return Err(PickupError::MissingAddress {
                    field,
                    line,
                    text: quote(addr.name.as_deref().unwrap_or("")),
                });
            }
        }
    }
    Ok(out)
}

/// The unfolded raw value of a parsed header field.
fn raw_value(text: &[u8], h: &mail_parser::Header<'_>) -> String {
    text.get(h.offset_start as usize..h.offset_end as usize)
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .replace("\r\n", "")
}

/// Splits the header block (CRLF lines, ending with CRLF) into fields, folding
/// continuation lines into the field they continue.
fn split_fields(header: &[u8]) -> Result<Vec<Field<'_>>, PickupError> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < header.len() {
        let eol = find(&header[pos..], b"\r\n").map_or(header.len(), |i| pos + i + 2);
        let content = &header[pos..eol.saturating_sub(2).max(pos)];
        if content.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            match fields.last_mut() {
                Some(f) => f.end = eol,
                None => {
                    return Err(PickupError::MalformedHeader {
                        line,
                        reason: "a continuation line comes before any field",
                    });
                }
            }
        } else {
            let colon =
                content
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or(PickupError::MalformedHeader {
                        line,
                        reason: "it has no colon",
                    })?;
            // RFC 5322 obs-optional allows white space before the colon.
            let name = content[..colon].trim_ascii_end();
            if name.is_empty() {
                return Err(PickupError::MalformedHeader {
                    line,
                    reason: "the field name is empty",
                });
            }
            if !name.iter().all(|&b| (33..=126).contains(&b)) {
                return Err(PickupError::MalformedHeader {
                    line,
                    reason: "the field name has a character not allowed in a field name",
                });
            }
            let name = std::str::from_utf8(name).map_err(|_| PickupError::Unparseable)?;
            fields.push(Field {
                name,
                start: pos,
                end: eol,
                line,
            });
        }
        pos = eol;
        line += 1;
    }
    Ok(fields)
}

/// Offset of the first CR not followed by LF.
fn find_bare_cr(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .map(|(i, _)| i)
}

/// Turns every bare LF into CRLF (the input has no bare CR).
fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let lone_lf = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count();
    if lone_lf == 0 {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len() + lone_lf);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// 1-based line number of a byte offset.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// File text made safe to quote on one line: controls replaced, length capped.
fn quote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTE)
        .collect();
    if s.chars().count() > MAX_QUOTE {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> PickupMessage {
        match parse_pickup(s.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("refused: {e}\n{s}"),
        }
    }

    fn err(s: &[u8]) -> String {
        let e = parse_pickup(s).expect_err("should be refused");
        let text = e.to_string();
        assert!(!text.contains('\n'), "one line: {text:?}");
        text
    }

    fn addrs(v: &[EmailAddress]) -> Vec<String> {
        v.iter().map(|a| a.to_string()).collect()
    }

    fn body(m: &PickupMessage) -> &str {
        std::str::from_utf8(&m.body).unwrap()
    }

    #[test]
    fn x_sender_and_x_receiver_override_the_headers() {
        let m = parse(
            "X-Sender: bounce@example.com\r\n\
             X-Receiver: alice@example.com\r\n\
             X-Receiver: bob@example.net, \"Carol C\" <carol@example.org>\r\n\
             From: Someone <someone@example.com>\r\n\
             To: other@example.com\r\n\
             Bcc: hidden@example.com\r\n\
             Subject: hi\r\n\
             Message-ID: <abc@example.com>\r\n\
             \r\n\
             Body\r\n",
        );
        assert_eq!(m.sender.as_ref().unwrap().to_string(), "bounce@example.com");
        assert_eq!(
            addrs(&m.recipients),
            ["alice@example.com", "bob@example.net", "carol@example.org"]
        );
        assert_eq!(m.subject.as_deref(), Some("hi"));
        assert_eq!(m.message_id.as_deref(), Some("<abc@example.com>"));
        assert_eq!(
            body(&m),
            "From: Someone <someone@example.com>\r\n\
             To: other@example.com\r\n\
             Subject: hi\r\n\
             Message-ID: <abc@example.com>\r\n\
             \r\n\
             Body\r\n"
        );
    }

    #[test]
    fn x_fields_accepted_anywhere_and_stripped() {
        let m = parse(
            "From: a@example.com\r\n\
             x-receiver: <r1@example.com>\r\n\
             Subject: s\r\n\
             X-SENDER: <s@example.com>\r\n\
             X-Other: kept\r\n\
             \r\n\
             b\r\n",
        );
        assert_eq!(m.sender.as_ref().unwrap().to_string(), "s@example.com");
        assert_eq!(addrs(&m.recipients), ["r1@example.com"]);
        assert_eq!(
            body(&m),
            "From: a@example.com\r\nSubject: s\r\nX-Other: kept\r\n\r\nb\r\n"
        );
    }

    #[test]
    fn x_receiver_with_replay_parameters() {
        // Exchange's replay format may carry DSN parameters after the address.
        let m = parse(
            "X-Sender: <s@example.com>\r\n\
             X-Receiver: <r@example.com> NOTIFY=NEVER ORCPT=rfc822;r@example.com\r\n\
             Subject: x\r\n\r\nb\r\n",
        );
        assert_eq!(addrs(&m.recipients), ["r@example.com"]);
        assert_eq!(body(&m), "Subject: x\r\n\r\nb\r\n");
    }

    #[test]
    fn x_sender_null_and_x_receiver_only() {
        let m = parse("X-Sender: <>\r\nX-Receiver: r@example.com\r\n\r\nbody\r\n");
        assert_eq!(m.sender, None);
        assert_eq!(addrs(&m.recipients), ["r@example.com"]);
        assert_eq!(body(&m), "\r\nbody\r\n");
        // X-Receiver alone: the sender still comes from From.
        let m =
            parse("From: f@example.com\r\nTo: t@example.com\r\nX-Receiver: r@example.com\r\n\r\n");
        assert_eq!(m.sender.as_ref().unwrap().to_string(), "f@example.com");
        assert_eq!(addrs(&m.recipients), ["r@example.com"]);
    }

    #[test]
    fn from_to_cc_bcc_fallback_with_names_and_groups() {
        let m = parse(
            "Sender: \"Secretary\" <sec@example.com>\r\n\
             From: \"Boss, The\" <boss@example.com>, deputy@example.com\r\n\
             To: \"Smith, John\" <john@example.com> (work), =?UTF-8?Q?J=C3=B6rg?= <joerg@example.de>\r\n\
             Cc: team: ann@example.com, Ben <ben@example.com>;, undisclosed-recipients:;\r\n\
             Bcc: (secret) zed@example.org\r\n\
             Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?=\r\n\
             \r\n\
             x\r\n",
        );
        assert_eq!(m.sender.as_ref().unwrap().to_string(), "sec@example.com");
        assert_eq!(
            addrs(&m.recipients),
            [
                "john@example.com",
                "joerg@example.de",
                "ann@example.com",
                "ben@example.com",
                "zed@example.org"
            ]
        );
        assert_eq!(m.subject.as_deref(), Some("Hello Wörld"));
        assert!(!body(&m).contains("Bcc"));
        assert!(!body(&m).contains("zed@"));

        // No Sender: the first mailbox of From.
        let m = parse(
            "From: A <a@example.com>, b@example.com\r\nTo: undisclosed:;\r\nBcc: c@example.com\r\n\r\n",
        );
        assert_eq!(m.sender.as_ref().unwrap().to_string(), "a@example.com");
        assert_eq!(addrs(&m.recipients), ["c@example.com"]);
        assert_eq!(
            body(&m),
            "From: A <a@example.com>, b@example.com\r\nTo: undisclosed:;\r\n\r\n"
        );
    }

    #[test]
    fn folded_bcc_is_stripped_whole() {
        let m = parse(
            "From: a@example.com\r\n\
             Bcc: one@example.com,\r\n\
             \ttwo@example.com,\r\n   three@example.com\r\n\
             To: to@example.com\r\n\
             Subject: folded\r\n subject\r\n\
             \r\n\
             body\r\n",
        );
        assert_eq!(
            addrs(&m.recipients),
            [
                "one@example.com",
                "two@example.com",
                "three@example.com",
                "to@example.com"
            ]
        );
        assert_eq!(
            body(&m),
            "From: a@example.com\r\nTo: to@example.com\r\nSubject: folded\r\n subject\r\n\r\nbody\r\n"
        );
        assert_eq!(m.subject.as_deref(), Some("folded subject"));
    }

    #[test]
    fn lf_only_input_is_normalised() {
        let m = parse(
            "From: a@example.com\nTo: b@example.com\nBcc: c@example.com,\n d@example.com\n\nline 1\n.\nline 3",
        );
        assert_eq!(
            addrs(&m.recipients),
            ["b@example.com", "c@example.com", "d@example.com"]
        );
        assert_eq!(
            body(&m),
            "From: a@example.com\r\nTo: b@example.com\r\n\r\nline 1\r\n.\r\nline 3\r\n"
        );
        // Mixed endings come out all CRLF; a CRLF file is kept as is.
        let m = parse("From: a@example.com\r\nTo: b@example.com\n\r\nx\ny\r\n");
        assert_eq!(
            body(&m),
            "From: a@example.com\r\nTo: b@example.com\r\n\r\nx\r\ny\r\n"
        );
    }

    #[test]
    fn duplicates_removed_order_kept() {
        let m = parse(
            "From: a@example.com\r\n\
             To: B@Example.com, c@example.com\r\n\
             Cc: b@example.COM, d@example.com, C@example.com\r\n\
             Bcc: d@example.com\r\n\r\n",
        );
        assert_eq!(
            addrs(&m.recipients),
            ["B@example.com", "c@example.com", "d@example.com"]
        );
        let m = parse(
            "X-Receiver: r@example.com, R@example.com\r\nX-Receiver: r@EXAMPLE.com\r\nFrom: a@example.com\r\n\r\n",
        );
        assert_eq!(addrs(&m.recipients), ["r@example.com"]);
    }

    #[test]
    fn utf8_addresses() {
        let m = parse(
            "From: Jörg <jörg@bücher.example>\r\nTo: \"Zoë\" <zoë@exämple.de>\r\nSubject: grüße\r\n\r\nHallo\r\n",
        );
        let sender = m.sender.as_ref().unwrap();
        assert_eq!(sender.to_string(), "jörg@bücher.example");
        assert!(sender.is_utf8());
        assert_eq!(addrs(&m.recipients), ["zoë@exämple.de"]);
        assert_eq!(m.subject.as_deref(), Some("grüße"));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(err(b""), "the file is empty");
        assert_eq!(err(b"\r\n\n  \r\n"), "the file is empty");
        assert!(err(b"\r\nbody only\r\n").contains("no header fields"));
        assert!(err(b"From: a@example.com\r\nTo: b@example.com\r\n").contains("no blank line"));
        assert!(err(b"From: a@example.com\r\nThis is not a header\r\n\r\nx").contains("line 2"));
        assert!(err(b"From: a@example.com\r\nThis is not a header\r\n\r\nx").contains("no colon"));
        assert!(err(b" folded: x\r\nFrom: a@example.com\r\n\r\n").contains("continuation"));
        assert!(err(b"Bad Name: x\r\nTo: b@example.com\r\n\r\n").contains("field name"));
        assert_eq!(
            err(b"From: a@example.com\r\n\r\nbody\r\n"),
            "no recipients: the file has no address in X-Receiver, To, Cc or Bcc"
        );
        assert!(
            err(b"From: a@example.com\r\nTo: undisclosed:;\r\n\r\n").starts_with("no recipients")
        );
        assert!(err(b"To: b@example.com\r\n\r\n").starts_with("no sender"));

        let e = err(b"From: a@example.com\r\nTo: ok@example.com, Bad <bad@exa_mple.com>\r\n\r\n");
        assert!(e.contains("`bad@exa_mple.com`"), "{e}");
        assert!(e.contains("To field on line 2"), "{e}");
        let e = err(b"X-Sender: a@example.com\r\nX-Receiver: nodomain\r\n\r\n");
        assert!(e.contains("`nodomain`") && e.contains("X-Receiver"), "{e}");
        let e = err(b"X-Sender: a@example.com, b@example.com\r\nTo: t@example.com\r\n\r\n");
        assert!(e.contains("more than one sender"), "{e}");

        let e = err(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nline\rmore\r\n");
        assert_eq!(
            e,
            "bare CR (a carriage return not followed by a line feed) on line 4"
        );
        assert!(err(b"From: a@example.com\rTo: b@example.com\r\n\r\n").contains("bare CR"));
        assert!(err(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nend\r").contains("bare CR"));

        let e = err(b"From: a@example.com\r\nSubject: a\0b\r\nTo: b@example.com\r\n\r\n");
        assert_eq!(e, "NUL byte in the header block on line 2");
        // NUL in the body is not a header problem.
        assert!(parse_pickup(b"From: a@example.com\r\nTo: b@example.com\r\n\r\na\0b\r\n").is_ok());

        let e = err(b"From: a@example.com\r\nTo: J\xf6rg <j\xf6rg@example.com>\r\n\r\n");
        assert!(e.contains("To field on line 2 is not valid UTF-8"), "{e}");

        let mut big = b"From: a@example.com\r\nTo: b@example.com\r\n\r\n".to_vec();
        big.resize(MAX_PICKUP_SIZE + 1, b'x');
        assert!(err(&big).contains("larger than the pickup limit"));
        // At the limit in the file but over it once LF becomes CRLF.
        let mut lf = b"From: a@example.com\nTo: b@example.com\n\n".to_vec();
        lf.resize(MAX_PICKUP_SIZE, b'\n');
        assert!(err(&lf).contains("larger than the pickup limit"));
    }

    #[test]
    fn long_or_multiline_quotes_stay_on_one_line() {
        let long = format!(
            "From: a@example.com\r\nTo: {}@example.com\r\n\r\n",
            "x".repeat(500)
        );
        let e = err(long.as_bytes());
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn body_gets_a_final_crlf_and_no_received() {
        let m = parse("From: a@example.com\r\nTo: b@example.com\r\n\r\nno newline at end");
        assert!(body(&m).ends_with("no newline at end\r\n"));
        assert!(!body(&m).contains("Received"));
        assert_eq!(m.message_id, None);
        assert_eq!(m.subject, None);
    }

    #[test]
    fn badmail_move_writes_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let badmail = dir.path().join("badmail");
        for round in 0..2 {
            let file = dir.path().join("bad.eml");
            std::fs::write(&file, b"garbage").unwrap();
            let reason = parse_pickup(b"garbage").unwrap_err();
            let moved = move_to_badmail(&file, &badmail, &reason).unwrap();
            assert!(!file.exists());
            assert_eq!(std::fs::read(&moved).unwrap(), b"garbage");
            let note = std::fs::read_to_string(note_path(&moved)).unwrap();
            assert_eq!(note, format!("{reason}\n"));
            let expected = if round == 0 { "bad.eml" } else { "bad.eml.1" };
            assert_eq!(moved.file_name().unwrap(), expected);
        }
    }
}
