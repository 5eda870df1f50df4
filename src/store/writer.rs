//! The queue's one database writer (group commit).
//!
//! SQLite lets one connection write at a time; every other writer that finds
//! the lock taken sleeps in the busy handler (1, 2, 5, 10 … ms), which showed as
//! 90 ms p99 accept latency when receive sessions and queue workers wrote
//! through the pool side by side. So every hot-path write — new envelopes from
//! the receive side, the queue manager's per-message state — is a *job* sent to
//! one thread that owns one connection. It runs every job waiting at that
//! moment in one `BEGIN IMMEDIATE … COMMIT` (one WAL fsync for all of them; the
//! database runs `synchronous=FULL`) and answers each caller only after the
//! commit: a caller that is told `Ok` has its writes on disk.
//!
//! The thread uses SQLite synchronously (rusqlite, the same libsqlite3 as
//! sqlx): through sqlx every statement is a round trip to the connection's
//! worker thread, and on a busy two-core machine those hand-offs, not SQLite,
//! made up most of the 0.6 ms each job cost.
//!
//! Should one job fail, the batch is rolled back and each job runs again alone,
//! in its own transaction, so a bad job fails only itself. (Savepoints would do
//! the same, but cost two more statements per job on every batch.) So a job may
//! run twice: it must only write, from data it owns.
//!
//! Reads, and rare writes (admin actions, the CLI), use the sqlx pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError};

/// At most this many jobs share one transaction.
const MAX_BATCH: usize = 256;

/// What a job does with the connection (already inside the transaction). It may
/// be called twice (see the module doc).
pub type Work = Box<dyn Fn(&Connection) -> rusqlite::Result<()> + Send + Sync>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// A handle on the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the writer's own connection to the store's database file and
    /// starts its thread.
    pub fn start(store: &Store) -> Result<Writer, StoreError> {
        let conn = Connection::open(store.path())?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Batch(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// Runs `work` in the next group commit; returns once it is committed.
    pub async fn run<F>(&self, work: F) -> Result<(), StoreError>
    where
        F: Fn(&Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job {
                work: Box::new(work),
                done,
            })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = transaction(&conn, &jobs);
        tracing::debug!(
            jobs = jobs.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "queue batch"
        );
        let results = match outcome {
            Ok(()) => jobs.iter().map(|_| Ok(())).collect(),
            Err(e) if jobs.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "queue batch failed; running its jobs one by one");
                jobs.iter()
                    .map(|job| transaction(&conn, std::slice::from_ref(job)))
                    .collect::<Vec<_>>()
            }
        };
        for (job, result) in jobs.drain(..).zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// Runs the jobs in one transaction, all or nothing.
fn transaction(conn: &Connection, jobs: &[Job]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut result = Ok(());
    for job in jobs {
        result = match catch_unwind(AssertUnwindSafe(|| (job.work)(conn))) {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Batch("a database job panicked".into())),
        };
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = conn.execute_batch("COMMIT").map_err(StoreError::from);
    }
    if let Err(e) = &result
        && let Err(r) = conn.execute_batch("ROLLBACK")
    {
        tracing::debug!(error = %r, "rollback after {e}");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM queue_state")
            .fetch_one(store.pool())
            .await
            .unwrap_or(-1)
    }

    fn insert(conn: &Connection, name: &str) -> rusqlite::Result<()> {
        conn.execute("INSERT INTO queue_state (name) VALUES (?1)", [name])
            .map(|_| ())
    }

    #[tokio::test]
    async fn a_failing_job_is_rolled_back_alone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("db.sqlite")).await?;
        let writer = Writer::start(&store)?;
        // Three jobs in flight together (one batch): the middle one inserts,
        // then fails; the batch is undone and each job runs again alone.
        let (a, b, c) = tokio::join!(
            writer.run(|conn| insert(conn, "a")),
            writer.run(|conn| {
                insert(conn, "b")?;
                insert(conn, "a") // duplicate primary key
            }),
            writer.run(|conn| insert(conn, "c")),
        );
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(b.is_err());
        assert_eq!(count(&store).await, 2, "b's first insert must be undone");
        Ok(())
    }
}
