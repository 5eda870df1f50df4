//! Server properties, the audit log and API tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody, created, record, segment};
use crate::admin::audit::{self, AuditEntry};
use crate::admin::tokens::{self, ApiToken, NewToken};
use crate::admin::{AdminState, Principal};
use crate::settings::{self, ServerSettings, SettingsInput};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/settings", get(get_settings).patch(update_settings))
        .route("/audit", get(get_audit))
        .route("/api-tokens", get(list_tokens).post(create_token))
        .route("/api-tokens/{name}", get(get_token).delete(delete_token))
}

#[utoipa::path(get, path = "/api/v1/settings", tag = "server",
    responses((status = 200, body = ServerSettings, description = "Durations in seconds")))]
pub async fn get_settings(State(st): State<AdminState>) -> ApiResult<Json<ServerSettings>> {
    Ok(Json(settings::load(&st.store).await?))
}

#[utoipa::path(patch, path = "/api/v1/settings", tag = "server",
    request_body(content = SettingsInput, description = "Durations as `30s`, `15m`, `1h`, `5d` or seconds; `ndr_copy_to: \"none\"` stops the copies"),
    responses((status = 200, body = ServerSettings), (status = 400, body = ErrorBody)))]
pub async fn update_settings(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<SettingsInput>,
) -> ApiResult<Json<ServerSettings>> {
    let detail = body.detail();
    let s = settings::update(&st.store, body.value).await?;
    record(&st, &who, "server.set", "settings", detail).await;
    Ok(Json(s))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At most this many entries, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "server",
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>, description = "Newest first")))]
pub async fn get_audit(
    State(st): State<AdminState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(audit::recent(st.store.pool(), limit).await?))
}

#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "server",
    responses((status = 200, body = Vec<ApiToken>, description = "Never the tokens themselves")))]
pub async fn list_tokens(State(st): State<AdminState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(tokens::list(&st.store).await?))
}

/// A new API token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewTokenRequest {
    /// 1-64 letters, digits, dots, underscores or hyphens.
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "server",
    request_body = NewTokenRequest,
    responses((status = 201, body = NewToken, description = "The token is in this response only"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_token(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<NewTokenRequest>,
) -> ApiResult<Response> {
    let t = tokens::create(&st.store, &body.value.name, &who.user).await?;
    record(&st, &who, "api-token.new", &t.info.name, None).await;
    Ok(created(
        format!("/api/v1/api-tokens/{}", segment(&t.info.name)),
        t,
    ))
}

#[utoipa::path(get, path = "/api/v1/api-tokens/{name}", tag = "server",
    params(("name" = String, Path)),
    responses((status = 200, body = ApiToken), (status = 404, body = ErrorBody)))]
pub async fn get_token(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ApiToken>> {
    Ok(Json(tokens::find(&st.store, &name).await?))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{name}", tag = "server",
    params(("name" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)))]
pub async fn delete_token(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let t = tokens::remove(&st.store, &name).await?;
    record(&st, &who, "api-token.remove", &t.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}
