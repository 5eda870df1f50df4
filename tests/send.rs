//! End-to-end: send connectors and routing (PRODUCT §6) — smart hosts with
//! failover, connectors chosen by address space and cost, DNS MX routing against a
//! loopback dnsmasq, 4xx/5xx handling — with Postfix's smtp-sink as the remote
//! server, swaks as the sending client and the CLI for configuration.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::dnsmasq::Dnsmasq;
use common::peers::{Aiosmtpd, Pki, SmtpSink};
use common::*;

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = cli(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A port on which nothing listens (bound once, then released).
fn dead_port() -> u16 {
    free_port()
}

/// example.com with alice (who gets the NDRs); ext.test and its subdomains are
/// external-relay domains, so anonymous internet clients may send there and the
/// mail is routed out through the send connectors.
fn setup(dir: &Path, env: &[(&str, &str)]) -> Server {
    ok(dir, &["accepted-domain", "new", "example.com", "--default"]);
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
            "accepted-domain",
            "new",
            "*.ext.test",
            "--type",
            "external-relay",
        ],
    );
    ok(
        dir,
        &["mailbox", "new", "alice@example.com", "--name", "Alice"],
    );
    // Retries every second so the tests see them.
    ok(dir, &["server", "set", "--retry-interval", "1s"]);
    Server::start(dir, env)
}

/// One message from alice@example.com through the Default Internet connector.
fn send(s: &Server, to: &str, subject: &str) {
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.smtp[0]),
        "--from",
        "alice@example.com",
        "--to",
        to,
        "--header",
        &format!("Subject: {subject}"),
    ]);
    assert_eq!(code, 0, "{out}");
}

fn maildir_count(dir: &Path, address: &str) -> usize {
    std::fs::read_dir(dir.join("data/mailboxes").join(address).join("Maildir/new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn maildir_text(dir: &Path, address: &str) -> String {
    let Ok(d) = std::fs::read_dir(dir.join("data/mailboxes").join(address).join("Maildir/new"))
    else {
        return String::new();
    };
    d.flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

fn queue_empty(dir: &Path) -> bool {
    sql(dir, "SELECT COUNT(*) FROM messages") == "0"
}

#[test]
fn third_smart_host_delivers_when_the_first_two_are_down() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sink = SmtpSink::start(&[]);
    let hosts = format!(
        "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        dead_port(),
        dead_port(),
        sink.port
    );
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Smarthosts",
            "--address-space",
            "*",
            "--smart-host",
            &hosts,
            "--fqdn",
            "out.example.com",
            "--protocol-logging",
            "verbose",
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "via the third");
    let m = sink
        .wait_for("Subject: via the third", 15)
        .expect("delivered by the third smart host");
    assert!(
        m.contains("X-Helo-Args: out.example.com"),
        "connector FQDN in EHLO: {m}"
    );
    assert!(m.contains("X-Rcpt-Args: <bob@ext.test>"), "{m}");
    assert!(eventually(10, || queue_empty(d)));
    let track = ok(d, &["track", "--recipient", "bob@ext.test"]);
    assert!(
        track.contains("SEND") && track.contains("Smarthosts"),
        "{track}"
    );
    // Verbose protocol log of the send side.
    let logs: String = std::fs::read_dir(d.join("data/logs/protocol/send"))
        .expect("send protocol log directory")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("Smarthosts") && logs.contains("RCPT TO:<bob@ext.test>"),
        "{logs}"
    );
    drop(s);
}

