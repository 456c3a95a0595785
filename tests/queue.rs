//! The work queue contract (leases, redelivery, renewal, poison, durability, dedupe), run
//! against the embedded SQLite queue and against Azure Storage Queue on Azurite.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use molten::queue::{AzureQueue, Poisoned, QueueError, SqliteQueue, WorkQueue};
use tempfile::TempDir;

use crate::azurite::{azurite, unique};
use crate::support::temp_dir;

const LONG: Duration = Duration::from_secs(60);

/// Where a test's queue lives; every `open` is a new handle on the same queue.
enum Backend {
    /// The directory lives as long as the backend.
    Sqlite {
        _dir: TempDir,
        path: PathBuf,
    },
    Azure {
        queue: String,
        tables: String,
    },
}

impl Backend {
    fn sqlite() -> Self {
        let dir = temp_dir();
        let path = dir.path().join("queue.db");
        Backend::Sqlite { _dir: dir, path }
    }

    fn azure() -> Self {
        Backend::Azure {
            queue: unique("q"),
            tables: unique("t"),
        }
    }

    async fn open(&self) -> Arc<dyn WorkQueue> {
        match self {
            Backend::Sqlite { path, .. } => Arc::new(SqliteQueue::open(path).unwrap()),
            Backend::Azure { queue, tables } => Arc::new(
                AzureQueue::open(&azurite().account(), queue, tables)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// A lease that runs out during the test: Azure counts visibility in whole seconds.
    fn short(&self) -> Duration {
        match self {
            Backend::Sqlite { .. } => Duration::from_millis(50),
            Backend::Azure { .. } => Duration::from_secs(1),
        }
    }
}

contract!(
    messages_come_out_in_order_and_leave_when_deleted,
    an_expired_lease_redelivers_and_the_old_receipt_is_void,
    renewal_keeps_a_message_leased,
    poisoned_messages_leave_the_queue_and_are_kept,
    a_poisoned_message_can_be_sent_back_once,
    messages_survive_reopening_and_unfinished_leases_come_back,
    competing_workers_each_get_every_message_exactly_once,
    enqueue_once_drops_resends_even_after_the_message_left,
    concurrent_resends_queue_one_message,
);

async fn messages_come_out_in_order_and_leave_when_deleted(backend: Backend) {
    let queue = backend.open().await;
    for body in ["one", "two", "three"] {
        queue.enqueue(body).await.unwrap();
    }
    assert_eq!(queue.depth().await.unwrap(), 3);
    for expected in ["one", "two", "three"] {
        let leased = queue.lease(LONG).await.unwrap().expect("a message");
        assert_eq!(leased.body, expected);
        assert_eq!(leased.dequeue_count, 1);
        queue.delete(&leased.receipt).await.unwrap();
    }
    assert!(queue.lease(LONG).await.unwrap().is_none());
    assert_eq!(queue.depth().await.unwrap(), 0);
}

async fn an_expired_lease_redelivers_and_the_old_receipt_is_void(backend: Backend) {
    let queue = backend.open().await;
    queue.enqueue("work").await.unwrap();
    let first = queue.lease(backend.short()).await.unwrap().unwrap();
    assert!(
        queue.lease(LONG).await.unwrap().is_none(),
        "invisible while leased"
    );
    tokio::time::sleep(backend.short() * 3).await;
    let second = queue.lease(LONG).await.unwrap().expect("redelivered");
    assert_eq!(second.body, "work");
    assert_eq!(second.dequeue_count, 2);
    assert_eq!(second.receipt.id, first.receipt.id);
    assert_ne!(second.receipt.pop_receipt, first.receipt.pop_receipt);
    // The first worker's late delete must not remove the message the second one holds.
    let err = queue.delete(&first.receipt).await.unwrap_err();
    assert!(
        matches!(err, QueueError::LeaseLost { ref id } if *id == first.receipt.id),
        "{err}"
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    queue.delete(&second.receipt).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
}

async fn renewal_keeps_a_message_leased(backend: Backend) {
    let queue = backend.open().await;
    queue.enqueue("slow turn").await.unwrap();
    let leased = queue.lease(backend.short()).await.unwrap().unwrap();
    let renewed = queue.renew(&leased.receipt, LONG).await.unwrap();
    tokio::time::sleep(backend.short() * 3).await;
    assert!(
        queue.lease(LONG).await.unwrap().is_none(),
        "still leased after renewal"
    );
    assert!(matches!(
        queue.renew(&leased.receipt, LONG).await,
        Err(QueueError::LeaseLost { .. })
    ));
    queue.delete(&renewed).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
}

async fn poisoned_messages_leave_the_queue_and_are_kept(backend: Backend) {
    let queue = backend.open().await;
    let id = queue.enqueue("bad").await.unwrap();
    queue.enqueue("good").await.unwrap();
    let leased = queue.lease(LONG).await.unwrap().unwrap();
    queue
        .poison(&leased, "failed 5 times: LLM down")
        .await
        .unwrap();
    assert_eq!(
        queue.poisoned().await.unwrap(),
        vec![Poisoned {
            id,
            body: "bad".to_owned(),
            reason: "failed 5 times: LLM down".to_owned()
        }]
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    assert_eq!(queue.lease(LONG).await.unwrap().unwrap().body, "good");
    // Poisoning needs the current lease too.
    assert!(matches!(
        queue.poison(&leased, "again").await,
        Err(QueueError::LeaseLost { .. })
    ));
}

async fn a_poisoned_message_can_be_sent_back_once(backend: Backend) {
    let queue = backend.open().await;
    assert_eq!(queue.oldest().await.unwrap(), None);
    let id = queue.enqueue("first try").await.unwrap();
    let other = queue.enqueue("other").await.unwrap();
    let age = queue.oldest().await.unwrap().expect("a message waits");
    assert!(age < Duration::from_secs(60), "{age:?}");
    for _ in 0..2 {
        let leased = queue.lease(LONG).await.unwrap().unwrap();
        queue.poison(&leased, "failed").await.unwrap();
    }
    assert_eq!(queue.poisoned().await.unwrap().len(), 2);
    assert!(queue.requeue(&id, "second try").await.unwrap());
    assert!(!queue.requeue(&id, "third try").await.unwrap(), "only once");
    assert!(!queue.requeue("no-such-id", "x").await.unwrap());
    let left = queue.poisoned().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, other, "the other poisoned message stays");
    let leased = queue.lease(LONG).await.unwrap().unwrap();
    assert_eq!(
        (leased.body.as_str(), leased.dequeue_count),
        ("second try", 1)
    );
    queue.delete(&leased.receipt).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
}

async fn messages_survive_reopening_and_unfinished_leases_come_back(backend: Backend) {
    {
        let queue = backend.open().await;
        queue.enqueue("kept").await.unwrap();
        queue.enqueue("in flight").await.unwrap();
        let leased = queue.lease(LONG).await.unwrap().unwrap();
        assert_eq!(leased.body, "kept");
        queue.delete(&leased.receipt).await.unwrap();
        // Leased and never deleted: the worker "crashes" here.
        queue.lease(backend.short()).await.unwrap().unwrap();
    }
    let queue = backend.open().await;
    assert_eq!(queue.depth().await.unwrap(), 1);
    tokio::time::sleep(backend.short() * 3).await;
    let again = queue.lease(LONG).await.unwrap().unwrap();
    assert_eq!((again.body.as_str(), again.dequeue_count), ("in flight", 2));
}

async fn competing_workers_each_get_every_message_exactly_once(backend: Backend) {
    let producer = backend.open().await;
    for i in 0..300 {
        producer.enqueue(&format!("m{i}")).await.unwrap();
    }
    // Two handles are two connections, as two processes would have.
    let handles = [backend.open().await, backend.open().await];
    let workers = (0..6).map(|w| {
        let queue = handles[w % 2].clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(leased) = queue.lease(LONG).await.unwrap() {
                queue.delete(&leased.receipt).await.unwrap();
                got.push(leased.body);
            }
            got
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for worker in workers.collect::<Vec<_>>() {
        for body in worker.await.unwrap() {
            assert!(seen.insert(body.clone()), "{body} delivered twice");
            total += 1;
        }
    }
    assert_eq!(total, 300);
    assert_eq!(producer.depth().await.unwrap(), 0);
}

async fn enqueue_once_drops_resends_even_after_the_message_left(backend: Backend) {
    let queue = backend.open().await;
    let first = queue.enqueue_once("telegram:1", "hello").await.unwrap();
    assert!(first.is_some());
    assert_eq!(
        queue.enqueue_once("telegram:1", "hello").await.unwrap(),
        None
    );
    assert!(queue
        .enqueue_once("telegram:2", "other")
        .await
        .unwrap()
        .is_some());
    assert_eq!(queue.depth().await.unwrap(), 2);

    // Answered and deleted: a late resend is still a duplicate.
    let leased = queue.lease(LONG).await.unwrap().unwrap();
    queue.delete(&leased.receipt).await.unwrap();
    assert_eq!(
        queue.enqueue_once("telegram:1", "hello").await.unwrap(),
        None
    );

    // Once forgotten, the key is new again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue
        .forget_accepted(Duration::from_millis(10))
        .await
        .unwrap();
    assert!(queue
        .enqueue_once("telegram:1", "hello")
        .await
        .unwrap()
        .is_some());
}

async fn concurrent_resends_queue_one_message(backend: Backend) {
    let queue = backend.open().await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enqueue_once("slack:C1:1.0", "hi").await.unwrap() })
        })
        .collect();
    let mut queued = 0;
    for task in tasks {
        queued += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(queued, 1);
    assert_eq!(queue.depth().await.unwrap(), 1);
}

#[tokio::test]
async fn sqlite_in_an_unusable_location_is_a_clear_error() {
    let dir = temp_dir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = SqliteQueue::open(&file.join("queue.db"))
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(
        message.contains("check that the data directory is writable"),
        "{message}"
    );
    // A file that is not a database is refused too, and left as it was.
    let err = SqliteQueue::open(&file).err().expect("refused");
    assert!(matches!(err, QueueError::Storage(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

#[tokio::test]
async fn azure_rejects_a_wrong_key_and_says_what_to_check() {
    let good = azurite().connection_string();
    let wrong = format!(
        "{good};AccountKey={}",
        azure_core::base64::encode(b"not the key")
    );
    let account = molten::azure::StorageAccount::from_connection_string(
        &molten::secrets::Secret::new(wrong),
        None,
        molten::service::http_client().unwrap(),
    )
    .unwrap();
    let err = AzureQueue::open(&account, &unique("q"), &unique("t"))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(message.contains("403"), "{message}");
    assert!(message.contains("check azure.storage"), "{message}");
    assert!(
        !message.contains("sig="),
        "no signature in errors: {message}"
    );
}

#[tokio::test]
async fn azure_refuses_a_body_over_its_limit_and_keeps_the_queue_usable() {
    let queue = Backend::azure().open().await;
    let err = queue.enqueue(&"x".repeat(47 * 1024)).await.unwrap_err();
    assert!(
        err.to_string().contains("over the Azure queue's limit"),
        "{err}"
    );
    queue.enqueue("small").await.unwrap();
    assert_eq!(queue.lease(LONG).await.unwrap().unwrap().body, "small");
}
