//! Toolbox and overview pages: the dashboard, Queue Viewer, Message Tracking,
//! Protocol Logs, DNS check and the audit log.

use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{
    Action, Block, Field, Form as PageForm, Page, Params, Table, audit, cell, done, link, opt,
    urlencode,
};
use crate::admin::AdminState;
use crate::admin::session::Session;
use crate::queue::actions;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/toolbox/queues", get(queues))
        .route("/toolbox/queues/action", post(queue_action))
        .route("/toolbox/messages", get(messages))
        .route("/toolbox/message", get(message))
        .route("/toolbox/message/action", post(message_action))
        .route("/toolbox/message/export", get(export))
        .route("/toolbox/tracking", get(tracking))
        .route("/toolbox/protocol-logs", get(protocol_logs))
        .route("/toolbox/dns", get(dns_check))
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the page could not be built; see the server log",
    )
        .into_response()
}

pub async fn dashboard(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "dashboard", "Dashboard");
    let queues = match actions::list_queues(&state.store).await {
        Ok(q) => q,
        Err(e) => return internal(e),
    };
    let dir = match crate::directory::Directory::load(&state.store).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let send = crate::routing::connector::list(&state.store)
        .await
        .unwrap_or_default();
    let receive = crate::receive::connector::list(&state.store)
        .await
        .unwrap_or_default();
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let count = |kind: &'static str| {
        let pool = state.store.pool().clone();
        let since = hour_ago.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM tracking_events WHERE event = ? AND time >= ?",
            )
            .bind(kind)
            .bind(since)
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
        }
    };
    let received = count("RECEIVE").await + count("SUBMIT").await;
    let out = count("DELIVER").await + count("SEND").await;

    let mut warnings = Vec::new();
    if dir.accepted_domains().is_empty() {
        warnings.push("No accepted domain: the server accepts no mail. Add one under Organization › Hub Transport.");
    }
    if !send.iter().any(|c| c.enabled) {
        warnings.push(
            "No enabled send connector: mail for other domains waits in the Unreachable queue.",
        );
    }
    if state.self_signed {
        warnings.push("The TLS certificate is self-signed: set [tls] cert and key for a real one.");
    }
    if !warnings.is_empty() {
        page.push(Block::Heading("Warnings".into()));
        let mut t = Table::new("warnings", &["Warning"], "");
        for w in warnings {
            t.row(vec![cell(w)], vec![]);
        }
        page.push(Block::Table(t));
    }
    let total: usize = queues.iter().map(|q| q.messages).sum();
    page.push(Block::Details(vec![
        ("Messages in queues".into(), total.to_string()),
        ("Messages in, last hour".into(), received.to_string()),
        (
            "Messages delivered or sent, last hour".into(),
            out.to_string(),
        ),
        ("Mailboxes".into(), dir.mailboxes().len().to_string()),
    ]));
    page.push(Block::Heading("Connectors".into()));
    let mut t = Table::new(
        "connector-state",
        &["Connector", "Kind", "Enabled", "Where"],
        "No connectors.",
    );
    for c in &receive {
        t.row(
            vec![
                cell(&c.name),
                cell("receive"),
                cell(if c.enabled { "Yes" } else { "No" }),
                cell(
                    c.bindings
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ],
            vec![],
        );
    }
    for c in &send {
        let route = c.route_text();
        t.row(
            vec![
                cell(&c.name),
                cell("send"),
                cell(if c.enabled { "Yes" } else { "No" }),
                cell(route),
            ],
            vec![],
        );
    }
    page.push(Block::Table(t));
    page.render()
}

async fn queues(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let list = match actions::list_queues(&state.store).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let mut page = Page::new(&state, Some(&s), "queues", "Queue Viewer");
    page.p.notice = q.get("notice").cloned();
    let mut t = Table::new(
        "queues",
        &["Queue", "Status", "Messages", "Next retry", "Last error"],
        "",
    );
    for (i, qi) in list.iter().enumerate() {
        let mut row_actions = Vec::new();
        if qi.name != "poison" {
            let (verb, label) = if qi.status == actions::QueueStatus::Suspended {
                ("resume", "Resume")
            } else {
                ("suspend", "Suspend")
            };
            row_actions.push(Action::post(
                &format!("queue-{verb}-{i}"),
                label,
                "/toolbox/queues/action",
                &[("queue", &qi.name), ("action", verb)],
            ));
            row_actions.push(Action::post(
                &format!("queue-retry-{i}"),
                "Retry",
                "/toolbox/queues/action",
                &[("queue", &qi.name), ("action", "retry")],
            ));
        }
        t.row(
            vec![
                link(
                    &qi.display_name,
                    format!("/toolbox/messages?queue={}", urlencode(&qi.name)),
                ),
                cell(format!("{:?}", qi.status)),
                cell(qi.messages.to_string()),
                cell(qi.next_retry.clone().unwrap_or_default()),
                cell(qi.last_error.clone().unwrap_or_default()),
            ],
            row_actions,
        );
    }
    page.push(Block::Table(t));
    page.render()
}

