//! End-to-end: receive connectors over real sockets, with real clients we did not
//! write (swaks, Python smtplib, Postfix's smtp-source) and a raw socket for the
//! protocol abuse cases.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const PASSWORD: &str = "alice-secret-pw";

/// A server with example.com, the mailbox alice@example.com (with a password)
/// and the group sales@example.com (authenticated senders only).
fn setup(dir: &Path) -> Server {
    let ok = |args: &[&str]| {
        let o = cli(dir, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    ok(&["accepted-domain", "new", "example.com", "--default"]);
    let o = cli_stdin(
        dir,
        &[
            "mailbox",
            "new",
            "alice@example.com",
            "--name",
            "Alice Smith",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    ok(&[
        "group",
        "new",
        "sales@example.com",
        "--member",
        "alice@example.com",
        "--only-authenticated-senders",
    ]);
    // These tests look at what the receive side queued (rows and spool files),
    // so the categorizer holds everything in the Submission queue.
    ok(&["queue", "suspend", "submission"]);
    Server::start(dir, &[])
}

fn port(s: &Server, i: usize) -> String {
    format!("127.0.0.1:{}", s.smtp[i])
}

fn queued_count(dir: &Path) -> usize {
    sql(dir, "SELECT COUNT(*) FROM messages")
        .parse()
        .unwrap_or(0)
}

/// Changes made by the CLI reach the server within 2 s; wait for that.
fn cli_ok_and_wait(s: &Server, args: &[&str]) {
    let before = s.healthz()["directory_version"].as_i64().unwrap_or(0);
    let o = cli(&s.dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    assert!(
        eventually(3, || s.healthz()["directory_version"].as_i64().unwrap_or(0)
            > before),
        "server did not reload"
    );
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn accepts_mail_for_a_local_mailbox_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 0),
        "--from",
        "sender@elsewhere.test",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: hello there",
        "--header",
        "Message-Id: <m1@elsewhere.test>",
        "--body",
        "first message",
        "--pipeline",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.6.0"), "{out}");
    // Queued with its envelope, a RECEIVE tracking event, and a spool file that
    // starts with our Received header.
    let row = sql(
        tmp.path(),
        "SELECT id, sender, message_id, subject, source FROM messages",
    );
    let fields: Vec<&str> = row.split('|').collect();
    assert_eq!(
        fields[1..],
        [
            "sender@elsewhere.test",
            "<m1@elsewhere.test>",
            "hello there",
            "Default Internet"
        ],
        "{row}"
    );
    let id = fields[0];
    assert!(out.contains(id), "the 250 names the queue id {id}: {out}");
    assert_eq!(
        sql(tmp.path(), "SELECT address FROM recipients"),
        "alice@example.com"
    );
    let ev = sql(
        tmp.path(),
        &format!("SELECT event, recipients FROM tracking_events WHERE queue_id = '{id}'"),
    );
    assert_eq!(ev, "RECEIVE|alice@example.com");
    let body = std::fs::read_to_string(tmp.path().join("data/spool/msg").join(id)).unwrap();
    assert!(body.starts_with("Received: from "), "{body}");
    assert!(
        body.contains("by mail.test (Bridgehead) with ESMTP"),
        "{body}"
    );
    assert!(body.contains("first message"));
}

#[test]
fn unknown_user_and_relay_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 0),
        "--from",
        "a@elsewhere.test",
        "--to",
        "nobody@example.com",
    ]);
    assert_eq!(code, 24, "{out}");
    assert!(out.contains("550 5.1.1"), "{out}");
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 0),
        "--from",
        "a@elsewhere.test",
        "--to",
        "victim@other.test",
    ]);
    assert_eq!(code, 24, "{out}");
    assert!(out.contains("550 5.7.1"), "{out}");
    // Groups that take only authenticated senders refuse anonymous mail.
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 0),
        "--from",
        "a@elsewhere.test",
        "--to",
        "sales@example.com",
    ]);
    assert_eq!(code, 24, "{out}");
    assert_eq!(queued_count(tmp.path()), 0);
}

