use std::io::{self, BufReader, Cursor, Read};

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use super::stream::{Normalizer, read_head};
use super::*;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, h, m, 0).unwrap()
}

const ORIGINAL: &str = "Received: from client.example.org ([192.0.2.7])\r\n\
    \tby mx.bridgehead.test with ESMTPS id 0123456789ABCDEF;\r\n\
    \tTue, 5 Mar 2024 09:00:00 +0000\r\n\
    From: Alice <alice@example.org>\r\n\
    To: Bob <bob@example.com>\r\n\
    Subject: Quarterly report\r\n\
    Date: Tue, 5 Mar 2024 09:00:00 +0000\r\n\
    Message-ID: <orig-1@example.org>\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    \r\n\
    Hello Bob,\r\n\
    THE-SECRET-BODY-LINE\r\n\
    Regards, Alice\r\n";

fn rcpt(addr: &str, action: Action, status: &str) -> RecipientReport {
    RecipientReport {
        final_recipient: addr.to_string(),
        original_recipient: None,
        action,
        status: status.to_string(),
        diagnostic: None,
        remote_mta: None,
        last_attempt: None,
        will_retry_until: None,
    }
}

fn failed_bob() -> RecipientReport {
    RecipientReport {
        original_recipient: Some("rfc822;Bob@Example.com".into()),
        diagnostic: Some("550 5.1.1 <bob@example.com>: user unknown".into()),
        remote_mta: Some("mx1.example.com".into()),
        last_attempt: Some(t(9, 1)),
        ..rcpt("bob@example.com", Action::Failed, "5.1.1")
    }
}

fn input<'a>(recipients: &'a [RecipientReport], ret: ReturnContent) -> ReportInput<'a> {
    ReportInput {
        reporting_mta: "mx.bridgehead.test",
        to: "alice@example.org",
        envid: None,
        arrival_date: t(9, 0),
        queue_id: "018E0F3A2B1C00042",
        recipients,
        return_content: ret,
        original_size: ORIGINAL.len() as u64,
    }
}

fn render_with(input: &ReportInput, original: &[u8]) -> (Vec<u8>, ReportSummary) {
    let mut out = Vec::new();
    let mut reader = BufReader::with_capacity(1024, Cursor::new(original.to_vec()));
    let summary = write_report_at(input, t(10, 0), &mut reader, &mut out).unwrap();
    check_lines(&out);
    assert_eq!(summary.size, out.len() as u64);
    assert_eq!(summary.eight_bit, !out.is_ascii());
    (out, summary)
}

fn render(input: &ReportInput) -> (Vec<u8>, ReportSummary) {
    render_with(input, ORIGINAL.as_bytes())
}