async fn queue_action(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let queue = opt(&p, "queue").unwrap_or_default();
    let action = opt(&p, "action").unwrap_or_default();
    let result = match action.as_str() {
        "suspend" => actions::suspend_queue(&state.store, &queue)
            .await
            .map(|_| "suspended".to_string()),
        "resume" => actions::resume_queue(&state.store, &queue)
            .await
            .map(|_| "resumed".to_string()),
        "retry" => actions::retry_queue(&state.store, &queue)
            .await
            .map(|n| format!("retried ({n} recipient(s) due now)")),
        _ => Err(crate::directory::invalid("action", "unknown queue action")),
    };
    match result {
        Ok(what) => {
            audit(&state, &s, &format!("queue.{action}"), &queue, None).await;
            done(
                "/toolbox/queues",
                &format!(
                    "Queue {} {what}.",
                    actions::display_name(&actions::queue_key(&queue))
                ),
            )
        }
        Err(e) => done("/toolbox/queues", &e.to_string()),
    }
}

async fn messages(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let queue = opt(&q, "queue");
    let list = match actions::list_messages(&state.store, queue.as_deref(), None).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let title = match &queue {
        Some(name) => format!(
            "Queue Viewer › {}",
            actions::display_name(&actions::queue_key(name))
        ),
        None => "Queue Viewer › All messages".into(),
    };
    let mut page = Page::new(&state, Some(&s), "queues", &title);
    page.p.notice = q.get("notice").cloned();
    let mut t = Table::new(
        "messages",
        &[
            "Queue ID",
            "From",
            "Subject",
            "Size",
            "Received",
            "Status",
            "Recipients",
            "Next retry",
            "Last error",
        ],
        "No messages in this queue.",
    );
    for m in &list {
        t.row(
            vec![
                link(&m.id, format!("/toolbox/message?id={}", urlencode(&m.id))),
                cell(if m.sender.is_empty() {
                    "<>".into()
                } else {
                    m.sender.clone()
                }),
                cell(m.subject.clone().unwrap_or_default()),
                cell(m.size.to_string()),
                cell(&m.received_at),
                cell(&m.status),
                cell(m.recipients.to_string()),
                cell(m.next_retry.clone().unwrap_or_default()),
                cell(m.last_error.clone().unwrap_or_default()),
            ],
            vec![],
        );
    }
    page.push(Block::Table(t));
    page.render()
}

