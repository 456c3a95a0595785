//! The embedded SQLite database shared by the queue and the store: one connection per file,
//! WAL mode, every statement run off the async executor.
//!
//! Durability: with `synchronous = NORMAL` in WAL mode a committed write survives a crash or
//! `kill -9` of the process; only a power loss can take the last commits.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A SQLite file opened for one component of molten. The connection lives on its own thread
/// and runs statements in arrival order: callers never contend on a lock (an unfair lock let
/// some webhook acknowledgements wait for a second under load), and the async executor never
/// blocks on SQLite.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
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
        let mut conn =
            Connection::open(path).map_err(|e| DbError(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(schema)?;
        // Checkpoints run on the statement thread and stall every caller while they copy and
        // fsync; small frequent ones (1 MiB of WAL) keep the stall short. Measured with
        // scripts/bench-webhook: p99 acknowledgement 8.6 ms at 256 pages, 14-18 ms at
        // SQLite's default 1000, 100+ ms at 4000.
        conn.pragma_update(None, "wal_autocheckpoint", 256)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("molten-db".into())
            .spawn(move || {
                // Ends when the last handle is dropped.
                while let Ok(job) = queue.recv() {
                    // A panicking job must not take the connection down with it; its caller
                    // sees the dropped reply channel as an error.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| DbError(format!("cannot start the database thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the connection and waits for it, blocking the calling thread (for code off
    /// the executor, and for tests).
    pub fn blocking<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        // A std channel: tokio's would refuse to block inside a runtime (as tests do).
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv().map_err(|_| E::from(stopped()))?
    }

    /// Runs `f` on the connection without blocking the executor.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await.map_err(|_| E::from(stopped()))?
    }

    /// Queues `f` for the database thread, which hands its result to `deliver`.
    fn submit<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
        deliver: impl FnOnce(R) + Send + 'static,
    ) -> Result<(), DbError> {
        self.jobs
            .send(Box::new(move |conn| deliver(f(conn))))
            .map_err(|_| stopped())
    }
}

fn stopped() -> DbError {
    DbError("the database thread stopped (a statement panicked); restart molten".into())
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
