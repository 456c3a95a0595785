//! The embedded queue: a SQLite table in WAL mode (see [`crate::db`] for durability).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::db::{millis, now_ms, Db, DbError};

use super::{Leased, Poisoned, QueueError, Receipt, WorkQueue};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS queue (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        body          TEXT    NOT NULL,
        enqueued_ms   INTEGER NOT NULL,
        visible_ms    INTEGER NOT NULL,
        dequeue_count INTEGER NOT NULL DEFAULT 0,
        pop_receipt   TEXT
    );
    CREATE INDEX IF NOT EXISTS queue_visible ON queue (visible_ms, id);
    CREATE TABLE IF NOT EXISTS accepted (
        key           TEXT    PRIMARY KEY,
        at_ms         INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS poison (
        id            INTEGER PRIMARY KEY,
        body          TEXT    NOT NULL,
        enqueued_ms   INTEGER NOT NULL,
        dequeue_count INTEGER NOT NULL,
        reason        TEXT    NOT NULL,
        poisoned_ms   INTEGER NOT NULL
    );
";

/// A [`WorkQueue`] in one SQLite file, shared by every task of the process.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Db,
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        Ok(Self {
            db: Db::open(path, SCHEMA)?,
        })
    }
}

#[async_trait::async_trait]
impl WorkQueue for SqliteQueue {
    async fn enqueue(&self, body: &str) -> Result<String, QueueError> {
        let body = body.to_owned();
        self.db
            .call(move |conn| {
                let now = now_ms();
                conn.execute(
                    "INSERT INTO queue (body, enqueued_ms, visible_ms) VALUES (?1, ?2, ?2)",
                    params![body, now],
                )
                .map_err(sql)?;
                Ok(conn.last_insert_rowid().to_string())
            })
            .await
    }

    async fn enqueue_once(&self, key: &str, body: &str) -> Result<Option<String>, QueueError> {
        let (key, body) = (key.to_owned(), body.to_owned());
        self.db
            .call(move |conn| {
                // One transaction: the key is recorded if and only if the message is queued.
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let now = now_ms();
                let new = tx
                    .execute(
                        "INSERT INTO accepted (key, at_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                        params![key, now],
                    )
                    .map_err(sql)?;
                if new == 0 {
                    return Ok(None);
                }
                tx.execute(
                    "INSERT INTO queue (body, enqueued_ms, visible_ms) VALUES (?1, ?2, ?2)",
                    params![body, now],
                )
                .map_err(sql)?;
                let id = tx.last_insert_rowid().to_string();
                // A crash here rolls back key and message together: the resend gets through.
                crate::crash::point("enqueue_once.sent");
                tx.commit().map_err(sql)?;
                Ok(Some(id))
            })
            .await
    }

    async fn forget_accepted(&self, age: Duration) -> Result<(), QueueError> {
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM accepted WHERE at_ms < ?1",
                    [now_ms() - millis(age)],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }

    async fn lease(&self, visibility: Duration) -> Result<Option<Leased>, QueueError> {
        self.db
            .call(move |conn| {
                let now = now_ms();
                let receipt = new_pop_receipt();
                conn.query_row(
                    "UPDATE queue
                    SET visible_ms = ?1, dequeue_count = dequeue_count + 1, pop_receipt = ?2
                  WHERE id = (SELECT id FROM queue WHERE visible_ms <= ?3
                              ORDER BY visible_ms, id LIMIT 1)
              RETURNING id, body, dequeue_count",
                    params![now + millis(visibility), receipt, now],
                    |r| {
                        Ok(Leased {
                            receipt: Receipt {
                                id: r.get::<_, i64>(0)?.to_string(),
                                pop_receipt: receipt.clone(),
                            },
                            body: r.get(1)?,
                            dequeue_count: r.get(2)?,
                        })
                    },
                )
                .optional()
                .map_err(sql)
            })
            .await
    }

