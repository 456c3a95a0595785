//! The durable work queue between ingress and workers.
//!
//! Semantics follow Azure Storage Queue, so that the embedded SQLite queue and the Azure one are
//! interchangeable: a leased message is invisible for a visibility timeout and comes back if it
//! is not deleted in time; every lease counts a delivery and hands out a fresh pop receipt; only
//! the holder of the current receipt can renew, delete or poison the message. The embedded
//! default is one SQLite file; [`AzureQueue`] is an Azure Storage Queue any number of replicas share.

mod azure;
mod sqlite;

use std::time::Duration;

pub use azure::AzureQueue;
pub use sqlite::SqliteQueue;

/// Proof of holding a lease: the message id and the receipt of the current lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message's id, stable across deliveries.
    pub id: String,
    /// Changes with every lease and renewal.
    pub pop_receipt: String,
}

/// A message handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// What renew, delete and poison need.
    pub receipt: Receipt,
    /// The message as enqueued.
    pub body: String,
    /// How many times the message has been leased, this time included.
    pub dequeue_count: u32,
}

/// A message taken out of the queue because it kept failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned {
    /// Its id while it was queued.
    pub id: String,
    /// The message as enqueued.
    pub body: String,
    /// Why it was poisoned.
    pub reason: String,
}

/// A queue operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backing store failed.
    #[error("queue storage failed: {0}; check that the data directory is writable and not full")]
    Storage(String),
    /// Azure Storage refused or could not be reached.
    #[error("Azure queue storage failed: {0}; check azure.storage (account, key or the replica's role on it) and that the account is reachable")]
    Azure(String),
    /// The lease expired and the message was leased again (or deleted) meanwhile.
    #[error("the lease on message {id} was lost (it expired before it was renewed); the message will be delivered again")]
    LeaseLost {
        /// The message.
        id: String,
    },
}

/// A durable queue of text messages with leases.
#[async_trait::async_trait]
pub trait WorkQueue: Send + Sync {
    /// Stores `body` durably and returns its id.
    async fn enqueue(&self, body: &str) -> Result<String, QueueError>;

    /// Stores `body` durably unless a message with `key` was accepted before (within the
    /// retention of [`WorkQueue::forget_accepted`]); returns the new id, or `None` for a
    /// duplicate. Platforms resend webhooks; this is where the resends stop.
    async fn enqueue_once(&self, key: &str, body: &str) -> Result<Option<String>, QueueError>;

    /// Forgets accepted keys older than `age`, so the dedupe record does not grow forever.
    async fn forget_accepted(&self, age: Duration) -> Result<(), QueueError>;

    /// Leases the oldest visible message for `visibility`, or returns `None` if there is none.
    async fn lease(&self, visibility: Duration) -> Result<Option<Leased>, QueueError>;

    /// Extends a lease to `visibility` from now; returns the new receipt.
    async fn renew(&self, receipt: &Receipt, visibility: Duration) -> Result<Receipt, QueueError>;

    /// Removes a message whose work is done.
    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError>;

    /// Moves a message that keeps failing out of the queue, keeping it with `reason`. Needs
    /// the current lease.
    async fn poison(&self, leased: &Leased, reason: &str) -> Result<(), QueueError>;

    /// Poisoned messages, oldest first (at most the first 32 on Azure, which can only peek).
    async fn poisoned(&self) -> Result<Vec<Poisoned>, QueueError>;

    /// Sends poisoned message `id` back to the work queue as `body` (an operator's retry);
    /// `false` if no poisoned message has that id. The copy is queued before the poisoned one
    /// is dropped, so a crash between the two can leave both, never neither.
    async fn requeue(&self, id: &str, body: &str) -> Result<bool, QueueError>;

    /// How long the oldest waiting message has waited (none when the queue is empty).
    async fn oldest(&self) -> Result<Option<Duration>, QueueError>;

    /// Messages in the queue, visible or leased (not poisoned ones).
    async fn depth(&self) -> Result<u64, QueueError>;
}