/// Every line ends in CRLF, no bare CR, none longer than 998 octets.
fn check_lines(out: &[u8]) {
    assert!(out.ends_with(b"\r\n"), "output must end with CRLF");
    let mut len = 0usize;
    for (i, &b) in out.iter().enumerate() {
        match b {
            b'\n' => {
                assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
                len = 0;
            }
            b'\r' => {
                assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
            _ => {
                len += 1;
                assert!(len <= 998, "line longer than 998 octets at {i}");
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The three top-level parts of a parsed report.
fn top_parts<'a>(msg: &'a mail_parser::Message<'a>) -> Vec<&'a MessagePart<'a>> {
    let root = msg.root_part();
    let ids = root.sub_parts().expect("multipart root");
    ids.iter().map(|&id| &msg.parts[id as usize]).collect()
}

fn ctype(part: &MessagePart) -> String {
    let ct = part.content_type().expect("content type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
}

fn part_text(part: &MessagePart) -> String {
    match &part.body {
        PartType::Text(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => text(b),
        other => panic!("unexpected body {other:?}"),
    }
}

/// The delivery-status part split into its blocks of (name, value) fields.
fn status_blocks(msg: &mail_parser::Message) -> Vec<Vec<(String, String)>> {
    let parts = top_parts(msg);
    let body = part_text(parts[1]);
    // Unfold first.
    let unfolded = body.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .split("\r\n")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (n, v) = l.split_once(':').expect("field");
                    (n.to_string(), v.trim().to_string())
                })
                .collect()
        })
        .collect()
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn names(block: &[(String, String)]) -> Vec<&str> {
    block.iter().map(|(n, _)| n.as_str()).collect()
}

// ---------------------------------------------------------------------------

#[test]
fn ndr_structure_with_headers_only() {
    let rcpts = [failed_bob()];
    let (out, summary) = render(&input(&rcpts, ReturnContent::Headers));
    let msg = MessageParser::new().parse(&out).expect("parses");

    assert_eq!(msg.subject(), Some("Undeliverable: Quarterly report"));
    let from = msg.from().and_then(|a| a.first()).expect("from");
    assert_eq!(from.address(), Some("MAILER-DAEMON@mx.bridgehead.test"));
    assert_eq!(from.name(), Some("Mail Delivery System"));
    let to = msg.to().and_then(|a| a.first()).expect("to");
    assert_eq!(to.address(), Some("alice@example.org"));
    assert_eq!(msg.message_id(), Some(summary.message_id.as_str()));
    assert!(summary.message_id.ends_with("@mx.bridgehead.test"));
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(msg.header_raw("MIME-Version").map(str::trim), Some("1.0"));
    assert!(msg.date().is_some());

    let ct = msg.root_part().content_type().expect("ct");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let boundary = ct.attribute("boundary").expect("boundary").to_string();

    let parts = top_parts(&msg);
    assert_eq!(parts.len(), 3);
    assert_eq!(ctype(parts[0]), "text/plain");
    assert_eq!(
        parts[0].content_type().unwrap().attribute("charset"),
        Some("utf-8")
    );
    assert_eq!(ctype(parts[1]), "message/delivery-status");
    assert_eq!(ctype(parts[2]), "text/rfc822-headers");

    let human = part_text(parts[0]);
    assert!(
        human.starts_with("Your message did not reach some or all of the intended recipients.")
    );
    assert!(human.contains("Subject: Quarterly report"));
    assert!(human.contains("Sent: Tue, 5 Mar 2024 09:00:00 +0000"));
    assert!(human.contains("The following recipient(s) could not be reached:"));
    assert!(human.contains("bob@example.com on Tue, 5 Mar 2024 09:01:00 +0000"));
    assert!(human.contains("The e-mail address could not be found"));
    assert!(human.contains("<mx.bridgehead.test #5.1.1>"));
    // The explanation is wrapped; compare with whitespace collapsed.
    let flat = human.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "Remote server mx1.example.com said: 550 5.1.1 <bob@example.com>: user unknown"
        ),
        "{human}"
    );
    assert!(human.contains("Queue ID: 018E0F3A2B1C00042"));

    let returned = part_text(parts[2]);
    assert!(returned.contains("Subject: Quarterly report"));
    assert!(returned.contains("Received: from client.example.org"));
    assert!(!returned.contains("THE-SECRET-BODY-LINE"));
    assert!(!text(&out).contains("THE-SECRET-BODY-LINE"));
    assert!(!summary.full_returned);

    // The boundary appears only as delimiters.
    let s = text(&out);
    let delim = format!("--{boundary}");
    assert_eq!(s.matches(&delim).count(), 4);
    assert!(s.contains(&format!("--{boundary}--\r\n")));
    assert!(!human.contains(&boundary));
}

#[test]
fn per_message_and_per_recipient_fields() {
    let rcpts = [failed_bob(), {
        RecipientReport {
            diagnostic: Some("mailbox full".into()),
            ..rcpt("carol@example.net", Action::Failed, "5.2.2")
        }
    }];
    let mut inp = input(&rcpts, ReturnContent::Headers);
    inp.envid = Some("QQ314159");
    let (out, _) = render(&inp);
    let msg = MessageParser::new().parse(&out).unwrap();
    let blocks = status_blocks(&msg);
    assert_eq!(blocks.len(), 3, "{blocks:?}");

    let pm = &blocks[0];
    assert_eq!(
        names(pm),
        [
            "Original-Envelope-Id",
            "Reporting-MTA",
            "Arrival-Date",
            "X-Bridgehead-Queue-ID"
        ]
    );
    assert_eq!(field(pm, "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(field(pm, "Reporting-MTA"), Some("dns; mx.bridgehead.test"));
    assert_eq!(
        field(pm, "Arrival-Date"),
        Some("Tue, 5 Mar 2024 09:00:00 +0000")
    );

    let bob = &blocks[1];
    assert_eq!(
        names(bob),
        [
            "Original-Recipient",
            "Final-Recipient",
            "Action",
            "Status",
            "Remote-MTA",
            "Diagnostic-Code",
            "Last-Attempt-Date"
        ]
    );
    assert_eq!(
        field(bob, "Original-Recipient"),
        Some("rfc822; Bob@Example.com")
    );
    assert_eq!(
        field(bob, "Final-Recipient"),
        Some("rfc822; bob@example.com")
    );
    assert_eq!(field(bob, "Action"), Some("failed"));
    assert_eq!(field(bob, "Status"), Some("5.1.1"));
    assert_eq!(field(bob, "Remote-MTA"), Some("dns; mx1.example.com"));
    assert_eq!(
        field(bob, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 <bob@example.com>: user unknown")
    );
    assert_eq!(
        field(bob, "Last-Attempt-Date"),
        Some("Tue, 5 Mar 2024 09:01:00 +0000")
    );

    let carol = &blocks[2];
    assert_eq!(
        names(carol),
        ["Final-Recipient", "Action", "Status", "Diagnostic-Code"]
    );
    assert_eq!(field(carol, "Status"), Some("5.2.2"));
    assert!(part_text(top_parts(&msg)[0]).contains("Reason: mailbox full"));
}

#[test]
fn no_envid_no_orcpt_no_optional_fields() {
    let rcpts = [rcpt("bob@example.com", Action::Failed, "5.1.1")];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    let s = text(&out);
    assert!(!s.contains("Original-Envelope-Id"));
    assert!(!s.contains("Original-Recipient"));
    assert!(!s.contains("Remote-MTA"));
    assert!(!s.contains("Diagnostic-Code"));
    assert!(!s.contains("Last-Attempt-Date"));
    assert!(!s.contains("Will-Retry-Until"));
    let msg = MessageParser::new().parse(&out).unwrap();
    let blocks = status_blocks(&msg);
    assert_eq!(names(&blocks[1]), ["Final-Recipient", "Action", "Status"]);
}

#[test]
fn ret_full_returns_the_whole_original() {
    let rcpts = [failed_bob()];
    let (out, summary) = render(&input(&rcpts, ReturnContent::Full));
    assert!(summary.full_returned);
    let msg = MessageParser::new().parse(&out).unwrap();
    let parts = top_parts(&msg);
    assert_eq!(parts.len(), 3);
    assert_eq!(ctype(parts[2]), "message/rfc822");
    let PartType::Message(inner) = &parts[2].body else {
        panic!("expected a nested message");
    };
    assert_eq!(inner.subject(), Some("Quarterly report"));
    assert_eq!(inner.message_id(), Some("orig-1@example.org"));
    let body = inner.body_text(0).expect("body");
    assert!(body.contains("THE-SECRET-BODY-LINE"));
    // Byte-exact copy of a well-formed CRLF original.
    assert!(text(&out).contains(ORIGINAL));
    assert!(part_text(parts[0]).contains("The original message is attached."));
}

#[test]
fn ret_full_too_large_falls_back_to_headers() {
    let rcpts = [failed_bob()];
    let mut inp = input(&rcpts, ReturnContent::Full);
    inp.original_size = FULL_RETURN_LIMIT + 1;
    let (out, summary) = render(&inp);
    assert!(!summary.full_returned);
    let msg = MessageParser::new().parse(&out).unwrap();
    let parts = top_parts(&msg);
    assert_eq!(ctype(parts[2]), "text/rfc822-headers");
    assert!(!text(&out).contains("THE-SECRET-BODY-LINE"));
    assert!(part_text(parts[0]).contains("too large to return in full"));
}

#[test]
fn headers_mode_reads_nothing_past_the_header_block() {
    struct Explodes;
    impl Read for Explodes {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("read past the header block"))
        }
    }
    let head_end = ORIGINAL.find("\r\n\r\n").unwrap() + 4;
    let reader =
        BufReader::new(Cursor::new(ORIGINAL.as_bytes()[..head_end].to_vec()).chain(Explodes));
    let rcpts = [failed_bob()];
    let mut out = Vec::new();
    write_report(&input(&rcpts, ReturnContent::Headers), reader, &mut out).unwrap();
    check_lines(&out);

    // With RET=FULL the reader's error surfaces.
    let reader =
        BufReader::new(Cursor::new(ORIGINAL.as_bytes()[..head_end].to_vec()).chain(Explodes));
    let err = write_report(&input(&rcpts, ReturnContent::Full), reader, Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "read past the header block");
}

#[test]
fn delay_notice() {
    let rcpts = [RecipientReport {
        diagnostic: Some("421 4.4.1 mx1.example.com: connection timed out".into()),
        remote_mta: Some("mx1.example.com".into()),
        last_attempt: Some(t(9, 59)),
        will_retry_until: Some(Utc.with_ymd_and_hms(2024, 3, 10, 9, 0, 0).unwrap()),
        ..rcpt("bob@example.com", Action::Delayed, "4.4.1")
    }];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Delivery delayed: Quarterly report"));
    let human = part_text(top_parts(&msg)[0]);
    assert!(human.contains("This is only a warning"), "{human}");
    assert!(human.contains("Delivery to the following recipient(s) has been delayed:"));
    assert!(human.contains("<mx.bridgehead.test #4.4.1>"));
    assert!(human.contains("not responding"));
    let unwrapped = human.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(unwrapped.contains("will keep trying until Sun, 10 Mar 2024 09:00:00 +0000"));
    let blocks = status_blocks(&msg);
    assert_eq!(field(&blocks[1], "Action"), Some("delayed"));
    assert_eq!(field(&blocks[1], "Status"), Some("4.4.1"));
    assert_eq!(
        field(&blocks[1], "Will-Retry-Until"),
        Some("Sun, 10 Mar 2024 09:00:00 +0000")
    );
}

#[test]
fn expired_failure_with_4_4_7() {
    let rcpts = [rcpt("bob@example.com", Action::Failed, "4.4.7")];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: Quarterly report"));
    let human = part_text(top_parts(&msg)[0]);
    assert!(human.contains("<mx.bridgehead.test #4.4.7>"));
    assert!(human.contains("stopped trying"));
    // Will-Retry-Until is only for delayed recipients.
    let rcpts = [RecipientReport {
        will_retry_until: Some(t(11, 0)),
        ..rcpt("bob@example.com", Action::Failed, "4.4.7")
    }];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    assert!(!text(&out).contains("Will-Retry-Until"));
}

#[test]
fn success_subjects() {
    let cases = [
        (
            vec![rcpt("bob@example.com", Action::Delivered, "2.0.0")],
            "Delivered: Quarterly report",
        ),
        (
            vec![rcpt("bob@example.com", Action::Relayed, "2.0.0")],
            "Relayed: Quarterly report",
        ),
        (
            vec![
                rcpt("bob@example.com", Action::Relayed, "2.0.0"),
                rcpt("carol@example.com", Action::Delivered, "2.0.0"),
            ],
            "Delivered: Quarterly report",
        ),
        (
            vec![rcpt("list@example.com", Action::Expanded, "2.0.0")],
            "Delivered: Quarterly report",
        ),
    ];
    for (rcpts, subject) in cases {
        let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
        let msg = MessageParser::new().parse(&out).unwrap();
        assert_eq!(msg.subject(), Some(subject));
        let human = part_text(top_parts(&msg)[0]);
        assert!(!human.contains("could not be reached"));
        assert!(human.contains("<mx.bridgehead.test #2.0.0>"));
        let blocks = status_blocks(&msg);
        assert_eq!(field(&blocks[1], "Action"), Some(rcpts[0].action.as_str()));
    }
}

#[test]
fn mixed_kinds_are_grouped() {
    let rcpts = [
        rcpt("late@example.com", Action::Delayed, "4.4.1"),
        failed_bob(),
    ];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: Quarterly report"));
    let human = part_text(top_parts(&msg)[0]);
    let failed_at = human.find("could not be reached").unwrap();
    let delayed_at = human.find("has been delayed").unwrap();
    assert!(failed_at < delayed_at);
    // The machine-readable part keeps the caller's order.
    let blocks = status_blocks(&msg);
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        Some("rfc822; late@example.com")
    );
    assert_eq!(
        field(&blocks[2], "Final-Recipient"),
        Some("rfc822; bob@example.com")
    );
}

#[test]
fn invalid_status_is_replaced_by_a_generic_one() {
    let rcpts = [
        rcpt("a@example.com", Action::Failed, "550"),
        rcpt("b@example.com", Action::Delayed, "x.y.z\r\nBcc: evil"),
        rcpt("c@example.com", Action::Delivered, ""),
        rcpt("d@example.com", Action::Failed, " 5.1.10 "),
    ];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    let msg = MessageParser::new().parse(&out).unwrap();
    let blocks = status_blocks(&msg);
    let statuses: Vec<_> = blocks[1..]
        .iter()
        .map(|b| field(b, "Status").unwrap())
        .collect();
    assert_eq!(statuses, ["5.0.0", "4.0.0", "2.0.0", "5.1.10"]);
    assert!(!text(&out).contains("Bcc"));
}

#[test]
fn hostile_diagnostic_cannot_inject() {
    let rcpts = [RecipientReport {
        diagnostic: Some(
            "550 no\r\nBcc: victim@example.net\r\n\r\n--=_bh_dsn_fake\r\nContent-Type: text/html\r\n\r\n<b>x</b>\n\rX-Evil: 1\u{2028}X-Evil2: 2\0"
                .into(),
        ),
        remote_mta: Some("mx.example.com\r\nX-Injected: yes".into()),
        original_recipient: Some("rfc822;bob@example.com\r\nX-Orcpt-Injected: yes".into()),
        ..rcpt("bob@example.com\r\nX-Rcpt-Injected: yes", Action::Failed, "5.7.1")
    }];
    let mut inp = input(&rcpts, ReturnContent::Headers);
    inp.envid = Some("id\r\nX-Envid-Injected: yes");
    inp.reporting_mta = "mx.bridgehead.test\r\nX-Mta-Injected: yes";
    inp.to = "alice@example.org>\r\nBcc: <victim@example.net";
    let (out, _) = render(&inp);
    let s = text(&out);
    for line in s.split("\r\n") {
        for bad in [
            "Bcc:",
            "X-Evil",
            "X-Injected",
            "X-Orcpt-Injected",
            "X-Rcpt-Injected",
            "X-Envid-Injected",
            "X-Mta-Injected",
            "Content-Type: text/html",
        ] {
            assert!(!line.starts_with(bad), "injected line {line:?}");
        }
    }
    assert!(!s.contains('\0'));
    let msg = MessageParser::new().parse(&out).unwrap();
    assert!(msg.header_raw("Bcc").is_none());
    assert_eq!(
        msg.to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.contains('\n')),
        Some(false)
    );
    let parts = top_parts(&msg);
    assert_eq!(parts.len(), 3);
    let blocks = status_blocks(&msg);
    assert_eq!(blocks.len(), 2);
    let diag = field(&blocks[1], "Diagnostic-Code").unwrap();
    assert!(
        diag.starts_with("smtp; 550 no Bcc: victim@example.net --=_bh_dsn_fake"),
        "{diag}"
    );
}

