//! The performance counters behind `/metrics` (PRODUCT §7), in the Prometheus
//! text exposition format (version 0.0.4). A small hand-written registry: plain
//! atomics for the fixed label sets, a mutex-guarded map for the families keyed by
//! a name an admin chose (receive connectors), and the queue lengths read from the
//! database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::dsn;
use crate::queue::actions::{QueueInfo, QueueStatus};

/// Upper bounds (seconds) of the delivery latency histogram; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Upper bounds (seconds) of the accept latency histogram (end of the message
/// data to the reply: spool fsync and queue commit); `+Inf` is implied.
pub const ACCEPT_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What happened to one recipient in one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Deferred,
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Delivered, Outcome::Deferred, Outcome::Failed];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Deferred => "deferred",
            Outcome::Failed => "failed",
        }
    }
}

/// How the attempt was made: into a local Maildir, over outbound SMTP, or not at
/// all (decided without a delivery attempt: unknown recipient, mail loop, no
/// send connector covers the domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Mailbox,
    Smtp,
    None,
}

impl Via {
    const ALL: [Via; 3] = [Via::Mailbox, Via::Smtp, Via::None];

    fn as_str(self) -> &'static str {
        match self {
            Via::Mailbox => "mailbox",
            Via::Smtp => "smtp",
            Via::None => "none",
        }
    }
}

const DSN_ACTIONS: [dsn::Action; 4] = [
    dsn::Action::Failed,
    dsn::Action::Delayed,
    dsn::Action::Delivered,
    dsn::Action::Relayed,
];

#[derive(Default, Clone, Copy)]
struct SessionCounts {
    active: u64,
    total: u64,
}

/// The process-wide counters; one shared `Arc<Metrics>`.
pub struct Metrics {
    received: Mutex<BTreeMap<String, u64>>,
    deliveries: [[AtomicU64; 3]; 3],
    dsn_sent: [AtomicU64; 4],
    sessions: Mutex<BTreeMap<String, SessionCounts>>,
    latency: Histogram,
    accept: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            received: Mutex::default(),
            deliveries: Default::default(),
            dsn_sent: Default::default(),
            sessions: Mutex::default(),
            latency: Histogram::new(&LATENCY_BUCKETS),
            accept: Histogram::new(&ACCEPT_BUCKETS),
        }
    }
}

