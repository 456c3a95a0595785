//! The Azure store: chat sessions and the response cache as blobs in one container (sessions
//! updated with ETag conditions, so two workers never overwrite each other's turn), and the
//! claims and reply records, usage log and skill log as rows in Table storage.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use azure_core::http::{Etag, RequestContent, StatusCode};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
    ListBlobsIncludeItem,
};
use azure_storage_blob::BlobContainerClient;
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::azure::{dated_row, describe, hashed_key, StorageAccount, TableClient};
use crate::db::{millis, now_ms};

use super::{Claim, SessionMessage, SkillCallRecord, Store, StoreError, UsageRecord};
use crate::usage::{today, Day, Rollup, RollupRow};

const SESSIONS: &str = "sessions/";
const CACHE: &str = "cache/";
/// Blob metadata: when a session was last appended to, when a cache entry expires.
const TOUCHED: &str = "touched_ms";
const EXPIRES: &str = "expires_ms";
/// The partition of counters (one row per counter).
const COUNTERS: &str = "counters";
/// How long counters are kept (the longest window the limits count, with room).
const COUNTER_LIFETIME_MS: i64 = 2 * 24 * 3600 * 1000;
/// Concurrent updates of one row (a counter, a running total) retry this often before giving up.
const UPDATE_ATTEMPTS: u64 = 50;
/// The partition of the skills switched off at run time (in the counters table).
const SWITCHES: &str = "switches";
/// The partition of claims and reply marks (one row per platform message).
const REPLIED: &str = "replied";
/// Concurrent appends to one session retry this often before giving up.
const APPEND_ATTEMPTS: u32 = 50;