async fn message(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let id = opt(&q, "id").unwrap_or_default();
    let mut page = Page::new(&state, Some(&s), "queues", &format!("Message {id}"));
    page.p.notice = q.get("notice").cloned();
    let d = match actions::message_details(&state.store, &id).await {
        Ok(d) => d,
        Err(e) => {
            page.p.error = Some(e.to_string());
            let mut res = page.render();
            *res.status_mut() = StatusCode::NOT_FOUND;
            return res;
        }
    };
    let act = |verb: &str, label: &str, ndr: &str| {
        Action::post(
            &format!("message-{verb}{ndr}"),
            label,
            "/toolbox/message/action",
            &[("id", &d.id), ("action", verb), ("ndr", ndr)],
        )
    };
    page.p.actions = vec![
        if d.suspended {
            act("resume", "Resume", "")
        } else {
            act("suspend", "Suspend", "")
        },
        act("remove", "Remove (with NDR)", "true").confirmed(),
        act("remove", "Remove (without NDR)", "false").confirmed(),
        Action::link(
            "message-export",
            "Export (.eml)",
            format!("/toolbox/message/export?id={}", urlencode(&d.id)),
        ),
    ];
    page.push(Block::Details(vec![
        ("Queue ID".into(), d.id.clone()),
        ("From".into(), d.sender.clone()),
        ("Subject".into(), d.subject.clone().unwrap_or_default()),
        (
            "Message-ID".into(),
            d.message_id.clone().unwrap_or_default(),
        ),
        ("Size".into(), d.size.to_string()),
        ("Received".into(), d.received_at.clone()),
        ("Source".into(), d.source.clone()),
        (
            "Suspended".into(),
            if d.suspended { "Yes" } else { "No" }.into(),
        ),
        (
            "Last error".into(),
            d.last_error.clone().unwrap_or_default(),
        ),
    ]));
    let mut t = Table::new(
        "recipients",
        &[
            "Recipient",
            "Status",
            "Queue",
            "Status code",
            "Diagnostic",
            "Next retry",
        ],
        "No recipients.",
    );
    for r in &d.recipients {
        t.row(
            vec![
                cell(&r.address),
                cell(&r.status),
                cell(r.queue.clone().unwrap_or_default()),
                cell(r.status_code.clone().unwrap_or_default()),
                cell(r.diagnostic.clone().unwrap_or_default()),
                cell(r.next_retry.clone().unwrap_or_default()),
            ],
            vec![],
        );
    }
    page.push(Block::Heading("Recipients".into()));
    page.push(Block::Table(t));
    if let Ok(spool) = crate::queue::spool::Spool::open(&state.data_dir)
        && let Some(qid) = crate::queue::QueueId::parse(&d.id)
        && let Ok(h) = spool.read_headers(&qid, 16 * 1024).await
    {
        page.push(Block::Heading("Headers".into()));
        page.push(Block::Pre(String::from_utf8_lossy(&h).into_owned()));
    }
    page.render()
}

async fn message_action(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let id = opt(&p, "id").unwrap_or_default();
    let action = opt(&p, "action").unwrap_or_default();
    let ndr = p.get("ndr").is_some_and(|v| v == "true");
    let back = format!("/toolbox/message?id={}", urlencode(&id));
    let result = match action.as_str() {
        "suspend" => actions::suspend_message(&state.store, &id)
            .await
            .map(|_| "suspended".to_string()),
        "resume" => actions::resume_message(&state.store, &id)
            .await
            .map(|_| "resumed".to_string()),
        "remove" => actions::remove_message(&state.store, &id, ndr)
            .await
            .map(|n| {
                format!(
                    "removed{} ({n} recipient(s))",
                    if ndr { " with NDR" } else { "" }
                )
            }),
        _ => Err(crate::directory::invalid(
            "action",
            "unknown message action",
        )),
    };
    match result {
        Ok(what) => {
            let detail = ndr.then_some("with NDR");
            audit(&state, &s, &format!("message.{action}"), &id, detail).await;
            let to = if action == "remove" {
                "/toolbox/queues".to_string()
            } else {
                back
            };
            done(&to, &format!("Message {id} {what}."))
        }
        Err(e) => done(&back, &e.to_string()),
    }
}

