//! End-to-end: the queue manager — categorizer, Maildir delivery, DSNs, retries,
//! queue actions, pickup, poison, restarts and crashes — driven through real
//! SMTP clients and the CLI, checked in the Maildirs and the database.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = cli(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// example.com with alice (quota 1 MB) and bob; relay.test (internal relay) with
/// carol; ext.test (external relay); the team@ and sales@ groups and a contact.
fn setup(dir: &Path, env: &[(&str, &str)]) -> Server {
    ok(dir, &["accepted-domain", "new", "example.com", "--default"]);
    ok(
        dir,
        &[
            "accepted-domain",
            "new",
            "relay.test",
            "--type",
            "internal-relay",
        ],
    );
    ok(
        dir,
        &[
            "accepted-domain",
            "new",
            "ext.test",
            "--type",
            "external-relay",
        ],
    );
    ok(
        dir,
        &[
            "mailbox",
            "new",
            "alice@example.com",
            "--name",
            "Alice Smith",
        ],
    );
    ok(
        dir,
        &[
            "mailbox",
            "set",
            "alice@example.com",
            "--add-address",
            "alice.smith@example.com",
        ],
    );
    ok(
        dir,
        &[
            "mailbox",
            "new",
            "bob@example.com",
            "--name",
            "Bob Jones",
            "--quota-mb",
            "1",
        ],
    );
    ok(
        dir,
        &["mailbox", "new", "carol@relay.test", "--name", "Carol"],
    );
    ok(
        dir,
        &[
            "contact",
            "new",
            "partner",
            "--external-address",
            "pat@partner.test",
        ],
    );
    ok(
        dir,
        &[
            "group",
            "new",
            "team@example.com",
            "--member",
            "carol@relay.test",
            "--member",
            "bob@example.com",
        ],
    );
    ok(
        dir,
        &[
            "group",
            "new",
            "sales@example.com",
            "--member",
            "alice@example.com",
            "--member",
            "team@example.com",
            "--member",
            "partner",
        ],
    );
    // Loop: team contains sales contains team.
    ok(
        dir,
        &[
            "group",
            "set",
            "team@example.com",
            "--add-member",
            "sales@example.com",
        ],
    );
    Server::start(dir, env)
}

/// The messages in a mailbox's Maildir/new, oldest first.
fn maildir(dir: &Path, address: &str) -> Vec<String> {
    let root = dir.join("data/mailboxes");
    let Ok(folders) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    for f in folders.flatten() {
        if f.file_name()
            .to_string_lossy()
            .eq_ignore_ascii_case(address)
        {
            let mut files: Vec<_> = std::fs::read_dir(f.path().join("Maildir/new"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            return files
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect();
        }
    }
    Vec::new()
}

fn wait_for_mail(dir: &Path, address: &str, count: usize, secs: u64) -> Vec<String> {
    let mut last = Vec::new();
    eventually(secs, || {
        last = maildir(dir, address);
        last.len() >= count
    });
    last
}

fn send(s: &Server, from: &str, to: &str, extra: &[&str]) -> String {
    let server = format!("127.0.0.1:{}", s.smtp[0]);
    let mut args = vec!["--server", server.as_str(), "--from", from, "--to", to];
    args.extend_from_slice(extra);
    let (code, out) = swaks(&args);
    assert_eq!(code, 0, "{out}");
    out
}

fn queue_empty(dir: &Path) -> bool {
    sql(dir, "SELECT COUNT(*) FROM messages") == "0"
}

#[test]
fn delivers_into_maildir_and_tracks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[]);
    send(
        &s,
        "someone@elsewhere.test",
        "Alice.Smith@example.com",
        &["--header", "Subject: first", "--body", "hello alice"],
    );
    let mail = wait_for_mail(d, "alice@example.com", 1, 10);
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].starts_with("Return-Path: <someone@elsewhere.test>\r\nDelivered-To: "),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("Received: from ") && mail[0].contains("hello alice"));
    assert!(
        eventually(5, || queue_empty(d)),
        "the queue forgets delivered mail"
    );
    assert!(
        std::fs::read_dir(d.join("data/spool/msg"))
            .unwrap()
            .next()
            .is_none(),
        "spool cleaned"
    );
    let track = ok(
        d,
        &["track", "--recipient", "alice.smith@example.com", "--json"],
    );
    let events: Vec<serde_json::Value> = serde_json::from_str(&track).unwrap();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(
        kinds.contains(&"RECEIVE") && kinds.contains(&"DELIVER"),
        "{kinds:?}"
    );
    let by_sender = ok(
        d,
        &[
            "track",
            "--sender",
            "someone@elsewhere.test",
            "--since",
            "1h",
        ],
    );
    assert!(by_sender.contains("RESOLVE"), "{by_sender}");
}