#[test]
fn long_diagnostics_are_folded_or_cut() {
    // Words: folded at spaces, readable when unfolded.
    let words = (0..400)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    // One huge token: must be split, never a line over 998.
    let token = "x".repeat(50_000);
    let rcpts = [
        RecipientReport {
            diagnostic: Some(format!("550 5.7.1 {words}")),
            ..rcpt("a@example.com", Action::Failed, "5.7.1")
        },
        RecipientReport {
            diagnostic: Some(token.clone()),
            remote_mta: Some("h".repeat(5000)),
            ..rcpt(
                &format!("{}@example.com", "l".repeat(5000)),
                Action::Failed,
                "5.1.1",
            )
        },
    ];
    let (out, _) = render(&input(&rcpts, ReturnContent::Headers));
    assert!(out.len() < 40_000, "diagnostics are capped: {}", out.len());
    let msg = MessageParser::new().parse(&out).unwrap();
    let blocks = status_blocks(&msg);
    let d1 = field(&blocks[1], "Diagnostic-Code").unwrap();
    assert!(d1.starts_with("smtp; 550 5.7.1 word0 word1"));
    assert!(d1.len() <= DIAGNOSTIC_MAX + 10);
    let ds = part_text(top_parts(&msg)[1]);
    // Folded lines are short when there are spaces to fold at.
    let first_long = ds
        .split("\r\n")
        .find(|l| l.starts_with("Diagnostic-Code"))
        .unwrap();
    assert!(first_long.len() <= 78);
    assert_eq!(
        field(&blocks[2], "Remote-MTA").map(str::len),
        Some("dns; ".len() + 255)
    );
}

