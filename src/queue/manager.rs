//! The queue manager (Postfix's qmgr; PRODUCT §5): owns scheduling. Due times
//! live in memory (`schedule.rs`: a heap, and gates for hops in Retry), the
//! truth in SQLite; start-up (and any queue action from another process)
//! rebuilds the schedule from SQLite, and no tick scans the queue. Each due
//! message is processed by one worker at a time:
//! categorize → deliver what is due → send DSNs → forget the message when every
//! recipient is final.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, watch};

use super::QueueId;
use super::categorizer::{self, MAILBOX_HOP, UNREACHABLE_HOP};
use super::schedule::{Entry, InFlight, Next, Schedule};
use super::spool::Spool;
use super::submit::{Envelope, EnvelopeRecipient, Submitter};
use crate::delivery::local::{DeliveryOutcome, DeliveryRequest, LocalDelivery};
use crate::delivery::remote::{HopOutcome, RemoteDelivery};
use crate::delivery::smtp::{OutRecipient, RcptOutcome, Transaction};
use crate::directory::Directory;
use crate::dsn;
use crate::metrics::{Metrics, Outcome, Via};
use crate::routing::{self, SendConnector};
use crate::settings::ServerSettings;
use crate::smtp::address::EmailAddress;
use crate::store::Store;
use crate::store::queue::{self as rows, MessageRow, RecipientRow, writes};
use crate::store::writer::Writer;
use crate::tracking::{self, Event, EventKind};

/// Messages processed at the same time. Most of a worker's time is waiting
/// (for the next hop's replies, for the group commit), so there are more of them
/// than a send connector's default 20 connections per destination.
const WORKERS: usize = 32;
/// How often the manager looks for queue actions made by another process.
const QUEUE_POLL: Duration = Duration::from_millis(500);
/// Header bytes read for the hop count and DSN decisions.
const HEADER_LIMIT: usize = 64 * 1024;
/// How much of the header a delivery report reads for the original's Subject
/// and headers (a loop's 2,000 Received fields fill more than [`HEADER_LIMIT`]).
const DSN_HEADER_LIMIT: usize = 1024 * 1024;
/// Recipients per outbound SMTP transaction (RFC 5321 §4.5.3.1.8 asks servers to
/// take at least 100).
const MAX_RCPTS_PER_TRANSACTION: usize = 100;

/// Everything the queue manager works with.
pub struct QueueContext {
    pub store: Store,
    pub spool: Spool,
    pub submitter: Submitter,
    /// Every write of the queue manager goes through here (group commit).
    pub writer: Writer,
    pub local: LocalDelivery,
    pub remote: RemoteDelivery,
    pub send_connectors: watch::Receiver<Arc<Vec<Arc<SendConnector>>>>,
    pub directory: watch::Receiver<Arc<Directory>>,
    pub settings: watch::Receiver<Arc<ServerSettings>>,
    pub hostname: String,
    /// Delivery outcomes, latency and DSNs for `/metrics`.
    pub metrics: Arc<Metrics>,
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs the queue manager until shutdown. `committed` announces new messages.
pub async fn run(
    ctx: Arc<QueueContext>,
    mut committed: mpsc::UnboundedReceiver<QueueId>,
    mut shutdown: watch::Receiver<bool>,
) {
    let schedule = Arc::new(Schedule::default());
    refresh_states(&ctx, &schedule).await;
    match rows::schedule(ctx.store.pool()).await {
        Ok(entries) => {
            tracing::info!(messages = entries.len(), "queue loaded");
            schedule.replace_all(schedule_entries(&ctx, entries));
        }
        Err(e) => tracing::error!(error = %e, "cannot load the queue"),
    }
    // New messages from the submit path.
    let s = schedule.clone();
    tokio::spawn(async move {
        while let Some(id) = committed.recv().await {
            s.push_new(id.to_string());
        }
    });
    // Queue actions from other processes (the CLI) bump queue_version.
    let (s, c, mut stop) = (schedule.clone(), ctx.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut seen = rows::queue_version(c.store.pool()).await.unwrap_or(0);
        let mut tick = tokio::time::interval(QUEUE_POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match rows::queue_version(c.store.pool()).await {
                Ok(v) if v != seen => {
                    seen = v;
                    refresh_states(&c, &s).await;
                    if let Ok(entries) = rows::schedule(c.store.pool()).await {
                        tracing::info!("queue changed by an admin action; schedule rebuilt");
                        s.replace_all(schedule_entries(&c, entries));
                    }
                }
                _ => {}
            }
        }
    });

    // Pooled outbound connections past their idle time get a polite QUIT.
    let (c, mut stop) = (ctx.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            c.remote.close_idle().await;
        }
    });

    let workers = Arc::new(Semaphore::new(WORKERS));
    loop {
        let (due, wait) = schedule.take_due(Utc::now(), WORKERS);
        for id in due {
            let fresh = schedule
                .in_flight
                .lock()
                .map(|mut f| f.insert(id.clone()))
                .unwrap_or(false);
            if !fresh {
                continue; // being processed; it reschedules itself when done
            }
            let Ok(permit) = workers.clone().acquire_owned().await else {
                return;
            };
            let (ctx, schedule) = (ctx.clone(), schedule.clone());
            tokio::spawn(async move {
                let guard = InFlight {
                    schedule,
                    id: Some(id),
                };
                let next = match guard.id.as_deref() {
                    Some(id) => process(&ctx, &guard.schedule, id).await,
                    None => Next::Never,
                };
                guard.finish(next);
                drop(permit);
            });
        }
        let sleep = wait.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = schedule.wake.notified() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    // Let running deliveries finish (they are short), then stop.
    let finished = tokio::time::timeout(
        Duration::from_secs(10),
        workers.acquire_many(WORKERS as u32),
    )
    .await;
    if finished.is_err() {
        forgive_cut_runs(&ctx, &schedule).await;
    }
}

