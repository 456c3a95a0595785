//! The embedded store: tables in one SQLite file (see [`crate::db`] for durability).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{Claim, SessionMessage, SkillCallRecord, Store, StoreError, Totals, UsageRecord};
use crate::db::{millis, now_ms, Db};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS replied (
        key         TEXT PRIMARY KEY,
        at_ms       INTEGER NOT NULL,
        claimed_by  TEXT,
        replied     INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE IF NOT EXISTS session (
        key         TEXT PRIMARY KEY,
        messages    TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS counters (
        key         TEXT PRIMARY KEY,
        value       REAL NOT NULL,
        expires_ms  INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS cache (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        expires_ms  INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS usage (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms             INTEGER NOT NULL,
        user              TEXT NOT NULL,
        model             TEXT NOT NULL,
        llm_calls         INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd          REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS skill_log (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms       INTEGER NOT NULL,
        user        TEXT NOT NULL,
        session     TEXT NOT NULL,
        skill       TEXT NOT NULL,
        parameters  TEXT NOT NULL,
        success     INTEGER NOT NULL,
        error       TEXT,
        duration_ms INTEGER NOT NULL
    );
";

/// A [`Store`] in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Db::open(path, SCHEMA)?;
        db.blocking(|conn| {
            // Files written before claims existed have reply marks only: every row of theirs
            // is a reply (hence the default).
            let claims = conn
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('replied') WHERE name = 'claimed_by'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(sql)?;
            if claims == 0 {
                conn.execute_batch(
                    "ALTER TABLE replied ADD COLUMN claimed_by TEXT;
                     ALTER TABLE replied ADD COLUMN replied INTEGER NOT NULL DEFAULT 1;",
                )
                .map_err(sql)?;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(Self { db })
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn json(e: serde_json::Error) -> StoreError {
    StoreError::Storage(format!("a stored session is not valid JSON: {e}"))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn replied(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT 1 FROM replied WHERE key = ?1 AND replied = 1",
                    [key],
                    |_| Ok(()),
                )
                .optional()
                .map(|row| row.is_some())
                .map_err(sql)
            })
            .await
    }

    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, StoreError> {
        let (key, message_id) = (key.to_owned(), message_id.to_owned());
        self.db
            .call(move |conn| {
                // Every statement runs on the one connection thread, in order: insert-if-absent
                // then read is atomic against every other caller of this file; other processes
                // on the same file are kept out by the write lock of the insert.
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                tx.execute(
                    "INSERT INTO replied (key, at_ms, claimed_by, replied) VALUES (?1, ?2, ?3, 0)
                     ON CONFLICT DO NOTHING",
                    params![key, now_ms(), message_id],
                )
                .map_err(sql)?;
                let (claimed_by, replied): (Option<String>, bool) = tx
                    .query_row(
                        "SELECT claimed_by, replied FROM replied WHERE key = ?1",
                        [&key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(sql)?;
                tx.commit().map_err(sql)?;
                Ok(if replied {
                    Claim::Replied
                } else if claimed_by.as_deref() == Some(message_id.as_str()) {
                    Claim::Mine
                } else {
                    Claim::Taken
                })
            })
            .await
    }

    async fn mark_replied(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO replied (key, at_ms, replied) VALUES (?1, ?2, 1)
                     ON CONFLICT (key) DO UPDATE SET replied = 1",
                    params![key, now_ms()],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }

    async fn session(&self, key: &str, ttl: Duration) -> Result<Vec<SessionMessage>, StoreError> {
        let key = key.to_owned();
        self.db
            .call(move |conn| {
                let row: Option<String> = conn
                    .query_row(
                        "SELECT messages FROM session WHERE key = ?1 AND updated_ms >= ?2",
                        params![key, now_ms() - millis(ttl)],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                row.map_or(Ok(Vec::new()), |text| {
                    serde_json::from_str(&text).map_err(json)
                })
            })
            .await
    }

    async fn append_session(
        &self,
        key: &str,
        messages: &[SessionMessage],
        keep: usize,
    ) -> Result<(), StoreError> {
        let (key, new) = (key.to_owned(), messages.to_vec());
        self.db
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let existing: Option<String> = tx
                    .query_row("SELECT messages FROM session WHERE key = ?1", [&key], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql)?;
                let mut all: Vec<SessionMessage> = match existing {
                    Some(text) => serde_json::from_str(&text).map_err(json)?,
                    None => Vec::new(),
                };
                all.extend(new);
                let skip = all.len().saturating_sub(keep);
                let text = serde_json::to_string(&all[skip..]).map_err(json)?;
                tx.execute(
                    "INSERT INTO session (key, messages, updated_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET messages = ?2, updated_ms = ?3",
                    params![key, text, now_ms()],
                )
                .map_err(sql)?;
                tx.commit().map_err(sql)
            })
            .await
    }

    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT value FROM cache WHERE key = ?1 AND expires_ms > ?2",
                    params![key, now_ms()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)
            })
            .await
    }

    async fn cache_put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO cache (key, value, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = ?2, expires_ms = ?3",
                    params![key, value, now_ms() + millis(ttl)],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<(), StoreError> {
        let u = usage.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO usage (at_ms, user, model, llm_calls, prompt_tokens,
                                        completion_tokens, cost_usd)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        now_ms(),
                        u.user,
                        u.model,
                        u.llm_calls,
                        u.prompt_tokens as i64,
                        u.completion_tokens as i64,
                        u.cost_usd
                    ],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: f64,
        ttl: Duration,
    ) -> Result<f64, StoreError> {
        let key = key.to_owned();
        self.db
            .call(move |conn| {
                // One statement: the add is atomic, whoever else adds at the same time.
                conn.query_row(
                    "INSERT INTO counters (key, value, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = value + excluded.value
                     RETURNING value",
                    params![key, amount, now_ms() + millis(ttl)],
                    |row| row.get(0),
                )
                .map_err(sql)
            })
            .await
    }

    async fn record_skill_call(&self, call: &SkillCallRecord) -> Result<(), StoreError> {
        let c = call.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO skill_log (at_ms, user, session, skill, parameters, success,
                                            error, duration_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        now_ms(),
                        c.user,
                        c.session,
                        c.skill,
                        c.parameters,
                        c.success,
                        c.error,
                        millis(c.duration)
                    ],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }

    async fn totals(&self) -> Result<Totals, StoreError> {
        self.db
            .call(|conn| {
                let mut totals = conn
                    .query_row(
                        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0),
                                COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0)
                           FROM usage",
                        [],
                        |r| {
                            Ok(Totals {
                                messages: r.get::<_, i64>(0)? as u64,
                                prompt_tokens: r.get::<_, i64>(1)? as u64,
                                completion_tokens: r.get::<_, i64>(2)? as u64,
                                cost_usd: r.get(3)?,
                                ..Totals::default()
                            })
                        },
                    )
                    .map_err(sql)?;
                (totals.skill_calls, totals.skill_failures) = conn
                    .query_row(
                        "SELECT COUNT(*), COALESCE(SUM(success = 0), 0) FROM skill_log",
                        [],
                        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                    )
                    .map_err(sql)?;
                Ok(totals)
            })
            .await
    }

    async fn prune(&self, dedupe_age: Duration, session_ttl: Duration) -> Result<(), StoreError> {
        self.db
            .call(move |conn| {
                let now = now_ms();
                conn.execute("DELETE FROM cache WHERE expires_ms <= ?1", [now])
                    .map_err(sql)?;
                conn.execute("DELETE FROM counters WHERE expires_ms <= ?1", [now])
                    .map_err(sql)?;
                conn.execute(
                    "DELETE FROM replied WHERE at_ms < ?1",
                    [now - millis(dedupe_age)],
                )
                .map_err(sql)?;
                conn.execute(
                    "DELETE FROM session WHERE updated_ms < ?1",
                    [now - millis(session_ttl)],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
    }
}
