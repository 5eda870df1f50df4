//! The SQLite store: the pool, migrations, and one file per table family.
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a committed
//! transaction survives power loss. The CLI and the server open the same file;
//! `org_version` (bumped by triggers) tells a running server that the CLI changed
//! something.

pub mod connectors;
pub mod console_users;
pub mod organization;
pub mod queue;
pub mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Write(#[from] rusqlite::Error),
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("queue transaction failed: {0}")]
    Batch(String),
}

impl StoreError {
    /// SQLite could not write for want of space (`SQLITE_FULL`): the client
    /// hears `452 4.3.1`, as for a full spool.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Write(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Sql(sqlx::Error::Database(e)) => e.code().as_deref() == Some("13"),
            _ => false,
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|source| StoreError::Open {
                path: name.clone(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals and sorts stay in memory, not in /var/tmp files.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: name.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { path: name, source })?;
        Ok(Store {
            pool,
            path: path.to_path_buf(),
        })
    }

    /// The database file (the queue's [`writer::Writer`] opens its own connection).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The organization's change counter; any write to an organization table bumps it.
    pub async fn org_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM org_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// True when `e` is a UNIQUE or PRIMARY KEY constraint violation.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