#[test]
fn groups_expand_once_and_contacts_route_out() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[("BRIDGEHEAD_LOG_LEVEL", "info")]);
    // Authenticated-only is off for these groups; alice is also addressed directly.
    send(
        &s,
        "someone@elsewhere.test",
        "sales@example.com,alice@example.com",
        &["--header", "Subject: to sales"],
    );
    assert_eq!(wait_for_mail(d, "alice@example.com", 1, 10).len(), 1);
    assert_eq!(wait_for_mail(d, "bob@example.com", 1, 10).len(), 1);
    assert_eq!(wait_for_mail(d, "carol@relay.test", 1, 10).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        maildir(d, "alice@example.com").len(),
        1,
        "one copy despite the group loop and the direct address"
    );
    // The contact's external address waits in Unreachable (no send connector yet).
    let q = ok(d, &["queue", "messages", "unreachable", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&q).unwrap();
    assert_eq!(list.len(), 1, "{q}");
    let id = list[0]["id"].as_str().unwrap();
    let show = ok(d, &["message", "show", id]);
    assert!(
        show.contains("pat@partner.test") && show.contains("Unreachable"),
        "{show}"
    );
    let track = ok(d, &["track", "--id", id]);
    assert!(
        track.contains("EXPAND") && track.contains("REDIRECT"),
        "{track}"
    );
}

#[test]
fn accepted_domain_types_route_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[]);
    send(
        &s,
        "someone@elsewhere.test",
        "carol@relay.test,nobody@relay.test,x@ext.test",
        &[],
    );
    assert_eq!(
        wait_for_mail(d, "carol@relay.test", 1, 10).len(),
        1,
        "internal relay: local when it exists"
    );
    assert!(eventually(5, || sql(
        d,
        "SELECT COUNT(*) FROM recipients WHERE next_hop = 'unreachable' AND status = 'queued'"
    ) == "2"));
    let addrs = sql(
        d,
        "SELECT address FROM recipients WHERE next_hop = 'unreachable' ORDER BY address",
    );
    assert_eq!(
        addrs, "nobody@relay.test\nx@ext.test",
        "internal relay unknown and external relay are routed out"
    );
    // Authoritative unknown recipients never get in (550 5.1.1 at RCPT).
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.smtp[0]),
        "--to",
        "nobody@example.com",
    ]);
    assert_eq!(code, 24, "{out}");
}

fn report_field<'a>(dsn: &'a str, field: &str) -> Vec<&'a str> {
    dsn.lines()
        .filter_map(|l| l.strip_prefix(field))
        .map(str::trim)
        .collect()
}

