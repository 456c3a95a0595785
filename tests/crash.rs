//! Crash recovery: the real `molten serve` is made to die (abort, as `kill -9` would) at every
//! step boundary of accepting a webhook and of answering it, on SQLite and on Azurite. It is
//! started again, the platform resends what was not acknowledged, and the user gets exactly
//! one answer — except after a crash between sending a reply and recording it, the one window
//! where the README admits a second answer.
//!
//! The crash points exist only in a build with the `failpoints` feature, which `scripts/test`
//! uses (`cargo test --features failpoints`); without it this module is not compiled.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use molten::queue::{AzureQueue, Poisoned, SqliteQueue, WorkQueue};
use molten::worker::POISON_APOLOGY;
use serde_json::json;

use crate::azurite::{azurite, Names};
use crate::fakes::{config, Fake, Molten, Scripted};

const WAIT: Duration = Duration::from_secs(60);
const CHAT: i64 = 42;
const UPDATE: i64 = 7;

/// Where the queue and the store live.
enum Backend {
    Sqlite,
    Azure(Names),
}

impl Backend {
    fn sqlite() -> Self {
        Backend::Sqlite
    }

    fn azure() -> Self {
        Backend::Azure(Names::new())
    }

    fn section(&self) -> String {
        match self {
            Backend::Sqlite => String::new(),
            Backend::Azure(names) => names.section(&azurite().connection_string()),
        }
    }