#[test]
fn equal_cost_connectors_share_the_load() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = SmtpSink::start(&[]);
    let b = SmtpSink::start(&[]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "A",
            "--address-space",
            "*;5",
            "--smart-host",
            &format!("127.0.0.1:{}", a.port),
        ],
    );
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "B",
            "--address-space",
            "*;5",
            "--smart-host",
            &format!("127.0.0.1:{}", b.port),
        ],
    );
    let s = setup(d, &[]);
    for i in 0..20 {
        send(&s, "bob@ext.test", &format!("share {i}"));
    }
    assert!(eventually(20, || queue_empty(d)), "all delivered");
    let (na, nb) = (a.raw().len(), b.raw().len());
    assert_eq!(na + nb, 20);
    assert!(
        na > 0 && nb > 0,
        "both equal-cost connectors carried mail: {na} / {nb}"
    );
}

#[test]
fn failover_by_cost_and_most_specific_address_space() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let backup = SmtpSink::start(&[]);
    let partner = SmtpSink::start(&[]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Primary",
            "--address-space",
            "*;1",
            "--smart-host",
            &format!("127.0.0.1:{}", dead_port()),
        ],
    );
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Backup",
            "--address-space",
            "*;50",
            "--smart-host",
            &format!("127.0.0.1:{}", backup.port),
        ],
    );
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Partner",
            "--address-space",
            "partner.ext.test;90",
            "--smart-host",
            &format!("127.0.0.1:{}", partner.port),
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "failover");
    assert!(
        backup.wait_for("Subject: failover", 15).is_some(),
        "cost 1 down, cost 50 carried it"
    );
    send(&s, "carol@partner.ext.test", "specific");
    assert!(
        partner.wait_for("Subject: specific", 15).is_some(),
        "the specific space beats * despite cost 90"
    );
    assert!(backup.wait_for("Subject: specific", 1).is_none());
    let track = ok(d, &["track", "--recipient", "bob@ext.test"]);
    assert!(track.contains("via Backup"), "{track}");
}

#[test]
fn a_live_change_applies_to_the_next_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let one = SmtpSink::start(&[]);
    let two = SmtpSink::start(&[]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Out",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{}", one.port),
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "before");
    assert!(one.wait_for("Subject: before", 15).is_some());
    let before = s.healthz()["directory_version"].as_i64().unwrap_or(0);
    ok(
        d,
        &[
            "send-connector",
            "set",
            "Out",
            "--smart-host",
            &format!("127.0.0.1:{}", two.port),
        ],
    );
    assert!(eventually(5, || s.healthz()["directory_version"]
        .as_i64()
        .unwrap_or(0)
        > before));
    send(&s, "bob@ext.test", "after");
    assert!(
        two.wait_for("Subject: after", 15).is_some(),
        "the new smart host is used without a restart"
    );
    assert!(one.wait_for("Subject: after", 1).is_none());
}

#[test]
fn transient_then_success_and_permanent_rejection_ndr() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = free_port();
    // First the server soft-rejects every RCPT…
    let soft = SmtpSink::start_on(
        "127.0.0.1",
        port,
        &["-r", "RCPT", "-b", "451 4.3.0 try again later"],
    );
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Out",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "retry me");
    assert!(
        eventually(10, || sql(
            d,
            "SELECT diagnostic FROM recipients WHERE address = 'bob@ext.test'"
        )
        .contains("451 4.3.0 try again later")),
        "deferred with the remote's reply"
    );
    let q = ok(d, &["queue", "list"]);
    assert!(
        q.contains("Out [127.0.0.1:"),
        "a Remote delivery queue named by its next hop: {q}"
    );
    drop(soft);
    // …then it accepts: the next retry delivers.
    let good = SmtpSink::start_on("127.0.0.1", port, &[]);
    assert!(
        good.wait_for("Subject: retry me", 20).is_some(),
        "delivered on retry"
    );
    assert!(eventually(10, || queue_empty(d)));
    drop(good);

    // A hard rejection: NDR to the sender with the remote's text.
    let _hard = SmtpSink::start_on(
        "127.0.0.1",
        port,
        &[
            "-f",
            "RCPT",
            "-B",
            "550 5.1.1 <carol@ext.test>: no such user here",
        ],
    );
    send(&s, "carol@ext.test", "bounce me");
    assert!(
        eventually(15, || maildir_count(d, "alice@example.com") >= 1),
        "NDR delivered"
    );
    let ndr = maildir_text(d, "alice@example.com");
    assert!(ndr.contains("Status: 5.1.1"), "{ndr}");
    assert!(
        ndr.contains("Diagnostic-Code: smtp; 550 5.1.1 <carol@ext.test>: no such user here"),
        "{ndr}"
    );
    assert!(ndr.contains("Remote-MTA: dns; 127.0.0.1"), "{ndr}");
    let track = ok(d, &["track", "--recipient", "carol@ext.test"]);
    assert!(track.contains("FAIL"), "{track}");
}

