//! The admin HTTP surface on `[admin].listen`: for now `/healthz`; the console,
//! `/api/v1` and `/metrics` build on this router.

use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::get};
use serde_json::json;
use tokio::sync::watch;

use crate::directory::Directory;

#[derive(Clone)]
pub struct AdminState {
    pub directory: watch::Receiver<Arc<Directory>>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// 200 when the server is up. `directory_version` is the organization change
/// counter the server is running with, so a script can wait for a change to apply.
async fn healthz(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let version = state.directory.borrow().version();
    Json(json!({ "status": "ok", "directory_version": version }))
}