/// Runs still going when the shutdown grace period ends are cut off by the
/// stop, not by a fault of their message: their processing count is taken
/// back, or two restarts during a slow delivery would send a healthy message
/// to Poison.
async fn forgive_cut_runs(ctx: &QueueContext, schedule: &Schedule) {
    let ids: Vec<String> = schedule
        .in_flight
        .lock()
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return;
    }
    tracing::info!(
        messages = ids.len(),
        "shutdown cut processing runs short; they do not count as failures"
    );
    let result = ctx
        .writer
        .run(move |conn| {
            for id in &ids {
                writes::cut_by_shutdown(conn, id)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record the runs cut by the shutdown");
    }
}

/// The schedule's view of the stored messages: when each is due, and the one
/// next hop it waits for (with its deadline) if there is one.
fn schedule_entries(ctx: &QueueContext, rows: Vec<rows::ScheduleRow>) -> Vec<Entry> {
    let settings = ctx.settings.borrow().clone();
    let now = Utc::now();
    rows.into_iter()
        .map(|r| {
            let received_at = parse_time(&r.received_at).unwrap_or(now);
            let hop = r
                .hop
                .filter(|h| !h.is_empty() && h != UNREACHABLE_HOP)
                .map(|h| (h, deadline(&settings, received_at, r.delay_pending, now)));
            Entry {
                due: r.due.as_deref().and_then(parse_time).unwrap_or(now),
                id: r.id,
                hop,
            }
        })
        .collect()
}

/// When a waiting message must run whatever its next hop does: at expiry, or
/// at its delay notice while one is pending.
fn deadline(
    settings: &ServerSettings,
    received_at: DateTime<Utc>,
    delay_pending: bool,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or_default();
    let mut deadline = received_at + span(settings.retry.expiration);
    if delay_pending {
        deadline = deadline.min(received_at + span(settings.retry.delay_notice_after));
    }
    deadline.max(now)
}

/// Reads the queue-level state (suspended queues, hops in Retry) into the schedule.
async fn refresh_states(ctx: &QueueContext, schedule: &Schedule) {
    // The version first: a change after it makes the next check read again.
    let read = async {
        let version = rows::queue_version(ctx.store.pool()).await?;
        Ok::<_, crate::store::StoreError>((version, rows::queue_states(ctx.store.pool()).await?))
    };
    match read.await {
        Ok((version, states)) => schedule.set_states(version, states),
        Err(e) => tracing::error!(error = %e, "cannot read the queue state"),
    }
}

/// Processes one message; returns when it is due again.
async fn process(ctx: &QueueContext, schedule: &Schedule, id: &str) -> Next {
    // Instrumented, not entered: a guard held across `.await` would leave the
    // span entered on whatever thread resumes, nesting other messages' spans.
    let span = tracing::info_span!("queue", queue_id = %id);
    tracing::Instrument::instrument(process_message(ctx, schedule, id), span).await
}

async fn process_message(ctx: &QueueContext, schedule: &Schedule, id: &str) -> Next {
    let loaded = rows::load_message(ctx.store.pool(), id).await;
    let (msg, rcpts) = match loaded {
        Ok(Some(x)) => x,
        Ok(None) => return Next::Never,
        Err(e) => {
            tracing::error!(error = %e, "cannot load a queued message");
            return Next::At(Utc::now() + chrono::Duration::seconds(30));
        }
    };
    if msg.suspended || msg.poisoned {
        return Next::Never;
    }
    if msg.processing_count >= 2 {
        poison(ctx, &msg).await;
        return Next::Never;
    }
    // An admin action since the queue states were read (the message row carries
    // the counter): reread them, so a queue suspended a moment ago holds this
    // very message rather than one `QUEUE_POLL` later.
    if !schedule.states_current(msg.queue_version) {
        refresh_states(ctx, schedule).await;
    }
    match run_stages(ctx, schedule, &msg, rcpts).await {
        Ok(next) => next,
        Err(e) => {
            let error = format!("{e:#}");
            tracing::warn!(error = %error, "processing failed; will retry");
            let first = ctx.settings.borrow().retry.first_interval;
            let next = Utc::now() + chrono::Duration::from_std(first).unwrap_or_default();
            let (id, at, count) = (msg.id.clone(), format_time(next), msg.processing_count + 1);
            let recorded = ctx
                .writer
                .run(move |conn| writes::fail_processing(conn, &id, count, &error, &at))
                .await;
            if let Err(e) = recorded {
                tracing::error!(error = %e, "cannot record the failed run");
            }
            Next::At(next)
        }
    }
}

/// A message that failed processing twice: parked in the Poison queue, never
/// retried automatically (an admin resumes or removes it).
async fn poison(ctx: &QueueContext, msg: &MessageRow) {
    tracing::error!(queue_id = %msg.id, "message failed processing twice; moved to the Poison queue");
    let mut e = Event::new(EventKind::Poison);
    e.queue_id = Some(msg.id.clone());
    e.message_id = msg.message_id.clone();
    e.sender = Some(msg.sender.clone());
    e.status = msg.last_error.clone();
    let id = msg.id.clone();
    let done = ctx
        .writer
        .run(move |conn| {
            writes::set_poisoned(conn, &id, "processing failed twice")?;
            tracking::write(conn, &e)
        })
        .await;
    if let Err(e) = done {
        tracing::error!(error = %e, "cannot move the message to the Poison queue");
    }
}

/// What one processing run writes, committed together as one job of the
/// queue's [`Writer`] (so it shares a transaction and an fsync with whatever
/// else is committing at that moment).
#[derive(Default)]
struct Writes {
    /// Count the run before the first delivery attempt (see `begin_processing`).
    begin: bool,
    /// Set with `begin` (the categorizer's run).
    stage: Option<&'static str>,
    recipients: Vec<RecipientRow>,
    events: Vec<Event>,
    /// Next hops whose Retry state changes: `Some((retry_at, error))` or cleared.
    hops: Vec<(String, Option<(String, String)>)>,
    /// The run ended normally: when the message is due again.
    end: Option<Option<String>>,
    /// Every recipient is final: forget the message.
    delete: bool,
}

impl Writes {
    fn is_empty(&self) -> bool {
        !self.begin
            && self.stage.is_none()
            && self.recipients.is_empty()
            && self.events.is_empty()
            && self.hops.is_empty()
            && self.end.is_none()
            && !self.delete
    }

    /// Adds a recipient row, replacing an earlier write of the same recipient.
    fn recipient(&mut self, row: RecipientRow) {
        match self.recipients.iter_mut().find(|r| r.seq == row.seq) {
            Some(slot) => *slot = row,
            None => self.recipients.push(row),
        }
    }

    async fn commit(self, ctx: &QueueContext, id: &str) -> Result<()> {
        let id = id.to_string();
        ctx.writer
            .run(move |conn| self.apply(conn, &id))
            .await
            .context("cannot record the queue's progress")
    }

    fn apply(&self, conn: &rusqlite::Connection, id: &str) -> rusqlite::Result<()> {
        if self.begin {
            writes::begin_processing(conn, id, self.stage)?;
        }
        if !self.delete {
            // (A deleted message's recipient rows go with it.)
            for r in &self.recipients {
                writes::upsert_recipient(conn, r)?;
            }
        }
        for e in &self.events {
            tracking::write(conn, e)?;
        }
        for (hop, state) in &self.hops {
            let state = state.as_ref().map(|(at, why)| (at.as_str(), why.as_str()));
            writes::set_hop_retry(conn, hop, state)?;
        }
        if self.delete {
            writes::delete_message(conn, id)?;
        } else if let Some(next) = &self.end {
            writes::end_processing(conn, id, next.as_deref())?;
        }
        Ok(())
    }
}

async fn run_stages(
    ctx: &QueueContext,
    schedule: &Schedule,
    msg: &MessageRow,
    mut rcpts: Vec<RecipientRow>,
) -> Result<Next> {
    let settings = ctx.settings.borrow().clone();
    let dir = ctx.directory.borrow().clone();
    let now = Utc::now();
    let received_at = parse_time(&msg.received_at).unwrap_or(now);
    let age = (now - received_at).to_std().unwrap_or_default();
    let states = schedule.states();
    let suspended: HashSet<String> = states
        .iter()
        .filter(|q| q.suspended)
        .map(|q| q.name.clone())
        .collect();
    let qid = QueueId::parse(&msg.id).context("malformed queue id")?;
    let spool_path = ctx.spool.message_path(&qid);
    // Read when needed: by the categorizer (hop count) and before a DSN.
    let mut headers: Option<Vec<u8>> = None;

    // 1. The categorizer.
    let mut before_delivery = Writes::default();
    let mut refused = 0;
    if msg.stage == "submission" {
        if suspended.contains("submission") {
            return Ok(Next::Never);
        }
        let h = match ctx.spool.read_headers(&qid, HEADER_LIMIT).await {
            Ok(h) => h,
            // A message still being accepted (its rows commit while its spool
            // file is made durable) seen early by a schedule rebuild.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && (ctx.spool.in_progress(&qid) || spool_path.exists()) =>
            {
                return Ok(Next::At(now + chrono::Duration::seconds(2)));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read the spool file of {}", msg.id));
            }
        };
        let connectors = ctx.send_connectors.borrow().clone();
        let route = |a: &EmailAddress| {
            routing::route(&connectors, a.domain())
                .map_or_else(|| UNREACHABLE_HOP.to_string(), |r| r.key)
        };
        let plan = categorizer::categorize(&dir, msg, &rcpts, count_received(&h), &route);
        headers = Some(h);
        // Refused by the categorizer (unknown recipient, loop): no attempt made.
        refused = plan.rows.iter().filter(|r| r.status == "failed").count();
        for row in &plan.rows {
            match rcpts.iter_mut().find(|r| r.seq == row.seq) {
                Some(slot) => *slot = row.clone(),
                None => rcpts.push(row.clone()),
            }
        }
        rcpts.sort_by_key(|r| r.seq);
        before_delivery = Writes {
            begin: true,
            stage: Some("categorized"),
            recipients: plan.rows,
            events: plan.events,
            ..Writes::default()
        };
    }

    // 2. Expiry, and what is due for delivery.
    let hops = HopContext {
        suspended: &suspended,
        states: &states,
        retry_at: now
            + chrono::Duration::from_std(settings.retry.interval_at(age)).unwrap_or_default(),
        now,
    };
    let mut writes = Writes::default();
    let expired = age >= settings.retry.expiration;
    let mut local_due: Vec<RecipientRow> = Vec::new();
    let mut remote_due: Vec<RecipientRow> = Vec::new();
    for r in rcpts.iter().filter(|r| r.status == "queued") {
        let hop = r.next_hop.as_deref().unwrap_or(UNREACHABLE_HOP);
        if expired {
            let row = expire(r, hop);
            writes.events.push(event(msg, EventKind::Fail, &row, hop));
            writes.recipients.push(row);
        } else if suspended.contains(hop) || !is_due(r, now) {
            continue;
        } else if hop == MAILBOX_HOP {
            local_due.push(r.clone());
        } else {
            remote_due.push(r.clone());
        }
    }
    // Counted before delivery: a run the process does not survive stays
    // counted. A run that only finds its next hop still in Retry attempts
    // nothing and writes nothing.
    let attempts = !local_due.is_empty()
        || remote_due.iter().any(|r| {
            hops.waiting(r.next_hop.as_deref().unwrap_or(UNREACHABLE_HOP))
                .is_none()
        });
    before_delivery.begin |= attempts;
    let begun = before_delivery.begin;
    if begun {
        if msg.stage != "submission" && !spool_path.exists() {
            anyhow::bail!("the spool file of {} is missing", msg.id);
        }
        before_delivery.commit(ctx, &msg.id).await?;
        ctx.metrics
            .deliveries(Outcome::Failed, Via::None, refused as u64);
    }
    for mut row in local_due {
        deliver_local(ctx, &dir, msg, &mut row, &spool_path, hops.retry_at).await;
        let kind = match row.status.as_str() {
            "delivered" => EventKind::Deliver,
            "failed" => EventKind::Fail,
            _ => EventKind::Defer,
        };
        writes.events.push(event(msg, kind, &row, MAILBOX_HOP));
        writes.recipients.push(row);
    }
    if !remote_due.is_empty() {
        deliver_remote(ctx, msg, &spool_path, remote_due, &hops, &mut writes).await;
    }
    // The outcomes, for the metrics once they are committed.
    let changed = writes.recipients.clone();
    let before = rcpts.clone();
    for r in &changed {
        if let Some(slot) = rcpts.iter_mut().find(|x| x.seq == r.seq) {
            *slot = r.clone();
        }
    }
    let mut counted = changed.is_empty();

    // 3. Delivery status notifications.
    let mut notices = Notices::due(&settings, msg, &rcpts, age, now);
    if !notices.dsns.is_empty() {
        let h = match headers.take() {
            // The categorizer's read-ahead stopped inside the header (2,000
            // Received fields): the report needs all of it for the Subject.
            Some(h) if h.len() < HEADER_LIMIT => h,
            // Without the original (gone from disk) the report still goes out.
            _ => ctx
                .spool
                .read_headers(&qid, DSN_HEADER_LIMIT)
                .await
                .unwrap_or_default(),
        };
        // Never a DSN about a report (RFC 3464 §2).
        if dsn::is_report(&h) {
            notices.dsns.clear();
        }
    }
    if !notices.dsns.is_empty() {
        // The outcomes are on disk before any report about them goes out.
        std::mem::take(&mut writes).commit(ctx, &msg.id).await?;
        count_outcomes(&ctx.metrics, received_at, &before, &changed);
        counted = true;
        for (action, list, until) in &notices.dsns {
            send_dsn(ctx, &settings, msg, list, *action, *until, now).await?;
        }
    }
    notices.record(&mut rcpts, &mut writes);

    // 4. Done, or when next?
    let done = !rcpts.iter().any(RecipientRow::is_active);
    let next = if done {
        writes.delete = true;
        Next::Never
    } else {
        next_run(&settings, &rcpts, received_at, now, &hops, &writes)
    };
    if !done && (begun || msg.processing_count > 0 || msg.last_error.is_some()) {
        let at = match &next {
            Next::At(t) | Next::Parked { until: t, .. } => Some(format_time(*t)),
            Next::Never => None,
        };
        writes.end = Some(at);
    }
    let hop_changed = !writes.hops.is_empty();
    if !writes.is_empty() {
        writes.commit(ctx, &msg.id).await?;
    }
    if hop_changed {
        refresh_states(ctx, schedule).await;
    }
    if !counted {
        count_outcomes(&ctx.metrics, received_at, &before, &changed);
    }
    if done {
        ctx.spool.remove(&msg.id)?;
        tracing::info!("message complete; removed from the queue");
    }
    Ok(next)
}

fn is_due(r: &RecipientRow, now: DateTime<Utc>) -> bool {
    r.next_attempt_at
        .as_deref()
        .and_then(parse_time)
        .is_none_or(|t| t <= now)
}

/// A queued recipient whose message is past its expiration time.
fn expire(r: &RecipientRow, hop: &str) -> RecipientRow {
    let (code, text) = if hop == UNREACHABLE_HOP {
        (
            "5.4.4",
            "Unable to route: no send connector covers this domain, and the message expired",
        )
    } else {
        (
            "5.4.7",
            "Delivery time expired: the message could not be delivered in time",
        )
    };
    let mut row = r.clone();
    row.status = "failed".into();
    row.status_code = Some(code.into());
    let last = r
        .diagnostic
        .clone()
        .map(|d| format!(" (last error: {d})"))
        .unwrap_or_default();
    row.diagnostic = Some(format!("550 {code} {text}{last}"));
    row
}

/// When a message with active recipients runs again: the earliest retry of a
/// recipient whose queue is not suspended, its expiry, its delay notice. A
/// message that waits only for one next hop in Retry is parked behind it.
fn next_run(
    settings: &ServerSettings,
    rcpts: &[RecipientRow],
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
    hops: &HopContext<'_>,
    writes: &Writes,
) -> Next {
    let waiting: Vec<&RecipientRow> = rcpts
        .iter()
        .filter(|r| r.status == "queued")
        .filter(|r| {
            !hops
                .suspended
                .contains(r.next_hop.as_deref().unwrap_or(UNREACHABLE_HOP))
        })
        .collect();
    let Some(retry) = waiting
        .iter()
        .map(|r| {
            r.next_attempt_at
                .as_deref()
                .and_then(parse_time)
                .unwrap_or(now)
        })
        .min()
    else {
        return Next::Never; // only suspended queues left: an admin resumes them
    };
    let delay_pending = waiting.iter().any(|r| !r.delay_notified);
    let deadline = deadline(settings, received_at, delay_pending, now);
    // Parked: every waiting recipient has the same next hop, and it is in
    // Retry (recorded by this run, or before) until no later than the deadline.
    let hop = waiting[0].next_hop.as_deref().unwrap_or(UNREACHABLE_HOP);
    let same_hop = waiting
        .iter()
        .all(|r| r.next_hop.as_deref().unwrap_or(UNREACHABLE_HOP) == hop);
    let until = writes
        .hops
        .iter()
        .find(|(h, _)| h == hop)
        .map(|(_, state)| state.as_ref().and_then(|(at, _)| parse_time(at)))
        .unwrap_or_else(|| hops.waiting(hop).map(|(at, _)| at));
    match until {
        Some(until) if same_hop && hop != UNREACHABLE_HOP && until > now && until <= deadline => {
            Next::Parked {
                hop: hop.to_string(),
                until,
                deadline,
            }
        }
        _ => Next::At(retry.min(deadline).max(now)),
    }
}

/// Counts the committed changes of one pass in `/metrics`: final outcomes, and
/// deferrals where an attempt was made (the attempt count moved; a recipient only
/// rescheduled because its next hop is in Retry is not counted).
fn count_outcomes(
    metrics: &Metrics,
    received_at: DateTime<Utc>,
    before: &[RecipientRow],
    changed: &[RecipientRow],
) {
    let done = Utc::now();
    for r in changed {
        let Some(old) = before.iter().find(|x| x.seq == r.seq) else {
            continue;
        };
        let via = match r.next_hop.as_deref() {
            Some(MAILBOX_HOP) => Via::Mailbox,
            Some(UNREACHABLE_HOP) | None => Via::None,
            Some(_) => Via::Smtp,
        };
        let outcome = match r.status.as_str() {
            "delivered" if old.status != "delivered" => Outcome::Delivered,
            "failed" if old.status != "failed" => Outcome::Failed,
            "queued" if r.attempts > old.attempts => Outcome::Deferred,
            _ => continue,
        };
        metrics.delivery(outcome, via);
        if outcome == Outcome::Delivered {
            metrics.delivery_latency((done - received_at).to_std().unwrap_or_default());
        }
    }
}

fn count_received(headers: &[u8]) -> usize {
    headers
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

fn event(msg: &MessageRow, kind: EventKind, row: &RecipientRow, hop: &str) -> Event {
    let mut e = Event::new(kind);
    e.queue_id = Some(msg.id.clone());
    e.message_id = msg.message_id.clone();
    e.sender = Some(msg.sender.clone());
    e.recipients = vec![row.address.clone()];
    e.next_hop = Some(hop.to_string());
    e.remote = row.remote_mta.clone();
    e.status = row.diagnostic.clone().or_else(|| row.status_code.clone());
    e.size = Some(msg.size as u64);
    e
}

async fn deliver_local(
    ctx: &QueueContext,
    dir: &Directory,
    msg: &MessageRow,
    row: &mut RecipientRow,
    spool_path: &std::path::Path,
    retry_at: DateTime<Utc>,
) {
    let Some(mailbox) = row.mailbox_id.and_then(|id| dir.mailbox(id)) else {
        row.status = "failed".into();
        row.status_code = Some("5.1.1".into());
        row.diagnostic = Some("550 5.1.1 The mailbox no longer exists".into());
        return;
    };
    let key = format!("{}.{}", msg.id, row.seq);
    let sender = (!msg.sender.is_empty()).then_some(msg.sender.as_str());
    let req = DeliveryRequest {
        folder: &mailbox.folder,
        quota_bytes: mailbox.quota_mb.map(|q| q as u64 * 1024 * 1024),
        spool_path,
        return_path: sender,
        delivered_to: &row.address,
        unique_key: &key,
    };
    row.attempts += 1;
    match ctx.local.deliver(&req).await {
        DeliveryOutcome::Delivered { .. } | DeliveryOutcome::AlreadyDelivered { .. } => {
            row.status = "delivered".into();
            row.status_code = Some("2.0.0".into());
            row.diagnostic = Some(format!(
                "250 2.0.0 Delivered to mailbox {}",
                mailbox.primary_address
            ));
        }
        DeliveryOutcome::OverQuota { usage, quota } => {
            row.status = "failed".into();
            row.status_code = Some("5.2.2".into());
            row.diagnostic = Some(format!(
                "552 5.2.2 Mailbox full: {} uses {usage} of {quota} bytes",
                mailbox.primary_address
            ));
        }
        DeliveryOutcome::Transient(why) => {
            row.status_code = Some("4.3.0".into());
            row.diagnostic = Some(format!("451 4.3.0 Local delivery failed: {why}"));
            row.next_attempt_at = Some(format_time(retry_at));
        }
    }
}

/// What remote delivery needs to know about the queues.
struct HopContext<'a> {
    suspended: &'a HashSet<String>,
    states: &'a [rows::QueueStateRow],
    retry_at: DateTime<Utc>,
    now: DateTime<Utc>,
}

impl HopContext<'_> {
    /// The next hop is in Retry after a connection failure: until when, and why.
    fn waiting(&self, hop: &str) -> Option<(DateTime<Utc>, Option<String>)> {
        let s = self.states.iter().find(|s| s.name == hop)?;
        let at = s.retry_at.as_deref().and_then(parse_time)?;
        (at > self.now).then(|| (at, s.last_error.clone()))
    }
}

