//! Delivery status notifications (PRODUCT §5, seed NDR-01…NDR-06): RFC 3464 reports
//! for failed recipients (NDRs), delay notices and success/relay notices.
//!
//! The report is a `multipart/report; report-type=delivery-status` message (RFC 6522)
//! with three parts: a human explanation in the seed's Exchange-like wording, the
//! machine-readable `message/delivery-status` (RFC 3464 §2), and the original message
//! as `text/rfc822-headers` (RFC 3461 `RET=HDRS`) or `message/rfc822` (`RET=FULL`).
//! It is marked `Auto-Submitted: auto-replied` (RFC 3834 §5).
//!
//! Everything here is synchronous `std::io`: the queue manager runs it on a blocking
//! thread, streams the stored original from its spool file and writes the report into
//! a new spool file, then submits that with a null envelope sender. The original is
//! never held in memory whole: at most its first [`HEADER_CAP`] bytes.
//!
//! Safety of the output: every line ends in CRLF and is at most 998 octets (RFC 5322
//! §2.1.1); every value that comes from outside (diagnostic text from a remote server,
//! addresses, the subject) is flattened to one line, so it cannot add header fields or
//! MIME parts. The `message/delivery-status` part is pure ASCII: non-ASCII addresses use
//! the RFC 6533 `utf-8` address type with `\x{HEX}` escapes.

mod explain;
mod stream;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};

pub use explain::explanation;
use explain::parse_status;
use stream::{CountingWriter, Normalizer, read_head};

/// The most of the original's header block kept in memory and returned with
/// `RET=HDRS` (and the most searched for the Subject).
pub const HEADER_CAP: usize = 64 * 1024;

/// With `RET=FULL`, originals larger than this are returned as headers only (the text
/// part says so), as RFC 3461 §4.3 allows; the sender usually still has a copy.
pub const FULL_RETURN_LIMIT: u64 = 10 * 1024 * 1024;

/// Longest subject (in characters) copied from the original into the report's Subject.
const SUBJECT_MAX_CHARS: usize = 200;

/// Longest diagnostic text (in bytes, after escaping) put into a report.
const DIAGNOSTIC_MAX: usize = 2000;

/// RFC 3464 §2.3.3 action values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }

    /// The status to report when the caller's is not a valid enhanced code.
    fn default_status(self) -> &'static str {
        match self {
            Action::Failed => "5.0.0",
            Action::Delayed => "4.0.0",
            Action::Delivered | Action::Relayed | Action::Expanded => "2.0.0",
        }
    }
}

/// What of the original to return (RFC 3461 §4.3 `RET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnContent {
    /// `RET=HDRS`: the original's header block, as `text/rfc822-headers`.
    Headers,
    /// `RET=FULL`: the whole original, as `message/rfc822`.
    Full,
}

/// One recipient of the report (RFC 3464 §2.3 per-recipient fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address we tried, e.g. "bob@example.com".
    pub final_recipient: String,
    /// ORCPT as received and xtext-decoded, e.g. "rfc822;Bob@Example.com".
    pub original_recipient: Option<String>,
    pub action: Action,
    /// Enhanced status code, "5.1.1", "4.4.7", "2.0.0".
    pub status: String,
    /// Remote or local reply text, e.g. "550 5.1.1 user unknown".
    pub diagnostic: Option<String>,
    /// Host name of the remote server, if any.
    pub remote_mta: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    /// For delayed recipients: when we give up.
    pub will_retry_until: Option<DateTime<Utc>>,
}

/// Everything a report says apart from the original message itself.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// Our host name.
    pub reporting_mta: &'a str,
    /// The original envelope sender: the report's recipient. Must not be empty.
    pub to: &'a str,
    /// RFC 3461 ENVID of the original, xtext-decoded.
    pub envid: Option<&'a str>,
    pub arrival_date: DateTime<Utc>,
    pub queue_id: &'a str,
    /// Usually all of one kind (all failed, all delayed, …); mixed kinds are grouped.
    pub recipients: &'a [RecipientReport],
    pub return_content: ReturnContent,
    /// Size of the stored original in bytes.
    pub original_size: u64,
}

