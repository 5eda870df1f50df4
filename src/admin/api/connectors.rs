//! Receive and send connectors. A send connector's password is write-only: it
//! is accepted in `SendConnectorInput` and never serialized back.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, ApiResult, ErrorBody, created, record, segment};
use crate::admin::{AdminState, Principal};
use crate::receive::connector::{self as receive, ConnectorInput, ReceiveConnector};
use crate::routing::connector::{self as send, SendConnector, SendConnectorInput};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/receive-connectors",
            get(list_receive).post(create_receive),
        )
        .route(
            "/receive-connectors/{name}",
            get(get_receive)
                .patch(update_receive)
                .delete(delete_receive),
        )
        .route("/send-connectors", get(list_send).post(create_send))
        .route(
            "/send-connectors/{name}",
            get(get_send).patch(update_send).delete(delete_send),
        )
}

// ------------------------------------------------------------ receive

#[utoipa::path(get, path = "/api/v1/receive-connectors", tag = "connectors",
    responses((status = 200, body = Vec<ReceiveConnector>)))]
pub async fn list_receive(State(st): State<AdminState>) -> ApiResult<Json<Vec<ReceiveConnector>>> {
    Ok(Json(receive::list(&st.store).await?))
}

#[utoipa::path(post, path = "/api/v1/receive-connectors", tag = "connectors",
    request_body(content = ConnectorInput, description = "`name` and `bindings` are required; `usage` pre-fills the rest"),
    responses((status = 201, body = ReceiveConnector), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_receive(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<ConnectorInput>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let c = receive::create(&st.store, body.value).await?;
    record(&st, &who, "receive-connector.new", &c.name, detail).await;
    Ok(created(
        format!("/api/v1/receive-connectors/{}", segment(&c.name)),
        c,
    ))
}

#[utoipa::path(get, path = "/api/v1/receive-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 200, body = ReceiveConnector), (status = 404, body = ErrorBody)))]
pub async fn get_receive(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ReceiveConnector>> {
    let all = receive::list(&st.store).await?;
    Ok(Json(receive::find(&all, &name)?.clone()))
}

#[utoipa::path(patch, path = "/api/v1/receive-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    request_body(content = ConnectorInput, description = "Lists given replace the stored ones; `enabled` enables or disables"),
    responses((status = 200, body = ReceiveConnector), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_receive(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<ConnectorInput>,
) -> ApiResult<Json<ReceiveConnector>> {
    let detail = body.detail();
    let c = receive::update(&st.store, &name, body.value).await?;
    record(&st, &who, "receive-connector.set", &c.name, detail).await;
    Ok(Json(c))
}

#[utoipa::path(delete, path = "/api/v1/receive-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_receive(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let c = receive::remove(&st.store, &name).await?;
    record(&st, &who, "receive-connector.remove", &c.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ send

/// A send connector as the API shows it: never the password, but whether one
/// is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendConnectorView {
    #[serde(flatten)]
    pub connector: SendConnector,
    pub password_set: bool,
}

impl From<SendConnector> for SendConnectorView {
    fn from(c: SendConnector) -> SendConnectorView {
        SendConnectorView {
            password_set: c.password.is_some(),
            connector: c,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/send-connectors", tag = "connectors",
    responses((status = 200, body = Vec<SendConnectorView>)))]
pub async fn list_send(State(st): State<AdminState>) -> ApiResult<Json<Vec<SendConnectorView>>> {
    Ok(Json(
        send::list(&st.store)
            .await?
            .into_iter()
            .map(SendConnectorView::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/send-connectors", tag = "connectors",
    request_body(content = SendConnectorInput, description = "`name` is required; `usage` pre-fills the rest"),
    responses((status = 201, body = SendConnectorView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_send(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<SendConnectorInput>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let c = send::create(&st.store, body.value).await?;
    record(&st, &who, "send-connector.new", &c.name, detail).await;
    Ok(created(
        format!("/api/v1/send-connectors/{}", segment(&c.name)),
        SendConnectorView::from(c),
    ))
}

#[utoipa::path(get, path = "/api/v1/send-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 200, body = SendConnectorView), (status = 404, body = ErrorBody)))]
pub async fn get_send(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SendConnectorView>> {
    let all = send::list(&st.store).await?;
    Ok(Json(send::find(&all, &name)?.clone().into()))
}

#[utoipa::path(patch, path = "/api/v1/send-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    request_body(content = SendConnectorInput, description = "Lists given replace the stored ones; `enabled` enables or disables"),
    responses((status = 200, body = SendConnectorView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_send(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<SendConnectorInput>,
) -> ApiResult<Json<SendConnectorView>> {
    let detail = body.detail();
    let c = send::update(&st.store, &name, body.value).await?;
    record(&st, &who, "send-connector.set", &c.name, detail).await;
    Ok(Json(c.into()))
}

#[utoipa::path(delete, path = "/api/v1/send-connectors/{name}", tag = "connectors",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_send(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let c = send::remove(&st.store, &name).await?;
    record(&st, &who, "send-connector.remove", &c.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}
