//! Queue Viewer actions and message tracking.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiPath, ApiQuery, ApiResult, ErrorBody, record};
use crate::admin::{AdminState, Principal};
use crate::queue::actions::{self, MessageDetails, QueueInfo, QueuedMessage};
use crate::tracking::{self, EventRow};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/queues", get(list_queues))
        .route("/queues/{queue}/messages", get(queue_messages))
        .route("/queues/{queue}/suspend", post(suspend_queue))
        .route("/queues/{queue}/resume", post(resume_queue))
        .route("/queues/{queue}/retry", post(retry_queue))
        .route("/messages", get(list_messages))
        .route("/messages/{id}", get(get_message).delete(remove_message))
        .route("/messages/{id}/suspend", post(suspend_message))
        .route("/messages/{id}/resume", post(resume_message))
        .route("/messages/{id}/export", get(export_message))
        .route("/tracking", get(track))
}

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = Vec<QueueInfo>)))]
pub async fn list_queues(State(st): State<AdminState>) -> ApiResult<Json<Vec<QueueInfo>>> {
    Ok(Json(actions::list_queues(&st.store).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    /// ready, retry or suspended.
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/queues/{queue}/messages", tag = "queues",
    params(("queue" = String, Path, description = "submission, mailbox, unreachable, poison, or a remote hop"), StatusFilter),
    responses((status = 200, body = Vec<QueuedMessage>)))]
pub async fn queue_messages(
    State(st): State<AdminState>,
    ApiPath(queue): ApiPath<String>,
    ApiQuery(f): ApiQuery<StatusFilter>,
) -> ApiResult<Json<Vec<QueuedMessage>>> {
    Ok(Json(
        actions::list_messages(&st.store, Some(&queue), f.status.as_deref()).await?,
    ))
}

/// The outcome of a queue action.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueAction {
    /// The queue key.
    pub queue: String,
    pub display_name: String,
    /// For retry: how many waiting messages became due now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried: Option<u64>,
}

fn queue_action(key: String, retried: Option<u64>) -> Json<QueueAction> {
    Json(QueueAction {
        display_name: actions::display_name(&key),
        queue: key,
        retried,
    })
}

#[utoipa::path(post, path = "/api/v1/queues/{queue}/suspend", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = QueueAction), (status = 400, body = ErrorBody)))]
pub async fn suspend_queue(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<Json<QueueAction>> {
    let key = actions::suspend_queue(&st.store, &queue).await?;
    record(&st, &who, "queue.suspend", &key, None).await;
    Ok(queue_action(key, None))
}

#[utoipa::path(post, path = "/api/v1/queues/{queue}/resume", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = QueueAction), (status = 400, body = ErrorBody)))]
pub async fn resume_queue(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<Json<QueueAction>> {
    let key = actions::resume_queue(&st.store, &queue).await?;
    record(&st, &who, "queue.resume", &key, None).await;
    Ok(queue_action(key, None))
}

/// "Retry now": every waiting message of the queue becomes due at once.
#[utoipa::path(post, path = "/api/v1/queues/{queue}/retry", tag = "queues",
    params(("queue" = String, Path)),
    responses((status = 200, body = QueueAction), (status = 400, body = ErrorBody)))]
