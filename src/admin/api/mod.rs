//! The JSON API under `/api/v1` (PRODUCT §7): CRUD for every organization and
//! connector object, the Queue Viewer actions, message tracking, server
//! properties, the audit log and API tokens. Handlers call the same functions as
//! the CLI and the console (`directory/`, `receive::connector`,
//! `routing::connector`, `queue::actions`, `tracking`, `settings`,
//! `admin::tokens`); no validation lives here.
//!
//! Authentication: a request that already carries a [`Principal`] (the console's
//! session layer puts one there, and enforces CSRF for cookie sessions) passes;
//! otherwise `Authorization: Bearer <token>` must name a live API token, else
//! 401 with `WWW-Authenticate: Bearer`. `GET /api/v1/openapi.json` is served
//! without authentication: it describes the API's shape, which is public in the
//! source anyway, and holds no data.
//!
//! Errors are `{"error": "...", "field": "..."}` (`field` only for invalid
//! input) with 400, 401, 404, 405, 409, 413, 415 or 500. Bodies are limited to
//! [`MAX_BODY`] and must be `application/json`; unknown fields are refused so a
//! typo never passes silently. Every change is written to the audit log.

mod connectors;
mod directory;
mod queue;
mod server;

use std::sync::LazyLock;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use super::{AdminState, Principal, audit, tokens};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 1024 * 1024;

/// The `/api/v1` router (nest it under `/api/v1`).
pub fn router(state: AdminState) -> Router<AdminState> {
    let protected = Router::new()
        .merge(directory::routes())
        .merge(connectors::routes())
        .merge(queue::routes())
        .merge(server::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state,
            require_principal,
        ));
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(protected)
}

// ------------------------------------------------------------------ errors

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// The input field at fault, for invalid input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }
}

impl From<crate::directory::Error> for ApiError {
    fn from(e: crate::directory::Error) -> ApiError {
        use crate::directory::Error as E;
        match e {
            E::Invalid { field, message } => ApiError::invalid(field, message),
            E::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            E::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                field: self.field,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"bridgehead\""),
            );
        }
        res
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not support that method",
    )
}

// ------------------------------------------------------------------ extractors

/// A JSON body: `application/json`, at most [`MAX_BODY`], unknown fields
/// refused. `fields` are the top-level keys sent, for the audit log (names
/// only, never values).
pub struct ApiJson<T> {
    pub value: T,
    pub fields: Vec<String>,
}

impl<T> ApiJson<T> {
    /// "fields: a, b" for the audit log.
    pub fn detail(&self) -> Option<String> {
        (!self.fields.is_empty()).then(|| format!("fields: {}", self.fields.join(", ")))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the request body is larger than {} bytes", MAX_BODY),
                    )
                } else {
                    ApiError::new(e.status(), e.body_text())
                }
            })?;
        let value = serde_json::from_slice::<T>(&bytes).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
        })?;
        let fields = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Ok(ApiJson { value, fields })
    }
}

/// Path parameters, with a JSON 400 when they do not decode.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// Query parameters, with a JSON 400 when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

// ------------------------------------------------------------------ helpers

/// 201 Created with a `Location` header and the object.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Percent-encodes one path segment (names may hold spaces, `*`, brackets...).
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes one audit-log entry for a change that has been made. A failure here
/// is logged, not returned: the change itself has happened.
pub async fn record(
    st: &AdminState,
    who: &Principal,
    action: &str,
    object: &str,
    detail: Option<String>,
) {
    if let Err(e) = audit::record(
        st.store.pool(),
        &who.user,
        action,
        object,
        detail.as_deref(),
    )
    .await
    {
        tracing::error!(error = %e, action, object, "cannot write the audit log");
    }
}

// ------------------------------------------------------------------ auth

async fn require_principal(State(st): State<AdminState>, mut req: Request, next: Next) -> Response {
    if req.extensions().get::<Principal>().is_some() {
        return next.run(req).await;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = bearer else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: send an API token as `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    match tokens::authenticate(&st.store, &token).await {
        Ok(Some(name)) => {
            req.extensions_mut().insert(Principal {
                user: format!("token:{name}"),
            });
            next.run(req).await
        }
        Ok(None) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid or revoked API token").into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

// ------------------------------------------------------------------ OpenAPI

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`bh_...`) from `bridgehead api-token new NAME` or POST /api/v1/api-tokens",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bridgehead API",
        version = "1",
        description = "JSON API over the objects of the Bridgehead mail server. Authenticate with `Authorization: Bearer <token>`. Errors are `{\"error\": \"...\", \"field\": \"...\"}`."
    ),
    paths(
        openapi_json,
        directory::list_accepted_domains,
        directory::create_accepted_domain,
        directory::get_accepted_domain,
        directory::update_accepted_domain,
        directory::delete_accepted_domain,
        directory::list_mailboxes,
        directory::create_mailbox,
        directory::get_mailbox,
        directory::update_mailbox,
        directory::delete_mailbox,
        directory::list_groups,
        directory::create_group,
        directory::get_group,
        directory::update_group,
        directory::delete_group,
        directory::list_contacts,
        directory::create_contact,
        directory::get_contact,
        directory::update_contact,
        directory::delete_contact,
        directory::list_policies,
        directory::create_policy,
        directory::get_policy,
        directory::update_policy,
        directory::delete_policy,
        directory::apply_policy,
        directory::list_remote_domains,
        directory::create_remote_domain,
        directory::get_remote_domain,
        directory::update_remote_domain,
        directory::delete_remote_domain,
        connectors::list_receive,
        connectors::create_receive,
        connectors::get_receive,
        connectors::update_receive,
        connectors::delete_receive,
        connectors::list_send,
        connectors::create_send,
        connectors::get_send,
        connectors::update_send,
        connectors::delete_send,
        queue::list_queues,
        queue::queue_messages,
        queue::suspend_queue,
        queue::resume_queue,
        queue::retry_queue,
        queue::list_messages,
        queue::get_message,
        queue::suspend_message,
        queue::resume_message,
        queue::remove_message,
        queue::export_message,
        queue::track,
        server::get_settings,
        server::update_settings,
        server::get_audit,
        server::list_tokens,
        server::create_token,
        server::get_token,
        server::delete_token,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "organization", description = "Accepted domains, recipients, address policies, remote domains"),
        (name = "connectors", description = "Receive and send connectors"),
        (name = "queues", description = "Queue Viewer and message tracking"),
        (name = "server", description = "Server properties, audit log, API tokens"),
    )
)]
pub struct ApiDoc;

static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"))
});

/// The OpenAPI 3 document of this API (no authentication needed).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "server",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_the_paths() {
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/mailboxes/{address}"));
        assert!(paths.contains_key("/api/v1/send-connectors"));
        // The password is documented as write-only and never in a response type.
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["SendConnectorInput"]["properties"]["password"]["writeOnly"],
            true
        );
        assert!(schemas["SendConnector"]["properties"]["password"].is_null());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("alice@example.com"), "alice@example.com");
        assert_eq!(segment("*.example.com"), "%2A.example.com");
        assert_eq!(segment("To partner [a,b]"), "To%20partner%20%5Ba%2Cb%5D");
        assert_eq!(segment("a/b"), "a%2Fb");
    }
}
