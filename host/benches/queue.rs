//! Durable enqueue and lease+delete on the embedded SQLite queue: the floor under the webhook
//! acknowledgement path and the worker loop. Run with `cargo bench --bench queue`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use molten::queue::{SqliteQueue, WorkQueue};

use common::report;

const MESSAGES: usize = 20_000;
const PRODUCERS: usize = 8;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("queue.db")).expect("queue"));
    let body =
        r#"{"channel":"telegram","chat":"42","user":"7","message_id":"1","text":"hello there"}"#;

    tokio.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(MESSAGES / PRODUCERS);
                    for _ in 0..MESSAGES / PRODUCERS {
                        let t = Instant::now();
                        queue.enqueue(body).await.expect("enqueue");
                        samples.push(t.elapsed());
                    }
                    samples
                })
            })
            .collect();
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await.expect("producer"));
        }
        report("enqueue", start.elapsed(), samples);

        let start = Instant::now();
        let mut samples = Vec::with_capacity(MESSAGES);
        loop {
            let t = Instant::now();
            let Some(leased) = queue.lease(Duration::from_secs(60)).await.expect("lease") else {
                break;
            };
            queue.delete(&leased.receipt).await.expect("delete");
            samples.push(t.elapsed());
        }
        report("lease + delete", start.elapsed(), samples);
    });
}