/// Routes the due remote recipients of one message afresh (connectors may have
/// changed since the categorizer ran), groups them by domain, and delivers each
/// group over its route. Outcomes, events and next-hop states land in `writes`.
async fn deliver_remote(
    ctx: &QueueContext,
    msg: &MessageRow,
    spool_path: &std::path::Path,
    due: Vec<RecipientRow>,
    hops: &HopContext<'_>,
    writes: &mut Writes,
) {
    let connectors = ctx.send_connectors.borrow().clone();
    let mut by_domain: Vec<(String, Vec<RecipientRow>)> = Vec::new();
    for row in due {
        let domain = EmailAddress::parse(&row.address)
            .map(|a| a.domain().to_string())
            .unwrap_or_default();
        match by_domain.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(row),
            None => by_domain.push((domain, vec![row])),
        }
    }
    let retry = format_time(hops.retry_at);
    for (domain, rows_of_domain) in by_domain {
        let Some(route) = routing::route(&connectors, &domain) else {
            for mut row in rows_of_domain {
                let moved = row.next_hop.as_deref() != Some(UNREACHABLE_HOP);
                row.next_hop = Some(UNREACHABLE_HOP.into());
                row.attempts += 1;
                row.next_attempt_at = Some(retry.clone());
                row.status_code = Some("4.4.4".into());
                row.diagnostic = Some(format!("451 4.4.4 No send connector covers {domain}"));
                if moved {
                    writes
                        .events
                        .push(event(msg, EventKind::Defer, &row, UNREACHABLE_HOP));
                }
                writes.recipients.push(row);
            }
            continue;
        };
        let key = route.key.clone();
        if hops.suspended.contains(&key) {
            continue;
        }
        let waiting = match route.too_big(msg.size as u64) {
            true => None, // fails at once, no need to wait for the hop
            false => hops.waiting(&key),
        };
        if let Some((until, why)) = waiting {
            // The hop is in Retry: wait with it instead of knocking again.
            for mut row in rows_of_domain {
                row.next_hop = Some(key.clone());
                row.next_attempt_at = Some(format_time(until));
                if let Some(why) = &why {
                    row.diagnostic = Some(format!("451 4.4.1 {why}"));
                }
                writes.recipients.push(row);
            }
            continue;
        }
        for batch in rows_of_domain.chunks(MAX_RCPTS_PER_TRANSACTION) {
            let outcome = send_batch(ctx, msg, spool_path, &route, &domain, batch).await;
            let hop_state = record_outcome(
                msg,
                &key,
                batch,
                outcome,
                &retry,
                &mut writes.recipients,
                &mut writes.events,
            );
            // A connection failure puts the whole next hop in Retry; a conversation
            // with a server ends that.
            let state = match hop_state {
                Some(Some(why)) => Some(Some((retry.clone(), why))),
                Some(None)
                    if hops
                        .states
                        .iter()
                        .any(|s| s.name == key && s.retry_at.is_some()) =>
                {
                    Some(None)
                }
                _ => None,
            };
            if let Some(state) = state {
                writes.hops.retain(|(hop, _)| *hop != key);
                writes.hops.push((key.clone(), state));
            }
        }
    }
}

