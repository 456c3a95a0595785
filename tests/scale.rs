//! Scale-out on Azure Storage (Azurite): one ingress replica and two worker replicas of the real
//! `molten serve` binary share one queue and one store. 1,000 Telegram messages go in, one
//! worker is `kill -9`'d mid-run, and every message is answered exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use molten::queue::{AzureQueue, WorkQueue};

use crate::azurite::{azurite, Names};
use crate::fakes::{config, Fake, Molten};

const MESSAGES: i64 = 1_000;
/// Each message is its own chat, so a reply's chat id names the message it answers.
const FIRST_CHAT: i64 = 500_000;

/// Posts updates `range` to the ingress, 16 at a time, retrying a 503 as Telegram does; returns
/// how many retries there were.
async fn post(ingress: &Molten, range: std::ops::Range<i64>) -> usize {
    let retries: Vec<usize> = futures::stream::iter(range)
        .map(|i| async move {
            for attempt in 0..10 {
                let response = ingress
                    .telegram(i, FIRST_CHAT + i, &format!("message {i}"))
                    .await;
                match response.status().as_u16() {
                    200 => return attempt,
                    503 => tokio::time::sleep(Duration::from_millis(200)).await,
                    status => panic!("update {i} refused with {status}"),
                }
            }
            panic!("update {i} refused ten times:\n{}", ingress.log());
        })
        .buffer_unordered(16)
        .collect()
        .await;
    retries.iter().sum()
}

/// Replies per chat so far.
fn replies(fake: &Fake) -> HashMap<i64, usize> {
    let mut per_chat = HashMap::new();
    for request in fake.requests("/sendMessage") {
        let chat = request.body["chat_id"].as_i64().expect("chat_id");
        *per_chat.entry(chat).or_default() += 1;
    }
    per_chat
}

fn rate(messages: usize, since: Instant) -> f64 {
    messages as f64 / since.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_answer_a_thousand_messages_exactly_once_through_a_kill() {
    let fake = Fake::start().await;
    let names = Names::new();
    // Leases renew every third of the visibility timeout; 10 s leaves room for a busy machine
    // to stall without a lease running out mid-turn (which would answer a message twice).
    let settings = config(
        &fake,
        &format!(
            "{}\n[worker]\nconcurrency = 4\nvisibility_timeout_secs = 10\n",
            names.section(&azurite().connection_string())
        ),
    );
    let ingress = Molten::start(&settings, &["--role", "ingress"]).await;
    let _one = Molten::start(&settings, &["--role", "worker"]).await;

    // One worker.
    let start = Instant::now();
    let mut retried = post(&ingress, 0..300).await;
    fake.wait_for("/sendMessage", 300, Duration::from_secs(300))
        .await;
    let one_worker = rate(300, start);

    // Two workers.
    let mut two = Molten::start(&settings, &["--role", "worker"]).await;
    let start = Instant::now();
    let posting = async { retried += post(&ingress, 300..MESSAGES).await };
    let killing = async {
        fake.wait_for("/sendMessage", 600, Duration::from_secs(300))
            .await;
        let two_workers = rate(300, start);
        // Park every consumer of both workers inside a model call, then kill one worker: the
        // four messages it holds were not answered, and must come back to the other.
        fake.hold_llm();
        let deadline = Instant::now() + Duration::from_secs(60);
        while fake.parked_llm() < 8 {
            assert!(
                Instant::now() < deadline,
                "consumers did not all reach the model"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        two.kill();
        fake.release_llm();
        two_workers
    };
    let ((), two_workers) = tokio::join!(posting, killing);
    // Platforms resend; those must not be answered again.
    retried += post(&ingress, 0..50).await;
    fake.wait_for("/sendMessage", MESSAGES as usize, Duration::from_secs(300))
        .await;

    let account = azurite().account();
    let queue = AzureQueue::open(&account, &names.queue, &names.tables)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue.depth().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything answered twice would have been sent by now: the queue is empty.
    let per_chat = replies(&fake);
    assert_eq!(per_chat.len(), MESSAGES as usize, "every message answered");
    let twice: Vec<_> = per_chat.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    assert!(
        queue.poisoned().await.unwrap().is_empty(),
        "nothing poisoned"
    );
    eprintln!(
        "scale: {one_worker:.0} messages/s with one worker, {two_workers:.0} with two; {retried} webhook retries"
    );
    if retried > 0 {
        let errors: Vec<_> = ingress
            .log()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .map(str::to_owned)
            .collect();
        eprintln!(
            "scale: ingress errors behind the retries:\n{}",
            errors.join("\n")
        );
    }
}
