//! The pickup directory (PRODUCT §5; Exchange's Pickup folder): a well-formed
//! `.eml` dropped into `data/pickup/` is queued; a bad one moves to
//! `data/pickup/badmail/` with a `.err` note.
//!
//! Exactly once, even across crashes: a file is first claimed by renaming it to
//! `.processing/<queue id>.eml`; it is deleted only after the message is
//! committed. At start-up a claimed file whose queue id has a SUBMIT tracking
//! event (written in the same transaction as the message) is deleted; any other
//! is submitted again under the same id.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::QueueId;
use super::manager::{QueueContext, format_time};
use super::pickup::{MAX_PICKUP_SIZE, PickupError, parse_pickup};
use super::submit::{Envelope, EnvelopeRecipient};

const POLL: Duration = Duration::from_secs(1);

pub async fn run(ctx: Arc<QueueContext>, dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let processing = dir.join(".processing");
    let badmail = dir.join("badmail");
    for d in [&dir, &processing, &badmail] {
        if let Err(e) = tokio::fs::create_dir_all(d).await {
            tracing::error!(dir = %d.display(), error = %e, "cannot create the pickup directory; pickup is off");
            return;
        }
    }
    if let Err(e) = recover(&ctx, &processing, &badmail).await {
        tracing::error!(error = %format!("{e:#}"), "pickup recovery failed");
    }
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(e) = scan(&ctx, &dir, &processing, &badmail).await {
            tracing::warn!(error = %format!("{e:#}"), "pickup scan failed");
        }
    }
}

async fn scan(ctx: &QueueContext, dir: &Path, processing: &Path, badmail: &Path) -> Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.to_ascii_lowercase().ends_with(".eml") || !entry.file_type().await?.is_file() {
            continue;
        }
        let id = QueueId::generate();
        let claimed = processing.join(format!("{id}.eml"));
        // The claim: from here on only this code owns the file.
        if tokio::fs::rename(entry.path(), &claimed).await.is_err() {
            continue;
        }
        pick_up(ctx, &id, &claimed, &name, badmail).await;
    }
    Ok(())
}

async fn pick_up(
    ctx: &QueueContext,
    id: &QueueId,
    claimed: &Path,
    original_name: &str,
    badmail: &Path,
) {
    match submit_file(ctx, id, claimed).await {
        Ok(()) => {
            tracing::info!(queue_id = %id, file = original_name, "picked up");
            if let Err(e) = tokio::fs::remove_file(claimed).await {
                tracing::warn!(file = %claimed.display(), error = %e, "cannot remove a picked-up file");
            }
        }
        Err(Failure::Bad(reason)) => {
            tracing::warn!(file = original_name, %reason, "bad pickup file moved to badmail");
            let dest = unique(badmail, original_name);
            let note = dest.with_file_name(format!(
                "{}.err",
                dest.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            let _ = tokio::fs::write(&note, format!("{reason}\n")).await;
            if let Err(e) = tokio::fs::rename(claimed, &dest).await {
                tracing::error!(error = %e, "cannot move a bad pickup file to badmail");
            }
        }
        Err(Failure::Transient(e)) => {
            // Left claimed; recovery or the next start tries again.
            tracing::error!(file = original_name, error = %format!("{e:#}"), "cannot queue a pickup file; will retry");
        }
    }
}

enum Failure {
    Bad(String),
    Transient(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Transient(e)
    }
}

async fn submit_file(ctx: &QueueContext, id: &QueueId, path: &Path) -> Result<(), Failure> {
    let meta = tokio::fs::metadata(path)
        .await
        .context("cannot stat the file")?;
    if meta.len() > MAX_PICKUP_SIZE as u64 {
        return Err(Failure::Bad(
            PickupError::TooLarge {
                size: meta.len() as usize,
            }
            .to_string(),
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .context("cannot read the file")?;
    let msg = parse_pickup(&bytes).map_err(|e| Failure::Bad(e.to_string()))?;
    let received = format!(
        "Received: from pickup directory\r\n\tby {} (Bridgehead) with local\r\n\tid {id};\r\n\t{}\r\n",
        ctx.hostname,
        chrono::Utc::now().to_rfc2822()
    );
    let spool = ctx.spool.clone();
    let (new_id, body) = (id.clone(), msg.body);
    let ((), size) = tokio::task::spawn_blocking(move || {
        spool.write_blocking(&new_id, |w| {
            use std::io::Write;
            w.write_all(received.as_bytes())?;
            w.write_all(&body)
        })
    })
    .await
    .context("spool task failed")?
    .context("cannot write the spool file")?;
    let envelope = Envelope {
        id: id.clone(),
        received_at: format_time(chrono::Utc::now()),
        sender: msg.sender,
        recipients: msg
            .recipients
            .into_iter()
            .map(|address| EnvelopeRecipient {
                address,
                orcpt: None,
                notify: None,
            })
            .collect(),
        size,
        message_id: msg.message_id,
        subject: msg.subject,
        ret: None,
        envid: None,
        body_type: "8bitmime".into(),
        smtputf8: false,
        source: "pickup".into(),
        client_ip: None,
        client_helo: None,
        auth_user: None,
    };
    ctx.submitter
        .submit(envelope)
        .await
        .context("cannot queue the message")?;
    Ok(())
}

/// Finishes what a crash interrupted (see the module doc).
async fn recover(ctx: &QueueContext, processing: &Path, badmail: &Path) -> Result<()> {
    let mut entries = tokio::fs::read_dir(processing).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(QueueId::parse)
        else {
            continue;
        };
        let queued: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tracking_events WHERE queue_id = ? AND event = 'SUBMIT'",
        )
        .bind(id.as_str())
        .fetch_one(ctx.store.pool())
        .await?;
        if queued > 0 {
            tokio::fs::remove_file(&path).await?;
        } else {
            let name = format!("{id}.eml");
            pick_up(ctx, &id, &path, &name, badmail).await;
        }
    }
    Ok(())
}

/// `dir/name`, or `dir/name.N` when taken.
fn unique(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}
