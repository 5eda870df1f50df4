//! The durable submit path. A receive session (or pickup, or the DSN generator)
//! hands over an [`Envelope`] whose body is already durable in the spool (file
//! and directory fsync'd, see `spool.rs`); the envelope rows are committed by the
//! queue's [`Writer`] together with whatever else is waiting at that moment
//! (group commit: one WAL fsync for the whole batch), and only then does
//! `submit` return. The receive side says 250 after that, so an accepted message
//! survives `kill -9` and power loss.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::QueueId;
use super::spool::Spool;
use crate::metrics::Metrics;
use crate::smtp::address::EmailAddress;
use crate::store::StoreError;
use crate::store::writer::Writer;
use crate::tracking::{self, Event, EventKind};

#[derive(Debug, Clone)]
pub struct EnvelopeRecipient {
    pub address: EmailAddress,
    /// DSN ORCPT as received (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
    /// DSN NOTIFY as received (`NEVER` or e.g. `SUCCESS,FAILURE`).
    pub notify: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: QueueId,
    pub received_at: String,
    /// `None` is the null reverse path `<>`.
    pub sender: Option<EmailAddress>,
    pub recipients: Vec<EnvelopeRecipient>,
    pub size: u64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub ret: Option<String>,
    pub envid: Option<String>,
    pub body_type: String,
    pub smtputf8: bool,
    pub source: String,
    pub client_ip: Option<String>,
    pub client_helo: Option<String>,
    pub auth_user: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot commit to the queue: {0}")]
pub struct SubmitError(#[from] StoreError);

/// Queues envelopes; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    writer: Writer,
    spool: Spool,
    committed: Option<mpsc::UnboundedSender<QueueId>>,
    metrics: Arc<Metrics>,
}

impl Submitter {
    /// Each committed id is announced on `committed` (the queue manager's
    /// scheduler) and counts in `messages_received_total{source}`.
    pub fn new(
        writer: Writer,
        spool: Spool,
        committed: Option<mpsc::UnboundedSender<QueueId>>,
        metrics: Arc<Metrics>,
    ) -> Submitter {
        Submitter {
            writer,
            spool,
            committed,
            metrics,
        }
    }

    /// Returns once the envelope (and its RECEIVE tracking event) is committed.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), SubmitError> {
        let (id, source) = (envelope.id.clone(), envelope.source.clone());
        let committed = self
            .writer
            .run(move |conn| insert_envelope(conn, &envelope))
            .await;
        if let Err(e) = committed {
            tracing::error!(queue_id = %id, error = %e, "queue commit failed");
            // The message was not accepted: its spool file must not linger.
            let _ = self.spool.remove(id.as_str());
            return Err(e.into());
        }
        self.metrics.message_received(&source);
        if let Some(tx) = &self.committed {
            let _ = tx.send(id);
        }
        Ok(())
    }
}

fn insert_envelope(conn: &rusqlite::Connection, e: &Envelope) -> rusqlite::Result<()> {
    let sender = e
        .sender
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO messages (id, received_at, sender, size, message_id, subject, ret, envid, body_type, \
         smtputf8, source, client_ip, client_helo, auth_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        e.id.as_str(),
        e.received_at,
        sender,
        e.size as i64,
        e.message_id,
        e.subject,
        e.ret,
        e.envid,
        e.body_type,
        e.smtputf8,
        e.source,
        e.client_ip,
        e.client_helo,
        e.auth_user,
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO recipients (message_id, seq, address, orcpt, notify) VALUES (?, ?, ?, ?, ?)",
    )?;
    for (seq, r) in e.recipients.iter().enumerate() {
        insert.execute(rusqlite::params![
            e.id.as_str(),
            seq as i64,
            r.address.to_string(),
            r.orcpt,
            r.notify,
        ])?;
    }
    // SMTP arrivals are RECEIVE; the pickup directory's are SUBMIT; our own DSNs, DSN.
    let kind = match e.source.as_str() {
        "pickup" => EventKind::Submit,
        "dsn" => EventKind::Dsn,
        _ => EventKind::Receive,
    };
    let mut event = Event::new(kind);
    event.time = e.received_at.clone();
    event.queue_id = Some(e.id.to_string());
    event.message_id = e.message_id.clone();
    event.sender = Some(sender);
    event.recipients = e.recipients.iter().map(|r| r.address.to_string()).collect();
    event.source = Some(e.source.clone());
    event.client_ip = e.client_ip.clone();
    event.size = Some(e.size);
    event.status = Some("queued".into());
    tracking::write(conn, &event)
}
