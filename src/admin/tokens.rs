//! API tokens (PRODUCT §7): bearer tokens for automation, made in the console,
//! through the API itself or with `bridgehead api-token new`. A token is
//! `bh_` + 32 random bytes (base64url); only its SHA-256 (hex) is stored, so it
//! is shown once, when it is made. Lookups go by the hash, so no constant-time
//! comparison is needed.

use base64::Engine as _;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use crate::directory::{Error, Result, invalid};
use crate::store::Store;

/// Prefix of every token, so a leaked one is recognisable (secret scanners).
pub const PREFIX: &str = "bh_";

/// A token as listed: never the token itself, nor its hash.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct ApiToken {
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A token just made: the only time `token` is ever available.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: ApiToken,
    /// The bearer token. Shown once; store it now.
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .field("token", &"****")
            .finish()
    }
}

/// Hex SHA-256 of a token, as stored in `api_tokens.token_sha256`.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Token names: 1-64 letters, digits, `.`, `_` or `-` (they appear in the audit
/// log as `token:NAME`).
pub fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "name",
            "a token name is 1 to 64 letters, digits, dots, underscores or hyphens",
        ));
    }
    Ok(n.to_string())
}

/// Makes a token named `name` for `created_by`; returns it with the secret.
pub async fn create(store: &Store, name: &str, created_by: &str) -> Result<NewToken> {
    let name = check_name(name)?;
    let token = generate();
    sqlx::query("INSERT INTO api_tokens (name, token_sha256, created_by) VALUES (?, ?, ?)")
        .bind(&name)
        .bind(hash(&token))
        .bind(created_by)
        .execute(store.pool())
        .await
        .map_err(|e| {
            crate::directory::conflict_on_unique(e.into(), || {
                format!("an API token named {name} already exists")
            })
        })?;
    let info = find(store, &name).await?;
    Ok(NewToken { info, token })
}

pub async fn list(store: &Store) -> Result<Vec<ApiToken>> {
    Ok(sqlx::query_as::<_, ApiToken>(
        "SELECT name, created_by, created_at, last_used_at FROM api_tokens ORDER BY name",
    )
    .fetch_all(store.pool())
    .await?)
}

pub async fn find(store: &Store, name: &str) -> Result<ApiToken> {
    sqlx::query_as::<_, ApiToken>(
        "SELECT name, created_by, created_at, last_used_at FROM api_tokens WHERE name = ?",
    )
    .bind(name.trim())
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| Error::NotFound(format!("no API token named {}", name.trim())))
}

/// Revokes a token; it stops working at once.
pub async fn remove(store: &Store, name: &str) -> Result<ApiToken> {
    let t = find(store, name).await?;
    sqlx::query("DELETE FROM api_tokens WHERE name = ?")
        .bind(&t.name)
        .execute(store.pool())
        .await?;
    Ok(t)
}

/// The name of the token, if `token` is a valid one; records its use
/// (`last_used_at`, at most once a minute so that reads stay reads).
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<String>> {
    if !token.starts_with(PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let digest = hash(token);
    let row: Option<(String,)> =
        sqlx::query_as("SELECT name FROM api_tokens WHERE token_sha256 = ?")
            .bind(&digest)
            .fetch_optional(store.pool())
            .await?;
    let Some((name,)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
         WHERE token_sha256 = ? \
           AND (last_used_at IS NULL OR last_used_at < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-60 seconds'))",
    )
    .bind(&digest)
    .execute(store.pool())
    .await?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with("bh_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash("abc").len(), 64);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names() {
        assert_eq!(check_name(" ci-deploy.1 ").unwrap(), "ci-deploy.1");
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("<script>").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
