//! The queue (PRODUCT §5). Today: the spool and the durable submit path that the
//! receive side calls before it answers 250. The queue manager (categorizer,
//! per-next-hop queues, retries) builds on these tables.

pub mod actions;
pub mod categorizer;
pub mod manager;
pub mod pickup;
pub mod pickup_dir;
pub mod schedule;
pub mod spool;
pub mod submit;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A queue id: 11 hex digits of milliseconds since 1970 and 5 of a per-process
/// counter that starts at a random value, so ids sort by arrival and do not repeat
/// across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

static COUNTER: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();

impl QueueId {
    pub fn generate() -> QueueId {
        let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>()));
        let n = counter.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF;
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0) as u64;
        QueueId(format!("{:011X}{:05X}", ms & 0xFFF_FFFF_FFFF, n))
    }

    /// Accepts only what `generate` makes, so an id can name a file safely.
    pub fn parse(s: &str) -> Option<QueueId> {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| QueueId(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_parse() {
        let a = QueueId::generate();
        let b = QueueId::generate();
        assert_ne!(a, b);
        assert_eq!(QueueId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(QueueId::parse("../../etc/passwd"), None);
    }
}