    async fn renew(&self, receipt: &Receipt, visibility: Duration) -> Result<Receipt, QueueError> {
        let old = receipt.clone();
        self.db
            .call(move |conn| {
                let fresh = new_pop_receipt();
                let changed = conn
                    .execute(
                        "UPDATE queue SET visible_ms = ?1, pop_receipt = ?2
                      WHERE id = ?3 AND pop_receipt = ?4",
                        params![
                            now_ms() + millis(visibility),
                            fresh,
                            old.id,
                            old.pop_receipt
                        ],
                    )
                    .map_err(sql)?;
                held(changed, &old)?;
                Ok(Receipt {
                    id: old.id,
                    pop_receipt: fresh,
                })
            })
            .await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        let receipt = receipt.clone();
        self.db
            .call(move |conn| {
                let changed = conn
                    .execute(
                        "DELETE FROM queue WHERE id = ?1 AND pop_receipt = ?2",
                        params![receipt.id, receipt.pop_receipt],
                    )
                    .map_err(sql)?;
                held(changed, &receipt)
            })
            .await
    }

    async fn poison(&self, leased: &Leased, reason: &str) -> Result<(), QueueError> {
        let (receipt, reason) = (leased.receipt.clone(), reason.to_owned());
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let moved = tx
                .execute(
                    "INSERT INTO poison (id, body, enqueued_ms, dequeue_count, reason, poisoned_ms)
                     SELECT id, body, enqueued_ms, dequeue_count, ?3, ?4 FROM queue
                      WHERE id = ?1 AND pop_receipt = ?2",
                    params![receipt.id, receipt.pop_receipt, reason, now_ms()],
                )
                .map_err(sql)?;
                held(moved, &receipt)?;
                tx.execute("DELETE FROM queue WHERE id = ?1", params![receipt.id])
                    .map_err(sql)?;
                // Copy and delete commit together: a crash leaves the message queued.
                crate::crash::point("poison.copied");
                tx.commit().map_err(sql)
            })
            .await
    }

    async fn poisoned(&self) -> Result<Vec<Poisoned>, QueueError> {
        self.db
            .call(|conn| {
                let mut stmt = conn
                    .prepare("SELECT id, body, reason FROM poison ORDER BY id")
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(Poisoned {
                            id: r.get::<_, i64>(0)?.to_string(),
                            body: r.get(1)?,
                            reason: r.get(2)?,
                        })
                    })
                    .map_err(sql)?;
                rows.collect::<Result<_, _>>().map_err(sql)
            })
            .await
    }

    async fn requeue(&self, id: &str, body: &str) -> Result<bool, QueueError> {
        let (id, body) = (id.to_owned(), body.to_owned());
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                if tx
                    .execute("DELETE FROM poison WHERE id = ?1", [&id])
                    .map_err(sql)?
                    == 0
                {
                    return Ok(false);
                }
                let now = now_ms();
                tx.execute(
                    "INSERT INTO queue (body, enqueued_ms, visible_ms) VALUES (?1, ?2, ?2)",
                    params![body, now],
                )
                .map_err(sql)?;
                tx.commit().map_err(sql)?;
                Ok(true)
            })
            .await
    }

    async fn oldest(&self) -> Result<Option<Duration>, QueueError> {
        self.db
            .call(|conn| {
                let oldest: Option<i64> = conn
                    .query_row("SELECT MIN(enqueued_ms) FROM queue", [], |r| r.get(0))
                    .map_err(sql)?;
                Ok(oldest.map(|at| Duration::from_millis((now_ms() - at).max(0) as u64)))
            })
            .await
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        self.db
            .call(|conn| {
                conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(sql)
            })
            .await
    }
}

/// One row changed means the receipt was current; none means the lease was lost.
fn held(changed: usize, receipt: &Receipt) -> Result<(), QueueError> {
    if changed == 0 {
        return Err(QueueError::LeaseLost {
            id: receipt.id.clone(),
        });
    }
    Ok(())
}

/// A receipt no earlier lease of any message can have had: time plus a process-wide counter.
fn new_pop_receipt() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn sql(e: rusqlite::Error) -> QueueError {
    QueueError::Storage(e.to_string())
}

impl From<DbError> for QueueError {
    fn from(e: DbError) -> Self {
        QueueError::Storage(e.0)
    }
}
