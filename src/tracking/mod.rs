//! Message tracking (PRODUCT §8): one row per event in a message's life, written
//! in the same transaction as the state change it records.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventKind {
    Receive,
    Submit,
    Expand,
    Resolve,
    Redirect,
    Deliver,
    Send,
    Defer,
    Fail,
    Dsn,
    Poison,
    Drop,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Receive => "RECEIVE",
            EventKind::Submit => "SUBMIT",
            EventKind::Expand => "EXPAND",
            EventKind::Resolve => "RESOLVE",
            EventKind::Redirect => "REDIRECT",
            EventKind::Deliver => "DELIVER",
            EventKind::Send => "SEND",
            EventKind::Defer => "DEFER",
            EventKind::Fail => "FAIL",
            EventKind::Dsn => "DSN",
            EventKind::Poison => "POISON",
            EventKind::Drop => "DROP",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: String,
    pub kind: EventKind,
    pub queue_id: Option<String>,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub source: Option<String>,
    pub client_ip: Option<String>,
    pub next_hop: Option<String>,
    pub remote: Option<String>,
    pub status: Option<String>,
    pub size: Option<u64>,
}

impl Event {
    pub fn new(kind: EventKind) -> Event {
        Event {
            time: now_rfc3339(),
            kind,
            queue_id: None,
            message_id: None,
            sender: None,
            recipients: Vec::new(),
            source: None,
            client_ip: None,
            next_hop: None,
            remote: None,
            status: None,
            size: None,
        }
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const INSERT: &str = "INSERT INTO tracking_events (time, event, queue_id, message_id, sender, recipients, \
     source, client_ip, next_hop, remote, status, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// [`insert`] for the queue's writer thread (synchronous SQLite).
pub fn write(conn: &rusqlite::Connection, e: &Event) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT)?.execute(rusqlite::params![
        e.time,
        e.kind.as_str(),
        e.queue_id,
        e.message_id,
        e.sender,
        e.recipients.join(","),
        e.source,
        e.client_ip,
        e.next_hop,
        e.remote,
        e.status,
        e.size.map(|s| s as i64),
    ])?;
    Ok(())
}

/// Writes one event inside the caller's transaction.
pub async fn insert(conn: &mut sqlx::SqliteConnection, e: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(&e.time)
        .bind(e.kind.as_str())
        .bind(&e.queue_id)
        .bind(&e.message_id)
        .bind(&e.sender)
        .bind(e.recipients.join(","))
        .bind(&e.source)
        .bind(&e.client_ip)
        .bind(&e.next_hop)
        .bind(&e.remote)
        .bind(&e.status)
        .bind(e.size.map(|s| s as i64))
        .execute(conn)
        .await?;
    Ok(())
}

/// A message-tracking search (console, CLI `track`, API).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub queue_id: Option<String>,
    /// RFC 3339; only events at or after it.
    pub since: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventRow {
    pub time: String,
    pub event: String,
    pub queue_id: Option<String>,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipients: Option<String>,
    pub source: Option<String>,
    pub client_ip: Option<String>,
    pub next_hop: Option<String>,
    pub remote: Option<String>,
    pub status: Option<String>,
    pub size: Option<i64>,
}

/// Events matching every given filter, oldest first. Addresses match
/// case-insensitively; a recipient matches anywhere in the recipient list.
pub async fn search(pool: &sqlx::SqlitePool, q: &Query) -> Result<Vec<EventRow>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT time, event, queue_id, message_id, sender, recipients, source, client_ip, next_hop, remote, status, size \
         FROM tracking_events WHERE 1 = 1",
    );
    let mut binds: Vec<String> = Vec::new();
    if let Some(s) = &q.sender {
        sql += " AND sender = ? COLLATE NOCASE";
        binds.push(s.trim().to_string());
    }
    if let Some(r) = &q.recipient {
        sql += " AND (',' || lower(recipients) || ',') LIKE ? ESCAPE '\\'";
        let esc = r
            .trim()
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        binds.push(format!("%,{esc},%"));
    }
    if let Some(m) = &q.message_id {
        // Message-IDs are compared with or without their angle brackets.
        sql += " AND (message_id = ? OR message_id = ?)";
        let bare = m
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        binds.push(format!("<{bare}>"));
        binds.push(bare);
    }
    if let Some(id) = &q.queue_id {
        sql += " AND queue_id = ? COLLATE NOCASE";
        binds.push(id.trim().to_string());
    }
    if let Some(t) = &q.since {
        sql += " AND time >= ?";
        binds.push(t.clone());
    }
    sql += &format!(
        " ORDER BY time, id LIMIT {}",
        q.limit.unwrap_or(1000).min(10_000)
    );
    let mut query = sqlx::query_as::<_, EventRow>(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    query.fetch_all(pool).await
}

/// Deletes events older than `days` (PRODUCT §8: kept 30 days by default).
pub async fn prune(pool: &sqlx::SqlitePool, days: u32) -> Result<u64, sqlx::Error> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok(sqlx::query("DELETE FROM tracking_events WHERE time < ?")
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected())
}
