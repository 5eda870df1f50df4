//! The queue manager's schedule: when each message is due, in memory (the truth
//! is in SQLite; start-up and admin actions rebuild it from there).
//!
//! Messages that wait only for a next hop in Retry (its servers could not be
//! reached) are not scheduled one by one: they are *parked* behind the hop's
//! [`Gate`]. When the hop's retry time comes, one of them goes through as the
//! probe; if it gets a conversation with a server the gate opens and all of
//! them are due at once, otherwise the gate closes again until the next retry
//! time. So 100 000 messages behind a dead smart host cost one connection
//! attempt and one message's work per retry, not 100 000 — and mail for other
//! hops is never queued behind such a wave. A parked message still runs at its
//! own deadline (expiry, delay notice) if that comes before the gate opens.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::manager::parse_time;
use crate::store::queue::QueueStateRow;

/// When a processed message is due again.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Gone (every recipient final), suspended or poisoned: not scheduled.
    Never,
    At(DateTime<Utc>),
    /// Waits only for `hop`, in Retry until `until`; must still run by
    /// `deadline` (expiry or delay notice).
    Parked {
        hop: String,
        until: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
}

/// What came due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    Message(String),
    /// A gate's retry time: let one parked message through.
    Hop(String),
}

/// The messages parked behind one next hop in Retry.
#[derive(Debug)]
struct Gate {
    until: DateTime<Utc>,
    /// Parked message ids and their deadlines.
    parked: HashMap<String, DateTime<Utc>>,
    /// The message sent through to try the hop, while it runs.
    probe: Option<String>,
}

impl Gate {
    fn new(until: DateTime<Utc>) -> Gate {
        Gate {
            until,
            parked: HashMap::new(),
            probe: None,
        }
    }
}

/// A message as the schedule is rebuilt from the database.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub due: DateTime<Utc>,
    /// The one next hop all its waiting recipients share, and when the
    /// message must run anyway (expiry, delay notice).
    pub hop: Option<(String, DateTime<Utc>)>,
}

#[derive(Default)]
pub struct Schedule {
    heap: Mutex<BinaryHeap<Reverse<(i64, Due)>>>,
    gates: Mutex<HashMap<String, Gate>>,
    pub in_flight: Mutex<HashSet<String>>,
    /// The queue-level state (suspended queues, hops in Retry), read from the
    /// database at start-up, after admin actions and after the manager itself
    /// changed a hop's state; not once per message.
    states: Mutex<Arc<Vec<QueueStateRow>>>,
    /// The `queue_version` those states were read at.
    states_version: std::sync::atomic::AtomicI64,
    pub wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every
    // critical section is a few map or heap operations), so go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Schedule {
    pub fn push(&self, due: DateTime<Utc>, id: String) {
        self.push_due(due, Due::Message(id));
    }

    /// A message just accepted: ahead of everything already due (like
    /// Postfix's incoming queue before its deferred one), so new mail is not
    /// held up by a wave of retries. Among themselves in arrival order (queue
    /// ids sort by time).
    pub fn push_new(&self, id: String) {
        lock(&self.heap).push(Reverse((0, Due::Message(id))));
        self.wake.notify_one();
    }

    fn push_due(&self, due: DateTime<Utc>, what: Due) {
        lock(&self.heap).push(Reverse((due.timestamp_millis(), what)));
        self.wake.notify_one();
    }

    pub fn states(&self) -> Arc<Vec<QueueStateRow>> {
        lock(&self.states).clone()
    }