#[test]
fn quota_and_loop_ndrs_reach_the_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[]);
    // 700 KB in 76-character lines, from a file (too big for an argument list).
    let body_file = d.join("big.txt");
    std::fs::write(
        &body_file,
        format!("{}\r\n", "x".repeat(76)).repeat(700 * 1024 / 78),
    )
    .unwrap();
    let big = format!("@{}", body_file.display());
    send(
        &s,
        "alice@example.com",
        "bob@example.com",
        &["--header", "Subject: big one", "--body", &big],
    );
    assert_eq!(wait_for_mail(d, "bob@example.com", 1, 10).len(), 1);
    send(
        &s,
        "alice@example.com",
        "bob@example.com",
        &["--header", "Subject: big two", "--body", &big],
    );
    let ndrs = wait_for_mail(d, "alice@example.com", 1, 10);
    assert_eq!(ndrs.len(), 1, "NDR for the second message");
    let ndr = &ndrs[0];
    assert!(ndr.contains("Return-Path: <>"), "null sender: {ndr}");
    assert!(
        ndr.contains("multipart/report") && ndr.contains("report-type=delivery-status"),
        "{ndr}"
    );
    assert_eq!(report_field(ndr, "Status:"), vec!["5.2.2"]);
    assert_eq!(report_field(ndr, "Action:"), vec!["failed"]);
    assert!(
        ndr.contains("Final-Recipient: rfc822; bob@example.com")
            || ndr.contains("Final-Recipient: rfc822;bob@example.com"),
        "{ndr}"
    );
    assert!(
        ndr.contains("Subject: big two"),
        "original headers returned: {ndr}"
    );
    assert_eq!(
        maildir(d, "bob@example.com").len(),
        1,
        "nothing over quota was written"
    );

    // 31 Received headers: a loop.
    let mut args: Vec<String> = Vec::new();
    for i in 0..31 {
        args.push("--add-header".into());
        args.push(format!(
            "Received: from hop{i}.test by hop{}.test; Mon, 23 Nov 2026 10:00:00 +0000",
            i + 1
        ));
    }
    args.push("--header".into());
    args.push("Subject: looping".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    send(&s, "alice@example.com", "carol@relay.test", &refs);
    let ndrs = wait_for_mail(d, "alice@example.com", 2, 10);
    assert_eq!(ndrs.len(), 2);
    assert!(
        ndrs.iter()
            .any(|n| report_field(n, "Status:") == vec!["5.4.6"]),
        "{ndrs:?}"
    );
    assert!(maildir(d, "carol@relay.test").is_empty());
    assert!(eventually(5, || queue_empty(d)));
}

#[test]
fn delay_notice_then_expiry_ndr_with_a_short_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &[
            "server",
            "set",
            "--retry-interval",
            "1s",
            "--delay-notice-after",
            "2s",
            "--message-expiration",
            "6s",
            "--ndr-copy-to",
            "bob@example.com",
        ],
    );
    let s = setup(d, &[]);
    send(
        &s,
        "alice@example.com",
        "x@ext.test",
        &["--header", "Subject: far away"],
    );
    let mail = wait_for_mail(d, "alice@example.com", 1, 8);
    assert_eq!(
        report_field(&mail[0], "Action:"),
        vec!["delayed"],
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("Will-Retry-Until:"), "{}", mail[0]);
    let mail = wait_for_mail(d, "alice@example.com", 2, 12);
    assert_eq!(mail.len(), 2);
    assert_eq!(report_field(&mail[1], "Action:"), vec!["failed"]);
    assert_eq!(report_field(&mail[1], "Status:"), vec!["5.4.4"]);
    // The NDR copy to the configured address.
    assert_eq!(wait_for_mail(d, "bob@example.com", 1, 5).len(), 1);
    assert!(eventually(5, || queue_empty(d)));
    // No DSN about a DSN: the DSNs themselves went out with a null sender and
    // NOTIFY=NEVER, nothing else arrives.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(maildir(d, "alice@example.com").len(), 2);
}