#[test]
fn subject_handling() {
    let rcpts = [failed_bob()];
    // Missing subject.
    let original = "From: a@example.org\r\nTo: b@example.com\r\n\r\nbody\r\n";
    let (out, _) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: (no subject)"));

    // Folded, encoded-word subject: kept raw on one line in the header, decoded in the text.
    let original = "Subject: =?utf-8?B?w4lsw6l2ZQ==?=\r\n =?utf-8?Q?_r=C3=A9sultats?=\r\nFrom: a@example.org\r\n\r\nbody\r\n";
    let (out, _) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    let s = text(&out);
    let subject_line = s.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert_eq!(
        subject_line.trim_end(),
        "Subject: Undeliverable: =?utf-8?B?w4lsw6l2ZQ==?= =?utf-8?Q?_r=C3=A9sultats?="
    );
    let msg = MessageParser::new().parse(&out).unwrap();
    let h = part_text(top_parts(&msg)[0]);
    // The encoded words spell "Éléve" (C3 89 6C C3 A9 76 65).
    assert!(h.contains("Subject: Éléve résultats"), "{h}");

    // Long subject: cut to 200 characters.
    let long = "é".repeat(300);
    let original = format!("Subject: {long}\r\n\r\nbody\r\n");
    let (out, summary) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    assert!(summary.eight_bit);
    let msg = MessageParser::new().parse(&out).unwrap();
    let subject = msg.subject().unwrap();
    assert_eq!(subject, format!("Undeliverable: {}", "é".repeat(200)));

    // A long run of encoded-words is not cut inside one.
    let words = "=?utf-8?Q?abcdefghij?= ".repeat(20);
    let original = format!("Subject: {words}\r\n\r\nbody\r\n");
    let (out, _) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    let s = text(&out).replace("\r\n ", " ");
    let line = s.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert!(line.trim_end().ends_with("?="), "{line}");

    // Control characters inside the subject are flattened.
    let original = "Subject: a\rBcc: evil@example.net\r\n\r\nbody\r\n";
    let (out, _) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    let msg = MessageParser::new().parse(&out).unwrap();
    assert!(msg.header_raw("Bcc").is_none());
}