/// A [`Store`] on Azure Blob and Table storage, shared by every replica.
pub struct AzureStore {
    container: BlobContainerClient,
    tables: TableClient,
    replied: String,
    usage: String,
    skills: String,
    counters: String,
    daily: String,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SessionBlob {
    touched_ms: i64,
    messages: Vec<SessionMessage>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheBlob {
    expires_ms: i64,
    value: String,
}

fn storage(what: &str, e: &azure_core::Error) -> StoreError {
    StoreError::Azure(format!("{what}: {}", describe(e)))
}

fn table(e: crate::azure::TableError) -> StoreError {
    StoreError::Azure(e.to_string())
}

/// Whether a row of the replied table records a reply (and not only a claim); rows written
/// before claims existed have no `replied` property and are all replies.
fn is_reply(row: &Value) -> bool {
    row["replied"] != Value::Bool(false)
}

/// 64 random bits (std's per-map random hash keys), for row keys and retry jitter.
fn random() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A row key that sorts by time and does not collide between replicas.
fn log_row_key() -> String {
    format!("{:013}-{:016x}", now_ms(), random())
}

/// The partition of day `day`'s running totals (sorts by day).
fn day_partition(day: Day) -> String {
    format!("day-{day:06}")
}

/// The blob of the chat `key`'s session.
fn session_name(key: &str) -> String {
    format!("{SESSIONS}{}", hashed_key(key))
}

impl AzureStore {
    /// Connects to blob container `container` and the tables `<table_prefix>replied`,
    /// `usage`, `skillcalls`, `counters` and `usagedaily`, creating what is missing.
    pub async fn open(
        account: &StorageAccount,
        container: &str,
        table_prefix: &str,
    ) -> Result<Self, StoreError> {
        let client = account
            .container(container)
            .await
            .map_err(StoreError::Azure)?;
        let store = Self {
            container: client,
            tables: account.tables(),
            replied: format!("{table_prefix}replied"),
            usage: format!("{table_prefix}usage"),
            skills: format!("{table_prefix}skillcalls"),
            counters: format!("{table_prefix}counters"),
            daily: format!("{table_prefix}usagedaily"),
        };
        for name in [
            &store.replied,
            &store.usage,
            &store.skills,
            &store.counters,
            &store.daily,
        ] {
            store.tables.create_table(name).await.map_err(table)?;
        }
        Ok(store)
    }

    /// Updates one row as one atomic step however many replicas update it at once: reads it,
    /// lets `change` compute the new row from the current one (`None`: there is none), and
    /// writes that only if nobody wrote in between (insert if absent, else replace if the ETag
    /// is unchanged), else again. `change` returns no row when there is nothing to write.
    async fn update_row<T>(
        &self,
        table_name: &str,
        partition: &str,
        row: &str,
        what: &str,
        mut change: impl FnMut(Option<Value>) -> (Option<Value>, T),
    ) -> Result<T, StoreError> {
        for attempt in 0..UPDATE_ATTEMPTS {
            let current = self
                .tables
                .get_tagged(table_name, partition, row)
                .await
                .map_err(table)?;
            let (entity, etag) = match current {
                Some((entity, etag)) => (Some(entity), Some(etag)),
                None => (None, None),
            };
            let (new, result) = change(entity);
            let Some(new) = new else {
                return Ok(result);
            };
            let written = match etag {
                None => self.tables.insert(table_name, &new).await,
                Some(etag) => self.tables.replace_if(table_name, &new, &etag).await,
            }
            .map_err(table)?;
            if written {
                return Ok(result);
            }
            tokio::time::sleep(Duration::from_millis(5 + 5 * attempt)).await;
        }
        Err(StoreError::Azure(format!(
            "{what} kept changing while it was updated; try again"
        )))
    }

    /// Adds `totals` to the running totals of today, `user` and `skill`.
    async fn add_rollup(&self, user: &str, skill: &str, totals: &Rollup) -> Result<(), StoreError> {
        let partition = day_partition(today());
        let row = hashed_key(&format!("{user}\n{skill}"));
        self.update_row(
            &self.daily,
            &partition,
            &row,
            "a running total",
            |current| {
                let mut sum: Rollup = current
                    .and_then(|e| serde_json::from_str(e["totals"].as_str()?).ok())
                    .unwrap_or_default();
                sum.add(totals);
                let entity = json!({
                    "PartitionKey": partition,
                    "RowKey": row,
                    "user": user,
                    "skill": skill,
                    "totals": serde_json::to_string(&sum).unwrap_or_default(),
                });
                (Some(entity), ())
            },
        )
        .await
    }

    /// The blob's content and ETag, or `None` if there is none.
    async fn read(&self, name: &str) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        crate::azure::download(&self.container, name)
            .await
            .map_err(StoreError::Azure)
    }

    /// Writes a blob: over `etag` only, or only if it does not exist when `etag` is `None`
    /// and `conditional`. `false` if the condition failed (someone else wrote first).
    async fn write(
        &self,
        name: &str,
        body: Vec<u8>,
        metadata: (&str, i64),
        etag: Option<Etag>,
        conditional: bool,
    ) -> Result<bool, StoreError> {
        let mut options = BlockBlobClientUploadOptions {
            metadata: Some(HashMap::from([(
                metadata.0.to_owned(),
                metadata.1.to_string(),
            )])),
            blob_content_type: Some("application/json".into()),
            ..Default::default()
        };
        match etag {
            Some(etag) => options.if_match = Some(etag),
            None if conditional => options = options.if_not_exists(),
            None => {}
        }
        let content: RequestContent<azure_core::Bytes, _> = azure_core::Bytes::from(body).into();
        match self
            .container
            .blob_client(name)
            .upload(content, Some(options))
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::PreconditionFailed | StatusCode::Conflict)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(storage(&format!("writing {name}"), &e)),
        }
    }

    /// Deletes blobs under `prefix` whose metadata `field` is below `cutoff` (unless they
    /// changed since they were listed).
    async fn delete_older(&self, prefix: &str, field: &str, cutoff: i64) -> Result<(), StoreError> {
        let mut pager = self
            .container
            .list_blobs(Some(BlobContainerClientListBlobsOptions {
                prefix: Some(prefix.to_owned()),
                include: Some(vec![ListBlobsIncludeItem::Metadata]),
                ..Default::default()
            }))
            .map_err(|e| storage(&format!("listing {prefix}"), &e))?;
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| storage(&format!("listing {prefix}"), &e))?
        {
            let stamp = item
                .metadata
                .as_ref()
                .and_then(|m| m.values.as_ref())
                .and_then(|values| values.get(field))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            let (Some(name), Some(etag)) = (item.name, item.properties.and_then(|p| p.etag)) else {
                continue;
            };
            if stamp >= cutoff {
                continue;
            }
            let options = BlobClientDeleteOptions {
                if_match: Some(etag),
                ..Default::default()
            };
            if let Err(e) = self
                .container
                .blob_client(&name)
                .delete(Some(options))
                .await
            {
                // Changed or gone since the listing: not ours to delete.
                if !matches!(
                    e.http_status(),
                    Some(StatusCode::PreconditionFailed | StatusCode::NotFound)
                ) {
                    return Err(storage(&format!("deleting {name}"), &e));
                }
            }
        }
        Ok(())
    }

    async fn sessions_blob(&self, key: &str) -> Result<Option<(SessionBlob, Etag)>, StoreError> {
        let name = session_name(key);
        Ok(match self.read(&name).await? {
            Some((body, etag)) => Some((
                serde_json::from_slice(&body).map_err(|e| {
                    StoreError::Azure(format!("session {name} is not readable: {e}"))
                })?,
                etag,
            )),
            None => None,
        })
    }
}

