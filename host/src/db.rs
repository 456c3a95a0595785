//! The embedded SQLite database shared by the queue and the store: one connection per file,
//! WAL mode, every statement run off the async executor.
//!
//! Durability: with `synchronous = NORMAL` in WAL mode a committed write survives a crash or
//! `kill -9` of the process; only a power loss can take the last commits.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

/// A SQLite file opened for one component of molten.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

/// A database operation that failed, with the file or statement that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

impl Db {
    /// Opens (creating it and its directory if needed) the file at `path` and applies `schema`.
    pub fn open(path: &Path, schema: &str) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DbError(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|e| DbError(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(schema)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, blocking the calling thread (for code already off the
    /// executor, and for tests).
    pub fn blocking<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn.lock().map_err(|_| {
            DbError("the database lock was poisoned by a panic; restart molten".into())
        })?;
        f(&mut conn)
    }

    /// Runs `f` on the connection on tokio's blocking pool.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.blocking(f))
            .await
            .map_err(|e| E::from(DbError(format!("database task failed: {e}"))))?
    }
}

/// Milliseconds since the Unix epoch, the time unit of every table.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A duration in milliseconds, saturating far in the future.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}