#[test]
fn non_ascii_addresses_use_the_utf8_address_type() {
    let rcpts = [RecipientReport {
        original_recipient: Some("utf-8;Jürgen@bücher.example".into()),
        diagnostic: Some("550 5.1.1 Benutzer unbekannt: jürgen".into()),
        ..rcpt("jürgen@bücher.example", Action::Failed, "5.1.1")
    }];
    let (out, summary) = render(&input(&rcpts, ReturnContent::Headers));
    assert!(summary.eight_bit, "the human part shows the address as is");
    let msg = MessageParser::new().parse(&out).unwrap();
    let parts = top_parts(&msg);
    let ds = part_text(parts[1]);
    assert!(ds.is_ascii(), "message/delivery-status stays ASCII");
    let blocks = status_blocks(&msg);
    assert_eq!(
        field(&blocks[1], "Final-Recipient"),
        Some("utf-8; j\\x{FC}rgen@b\\x{FC}cher.example")
    );
    assert_eq!(
        field(&blocks[1], "Original-Recipient"),
        Some("utf-8; J\\x{FC}rgen@b\\x{FC}cher.example")
    );
    assert_eq!(
        field(&blocks[1], "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 Benutzer unbekannt: j\\x{FC}rgen")
    );
    assert!(part_text(parts[0]).contains("jürgen@bücher.example"));
    assert_eq!(parts[0].content_transfer_encoding(), Some("8bit"));
}

