//! Queue Viewer actions (PRODUCT §5; seed 004 queue actions): list queues and
//! their messages, suspend/resume/retry a queue, suspend/resume/remove a message
//! (with or without NDR), export a message. The CLI and the API call these (the
//! console later). Each change bumps `queue_version` so a running server reschedules.

use std::collections::BTreeMap;

use serde::Serialize;

use super::QueueId;
use super::categorizer::{MAILBOX_HOP, UNREACHABLE_HOP};
use super::manager::{format_time, parse_time};
use crate::directory::{Error, Result, invalid};
use crate::store::Store;
use crate::store::queue::{self as rows, QueueEntry};
use crate::tracking::{self, Event, EventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum QueueStatus {
    Active,
    Ready,
    Retry,
    Suspended,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueInfo {
    /// Key used by the commands: `submission`, `mailbox`, `unreachable`, `poison`, or a remote hop.
    pub name: String,
    /// As the Queue Viewer shows it: "Mailbox delivery", "Unreachable", ...
    pub display_name: String,
    pub status: QueueStatus,
    pub messages: usize,
    pub next_retry: Option<String>,
    pub last_error: Option<String>,
}

pub fn display_name(queue: &str) -> String {
    match queue {
        "submission" => "Submission".into(),
        MAILBOX_HOP => "Mailbox delivery".into(),
        UNREACHABLE_HOP => "Unreachable".into(),
        "poison" => "Poison message".into(),
        hop => format!("Remote delivery ({hop})"),
    }
}

/// Accepts a queue key or its display name, case-insensitively.
pub fn queue_key(input: &str) -> String {
    let s = input.trim().to_ascii_lowercase();
    match s.as_str() {
        "submission" => "submission".into(),
        "mailbox" | "mailbox delivery" | "mailbox-delivery" => MAILBOX_HOP.into(),
        "unreachable" => UNREACHABLE_HOP.into(),
        "poison" | "poison message" | "poison-message" => "poison".into(),
        _ => input.trim().to_string(),
    }
}

/// Every queue that holds messages or has admin state, with its status.
pub async fn list_queues(store: &Store) -> Result<Vec<QueueInfo>> {
    let entries = rows::entries(store.pool()).await?;
    let states = rows::queue_states(store.pool()).await?;
    let now = chrono::Utc::now();
    let mut by_queue: BTreeMap<String, Vec<&QueueEntry>> = BTreeMap::new();
    // The standing queues are always listed, even empty.
    for q in ["submission", MAILBOX_HOP, UNREACHABLE_HOP, "poison"] {
        by_queue.entry(q.to_string()).or_default();
    }
    for s in &states {
        by_queue.entry(s.name.clone()).or_default();
    }
    for e in &entries {
        by_queue.entry(e.queue.clone()).or_default().push(e);
    }
    Ok(by_queue
        .into_iter()
        .map(|(name, list)| {
            let state = states.iter().find(|s| s.name == name);
            // A hop in Retry: its retry time (its messages wait for it, whatever
            // time each was last given).
            let next_retry = state
                .and_then(|s| s.retry_at.clone())
                .or_else(|| list.iter().filter_map(|e| e.next_attempt_at.clone()).min());
            let last_error = state
                .and_then(|s| s.last_error.clone())
                .or_else(|| list.iter().filter_map(|e| e.last_error.clone()).max());
            let waiting = next_retry
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|t| t > now);
            let status = if state.is_some_and(|s| s.suspended) {
                QueueStatus::Suspended
            } else if list.is_empty() {
                QueueStatus::Ready
            } else if waiting || state.is_some_and(|s| s.retry_at.is_some()) {
                QueueStatus::Retry
            } else {
                QueueStatus::Active
            };
            QueueInfo {
                display_name: display_name(&name),
                name,
                status,
                messages: list.len(),
                next_retry,
                last_error,
            }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueuedMessage {
    pub queue: String,
    pub id: String,
    pub sender: String,
    pub subject: Option<String>,
    pub size: i64,
    pub received_at: String,
    /// Ready, Retry or Suspended.
    pub status: String,
    pub recipients: i64,
    pub next_retry: Option<String>,
    pub last_error: Option<String>,
}

/// Messages in one queue (or all), optionally only those with a status.
pub async fn list_messages(
    store: &Store,
    queue: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<QueuedMessage>> {
    let queue = queue.map(queue_key);
    let now = chrono::Utc::now();
    let states = rows::queue_states(store.pool()).await?;
    let suspended_queues: Vec<&str> = states
        .iter()
        .filter(|s| s.suspended)
        .map(|s| s.name.as_str())
        .collect();
    // Messages behind a next hop in Retry wait for the hop's retry time.
    let retry_queues: Vec<&str> = states
        .iter()
        .filter(|s| s.retry_at.as_deref().and_then(parse_time) > Some(now))
        .map(|s| s.name.as_str())
        .collect();
    let list = rows::entries(store.pool())
        .await?
        .into_iter()
        .filter(|e| queue.as_ref().is_none_or(|q| &e.queue == q))
        .map(|e| {
            let retry = e
                .next_attempt_at
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|t| t > now)
                || retry_queues.contains(&e.queue.as_str());
            let status = if e.suspended || suspended_queues.contains(&e.queue.as_str()) {
                "suspended"
            } else if retry {
                "retry"
            } else {
                "ready"
            };
            QueuedMessage {
                queue: e.queue,
                id: e.id,
                sender: e.sender,
                subject: e.subject,
                size: e.size,
                received_at: e.received_at,
                status: status.into(),
                recipients: e.recipients,
                next_retry: e.next_attempt_at,
                last_error: e.last_error,
            }
        })
        .filter(|m| status.is_none_or(|s| m.status.eq_ignore_ascii_case(s)))
        .collect();
    Ok(list)
}

fn check_queue(name: &str) -> Result<String> {
    let key = queue_key(name);
    if key == "poison" {
        return Err(invalid(
            "queue",
            "the Poison queue cannot be suspended or retried; resume or remove its messages",
        ));
    }
    if key.is_empty() || key.len() > 300 || key.chars().any(char::is_control) {
        return Err(invalid("queue", format!("`{name}` is not a queue name")));
    }
    Ok(key)
}

pub async fn suspend_queue(store: &Store, name: &str) -> Result<String> {
    let key = check_queue(name)?;
    rows::set_queue_suspended(store.pool(), &key, true).await?;
    rows::bump_queue_version(store.pool()).await?;
    Ok(key)
}

pub async fn resume_queue(store: &Store, name: &str) -> Result<String> {
    let key = check_queue(name)?;
    rows::set_queue_suspended(store.pool(), &key, false).await?;
    rows::bump_queue_version(store.pool()).await?;
    Ok(key)
}

/// "Retry now": every waiting message of the queue becomes due at once.
pub async fn retry_queue(store: &Store, name: &str) -> Result<u64> {
    let key = check_queue(name)?;
    let n = rows::retry_queue_now(store.pool(), &key, &format_time(chrono::Utc::now())).await?;
    rows::bump_queue_version(store.pool()).await?;
    Ok(n)
}

fn parse_id(id: &str) -> Result<QueueId> {
    QueueId::parse(id.trim())
        .ok_or_else(|| invalid("id", format!("`{id}` is not a queue id (16 hex digits)")))
}

/// A message with all its recipients, for `message show` and the console.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageDetails {
    pub id: String,
    pub sender: String,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub size: i64,
    pub received_at: String,
    pub source: String,
    pub stage: String,
    pub suspended: bool,
    pub poisoned: bool,
    pub last_error: Option<String>,
    pub recipients: Vec<RecipientDetails>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientDetails {
    pub address: String,
    pub status: String,
    pub queue: Option<String>,
    pub status_code: Option<String>,
    pub diagnostic: Option<String>,
    pub next_retry: Option<String>,
}

pub async fn message_details(store: &Store, id: &str) -> Result<MessageDetails> {
    let qid = parse_id(id)?;
    let (m, r) = rows::load_message(store.pool(), qid.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no message {qid} in the queue")))?;
    Ok(MessageDetails {
        id: m.id,
        sender: if m.sender.is_empty() {
            "<>".into()
        } else {
            m.sender
        },
        subject: m.subject,
        message_id: m.message_id,
        size: m.size,
        received_at: m.received_at,
        source: m.source,
        stage: m.stage,
        suspended: m.suspended,
        poisoned: m.poisoned,
        last_error: m.last_error,
        recipients: r
            .into_iter()
            .map(|r| RecipientDetails {
                address: r.address,
                status: r.status,
                queue: r.next_hop,
                status_code: r.status_code,
                diagnostic: r.diagnostic,
                next_retry: r.next_attempt_at,
            })
            .collect(),
    })
}

pub async fn suspend_message(store: &Store, id: &str) -> Result<()> {
    let qid = parse_id(id)?;
    if !rows::set_suspended(store.pool(), qid.as_str(), true).await? {
        return Err(Error::NotFound(format!("no message {qid} in the queue")));
    }
    rows::bump_queue_version(store.pool()).await?;
    Ok(())
}

/// Resumes a suspended message; for a poisoned one, releases it from the Poison
/// queue for one more try.
pub async fn resume_message(store: &Store, id: &str) -> Result<()> {
    let qid = parse_id(id)?;
    if !rows::set_suspended(store.pool(), qid.as_str(), false).await? {
        return Err(Error::NotFound(format!("no message {qid} in the queue")));
    }
    let mut conn = store.pool().acquire().await?;
    rows::set_poisoned(&mut conn, qid.as_str(), false, None).await?;
    drop(conn);
    rows::bump_queue_version(store.pool()).await?;
    Ok(())
}

/// Removes a message. With `ndr`, every recipient still waiting fails with
/// 5.3.0 and the sender gets an NDR (sent by the queue manager); without, the
/// message is dropped silently (a DROP tracking event records it).
pub async fn remove_message(store: &Store, id: &str, ndr: bool) -> Result<usize> {
    let qid = parse_id(id)?;
    let (m, recipients) = rows::load_message(store.pool(), qid.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no message {qid} in the queue")))?;
    let mut tx = store.pool().begin().await?;
    let mut affected = Vec::new();
    for mut r in recipients.into_iter().filter(|r| r.is_active()) {
        r.status = "failed".into();
        r.status_code = Some("5.3.0".into());
        r.diagnostic =
            Some("550 5.3.0 The message was removed from the queue by an administrator".into());
        r.reported = !ndr;
        affected.push(r.address.clone());
        rows::upsert_recipient(&mut tx, &r).await?;
    }
    let mut e = Event::new(if ndr {
        EventKind::Fail
    } else {
        EventKind::Drop
    });
    e.queue_id = Some(m.id.clone());
    e.message_id = m.message_id.clone();
    e.sender = Some(m.sender.clone());
    e.recipients = affected.clone();
    e.status = Some(
        if ndr {
            "removed by an administrator, NDR sent"
        } else {
            "removed by an administrator without NDR"
        }
        .into(),
    );
    tracking::insert(&mut tx, &e).await?;
    // A removed message is categorized by definition: nothing is pending.
    rows::set_stage(&mut tx, &m.id, "categorized").await?;
    rows::set_poisoned(&mut tx, &m.id, false, None).await?;
    tx.commit().await?;
    rows::set_suspended(store.pool(), &m.id, false).await?;
    rows::bump_queue_version(store.pool()).await?;
    Ok(affected.len())
}

/// The stored message as an .eml (our Received header included).
pub fn export_path(spool: &super::spool::Spool, id: &str) -> Result<std::path::PathBuf> {
    let qid = parse_id(id)?;
    let path = spool.message_path(&qid);
    if !path.exists() {
        return Err(Error::NotFound(format!("no message {qid} in the queue")));
    }
    Ok(path)
}
