//! SQL for the queue: message envelopes, per-recipient state, queue-level admin
//! state and the queue change counter. The queue manager decides; this writes.

use sqlx::{FromRow, SqliteConnection, SqlitePool};

use super::StoreError;

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: String,
    pub received_at: String,
    pub sender: String,
    pub size: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub body_type: String,
    pub smtputf8: bool,
    pub source: String,
    pub client_ip: Option<String>,
    pub stage: String,
    pub suspended: bool,
    pub poisoned: bool,
    pub processing_count: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// The queue's change counter when the row was read (`load_message` only):
    /// the manager rereads its cached queue states when it moved.
    #[sqlx(default)]
    pub queue_version: i64,
}

#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct RecipientRow {
    pub message_id: String,
    pub seq: i64,
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Option<String>,
    pub status: String,
    pub parent_seq: Option<i64>,
    pub next_hop: Option<String>,
    pub mailbox_id: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub status_code: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
    pub delay_notified: bool,
    pub reported: bool,
}

impl RecipientRow {
    /// Still waiting for categorization or delivery.
    pub fn is_active(&self) -> bool {
        self.status == "pending" || self.status == "queued"
    }
}

const MESSAGE_COLUMNS: &str = "id, received_at, sender, size, message_id, subject, ret, envid, body_type, smtputf8, \
    source, client_ip, stage, suspended, poisoned, processing_count, next_attempt_at, last_error";

