//! The embedded store: tables in one SQLite file (see [`crate::db`] for durability).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{Claim, SessionMessage, SkillCallRecord, Store, StoreError, UsageRecord};
use crate::db::{millis, now_ms, Db};
use crate::usage::{today, Day, Rollup, RollupRow};

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
    CREATE TABLE IF NOT EXISTS usage_daily (
        day         INTEGER NOT NULL,
        user        TEXT NOT NULL,
        skill       TEXT NOT NULL,
        totals      TEXT NOT NULL,
        PRIMARY KEY (day, user, skill)
    );
    CREATE TABLE IF NOT EXISTS skill_switch (
        name        TEXT PRIMARY KEY,
        at_ms       INTEGER NOT NULL
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
            backfill_rollups(conn)
        })?;
        Ok(Self { db })
    }
}

/// Adds `totals` to the running totals of `day`, `user` and `skill`, in the caller's transaction.
fn add_rollup(
    conn: &rusqlite::Connection,
    day: Day,
    user: &str,
    skill: &str,
    totals: &Rollup,
) -> Result<(), StoreError> {
    let mut sum: Rollup = conn
        .query_row(
            "SELECT totals FROM usage_daily WHERE day = ?1 AND user = ?2 AND skill = ?3",
            params![day, user, skill],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(sql)?
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(json)?
        .unwrap_or_default();
    sum.add(totals);
    conn.execute(
        "INSERT OR REPLACE INTO usage_daily (day, user, skill, totals) VALUES (?1, ?2, ?3, ?4)",
        params![day, user, skill, serde_json::to_string(&sum).map_err(json)?],
    )
    .map_err(sql)?;
    Ok(())
}

/// Files written before running totals existed have logs only: their totals are added up once.
fn backfill_rollups(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let empty = |table: &str| {
        tx.query_row(
            &format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"),
            [],
            |r| r.get::<_, bool>(0),
        )
        .map_err(sql)
    };
    if !empty("usage_daily")? || (empty("usage")? && empty("skill_log")?) {
        return Ok(());
    }
    let mut rows: Vec<(Day, String, String, Rollup)> = Vec::new();
    {
        let mut usage = tx
            .prepare(
                "SELECT at_ms, user, model, llm_calls, prompt_tokens, completion_tokens, cost_usd
                   FROM usage",
            )
            .map_err(sql)?;
        let found = usage
            .query_map([], |r| {
                let record = UsageRecord {
                    user: r.get(1)?,
                    model: r.get(2)?,
                    llm_calls: r.get(3)?,
                    prompt_tokens: r.get::<_, i64>(4)? as u64,
                    completion_tokens: r.get::<_, i64>(5)? as u64,
                    cost_usd: r.get(6)?,
                };
                Ok((day_of(r.get(0)?), record))
            })
            .map_err(sql)?;
        for found in found {
            let (day, record) = found.map_err(sql)?;
            rows.push((day, record.user.clone(), String::new(), record.rollup()));
        }
        let mut calls = tx
            .prepare("SELECT at_ms, user, skill, success, duration_ms FROM skill_log")
            .map_err(sql)?;
        let found = calls
            .query_map([], |r| {
                let record = SkillCallRecord {
                    user: r.get(1)?,
                    session: String::new(),
                    skill: r.get(2)?,
                    parameters: String::new(),
                    success: r.get(3)?,
                    error: None,
                    duration: Duration::from_millis(r.get::<_, i64>(4)?.max(0) as u64),
                };
                Ok((day_of(r.get(0)?), record))
            })
            .map_err(sql)?;
        for found in found {
            let (day, record) = found.map_err(sql)?;
            rows.push((
                day,
                record.user.clone(),
                record.skill.clone(),
                record.rollup(),
            ));
        }
    }
    for (day, user, skill, totals) in &rows {
        add_rollup(&tx, *day, user, skill, totals)?;
    }
    tx.commit().map_err(sql)
}

fn day_of(at_ms: i64) -> Day {
    at_ms.div_euclid(86_400_000)
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn json(e: serde_json::Error) -> StoreError {
    StoreError::Storage(format!("a stored session or total is not valid JSON: {e}"))
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
                // The log row and the running totals commit together.
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                tx.execute(
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
                add_rollup(&tx, today(), &u.user, "", &u.rollup())?;
                tx.commit().map_err(sql)
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
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql)?;
                tx.execute(
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
                add_rollup(&tx, today(), &c.user, &c.skill, &c.rollup())?;
                tx.commit().map_err(sql)
            })
            .await
    }

    async fn rollups(&self, since: Day, until: Day) -> Result<Vec<RollupRow>, StoreError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT day, user, skill, totals FROM usage_daily
                          WHERE day BETWEEN ?1 AND ?2",
                    )
                    .map_err(sql)?;
                let rows = stmt
                    .query_map([since, until], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                    })
                    .map_err(sql)?;
                let mut found = Vec::new();
                for row in rows {
                    let (day, user, skill, totals) = row.map_err(sql)?;
                    found.push(RollupRow {
                        day,
                        user,
                        skill,
                        totals: serde_json::from_str(&totals).map_err(json)?,
                    });
                }
                Ok(found)
            })
            .await
    }

    async fn switched_off(&self) -> Result<Vec<String>, StoreError> {
        self.db
            .call(|conn| {
                let mut stmt = conn
                    .prepare("SELECT name FROM skill_switch ORDER BY name")
                    .map_err(sql)?;
                let names = stmt.query_map([], |r| r.get(0)).map_err(sql)?;
                names.collect::<Result<_, _>>().map_err(sql)
            })
            .await
    }

    async fn switch_skill(&self, name: &str, off: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.db
            .call(move |conn| {
                if off {
                    conn.execute(
                        "INSERT OR REPLACE INTO skill_switch (name, at_ms) VALUES (?1, ?2)",
                        params![name, now_ms()],
                    )
                } else {
                    conn.execute("DELETE FROM skill_switch WHERE name = ?1", [name])
                }
                .map_err(sql)?;
                Ok(())
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