#[test]
fn submission_requires_starttls_then_auth_and_then_relays() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    // Before STARTTLS, AUTH is neither offered nor accepted.
    let mut raw = RawSmtp::start(s.smtp[1]);
    let (_, ehlo) = raw.cmd("EHLO client.test");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let (code, text) = raw.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldC1wdw==");
    assert_eq!(code, 530, "{text}");
    let (code, _) = raw.cmd("MAIL FROM:<alice@example.com>");
    assert_eq!(code, 530, "anonymous submission refused");

    for mech in ["PLAIN", "LOGIN"] {
        let (code, out) = swaks(&[
            "--server",
            &port(&s, 1),
            "--tls",
            "--auth",
            mech,
            "--auth-user",
            "alice@example.com",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.com",
            "--to",
            "someone@other.test",
            "--pipeline",
        ]);
        assert_eq!(code, 0, "{mech}: {out}");
        assert!(out.contains("235 2.7.0"), "{out}");
    }
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 1),
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        "wrong-password",
        "--to",
        "someone@other.test",
    ]);
    assert_eq!(code, 28, "{out}");
    assert!(out.contains("535 5.7.8"), "{out}");
    assert_eq!(queued_count(tmp.path()), 2);
    let body_id = sql(tmp.path(), "SELECT id FROM messages LIMIT 1");
    let body = std::fs::read_to_string(tmp.path().join("data/spool/msg").join(body_id)).unwrap();
    assert!(
        body.contains("with ESMTPSA") && body.contains("version=TLSv1.3"),
        "{body}"
    );
    assert!(
        body.contains("Authenticated sender: alice@example.com"),
        "{body}"
    );
}

#[test]
fn implicit_tls_on_the_submissions_port() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 2),
        "--tls-on-connect",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        PASSWORD,
        "--from",
        "alice@example.com",
        "--to",
        "bob@other.test",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.6.0"), "{out}");
}

#[test]
fn python_smtplib_and_smtp_source_interoperate() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let script = format!(
        r#"
import smtplib, ssl
from email.message import EmailMessage
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = EmailMessage(); m["From"] = "alice@example.com"; m["To"] = "alice@example.com"; m["Subject"] = "smtplib"
m.set_content("hello from smtplib\n.leading dot line\n")
with smtplib.SMTP("127.0.0.1", {p}) as c:
    c.starttls(context=ctx); c.login("alice@example.com", "{pw}")
    refused = c.send_message(m)
    assert refused == {{}}, refused
print("ok")
"#,
        p = s.smtp[1],
        pw = PASSWORD
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = sql(
        tmp.path(),
        "SELECT id FROM messages WHERE subject = 'smtplib'",
    );
    let body = std::fs::read_to_string(tmp.path().join("data/spool/msg").join(&id)).unwrap();
    assert!(
        body.contains("\r\n.leading dot line\r\n"),
        "dot-unstuffed: {body}"
    );

    // 10 concurrent sessions, 200 messages.
    let out = Command::new("smtp-source")
        .args([
            "-s",
            "10",
            "-m",
            "200",
            "-l",
            "2048",
            "-f",
            "load@elsewhere.test",
            "-t",
            "alice@example.com",
        ])
        .arg(port(&s, 0))
        .output()
        .expect("smtp-source is installed by .ci/run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sql(
            tmp.path(),
            "SELECT COUNT(*) FROM messages WHERE sender = 'load@elsewhere.test'"
        ),
        "200"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("data/spool/msg"))
            .unwrap()
            .count(),
        201
    );
}

#[test]
fn size_and_recipient_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let o = cli(
        tmp.path(),
        &["mailbox", "new", "bob@example.com", "--name", "Bob"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "set",
            "Default Internet",
            "--max-message-size-mb",
            "1",
            "--max-recipients",
            "2",
        ],
    );
    let mut raw = RawSmtp::start(s.smtp[0]);
    let (_, ehlo) = raw.cmd("EHLO client.test");
    assert!(ehlo.contains("SIZE 1048576"), "{ehlo}");
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test> SIZE=2000000").0, 552);
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
    assert_eq!(raw.cmd("RCPT TO:<nobody@example.com>").0, 550);
    assert_eq!(
        raw.cmd("RCPT TO:<Alice@Example.COM>").0,
        250,
        "a duplicate is accepted once"
    );
    assert_eq!(raw.cmd("RCPT TO:<bob@example.com>").0, 250);
    let (code, text) = raw.cmd("RCPT TO:<postmaster@example.com>");
    assert_eq!(code, 452, "{text}");
    assert!(text.contains("4.5.3"));
    assert_eq!(raw.cmd("DATA").0, 354);
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..1100 {
        raw.send(&line);
    }
    let (code, text) = raw.cmd(".");
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("5.3.4"));
    assert_eq!(queued_count(tmp.path()), 0);
    // The session goes on after the refusal.
    assert_eq!(raw.cmd("NOOP").0, 250);
}