#[test]
fn original_is_normalized_while_streamed() {
    let long_header = format!("X-Long: {}\n", "h".repeat(3000));
    let long_body = "b".repeat(2500);
    let original = format!(
        "Subject: lf only\n{long_header}From: a@example.org\n\nline one\nbare\rcr\n{long_body}\nünïcødé {}\nno final newline",
        "ü".repeat(600)
    );
    let rcpts = [failed_bob()];
    let mut inp = input(&rcpts, ReturnContent::Full);
    inp.original_size = original.len() as u64;
    let (out, summary) = render_with(&inp, original.as_bytes());
    assert!(summary.eight_bit);
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: lf only"));
    let parts = top_parts(&msg);
    let PartType::Message(inner) = &parts[2].body else {
        panic!("nested message");
    };
    // The long header was folded, so it unfolds back (with the added folds' spaces).
    let x_long = inner.header_raw("X-Long").unwrap();
    assert_eq!(x_long.chars().filter(|&c| c == 'h').count(), 3000);
    assert_eq!(
        inner.header_raw("From").map(str::trim),
        Some("a@example.org")
    );
    let body = inner.body_text(0).unwrap();
    assert!(body.contains("line one\r\nbare\r\ncr\r\n"));
    assert_eq!(body.chars().filter(|&c| c == 'b').count(), 2500 + 1);
    assert_eq!(body.chars().filter(|&c| c == 'ü').count(), 601);
    assert!(body.contains("no final newline"));
}

#[test]
fn huge_header_block_is_capped() {
    let mut original = String::from("Subject: big\r\n");
    for i in 0..5000 {
        original.push_str(&format!("X-Filler-{i}: {}\r\n", "f".repeat(30)));
    }
    original.push_str("\r\nTHE-SECRET-BODY-LINE\r\n");
    assert!(original.len() > 2 * HEADER_CAP);
    let rcpts = [failed_bob()];
    let (out, _) = render_with(&input(&rcpts, ReturnContent::Headers), original.as_bytes());
    assert!(out.len() < HEADER_CAP + 8 * 1024, "{}", out.len());
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Undeliverable: big"));
    let returned = part_text(top_parts(&msg)[2]);
    // Cut at a field boundary.
    assert!(returned.trim_end().ends_with(&"f".repeat(30)));
    assert!(!text(&out).contains("THE-SECRET-BODY-LINE"));

    // With RET=FULL the whole thing streams through.
    let mut inp = input(&rcpts, ReturnContent::Full);
    inp.original_size = original.len() as u64;
    let (out, _) = render_with(&inp, original.as_bytes());
    assert!(text(&out).contains(&original));
}

#[test]
fn large_original_streams_in_full() {
    // ~4 MB, read through a small buffer.
    let mut original = String::from("Subject: large\r\n\r\n");
    let line = format!("{}\r\n", "0123456789".repeat(7));
    while original.len() < 4 * 1024 * 1024 {
        original.push_str(&line);
    }
    let rcpts = [failed_bob()];
    let mut inp = input(&rcpts, ReturnContent::Full);
    inp.original_size = original.len() as u64;
    let (out, summary) = render_with(&inp, original.as_bytes());
    assert!(summary.full_returned);
    assert!(!summary.eight_bit);
    assert!(out.len() > original.len());
    assert!(text(&out).contains(&original));
}