#[test]
fn a_connection_failure_puts_the_hop_in_retry_and_oversize_bounces() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = dead_port();
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Down",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{port}"),
            "--max-message-size-mb",
            "1",
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "waiting");
    assert!(
        eventually(10, || {
            let q = ok(d, &["queue", "list", "--json"]);
            let list: Vec<serde_json::Value> = serde_json::from_str(&q).unwrap();
            list.iter().any(|q| {
                q["name"].as_str().is_some_and(|n| n.starts_with("Down ["))
                    && q["status"] == "Retry"
                    && q["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("127.0.0.1"))
            })
        }),
        "the next hop is in Retry with the connection error"
    );
    // Bigger than the connector's 1 MB: 5.3.4 NDR at once.
    let body = d.join("big.txt");
    std::fs::write(
        &body,
        format!("{}\r\n", "y".repeat(76)).repeat(1_200_000 / 78),
    )
    .unwrap();
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.smtp[0]),
        "--from",
        "alice@example.com",
        "--to",
        "big@ext.test",
        "--header",
        "Subject: too big",
        "--body",
        &format!("@{}", body.display()),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(eventually(15, || maildir_text(d, "alice@example.com")
        .contains("Status: 5.3.4")));
    // The waiting message is still queued for bob.
    assert_eq!(
        sql(
            d,
            "SELECT status FROM recipients WHERE address = 'bob@ext.test'"
        ),
        "queued"
    );
}

/// A smart host that takes connections and closes them at once (no
/// greeting): every connection attempt is counted.
struct DeadHost {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeadHost {
    fn start() -> DeadHost {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        DeadHost {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Stops listening, freeing the port for a real server.
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[test]
fn messages_behind_a_dead_hop_cost_one_connection_per_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let host = DeadHost::start();
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Flaky",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{}", host.port),
        ],
    );
    // Retries every second (setup).
    let s = setup(d, &[]);
    const N: usize = 40;
    let load = load(s.smtp[0], 4, N / 4, "bob@ext.test");
    load.wait_for_acks(N);
    assert_eq!(load.join().len(), N, "all accepted");
    let in_retry = || {
        let q = ok(d, &["queue", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&q).unwrap();
        list.iter().any(|q| {
            q["name"].as_str().is_some_and(|n| n.starts_with("Flaky ["))
                && q["status"] == "Retry"
                && q["messages"] == N
        })
    };
    assert!(
        eventually(10, in_retry),
        "all {N} wait in the hop's Retry queue"
    );
    // Several retry intervals: each tries the hop once (one message goes
    // through as the probe), not once per message.
    let before = host.count();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let tries = host.count() - before;
    assert!(
        (2..=10).contains(&tries),
        "{tries} connection attempts in 5 s of 1 s retries with {N} messages waiting"
    );
    // They all show as waiting for the hop's retry, whatever time each was
    // last given.
    let retrying: Vec<serde_json::Value> = serde_json::from_str(&ok(
        d,
        &["queue", "messages", "--status", "retry", "--json"],
    ))
    .unwrap();
    assert_eq!(retrying.len(), N);
    // Mail for other next hops is not held up meanwhile.
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.smtp[0]),
        "--from",
        "bob@ext.test",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: local while the hop is down",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        eventually(5, || maildir_count(d, "alice@example.com") == 1),
        "local delivery is not queued behind the waiting hop"
    );
    // The smart host comes back: the next probe gets through and every
    // waiting message follows at once.
    let port = host.port;
    host.stop();
    let sink = SmtpSink::start_on("127.0.0.1", port, &[]);
    assert!(
        eventually(20, || sink.messages(0).len() == N),
        "all {N} delivered once the hop is back: {}",
        sink.messages(0).len()
    );
    assert!(eventually(10, || queue_empty(d)));
}