async fn export(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let id = opt(&q, "id").unwrap_or_default();
    let path = match crate::queue::spool::Spool::open(&state.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|spool| actions::export_path(&spool, &id).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => return (StatusCode::NOT_FOUND, e).into_response(),
    };
    match tokio::fs::File::open(&path).await {
        Ok(f) => {
            // A copy of someone's mail left the server: audited like the API's.
            audit(&state, &s, "message.export", &id, None).await;
            let body = axum::body::Body::from_stream(tokio_util_stream(f));
            (
                [
                    (header::CONTENT_TYPE, "message/rfc822".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!(
                            "attachment; filename=\"{}.eml\"",
                            id.chars()
                                .filter(char::is_ascii_hexdigit)
                                .collect::<String>()
                        ),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(_) => (StatusCode::NOT_FOUND, "the message is gone").into_response(),
    }
}

/// Streams a file in 64 KiB chunks (no whole message in memory).
fn tokio_util_stream(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

fn tracking_form(q: &Params) -> PageForm {
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    PageForm::get(
        "tracking-search",
        "/toolbox/tracking",
        "Search",
        vec![
            Field::new("sender", "Sender", "text", v("sender")),
            Field::new("recipient", "Recipient", "text", v("recipient")),
            Field::new("message_id", "Message-ID", "text", v("message_id")),
            Field::new("id", "Queue ID", "text", v("id")),
            Field::new(
                "since",
                "Since",
                "text",
                q.get("since").cloned().unwrap_or_else(|| "1d".into()),
            )
            .help("e.g. 1h, 2d, or an RFC 3339 time"),
        ],
    )
}

async fn tracking(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "tracking", "Message Tracking");
    let mut form = tracking_form(&q);
    let since = match opt(&q, "since") {
        None => None,
        Some(v) => match crate::settings::parse_duration(&v) {
            Some(d) => Some(
                (chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default())
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            None if chrono::DateTime::parse_from_rfc3339(&v).is_ok() => Some(v),
            None => {
                form.fields[4].error =
                    Some("Give a duration like 1h or 2d, or an RFC 3339 time.".into());
                page.push(Block::Form(form));
                let mut res = page.render();
                *res.status_mut() = StatusCode::BAD_REQUEST;
                return res;
            }
        },
    };
    let query = crate::tracking::Query {
        sender: opt(&q, "sender"),
        recipient: opt(&q, "recipient"),
        message_id: opt(&q, "message_id"),
        queue_id: opt(&q, "id"),
        since,
        limit: Some(1000),
    };
    page.push(Block::Form(form));
    let events = match crate::tracking::search(state.store.pool(), &query).await {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let mut t = Table::new(
        "tracking-results",
        &[
            "Time",
            "Event",
            "Queue ID",
            "Sender",
            "Recipients",
            "Source / next hop",
            "Remote",
            "Status",
        ],
        "No events match.",
    );
    for e in &events {
        let qid = e.queue_id.clone().unwrap_or_default();
        t.row(
            vec![
                cell(&e.time),
                cell(&e.event),
                link(
                    &qid,
                    format!("/toolbox/tracking?id={}&since=", urlencode(&qid)),
                ),
                cell(e.sender.clone().unwrap_or_default()),
                cell(e.recipients.clone().unwrap_or_default()),
                cell(
                    e.next_hop
                        .clone()
                        .or_else(|| e.source.clone())
                        .unwrap_or_default(),
                ),
                cell(
                    e.remote
                        .clone()
                        .or_else(|| e.client_ip.clone())
                        .unwrap_or_default(),
                ),
                cell(e.status.clone().unwrap_or_default()),
            ],
            vec![],
        );
    }
    page.push(Block::Table(t));
    page.render()
}

/// Largest part of a protocol log shown on one page.
const LOG_PAGE: u64 = 256 * 1024;

async fn protocol_logs(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let kind = if q.get("kind").is_some_and(|k| k == "send") {
        "send"
    } else {
        "receive"
    };
    let dir = state.data_dir.join("logs/protocol").join(kind);
    let mut page = Page::new(&state, Some(&s), "logs", "Protocol Logs").tabs(
        "/toolbox/protocol-logs",
        &[("receive", "Receive"), ("send", "Send")],
        kind,
    );
    page.p
        .tabs
        .iter_mut()
        .for_each(|t| t.href = t.href.replace("?tab=", "?kind="));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".log") && n.len() == 12)
                .collect()
        })
        .unwrap_or_default();
    files.sort_unstable_by(|a, b| b.cmp(a));
    let chosen = opt(&q, "file")
        .filter(|f| files.contains(f))
        .or_else(|| files.first().cloned());
    let needle = opt(&q, "q");
    let mut form = PageForm::get(
        "log-search",
        "/toolbox/protocol-logs",
        "Show",
        vec![
            Field::select(
                "file",
                "Day",
                chosen.as_deref().unwrap_or(""),
                &files
                    .iter()
                    .map(|f| (f.as_str(), f.as_str()))
                    .collect::<Vec<_>>(),
            ),
            Field::new(
                "q",
                "Containing",
                "text",
                needle.clone().unwrap_or_default(),
            )
            .help("Connector name, session id, address, command…"),
        ],
    );
    form.hidden.push(("kind".into(), kind.into()));
    page.push(Block::Form(form));
    let Some(file) = chosen else {
        page.push(Block::Text(format!("No {kind} protocol logs yet. Set a connector's protocol logging to verbose to write them.")));
        return page.render();
    };
    let path = dir.join(&file);
    let text = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(LOG_PAGE)))?;
        let mut buf = Vec::new();
        f.take(LOG_PAGE).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await;
    let text = match text {
        Ok(Ok(t)) => t,
        _ => return internal("cannot read the protocol log"),
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            needle
                .as_deref()
                .is_none_or(|n| l.to_lowercase().contains(&n.to_lowercase()))
        })
        .collect();
    page.push(Block::Text(format!(
        "{} line(s) (the last {} KB of the day at most).",
        lines.len(),
        LOG_PAGE / 1024
    )));
    page.push(Block::Pre(lines.join("\n")));
    page.render()
}

