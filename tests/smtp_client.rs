//! The outbound SMTP client (`delivery::smtp`) against servers we did not
//! write: Postfix's `smtp-sink` and aiosmtpd, on loopback.

mod common;

use common::peers;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridgehead::delivery::smtp::{
    AuthMode, ClientConfig, Connection, OutRecipient, RcptOutcome, TlsMode, Transaction,
};
use bridgehead::protocol_log::ProtocolLog;
use peers::{Aiosmtpd, Pki, SmtpSink};

fn config() -> ClientConfig {
    ClientConfig {
        helo_name: "client.test".into(),
        force_helo: false,
        tls: TlsMode::Opportunistic,
        verify_certificate: false,
        auth: AuthMode::None,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        data_timeout: Duration::from_secs(10),
        protocol_log: None,
        connector_name: "test-connector".into(),
        max_message_size: None,
    }
}

fn with(f: impl FnOnce(&mut ClientConfig)) -> Arc<ClientConfig> {
    let mut c = config();
    f(&mut c);
    Arc::new(c)
}

fn rcpt(address: &str) -> OutRecipient {
    OutRecipient {
        address: address.into(),
        notify: None,
        orcpt: None,
    }
}

/// A spool-style body file.
struct Body {
    _dir: tempfile::TempDir,
    path: PathBuf,
    size: u64,
}

fn body(bytes: &[u8]) -> Body {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg");
    std::fs::write(&path, bytes).unwrap();
    Body {
        _dir: dir,
        path,
        size: bytes.len() as u64,
    }
}

fn tx<'a>(sender: &'a str, recipients: &'a [OutRecipient], b: &'a Body) -> Transaction<'a> {
    Transaction {
        sender,
        recipients,
        body: &b.path,
        size: b.size,
        eight_bit: false,
        smtputf8: false,
        ret: None,
        envid: None,
    }
}

fn simple_body(subject: &str) -> Body {
    body(format!("Subject: {subject}\r\nFrom: a@client.test\r\n\r\nHello.\r\n").as_bytes())
}

async fn open(addr: SocketAddr, cfg: Arc<ClientConfig>) -> Connection {
    Connection::open(addr, "127.0.0.1", cfg)
        .await
        .unwrap_or_else(|e| panic!("open failed: {e}"))
}

fn codes(outcomes: &[RcptOutcome]) -> Vec<(char, u16)> {
    outcomes
        .iter()
        .map(|o| match o {
            RcptOutcome::Delivered(r) => ('D', r.code),
            RcptOutcome::Deferred(r) => ('T', r.code),
            RcptOutcome::Failed(r) => ('F', r.code),
        })
        .collect()
}

// ----- smtp-sink -----

#[tokio::test]
async fn sink_pipelined_delivery_with_dsn_parameters() {
    let sink = SmtpSink::start(&[]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    assert!(c.extensions().pipelining && c.extensions().dsn && c.extensions().eight_bit_mime);
    assert!(!c.is_tls());
    assert_eq!(c.remote_name(), "127.0.0.1");

    let text = "Subject: dsn\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nété 8-bit\r\nend\r\n";
    let b = body(text.as_bytes());
    let rcpts = [
        OutRecipient {
            address: "one@sink.test".into(),
            notify: Some("SUCCESS,FAILURE".into()),
            orcpt: Some("rfc822;One+tag@sink.test".into()),
        },
        OutRecipient {
            address: "two@sink.test".into(),
            notify: Some("NEVER".into()),
            orcpt: None,
        },
        rcpt("three@sink.test"),
    ];
    let mut t = tx("sender@client.test", &rcpts, &b);
    t.eight_bit = true;
    t.ret = Some("HDRS");
    t.envid = Some("env+id=1 x");
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('D', 250), ('D', 250), ('D', 250)]);
    c.quit().await;

    let msgs = sink.messages(1);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.proto, "ESMTP");
    assert_eq!(m.helo.as_deref(), Some("client.test"));
    // smtp-sink offers no SIZE, so none is declared.
    assert_eq!(
        m.mail_args,
        "<sender@client.test> BODY=8BITMIME RET=HDRS ENVID=env+2Bid+3D1+20x"
    );
    assert_eq!(
        m.rcpt_args,
        [
            "<one@sink.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;One+2Btag@sink.test",
            "<two@sink.test> NOTIFY=NEVER",
            "<three@sink.test>",
        ]
    );
    assert_eq!(m.body, text.replace("\r\n", "\n"));
}