#[async_trait::async_trait]
impl Store for AzureStore {
    async fn replied(&self, key: &str) -> Result<bool, StoreError> {
        let row = self
            .tables
            .get(&self.replied, REPLIED, &hashed_key(key))
            .await
            .map_err(table)?;
        Ok(row.is_some_and(|row| is_reply(&row)))
    }

    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, StoreError> {
        let mut entity = dated_row(REPLIED, key);
        entity["claimed_by"] = json!(message_id);
        entity["replied"] = json!(false);
        // Insert-if-absent is atomic in Table storage: of all copies, one inserts. A row pruned
        // between a failed insert and the read is claimed again.
        for _ in 0..3 {
            if self
                .tables
                .insert(&self.replied, &entity)
                .await
                .map_err(table)?
            {
                return Ok(Claim::Mine);
            }
            let Some(existing) = self
                .tables
                .get(&self.replied, REPLIED, &hashed_key(key))
                .await
                .map_err(table)?
            else {
                continue;
            };
            return Ok(if is_reply(&existing) {
                Claim::Replied
            } else if existing["claimed_by"].as_str() == Some(message_id) {
                Claim::Mine
            } else {
                Claim::Taken
            });
        }
        Err(StoreError::Azure(format!(
            "the claim on message {key} kept vanishing while it was read"
        )))
    }

    async fn mark_replied(&self, key: &str) -> Result<(), StoreError> {
        let mut entity = dated_row(REPLIED, key);
        entity["replied"] = json!(true);
        // Merged, so the claim's `claimed_by` stays; written whether or not a claim exists.
        self.tables
            .merge(&self.replied, &entity)
            .await
            .map_err(table)
    }

    async fn session(&self, key: &str, ttl: Duration) -> Result<Vec<SessionMessage>, StoreError> {
        Ok(match self.sessions_blob(key).await? {
            Some((blob, _)) if now_ms() - blob.touched_ms <= millis(ttl) => blob.messages,
            _ => Vec::new(),
        })
    }

    async fn append_session(
        &self,
        key: &str,
        messages: &[SessionMessage],
        keep: usize,
    ) -> Result<(), StoreError> {
        let name = session_name(key);
        for attempt in 0..APPEND_ATTEMPTS {
            let (mut blob, etag) = match self.sessions_blob(key).await? {
                Some((blob, etag)) => (blob, Some(etag)),
                None => (SessionBlob::default(), None),
            };
            blob.messages.extend_from_slice(messages);
            let excess = blob.messages.len().saturating_sub(keep);
            blob.messages.drain(..excess);
            blob.touched_ms = now_ms();
            let body = serde_json::to_vec(&blob).expect("a session serialises");
            if self
                .write(&name, body, (TOUCHED, blob.touched_ms), etag, true)
                .await?
            {
                return Ok(());
            }
            // Another worker appended first: read its version and append to that.
            let jitter = random() % 20;
            tokio::time::sleep(Duration::from_millis(
                u64::from(attempt.min(10)) * 5 + jitter,
            ))
            .await;
        }
        Err(StoreError::Azure(format!(
            "session {name} kept changing under {APPEND_ATTEMPTS} attempts to append to it"
        )))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some((body, _)) = self.read(&format!("{CACHE}{}", hashed_key(key))).await? else {
            return Ok(None);
        };
        let entry: CacheBlob = match serde_json::from_slice(&body) {
            Ok(entry) => entry,
            Err(_) => return Ok(None),
        };
        Ok((entry.expires_ms > now_ms()).then_some(entry.value))
    }

