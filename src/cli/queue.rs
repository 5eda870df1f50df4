//! `queue`, `message`, `track` and `server` commands (PRODUCT §3, §5, §8).

use anyhow::Result;
use clap::Subcommand;

use super::output::{Table, details, json};
use crate::config::Config;
use crate::queue::actions;
use crate::settings::{self, SettingsInput, format_duration};
use crate::store::Store;
use crate::tracking;

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Queues with status, message count, next retry and last error.
    List,
    /// Messages in a queue (or in all queues).
    Messages {
        /// submission, mailbox, unreachable, poison, or a remote hop.
        queue: Option<String>,
        /// ready, retry or suspended.
        #[arg(long)]
        status: Option<String>,
    },
    /// Retry every waiting message of a queue now.
    Retry { queue: String },
    /// Stop delivering from a queue.
    Suspend { queue: String },
    /// Resume a suspended queue.
    Resume { queue: String },
}

#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Envelope and per-recipient status of a queued message.
    Show { id: String },
    /// Hold a message in its queue.
    Suspend { id: String },
    /// Resume a suspended message (or give a poisoned one another try).
    Resume { id: String },
    /// Remove a message from the queue; with --ndr the sender gets an NDR.
    Remove {
        id: String,
        #[arg(long)]
        ndr: bool,
    },
    /// Write the stored message (.eml) to standard output.
    Export { id: String },
}

#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    #[arg(long)]
    sender: Option<String>,
    #[arg(long)]
    recipient: Option<String>,
    #[arg(long)]
    message_id: Option<String>,
    /// Queue id.
    #[arg(long)]
    id: Option<String>,
    /// Only events this recent: 30m, 1h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// At most this many events (default 1000).
    #[arg(long)]
    limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum ServerCmd {
    /// Show the server properties: retry policy, NDR copy address, tracking retention.
    Show,
    /// Change server properties. Durations: 30s, 15m, 1h, 5d.
    Set {
        /// Retry interval during the first phase (default 1m).
        #[arg(long)]
        retry_interval: Option<String>,
        /// Length of the first phase (default 1h).
        #[arg(long)]
        retry_first_phase: Option<String>,
        /// Retry interval afterwards (default 1h).
        #[arg(long)]
        retry_later_interval: Option<String>,
        /// Send the sender a delay notice after this long (default 1h).
        #[arg(long)]
        delay_notice_after: Option<String>,
        /// Give up and send an NDR after this long (default 5d).
        #[arg(long)]
        message_expiration: Option<String>,
        /// Copy every NDR to this address (`none` to stop).
        #[arg(long)]
        ndr_copy_to: Option<String>,
        /// Keep message-tracking events this many days (default 30).
        #[arg(long)]
        tracking_retention_days: Option<u32>,
    },
}

pub async fn queue(store: &Store, cmd: QueueCmd, as_json: bool) -> Result<String> {
    match cmd {
        QueueCmd::List => {
            let queues = actions::list_queues(store).await?;
            if as_json {
                return json(&queues);
            }
            let mut t = Table::new(&["QUEUE", "STATUS", "MESSAGES", "NEXT RETRY", "LAST ERROR"]);
            for q in queues {
                t.row(vec![
                    q.display_name,
                    format!("{:?}", q.status),
                    q.messages.to_string(),
                    q.next_retry.unwrap_or_else(|| "-".into()),
                    q.last_error.unwrap_or_else(|| "-".into()),
                ]);
            }
            Ok(t.render())
        }
        QueueCmd::Messages { queue, status } => {
            let list = actions::list_messages(store, queue.as_deref(), status.as_deref()).await?;
            if as_json {
                return json(&list);
            }
            let mut t = Table::new(&[
                "ID",
                "QUEUE",
                "STATUS",
                "FROM",
                "SUBJECT",
                "SIZE",
                "RECIPIENTS",
                "NEXT RETRY",
                "LAST ERROR",
            ]);
            for m in list {
                t.row(vec![
                    m.id,
                    actions::display_name(&m.queue),
                    m.status,
                    if m.sender.is_empty() {
                        "<>".into()
                    } else {
                        m.sender
                    },
                    m.subject.unwrap_or_default().chars().take(40).collect(),
                    m.size.to_string(),
                    m.recipients.to_string(),
                    m.next_retry.unwrap_or_else(|| "-".into()),
                    m.last_error.unwrap_or_else(|| "-".into()),
                ]);
            }
            Ok(t.render())
        }
        QueueCmd::Retry { queue } => {
            let n = actions::retry_queue(store, &queue).await?;
            Ok(format!(
                "queue {} retrying now ({n} waiting)\n",
                actions::display_name(&actions::queue_key(&queue))
            ))
        }
        QueueCmd::Suspend { queue } => {
            let k = actions::suspend_queue(store, &queue).await?;
            Ok(format!("queue {} suspended\n", actions::display_name(&k)))
        }
        QueueCmd::Resume { queue } => {
            let k = actions::resume_queue(store, &queue).await?;
            Ok(format!("queue {} resumed\n", actions::display_name(&k)))
        }
    }
}