#[test]
fn notify_parameters_are_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &[
            "server",
            "set",
            "--retry-interval",
            "1s",
            "--delay-notice-after",
            "1s",
            "--message-expiration",
            "3s",
        ],
    );
    let s = setup(d, &[]);
    let mut raw = RawSmtp::start(s.smtp[0]);
    let mut one = |rcpt: &str, subject: &str| {
        assert_eq!(
            raw.cmd("MAIL FROM:<alice@example.com> RET=HDRS ENVID=env-1")
                .0,
            250
        );
        assert_eq!(raw.cmd(&format!("RCPT TO:{rcpt}")).0, 250);
        assert_eq!(raw.cmd("DATA").0, 354);
        assert_eq!(
            raw.cmd(&format!("Subject: {subject}\r\n\r\nbody\r\n.")).0,
            250
        );
    };
    one("<never@ext.test> NOTIFY=NEVER", "never");
    one(
        "<fail@ext.test> NOTIFY=FAILURE ORCPT=rfc822;Fail@Ext.Test",
        "failure only",
    );
    one("<bob@example.com> NOTIFY=SUCCESS", "success");
    let mail = wait_for_mail(d, "alice@example.com", 2, 10);
    std::thread::sleep(Duration::from_secs(2));
    let mail2 = maildir(d, "alice@example.com");
    assert_eq!(
        mail2.len(),
        2,
        "only the success notice and the one NDR: {mail:#?}"
    );
    let success = mail2
        .iter()
        .find(|m| report_field(m, "Action:") == vec!["delivered"])
        .expect("success DSN");
    assert!(success.contains("Original-Envelope-Id: env-1"), "{success}");
    let ndr = mail2
        .iter()
        .find(|m| report_field(m, "Action:") == vec!["failed"])
        .expect("NDR");
    assert!(
        ndr.contains("Original-Recipient: rfc822; Fail@Ext.Test"),
        "{ndr}"
    );
    assert!(
        !mail2.iter().any(|m| m.contains("never@ext.test")),
        "NOTIFY=NEVER stays silent"
    );
    assert!(
        !mail2
            .iter()
            .any(|m| report_field(m, "Action:") == vec!["delayed"]),
        "NOTIFY=FAILURE: no delay notice"
    );
}

#[test]
fn queue_and_message_actions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[]);
    ok(d, &["queue", "suspend", "mailbox"]);
    send(
        &s,
        "alice@example.com",
        "carol@relay.test",
        &["--header", "Subject: held"],
    );
    assert!(eventually(5, || ok(d, &["queue", "list"]).lines().any(
        |l| l.starts_with("Mailbox delivery") && l.contains("Suspended") && l.contains(" 1 ")
    )));
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(d, &["queue", "messages", "mailbox", "--json"])).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["status"], "suspended");
    // Export the stored message.
    let eml = ok(d, &["message", "export", &id]);
    assert!(
        eml.starts_with("Received: ") && eml.contains("Subject: held"),
        "{eml}"
    );
    // A suspended message stays put when its queue resumes.
    ok(d, &["message", "suspend", &id]);
    ok(d, &["queue", "resume", "mailbox"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(maildir(d, "carol@relay.test").is_empty());
    ok(d, &["message", "resume", &id]);
    assert_eq!(wait_for_mail(d, "carol@relay.test", 1, 10).len(), 1);

    // Remove with NDR, and without.
    send(
        &s,
        "alice@example.com",
        "far@ext.test",
        &["--header", "Subject: remove me"],
    );
    send(
        &s,
        "alice@example.com",
        "far2@ext.test",
        &["--header", "Subject: drop me"],
    );
    assert!(eventually(5, || sql(
        d,
        "SELECT COUNT(*) FROM recipients WHERE next_hop = 'unreachable'"
    ) == "2"));
    let ids = sql(
        d,
        "SELECT message_id FROM recipients WHERE next_hop = 'unreachable' ORDER BY address",
    );
    let ids: Vec<&str> = ids.lines().collect();
    ok(d, &["queue", "retry", "unreachable"]);
    ok(d, &["message", "remove", ids[0], "--ndr"]);
    ok(d, &["message", "remove", ids[1]]);
    let ndrs = wait_for_mail(d, "alice@example.com", 1, 10);
    assert_eq!(report_field(&ndrs[0], "Status:"), vec!["5.3.0"]);
    assert!(eventually(5, || queue_empty(d)));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        maildir(d, "alice@example.com").len(),
        1,
        "no NDR for the silent removal"
    );
    assert!(ok(d, &["track", "--id", ids[1]]).contains("DROP"));
    // Bad input gets a clear error.
    let o = cli(d, &["message", "remove", "../etc/passwd"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a queue id"));
}

#[test]
fn pickup_directory_good_and_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let _s = setup(d, &[]);
    let pickup = d.join("data/pickup");
    std::fs::write(
        pickup.join("scan.eml.tmp"),
        "X-Sender: scanner@example.com\nX-Receiver: bob@example.com\nFrom: Scanner <scanner@example.com>\nTo: someone@else.test\nBcc: secret@example.com\nSubject: scanned\n\nPDF attached\n",
    )
    .unwrap();
    std::fs::rename(pickup.join("scan.eml.tmp"), pickup.join("scan.eml")).unwrap();
    std::fs::write(pickup.join("broken.eml"), "this is not a message\n").unwrap();
    let mail = wait_for_mail(d, "bob@example.com", 1, 10);
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("Subject: scanned")
            && !mail[0].contains("Bcc:")
            && !mail[0].contains("X-Receiver"),
        "{}",
        mail[0]
    );
    assert!(eventually(5, || pickup.join("badmail/broken.eml").exists()));
    let note = std::fs::read_to_string(pickup.join("badmail/broken.eml.err")).unwrap();
    assert!(!note.trim().is_empty());
    assert!(!pickup.join("scan.eml").exists() && !pickup.join("broken.eml").exists());
    assert!(ok(d, &["track", "--recipient", "bob@example.com"]).contains("SUBMIT"));
}