#[tokio::test]
async fn sink_several_transactions_on_one_connection() {
    let sink = SmtpSink::start(&[]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let (b1, b2, b3) = (
        simple_body("first"),
        simple_body("second"),
        simple_body("third"),
    );
    let r = [rcpt("x@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b1)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.reset().await.unwrap();
    // A bounce: null reverse path.
    let out = c.send(&tx("", &r, &b2)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    let out = c.send(&tx("c@client.test", &r, &b3)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    assert!(c.is_usable());
    c.quit().await;

    let msgs = sink.messages(3);
    assert_eq!(msgs.len(), 3);
    let mut seen: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            let subject = m.body.lines().next().unwrap_or("").to_string();
            (subject, m.mail_args.clone())
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Subject: first".to_string(), "<a@client.test>".to_string()),
            ("Subject: second".to_string(), "<>".to_string()),
            ("Subject: third".to_string(), "<c@client.test>".to_string()),
        ]
    );
}

#[tokio::test]
async fn sink_soft_rcpt_rejection_defers_without_pipelining() {
    // -r implies -p: no PIPELINING, so this runs the one-by-one path.
    let sink = SmtpSink::start(&["-r", "RCPT"]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    assert!(!c.extensions().pipelining);
    let b = simple_body("soft");
    let r = [rcpt("x@sink.test"), rcpt("y@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('T', 450), ('T', 450)]);
    assert_eq!(
        out[0].reply().to_string(),
        "450 4.3.0 Error: command failed"
    );
    // The connection is still good for another transaction.
    assert!(c.is_usable());
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('T', 450), ('T', 450)]);
    c.quit().await;
    assert!(sink.messages(0).is_empty());
}

#[tokio::test]
async fn sink_hard_rcpt_rejection_fails_with_remote_text() {
    let sink = SmtpSink::start(&[
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 Recipient address rejected: User unknown",
    ]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let b = simple_body("hard");
    let r = [rcpt("x@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 550)]);
    let reply = out[0].reply();
    assert_eq!(
        reply.enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert!(reply.text().contains("User unknown"));
    c.quit().await;
    assert!(sink.messages(0).is_empty());
}

#[tokio::test]
async fn sink_mail_rejection_applies_to_every_recipient() {
    let sink = SmtpSink::start(&["-r", "MAIL"]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let b = simple_body("mail");
    let r = [rcpt("x@sink.test"), rcpt("y@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('T', 450), ('T', 450)]);
    assert!(c.is_usable());
    c.reset().await.unwrap();
    c.quit().await;
}

#[tokio::test]
async fn sink_end_of_data_rejection() {
    let sink = SmtpSink::start(&["-f", "."]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let b = simple_body("final");
    let r = [rcpt("x@sink.test"), rcpt("y@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 500), ('F', 500)]);
    c.quit().await;

    let sink = SmtpSink::start(&["-r", "."]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('T', 450), ('T', 450)]);
    c.quit().await;
}

#[tokio::test]
async fn sink_421_defers_and_retires_the_connection() {
    let sink = SmtpSink::start(&["-Q", "MAIL"]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    let b = simple_body("closing");
    let r = [rcpt("x@sink.test"), rcpt("y@sink.test")];
    let out = c.send(&tx("a@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('T', 421), ('T', 421)]);
    assert!(!c.is_usable());
    assert!(c.reset().await.is_err());
    assert!(c.send(&tx("a@client.test", &r, &b)).await.is_err());
    c.quit().await;
}

#[tokio::test]
async fn sink_disconnect_mid_transaction_is_a_session_error() {
    for cmd in ["DATA", "."] {
        let sink = SmtpSink::start(&["-q", cmd]);
        let mut c = open(sink.addr(), Arc::new(config())).await;
        let b = simple_body("gone");
        let r = [rcpt("x@sink.test")];
        let err = c
            .send(&tx("a@client.test", &r, &b))
            .await
            .expect_err("a vanished server is an error");
        assert!(err.message.starts_with("127.0.0.1:"), "{err}");
        assert!(!c.is_usable());
        c.quit().await;
    }
}

#[tokio::test]
async fn sink_slow_final_reply_hits_the_data_timeout() {
    let sink = SmtpSink::start(&["-W", ".:5"]);
    let cfg = with(|c| c.data_timeout = Duration::from_millis(700));
    let mut c = open(sink.addr(), cfg).await;
    let b = simple_body("slow");
    let r = [rcpt("x@sink.test")];
    let started = Instant::now();
    let err = c.send(&tx("a@client.test", &r, &b)).await.unwrap_err();
    assert!(err.message.contains("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn sink_helo_fallback_and_forced_helo() {
    // EHLO refused with 500: fall back to HELO, no extensions.
    let sink = SmtpSink::start(&["-f", "EHLO"]);
    let mut c = open(sink.addr(), Arc::new(config())).await;
    assert_eq!(
        c.extensions(),
        &bridgehead::smtp::ehlo::Extensions::default()
    );
    let b = body(b"Subject: helo\r\n\r\n\xc3\xa9t\xc3\xa9\r\n");
    let r = [rcpt("x@sink.test")];
    let mut t = tx("a@client.test", &r, &b);
    t.eight_bit = true; // no 8BITMIME after HELO: sent as is, no BODY=
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    let m = &sink.messages(1)[0];
    assert_eq!(m.proto, "SMTP");
    assert_eq!(m.helo.as_deref(), Some("client.test"));
    assert_eq!(m.mail_args, "<a@client.test>");
    assert_eq!(m.body, "Subject: helo\n\nété\n");

    // force_helo never says EHLO.
    let sink = SmtpSink::start(&[]);
    let mut c = open(sink.addr(), with(|c| c.force_helo = true)).await;
    assert!(!c.extensions().pipelining);
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    assert_eq!(sink.messages(1)[0].proto, "SMTP");
}

#[tokio::test]
async fn sink_greeting_554_is_a_permanent_connect_error() {
    let sink = SmtpSink::start(&["-f", "CONNECT", "-B", "554 5.7.1 go away"]);
    let err = Connection::open(sink.addr(), "mx.sink.test", Arc::new(config()))
        .await
        .unwrap_err();
    assert!(err.permanent);
    assert_eq!(err.reply.as_ref().map(|r| r.code), Some(554));
    let port = sink.port;
    assert_eq!(
        err.to_string(),
        format!("mx.sink.test[127.0.0.1]:{port}: greeting refused: 554 5.7.1 go away")
    );
}

#[tokio::test]
async fn sink_slow_greeting_times_out() {
    let sink = SmtpSink::start(&["-W", "CONNECT:5"]);
    let cfg = with(|c| c.command_timeout = Duration::from_millis(500));
    let err = Connection::open(sink.addr(), "127.0.0.1", cfg)
        .await
        .unwrap_err();
    assert!(!err.permanent);
    assert!(
        err.message.contains("timeout waiting for the greeting"),
        "{err}"
    );
}

#[tokio::test]
async fn sink_required_tls_without_starttls_is_refused() {
    let sink = SmtpSink::start(&[]);
    let err = Connection::open(
        sink.addr(),
        "mx.sink.test",
        with(|c| c.tls = TlsMode::Required),
    )
    .await
    .unwrap_err();
    assert!(!err.permanent);
    assert!(
        err.message.ends_with("STARTTLS required but not offered"),
        "{err}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_transient_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let err = Connection::open(addr, "127.0.0.1", Arc::new(config()))
        .await
        .unwrap_err();
    assert!(!err.permanent);
    assert!(err.reply.is_none());
    assert_eq!(
        err.to_string(),
        format!("127.0.0.1:{port}: connection refused")
    );
}

// ----- aiosmtpd -----

/// A body that exercises dot-stuffing at many offsets, across the 64 KiB read
/// buffer, with 8-bit text and a long line.
fn tricky_body(total: usize) -> Vec<u8> {
    let mut v = b"Subject: tricky\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    let mut i = 0;
    while v.len() < total {
        match i % 7 {
            0 => v.extend_from_slice(b".\r\n"),
            1 => v.extend_from_slice(b"..double\r\n"),
            2 => v.extend_from_slice(format!(".line {i}\r\n").as_bytes()),
            3 => v.extend_from_slice("8-bit: été ünïcode\r\n".as_bytes()),
            4 => {
                // 998 octets + CRLF: the longest line RFC 5321 allows.
                v.extend_from_slice(&[b'x'; 998]);
                v.extend_from_slice(b"\r\n");
            }
            5 => v.extend_from_slice(b"\r\n"),
            _ => v.extend_from_slice(format!("plain line {i} with a . in it\r\n").as_bytes()),
        }
        i += 1;
    }
    v.extend_from_slice(b".end\r\n");
    v
}

#[tokio::test]
async fn aiosmtpd_body_arrives_byte_identical_over_data() {
    let peer = Aiosmtpd::start(&[]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert!(!c.extensions().chunking && !c.extensions().pipelining);
    let bytes = tricky_body(300 * 1024);
    let b = body(&bytes);
    let r = [rcpt("bob@aiosmtpd.test")];
    let mut t = tx("alice@client.test", &r, &b);
    t.eight_bit = true;
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)], "{out:?}");

    // No final CRLF in the file: one is added before the terminating dot.
    let b2 = body(b"Subject: no newline\r\n\r\n.last line without CRLF");
    let out = c.send(&tx("alice@client.test", &r, &b2)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;

    let msgs = peer.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].content == bytes, "body changed in transit");
    let opts = msgs[0].mail_options();
    assert!(opts.contains(&format!("SIZE={}", bytes.len())), "{opts:?}");
    assert!(opts.contains(&"BODY=8BITMIME".to_string()), "{opts:?}");
    assert_eq!(msgs[0].envelope["mail_from"], "alice@client.test");
    assert_eq!(
        msgs[1].content,
        b"Subject: no newline\r\n\r\n.last line without CRLF\r\n"
    );
    let transcript = peer.transcript();
    assert_eq!(
        transcript.iter().filter(|l| *l == "DATA").count(),
        2,
        "{transcript:?}"
    );
}

#[tokio::test]
async fn aiosmtpd_bdat_chunks_byte_identical() {
    let peer = Aiosmtpd::start(&["--chunking"]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert!(c.extensions().chunking);
    // 200 KiB plus an unterminated last line: BDAT sends the bytes unchanged.
    let mut bytes = tricky_body(200 * 1024);
    bytes.extend_from_slice(b".tail without CRLF");
    let b = body(&bytes);
    let r = [rcpt("bob@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    // An empty body is a single BDAT 0 LAST.
    let empty = body(b"");
    let out = c.send(&tx("alice@client.test", &r, &empty)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;

    let msgs = peer.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs[0].content == bytes, "body changed in transit");
    assert!(msgs[1].content.is_empty());
    let bdat: Vec<String> = peer
        .transcript()
        .into_iter()
        .filter(|l| l.starts_with("BDAT") || l == "DATA")
        .collect();
    let len = bytes.len();
    let full = len / 65536;
    let mut expected: Vec<String> = (0..full).map(|_| "BDAT 65536".to_string()).collect();
    expected.push(format!("BDAT {} LAST", len - full * 65536));
    expected.push("BDAT 0 LAST".into());
    assert_eq!(bdat, expected);
}

#[tokio::test]
async fn aiosmtpd_mixed_recipient_outcomes() {
    for pipelining in [false, true] {
        mixed_recipient_outcomes(pipelining).await;
    }
}

async fn mixed_recipient_outcomes(pipelining: bool) {
    let mut args = vec![
        "--reject-rcpt",
        "bad@aiosmtpd.test",
        "550 5.1.1 No such user",
        "--reject-rcpt",
        "later@aiosmtpd.test",
        "451 4.3.0 Try again later",
    ];
    if pipelining {
        args.push("--pipelining");
    }
    let peer = Aiosmtpd::start(&args);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert_eq!(c.extensions().pipelining, pipelining);
    let b = simple_body("mixed");
    let r = [
        OutRecipient {
            notify: Some("NEVER".into()),
            ..rcpt("good1@aiosmtpd.test")
        },
        rcpt("bad@aiosmtpd.test"),
        rcpt("later@aiosmtpd.test"),
        rcpt("good2@aiosmtpd.test"),
    ];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(
        codes(&out),
        [('D', 250), ('F', 550), ('T', 451), ('D', 250)]
    );
    assert_eq!(out[1].reply().to_string(), "550 5.1.1 No such user");
    c.quit().await;
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].rcpts(),
        ["good1@aiosmtpd.test", "good2@aiosmtpd.test"]
    );
    // aiosmtpd offers no DSN: no NOTIFY sent.
    assert!(
        !peer.transcript().iter().any(|l| l.contains("NOTIFY")),
        "{:?}",
        peer.transcript()
    );
}

#[tokio::test]
async fn aiosmtpd_no_accepted_recipient_sends_no_data() {
    let peer = Aiosmtpd::start(&[
        "--reject-rcpt",
        "bad@aiosmtpd.test",
        "550 5.1.1 No such user",
    ]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    let b = simple_body("nobody");
    let r = [rcpt("bad@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 550)]);
    // The connection stays usable.
    let good = [rcpt("good@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &good, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    let t = peer.transcript();
    let verbs: Vec<&str> = t
        .iter()
        .map(|l| l.split([' ', ':']).next().unwrap_or(""))
        .collect();
    assert_eq!(
        verbs,
        [
            "EHLO", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "DATA", "QUIT"
        ]
    );
    assert_eq!(peer.messages().len(), 1);
}

/// With PIPELINING, MAIL, RCPT and DATA go out together: after a refusal the
/// client must consume every pipelined reply before the next transaction.
#[tokio::test]
async fn aiosmtpd_pipelined_refusals_keep_replies_in_step() {
    let peer = Aiosmtpd::start(&[
        "--pipelining",
        "--reject-rcpt",
        "bad@aiosmtpd.test",
        "550 5.1.1 No such user",
    ]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert!(c.extensions().pipelining);
    let b = simple_body("pipelined");
    let bad = [rcpt("bad@aiosmtpd.test"), rcpt("bad@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &bad, &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 550), ('F', 550)]);
    let good = [rcpt("good@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &good, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    let verbs: Vec<String> = peer
        .transcript()
        .iter()
        .map(|l| l.split([' ', ':']).next().unwrap_or("").to_string())
        .collect();
    // DATA went out with the refused RCPTs (and was refused), then RSET.
    assert_eq!(
        verbs,
        [
            "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "QUIT"
        ]
    );
    assert_eq!(peer.messages().len(), 1);

    // MAIL refused: every recipient gets its reply; the RCPT and DATA replies
    // that follow are read and dropped.
    let peer = Aiosmtpd::start(&[
        "--pipelining",
        "--reject-mail",
        "452 4.3.1 Insufficient storage",
    ]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    let two = [rcpt("x@aiosmtpd.test"), rcpt("y@aiosmtpd.test")];
    for _ in 0..2 {
        let out = c.send(&tx("alice@client.test", &two, &b)).await.unwrap();
        assert_eq!(codes(&out), [('T', 452), ('T', 452)]);
        assert_eq!(out[1].reply().to_string(), "452 4.3.1 Insufficient storage");
    }
    c.reset().await.unwrap();
    c.quit().await;
}

#[tokio::test]
async fn aiosmtpd_size_limits_refuse_without_sending() {
    let peer = Aiosmtpd::start(&["--size", "1000"]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert_eq!(c.extensions().size, Some(1000));
    let b = body(&vec![b'a'; 5000]);
    let r = [rcpt("x@aiosmtpd.test"), rcpt("y@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 552), ('F', 552)]);
    assert_eq!(
        out[0].reply().enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.3.4")
    );
    c.quit().await;
    assert!(!peer.transcript().iter().any(|l| l.starts_with("MAIL")));

    // The connector's own limit.
    let peer = Aiosmtpd::start(&[]);
    let mut c = open(peer.addr(), with(|c| c.max_message_size = Some(100))).await;
    let b = body(&vec![b'a'; 500]);
    let out = c.send(&tx("alice@client.test", &r[..1], &b)).await.unwrap();
    assert_eq!(codes(&out), [('F', 552)]);
    c.quit().await;
    assert!(!peer.transcript().iter().any(|l| l.starts_with("MAIL")));
}

#[tokio::test]
async fn aiosmtpd_smtputf8() {
    let b = simple_body("utf8");
    let r = [rcpt("jörg@exämple.test")];
    // Not offered: refused with 5.6.7 before anything is sent.
    let peer = Aiosmtpd::start(&[]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    let mut t = tx("änne@client.test", &r, &b);
    t.smtputf8 = true;
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('F', 553)]);
    assert_eq!(
        out[0].reply().enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.6.7")
    );
    c.quit().await;
    assert!(!peer.transcript().iter().any(|l| l.starts_with("MAIL")));

    // Offered: SMTPUTF8 on MAIL, delivered.
    let peer = Aiosmtpd::start(&["--smtputf8"]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    assert!(c.extensions().smtputf8);
    let out = c.send(&t).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    let m = &peer.messages()[0];
    assert_eq!(m.envelope["mail_from"], "änne@client.test");
    assert_eq!(m.rcpts(), ["jörg@exämple.test"]);
    assert!(m.mail_options().contains(&"SMTPUTF8".to_string()));
}

#[tokio::test]
async fn aiosmtpd_starttls_opportunistic_and_required() {
    let pki = Pki::self_signed(&["localhost"]);
    let peer = Aiosmtpd::start(&["--starttls", pki.cert_str(), pki.key_str()]);
    for mode in [TlsMode::Opportunistic, TlsMode::Required] {
        let mut c = open(peer.addr(), with(|c| c.tls = mode)).await;
        assert!(c.is_tls(), "{mode:?}");
        // The EHLO after STARTTLS no longer offers it.
        assert!(!c.extensions().starttls);
        let b = simple_body("tls");
        let r = [rcpt("x@aiosmtpd.test")];
        let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
        assert_eq!(codes(&out), [('D', 250)]);
        c.quit().await;
    }
    let msgs = peer.messages();
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.envelope["tls"] == true));
    let ehlos = peer
        .transcript()
        .iter()
        .filter(|l| l.starts_with("EHLO"))
        .count();
    assert_eq!(ehlos, 4, "EHLO before and after STARTTLS");
}

#[tokio::test]
async fn aiosmtpd_certificate_verification() {
    let pki = Pki::ca_signed(&["localhost", "mx.verified.test"]);
    // SAFETY: set once, in this test's own process (nextest runs one test per
    // process), before any thread that reads the environment is started.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pki.ca) };
    let peer = Aiosmtpd::start(&["--starttls", pki.cert_str(), pki.key_str()]);
    let cfg = with(|c| {
        c.verify_certificate = true;
        c.tls = TlsMode::Required;
    });
    // The name matches: verified.
    for name in ["localhost", "mx.verified.test"] {
        let c = Connection::open(peer.addr(), name, cfg.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(c.is_tls());
        c.quit().await;
    }
    // The name does not match: refused, transient.
    let err = Connection::open(peer.addr(), "mx.other.test", cfg.clone())
        .await
        .unwrap_err();
    assert!(!err.permanent);
    assert!(err.message.contains("TLS handshake failed"), "{err}");
    assert!(err.message.contains("certificate"), "{err}");

    // A self-signed certificate not from the CA: refused when verifying,
    // accepted when not.
    let other = Pki::self_signed(&["localhost"]);
    let peer2 = Aiosmtpd::start(&["--starttls", other.cert_str(), other.key_str()]);
    let err = Connection::open(peer2.addr(), "localhost", cfg.clone())
        .await
        .unwrap_err();
    assert!(err.message.contains("TLS handshake failed"), "{err}");
    let c = Connection::open(
        peer2.addr(),
        "localhost",
        with(|c| c.tls = TlsMode::Required),
    )
    .await
    .unwrap();
    assert!(c.is_tls());
    c.quit().await;
}

fn basic(user: &str, pass: &str) -> AuthMode {
    AuthMode::Basic {
        username: user.into(),
        password: pass.into(),
    }
}

#[tokio::test]
async fn aiosmtpd_auth_plain_and_login_over_starttls() {
    let pki = Pki::self_signed(&["localhost"]);
    let tls = ["--starttls", pki.cert_str(), pki.key_str()];
    let auth = ["--require-auth", "relay-user", "pa ss:wörd"];

    // PLAIN (offered, preferred).
    let peer = Aiosmtpd::start(&[&tls[..], &auth[..]].concat());
    let mut c = open(
        peer.addr(),
        with(|c| c.auth = basic("relay-user", "pa ss:wörd")),
    )
    .await;
    assert!(c.is_tls());
    let b = simple_body("auth");
    let r = [rcpt("x@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    assert_eq!(peer.messages()[0].envelope["auth_login"], "relay-user");
    assert!(
        peer.transcript()
            .iter()
            .any(|l| l.starts_with("AUTH PLAIN "))
    );

    // LOGIN when PLAIN is not offered; BasicRequireTls is fine inside TLS.
    let peer = Aiosmtpd::start(&[&tls[..], &auth[..], &["--auth-exclude", "PLAIN"]].concat());
    let cfg = with(|c| {
        c.auth = AuthMode::BasicRequireTls {
            username: "relay-user".into(),
            password: "pa ss:wörd".into(),
        }
    });
    let mut c = open(peer.addr(), cfg).await;
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    assert_eq!(peer.messages()[0].envelope["auth_login"], "relay-user");
    assert!(peer.transcript().iter().any(|l| l == "AUTH LOGIN"));
}

#[tokio::test]
async fn aiosmtpd_wrong_password_is_a_transient_connect_error() {
    let pki = Pki::self_signed(&["localhost"]);
    let peer = Aiosmtpd::start(&[
        "--starttls",
        pki.cert_str(),
        pki.key_str(),
        "--require-auth",
        "relay-user",
        "right",
    ]);
    let err = Connection::open(
        peer.addr(),
        "127.0.0.1",
        with(|c| c.auth = basic("relay-user", "wrong")),
    )
    .await
    .unwrap_err();
    assert!(!err.permanent, "auth failures wait in Retry for the admin");
    assert_eq!(err.reply.as_ref().map(|r| r.code), Some(535));
    assert!(err.message.contains("AUTH failed: 535 5.7.8"), "{err}");
    assert!(!err.message.contains("wrong"));
}

#[tokio::test]
async fn aiosmtpd_basic_require_tls_never_sends_credentials_in_plaintext() {
    // AUTH offered in plaintext, no STARTTLS.
    let peer = Aiosmtpd::start(&["--auth-plaintext", "--require-auth", "u", "secret-pw"]);
    let cfg = with(|c| {
        c.auth = AuthMode::BasicRequireTls {
            username: "u".into(),
            password: "secret-pw".into(),
        }
    });
    let err = Connection::open(peer.addr(), "127.0.0.1", cfg)
        .await
        .unwrap_err();
    assert!(!err.permanent);
    assert!(err.message.contains("requires TLS"), "{err}");
    let t = peer.transcript();
    assert!(!t.iter().any(|l| l.starts_with("AUTH")), "{t:?}");
    assert!(t.iter().any(|l| l.starts_with("EHLO")), "{t:?}");

    // Plain Basic is allowed over plaintext.
    let mut c = open(peer.addr(), with(|c| c.auth = basic("u", "secret-pw"))).await;
    assert!(!c.is_tls());
    let b = simple_body("plain auth");
    let r = [rcpt("x@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
}

#[tokio::test]
async fn aiosmtpd_helo_fallback() {
    let peer = Aiosmtpd::start(&["--reject-ehlo"]);
    let mut c = open(peer.addr(), Arc::new(config())).await;
    let b = simple_body("helo");
    let r = [rcpt("x@aiosmtpd.test")];
    let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
    assert_eq!(codes(&out), [('D', 250)]);
    c.quit().await;
    let t = peer.transcript();
    assert_eq!(t[..2], ["EHLO client.test", "HELO client.test"]);
}

fn read_logs(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    text
}

#[tokio::test]
async fn protocol_log_masks_credentials() {
    let logdir = tempfile::tempdir().unwrap();
    let log = ProtocolLog::start(logdir.path().to_path_buf());
    let password = "Sup3r-secret";
    let plain_b64 = bridgehead::smtp::auth::encode_plain("relay-user", password);
    let pass_b64 = bridgehead::smtp::auth::encode_base64(password.as_bytes());
    let r = [rcpt("x@aiosmtpd.test")];
    let b = simple_body("logged");

    for exclude in [None, Some("PLAIN")] {
        let mut args = vec!["--auth-plaintext", "--require-auth", "relay-user", password];
        if let Some(m) = exclude {
            args.extend(["--auth-exclude", m]);
        }
        let peer = Aiosmtpd::start(&args);
        let cfg = with(|c| {
            c.auth = basic("relay-user", password);
            c.protocol_log = Some(log.clone());
        });
        let mut c = open(peer.addr(), cfg).await;
        let out = c.send(&tx("alice@client.test", &r, &b)).await.unwrap();
        assert_eq!(codes(&out), [('D', 250)]);
        c.quit().await;
    }

    // The writer task is asynchronous: wait for both sessions' disconnects.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = read_logs(logdir.path());
        if text.matches(",-,").count() >= 2 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for needle in [
        ",test-connector,",
        ",+,",
        ",>,EHLO client.test",
        ",>,AUTH PLAIN ****",
        ",>,AUTH LOGIN",
        ",>,****",
        ",<,235 2.7.0 Authentication successful",
        ",>,MAIL FROM:<alice@client.test>",
        ",>,DATA",
        ",>,.",
        ",>,QUIT",
        ",-,",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    for secret in [password, &plain_b64, &pass_b64] {
        assert!(!text.contains(secret), "{secret:?} leaked into\n{text}");
    }
    // Each session numbers its lines from 0.
    let sessions: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    assert_eq!(sessions.len(), 2, "{text}");
}