    async fn queue(&self, molten: &Molten) -> Box<dyn WorkQueue> {
        match self {
            Backend::Sqlite => Box::new(SqliteQueue::open(&molten.data.join("queue.db")).unwrap()),
            Backend::Azure(names) => Box::new(
                AzureQueue::open(&azurite().account(), &names.queue, &names.tables)
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// What the user saw and what the queue kept once everything settled.
struct Settled {
    /// Texts sent to the chat, failed attempts included.
    sent: Vec<String>,
    poisoned: Vec<Poisoned>,
    /// The restarted molten's log.
    log: String,
}

impl Settled {
    fn answers(&self) -> usize {
        self.sent.iter().filter(|t| *t == "default answer").count()
    }

    fn apologies(&self) -> usize {
        self.sent.iter().filter(|t| *t == POISON_APOLOGY).count()
    }
}

/// Sends one Telegram update to a molten that aborts at crash point `point`, checks that it
/// died there, starts it again without the crash point, resends the update unless it was
/// acknowledged (as Telegram does), and waits until the queue is empty.
async fn crash_at(backend: &Backend, point: &str, fake: &Fake, worker: &str) -> Settled {
    crash_and_resend(backend, point, fake, worker, false).await
}

/// [`crash_at`]; with `hold`, every turn after the restart waits in the model until the queue
/// holds a single message, so that two queued copies of the update are answered at once if
/// they are answered at all.
async fn crash_and_resend(
    backend: &Backend,
    point: &str,
    fake: &Fake,
    worker: &str,
    hold: bool,
) -> Settled {
    let settings = config(
        fake,
        &format!(
            "{}\n[worker]\nvisibility_timeout_secs = 1\n{worker}",
            backend.section()
        ),
    );
    let failpoints = format!("{point}=return");
    let mut molten = Molten::start_with_env(&settings, &[], &[("FAILPOINTS", &failpoints)]).await;
    let acknowledged = matches!(
        molten.try_telegram(UPDATE, CHAT, "hello").await,
        Ok(response) if response.status() == 200
    );
    let status = molten.wait_exit(WAIT).await;
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "died at the crash point ({status}):\n{}",
        molten.log()
    );
    assert!(
        molten.log().contains(&format!("crash point {point}: aborting")),
        "{point} is not a crash point of this build (scripts/test builds with --features failpoints):\n{}",
        molten.log()
    );

    molten.clear_env();
    if hold {
        fake.hold_llm();
    }
    molten.restart().await;
    if !acknowledged {
        let resend = molten.telegram(UPDATE, CHAT, "hello").await;
        assert_eq!(resend.status(), 200, "the resend is acknowledged");
    }
    let queue = backend.queue(&molten).await;
    if hold {
        let deadline = Instant::now() + WAIT;
        while fake.parked_llm() == 0 || queue.depth().await.unwrap() > 1 {
            assert!(
                Instant::now() < deadline,
                "no single turn:\n{}",
                molten.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fake.release_llm();
    }
    fake.wait_for("/sendMessage", 1, WAIT).await;
    // Answering ends with deleting the message: an empty queue means nothing more is coming.
    let deadline = Instant::now() + WAIT;
    while queue.depth().await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "the queue did not drain:\n{}",
            molten.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = fake
        .requests("/sendMessage")
        .iter()
        .inspect(|r| assert_eq!(r.body["chat_id"], CHAT))
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    Settled {
        sent,
        poisoned: queue.poisoned().await.unwrap(),
        log: molten.log(),
    }
}

/// What `std::process::abort` dies of.
const SIGABRT: i32 = 6;

contract!(
    dying_after_queueing_before_recording_the_key_answers_once,
    dying_before_acknowledging_answers_once,
    dying_before_replying_answers_once,
    dying_between_reply_and_mark_answers_twice,
    dying_after_the_mark_answers_once,
    dying_after_saving_the_session_answers_once,
    dying_after_the_apology_apologises_once,
    dying_while_poisoning_apologises_once_and_keeps_the_message,
);

/// The message is queued, its dedupe key not yet recorded, no 200 sent (Azure: between the
/// send and the insert; SQLite: inside the transaction, which rolls back). On Azure the resend
/// queues a second copy while the first is still there: with both turns held in the model,
/// one copy's claim turns the other away.
async fn dying_after_queueing_before_recording_the_key_answers_once(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_and_resend(&backend, "enqueue_once.sent", &fake, "", true).await;
    assert_eq!(settled.sent, ["default answer"]);
    assert_eq!(fake.llm_requests().len(), 1, "one turn");
    if let Backend::Azure(_) = backend {
        assert!(
            settled
                .log
                .contains("another queued copy of this message answers it"),
            "{}",
            settled.log
        );
    }
}

/// Queued and recorded, the 200 not sent: the resend is a duplicate.
async fn dying_before_acknowledging_answers_once(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_at(&backend, "ingress.enqueued", &fake, "").await;
    assert_eq!(settled.sent, ["default answer"]);
}

async fn dying_before_replying_answers_once(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_at(&backend, "worker.answered", &fake, "").await;
    assert_eq!(settled.sent, ["default answer"]);
    assert_eq!(fake.llm_requests().len(), 2, "the turn ran again");
}

/// The one window of at-least-once delivery: the platform took the reply, nothing recorded it.
async fn dying_between_reply_and_mark_answers_twice(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_at(&backend, "worker.replied", &fake, "").await;
    assert_eq!(settled.answers(), 2, "{:?}", settled.sent);
}

async fn dying_after_the_mark_answers_once(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_at(&backend, "worker.marked", &fake, "").await;
    assert_eq!(settled.sent, ["default answer"]);
    assert_eq!(fake.llm_requests().len(), 1, "the redelivery was dropped");
}

async fn dying_after_saving_the_session_answers_once(backend: Backend) {
    let fake = Fake::start().await;
    let settled = crash_at(&backend, "worker.saved", &fake, "").await;
    assert_eq!(settled.sent, ["default answer"]);
    assert_eq!(fake.llm_requests().len(), 1, "the redelivery was dropped");
}

/// Telegram refuses the first reply for good, so the second delivery is past the limit and is
/// poisoned: the process dies after the apology, before the message is moved aside.
async fn dying_after_the_apology_apologises_once(backend: Backend) {
    let fake = Fake::start().await;
    fake.script_platform([blocked()]);
    let settled = crash_at(&backend, "worker.apologised", &fake, "max_deliveries = 1\n").await;
    assert_eq!(settled.apologies(), 1, "{:?}", settled.sent);
    assert_eq!(settled.poisoned.len(), 1, "kept for the operator");
}

/// As above, dying after the message was copied aside and before it left the queue (Azure;
/// on SQLite copy and delete are one transaction).
async fn dying_while_poisoning_apologises_once_and_keeps_the_message(backend: Backend) {
    let fake = Fake::start().await;
    fake.script_platform([blocked()]);
    let settled = crash_at(&backend, "poison.copied", &fake, "max_deliveries = 1\n").await;
    assert_eq!(settled.apologies(), 1, "{:?}", settled.sent);
    assert_eq!(settled.poisoned.len(), 1, "{:?}", settled.poisoned);
    assert!(
        settled.poisoned[0].reason.contains("1 deliveries"),
        "{:?}",
        settled.poisoned
    );
}

fn blocked() -> Scripted {
    Scripted::status(
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    )
}
