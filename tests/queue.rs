//! The embedded SQLite work queue: leases, redelivery, renewal, poison, durability.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use molten::queue::{QueueError, SqliteQueue, WorkQueue};

use crate::support::temp_dir;

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(50);

#[tokio::test]
async fn messages_come_out_in_order_and_leave_when_deleted() {
    let dir = temp_dir();
    let queue = SqliteQueue::open(&dir.path().join("queue.db")).unwrap();
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

#[tokio::test]
async fn an_expired_lease_redelivers_and_the_old_receipt_is_void() {
    let dir = temp_dir();
    let queue = SqliteQueue::open(&dir.path().join("queue.db")).unwrap();
    queue.enqueue("work").await.unwrap();
    let first = queue.lease(SHORT).await.unwrap().unwrap();
    assert!(
        queue.lease(LONG).await.unwrap().is_none(),
        "invisible while leased"
    );
    tokio::time::sleep(SHORT * 3).await;
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

#[tokio::test]
async fn renewal_keeps_a_message_leased() {
    let dir = temp_dir();
    let queue = SqliteQueue::open(&dir.path().join("queue.db")).unwrap();
    queue.enqueue("slow turn").await.unwrap();
    let leased = queue.lease(SHORT).await.unwrap().unwrap();
    let renewed = queue.renew(&leased.receipt, LONG).await.unwrap();
    tokio::time::sleep(SHORT * 3).await;
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

#[tokio::test]
async fn poisoned_messages_leave_the_queue_and_are_kept() {
    let dir = temp_dir();
    let queue = SqliteQueue::open(&dir.path().join("queue.db")).unwrap();
    let id = queue.enqueue("bad").await.unwrap();
    queue.enqueue("good").await.unwrap();
    let leased = queue.lease(LONG).await.unwrap().unwrap();
    queue
        .poison(&leased.receipt, "failed 5 times: LLM down")
        .await
        .unwrap();
    assert_eq!(
        queue.poisoned().unwrap(),
        vec![(id, "bad".to_owned(), "failed 5 times: LLM down".to_owned())]
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    assert_eq!(queue.lease(LONG).await.unwrap().unwrap().body, "good");
    // Poisoning needs the current lease too.
    assert!(matches!(
        queue.poison(&leased.receipt, "again").await,
        Err(QueueError::LeaseLost { .. })
    ));
}

#[tokio::test]
async fn messages_survive_reopening_and_unfinished_leases_come_back() {
    let dir = temp_dir();
    let path = dir.path().join("queue.db");
    {
        let queue = SqliteQueue::open(&path).unwrap();
        queue.enqueue("kept").await.unwrap();
        queue.enqueue("in flight").await.unwrap();
        let leased = queue.lease(LONG).await.unwrap().unwrap();
        assert_eq!(leased.body, "kept");
        queue.delete(&leased.receipt).await.unwrap();
        // Leased and never deleted: the worker "crashes" here.
        queue.lease(SHORT).await.unwrap().unwrap();
    }
    let queue = SqliteQueue::open(&path).unwrap();
    assert_eq!(queue.depth().await.unwrap(), 1);
    tokio::time::sleep(SHORT * 3).await;
    let again = queue.lease(LONG).await.unwrap().unwrap();
    assert_eq!((again.body.as_str(), again.dequeue_count), ("in flight", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_workers_each_get_every_message_exactly_once() {
    let dir = temp_dir();
    let path = dir.path().join("queue.db");
    let producer = SqliteQueue::open(&path).unwrap();
    for i in 0..300 {
        producer.enqueue(&format!("m{i}")).await.unwrap();
    }
    // Two handles are two connections, as two processes on one file would have.
    let handles = [
        SqliteQueue::open(&path).unwrap(),
        SqliteQueue::open(&path).unwrap(),
    ];
    let workers = (0..6).map(|w| {
        let queue: Arc<dyn WorkQueue> = Arc::new(handles[w % 2].clone());
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

#[tokio::test]
async fn an_unusable_location_is_a_clear_error() {
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
async fn enqueue_once_drops_resends_even_after_the_message_left() {
    let dir = temp_dir();
    let queue = SqliteQueue::open(&dir.path().join("queue.db")).unwrap();
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

#[tokio::test]
async fn concurrent_resends_queue_one_message() {
    let dir = temp_dir();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("queue.db")).unwrap());
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