#[test]
fn connection_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "set",
            "Default Internet",
            "--max-connections-per-ip",
            "2",
        ],
    );
    let mut a = RawSmtp::connect(s.smtp[0]);
    let mut b = RawSmtp::connect(s.smtp[0]);
    assert_eq!(a.reply().0, 220);
    assert_eq!(b.reply().0, 220);
    let mut c = RawSmtp::connect(s.smtp[0]);
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    drop(a);
    assert!(eventually(3, || {
        let mut d = RawSmtp::connect(s.smtp[0]);
        d.reply().0 == 220
    }));
}

#[test]
fn smtp_smuggling_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    // Each variant tries to end DATA early and smuggle a second message for a
    // recipient the first transaction never named.
    let variants: [&[u8]; 6] = [
        b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r",
    ];
    for (i, v) in variants.iter().enumerate() {
        let mut raw = RawSmtp::start(s.smtp[0]);
        assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
        assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
        assert_eq!(raw.cmd("DATA").0, 354);
        let mut payload = b"Subject: first\r\n\r\nhello".to_vec();
        payload.extend_from_slice(v);
        payload.extend_from_slice(b"MAIL FROM:<smuggler@elsewhere.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
        raw.send_bytes(&payload);
        let (code, text) = raw.reply();
        assert_eq!(code, 550, "variant {i}: {text}");
        assert!(text.contains("5.5.2"), "variant {i}: {text}");
        assert_eq!(
            raw.cmd("QUIT").0,
            221,
            "variant {i}: in sync after the refusal"
        );
    }
    assert_eq!(
        queued_count(tmp.path()),
        0,
        "nothing queued, nothing smuggled"
    );
}

#[test]
fn bdat_with_bare_line_endings_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    // BDAT cannot be smuggled into (its chunks have a length), but the stored
    // message may leave again over DATA, where `\r.\r` and the like could end
    // the data at the next hop: the same bytes DATA refuses are refused here.
    let variants: [&[u8]; 8] = [
        b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n", b"\r",
    ];
    for (i, v) in variants.iter().enumerate() {
        let mut raw = RawSmtp::start(s.smtp[0]);
        assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
        assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
        let mut chunk = b"Subject: first\r\n\r\nhello".to_vec();
        chunk.extend_from_slice(v);
        chunk.extend_from_slice(b"MAIL FROM:<smuggler@elsewhere.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n");
        let mut payload = format!("BDAT {} LAST\r\n", chunk.len()).into_bytes();
        payload.extend_from_slice(&chunk);
        raw.send_bytes(&payload);
        let (code, text) = raw.reply();
        assert_eq!(code, 550, "variant {i}: {text}");
        assert!(text.contains("5.5.2"), "variant {i}: {text}");
        assert_eq!(
            raw.cmd("RCPT TO:<alice@example.com>").0,
            503,
            "variant {i}: the transaction is gone"
        );
        assert_eq!(raw.cmd("QUIT").0, 221, "variant {i}: in sync");
    }

    let mut raw = RawSmtp::start(s.smtp[0]);
    // A bare CR found in a middle chunk: refused at once; the chunks the client
    // pipelined after it are read and answered 503, the session stays usable.
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
    raw.send("BDAT 5\r\nab\rcdBDAT 3 LAST\r\nx\r\n");
    let (code, text) = raw.reply();
    assert_eq!(code, 550, "{text}");
    assert_eq!(raw.reply().0, 503);
    // A message ending in a CR is refused at LAST.
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
    raw.send("BDAT 3 LAST\r\nab\r");
    assert_eq!(raw.reply().0, 550);
    // A CRLF split across two chunks is fine.
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    assert_eq!(raw.cmd("RCPT TO:<alice@example.com>").0, 250);
    raw.send("BDAT 21\r\nSubject: split\r\n\r\nhi\r");
    assert_eq!(raw.reply().0, 250);
    raw.send("BDAT 1 LAST\r\n\n");
    let (code, text) = raw.reply();
    assert_eq!(code, 250, "{text}");
    assert_eq!(raw.cmd("QUIT").0, 221);
    assert_eq!(
        sql(
            tmp.path(),
            "SELECT COUNT(*) FROM tracking_events WHERE event = 'RECEIVE'"
        ),
        "1",
        "only the clean message was queued"
    );
}