#[test]
fn no_connector_waits_in_unreachable_and_a_new_connector_frees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "stuck");
    assert!(eventually(10, || sql(
        d,
        "SELECT next_hop FROM recipients WHERE address = 'bob@ext.test'"
    ) == "unreachable"));
    let sink = SmtpSink::start(&[]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Late",
            "--address-space",
            "ext.test",
            "--smart-host",
            &format!("127.0.0.1:{}", sink.port),
        ],
    );
    assert!(
        sink.wait_for("Subject: stuck", 20).is_some(),
        "routed once a connector covers the domain"
    );
}

#[test]
fn dns_routing_follows_mx_preference_implicit_mx_and_null_mx() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = free_port();
    // mx1 (preference 10) is down; mx2 (20) listens; implicit.test has no MX, only A.
    let mx2 = SmtpSink::start_on("127.0.0.3", port, &[]);
    let implicit = SmtpSink::start_on("127.0.0.4", port, &[]);
    let dns = Dnsmasq::start(&[
        "--mx-host=mx.ext.test,mx1.mx.ext.test,10",
        "--mx-host=mx.ext.test,mx2.mx.ext.test,20",
        "--host-record=mx1.mx.ext.test,127.0.0.2",
        "--host-record=mx2.mx.ext.test,127.0.0.3",
        "--host-record=implicit.ext.test,127.0.0.4",
        "--dns-rr=nullmx.ext.test,15,000000",
    ]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Internet",
            "--usage",
            "internet",
            "--address-space",
            "*",
            "--dns-routing",
            "--port",
            &port.to_string(),
        ],
    );
    let ns = dns.addr.to_string();
    let s = setup(d, &[("BRIDGEHEAD_DNS_NAMESERVERS", ns.as_str())]);
    send(&s, "bob@mx.ext.test", "by mx");
    let m = mx2
        .wait_for("Subject: by mx", 20)
        .expect("the second MX took it after the first refused the connection");
    assert!(m.contains("X-Rcpt-Args: <bob@mx.ext.test>"));
    send(&s, "carol@implicit.ext.test", "implicit");
    assert!(
        implicit.wait_for("Subject: implicit", 20).is_some(),
        "implicit MX: the domain's A record"
    );
    send(&s, "dave@nullmx.ext.test", "null");
    assert!(
        eventually(15, || maildir_text(d, "alice@example.com")
            .contains("Status: 5.1.10")),
        "null MX: NDR at once"
    );
    let track = ok(d, &["track", "--recipient", "bob@mx.ext.test"]);
    assert!(
        track.contains("Internet [mx.ext.test]"),
        "next hop named by connector and domain: {track}"
    );
}