async fn dns_check(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "dns", "DNS check");
    let dir = match crate::directory::Directory::load(&state.store).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let domains: Vec<String> = dir
        .accepted_domains()
        .iter()
        .map(|d| d.name.trim_start_matches("*.").to_string())
        .collect();
    let chosen = opt(&q, "domain")
        .filter(|d| domains.contains(d))
        .or_else(|| domains.first().cloned());
    page.push(Block::Form(PageForm::get(
        "dns-check",
        "/toolbox/dns",
        "Check",
        vec![Field::select(
            "domain",
            "Accepted domain",
            chosen.as_deref().unwrap_or(""),
            &domains
                .iter()
                .map(|d| (d.as_str(), d.as_str()))
                .collect::<Vec<_>>(),
        )],
    )));
    let Some(domain) = chosen else {
        page.push(Block::Text("Add an accepted domain first.".into()));
        return page.render();
    };
    let host = state.hostname.clone();
    page.push(Block::Heading(format!("Records to publish for {domain}")));
    let mut t = Table::new("dns-publish", &["Name", "Type", "Value", "Why"], "");
    t.row(
        vec![
            cell(&domain),
            cell("MX"),
            cell(format!("10 {host}.")),
            cell("Mail for the domain comes to this server"),
        ],
        vec![],
    );
    t.row(
        vec![
            cell(&domain),
            cell("TXT"),
            cell("v=spf1 mx -all"),
            cell("SPF: only the MX hosts send for the domain"),
        ],
        vec![],
    );
    t.row(
        vec![
            cell(format!("_dmarc.{domain}")),
            cell("TXT"),
            cell(format!(
                "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
            )),
            cell("DMARC policy and reports"),
        ],
        vec![],
    );
    t.row(
        vec![
            cell(&host),
            cell("A/AAAA"),
            cell("this server's public address"),
            cell("So the MX name resolves"),
        ],
        vec![],
    );
    page.push(Block::Table(t));
    page.push(Block::Heading("What DNS answers now".into()));
    let mut now = Table::new("dns-now", &["Query", "Answer"], "");
    match crate::delivery::dns::MailResolver::new(&state.nameservers) {
        Ok(r) => {
            let mx = match r.mail_hosts(&domain).await {
                Ok(hosts) => hosts
                    .iter()
                    .map(|h| {
                        format!(
                            "{} {}{}",
                            h.preference,
                            h.name,
                            if h.implicit {
                                " (implicit: no MX record)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => e.to_string(),
            };
            now.row(vec![cell(format!("MX {domain}")), cell(mx)], vec![]);
            let addrs = match r.addresses(&host).await {
                Ok(a) => a
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => e.to_string(),
            };
            now.row(vec![cell(format!("A/AAAA {host}")), cell(addrs)], vec![]);
            for (name, what) in [
                (domain.clone(), "SPF"),
                (format!("_dmarc.{domain}"), "DMARC"),
            ] {
                let answer = match r.txt(&name).await {
                    Ok(txt) if txt.is_empty() => "no TXT record".to_string(),
                    Ok(txt) => txt.join(" | "),
                    Err(e) => e.to_string(),
                };
                now.row(
                    vec![cell(format!("TXT {name} ({what})")), cell(answer)],
                    vec![],
                );
            }
        }
        Err(e) => now.row(vec![cell("resolver"), cell(e.to_string())], vec![]),
    }
    page.push(Block::Table(now));
    page.render()
}

pub async fn audit_log(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
) -> Response {
    let entries = match crate::admin::audit::recent(state.store.pool(), 500).await {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let mut page = Page::new(&state, Some(&s), "audit", "Audit log");
    let mut t = Table::new(
        "audit",
        &["Time", "Who", "Action", "Object", "Detail"],
        "No changes recorded yet.",
    );
    for e in &entries {
        t.row(
            vec![
                cell(&e.at),
                cell(&e.actor),
                cell(&e.action),
                cell(&e.object),
                cell(e.detail.clone().unwrap_or_default()),
            ],
            vec![],
        );
    }
    page.push(Block::Table(t));
    page.render()
}