async fn send_batch(
    ctx: &QueueContext,
    msg: &MessageRow,
    spool_path: &std::path::Path,
    route: &routing::Route,
    domain: &str,
    batch: &[RecipientRow],
) -> HopOutcome {
    let recipients: Vec<OutRecipient> = batch
        .iter()
        .map(|r| OutRecipient {
            address: r.address.clone(),
            notify: r.notify.clone(),
            orcpt: r.orcpt.clone(),
        })
        .collect();
    let tx = Transaction {
        sender: &msg.sender,
        recipients: &recipients,
        body: spool_path,
        size: msg.size as u64,
        eight_bit: msg.body_type != "7bit",
        smtputf8: msg.smtputf8,
        ret: msg.ret.as_deref(),
        envid: msg.envid.as_deref(),
    };
    ctx.remote.deliver(route, domain, &tx).await
}

/// Applies one delivery attempt's outcome to its recipients. Returns the next
/// hop's new state: `Some(Some(error))` unreachable, `Some(None)` reachable.
fn record_outcome(
    msg: &MessageRow,
    key: &str,
    batch: &[RecipientRow],
    outcome: HopOutcome,
    retry: &str,
    changed: &mut Vec<RecipientRow>,
    events: &mut Vec<Event>,
) -> Option<Option<String>> {
    let defer = |row: &mut RecipientRow, code: &str, text: String| {
        row.status_code = Some(code.into());
        row.diagnostic = Some(text);
        row.next_attempt_at = Some(retry.to_string());
    };
    let mut hop_state: Option<Option<String>> = None;
    for (i, r) in batch.iter().enumerate() {
        let mut row = r.clone();
        row.next_hop = Some(key.to_string());
        row.attempts += 1;
        let kind = match &outcome {
            HopOutcome::Done {
                outcomes,
                remote,
                remote_dsn,
                ..
            } => {
                hop_state = Some(None);
                row.remote_mta = Some(remote.clone());
                let (kind, reply) = match outcomes.get(i) {
                    Some(RcptOutcome::Delivered(reply)) => {
                        row.status = "delivered".into();
                        // A DSN-capable server reports success itself (RFC 3461 §6.2.4).
                        row.reported = *remote_dsn;
                        (EventKind::Send, Some(reply))
                    }
                    Some(RcptOutcome::Deferred(reply)) => (EventKind::Defer, Some(reply)),
                    Some(RcptOutcome::Failed(reply)) => {
                        row.status = "failed".into();
                        (EventKind::Fail, Some(reply))
                    }
                    None => (EventKind::Defer, None),
                };
                match reply {
                    Some(reply) => {
                        let class = match kind {
                            EventKind::Send => "2.0.0",
                            EventKind::Fail => "5.0.0",
                            _ => "4.0.0",
                        };
                        row.status_code = Some(
                            reply
                                .enhanced
                                .map(|e| e.to_string())
                                .unwrap_or_else(|| class.into()),
                        );
                        row.diagnostic = Some(reply.to_string().trim_end().to_string());
                        if kind == EventKind::Defer {
                            row.next_attempt_at = Some(retry.to_string());
                        }
                    }
                    None => defer(
                        &mut row,
                        "4.4.2",
                        "451 4.4.2 No reply for this recipient".into(),
                    ),
                }
                kind
            }
            HopOutcome::Permanent { status, message } => {
                row.status = "failed".into();
                row.status_code = Some(status.clone());
                row.diagnostic = Some(message.clone());
                EventKind::Fail
            }
            HopOutcome::Unreachable { message } => {
                hop_state = Some(Some(message.clone()));
                defer(
                    &mut row,
                    "4.4.1",
                    format!("451 4.4.1 Connection failed: {message}"),
                );
                EventKind::Defer
            }
            HopOutcome::Interrupted { message, remote } => {
                row.remote_mta = Some(remote.clone());
                defer(
                    &mut row,
                    "4.4.2",
                    format!("451 4.4.2 Connection lost: {message}"),
                );
                EventKind::Defer
            }
        };
        let mut e = event(msg, kind, &row, key);
        if let HopOutcome::Done { connector, .. } = &outcome {
            e.next_hop = Some(format!("{key} via {connector}"));
        }
        events.push(e);
        changed.push(row);
    }
    hop_state
}