    pub fn set_states(&self, version: i64, states: Vec<QueueStateRow>) {
        *lock(&self.states) = Arc::new(states);
        self.states_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the states were read at `version` of the queue.
    pub fn states_current(&self, version: i64) -> bool {
        self.states_version
            .load(std::sync::atomic::Ordering::Relaxed)
            == version
    }

    /// Rebuilds the heap from the database (start-up, admin actions). Messages
    /// already parked stay parked; if their hop is no longer in Retry (an
    /// admin's "retry now", Exchange's *Force Connection*) the gate's probe
    /// goes now, and the gate opens if it gets through. A message that waits
    /// only for a hop in Retry is parked behind it (so a restart with 100 000
    /// messages behind a dead smart host does not run them all).
    pub fn replace_all(&self, entries: Vec<Entry>) {
        let now = Utc::now();
        let states = self.states();
        let retry_until = |hop: &str| {
            states
                .iter()
                .find(|s| s.name == hop && !s.suspended)
                .and_then(|s| s.retry_at.as_deref().and_then(parse_time))
                .filter(|t| *t > now)
        };
        let in_flight = lock(&self.in_flight).clone();
        let mut gates = lock(&self.gates);
        for (hop, gate) in gates.iter_mut() {
            if retry_until(hop).is_none() {
                gate.until = gate.until.min(now);
            }
        }
        let parked: HashSet<String> = gates
            .values()
            .flat_map(|g| g.parked.keys().cloned())
            .collect();
        let mut heap = lock(&self.heap);
        heap.clear();
        for e in entries {
            if parked.contains(&e.id) {
                continue;
            }
            let gate = e
                .hop
                .as_ref()
                .filter(|_| !in_flight.contains(&e.id))
                .and_then(|(hop, deadline)| {
                    let until = retry_until(hop).filter(|u| u <= deadline)?;
                    Some((hop, until, *deadline))
                });
            match gate {
                Some((hop, until, deadline)) => {
                    let gate = gates.entry(hop.clone()).or_insert_with(|| Gate::new(until));
                    if deadline < gate.until {
                        heap.push(Reverse((deadline.timestamp_millis(), Due::Message(e.id))));
                    } else {
                        gate.parked.insert(e.id, deadline);
                    }
                }
                None => heap.push(Reverse((e.due.timestamp_millis(), Due::Message(e.id)))),
            }
        }
        for (hop, gate) in gates.iter() {
            heap.push(Reverse((
                gate.until.timestamp_millis(),
                Due::Hop(hop.clone()),
            )));
        }
        drop(heap);
        self.wake.notify_one();
    }

    /// Up to `limit` of what is due, and how long until the next thing is (zero
    /// if more is due already: taking a few at a time lets new mail overtake a
    /// backlog). A due gate yields its probe as a message.
    pub fn take_due(&self, now: DateTime<Utc>, limit: usize) -> (Vec<String>, Option<Duration>) {
        let mut due = Vec::new();
        let mut hops = Vec::new();
        let mut wait = None;
        {
            let mut heap = lock(&self.heap);
            let now_ms = now.timestamp_millis();
            while let Some(Reverse((t, _))) = heap.peek() {
                if *t > now_ms {
                    wait = Some(Duration::from_millis((*t - now_ms) as u64));
                    break;
                }
                if due.len() + hops.len() >= limit {
                    wait = Some(Duration::ZERO);
                    break;
                }
                match heap.pop() {
                    Some(Reverse((_, Due::Message(id)))) => due.push(id),
                    Some(Reverse((_, Due::Hop(hop)))) => hops.push(hop),
                    None => break,
                }
            }
        }
        let mut gates = lock(&self.gates);
        for hop in hops {
            let Some(gate) = gates.get_mut(&hop) else {
                continue; // opened meanwhile
            };
            if gate.until > now || gate.probe.is_some() {
                continue; // an older entry of a gate that moved, or a probe runs
            }
            // The oldest parked message (queue ids sort by arrival) tries the hop.
            match gate.parked.keys().min().cloned() {
                Some(id) => {
                    gate.parked.remove(&id);
                    gate.probe = Some(id.clone());
                    due.push(id);
                }
                None => {
                    gates.remove(&hop);
                }
            }
        }
        (due, wait)
    }

    /// Schedules a message after a run (and takes it out of `in_flight`).
    pub fn settle(&self, id: String, next: Next) {
        lock(&self.in_flight).remove(&id);
        let mut gates = lock(&self.gates);
        let probed = gates
            .iter()
            .find(|(_, g)| g.probe.as_deref() == Some(id.as_str()))
            .map(|(hop, _)| hop.clone());
        match next {
            Next::Parked {
                hop,
                until,
                deadline,
            } => {
                if let Some(other) = probed.as_ref().filter(|h| **h != hop) {
                    // It went to another hop after all: that one is not known dead.
                    self.open(&mut gates, other);
                }
                let gate = gates.entry(hop.clone()).or_insert_with(|| Gate::new(until));
                let failed_probe = gate.probe.as_deref() == Some(id.as_str());
                if failed_probe || until > gate.until || gate.parked.is_empty() {
                    gate.probe = None;
                    gate.until = until;
                    // Whoever must run before the next try runs at its deadline.
                    let early: Vec<(String, DateTime<Utc>)> = gate
                        .parked
                        .iter()
                        .filter(|(_, d)| **d <= until)
                        .map(|(id, d)| (id.clone(), *d))
                        .collect();
                    for (id, d) in early {
                        gate.parked.remove(&id);
                        self.push(d, id);
                    }
                    self.push_due(until, Due::Hop(hop.clone()));
                }
                if deadline < gate.until {
                    // The gate (armed by another message) opens too late for it.
                    self.push(deadline, id);
                } else {
                    gate.parked.insert(id, deadline);
                }
            }
            other => {
                if let Some(hop) = probed {
                    self.open(&mut gates, &hop);
                }
                if let Next::At(t) = other {
                    self.push(t, id);
                }
            }
        }
    }

    /// The hop answered: every message parked behind it is due now.
    fn open(&self, gates: &mut HashMap<String, Gate>, hop: &str) {
        if let Some(gate) = gates.remove(hop) {
            let now = Utc::now();
            for id in gate.parked.into_keys() {
                self.push(now, id);
            }
        }
    }

    /// Messages parked behind `hop`.
    #[cfg(test)]
    pub fn parked(&self, hop: &str) -> usize {
        lock(&self.gates).get(hop).map_or(0, |g| g.parked.len())
    }
}

/// A message being processed. However processing ends — even by a panic —
/// the message leaves `in_flight` and is scheduled again (after a panic in 30 s,
/// where `processing_count` sends it to Poison on the second failure), so it
/// can never be stranded.
pub struct InFlight {
    pub schedule: Arc<Schedule>,
    pub id: Option<String>,
}

impl InFlight {
    pub fn finish(mut self, next: Next) {
        if let Some(id) = self.id.take() {
            self.schedule.settle(id, next);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            tracing::error!(queue_id = %id, "processing ended abnormally; retrying in 30 s");
            let at = Utc::now() + chrono::Duration::seconds(30);
            self.schedule.settle(id, Next::At(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn parked(hop: &str, until: DateTime<Utc>, deadline: DateTime<Utc>) -> Next {
        Next::Parked {
            hop: hop.into(),
            until,
            deadline,
        }
    }

    #[test]
    fn one_probe_per_retry_then_everyone_when_the_hop_answers() {
        let s = Schedule::default();
        let t0 = Utc::now();
        let far = t0 + secs(86_400);
        for id in ["A1", "A2", "A3"] {
            s.settle(id.into(), parked("smart", t0 + secs(60), far));
        }
        assert_eq!(s.parked("smart"), 3);
        // Before the retry time nothing is due.
        assert!(s.take_due(t0 + secs(30), 100).0.is_empty());
        // At the retry time exactly one (the oldest) goes through.
        assert_eq!(s.take_due(t0 + secs(61), 100).0, vec!["A1".to_string()]);
        // It fails again: parked until the next retry; still nothing else due.
        s.settle("A1".into(), parked("smart", t0 + secs(180), far));
        assert_eq!(s.parked("smart"), 3);
        assert!(s.take_due(t0 + secs(120), 100).0.is_empty());
        assert_eq!(s.take_due(t0 + secs(181), 100).0, vec!["A1".to_string()]);
        // This time the hop answers: all the others are due at once.
        s.settle("A1".into(), Next::Never);
        let mut due = s.take_due(Utc::now() + secs(1), 100).0;
        due.sort();
        assert_eq!(due, vec!["A2".to_string(), "A3".to_string()]);
        assert_eq!(s.parked("smart"), 0);
    }

    #[test]
    fn a_parked_message_still_runs_at_its_deadline() {
        let s = Schedule::default();
        let t0 = Utc::now();
        s.settle(
            "B1".into(),
            parked("smart", t0 + secs(60), t0 + secs(86_400)),
        );
        // B2 must send a delay notice at +100 s, before the next try (+300 s).
        s.settle("B2".into(), parked("smart", t0 + secs(60), t0 + secs(100)));
        assert_eq!(s.take_due(t0 + secs(61), 100).0, vec!["B1".to_string()]);
        s.settle(
            "B1".into(),
            parked("smart", t0 + secs(300), t0 + secs(86_400)),
        );
        assert_eq!(s.take_due(t0 + secs(101), 100).0, vec!["B2".to_string()]);
        assert_eq!(s.parked("smart"), 1);
    }

    fn entry(id: &str, hop: Option<(&str, DateTime<Utc>)>) -> Entry {
        Entry {
            id: id.into(),
            due: Utc::now(),
            hop: hop.map(|(h, d)| (h.to_string(), d)),
        }
    }

    fn in_retry(s: &Schedule, version: i64, hop: &str, until: DateTime<Utc>) {
        s.set_states(
            version,
            vec![QueueStateRow {
                name: hop.into(),
                retry_at: Some(super::super::manager::format_time(until)),
                ..QueueStateRow::default()
            }],
        );
    }

    #[test]
    fn a_message_whose_deadline_comes_before_the_gate_is_not_held_by_it() {
        let s = Schedule::default();
        let t0 = Utc::now();
        // E1 arms the gate until +120 s; E2's own next try is at +60 s and its
        // deadline (a delay notice) at +90 s: it must run at +90 s.
        s.settle(
            "E1".into(),
            parked("smart", t0 + secs(120), t0 + secs(86_400)),
        );
        s.settle("E2".into(), parked("smart", t0 + secs(60), t0 + secs(90)));
        assert_eq!(s.parked("smart"), 1);
        assert!(s.take_due(t0 + secs(89), 100).0.is_empty());
        assert_eq!(s.take_due(t0 + secs(91), 100).0, vec!["E2".to_string()]);
    }

    #[test]
    fn a_rebuild_keeps_parked_messages_and_retry_now_sends_the_probe() {
        let s = Schedule::default();
        let t0 = Utc::now();
        let until = t0 + secs(600);
        in_retry(&s, 1, "smart", until);
        s.settle("C1".into(), parked("smart", until, t0 + secs(86_400)));
        s.settle("C3".into(), parked("smart", until, t0 + secs(86_400)));
        let entries = vec![entry("C1", None), entry("C2", None), entry("C3", None)];
        s.replace_all(entries.clone());
        assert_eq!(s.take_due(t0 + secs(1), 100).0, vec!["C2".to_string()]);
        // An admin's "retry now" cleared the hop's Retry: one probe goes now.
        s.set_states(2, Vec::new());
        s.replace_all(entries);
        let mut due = s.take_due(Utc::now() + secs(1), 100).0;
        due.sort();
        assert_eq!(due, vec!["C1".to_string(), "C2".to_string()]);
        assert_eq!(s.parked("smart"), 1);
        // It got through: the rest follow.
        s.settle("C1".into(), Next::Never);
        assert_eq!(
            s.take_due(Utc::now() + secs(1), 100).0,
            vec!["C3".to_string()]
        );
    }

    #[test]
    fn a_rebuild_parks_messages_that_wait_only_for_a_hop_in_retry() {
        let s = Schedule::default();
        let t0 = Utc::now();
        let until = t0 + secs(600);
        in_retry(&s, 1, "smart", until);
        s.replace_all(vec![
            entry("D1", Some(("smart", t0 + secs(86_400)))),
            entry("D2", Some(("smart", t0 + secs(86_400)))),
            // Its delay notice is due before the hop's retry: it runs.
            entry("D3", Some(("smart", t0 + secs(60)))),
            // Another hop, not in Retry: it runs.
            entry("D4", Some(("other", t0 + secs(86_400)))),
        ]);
        assert_eq!(s.parked("smart"), 2);
        let mut due = s.take_due(t0 + secs(1), 100).0;
        due.sort();
        assert_eq!(due, vec!["D3".to_string(), "D4".to_string()]);
        assert_eq!(s.take_due(until + secs(1), 100).0, vec!["D1".to_string()]);
    }

    #[test]
    fn new_mail_overtakes_a_backlog_taken_a_few_at_a_time() {
        let s = Schedule::default();
        let t0 = Utc::now();
        for i in 0..10 {
            s.push(t0 - secs(60), format!("OLD{i}"));
        }
        let (first, wait) = s.take_due(t0, 4);
        assert_eq!(first.len(), 4);
        assert_eq!(wait, Some(Duration::ZERO), "more is due");
        s.push_new("NEW2".into());
        s.push_new("NEW1".into());
        let (next, _) = s.take_due(t0, 4);
        assert_eq!(&next[..2], ["NEW1".to_string(), "NEW2".to_string()]);
        assert!(next[2].starts_with("OLD"));
    }
}
