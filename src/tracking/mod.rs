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

/// Writes one event inside the caller's transaction.
pub async fn insert(conn: &mut sqlx::SqliteConnection, e: &Event) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tracking_events (time, event, queue_id, message_id, sender, recipients, source, \
         client_ip, next_hop, remote, status, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
