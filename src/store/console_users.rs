//! Console (web admin) users. Passwords are argon2id hashes; see `password.rs`.

use sqlx::{Row, SqlitePool};

use super::StoreError;

#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
}

pub async fn count(pool: &SqlitePool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM console_users")
        .fetch_one(pool)
        .await?)
}

pub async fn find(pool: &SqlitePool, username: &str) -> Result<Option<ConsoleUser>, StoreError> {
    let row =
        sqlx::query("SELECT id, username, password_hash FROM console_users WHERE username = ?")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|r| ConsoleUser {
        id: r.get("id"),
        username: r.get("username"),
        password_hash: r.get("password_hash"),
    }))
}

/// Inserts a user unless one of that name exists; returns whether it was inserted.
pub async fn insert_if_absent(
    pool: &SqlitePool,
    username: &str,
    password_hash: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("INSERT OR IGNORE INTO console_users (username, password_hash) VALUES (?, ?)")
            .bind(username)
            .bind(password_hash)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_password(
    pool: &SqlitePool,
    username: &str,
    password_hash: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE console_users SET password_hash = ? WHERE username = ?")
        .bind(password_hash)
        .bind(username)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT username FROM console_users ORDER BY username")
            .fetch_all(pool)
            .await?,
    )
}

pub async fn delete(pool: &SqlitePool, username: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM console_users WHERE username = ?")
        .bind(username)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