/// What [`write_report_summary`] reports about the message it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// The Message-ID, without angle brackets.
    pub message_id: String,
    /// Bytes written to `out`.
    pub size: u64,
    /// True when the report contains 8-bit octets (from the original, its subject or a
    /// UTF-8 diagnostic): submit it with `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// The original was returned whole (`message/rfc822`), not just its headers.
    pub full_returned: bool,
}

/// Writes the whole DSN message (headers + multipart/report body) to `out`;
/// `original` yields the original message as stored (CRLF line endings; it may start
/// with our own Received header). Returns the Message-ID it generated, without angle
/// brackets.
pub fn write_report<R: BufRead, W: Write>(
    input: &ReportInput,
    original: R,
    out: W,
) -> io::Result<String> {
    write_report_summary(input, original, out).map(|s| s.message_id)
}

/// [`write_report`], also telling the caller the size and whether the report needs
/// 8BITMIME.
pub fn write_report_summary<R: BufRead, W: Write>(
    input: &ReportInput,
    mut original: R,
    out: W,
) -> io::Result<ReportSummary> {
    write_report_at(input, Utc::now(), &mut original, out)
}

/// The same with the report's own Date fixed (tests).
pub(crate) fn write_report_at<R: BufRead, W: Write>(
    input: &ReportInput,
    now: DateTime<Utc>,
    original: &mut R,
    out: W,
) -> io::Result<ReportSummary> {
    if input.recipients.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a delivery status notification needs at least one recipient (RFC 3464 §2)",
        ));
    }
    let to = one_line(input.to).replace([' ', '<', '>'], "");
    if to.is_empty() {
        // RFC 3464 §2: never a DSN to the null reverse-path.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a delivery status notification cannot be sent to the null sender",
        ));
    }
    let mta = host_name(input.reporting_mta);

    let head = read_head(original, HEADER_CAP)?;
    let header_block = &head.raw[..head.header_len];
    let raw_subject = find_header(header_block, "subject").map(|s| subject_line(&s));
    let full =
        input.return_content == ReturnContent::Full && input.original_size <= FULL_RETURN_LIMIT;

    let message_id = format!(
        "{:x}.{:016x}@{}",
        now.timestamp_millis(),
        rand::random::<u64>(),
        mta
    );
    let text = human_text(input, &mta, header_block, full);
    let status = delivery_status(input, &mta);
    let boundary = loop {
        let b = format!("=_bh_dsn_{:032x}", rand::random::<u128>());
        if !text.contains(&b) && !status.contains(&b) {
            break b;
        }
    };

    let mut out = io::BufWriter::with_capacity(64 * 1024, CountingWriter::new(out));

    // Top-level header (RFC 5322, RFC 6522 §3, RFC 3834 §5).
    let prefix = subject_prefix(input.recipients);
    let subject = format!(
        "{prefix}{}",
        raw_subject.as_deref().unwrap_or("(no subject)")
    );
    let mut h = String::new();
    h.push_str(&fold(
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{mta}>"),
    ));
    h.push_str(&fold("To", &format!("<{to}>")));
    h.push_str(&fold("Subject", &subject));
    h.push_str(&fold("Date", &now.to_rfc2822()));
    h.push_str(&fold("Message-ID", &format!("<{message_id}>")));
    h.push_str("MIME-Version: 1.0\r\n");
    h.push_str("Auto-Submitted: auto-replied\r\n");
    let _ = write!(
        h,
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    );
    h.push_str("\r\nThis is a MIME-formatted delivery status notification.\r\n\r\n");

    // Part 1: the human explanation.
    let _ = write!(h, "--{boundary}\r\n");
    h.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    let cte = if text.is_ascii() { "7bit" } else { "8bit" };
    let _ = write!(h, "Content-Transfer-Encoding: {cte}\r\n");
    h.push_str("Content-Description: Notification\r\n\r\n");
    h.push_str(&text);

    // Part 2: the machine-readable report (ASCII by construction).
    let _ = write!(h, "\r\n--{boundary}\r\n");
    h.push_str("Content-Type: message/delivery-status\r\n");
    h.push_str("Content-Description: Delivery report\r\n\r\n");
    h.push_str(&status);

    // Part 3: the original.
    let _ = write!(h, "\r\n--{boundary}\r\n");
    if full {
        h.push_str("Content-Type: message/rfc822\r\n");
        // RFC 2046 §5.2.1 allows 7bit/8bit/binary only; "8bit" is a ceiling, so it is
        // right whether or not the streamed original turns out to have 8-bit octets.
        h.push_str("Content-Transfer-Encoding: 8bit\r\n");
        h.push_str("Content-Description: Undelivered message\r\n\r\n");
    } else {
        h.push_str("Content-Type: text/rfc822-headers\r\n");
        let cte = if header_block.is_ascii() {
            "7bit"
        } else {
            "8bit"
        };
        let _ = write!(h, "Content-Transfer-Encoding: {cte}\r\n");
        h.push_str("Content-Description: Undelivered message headers\r\n\r\n");
    }
    out.write_all(h.as_bytes())?;

    let mut norm = Normalizer::new();
    if full {
        norm.feed(&head.raw, &mut out)?;
        loop {
            let buf = original.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            norm.feed(buf, &mut out)?;
            original.consume(n);
        }
    } else {
        norm.feed(header_block, &mut out)?;
    }
    norm.finish(&mut out)?;
    write!(out, "\r\n--{boundary}--\r\n")?;

    let counting = out.into_inner().map_err(|e| e.into_error())?;
    let (mut inner, size, eight_bit) = counting.into_parts();
    inner.flush()?;
    Ok(ReportSummary {
        message_id,
        size,
        eight_bit,
        full_returned: full,
    })
}