fn wants(notify: &Option<String>, what: &str, default: bool) -> bool {
    match notify {
        None => default,
        Some(n) => n.split(',').any(|x| x.trim().eq_ignore_ascii_case(what)),
    }
}

/// The notifications one run owes: the DSN messages to send, and the recipients
/// to mark as reported (also those whose NOTIFY, or the null sender, asks for no
/// report, so that nothing is ever reported twice).
struct Notices {
    dsns: Vec<(dsn::Action, Vec<RecipientRow>, Option<DateTime<Utc>>)>,
    reported: Vec<usize>,
    delayed: Vec<usize>,
}

impl Notices {
    /// The NDR, delay and success notices that are due. (The caller drops the
    /// DSNs when the message is itself a report: that needs its headers.)
    fn due(
        settings: &ServerSettings,
        msg: &MessageRow,
        rcpts: &[RecipientRow],
        age: Duration,
        now: DateTime<Utc>,
    ) -> Notices {
        // Never a DSN to the null sender (RFC 3464 §2).
        let silent = msg.sender.is_empty();
        let mut failed = Vec::new();
        let mut delayed = Vec::new();
        let mut delivered = Vec::new();
        for (i, r) in rcpts.iter().enumerate() {
            match r.status.as_str() {
                "failed" if !r.reported => failed.push(i),
                "delivered" if !r.reported => delivered.push(i),
                "queued" if !r.delay_notified && age >= settings.retry.delay_notice_after => {
                    delayed.push(i)
                }
                _ => {}
            }
        }
        let pick = |list: &[usize], what: &str, default: bool| -> Vec<RecipientRow> {
            list.iter()
                .map(|&i| rcpts[i].clone())
                .filter(|r| !silent && wants(&r.notify, what, default))
                .collect()
        };
        let until = parse_time(&msg.received_at).unwrap_or(now)
            + chrono::Duration::from_std(settings.retry.expiration).unwrap_or_default();
        // Handed to a server that does not speak DSN: "relayed" (RFC 3464 §2.3.3).
        let (relayed, success): (Vec<RecipientRow>, Vec<RecipientRow>) =
            pick(&delivered, "SUCCESS", false)
                .into_iter()
                .partition(|r| r.remote_mta.is_some());
        let dsns = [
            (dsn::Action::Failed, pick(&failed, "FAILURE", true), None),
            (
                dsn::Action::Delayed,
                pick(&delayed, "DELAY", true),
                Some(until),
            ),
            (dsn::Action::Delivered, success, None),
            (dsn::Action::Relayed, relayed, None),
        ]
        .into_iter()
        .filter(|(_, list, _)| !list.is_empty())
        .collect();
        failed.extend(delivered);
        Notices {
            dsns,
            reported: failed,
            delayed,
        }
    }