/// The last error the Queue Viewer shows for a next hop whose name starts with `prefix`.
fn hop_error(dir: &Path, prefix: &str) -> Option<String> {
    let q = ok(dir, &["queue", "list", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&q).unwrap();
    list.iter()
        .find(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .and_then(|q| q["last_error"].as_str().map(String::from))
}

#[test]
fn smart_host_auth_over_starttls_and_its_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::self_signed(&["localhost"]);
    // Good: STARTTLS offered, AUTH required, the right password.
    let good = Aiosmtpd::start(&[
        "--starttls",
        pki.cert_str(),
        pki.key_str(),
        "--require-auth",
        "relay-user",
        "s3cret-pw",
    ]);
    // No STARTTLS at all: basic-require-tls must not send the password.
    let plain = Aiosmtpd::start(&[
        "--require-auth",
        "relay-user",
        "s3cret-pw",
        "--auth-plaintext",
    ]);
    let o = cli_stdin(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Good",
            "--address-space",
            "good.ext.test",
            "--smart-host",
            &format!("localhost:{}", good.port),
            "--auth",
            "basic-require-tls",
            "--username",
            "relay-user",
            "--password-stdin",
            "--protocol-logging",
            "verbose",
        ],
        "s3cret-pw",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli_stdin(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Plain",
            "--address-space",
            "plain.ext.test",
            "--smart-host",
            &format!("127.0.0.1:{}", plain.port),
            "--auth",
            "basic-require-tls",
            "--username",
            "relay-user",
            "--password-stdin",
        ],
        "s3cret-pw",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli_stdin(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Wrong",
            "--address-space",
            "wrong.ext.test",
            "--smart-host",
            &format!("localhost:{}", good.port),
            "--auth",
            "basic",
            "--username",
            "relay-user",
            "--password-stdin",
        ],
        "not-the-password",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The password is never shown back.
    let show = ok(d, &["send-connector", "show", "Good", "--json"]);
    assert!(
        !show.contains("s3cret-pw")
            && !ok(d, &["send-connector", "show", "Good"]).contains("s3cret-pw")
    );
    let s = setup(d, &[]);

    send(&s, "bob@good.ext.test", "authenticated");
    assert!(
        eventually(15, || good
            .messages()
            .iter()
            .any(|m| m.rcpts() == ["bob@good.ext.test"])),
        "delivered over TLS with AUTH"
    );
    let m = good
        .messages()
        .into_iter()
        .find(|m| m.rcpts() == ["bob@good.ext.test"])
        .unwrap();
    assert_eq!(m.envelope["tls"], true, "{:?}", m.envelope);
    assert_eq!(m.envelope["auth_login"], "relay-user");

    send(&s, "carol@plain.ext.test", "no tls here");
    assert!(
        eventually(15, || hop_error(d, "Plain [")
            .is_some_and(|e| e.contains("TLS"))),
        "{:?}",
        hop_error(d, "Plain [")
    );
    assert!(
        !plain
            .transcript()
            .iter()
            .any(|l| l.to_ascii_uppercase().starts_with("AUTH")),
        "no credentials in plaintext: {:?}",
        plain.transcript()
    );
    assert!(plain.messages().is_empty());

    send(&s, "dave@wrong.ext.test", "wrong password");
    assert!(
        eventually(15, || hop_error(d, "Wrong [")
            .is_some_and(|e| e.contains("535"))),
        "the remote's reply is the last error: {:?}",
        hop_error(d, "Wrong [")
    );
    assert_eq!(
        sql(
            d,
            "SELECT status FROM recipients WHERE address = 'dave@wrong.ext.test'"
        ),
        "queued",
        "waits in Retry"
    );

    // Nothing secret in the send protocol log.
    let logs: String = std::fs::read_dir(d.join("data/logs/protocol/send"))
        .map(|dir| {
            dir.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        logs.contains("AUTH") && !logs.contains("s3cret-pw"),
        "{logs}"
    );
    let server_log = std::fs::read_to_string(d.join("server.log")).unwrap_or_default();
    assert!(!server_log.contains("s3cret-pw") && !server_log.contains("not-the-password"));
}

#[test]
fn one_connection_carries_several_messages_to_a_hop() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let peer = Aiosmtpd::start(&["--pipelining"]);
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Reuse",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{}", peer.port),
            "--force-helo",
            "false",
        ],
    );
    let s = setup(d, &[]);
    for i in 0..5 {
        send(&s, "bob@ext.test", &format!("reuse {i}"));
        let want = i + 1;
        assert!(
            eventually(10, || peer.messages().len() >= want),
            "message {i} delivered"
        );
    }
    let greetings = peer
        .transcript()
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("EHLO"))
        .count();
    assert!(
        greetings < 5,
        "idle connections are reused: {greetings} EHLOs for 5 messages"
    );
    assert!(
        peer.transcript()
            .iter()
            .any(|l| l.eq_ignore_ascii_case("RSET")),
        "a pooled connection is checked with RSET"
    );
    // Two recipients of one message for the same hop: one transaction.
    send(&s, "bob@ext.test,carol@ext.test", "two at once");
    assert!(eventually(10, || peer.messages().len() >= 6));
    let last = peer.messages().pop().unwrap();
    assert_eq!(
        last.rcpts(),
        ["bob@ext.test", "carol@ext.test"],
        "several recipients per transaction"
    );
}