/// True when a message (its header block) is itself a delivery report or an
/// auto-submitted message, so no DSN may be generated about it (RFC 3464 §2; RFC 3834
/// §2). Checks:
/// - `Content-Type: multipart/report` with report-type `delivery-status`,
///   `global-delivery-status` (RFC 6533), `disposition-notification` or
///   `global-disposition-notification` (MDNs); or a top-level
///   `message/delivery-status` / `message/global-delivery-status`;
/// - `Auto-Submitted` with any value but `no` (auto-replied, auto-generated, …).
///
/// Only the header block is looked at; a body after the first empty line is ignored.
/// The envelope check (null reverse-path) is the caller's.
pub fn is_report(headers: &[u8]) -> bool {
    let block = header_block_of(headers);
    for (name, value) in header_fields(block) {
        if name.eq_ignore_ascii_case(b"auto-submitted") {
            let v = strip_comments(&String::from_utf8_lossy(&value)).to_ascii_lowercase();
            let keyword = v.split(';').next().unwrap_or("").trim().to_string();
            if !keyword.is_empty() && keyword != "no" {
                return true;
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let v = strip_comments(&String::from_utf8_lossy(&value)).to_ascii_lowercase();
            let mut params = split_params(&v).into_iter();
            let media = params.next().unwrap_or_default();
            let media: String = media.chars().filter(|c| !c.is_whitespace()).collect();
            if media == "message/delivery-status" || media == "message/global-delivery-status" {
                return true;
            }
            if media == "multipart/report" {
                for p in params {
                    if let Some((k, val)) = p.split_once('=')
                        && k.trim() == "report-type"
                    {
                        let val = val.trim().trim_matches('"').trim();
                        if matches!(
                            val,
                            "delivery-status"
                                | "global-delivery-status"
                                | "disposition-notification"
                                | "global-disposition-notification"
                        ) {
                            return true;
                        }
                    }
                }
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------
// The human-readable part.

/// The report's Subject prefix: a failure anywhere makes it an NDR, then a delay, then
/// success.
fn subject_prefix(recipients: &[RecipientReport]) -> &'static str {
    if recipients.iter().any(|r| r.action == Action::Failed) {
        "Undeliverable: "
    } else if recipients.iter().any(|r| r.action == Action::Delayed) {
        "Delivery delayed: "
    } else if recipients.iter().all(|r| r.action == Action::Relayed) {
        "Relayed: "
    } else {
        "Delivered: "
    }
}

const INDENT1: &str = "      ";
const INDENT2: &str = "            ";
const WRAP: usize = 76;

fn human_text(input: &ReportInput, mta: &str, header_block: &[u8], full: bool) -> String {
    let mut t = String::new();
    let rcpts = input.recipients;
    let any = |a: Action| rcpts.iter().any(|r| r.action == a);

    if any(Action::Failed) {
        t.push_str("Your message did not reach some or all of the intended recipients.\r\n");
    } else if any(Action::Delayed) {
        push_wrapped(
            &mut t,
            "",
            "Your message has not yet been delivered to some or all of the intended \
             recipients. This is only a warning: the mail system is still trying, and you \
             do not need to send the message again.",
        );
    } else {
        t.push_str("This is a delivery report for your message.\r\n");
    }
    t.push_str("\r\n");

    // Subject and Sent, as the seed's NDR shows them (NDR-02). Here the subject is
    // decoded for reading; the report's own Subject header keeps the raw form.
    let subject = readable_subject(header_block).unwrap_or_else(|| "(no subject)".into());
    push_wrapped(&mut t, INDENT1, &format!("Subject: {subject}"));
    let sent = find_header(header_block, "date")
        .map(|d| truncate_chars(&one_line(&String::from_utf8_lossy(&d)), 100))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| input.arrival_date.to_rfc2822());
    push_wrapped(&mut t, INDENT1, &format!("Sent: {sent}"));
    t.push_str("\r\n");

    let sections: [(Action, &str); 5] = [
        (
            Action::Failed,
            "The following recipient(s) could not be reached:",
        ),
        (
            Action::Delayed,
            "Delivery to the following recipient(s) has been delayed:",
        ),
        (
            Action::Delivered,
            "Your message was delivered to the following recipient(s):",
        ),
        (
            Action::Expanded,
            "Your message was delivered to the following distribution list(s), which \
             forwarded it to their members:",
        ),
        (
            Action::Relayed,
            "Your message was relayed to the following recipient(s). The destination \
             system does not send delivery reports, so you may not be told whether the \
             message reaches them:",
        ),
    ];
    for (action, heading) in sections {
        let group: Vec<&RecipientReport> = rcpts.iter().filter(|r| r.action == action).collect();
        if group.is_empty() {
            continue;
        }
        push_wrapped(&mut t, "", heading);
        t.push_str("\r\n");
        for r in group {
            recipient_text(&mut t, r, mta);
            t.push_str("\r\n");
        }
    }

    t.push_str("Diagnostic information for administrators:\r\n\r\n");
    push_wrapped(&mut t, "", &format!("Generating server: {mta}"));
    push_wrapped(
        &mut t,
        "",
        &format!(
            "Queue ID: {}",
            truncate_chars(&one_line(input.queue_id), 100)
        ),
    );
    push_wrapped(
        &mut t,
        "",
        &format!("Arrival date: {}", input.arrival_date.to_rfc2822()),
    );
    t.push_str("\r\n");
    let about_original = if full {
        "The original message is attached.".to_string()
    } else if input.return_content == ReturnContent::Full {
        format!(
            "The original message ({} bytes) was too large to return in full; only its \
             headers are attached.",
            input.original_size
        )
    } else {
        "The headers of the original message are attached.".to_string()
    };
    push_wrapped(&mut t, "", &about_original);
    t
}

fn recipient_text(t: &mut String, r: &RecipientReport, mta: &str) {
    let addr = truncate_chars(&one_line(&r.final_recipient), 500);
    let when = r
        .last_attempt
        .map(|d| format!(" on {}", d.to_rfc2822()))
        .unwrap_or_default();
    push_wrapped(t, INDENT1, &format!("{addr}{when}"));
    if let Some(orcpt) = &r.original_recipient {
        let (_, original) = split_addr_type(orcpt);
        let original = truncate_chars(&one_line(original), 500);
        if !original.is_empty() && !original.eq_ignore_ascii_case(&addr) {
            push_wrapped(t, INDENT2, &format!("(originally addressed to {original})"));
        }
    }
    let status = report_status(r);
    if matches!(r.action, Action::Failed | Action::Delayed) {
        push_wrapped(t, INDENT2, explanation(&status));
    }
    push_wrapped(t, INDENT2, &format!("<{mta} #{status}>"));
    if let Some(diag) = r.diagnostic.as_deref().map(one_line)
        && !diag.is_empty()
    {
        let diag = truncate_chars(&diag, DIAGNOSTIC_MAX);
        let line = match r.remote_mta.as_deref().map(host_name) {
            Some(host) if !host.is_empty() => format!("Remote server {host} said: {diag}"),
            _ => format!("Reason: {diag}"),
        };
        push_wrapped(t, INDENT2, &line);
    }
    match r.action {
        Action::Delayed => {
            let until = match r.will_retry_until {
                Some(d) => format!(
                    "The mail system will keep trying until {}. If the message still \
                     cannot be delivered by then, you will receive a non-delivery report.",
                    d.to_rfc2822()
                ),
                None => "The mail system will keep trying for a while. If the message \
                         still cannot be delivered, you will receive a non-delivery report."
                    .to_string(),
            };
            push_wrapped(t, INDENT2, &until);
        }
        Action::Failed if status.starts_with('4') => push_wrapped(
            t,
            INDENT2,
            "The problem lasted until the retry period ran out, so the mail system has \
             stopped trying.",
        ),
        _ => {}
    }
}

/// Appends `text` word-wrapped at [`WRAP`] columns with `indent`, CRLF line ends.
/// Words longer than a line are split (on character boundaries), so no line can come
/// near the 998-octet limit whatever the input.
fn push_wrapped(t: &mut String, indent: &str, text: &str) {
    let width = WRAP.saturating_sub(indent.len()).max(20);
    let mut line = String::new();
    let mut line_chars = 0usize;
    let flush = |t: &mut String, line: &mut String| {
        t.push_str(indent);
        t.push_str(line.trim_end());
        t.push_str("\r\n");
        line.clear();
    };
    for word in text.split_whitespace() {
        let mut word = word;
        loop {
            let wchars = word.chars().count();
            if line_chars > 0 && line_chars + 1 + wchars > width {
                flush(t, &mut line);
                line_chars = 0;
            }
            if wchars > width {
                // Split an over-long word.
                let cut = word
                    .char_indices()
                    .nth(width)
                    .map(|(i, _)| i)
                    .unwrap_or(word.len());
                line.push_str(&word[..cut]);
                flush(t, &mut line);
                line_chars = 0;
                word = &word[cut..];
                if word.is_empty() {
                    break;
                }
                continue;
            }
            if line_chars > 0 {
                line.push(' ');
                line_chars += 1;
            }
            line.push_str(word);
            line_chars += wchars;
            break;
        }
    }
    if line_chars > 0 {
        flush(t, &mut line);
    }
}

/// The original's subject decoded (RFC 2047) for the human part, one line.
fn readable_subject(header_block: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(header_block);
    let decoded = parsed.as_ref().and_then(|m| m.subject()).map(one_line);
    let s = match decoded {
        Some(s) => s,
        None => one_line(&String::from_utf8_lossy(&find_header(
            header_block,
            "subject",
        )?)),
    };
    let s = truncate_chars(&s, SUBJECT_MAX_CHARS);
    (!s.is_empty()).then_some(s)
}

// ---------------------------------------------------------------------------
// The message/delivery-status part (RFC 3464 §2.2, §2.3).

fn delivery_status(input: &ReportInput, mta: &str) -> String {
    let mut s = String::new();
    // Per-message fields, in the order of RFC 3464 §2.2.
    if let Some(envid) = input.envid.map(ascii_value).filter(|e| !e.is_empty()) {
        s.push_str(&fold("Original-Envelope-Id", &truncate_bytes(&envid, 500)));
    }
    s.push_str(&fold("Reporting-MTA", &format!("dns; {mta}")));
    s.push_str(&fold(
        "Arrival-Date",
        &input.arrival_date.to_rfc2822().to_string(),
    ));
    let qid = ascii_value(input.queue_id);
    if !qid.is_empty() {
        s.push_str(&fold("X-Bridgehead-Queue-ID", &truncate_bytes(&qid, 100)));
    }

    for r in input.recipients {
        s.push_str("\r\n");
        // Per-recipient fields, in the order of RFC 3464 §2.3.
        if let Some(orcpt) = &r.original_recipient {
            let (kind, addr) = split_addr_type(orcpt);
            let addr = one_line(addr);
            if !addr.is_empty() {
                s.push_str(&fold("Original-Recipient", &typed_address(kind, &addr)));
            }
        }
        let final_addr = one_line(&r.final_recipient);
        s.push_str(&fold(
            "Final-Recipient",
            &typed_address("rfc822", &final_addr),
        ));
        s.push_str(&format!("Action: {}\r\n", r.action.as_str()));
        s.push_str(&format!("Status: {}\r\n", report_status(r)));
        if let Some(host) = r.remote_mta.as_deref().map(host_name)
            && !host.is_empty()
        {
            s.push_str(&fold("Remote-MTA", &format!("dns; {host}")));
        }
        if let Some(diag) = r.diagnostic.as_deref().map(ascii_value)
            && !diag.is_empty()
        {
            let diag = truncate_bytes(&diag, DIAGNOSTIC_MAX);
            s.push_str(&fold("Diagnostic-Code", &format!("smtp; {diag}")));
        }
        if let Some(d) = r.last_attempt {
            s.push_str(&fold("Last-Attempt-Date", &d.to_rfc2822()));
        }
        if r.action == Action::Delayed
            && let Some(d) = r.will_retry_until
        {
            s.push_str(&fold("Will-Retry-Until", &d.to_rfc2822()));
        }
    }
    s
}

/// The recipient's status as reported: the caller's code if it is a valid enhanced
/// status code (RFC 3463), else a generic one matching the action.
fn report_status(r: &RecipientReport) -> String {
    match parse_status(&r.status) {
        Some((c, s, d)) => format!("{c}.{s}.{d}"),
        None => r.action.default_status().to_string(),
    }
}

/// "rfc822;Bob@Example.com" → ("rfc822", "Bob@Example.com"); no type → rfc822.
fn split_addr_type(s: &str) -> (&str, &str) {
    match s.split_once(';') {
        Some((kind, addr))
            if !kind.trim().is_empty()
                && kind
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            (kind.trim(), addr.trim())
        }
        _ => ("rfc822", s.trim()),
    }
}

/// An address field value, ASCII: `rfc822; addr`, or RFC 6533 `utf-8; addr` with
/// utf-8-addr-xtext escapes when the address is not ASCII.
fn typed_address(kind: &str, addr: &str) -> String {
    let addr = truncate_chars(addr, 500);
    if addr.is_ascii() {
        let kind = if kind.is_ascii() { kind } else { "rfc822" };
        format!("{}; {}", kind.to_ascii_lowercase(), addr)
    } else {
        format!("utf-8; {}", utf8_addr_xtext(&addr))
    }
}

/// RFC 6533 §3 utf-8-addr-xtext: QCHAR as is, anything else as `\x{HEX}`.
fn utf8_addr_xtext(addr: &str) -> String {
    let mut out = String::with_capacity(addr.len());
    for c in addr.chars() {
        let qchar =
            matches!(c, '\x21'..='\x2a' | '\x2c'..='\x3c' | '\x3e'..='\x5b' | '\x5d'..='\x7e');
        if qchar {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Value hygiene.

/// Flattens a value to one line: controls (CR, LF, TAB, NUL, DEL, C1) and Unicode line
/// separators become spaces, runs of white space collapse, ends are trimmed. A value
/// that went through this cannot start a new header field or MIME part.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() || c == '\u{2028}' || c == '\u{2029}' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// One line, and ASCII: non-ASCII characters become `\x{HEX}` (RFC 6533 style), for
/// the ASCII-only `message/delivery-status` part.
fn ascii_value(s: &str) -> String {
    let flat = one_line(s);
    if flat.is_ascii() {
        return flat;
    }
    let mut out = String::with_capacity(flat.len() + 16);
    for c in flat.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
    }
    out
}

/// A host name as we print it: one line, no spaces or angle brackets, at most 255.
fn host_name(s: &str) -> String {
    let h: String = one_line(s)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '(' | ')' | ';' | '"'))
        .collect();
    let h = truncate_chars(&h, 255);
    if h.is_empty() { "localhost".into() } else { h }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

/// The original's subject for the report's Subject header: raw (encoded-words are
/// kept, nothing decoded), one line, at most [`SUBJECT_MAX_CHARS`] characters, and not
/// cut inside an RFC 2047 encoded-word.
fn subject_line(raw: &[u8]) -> String {
    let flat = one_line(&String::from_utf8_lossy(raw));
    if flat.chars().count() <= SUBJECT_MAX_CHARS {
        return flat;
    }
    let mut cut = truncate_chars(&flat, SUBJECT_MAX_CHARS);
    // An encoded-word "=?charset?enc?text?=" cut short would show as garbage: drop it.
    if let Some(start) = cut.rfind("=?") {
        let rest = &cut[start + 2..];
        let complete = rest.matches('?').count() >= 3 && rest.contains("?=");
        if !complete {
            cut.truncate(start);
        }
    }
    cut.trim_end().to_string()
}

/// Formats a header field, folding at spaces so lines stay near 78 characters
/// (RFC 5322 §2.2.3). A run without spaces longer than 900 bytes is split with a fold
/// (which adds a space when unfolded) so that no line can exceed 998 octets.
fn fold(name: &str, value: &str) -> String {
    const SOFT: usize = 78;
    const HARD: usize = 900;
    let mut out = String::with_capacity(name.len() + value.len() + 8);
    out.push_str(name);
    out.push(':');
    let mut line_len = out.len();
    let mut first = true;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        while word.len() > HARD {
            let mut cut = HARD;
            while !word.is_char_boundary(cut) {
                cut -= 1;
            }
            if !first {
                out.push_str("\r\n");
            }
            out.push(' ');
            out.push_str(&word[..cut]);
            line_len = 1 + cut;
            first = false;
            word = &word[cut..];
        }
        if word.is_empty() {
            continue;
        }
        if !first && line_len + 1 + word.len() > SOFT {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(word);
        line_len += 1 + word.len();
        first = false;
    }
    out.push_str("\r\n");
    out
}

// ---------------------------------------------------------------------------
// Reading header blocks (ours: no decoding, just fields).

/// The header block of `message`: everything before the first empty line.
fn header_block_of(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let end = message[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| start + p)
            .unwrap_or(message.len());
        let line = &message[start..end];
        if line.is_empty() || line == b"\r" {
            return &message[..start];
        }
        start = end + 1;
    }
    message
}

/// The fields of a header block as (name, unfolded value); lines that are not fields
/// are skipped.
fn header_fields(block: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut fields: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for raw_line in block.split(|&b| b == b'\n') {
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        if line.is_empty() {
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, value)) = fields.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            if !name.is_empty() && name.iter().all(|&b| b > b' ' && b < 0x7f) {
                fields.push((name, line[colon + 1..].to_vec()));
            }
        }
    }
    fields
}

/// The first field named `name` (case-insensitive), unfolded, untrimmed.
fn find_header(block: &[u8], name: &str) -> Option<Vec<u8>> {
    header_fields(block)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// Removes RFC 5322 comments (nested parentheses) outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Splits a Content-Type value on `;` outside quoted strings.
fn split_params(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}