#[test]
fn bad_input_is_refused() {
    let rcpts: [RecipientReport; 0] = [];
    let err = write_report(
        &input(&rcpts, ReturnContent::Headers),
        ORIGINAL.as_bytes(),
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    let rcpts = [failed_bob()];
    let mut inp = input(&rcpts, ReturnContent::Headers);
    inp.to = "";
    let err = write_report(&inp, ORIGINAL.as_bytes(), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    inp.to = "<>";
    assert!(write_report(&inp, ORIGINAL.as_bytes(), Vec::new()).is_err());
}

#[test]
fn empty_original() {
    let rcpts = [failed_bob()];
    for ret in [ReturnContent::Headers, ReturnContent::Full] {
        let mut inp = input(&rcpts, ret);
        inp.original_size = 0;
        let (out, _) = render_with(&inp, b"");
        let msg = MessageParser::new().parse(&out).unwrap();
        assert_eq!(top_parts(&msg).len(), 3);
        assert_eq!(msg.subject(), Some("Undeliverable: (no subject)"));
    }
}

#[test]
fn message_ids_and_boundaries_are_unique() {
    let rcpts = [failed_bob()];
    let (a, sa) = render(&input(&rcpts, ReturnContent::Headers));
    let (b, sb) = render(&input(&rcpts, ReturnContent::Headers));
    assert_ne!(sa.message_id, sb.message_id);
    let ba = MessageParser::new()
        .parse(&a)
        .unwrap()
        .root_part()
        .content_type()
        .unwrap()
        .attribute("boundary")
        .unwrap()
        .to_string();
    let bb = MessageParser::new()
        .parse(&b)
        .unwrap()
        .root_part()
        .content_type()
        .unwrap()
        .attribute("boundary")
        .unwrap()
        .to_string();
    assert_ne!(ba, bb);
    assert!(ba.len() <= 70);
}

// ---------------------------------------------------------------------------
// is_report

#[test]
fn a_generated_dsn_is_a_report() {
    let rcpts = [failed_bob()];
    for ret in [ReturnContent::Headers, ReturnContent::Full] {
        let (out, _) = render(&input(&rcpts, ret));
        assert!(is_report(&out));
        // Also from its header block alone.
        let end = text(&out).find("\r\n\r\n").unwrap();
        assert!(is_report(&out[..end + 2]));
    }
}

#[test]
fn a_normal_message_is_not_a_report() {
    assert!(!is_report(ORIGINAL.as_bytes()));
    assert!(!is_report(b""));
    assert!(!is_report(
        b"Subject: multipart/report; report-type=delivery-status\r\n\r\n"
    ));
    assert!(!is_report(b"Auto-Submitted: no\r\nSubject: hi\r\n\r\n"));
    assert!(!is_report(
        b"Auto-Submitted: No (a human wrote this)\r\n\r\n"
    ));
    assert!(!is_report(
        b"Content-Type: multipart/mixed; boundary=\"report-type=delivery-status\"\r\n\r\n"
    ));
    // Only the header block counts.
    assert!(!is_report(
        b"Subject: hi\r\n\r\nContent-Type: multipart/report; report-type=delivery-status\r\n"
    ));
    // Other report types (e.g. ARF abuse reports) may be bounced.
    assert!(!is_report(
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n"
    ));
}

#[test]
fn report_variants_are_recognized() {
    let cases: [&[u8]; 9] = [
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n",
        b"content-type: Multipart/Report;\r\n\tboundary=\"abc\";\r\n\tREPORT-TYPE=\"Delivery-Status\"\r\n\r\nbody",
        b"Content-Type: multipart/report (dsn); report-type = global-delivery-status\n\n",
        b"Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n",
        b"Content-Type: message/delivery-status\r\n\r\n",
        b"Auto-Submitted: auto-replied\r\n\r\n",
        b"Auto-Submitted: auto-generated\r\n\r\n",
        b"AUTO-SUBMITTED:\r\n auto-notified; owner-email=\"me@example.com\"\r\n\r\n",
        b"From: x\r\nAuto-Submitted: auto-replied (vacation)\r\n",
    ];
    for case in cases {
        assert!(is_report(case), "{:?}", text(case));
    }
}

// ---------------------------------------------------------------------------
// explanation

#[test]
fn explanation_covers_the_seed_codes() {
    let required = [
        "5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.2.2", "5.2.3", "5.3.0",
        "5.3.4", "5.3.5", "5.4.0", "5.4.4", "5.4.6", "5.4.7", "5.4.8", "5.5.0", "5.6.3", "5.7.0",
        "5.7.1", "4.4.1", "4.4.2", "4.4.7", "4.2.2", "4.3.1",
    ];
    let mut seen = std::collections::HashSet::new();
    for code in required {
        let e = explanation(code);
        assert!(e.len() > 40, "{code}: {e}");
        assert_ne!(
            e,
            super::explain::by_subject_for_test(code),
            "{code} has its own text"
        );
        assert!(seen.insert(e), "{code} shares its text");
        assert!(
            !e.contains('\n') && !e.contains("  "),
            "{code}: one paragraph: {e:?}"
        );
        assert!(e.ends_with('.'), "{code}");
    }
    assert!(explanation("5.1.1").contains("could not be found"));
    assert!(explanation("5.1.1").contains("Check the address and try again"));
    assert!(explanation("5.4.6").contains("bounce between two servers"));
    assert!(explanation("5.2.2").contains("full"));
}

#[test]
fn explanation_falls_back_by_class_and_subject() {
    assert!(explanation("4.4.99").contains("temporary network or routing problem"));
    assert!(explanation("4.9.9").contains("temporary problem"));
    assert!(explanation("5.1.99").contains("address"));
    assert!(explanation("5.2.99").contains("mailbox"));
    assert!(explanation("5.3.99").contains("mail system"));
    assert!(explanation("5.4.99").contains("routed"));
    assert!(explanation("5.5.99").contains("protocol"));
    assert!(explanation("5.6.99").contains("content"));
    assert!(explanation("5.7.99").contains("security"));
    assert!(explanation("2.1.5").contains("delivered"));
    assert!(explanation("2.9.9").contains("successfully"));
    let generic = explanation("garbage");
    assert_eq!(explanation(""), generic);
    assert_eq!(explanation("3.1.1"), generic);
    assert_eq!(explanation("5.1"), generic);
    assert_eq!(explanation("5.1.1.1"), generic);
    assert_eq!(explanation("5.x.1"), generic);
    assert_eq!(explanation("5.9.9"), generic);
    // Trailing text after the code is ignored.
    assert_eq!(explanation(" 5.1.1 user unknown"), explanation("5.1.1"));
}

// ---------------------------------------------------------------------------
// stream helpers

fn normalize(input: &[u8]) -> Vec<u8> {
    let mut n = Normalizer::new();
    let mut out = Vec::new();
    // Feed in awkward pieces to exercise state across chunks.
    for piece in input.chunks(7) {
        n.feed(piece, &mut out).unwrap();
    }
    n.finish(&mut out).unwrap();
    out
}

#[test]
fn normalizer_line_endings() {
    assert_eq!(normalize(b"a\r\nb\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
    assert_eq!(normalize(b"a\r\n\r\nb\r\n"), b"a\r\n\r\nb\r\n");
    assert_eq!(normalize(b"\r\r\n\n"), b"\r\n\r\n\r\n");
    assert_eq!(normalize(b""), b"");
}

#[test]
fn normalizer_breaks_long_lines_without_splitting_utf8() {
    let header = format!("X: {}\r\n\r\n", "é".repeat(1200));
    let body = "€".repeat(1000);
    let out = normalize(format!("{header}{body}").as_bytes());
    check_lines(&out);
    let s = String::from_utf8(out).expect("still valid UTF-8");
    let (h, b) = s.split_once("\r\n\r\n").unwrap();
    // Header continuation lines start with a space.
    for cont in h.split("\r\n").skip(1) {
        assert!(cont.starts_with(' '));
    }
    assert_eq!(h.matches('é').count(), 1200);
    assert_eq!(b.matches('€').count(), 1000);
    assert!(b.split("\r\n").all(|l| !l.starts_with(' ')));
}

#[test]
fn read_head_stops_after_the_header_block() {
    let mut r = Cursor::new(b"A: 1\r\nB: 2\r\n\r\nbody\r\n".to_vec());
    let head = read_head(&mut r, HEADER_CAP).unwrap();
    assert_eq!(&head.raw[..head.header_len], b"A: 1\r\nB: 2\r\n");
    assert_eq!(head.raw, b"A: 1\r\nB: 2\r\n\r\n");
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "body\r\n");

    // No header block at all.
    let mut r = Cursor::new(b"\r\nbody".to_vec());
    let head = read_head(&mut r, HEADER_CAP).unwrap();
    assert_eq!(head.header_len, 0);

    // Cap reached inside a folded field: cut before that field.
    let mut r = Cursor::new(b"A: 1\r\nB: 2\r\n 3\r\n 4\r\n\r\n".to_vec());
    let head = read_head(&mut r, 16).unwrap();
    assert_eq!(&head.raw[..head.header_len], b"A: 1\r\n");
}