#[test]
fn relay_tricks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let mut raw = RawSmtp::start(s.smtp[0]);
    assert_eq!(raw.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    for trick in [
        "<victim%other.test@example.com>",
        "<@example.com:victim@other.test>",
        "<other.test!victim@example.com>",
        "<\"victim@other.test\"@example.com>",
        "<alice@example.com.>",
        "<victim@[192.0.2.1]>",
    ] {
        let (code, text) = raw.cmd(&format!("RCPT TO:{trick}"));
        assert!(code == 550 || code == 501 || code == 553, "{trick}: {text}");
        assert!(code != 250, "{trick}");
    }
    assert_eq!(
        raw.cmd("RCPT TO:<alice@example.com>").0,
        250,
        "a real recipient still works"
    );
}

#[test]
fn anonymous_relay_only_from_the_allowed_ip() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let relay_port = free_port();
    let binding = format!("127.0.0.1:{relay_port}");
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "new",
            "--name",
            "Internal Relay",
            "--binding",
            &binding,
            "--remote-ip",
            "127.0.0.2",
            "--usage",
            "custom",
            "--permission-groups",
            "anonymous",
            "--anonymous-relay",
        ],
    );
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "new",
            "--name",
            "Others",
            "--binding",
            &binding,
            "--usage",
            "internet",
        ],
    );
    // The same binding and remote range twice is refused.
    let o = cli(
        tmp.path(),
        &[
            "receive-connector",
            "new",
            "--name",
            "Dup",
            "--binding",
            &binding,
            "--remote-ip",
            "127.0.0.2/32",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Internal Relay"), "{}", stderr(&o));

    assert!(eventually(3, || std::net::TcpStream::connect((
        "127.0.0.1",
        relay_port
    ))
    .is_ok()));
    let (code, out) = swaks(&[
        "--server",
        &binding,
        "--local-interface",
        "127.0.0.2",
        "--from",
        "app@example.com",
        "--to",
        "someone@other.test",
    ]);
    assert_eq!(code, 0, "relay from 127.0.0.2: {out}");
    let (code, out) = swaks(&[
        "--server",
        &binding,
        "--local-interface",
        "127.0.0.1",
        "--from",
        "app@example.com",
        "--to",
        "someone@other.test",
    ]);
    assert_eq!(code, 24, "no relay from 127.0.0.1: {out}");
    assert!(out.contains("550 5.7.1"), "{out}");
}

#[test]
fn connectors_rebind_live_without_dropping_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let (p1, p2) = (free_port(), free_port());
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "new",
            "--name",
            "Partner",
            "--binding",
            &format!("127.0.0.1:{p1}"),
            "--usage",
            "internet",
        ],
    );
    assert!(
        eventually(3, || std::net::TcpStream::connect(("127.0.0.1", p1))
            .is_ok()),
        "new connector bound"
    );

    // A session open on the old binding survives the move.
    let mut open = RawSmtp::start(p1);
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "set",
            "Partner",
            "--binding",
            &format!("127.0.0.1:{p2}"),
        ],
    );
    assert!(
        eventually(3, || std::net::TcpStream::connect(("127.0.0.1", p2))
            .is_ok()),
        "rebound"
    );
    assert!(
        eventually(3, || std::net::TcpStream::connect(("127.0.0.1", p1))
            .is_err()),
        "old binding closed"
    );
    assert_eq!(open.cmd("MAIL FROM:<a@elsewhere.test>").0, 250);
    assert_eq!(open.cmd("RCPT TO:<alice@example.com>").0, 250);
    assert_eq!(open.cmd("DATA").0, 354);
    assert_eq!(open.cmd("Subject: still here\r\n\r\nbody\r\n.").0, 250);

    cli_ok_and_wait(&s, &["receive-connector", "disable", "Partner"]);
    assert!(
        eventually(3, || std::net::TcpStream::connect(("127.0.0.1", p2))
            .is_err()),
        "disabled connector unbound"
    );
    cli_ok_and_wait(&s, &["receive-connector", "enable", "Partner"]);
    assert!(eventually(3, || std::net::TcpStream::connect((
        "127.0.0.1",
        p2
    ))
    .is_ok()));
    cli_ok_and_wait(&s, &["receive-connector", "remove", "Partner"]);
    assert!(eventually(3, || std::net::TcpStream::connect((
        "127.0.0.1",
        p2
    ))
    .is_err()));
}

