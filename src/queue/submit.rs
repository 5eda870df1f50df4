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
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
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

impl SubmitError {
    /// The database is out of space (see [`StoreError::is_disk_full`]).
    pub fn is_disk_full(&self) -> bool {
        self.0.is_disk_full()
    }
}

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

    /// Queues an envelope whose spool file is already durable (pickup, DSNs):
    /// returns once its rows (and its RECEIVE tracking event) are committed.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), SubmitError> {
        let (id, source) = (envelope.id.clone(), envelope.source.clone());
        if let Err(e) = self.commit(envelope).await {
            // The message was not accepted: its spool file must not linger.
            let _ = self.spool.remove(id.as_str());
            return Err(e);
        }
        self.announce(id, &source);
        Ok(())
    }

    /// Commits the envelope's rows only. The receive side runs this while its
    /// spool file is still being made durable (the two fsync waits overlap),
    /// then [`announce`](Self::announce)s the message once both are done, or
    /// [`withdraw`](Self::withdraw)s the rows if the spool file failed. Nothing
    /// is acknowledged before both, so rows whose spool file never became
    /// durable (a crash in between) were never acknowledged:
    /// [`drop_unspooled`] removes them at start-up.
    pub async fn commit(&self, envelope: Envelope) -> Result<(), SubmitError> {
        let id = envelope.id.clone();
        self.writer
            .run(move |conn| insert_envelope(conn, &envelope))
            .await
            .map_err(|e| {
                tracing::error!(queue_id = %id, error = %e, "queue commit failed");
                e.into()
            })
    }

    /// Hands a committed message to the queue manager.
    pub fn announce(&self, id: QueueId, source: &str) {
        self.metrics.message_received(source);
        if let Some(tx) = &self.committed {
            let _ = tx.send(id);
        }
    }

    /// Takes back committed rows whose message was not accepted after all.
    pub async fn withdraw(&self, id: &QueueId) -> Result<(), SubmitError> {
        let id = id.to_string();
        Ok(self
            .writer
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM tracking_events WHERE queue_id = ?")?
                    .execute([&id])?;
                crate::store::queue::writes::delete_message(conn, &id)
            })
            .await?)
    }

    /// At start-up: withdraws messages that were committed but whose spool
    /// file is missing. Only a crash between [`Submitter::commit`] and the
    /// spool file's rename leaves one, and such a message was never
    /// acknowledged (still in the submission stage: the manager never saw it).
    pub async fn drop_unspooled(&self, store: &Store) -> Result<usize, SubmitError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM messages WHERE stage = 'submission'")
                .fetch_all(store.pool())
                .await
                .map_err(StoreError::from)?;
        let mut dropped = 0;
        for qid in ids.iter().filter_map(|id| QueueId::parse(id)) {
            if self.spool.message_path(&qid).exists() {
                continue;
            }
            self.withdraw(&qid).await?;
            tracing::warn!(queue_id = %qid, "dropped an unacknowledged message whose body never reached the disk");
            dropped += 1;
        }
        Ok(dropped)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &QueueId) -> anyhow::Result<Envelope> {
        Ok(Envelope {
            id: id.clone(),
            received_at: crate::tracking::now_rfc3339(),
            sender: Some(EmailAddress::parse("a@example.com")?),
            recipients: vec![EnvelopeRecipient {
                address: EmailAddress::parse("b@example.com")?,
                orcpt: None,
                notify: None,
            }],
            size: 3,
            message_id: None,
            subject: None,
            ret: None,
            envid: None,
            body_type: "7bit".into(),
            smtputf8: false,
            source: "Default Internet".into(),
            client_ip: None,
            client_helo: None,
            auth_user: None,
        })
    }

    /// Rows committed while their spool file never became durable (a crash
    /// between the two) are dropped at start-up; the others stay.
    #[tokio::test]
    async fn rows_without_a_spool_file_are_dropped() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("db.sqlite")).await?;
        let spool = Spool::open(dir.path())?;
        let submitter = Submitter::new(
            Writer::start(&store)?,
            spool.clone(),
            None,
            Arc::new(Metrics::new()),
        );
        let (kept, lost) = (QueueId::generate(), QueueId::generate());
        std::fs::write(spool.message_path(&kept), b"x\r\n")?;
        submitter.commit(envelope(&kept)?).await?;
        submitter.commit(envelope(&lost)?).await?;
        assert_eq!(submitter.drop_unspooled(&store).await?, 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM messages")
            .fetch_all(store.pool())
            .await?;
        assert_eq!(left, vec![kept.to_string()]);
        let events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM tracking_events WHERE queue_id = ?")
                .bind(lost.as_str())
                .fetch_one(store.pool())
                .await?;
        assert_eq!(events, 0);
        Ok(())
    }
}
