//! The admin HTTP surface on `[admin].listen` (PRODUCT §7): the web console,
//! the JSON API under `/api/v1`, `/metrics` and `/healthz`.
//!
//! Every page and API route needs a [`Principal`]: a console session (cookie,
//! plus a CSRF token on every state-changing request) or an API token. Only
//! `/healthz`, `/metrics`, the login page and the static assets are open.

pub mod api;
pub mod audit;
pub mod console;
pub mod session;
pub mod tokens;

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::{Json, Router, extract::State, routing::get};
use serde_json::json;
use tokio::sync::watch;

use crate::directory::Directory;
use crate::settings::ServerSettings;
use crate::store::Store;

/// Who is making a request; put into the request extensions by the session or
/// API-token layer, read by every handler that changes something (for the audit
/// log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The console user, or `token:NAME` for an API token.
    pub user: String,
}

#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub directory: watch::Receiver<Arc<Directory>>,
    pub settings: watch::Receiver<Arc<ServerSettings>>,
    pub hostname: String,
    pub data_dir: std::path::PathBuf,
    /// The console is served over TLS (adds `Secure` to the session cookie).
    pub tls: bool,
    /// The SMTP certificate is the generated self-signed one (a dashboard warning).
    pub self_signed: bool,
    /// `[dns].nameservers`, for the DNS check page.
    pub nameservers: Vec<std::net::SocketAddr>,
    pub sessions: Arc<session::Sessions>,
    /// The performance counters served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `[admin].hosts`: more names accepted in the `Host` header.
    pub hosts: Arc<Vec<String>>,
}

pub fn router(state: AdminState) -> Router {
    let pages = console::page_routes().route_layer(axum::middleware::from_fn(session::require));
    Router::new()
        .merge(pages)
        .merge(console::login_routes())
        .merge(console::static_routes())
        // The API sits inside the session layer: a console session (with its
        // CSRF header on changes) is a Principal there too; else a bearer token.
        .nest("/api/v1", api::router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::layer,
        ))
        .route("/healthz", get(healthz))
        .layer(axum::extract::DefaultBodyLimit::max(session::MAX_FORM))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .with_state(state)
}

/// Refuses requests whose `Host` header names neither an IP address,
/// `localhost`, the server's hostname nor one of `[admin].hosts` (421, RFC 9110
/// §15.5.20). A DNS-rebinding page in an admin's browser reaches the console
/// only under the attacker's own name, so it gets no login form and no metrics.
async fn check_host(
    State(state): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if host_allowed(host, &state.hostname, &state.hosts) {
        return next.run(req).await;
    }
    tracing::warn!(host = %host, "admin request for an unknown host name refused");
    axum::response::IntoResponse::into_response((
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        "unknown host name; add it to [admin].hosts\n",
    ))
}

/// See [`check_host`]. `host` may carry a port; IPv6 literals are bracketed.
fn host_allowed(host: &str, hostname: &str, extra: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name == hostname.to_ascii_lowercase()
        || extra.iter().any(|h| h.eq_ignore_ascii_case(&name))
}

/// Headers on every response: no framing, no sniffing, no referrer, a strict
/// content security policy (our own scripts and styles only), and no caching of
/// admin pages.
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}

/// 200 when the server is up. `directory_version` is the organization change
/// counter the server is running with, so a script can wait for a change to apply.
async fn healthz(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let version = state.directory.borrow().version();
    Json(json!({ "status": "ok", "directory_version": version }))
}

/// The Prometheus text exposition (version 0.0.4): the counters, plus the queue
/// lengths read now. Open like `/healthz` (the admin listener binds 127.0.0.1 by
/// default); if the queue cannot be read, the counters are still served.
async fn metrics(State(state): State<AdminState>) -> impl axum::response::IntoResponse {
    let queues = match crate::queue::actions::list_queues(&state.store).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the queues for /metrics");
            Vec::new()
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(&queues),
    )
}

#[cfg(test)]
mod host_tests {
    use super::host_allowed;

    #[test]
    fn host_header_names_the_console_or_an_address() {
        let extra = vec!["mail.example.com".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "bh.example.com:8080",
            "bh.example.com.",
            "mail.example.com",
            "192.0.2.7:443",
        ] {
            assert!(host_allowed(ok, "bh.example.com", &extra), "{ok}");
        }
        for bad in [
            "",
            "attacker.test",
            "attacker.test:8080",
            "127.0.0.1.attacker.test",
            "[::1",
            "[not-an-ip]:80",
            "localhost.attacker.test",
        ] {
            assert!(!host_allowed(bad, "bh.example.com", &extra), "{bad}");
        }
    }
}