#[test]
fn bdat_pipelining_and_protocol_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let mut raw = RawSmtp::start(s.smtp[0]);
    // Pipelined transaction in one write.
    raw.send("MAIL FROM:<a@elsewhere.test>\r\nRCPT TO:<alice@example.com>\r\nBDAT 21\r\nSubject: bdat\r\n\r\nhi\r\n");
    assert_eq!(raw.reply().0, 250);
    assert_eq!(raw.reply().0, 250);
    assert_eq!(raw.reply().0, 250);
    raw.send("BDAT 7 LAST\r\nthere\r\n");
    let (code, text) = raw.reply();
    assert_eq!(code, 250, "{text}");
    assert!(text.contains("2.6.0"));
    let id = sql(tmp.path(), "SELECT id FROM messages WHERE subject = 'bdat'");
    let body = std::fs::read_to_string(tmp.path().join("data/spool/msg").join(id)).unwrap();
    assert!(
        body.ends_with("Subject: bdat\r\n\r\nhi\r\nthere\r\n"),
        "{body}"
    );

    assert_eq!(
        raw.cmd("RCPT TO:<alice@example.com>").0,
        503,
        "out of sequence"
    );
    assert_eq!(raw.cmd("FROB").0, 500);
    let (code, _) = raw.cmd(&format!("NOOP {}", "x".repeat(3000)));
    assert_eq!(code, 500, "line too long");
    assert_eq!(raw.cmd("VRFY alice").0, 252);
    assert_eq!(raw.cmd("MAIL FROM:<>").0, 250, "null sender");
    assert_eq!(raw.cmd("RSET").0, 250);
    assert_eq!(raw.cmd("QUIT").0, 221);
}

/// A body many read buffers long, with the next transaction pipelined right
/// behind its final dot in the same write: the session reads bodies in large
/// chunks and commands in small ones, and must lose nothing when it switches.
#[test]
fn big_body_then_pipelined_transaction_in_one_write() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    let mut raw = RawSmtp::start(s.smtp[0]);
    let line = format!("{}\r\n", "y".repeat(98));
    let big = line.repeat(3000); // 300 000 bytes: several 64 KB reads
    let mut wire = String::new();
    wire.push_str("MAIL FROM:<a@elsewhere.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
    wire.push_str("Subject: big\r\n\r\n");
    wire.push_str(&big);
    wire.push_str(".\r\nMAIL FROM:<b@elsewhere.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
    wire.push_str("Subject: small\r\n\r\nafter the big one\r\n.\r\nQUIT\r\n");
    raw.send(&wire);
    let codes: Vec<u16> = (0..9).map(|_| raw.reply().0).collect();
    assert_eq!(codes, [250, 250, 354, 250, 250, 250, 354, 250, 221]);
    let spool = tmp.path().join("data/spool/msg");
    let big_id = sql(tmp.path(), "SELECT id FROM messages WHERE subject = 'big'");
    let body = std::fs::read_to_string(spool.join(big_id)).unwrap();
    assert!(body.ends_with(&format!("Subject: big\r\n\r\n{big}")));
    let small_id = sql(
        tmp.path(),
        "SELECT id FROM messages WHERE subject = 'small'",
    );
    let body = std::fs::read_to_string(spool.join(small_id)).unwrap();
    assert!(
        body.ends_with("Subject: small\r\n\r\nafter the big one\r\n"),
        "{body}"
    );
}

#[test]
fn protocol_log_never_holds_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "set",
            "Client Submission",
            "--protocol-logging",
            "verbose",
        ],
    );
    let (code, out) = swaks(&[
        "--server",
        &port(&s, 1),
        "--tls",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        PASSWORD,
        "--from",
        "alice@example.com",
        "--to",
        "bob@other.test",
    ]);
    assert_eq!(code, 0, "{out}");
    let dir = tmp.path().join("data/logs/protocol/receive");
    assert!(eventually(5, || std::fs::read_dir(&dir)
        .map(|d| d.count() > 0)
        .unwrap_or(false)));
    let mut text = String::new();
    assert!(
        eventually(5, || {
            text = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect();
            text.contains("QUIT")
        }),
        "{text}"
    );
    assert!(
        text.contains("Client Submission,") && text.contains("EHLO") && text.contains("235 2.7.0"),
        "{text}"
    );
    let b64_pw = "YWxpY2Utc2VjcmV0LXB3"; // base64 of the password
    assert!(
        !text.contains(PASSWORD) && !text.contains(b64_pw),
        "credentials leaked: {text}"
    );
}