pub async fn message(
    store: &Store,
    config: &Config,
    cmd: MessageCmd,
    as_json: bool,
) -> Result<String> {
    match cmd {
        MessageCmd::Show { id } => {
            let m = actions::message_details(store, &id).await?;
            if as_json {
                return json(&m);
            }
            let mut out = details(&[
                ("Queue id", m.id.clone()),
                ("From", m.sender.clone()),
                ("Subject", m.subject.clone().unwrap_or_default()),
                ("Message-ID", m.message_id.clone().unwrap_or_default()),
                ("Size", m.size.to_string()),
                ("Received", m.received_at.clone()),
                ("Source", m.source.clone()),
                ("Suspended", super::output::yes_no(m.suspended)),
                ("Poisoned", super::output::yes_no(m.poisoned)),
                (
                    "Last error",
                    m.last_error.clone().unwrap_or_else(|| "-".into()),
                ),
            ]);
            let mut t = Table::new(&[
                "RECIPIENT",
                "STATUS",
                "QUEUE",
                "CODE",
                "NEXT RETRY",
                "DIAGNOSTIC",
            ]);
            for r in m.recipients {
                t.row(vec![
                    r.address,
                    r.status,
                    r.queue
                        .map(|q| actions::display_name(&q))
                        .unwrap_or_else(|| "-".into()),
                    r.status_code.unwrap_or_else(|| "-".into()),
                    r.next_retry.unwrap_or_else(|| "-".into()),
                    r.diagnostic.unwrap_or_else(|| "-".into()),
                ]);
            }
            out.push('\n');
            out += &t.render();
            Ok(out)
        }
        MessageCmd::Suspend { id } => {
            actions::suspend_message(store, &id).await?;
            Ok(format!("message {id} suspended\n"))
        }
        MessageCmd::Resume { id } => {
            actions::resume_message(store, &id).await?;
            Ok(format!("message {id} resumed\n"))
        }
        MessageCmd::Remove { id, ndr } => {
            let n = actions::remove_message(store, &id, ndr).await?;
            let how = if ndr { "with NDR" } else { "without NDR" };
            Ok(format!(
                "message {id} removed {how} ({n} recipient(s) were waiting)\n"
            ))
        }
        MessageCmd::Export { id } => {
            let spool = crate::queue::spool::Spool::open(&config.data_dir)?;
            let path = actions::export_path(&spool, &id)?;
            let bytes = tokio::fs::read(&path).await?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(String::new())
        }
    }
}

pub async fn track(store: &Store, args: TrackArgs, as_json: bool) -> Result<String> {
    let since = match &args.since {
        Some(s) => {
            let d = settings::parse_duration(s).ok_or_else(|| {
                anyhow::anyhow!("--since: `{s}` is not a duration such as 30m, 1h or 7d")
            })?;
            let t = chrono::Utc::now() - chrono::Duration::from_std(d)?;
            Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
        None => None,
    };
    let q = tracking::Query {
        sender: args.sender,
        recipient: args.recipient,
        message_id: args.message_id,
        queue_id: args.id,
        since,
        limit: args.limit,
    };
    let events = tracking::search(store.pool(), &q).await?;
    if as_json {
        return json(&events);
    }
    let mut t = Table::new(&[
        "TIME",
        "EVENT",
        "QUEUE ID",
        "SENDER",
        "RECIPIENTS",
        "SOURCE/HOP",
        "STATUS",
    ]);
    for e in events {
        t.row(vec![
            e.time,
            e.event,
            e.queue_id.unwrap_or_default(),
            e.sender.unwrap_or_default(),
            e.recipients.unwrap_or_default(),
            e.next_hop.or(e.source).unwrap_or_default(),
            e.status.unwrap_or_default(),
        ]);
    }
    Ok(t.render())
}

pub async fn server(store: &Store, cmd: ServerCmd, as_json: bool) -> Result<String> {
    let s = match cmd {
        ServerCmd::Show => settings::load(store).await?,
        ServerCmd::Set {
            retry_interval,
            retry_first_phase,
            retry_later_interval,
            delay_notice_after,
            message_expiration,
            ndr_copy_to,
            tracking_retention_days,
        } => {
            settings::update(
                store,
                SettingsInput {
                    first_interval: retry_interval,
                    first_phase: retry_first_phase,
                    later_interval: retry_later_interval,
                    delay_notice_after,
                    expiration: message_expiration,
                    ndr_copy_to,
                    tracking_retention_days,
                },
            )
            .await?
        }
    };
    if as_json {
        return json(&s);
    }
    Ok(details(&[
        ("Retry interval", format_duration(s.retry.first_interval)),
        ("Retry first phase", format_duration(s.retry.first_phase)),
        (
            "Retry later interval",
            format_duration(s.retry.later_interval),
        ),
        (
            "Delay notice after",
            format_duration(s.retry.delay_notice_after),
        ),
        ("Message expiration", format_duration(s.retry.expiration)),
        (
            "NDR copy to",
            s.ndr_copy_to
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "Tracking retention",
            format!("{} days", s.tracking_retention_days),
        ),
    ]))
}