/// A fixed-bucket histogram: one atomic per bucket (not cumulative; summed at
/// render), the sum in microseconds.
struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` slots; the last is `+Inf`.
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// Counts one open SMTP session in `smtp_sessions_active` until dropped.
pub struct SessionGuard<'a> {
    metrics: &'a Metrics,
    connector: String,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.metrics.sessions.lock()
            && let Some(c) = m.get_mut(&self.connector)
        {
            c.active = c.active.saturating_sub(1);
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A message committed to the queue; `source` is the receive connector's
    /// name, `pickup` or `dsn` (the envelope's source).
    pub fn message_received(&self, source: &str) {
        if let Ok(mut m) = self.received.lock() {
            match m.get_mut(source) {
                Some(n) => *n += 1,
                None => {
                    m.insert(source.to_string(), 1);
                }
            }
        }
    }

    /// One recipient's delivery attempt, recorded after it is committed.
    pub fn delivery(&self, outcome: Outcome, via: Via) {
        self.deliveries(outcome, via, 1);
    }

    /// `n` recipients with the same outcome.
    pub fn deliveries(&self, outcome: Outcome, via: Via, n: u64) {
        if n > 0 {
            self.deliveries[outcome as usize][via as usize].fetch_add(n, Relaxed);
        }
    }

    /// Time from a message's arrival to a recipient's final delivery.
    /// End of a message's data to the reply (250 once it is durable).
    pub fn accept_latency(&self, d: Duration) {
        self.accept.observe(d);
    }

    pub fn delivery_latency(&self, d: Duration) {
        self.latency.observe(d);
    }

    /// A delivery status notification queued.
    pub fn dsn_sent(&self, action: dsn::Action) {
        if let Some(i) = DSN_ACTIONS.iter().position(|a| *a == action) {
            self.dsn_sent[i].fetch_add(1, Relaxed);
        }
    }

    /// An SMTP session admitted on `connector`; it counts as active until the
    /// guard is dropped.
    pub fn session_started(&self, connector: &str) -> SessionGuard<'_> {
        if let Ok(mut m) = self.sessions.lock() {
            let c = match m.get_mut(connector) {
                Some(c) => c,
                None => m.entry(connector.to_string()).or_default(),
            };
            c.active += 1;
            c.total += 1;
        }
        SessionGuard {
            metrics: self,
            connector: connector.to_string(),
        }
    }

    /// The exposition text; `queues` is [`crate::queue::actions::list_queues`]
    /// at scrape time.
    pub fn render(&self, queues: &[QueueInfo]) -> String {
        let mut out = String::with_capacity(4096);
        let received = self.received.lock().map(|m| m.clone()).unwrap_or_default();
        family(
            &mut out,
            "bridgehead_messages_received_total",
            "counter",
            "Messages accepted into the queue, by source (receive connector name, pickup or dsn).",
        );
        for (source, n) in &received {
            sample(
                &mut out,
                "bridgehead_messages_received_total",
                &[("source", source)],
                *n,
            );
        }

        family(
            &mut out,
            "bridgehead_deliveries_total",
            "counter",
            "Recipient delivery attempts by outcome and path (mailbox, smtp, or none when decided without an attempt).",
        );
        for o in Outcome::ALL {
            for v in Via::ALL {
                let n = self.deliveries[o as usize][v as usize].load(Relaxed);
                sample(
                    &mut out,
                    "bridgehead_deliveries_total",
                    &[("outcome", o.as_str()), ("via", v.as_str())],
                    n,
                );
            }
        }

        histogram(
            &mut out,
            "bridgehead_delivery_latency_seconds",
            "Time from a message's arrival to the final delivery of a recipient.",
            &self.latency,
        );
        histogram(
            &mut out,
            "bridgehead_accept_latency_seconds",
            "Time from the end of a message's data to the reply (the 250 waits for the spool fsync and the queue commit).",
            &self.accept,
        );

        family(
            &mut out,
            "bridgehead_dsn_sent_total",
            "counter",
            "Delivery status notifications queued, by action.",
        );
        for (i, a) in DSN_ACTIONS.iter().enumerate() {
            sample(
                &mut out,
                "bridgehead_dsn_sent_total",
                &[("action", a.as_str())],
                self.dsn_sent[i].load(Relaxed),
            );
        }

        let sessions = self.sessions.lock().map(|m| m.clone()).unwrap_or_default();
        family(
            &mut out,
            "bridgehead_smtp_sessions_active",
            "gauge",
            "SMTP sessions open now, by receive connector.",
        );
        for (c, s) in &sessions {
            sample(
                &mut out,
                "bridgehead_smtp_sessions_active",
                &[("connector", c)],
                s.active,
            );
        }
        family(
            &mut out,
            "bridgehead_smtp_sessions_total",
            "counter",
            "SMTP sessions admitted since start, by receive connector.",
        );
        for (c, s) in &sessions {
            sample(
                &mut out,
                "bridgehead_smtp_sessions_total",
                &[("connector", c)],
                s.total,
            );
        }

        family(
            &mut out,
            "bridgehead_queue_messages",
            "gauge",
            "Messages in each queue (submission, mailbox, unreachable, poison, remote next hops).",
        );
        for q in queues {
            sample(
                &mut out,
                "bridgehead_queue_messages",
                &[("queue", &q.name)],
                q.messages as u64,
            );
        }
        family(
            &mut out,
            "bridgehead_queue_status",
            "gauge",
            "The status of each queue: 1 for the current one of active, ready, retry, suspended.",
        );
        for q in queues {
            for (status, name) in [
                (QueueStatus::Active, "active"),
                (QueueStatus::Ready, "ready"),
                (QueueStatus::Retry, "retry"),
                (QueueStatus::Suspended, "suspended"),
            ] {
                sample(
                    &mut out,
                    "bridgehead_queue_status",
                    &[("queue", &q.name), ("status", name)],
                    u64::from(q.status == status),
                );
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value per the text format: backslash, double quote and line feed
/// escaped.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    family(out, name, "histogram", help);
    let mut cumulative = 0u64;
    for (i, b) in h.buckets.iter().enumerate() {
        cumulative += b.load(Relaxed);
        let le = h
            .bounds
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |v| v.to_string());
        sample(out, &format!("{name}_bucket"), &[("le", &le)], cumulative);
    }
    let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {cumulative}");
}

pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, status: QueueStatus, messages: usize) -> QueueInfo {
        QueueInfo {
            name: name.into(),
            display_name: name.into(),
            status,
            messages,
            next_retry: None,
            last_error: None,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix}:\n{text}"))
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("plain name"), "plain name");
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
        let m = Metrics::new();
        let _g = m.session_started("we\"ird\\\nname");
        let text = m.render(&[]);
        assert!(
            text.contains(r#"bridgehead_smtp_sessions_active{connector="we\"ird\\\nname"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn renders_help_type_and_samples() {
        let m = Metrics::new();
        m.message_received("Default Internet");
        m.message_received("Default Internet");
        m.message_received("pickup");
        m.delivery(Outcome::Delivered, Via::Mailbox);
        m.delivery(Outcome::Deferred, Via::Smtp);
        m.dsn_sent(dsn::Action::Failed);
        let text = m.render(&[
            queue("mailbox", QueueStatus::Active, 3),
            queue("example.net", QueueStatus::Retry, 1),
        ]);
        for name in [
            "bridgehead_messages_received_total counter",
            "bridgehead_deliveries_total counter",
            "bridgehead_delivery_latency_seconds histogram",
            "bridgehead_dsn_sent_total counter",
            "bridgehead_smtp_sessions_active gauge",
            "bridgehead_smtp_sessions_total counter",
            "bridgehead_queue_messages gauge",
            "bridgehead_queue_status gauge",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name}\n")),
                "{name}:\n{text}"
            );
            let family = name.split(' ').next().unwrap();
            assert!(text.contains(&format!("# HELP {family} ")), "{text}");
        }
        assert!(
            text.contains("bridgehead_messages_received_total{source=\"Default Internet\"} 2\n")
        );
        assert!(text.contains("bridgehead_messages_received_total{source=\"pickup\"} 1\n"));
        assert!(
            text.contains("bridgehead_deliveries_total{outcome=\"delivered\",via=\"mailbox\"} 1\n")
        );
        assert!(
            text.contains("bridgehead_deliveries_total{outcome=\"deferred\",via=\"smtp\"} 1\n")
        );
        assert!(text.contains("bridgehead_deliveries_total{outcome=\"failed\",via=\"none\"} 0\n"));
        assert!(text.contains("bridgehead_dsn_sent_total{action=\"failed\"} 1\n"));
        assert!(text.contains("bridgehead_dsn_sent_total{action=\"relayed\"} 0\n"));
        assert!(text.contains("bridgehead_queue_messages{queue=\"mailbox\"} 3\n"));
        assert!(
            text.contains("bridgehead_queue_status{queue=\"example.net\",status=\"retry\"} 1\n")
        );
        assert!(
            text.contains("bridgehead_queue_status{queue=\"example.net\",status=\"active\"} 0\n")
        );
        // Every sample line is `name{labels} value` with a numeric value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').expect(l);
            assert!(value.parse::<f64>().is_ok(), "{l}");
            assert!(
                series
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic()),
                "{l}"
            );
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        for ms in [5, 10, 70, 1_000, 4_000_000] {
            m.delivery_latency(Duration::from_millis(ms));
        }
        let text = m.render(&[]);
        let value = |prefix: &str| -> String {
            line(&text, prefix).rsplit_once(' ').unwrap().1.to_string()
        };
        let b = |le: &str| {
            value(&format!(
                "bridgehead_delivery_latency_seconds_bucket{{le=\"{le}\"}}"
            ))
        };
        assert_eq!(b("0.01"), "2", "5 ms and exactly 10 ms");
        assert_eq!(b("0.05"), "2");
        assert_eq!(b("0.1"), "3");
        assert_eq!(b("1"), "4", "exactly one second");
        assert_eq!(b("3600"), "4");
        assert_eq!(b("+Inf"), "5");
        assert_eq!(value("bridgehead_delivery_latency_seconds_count"), "5");
        let sum: f64 = value("bridgehead_delivery_latency_seconds_sum")
            .parse()
            .unwrap();
        assert!((sum - 4001.085).abs() < 1e-6, "{sum}");
        // Bucket lines come in increasing `le` order, ending with +Inf.
        let les: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("bridgehead_delivery_latency_seconds_bucket"))
            .map(|l| l.split('"').nth(1).unwrap())
            .collect();
        assert_eq!(les.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(les.last(), Some(&"+Inf"));
    }

    #[test]
    fn session_gauge_follows_guards() {
        let m = Metrics::new();
        let a = m.session_started("Default Internet");
        let b = m.session_started("Default Internet");
        assert!(
            m.render(&[])
                .contains("bridgehead_smtp_sessions_active{connector=\"Default Internet\"} 2\n")
        );
        drop(a);
        drop(b);
        let text = m.render(&[]);
        assert!(
            text.contains("bridgehead_smtp_sessions_active{connector=\"Default Internet\"} 0\n")
        );
        assert!(
            text.contains("bridgehead_smtp_sessions_total{connector=\"Default Internet\"} 2\n")
        );
    }
}