/// A server that answers every connection with `greeting` and closes it; the
/// number of connections it took.
fn refusing_server(greeting: &'static str) -> (u16, Arc<AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(greeting.as_bytes());
            let mut buf = [0u8; 512];
            let _ = std::io::Read::read(&mut conn, &mut buf);
        }
    });
    (port, count)
}

#[test]
fn a_5xx_greeting_from_every_smart_host_bounces_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (first, _) = refusing_server("554 5.7.1 first.test no service for you\r\n");
    let (second, count) = refusing_server("554 second.test go away\r\n");
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Refusers",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{first}"),
            "--smart-host",
            &format!("127.0.0.1:{second}"),
        ],
    );
    let s = setup(d, &[]);
    send(&s, "bob@ext.test", "refused for good");
    // Both hosts refuse for good (554 at connect, after failover): the message
    // fails with the NDR now instead of waiting in Retry until it expires.
    assert!(
        eventually(20, || maildir_count(d, "alice@example.com") == 1),
        "NDR"
    );
    let ndr = maildir_text(d, "alice@example.com");
    assert!(ndr.contains("Status: 5.0.0"), "{ndr}");
    assert!(ndr.contains("go away"), "{ndr}");
    assert!(eventually(10, || queue_empty(d)));
    assert!(count.load(Ordering::SeqCst) >= 1);

    // One host refusing for good and one that is down: a retry may mend it,
    // so the message waits (no NDR yet).
    let (refuser, _) = refusing_server("554 5.7.1 no\r\n");
    ok(
        d,
        &[
            "send-connector",
            "set",
            "Refusers",
            "--smart-host",
            &format!("127.0.0.1:{refuser}"),
            "--smart-host",
            &format!("127.0.0.1:{}", dead_port()),
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    send(&s, "carol@ext.test", "one refuses, one is down");
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(maildir_count(d, "alice@example.com"), 1, "no second NDR");
    assert!(!queue_empty(d), "waits for a retry");
}

#[test]
fn restarts_during_a_slow_delivery_do_not_poison_the_message() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A smart host that takes connections and never greets: every delivery
    // run is still waiting when the server is told to stop.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    ok(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Slow",
            "--address-space",
            "*",
            "--smart-host",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let mut s = setup(d, &[]);
    send(&s, "bob@ext.test", "slow");
    for round in 0..2 {
        assert!(
            eventually(10, || sql(d, "SELECT processing_count FROM messages")
                == "1"),
            "round {round}: the run has begun"
        );
        assert_eq!(s.terminate().code(), Some(0), "round {round}");
        assert_eq!(
            sql(
                d,
                "SELECT processing_count || ' ' || poisoned FROM messages"
            ),
            "0 0",
            "round {round}: a run cut by a graceful stop does not count"
        );
        s = Server::start(d, &[]);
    }
    assert!(eventually(10, || sql(
        d,
        "SELECT processing_count FROM messages"
    ) == "1"));
    assert_eq!(
        sql(d, "SELECT poisoned FROM messages"),
        "0",
        "not in Poison"
    );
}