#[test]
fn idle_clients_time_out_and_auth_failures_disconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path());
    cli_ok_and_wait(
        &s,
        &[
            "receive-connector",
            "set",
            "Default Internet",
            "--command-timeout",
            "1",
        ],
    );
    let mut idle = RawSmtp::connect(s.smtp[0]);
    assert_eq!(idle.reply().0, 220);
    let (code, text) = idle.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("4.4.2"), "{text}");
    assert!(idle.closed());

    // Three wrong passwords on the implicit-TLS port: 535 each, then 421 and close.
    let script = format!(
        r#"
import smtplib, ssl, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = smtplib.SMTP_SSL("127.0.0.1", {p}, context=ctx)
c.ehlo("client.test")
codes = []
start = time.time()
for i in range(3):
    try:
        c.user, c.password = "alice@example.com", "wrong-%d" % i
        c.auth("PLAIN", c.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        codes.append(e.smtp_code)
    except smtplib.SMTPServerDisconnected:
        codes.append("closed")
codes.append(c.noop()[0])  # the 421 that followed the third 535
try:
    c.noop(); codes.append("open")
except smtplib.SMTPServerDisconnected:
    codes.append("closed")
print(codes, round(time.time() - start, 1))
"#,
        p = s.smtp[2]
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("[535, 535, 535, 421, 'closed']"), "{text}");
    // The tarpit makes each failure slower (0.5 s, 1 s, 1.5 s).
    let secs: f64 = text
        .split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0.0);
    assert!(secs >= 2.5, "tarpit: {secs} s");
}

/// Every message the client saw a 250 for survives `kill -9`, and nothing is
/// half-there: each queued row has its spool file and vice versa.
#[test]
fn nothing_acknowledged_is_lost_on_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = setup(tmp.path());
    let port = s.smtp[0];
    let senders = load(port, 4, 400, "alice@example.com");
    senders.wait_for_acks(40);
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    let acked: Vec<String> = senders.join().into_iter().filter_map(|a| a.id).collect();
    assert!(
        acked.len() > 10,
        "the load ran: {} acknowledged",
        acked.len()
    );

    // Restart (recovery runs), then compare.
    let s2 = Server::start(tmp.path(), &[]);
    let rows: std::collections::HashSet<String> = sql(tmp.path(), "SELECT id FROM messages")
        .lines()
        .map(String::from)
        .collect();
    let files: std::collections::HashSet<String> =
        std::fs::read_dir(tmp.path().join("data/spool/msg"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for id in &acked {
        assert!(rows.contains(id), "acknowledged {id} lost from the queue");
        assert!(files.contains(id), "acknowledged {id} has no spool file");
    }
    for id in &rows {
        assert!(files.contains(id), "queued {id} has no spool file");
    }
    let tmp_left = std::fs::read_dir(tmp.path().join("data/spool/tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp_left, 0, "unfinished transfers are cleaned at start");
    drop(s2);
}