pub async fn load_message(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<(MessageRow, Vec<RecipientRow>)>, StoreError> {
    let mut conn = pool.acquire().await?;
    let Some(m) = sqlx::query_as::<_, MessageRow>(&format!(
        "SELECT {MESSAGE_COLUMNS}, (SELECT version FROM queue_version WHERE id = 1) AS queue_version \
         FROM messages WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let r = recipients(&mut conn, id).await?;
    Ok(Some((m, r)))
}

pub async fn recipients(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Vec<RecipientRow>, StoreError> {
    Ok(sqlx::query_as::<_, RecipientRow>(
        "SELECT * FROM recipients WHERE message_id = ? ORDER BY seq",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// One message as the schedule is (re)built from it.
#[derive(Debug, Clone, FromRow, Default)]
pub struct ScheduleRow {
    pub id: String,
    pub received_at: String,
    /// The earliest due time (`''`/NULL: now). Messages whose recipients are
    /// all final are due now (they only need cleaning up).
    pub due: Option<String>,
    /// The one next hop all its waiting recipients share, if they do.
    pub hop: Option<String>,
    /// A waiting recipient has not had its delay notice yet.
    pub delay_pending: bool,
}

/// Every message the manager runs (not suspended, not poisoned), for
/// (re)building the schedule.
pub async fn schedule(pool: &SqlitePool) -> Result<Vec<ScheduleRow>, StoreError> {
    Ok(sqlx::query_as::<_, ScheduleRow>(
        "SELECT m.id, m.received_at, \
           CASE WHEN m.stage = 'submission' THEN m.next_attempt_at \
                ELSE MIN(IFNULL(r.next_attempt_at, '')) END AS due, \
           CASE WHEN m.stage <> 'submission' \
                 AND COUNT(DISTINCT IFNULL(r.next_hop, '')) = 1 THEN MIN(r.next_hop) END AS hop, \
           IFNULL(MAX(r.delay_notified = 0), 0) AS delay_pending \
         FROM messages m LEFT JOIN recipients r \
           ON r.message_id = m.id AND r.status IN ('pending', 'queued') \
         WHERE m.suspended = 0 AND m.poisoned = 0 GROUP BY m.id",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn set_stage(
    conn: &mut SqliteConnection,
    id: &str,
    stage: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET stage = ? WHERE id = ?")
        .bind(stage)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_poisoned(
    conn: &mut SqliteConnection,
    id: &str,
    poisoned: bool,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(SET_POISONED)
        .bind(poisoned)
        .bind(error)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_suspended(
    pool: &SqlitePool,
    id: &str,
    suspended: bool,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE messages SET suspended = ? WHERE id = ?")
        .bind(suspended)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

const UPSERT_RECIPIENT: &str = "INSERT INTO recipients (message_id, seq, address, orcpt, notify, status, parent_seq, \
     next_hop, mailbox_id, attempts, next_attempt_at, status_code, diagnostic, remote_mta, delay_notified, reported) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (message_id, seq) DO UPDATE SET status = excluded.status, next_hop = excluded.next_hop, \
     mailbox_id = excluded.mailbox_id, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
     status_code = excluded.status_code, diagnostic = excluded.diagnostic, remote_mta = excluded.remote_mta, \
     delay_notified = excluded.delay_notified, reported = excluded.reported \
     WHERE recipients.status IN ('pending', 'queued') OR recipients.status = excluded.status";

const SET_POISONED: &str = "UPDATE messages SET poisoned = ?, processing_count = 0, last_error = IFNULL(?, last_error) \
     WHERE id = ?";

/// Inserts or updates a recipient row. A row that is already final (delivered,
/// failed, expanded, duplicate) only takes updates that keep its status (e.g.
/// `reported`): a queue worker holding a stale copy can never undo what an admin
/// action (remove) or another writer decided meanwhile.
pub async fn upsert_recipient(
    conn: &mut SqliteConnection,
    r: &RecipientRow,
) -> Result<(), StoreError> {
    sqlx::query(UPSERT_RECIPIENT)
        .bind(&r.message_id)
        .bind(r.seq)
        .bind(&r.address)
        .bind(&r.orcpt)
        .bind(&r.notify)
        .bind(&r.status)
        .bind(r.parent_seq)
        .bind(&r.next_hop)
        .bind(r.mailbox_id)
        .bind(r.attempts)
        .bind(&r.next_attempt_at)
        .bind(&r.status_code)
        .bind(&r.diagnostic)
        .bind(&r.remote_mta)
        .bind(r.delay_notified)
        .bind(r.reported)
        .execute(conn)
        .await?;
    Ok(())
}

// ---- queue-level state ----

#[derive(Debug, Clone, FromRow, Default)]
pub struct QueueStateRow {
    pub name: String,
    pub suspended: bool,
    pub retry_at: Option<String>,
    pub last_error: Option<String>,
}

pub async fn queue_states(pool: &SqlitePool) -> Result<Vec<QueueStateRow>, StoreError> {
    Ok(sqlx::query_as::<_, QueueStateRow>(
        "SELECT name, suspended, retry_at, last_error FROM queue_state",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn set_queue_suspended(
    pool: &SqlitePool,
    name: &str,
    suspended: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO queue_state (name, suspended) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET suspended = excluded.suspended",
    )
    .bind(name)
    .bind(suspended)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes every waiting recipient of a queue (or the submission stage) due now.
pub async fn retry_queue_now(pool: &SqlitePool, name: &str, now: &str) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let n = if name == "submission" {
        sqlx::query("UPDATE messages SET next_attempt_at = ? WHERE stage = 'submission'")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    } else {
        sqlx::query(
            "UPDATE recipients SET next_attempt_at = ? WHERE next_hop = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    sqlx::query("UPDATE queue_state SET retry_at = NULL WHERE name = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

pub async fn queue_version(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM queue_version WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// Tells a running server that the queue changed behind its back.
pub async fn bump_queue_version(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("UPDATE queue_version SET version = version + 1 WHERE id = 1")
        .execute(pool)
        .await?;
    Ok(())
}

/// One row per (queue, message) for the Queue Viewer.
#[derive(Debug, Clone, FromRow)]
pub struct QueueEntry {
    pub queue: String,
    pub id: String,
    pub sender: String,
    pub subject: Option<String>,
    pub size: i64,
    pub received_at: String,
    pub suspended: bool,
    pub recipients: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

/// Every message, placed in the queue(s) it waits in: `submission`, `poison`, or a
/// next hop (`mailbox`, `unreachable`, remote hops).
pub async fn entries(pool: &SqlitePool) -> Result<Vec<QueueEntry>, StoreError> {
    Ok(sqlx::query_as::<_, QueueEntry>(
        "SELECT CASE WHEN m.poisoned THEN 'poison' ELSE 'submission' END AS queue, m.id, m.sender, m.subject, m.size, \
                m.received_at, m.suspended, \
                (SELECT COUNT(*) FROM recipients r WHERE r.message_id = m.id) AS recipients, \
                m.next_attempt_at, m.last_error \
         FROM messages m WHERE m.poisoned = 1 OR m.stage = 'submission' \
         UNION ALL \
         SELECT r.next_hop AS queue, m.id, m.sender, m.subject, m.size, m.received_at, m.suspended, \
                COUNT(*) AS recipients, MIN(r.next_attempt_at) AS next_attempt_at, MAX(r.diagnostic) AS last_error \
         FROM messages m JOIN recipients r ON r.message_id = m.id \
         WHERE m.poisoned = 0 AND m.stage = 'categorized' AND r.status = 'queued' \
         GROUP BY r.next_hop, m.id \
         ORDER BY received_at",
    )
    .fetch_all(pool)
    .await?)
}

/// The queue manager's statements, run by the queue's writer thread
/// (`store::writer`, synchronous SQLite) inside its group commit.
pub mod writes {
    use rusqlite::{Connection, Result, params};

    use super::RecipientRow;

    /// See the async [`super::upsert_recipient`]: a final row keeps its status.
    pub fn upsert_recipient(conn: &Connection, r: &RecipientRow) -> Result<()> {
        conn.prepare_cached(super::UPSERT_RECIPIENT)?
            .execute(params![
                r.message_id,
                r.seq,
                r.address,
                r.orcpt,
                r.notify,
                r.status,
                r.parent_seq,
                r.next_hop,
                r.mailbox_id,
                r.attempts,
                r.next_attempt_at,
                r.status_code,
                r.diagnostic,
                r.remote_mta,
                r.delay_notified,
                r.reported,
            ])?;
        Ok(())
    }

    pub fn set_poisoned(conn: &Connection, id: &str, error: &str) -> Result<()> {
        conn.prepare_cached(super::SET_POISONED)?
            .execute(params![true, error, id])?;
        Ok(())
    }

    /// Counts a processing run before its first delivery attempt. A run that
    /// never ends (the process dies) leaves the count up; two of them send the
    /// message to Poison. `stage`, when given, is set in the same statement.
    pub fn begin_processing(conn: &Connection, id: &str, stage: Option<&str>) -> Result<()> {
        conn.prepare_cached(
            "UPDATE messages SET processing_count = processing_count + 1, stage = IFNULL(?, stage) \
             WHERE id = ?",
        )?
        .execute(params![stage, id])?;
        Ok(())
    }

    /// A run cut off by a graceful shutdown: not a failure of the message, so
    /// the count its start added is taken back (only abnormal ends count).
    pub fn cut_by_shutdown(conn: &Connection, id: &str) -> Result<()> {
        conn.prepare_cached(
            "UPDATE messages SET processing_count = MAX(processing_count - 1, 0) WHERE id = ?",
        )?
        .execute(params![id])?;
        Ok(())
    }

    /// A run that ended normally: the count starts over.
    pub fn end_processing(
        conn: &Connection,
        id: &str,
        next_attempt_at: Option<&str>,
    ) -> Result<()> {
        conn.prepare_cached(
            "UPDATE messages SET processing_count = 0, last_error = NULL, next_attempt_at = ? WHERE id = ?",
        )?
        .execute(params![next_attempt_at, id])?;
        Ok(())
    }

    /// A run that failed: it counts as one (at least `count`, the count it
    /// started from plus one), so a message that fails again goes to Poison.
    pub fn fail_processing(
        conn: &Connection,
        id: &str,
        count: i64,
        error: &str,
        next_attempt_at: &str,
    ) -> Result<()> {
        conn.prepare_cached(
            "UPDATE messages SET processing_count = MAX(processing_count, ?), last_error = ?, \
             next_attempt_at = ? WHERE id = ?",
        )?
        .execute(params![count, error, next_attempt_at, id])?;
        Ok(())
    }

    /// Forgets a message; its recipient rows go with it (ON DELETE CASCADE).
    pub fn delete_message(conn: &Connection, id: &str) -> Result<()> {
        conn.prepare_cached("DELETE FROM messages WHERE id = ?")?
            .execute([id])?;
        Ok(())
    }

    /// Records a next hop's connection trouble (the whole queue waits in Retry
    /// until `retry_at`), or clears it after a successful connection (`None`).
    pub fn set_hop_retry(conn: &Connection, name: &str, retry: Option<(&str, &str)>) -> Result<()> {
        match retry {
            Some((retry_at, last_error)) => {
                conn.prepare_cached(
                    "INSERT INTO queue_state (name, retry_at, last_error) VALUES (?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET retry_at = excluded.retry_at, last_error = excluded.last_error",
                )?
                .execute(params![name, retry_at, last_error])?;
            }
            None => {
                // A queue without admin state needs no row.
                conn.prepare_cached("DELETE FROM queue_state WHERE name = ? AND suspended = 0")?
                    .execute([name])?;
                conn.prepare_cached(
                    "UPDATE queue_state SET retry_at = NULL, last_error = NULL WHERE name = ?",
                )?
                .execute([name])?;
            }
        }
        Ok(())
    }
}