pub async fn retry_queue(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<Json<QueueAction>> {
    let n = actions::retry_queue(&st.store, &queue).await?;
    let key = actions::queue_key(&queue);
    record(
        &st,
        &who,
        "queue.retry",
        &key,
        Some(format!("{n} message(s) due now")),
    )
    .await;
    Ok(queue_action(key, Some(n)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// ready, retry or suspended.
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/messages", tag = "queues",
    params(MessageFilter),
    responses((status = 200, body = Vec<QueuedMessage>)))]
pub async fn list_messages(
    State(st): State<AdminState>,
    ApiQuery(f): ApiQuery<MessageFilter>,
) -> ApiResult<Json<Vec<QueuedMessage>>> {
    Ok(Json(
        actions::list_messages(&st.store, f.queue.as_deref(), f.status.as_deref()).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "queues",
    params(("id" = String, Path, description = "Queue id (16 hex digits)")),
    responses((status = 200, body = MessageDetails), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_message(
    State(st): State<AdminState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageDetails>> {
    Ok(Json(actions::message_details(&st.store, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/messages/{id}/suspend", tag = "queues",
    params(("id" = String, Path)),
    responses((status = 200, body = MessageDetails), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn suspend_message(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageDetails>> {
    actions::suspend_message(&st.store, &id).await?;
    let m = actions::message_details(&st.store, &id).await?;
    record(&st, &who, "message.suspend", &m.id, None).await;
    Ok(Json(m))
}

/// Resumes a suspended message, or gives a poisoned one another try.
#[utoipa::path(post, path = "/api/v1/messages/{id}/resume", tag = "queues",
    params(("id" = String, Path)),
    responses((status = 200, body = MessageDetails), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resume_message(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<MessageDetails>> {
    actions::resume_message(&st.store, &id).await?;
    let m = actions::message_details(&st.store, &id).await?;
    record(&st, &who, "message.resume", &m.id, None).await;
    Ok(Json(m))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveOptions {
    /// Send the sender a non-delivery report (default: remove silently).
    pub ndr: bool,
}

/// The outcome of removing a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    pub id: String,
    pub ndr: bool,
    /// Recipients that were still waiting (now failed).
    pub recipients: usize,
}

#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "queues",
    params(("id" = String, Path), RemoveOptions),
    responses((status = 200, body = Removed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_message(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(o): ApiQuery<RemoveOptions>,
) -> ApiResult<Json<Removed>> {
    let n = actions::remove_message(&st.store, &id, o.ndr).await?;
    let id = id.trim().to_ascii_lowercase();
    record(
        &st,
        &who,
        "message.remove",
        &id,
        Some(if o.ndr { "with NDR" } else { "without NDR" }.into()),
    )
    .await;
    Ok(Json(Removed {
        id,
        ndr: o.ndr,
        recipients: n,
    }))
}

/// The stored message as `message/rfc822` (our Received header included).
/// Reading mail is recorded in the audit log as `message.export`.
#[utoipa::path(get, path = "/api/v1/messages/{id}/export", tag = "queues",
    params(("id" = String, Path)),
    responses((status = 200, description = "The message", content_type = "message/rfc822", body = String), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_message(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let spool = crate::queue::spool::Spool::open(&st.data_dir)?;
    let path = actions::export_path(&spool, &id)?;
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        // Delivered and cleaned up between the check and the read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no message {} in the queue", id.trim()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let id = id.trim().to_ascii_lowercase();
    record(&st, &who, "message.export", &id, None).await;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    // The id was validated as 16 hex digits by export_path.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.eml\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrackQuery {
    pub sender: Option<String>,
    /// Matches any recipient of the event.
    pub recipient: Option<String>,
    /// With or without angle brackets.
    pub message_id: Option<String>,
    /// The queue id.
    pub queue_id: Option<String>,
    /// A duration back from now (`30m`, `1h`, `7d`) or an RFC 3339 time.
    pub since: Option<String>,
    /// At most this many events (default 1000, at most 10000).
    pub limit: Option<u32>,
}

/// Message-tracking events matching every filter given, oldest first.
#[utoipa::path(get, path = "/api/v1/tracking", tag = "queues",
    params(TrackQuery),
    responses((status = 200, body = Vec<EventRow>), (status = 400, body = ErrorBody)))]
pub async fn track(
    State(st): State<AdminState>,
    ApiQuery(q): ApiQuery<TrackQuery>,
) -> ApiResult<Json<Vec<EventRow>>> {
    let since = match q.since.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(parse_since(s)?),
    };
    let query = tracking::Query {
        sender: q.sender,
        recipient: q.recipient,
        message_id: q.message_id,
        queue_id: q.queue_id,
        since,
        limit: q.limit,
    };
    Ok(Json(tracking::search(st.store.pool(), &query).await?))
}

fn parse_since(s: &str) -> ApiResult<String> {
    let at = if let Some(d) = crate::settings::parse_duration(s) {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
    } else {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .ok_or_else(|| {
            ApiError::invalid(
                "since",
                format!("`{s}` is neither a duration such as 30m, 1h or 7d nor an RFC 3339 time"),
            )
        })
}