    /// Marks the recipients as reported (once the DSNs are queued).
    fn record(&self, rcpts: &mut [RecipientRow], writes: &mut Writes) {
        for &i in &self.reported {
            rcpts[i].reported = true;
            writes.recipient(rcpts[i].clone());
        }
        for &i in &self.delayed {
            rcpts[i].delay_notified = true;
            writes.recipient(rcpts[i].clone());
        }
    }
}

async fn send_dsn(
    ctx: &QueueContext,
    settings: &ServerSettings,
    msg: &MessageRow,
    rcpts: &[RecipientRow],
    action: dsn::Action,
    retry_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let to =
        EmailAddress::parse(&msg.sender).context("the original sender is not a valid address")?;
    let reports: Vec<dsn::RecipientReport> = rcpts
        .iter()
        .map(|r| dsn::RecipientReport {
            final_recipient: r.address.clone(),
            original_recipient: r.orcpt.clone(),
            action,
            status: r.status_code.clone().unwrap_or_else(|| match action {
                dsn::Action::Failed => "5.0.0".into(),
                dsn::Action::Delayed => "4.0.0".into(),
                _ => "2.0.0".into(),
            }),
            diagnostic: r.diagnostic.clone(),
            remote_mta: r.remote_mta.clone(),
            last_attempt: Some(now),
            will_retry_until: retry_until,
        })
        .collect();
    let qid = QueueId::parse(&msg.id).context("malformed queue id")?;
    let id = QueueId::generate();
    let spool = ctx.spool.clone();
    let original_path = spool.message_path(&qid);
    let hostname = ctx.hostname.clone();
    let (sender_text, envid) = (msg.sender.clone(), msg.envid.clone());
    let arrival = parse_time(&msg.received_at).unwrap_or(now);
    let ret = if msg.ret.as_deref() == Some("FULL") {
        dsn::ReturnContent::Full
    } else {
        dsn::ReturnContent::Headers
    };
    let (original_size, new_id) = (msg.size as u64, id.clone());
    let (message_id, size) = tokio::task::spawn_blocking(move || {
        // Without the original (removed from disk), the report still goes out.
        let original: Box<dyn std::io::BufRead> = match std::fs::File::open(&original_path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(_) => Box::new(std::io::empty()),
        };
        spool.write_blocking(&new_id, |out| {
            let input = dsn::ReportInput {
                reporting_mta: &hostname,
                to: &sender_text,
                envid: envid.as_deref(),
                arrival_date: arrival,
                queue_id: qid.as_str(),
                recipients: &reports,
                return_content: ret,
                original_size,
            };
            dsn::write_report(&input, original, out)
        })
    })
    .await??;
    let mut recipients = vec![EnvelopeRecipient {
        address: to,
        orcpt: None,
        notify: Some("NEVER".into()),
    }];
    if let (dsn::Action::Failed, Some(copy)) = (action, &settings.ndr_copy_to) {
        recipients.push(EnvelopeRecipient {
            address: copy.clone(),
            orcpt: None,
            notify: Some("NEVER".into()),
        });
    }
    let envelope = Envelope {
        id: id.clone(),
        received_at: format_time(Utc::now()),
        sender: None,
        recipients,
        size,
        message_id: Some(message_id),
        subject: None,
        ret: None,
        envid: None,
        body_type: if msg.body_type == "7bit" {
            "7bit".into()
        } else {
            "8bitmime".into()
        },
        smtputf8: msg.smtputf8,
        source: "dsn".into(),
        client_ip: None,
        client_helo: None,
        auth_user: None,
    };
    ctx.submitter.submit(envelope).await?;
    ctx.metrics.dsn_sent(action);
    tracing::info!(dsn = %id, action = ?action, recipients = rcpts.len(), "delivery status notification queued");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_headers_are_counted() {
        let h = b"Received: a\r\n b\r\nRECEIVED: c\r\nX-Received: d\r\nSubject: x\r\n";
        assert_eq!(count_received(h), 2);
    }

    #[test]
    fn notify_defaults() {
        assert!(wants(&None, "FAILURE", true));
        assert!(!wants(&None, "SUCCESS", false));
        assert!(wants(&Some("SUCCESS,FAILURE".into()), "SUCCESS", false));
        assert!(!wants(&Some("NEVER".into()), "FAILURE", true));
    }
}
