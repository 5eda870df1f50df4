//! The admin audit log (PRODUCT §7): who changed what, when, through the console
//! or the API. Entries never hold secrets (passwords, tokens).

use serde::Serialize;
use sqlx::{FromRow, SqlitePool};

use crate::store::StoreError;

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: Option<String>,
}

/// Longest text kept per field; longer values are cut (they come from users).
const MAX_FIELD: usize = 500;

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Records one change. `action` is `object-kind.verb`, e.g. `mailbox.new`.
pub async fn record(
    pool: &SqlitePool,
    actor: &str,
    action: &str,
    object: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (actor, action, object, detail) VALUES (?, ?, ?, ?)")
        .bind(cut(actor))
        .bind(cut(action))
        .bind(cut(object))
        .bind(detail.map(cut))
        .execute(pool)
        .await?;
    Ok(())
}

/// The newest entries first.
pub async fn recent(pool: &SqlitePool, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(sqlx::query_as::<_, AuditEntry>(
        "SELECT id, at, actor, action, object, detail FROM audit_log ORDER BY id DESC LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?)
}