    async fn cache_put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let entry = CacheBlob {
            expires_ms: now_ms().saturating_add(millis(ttl)),
            value: value.to_owned(),
        };
        let body = serde_json::to_vec(&entry).expect("a cache entry serialises");
        let name = format!("{CACHE}{}", hashed_key(key));
        self.write(&name, body, (EXPIRES, entry.expires_ms), None, false)
            .await
            .map(drop)
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<(), StoreError> {
        let entity = json!({
            "PartitionKey": "usage",
            "RowKey": log_row_key(),
            "user": usage.user,
            "model": usage.model,
            "llm_calls": usage.llm_calls,
            "prompt_tokens": usage.prompt_tokens.to_string(),
            "prompt_tokens@odata.type": "Edm.Int64",
            "completion_tokens": usage.completion_tokens.to_string(),
            "completion_tokens@odata.type": "Edm.Int64",
            "cost_usd": usage.cost_usd,
            "cost_usd@odata.type": "Edm.Double",
        });
        // The totals first: a crash between the two loses a log row, never a cost a cap or
        // report counts.
        self.add_rollup(&usage.user, "", &usage.rollup()).await?;
        self.tables
            .insert(&self.usage, &entity)
            .await
            .map(drop)
            .map_err(table)
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: f64,
        ttl: Duration,
    ) -> Result<f64, StoreError> {
        let row = hashed_key(key);
        let typed = |entity: &mut Value, total: f64| {
            entity["value"] = json!(total);
            entity["value@odata.type"] = json!("Edm.Double");
            entity["expires_ms@odata.type"] = json!("Edm.Int64");
            entity["at_ms@odata.type"] = json!("Edm.Int64");
        };
        self.update_row(
            &self.counters,
            COUNTERS,
            &row,
            key,
            |current| match current {
                None => {
                    let mut entity = dated_row(COUNTERS, key);
                    entity["expires_ms"] = json!((now_ms() + millis(ttl)).to_string());
                    typed(&mut entity, amount);
                    (Some(entity), amount)
                }
                Some(mut entity) => {
                    let total = entity["value"].as_f64().unwrap_or(0.0) + amount;
                    if amount == 0.0 {
                        return (None, total);
                    }
                    typed(&mut entity, total);
                    (Some(entity), total)
                }
            },
        )
        .await
    }

    async fn record_skill_call(&self, call: &SkillCallRecord) -> Result<(), StoreError> {
        let entity = json!({
            "PartitionKey": "skillcalls",
            "RowKey": log_row_key(),
            "user": call.user,
            "session": call.session,
            "skill": call.skill,
            "parameters": call.parameters,
            "success": call.success,
            "error": call.error,
            "duration_ms": millis(call.duration).to_string(),
            "duration_ms@odata.type": "Edm.Int64",
        });
        self.add_rollup(&call.user, &call.skill, &call.rollup())
            .await?;
        self.tables
            .insert(&self.skills, &entity)
            .await
            .map(drop)
            .map_err(table)
    }

    async fn rollups(&self, since: Day, until: Day) -> Result<Vec<RollupRow>, StoreError> {
        let filter = format!(
            "PartitionKey ge '{}' and PartitionKey le '{}'",
            day_partition(since),
            day_partition(until)
        );
        let rows = self
            .tables
            .query(&self.daily, Some(&filter), "PartitionKey,user,skill,totals")
            .await
            .map_err(table)?;
        rows.into_iter()
            .map(|row| {
                let day = row["PartitionKey"]
                    .as_str()
                    .and_then(|p| p.strip_prefix("day-")?.parse().ok())
                    .unwrap_or_default();
                let totals = serde_json::from_str(row["totals"].as_str().unwrap_or("{}"))
                    .map_err(|e| StoreError::Azure(format!("a running total is not JSON: {e}")))?;
                Ok(RollupRow {
                    day,
                    user: row["user"].as_str().unwrap_or_default().to_owned(),
                    skill: row["skill"].as_str().unwrap_or_default().to_owned(),
                    totals,
                })
            })
            .collect()
    }

    async fn switched_off(&self) -> Result<Vec<String>, StoreError> {
        let filter = format!("PartitionKey eq '{SWITCHES}'");
        let rows = self
            .tables
            .query(&self.counters, Some(&filter), "key")
            .await
            .map_err(table)?;
        let mut names: Vec<String> = rows
            .iter()
            .filter_map(|row| row["key"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn switch_skill(&self, name: &str, off: bool) -> Result<(), StoreError> {
        if off {
            self.tables
                .merge(&self.counters, &dated_row(SWITCHES, name))
                .await
        } else {
            self.tables
                .delete(&self.counters, SWITCHES, &hashed_key(name))
                .await
        }
        .map_err(table)
    }

    async fn prune(&self, dedupe_age: Duration, session_ttl: Duration) -> Result<(), StoreError> {
        let now = now_ms();
        self.tables
            .delete_older(&self.replied, REPLIED, now - millis(dedupe_age))
            .await
            .map_err(table)?;
        self.delete_older(CACHE, EXPIRES, now + 1).await?;
        // Counters live a day or a minute: those created before the longest window are gone.
        self.tables
            .delete_older(&self.counters, COUNTERS, now - COUNTER_LIFETIME_MS)
            .await
            .map_err(table)?;
        self.delete_older(SESSIONS, TOUCHED, now - millis(session_ttl))
            .await
    }
}
