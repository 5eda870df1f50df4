//! End-to-end: `/metrics` on the admin listener counts what a real server did —
//! messages received per connector, deliveries, latency, sessions, DSNs, queue
//! lengths — in Prometheus text format.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = cli(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn maildir_count(dir: &Path, folder: &str) -> usize {
    std::fs::read_dir(dir.join("data/mailboxes").join(folder).join("Maildir/new"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One parsed sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format strictly enough to catch mistakes: every
/// line is a `# HELP`/`# TYPE` comment or `name{k="v",...} value`; label values
/// use only the three escapes the format allows; every sample belongs to a family
/// announced by `# TYPE` before it.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "ends with a line feed");
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().expect(line));
            assert!(kind == "HELP" || kind == "TYPE", "{line}");
            if kind == "TYPE" {
                let t = parts.next().expect(line);
                assert!(["counter", "gauge", "histogram"].contains(&t), "{line}");
                typed.push(name.to_string());
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .expect(line);
        let name = &line[..name_end];
        assert!(
            name.starts_with("bridgehead_")
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "{line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                // key
                let start = chars.peek().map(|(i, _)| *i).expect(line);
                let mut key_end = start;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                    assert!(c.is_ascii_alphanumeric() || c == '_', "{line}");
                }
                let key = r[start..key_end].to_string();
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect(line).1 {
                        '\\' => match chars.next().expect(line).1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw line feed in {line}"),
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                match chars.next().expect(line) {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &r[i + 1..];
                        break;
                    }
                    (_, c) => panic!("unexpected {c} in {line}"),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.iter().any(|t| t == f))
            })
            .unwrap_or(name);
        assert!(
            typed.iter().any(|t| t == family),
            "sample before its # TYPE: {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn scrape(s: &Server) -> (String, Vec<Sample>) {
    let (status, head, body) = http_get_raw(s.admin, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let samples = parse(&body);
    (body, samples)
}

/// The value of the sample `name` with exactly these labels (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == want)
        .map_or(0.0, |(_, _, v)| *v)
}

#[test]
fn metrics_count_what_the_server_did() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(d, &["accepted-domain", "new", "example.com", "--default"]);
    ok(
        d,
        &["mailbox", "new", "alice@example.com", "--name", "Alice"],
    );
    ok(
        d,
        &[
            "mailbox",
            "new",
            "bob@example.com",
            "--name",
            "Bob",
            "--quota-mb",
            "1",
        ],
    );
    let s = Server::start(d, &[]);
    let server = format!("127.0.0.1:{}", s.smtp[0]);

    // Before any mail: the families are there, the counters zero. The readiness
    // probes of `Server::start` opened sessions; let them finish first.
    let active = |samples: &[Sample]| {
        value(
            samples,
            "bridgehead_smtp_sessions_active",
            &[("connector", "Default Internet")],
        )
    };
    let total = |samples: &[Sample]| {
        value(
            samples,
            "bridgehead_smtp_sessions_total",
            &[("connector", "Default Internet")],
        )
    };
    assert!(eventually(10, || {
        let (_, sm) = scrape(&s);
        total(&sm) >= 1.0 && active(&sm) == 0.0
    }));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, samples) = scrape(&s);
    let delivered = |samples: &[Sample]| {
        value(
            samples,
            "bridgehead_deliveries_total",
            &[("outcome", "delivered"), ("via", "mailbox")],
        )
    };
    assert_eq!(delivered(&samples), 0.0);
    let sessions_before = total(&samples);

    for i in 0..2 {
        let subject = format!("Subject: metrics {i}");
        let (code, out) = swaks(&[
            "--server",
            &server,
            "--from",
            "someone@elsewhere.test",
            "--to",
            "alice@example.com",
            "--header",
            &subject,
        ]);
        assert_eq!(code, 0, "{out}");
    }
    // Refused at RCPT (550 5.1.1): not received, not counted.
    let (code, out) = swaks(&[
        "--server",
        &server,
        "--from",
        "someone@elsewhere.test",
        "--to",
        "nobody@example.com",
    ]);
    assert_eq!(code, 24, "{out}");
    assert!(eventually(10, || maildir_count(d, "alice@example.com") == 2));

    let mut last = (String::new(), Vec::new());
    let settled = eventually(10, || {
        last = scrape(&s);
        let sm = &last.1;
        delivered(sm) == 2.0 && active(sm) == 0.0
    });
    let (text, samples) = std::mem::take(&mut last);
    assert!(settled, "{text}");
    assert_eq!(
        value(
            &samples,
            "bridgehead_messages_received_total",
            &[("source", "Default Internet")]
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        samples
            .iter()
            .filter(|(n, _, _)| n == "bridgehead_messages_received_total")
            .map(|(_, _, v)| v)
            .sum::<f64>(),
        2.0,
        "nothing else was received: {text}"
    );
    assert_eq!(
        total(&samples),
        sessions_before + 3.0,
        "the refused session was a session too: {text}"
    );
    assert_eq!(
        value(&samples, "bridgehead_delivery_latency_seconds_count", &[]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "bridgehead_delivery_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        2.0,
        "{text}"
    );
    assert!(value(&samples, "bridgehead_delivery_latency_seconds_sum", &[]) > 0.0);
    for (outcome, via) in [
        ("failed", "mailbox"),
        ("deferred", "mailbox"),
        ("failed", "none"),
    ] {
        assert_eq!(
            value(
                &samples,
                "bridgehead_deliveries_total",
                &[("outcome", outcome), ("via", via)]
            ),
            0.0,
            "{outcome} via {via}: {text}"
        );
    }
    for q in ["submission", "mailbox", "unreachable", "poison"] {
        assert!(
            samples
                .iter()
                .any(|(n, l, _)| n == "bridgehead_queue_messages"
                    && l.get("queue").map(String::as_str) == Some(q)),
            "queue {q}: {text}"
        );
        assert_eq!(
            samples
                .iter()
                .filter(|(n, l, _)| n == "bridgehead_queue_status"
                    && l.get("queue").map(String::as_str) == Some(q))
                .map(|(_, _, v)| v)
                .sum::<f64>(),
            1.0,
            "one status per queue: {text}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "bridgehead_dsn_sent_total",
            &[("action", "failed")]
        ),
        0.0
    );

    // 1.5 MB for bob (quota 1 MB): over quota, an NDR back to alice.
    let body_file = d.join("big.txt");
    std::fs::write(
        &body_file,
        format!("{}\r\n", "x".repeat(76)).repeat(1536 * 1024 / 78),
    )
    .unwrap();
    let big = format!("@{}", body_file.display());
    let (code, out) = swaks(&[
        "--server",
        &server,
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
        "--header",
        "Subject: too big",
        "--body",
        &big,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        eventually(10, || maildir_count(d, "alice@example.com") == 3),
        "the NDR reaches alice"
    );
    let settled = eventually(10, || {
        last = scrape(&s);
        delivered(&last.1) == 3.0
    });
    let (text, samples) = last;
    assert!(settled, "{text}");
    assert_eq!(
        value(
            &samples,
            "bridgehead_dsn_sent_total",
            &[("action", "failed")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "bridgehead_deliveries_total",
            &[("outcome", "failed"), ("via", "mailbox")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "bridgehead_messages_received_total",
            &[("source", "dsn")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "bridgehead_messages_received_total",
            &[("source", "Default Internet")]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(&samples, "bridgehead_delivery_latency_seconds_count", &[]),
        3.0,
        "the NDR's delivery too: {text}"
    );
    assert_eq!(maildir_count(d, "bob@example.com"), 0);
}
