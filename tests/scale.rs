//! Scale-out on Azure Storage (Azurite): one ingress replica and two worker replicas of the real
//! `molten serve` binary share one queue and one store. 1,000 Telegram messages go in, the
//! ingress is `kill -9`'d three times while webhooks are in flight, one worker is `kill -9`'d
//! mid-run, and every message is answered exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use molten::queue::{AzureQueue, WorkQueue};

use crate::azurite::{azurite, Names};
use crate::fakes::{config, post_telegram, Fake, Molten};

const MESSAGES: i64 = 1_000;
/// Each message is its own chat, so a reply's chat id names the message it answers.
const FIRST_CHAT: i64 = 500_000;

/// Posts updates `range` to the ingress at `url`, 16 at a time, counting each acknowledged one
/// in `acked`; retries a 503 or no answer at all (a killed ingress) as Telegram does; returns
/// how many retries there were.
async fn post(url: &str, range: std::ops::Range<i64>, acked: &AtomicUsize) -> usize {
    let retries: Vec<usize> = futures::stream::iter(range)
        .map(|i| async move {
            for attempt in 0..100 {
                match post_telegram(url, i, FIRST_CHAT + i, &format!("message {i}")).await {
                    Ok(response) if response.status() == 200 => {
                        acked.fetch_add(1, Ordering::SeqCst);
                        return attempt;
                    }
                    Ok(response) if response.status() != 503 => {
                        panic!("update {i} refused with {}", response.status())
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
            panic!("update {i} not acknowledged in 100 tries");
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
async fn two_workers_answer_a_thousand_messages_exactly_once_through_kills() {
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
    let mut ingress = Molten::start(&settings, &["--role", "ingress"]).await;
    let url = ingress.url.clone();
    let acked = AtomicUsize::new(0);
    let one = Molten::start(&settings, &["--role", "worker"]).await;

    // One worker.
    let start = Instant::now();
    let mut retried = post(&url, 0..300, &acked).await;
    fake.wait_for("/sendMessage", 300, Duration::from_secs(300))
        .await;
    let one_worker = rate(300, start);

    // Two workers.
    let mut two = Molten::start(&settings, &["--role", "worker"]).await;
    let start = Instant::now();
    let posting = async { retried += post(&url, 300..MESSAGES, &acked).await };
    // Kill the ingress while 16 webhooks are in flight, three times: whatever step of accepting
    // a webhook each kill cuts, the platform's resend must not lose the message.
    let killing_ingress = async {
        for at in [400, 550, 700] {
            while acked.load(Ordering::SeqCst) < at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ingress.kill();
            ingress.restart().await;
        }
    };
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
    let ((), two_workers, ()) = tokio::join!(posting, killing, killing_ingress);
    // Platforms resend; those must not be answered again.
    retried += post(&url, 0..50, &acked).await;
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
    assert!(retried >= 3, "the ingress kills cut webhooks in flight");
    let copies_dropped = [&one, &two]
        .iter()
        .map(|w| w.log().matches("another queued copy").count())
        .sum::<usize>();
    eprintln!(
        "scale: {one_worker:.0} messages/s with one worker, {two_workers:.0} with two; {retried} webhook retries; {copies_dropped} duplicate copies dropped by claims"
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
