//! Process-wide counters for `/admin/status`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by ingress and workers. Relaxed ordering: they are statistics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Webhooks verified and queued.
    pub accepted: AtomicU64,
    /// Requests refused (any 4xx): bad signature or token, malformed, too large, unknown
    /// route or method.
    pub rejected: AtomicU64,
    /// Webhooks for a message already queued.
    pub duplicates: AtomicU64,
    /// Webhooks with nothing to answer (edits, bot messages, non-text updates).
    pub ignored: AtomicU64,
    /// Replies delivered.
    pub replied: AtomicU64,
    /// Turns whose reply could not be delivered (the message stays queued).
    pub delivery_failures: AtomicU64,
    /// Turns where the model failed and the user got an apology.
    pub llm_failures: AtomicU64,
    /// Messages moved to the poison table.
    pub poisoned: AtomicU64,
}

/// A copy of the counters, for JSON.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    accepted: u64,
    rejected: u64,
    duplicates: u64,
    ignored: u64,
    replied: u64,
    delivery_failures: u64,
    llm_failures: u64,
    poisoned: u64,
}

impl Metrics {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            duplicates: get(&self.duplicates),
            ignored: get(&self.ignored),
            replied: get(&self.replied),
            delivery_failures: get(&self.delivery_failures),
            llm_failures: get(&self.llm_failures),
            poisoned: get(&self.poisoned),
        }
    }
}
