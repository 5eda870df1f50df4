//! The durable submit path. A receive session (or pickup, or the DSN generator)
//! hands over an [`Envelope`] whose body is already fsync'd in the spool; the
//! committer task batches every envelope waiting at that moment into one SQLite
//! transaction (group commit: one directory fsync and one WAL fsync for the whole
//! batch), and only then answers each submitter. The receive side says 250 after
//! that answer, so an accepted message survives `kill -9` and power loss.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::QueueId;
use crate::metrics::Metrics;
use crate::smtp::address::EmailAddress;
use crate::store::Store;
use crate::tracking::{self, Event, EventKind};

/// At most this many envelopes share one transaction.
const MAX_BATCH: usize = 256;

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
pub enum SubmitError {
    #[error("the queue is shutting down")]
    Closed,
    #[error("cannot commit to the queue: {0}")]
    Commit(String),
}

struct Request {
    envelope: Envelope,
    done: oneshot::Sender<Result<(), SubmitError>>,
}

/// A handle to the committer; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::Sender<Request>,
}

impl Submitter {
    /// Starts the committer task. `msg_dir` is fsync'd once per batch so the
    /// renames of the batch's spool files are durable before the rows commit.
    /// Each committed message counts in `messages_received_total{source}`.
    pub fn start(
        store: Store,
        msg_dir: PathBuf,
        committed: Option<mpsc::UnboundedSender<QueueId>>,
        metrics: Arc<Metrics>,
    ) -> Submitter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(committer(store, msg_dir, rx, committed, metrics));
        Submitter { tx }
    }

    /// Returns once the envelope (and its RECEIVE tracking event) is committed.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), SubmitError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request { envelope, done })
            .await
            .map_err(|_| SubmitError::Closed)?;
        wait.await.map_err(|_| SubmitError::Closed)?
    }
}

/// Commits batches; announces each committed id on `committed` (the scheduler).
async fn committer(
    store: Store,
    msg_dir: PathBuf,
    mut rx: mpsc::Receiver<Request>,
    committed: Option<mpsc::UnboundedSender<QueueId>>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = commit_batch(&store, &msg_dir, &batch).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, messages = batch.len(), "queue commit failed");
        }
        for req in batch.drain(..) {
            let r = match &result {
                Ok(()) => {
                    metrics.message_received(&req.envelope.source);
                    if let Some(tx) = &committed {
                        let _ = tx.send(req.envelope.id.clone());
                    }
                    Ok(())
                }
                Err(e) => {
                    // The message was not accepted: its spool file must not linger.
                    let _ = std::fs::remove_file(msg_dir.join(req.envelope.id.as_str()));
                    Err(SubmitError::Commit(e.to_string()))
                }
            };
            let _ = req.done.send(r);
        }
    }
}

async fn commit_batch(
    store: &Store,
    msg_dir: &std::path::Path,
    batch: &[Request],
) -> anyhow::Result<()> {
    let dir = msg_dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
        .await??;
    let mut tx = store.pool().begin().await?;
    for Request { envelope: e, .. } in batch {
        insert_envelope(&mut tx, e).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_envelope(
    conn: &mut sqlx::SqliteConnection,
    e: &Envelope,
) -> Result<(), sqlx::Error> {
    let sender = e
        .sender
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO messages (id, received_at, sender, size, message_id, subject, ret, envid, body_type, \
         smtputf8, source, client_ip, client_helo, auth_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.as_str())
    .bind(&e.received_at)
    .bind(&sender)
    .bind(e.size as i64)
    .bind(&e.message_id)
    .bind(&e.subject)
    .bind(&e.ret)
    .bind(&e.envid)
    .bind(&e.body_type)
    .bind(e.smtputf8)
    .bind(&e.source)
    .bind(&e.client_ip)
    .bind(&e.client_helo)
    .bind(&e.auth_user)
    .execute(&mut *conn)
    .await?;
    for (seq, r) in e.recipients.iter().enumerate() {
        sqlx::query("INSERT INTO recipients (message_id, seq, address, orcpt, notify) VALUES (?, ?, ?, ?, ?)")
            .bind(e.id.as_str())
            .bind(seq as i64)
            .bind(r.address.to_string())
            .bind(&r.orcpt)
            .bind(&r.notify)
            .execute(&mut *conn)
            .await?;
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
    tracking::insert(conn, &event).await
}