#[test]
fn a_message_that_fails_twice_goes_to_poison() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["server", "set", "--retry-interval", "1s"]);
    let s = setup(d, &[]);
    ok(d, &["queue", "suspend", "submission"]);
    send(
        &s,
        "alice@example.com",
        "bob@example.com",
        &["--header", "Subject: poison"],
    );
    let id = sql(d, "SELECT id FROM messages");
    // Its body vanishes: processing cannot read it.
    std::fs::remove_file(d.join("data/spool/msg").join(&id)).unwrap();
    ok(d, &["queue", "resume", "submission"]);
    assert!(
        eventually(10, || sql(d, "SELECT poisoned FROM messages") == "1"),
        "poisoned"
    );
    let list = ok(d, &["queue", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("Poison message") && l.contains(" 1 ")),
        "{list}"
    );
    assert!(ok(d, &["track", "--id", &id]).contains("POISON"));
    // The server keeps working.
    send(
        &s,
        "alice@example.com",
        "bob@example.com",
        &["--header", "Subject: healthy"],
    );
    assert_eq!(wait_for_mail(d, "bob@example.com", 1, 10).len(), 1);
    ok(d, &["message", "remove", &id]);
    assert!(eventually(5, || queue_empty(d)));
}

#[test]
fn queued_mail_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut s = setup(d, &[]);
    ok(d, &["queue", "suspend", "mailbox"]);
    for i in 0..5 {
        send(
            &s,
            "alice@example.com",
            "carol@relay.test",
            &["--header", &format!("Subject: restart {i}")],
        );
    }
    assert!(s.terminate().success());
    let _s2 = Server::start(d, &[]);
    ok(d, &["queue", "resume", "mailbox"]);
    assert_eq!(wait_for_mail(d, "carol@relay.test", 5, 15).len(), 5);
    assert!(eventually(5, || queue_empty(d)));
}

/// `kill -9` while clients send: every message that got a 250 is delivered
/// exactly once after the restart.
#[test]
fn every_acknowledged_message_is_delivered_exactly_once_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut s = setup(d, &[]);
    let port = s.smtp[0];
    let senders = load(port, 4, 300, "carol@relay.test");
    senders.wait_for_acks(40);
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let acked: Vec<String> = senders.join().into_iter().map(|a| a.subject).collect();
    assert!(acked.len() > 10, "{} acknowledged", acked.len());
    let _s2 = Server::start(d, &[]);
    assert!(
        eventually(60, || queue_empty(d)),
        "the queue drains after the restart"
    );
    let mail = maildir(d, "carol@relay.test");
    for subject in &acked {
        let n = mail
            .iter()
            .filter(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .count();
        assert_eq!(n, 1, "{subject} delivered {n} times");
    }
}
