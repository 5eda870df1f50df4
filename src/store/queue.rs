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
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
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

/// Messages with their earliest due time, for (re)building the schedule. Messages
/// whose recipients are all final are due now (they only need cleaning up).
pub async fn schedule(pool: &SqlitePool) -> Result<Vec<(String, Option<String>)>, StoreError> {
    Ok(sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT m.id, CASE WHEN m.stage = 'submission' THEN m.next_attempt_at \
         ELSE (SELECT MIN(IFNULL(r.next_attempt_at, '')) FROM recipients r \
               WHERE r.message_id = m.id AND r.status IN ('pending', 'queued')) END \
         FROM messages m WHERE m.suspended = 0 AND m.poisoned = 0",
    )
    .fetch_all(pool)
    .await?)
}

/// Counts this processing run before it starts (committed), returning the count
/// before the increment.
pub async fn begin_processing(pool: &SqlitePool, id: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE messages SET processing_count = processing_count + 1 WHERE id = ? RETURNING processing_count - 1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .unwrap_or(0))
}

pub async fn end_processing(
    conn: &mut SqliteConnection,
    id: &str,
    error: Option<&str>,
    next_attempt_at: Option<&str>,
) -> Result<(), StoreError> {
    let sql = if error.is_some() {
        // Keep the count: a message that fails again goes to Poison.
        "UPDATE messages SET last_error = ?, next_attempt_at = ? WHERE id = ?"
    } else {
        "UPDATE messages SET processing_count = 0, last_error = ?, next_attempt_at = ? WHERE id = ?"
    };
    sqlx::query(sql)
        .bind(error)
        .bind(next_attempt_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
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
    sqlx::query("UPDATE messages SET poisoned = ?, processing_count = 0, last_error = IFNULL(?, last_error) WHERE id = ?")
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

/// Inserts or updates a recipient row. A row that is already final (delivered,
/// failed, expanded, duplicate) only takes updates that keep its status (e.g.
/// `reported`): a queue worker holding a stale copy can never undo what an admin
/// action (remove) or another writer decided meanwhile.
pub async fn upsert_recipient(
    conn: &mut SqliteConnection,
    r: &RecipientRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recipients (message_id, seq, address, orcpt, notify, status, parent_seq, next_hop, mailbox_id, \
         attempts, next_attempt_at, status_code, diagnostic, remote_mta, delay_notified, reported) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (message_id, seq) DO UPDATE SET status = excluded.status, next_hop = excluded.next_hop, \
         mailbox_id = excluded.mailbox_id, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
         status_code = excluded.status_code, diagnostic = excluded.diagnostic, remote_mta = excluded.remote_mta, \
         delay_notified = excluded.delay_notified, reported = excluded.reported \
         WHERE recipients.status IN ('pending', 'queued') OR recipients.status = excluded.status",
    )
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

pub async fn delete_message(conn: &mut SqliteConnection, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM messages WHERE id = ?")
        .bind(id)
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

/// Records a next hop's connection trouble (the whole queue waits in Retry until
/// `retry_at`), or clears it after a successful connection (`None`).
pub async fn set_hop_retry(
    pool: &SqlitePool,
    name: &str,
    retry: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    match retry {
        Some((retry_at, last_error)) => {
            sqlx::query(
                "INSERT INTO queue_state (name, retry_at, last_error) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO UPDATE SET retry_at = excluded.retry_at, last_error = excluded.last_error",
            )
            .bind(name)
            .bind(retry_at)
            .bind(last_error)
            .execute(pool)
            .await?;
        }
        None => {
            // A queue without admin state needs no row.
            sqlx::query("DELETE FROM queue_state WHERE name = ? AND suspended = 0")
                .bind(name)
                .execute(pool)
                .await?;
            sqlx::query("UPDATE queue_state SET retry_at = NULL, last_error = NULL WHERE name = ?")
                .bind(name)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}
