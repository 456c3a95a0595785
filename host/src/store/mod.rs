//! Everything the worker remembers between messages: which messages were answered, chat
//! sessions, the LLM response cache, the usage log and the skill log with their running totals,
//! and the skills switched off at run time. The embedded default is SQLite; the Azure store
//! (Blob + Table) implements the same trait.
//!
//! Every write is one atomic step, so a crash cannot leave half of one: a claim is one
//! insert-if-absent (the read after a failed insert only looks); a reply mark one upsert; a
//! session append one transaction (SQLite) or one conditional write of the blob read before it
//! (Azure: a crash between the read and the write writes nothing); a usage or skill-log record
//! one insert. What a crash *between* these writes does is written beside the worker's steps
//! (`crate::worker`).

mod azure;
mod sqlite;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::usage::{Day, Rollup, RollupRow};

pub use azure::AzureStore;
pub use sqlite::SqliteStore;

/// One message of a chat's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The cost of answering one message.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// Channel and user, as in [`crate::envelope::Envelope::user_key`].
    pub user: String,
    /// The model or deployment.
    pub model: String,
    /// Model calls made (cache hits excluded).
    pub llm_calls: u32,
    /// Prompt tokens over all calls.
    pub prompt_tokens: u64,
    /// Completion tokens over all calls.
    pub completion_tokens: u64,
    /// US dollars, from the configured price table (0 when the model has no price).
    pub cost_usd: f64,
}

/// One skill execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillCallRecord {
    /// Whose sandbox it ran in.
    pub user: String,
    /// The conversation.
    pub session: String,
    /// The skill.
    pub skill: String,
    /// The JSON arguments the model gave.
    pub parameters: String,
    /// Whether it returned output.
    pub success: bool,
    /// The error shown to the model, when it failed.
    pub error: Option<String>,
    /// Wall time.
    pub duration: Duration,
}

impl UsageRecord {
    /// What this answered message adds to its user's running totals.
    pub fn rollup(&self) -> Rollup {
        Rollup {
            messages: 1,
            llm_calls: u64::from(self.llm_calls),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cost_usd: self.cost_usd,
            ..Rollup::default()
        }
    }
}

impl SkillCallRecord {
    /// What this call adds to its skill's running totals.
    pub fn rollup(&self) -> Rollup {
        Rollup::of_call(self.duration, self.success)
    }
}

/// Which queued copy of a platform message answers it (see [`Store::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This copy holds the claim (now, or since an earlier delivery of it): answer it.
    Mine,
    /// The message was answered: drop this copy.
    Replied,
    /// Another copy of the same platform message holds the claim: drop this one.
    Taken,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing storage failed.
    #[error("state storage failed: {0}; check that the data directory is writable and not full")]
    Storage(String),
    /// Azure Storage refused or could not be reached.
    #[error("Azure state storage failed: {0}; check azure.storage (account, key or the replica's role on it) and that the account is reachable")]
    Azure(String),
}

impl From<crate::db::DbError> for StoreError {
    fn from(e: crate::db::DbError) -> Self {
        StoreError::Storage(e.0)
    }
}

/// Durable state shared by every worker.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Whether the message with this dedupe key was answered already.
    async fn replied(&self, key: &str) -> Result<bool, StoreError>;

    /// Claims the message with dedupe key `key` for the queued copy `message_id`, atomically:
    /// the first copy to claim a key answers it, every redelivery of that copy is [`Claim::Mine`]
    /// again, and any other copy is [`Claim::Taken`]. A queue can hold two copies of one
    /// platform message (an ingress that died between queueing it and recording its key lets
    /// the platform's resend through); this is what keeps them from being answered twice, even
    /// by two workers at once.
    async fn claim(&self, key: &str, message_id: &str) -> Result<Claim, StoreError>;

    /// Records that a message was answered: a redelivery must not answer again.
    async fn mark_replied(&self, key: &str) -> Result<(), StoreError>;

    /// The chat's history, oldest first; empty if it was idle for longer than `ttl`.
    async fn session(&self, key: &str, ttl: Duration) -> Result<Vec<SessionMessage>, StoreError>;

    /// Appends to a chat's history atomically and keeps its last `keep` messages.
    async fn append_session(
        &self,
        key: &str,
        messages: &[SessionMessage],
        keep: usize,
    ) -> Result<(), StoreError>;

    /// A cached value that has not expired.
    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Caches `value` for `ttl`.
    async fn cache_put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Logs the cost of one answered message and adds it to the day's running totals of its
    /// user ([`crate::usage`]).
    async fn record_usage(&self, usage: &UsageRecord) -> Result<(), StoreError>;

    /// Adds `amount` to counter `key` and returns its new total (an `amount` of 0 reads it).
    /// Exact however many replicas add at once; a counter is forgotten once `ttl` has passed
    /// since it was created (the limits use one counter per user and window).
    async fn add_to_counter(
        &self,
        key: &str,
        amount: f64,
        ttl: Duration,
    ) -> Result<f64, StoreError>;

    /// Logs one skill execution and adds it to the day's running totals of its skill and user.
    async fn record_skill_call(&self, call: &SkillCallRecord) -> Result<(), StoreError>;

    /// The running totals of days `since..=until`: one row per day, user and skill.
    async fn rollups(&self, since: Day, until: Day) -> Result<Vec<RollupRow>, StoreError>;

    /// The skills the operator switched off at run time (`POST /admin/skills/{name}/disable`),
    /// which every replica keeps off.
    async fn switched_off(&self) -> Result<Vec<String>, StoreError>;

    /// Switches skill `name` off (or back on) for every replica.
    async fn switch_skill(&self, name: &str, off: bool) -> Result<(), StoreError>;

    /// Drops expired cache entries, claims and reply records older than `dedupe_age`, and
    /// sessions idle for longer than `session_ttl`.
    async fn prune(&self, dedupe_age: Duration, session_ttl: Duration) -> Result<(), StoreError>;
}
