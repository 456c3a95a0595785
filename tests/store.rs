//! The Store contract, run against the embedded SQLite store and against the Azure store (Blob
//! and Table storage) on Azurite.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use molten::store::{
    AzureStore, Claim, SessionMessage, SkillCallRecord, SqliteStore, Store, UsageRecord,
};
use molten::usage;
use tempfile::TempDir;

use crate::azurite::{azurite, unique};
use crate::support::temp_dir;

/// Where a test's state lives; every `open` is a new handle on the same state.
enum Backend {
    /// The directory lives as long as the backend.
    Sqlite {
        _dir: TempDir,
        path: PathBuf,
    },
    Azure {
        container: String,
        tables: String,
    },
}

impl Backend {
    fn sqlite() -> Self {
        let dir = temp_dir();
        let path = dir.path().join("state.db");
        Backend::Sqlite { _dir: dir, path }
    }

    fn azure() -> Self {
        Backend::Azure {
            container: unique("c"),
            tables: unique("t"),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).unwrap()),
            Backend::Azure { container, tables } => Arc::new(
                AzureStore::open(&azurite().account(), container, tables)
                    .await
                    .unwrap(),
            ),
        }
    }
}

contract!(
    sessions_append_keep_the_newest_and_expire,
    concurrent_appends_lose_nothing,
    replied_marks_and_the_cache,
    one_queued_copy_of_a_message_holds_its_claim,
    concurrent_copies_claim_a_message_once,
    usage_and_skill_log_add_up,
    concurrent_adds_to_a_counter_are_exact,
    concurrent_usage_adds_up_exactly,
    skills_switched_off_are_shared,
);

fn msg(role: &str, content: &str) -> SessionMessage {
    SessionMessage {
        role: role.into(),
        content: content.into(),
    }
}

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn sessions_append_keep_the_newest_and_expire(backend: Backend) {
    let store = backend.open().await;
    assert!(store.session("telegram:1", DAY).await.unwrap().is_empty());
    store
        .append_session("telegram:1", &[msg("user", "a"), msg("assistant", "b")], 3)
        .await
        .unwrap();
    store
        .append_session("telegram:1", &[msg("user", "c"), msg("assistant", "d")], 3)
        .await
        .unwrap();
    let kept = store.session("telegram:1", DAY).await.unwrap();
    assert_eq!(
        kept,
        vec![
            msg("assistant", "b"),
            msg("user", "c"),
            msg("assistant", "d")
        ]
    );
    assert!(
        store.session("telegram:2", DAY).await.unwrap().is_empty(),
        "chats are separate"
    );

    // Idle longer than the TTL: a fresh start, and pruning removes it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let ttl = Duration::from_millis(10);
    assert!(store.session("telegram:1", ttl).await.unwrap().is_empty());
    store.prune(DAY, ttl).await.unwrap();
    assert!(store.session("telegram:1", DAY).await.unwrap().is_empty());
}

async fn concurrent_appends_lose_nothing(backend: Backend) {
    // Two handles, as two workers have: neither overwrites the other's turn.
    let stores = [backend.open().await, backend.open().await];
    let store = stores[0].clone();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .append_session("slack:C1", &[msg("user", &i.to_string())], 100)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.session("slack:C1", DAY).await.unwrap().len(), 20);
}

async fn concurrent_adds_to_a_counter_are_exact(backend: Backend) {
    // Two handles, as two replicas have: every add counts once.
    let stores = [backend.open().await, backend.open().await];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .add_to_counter("usd:ada:20261202", 0.25, DAY)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    let total = stores[0]
        .add_to_counter("usd:ada:20261202", 0.0, DAY)
        .await
        .unwrap();
    assert_eq!(total, 5.0);
    // Each add saw its own total: no two adds were merged into one.
    seen.sort_by(f64::total_cmp);
    seen.dedup();
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert_eq!(
        stores[1]
            .add_to_counter("usd:bob:20261202", 0.0, DAY)
            .await
            .unwrap(),
        0.0,
        "counters are separate"
    );
}

async fn replied_marks_and_the_cache(backend: Backend) {
    let store = backend.open().await;
    assert!(!store.replied("telegram:5").await.unwrap());
    store.mark_replied("telegram:5").await.unwrap();
    store.mark_replied("telegram:5").await.unwrap();
    assert!(store.replied("telegram:5").await.unwrap());

    assert_eq!(store.cache_get("k").await.unwrap(), None);
    store.cache_put("k", "v1", DAY).await.unwrap();
    store.cache_put("k", "v2", DAY).await.unwrap();
    assert_eq!(store.cache_get("k").await.unwrap().as_deref(), Some("v2"));
    store
        .cache_put("short", "x", Duration::from_millis(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(store.cache_get("short").await.unwrap(), None, "expired");

    // Old reply marks are pruned.
    store.prune(Duration::from_millis(10), DAY).await.unwrap();
    assert!(!store.replied("telegram:5").await.unwrap());
}

async fn one_queued_copy_of_a_message_holds_its_claim(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.claim("telegram:9", "m1").await.unwrap(), Claim::Mine);
    // A redelivery of the same copy keeps its claim; another copy is turned away.
    assert_eq!(store.claim("telegram:9", "m1").await.unwrap(), Claim::Mine);
    assert_eq!(store.claim("telegram:9", "m2").await.unwrap(), Claim::Taken);
    assert!(
        !store.replied("telegram:9").await.unwrap(),
        "a claim is no reply"
    );
    assert_eq!(store.claim("telegram:10", "m2").await.unwrap(), Claim::Mine);

    store.mark_replied("telegram:9").await.unwrap();
    assert!(store.replied("telegram:9").await.unwrap());
    for copy in ["m1", "m2", "m3"] {
        assert_eq!(
            store.claim("telegram:9", copy).await.unwrap(),
            Claim::Replied
        );
    }
    // A reply mark written without a claim (an apology for a message that was never claimed).
    store.mark_replied("telegram:11").await.unwrap();
    assert_eq!(
        store.claim("telegram:11", "m4").await.unwrap(),
        Claim::Replied
    );

    // Claims are pruned with the reply marks.
    tokio::time::sleep(Duration::from_millis(30)).await;
    store.prune(Duration::from_millis(10), DAY).await.unwrap();
    assert_eq!(store.claim("telegram:10", "m5").await.unwrap(), Claim::Mine);
}

async fn concurrent_copies_claim_a_message_once(backend: Backend) {
    // Two handles, as two workers leasing two copies at the same instant have.
    let stores = [backend.open().await, backend.open().await];
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move { store.claim("slack:C1:2.0", &format!("copy{i}")).await })
        })
        .collect();
    let mut mine = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Claim::Mine => mine += 1,
            Claim::Taken => {}
            Claim::Replied => panic!("nothing was replied"),
        }
    }
    assert_eq!(mine, 1, "exactly one copy answers");
}

async fn usage_and_skill_log_add_up(backend: Backend) {
    let store = backend.open().await;
    for (prompt, completion, cost) in [(100, 20, 0.01), (50, 5, 0.002)] {
        store
            .record_usage(&UsageRecord {
                user: "telegram:1".into(),
                model: "m".into(),
                llm_calls: 2,
                prompt_tokens: prompt,
                completion_tokens: completion,
                cost_usd: cost,
            })
            .await
            .unwrap();
    }
    for success in [true, false, true] {
        store
            .record_skill_call(&SkillCallRecord {
                user: "telegram:1".into(),
                session: "telegram:1".into(),
                skill: "text_editor".into(),
                parameters: "{}".into(),
                success,
                error: (!success).then(|| "error: denied".into()),
                duration: Duration::from_millis(3),
            })
            .await
            .unwrap();
    }
    let today = usage::today();
    let rows = store.rollups(today - 1, today).await.unwrap();
    assert_eq!(
        rows.len(),
        2,
        "one row for the user's messages, one for the skill: {rows:?}"
    );
    assert!(store
        .rollups(today - 30, today - 1)
        .await
        .unwrap()
        .is_empty());
    let report = usage::report(
        &rows,
        &usage::Query {
            user: None,
            skill: None,
            since: today,
            until: today,
        },
    );
    assert_eq!(report.total.messages, 2);
    assert_eq!(
        (report.total.prompt_tokens, report.total.completion_tokens),
        (150, 25)
    );
    assert!((report.total.cost_usd - 0.012).abs() < 1e-12);
    assert_eq!((report.skill_calls, report.skill_failures), (3, 1));
    assert_eq!(report.users[0].user, "telegram:1");
    assert_eq!(report.skills[0].skill, "text_editor");
    assert_eq!(report.skills[0].p95_ms, 3);
}

/// Running totals are read, added to and written back: two replicas adding at once must not
/// lose either's addition.
async fn concurrent_usage_adds_up_exactly(backend: Backend) {
    let store = backend.open().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record_usage(&UsageRecord {
                        user: "slack:U1".into(),
                        model: "m".into(),
                        llm_calls: 1,
                        prompt_tokens: 10,
                        completion_tokens: i,
                        cost_usd: 0.5,
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let today = usage::today();
    let rows = store.rollups(today, today).await.unwrap();
    assert_eq!(rows.len(), 1);
    let totals = &rows[0].totals;
    assert_eq!((totals.messages, totals.prompt_tokens), (8, 80));
    assert_eq!(totals.completion_tokens, (0..8).sum::<u64>());
    assert!((totals.cost_usd - 4.0).abs() < 1e-12);
}

async fn skills_switched_off_are_shared(backend: Backend) {
    let (one, two) = (backend.open().await, backend.open().await);
    assert!(one.switched_off().await.unwrap().is_empty());
    one.switch_skill("bash", true).await.unwrap();
    one.switch_skill("web_search", true).await.unwrap();
    one.switch_skill("bash", true).await.unwrap();
    assert_eq!(two.switched_off().await.unwrap(), ["bash", "web_search"]);
    two.switch_skill("bash", false).await.unwrap();
    two.switch_skill("never_off", false).await.unwrap();
    assert_eq!(one.switched_off().await.unwrap(), ["web_search"]);
}

#[tokio::test]
async fn reply_marks_from_before_claims_still_count() {
    let dir = temp_dir();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE replied (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
             INSERT INTO replied VALUES ('telegram:1', 1);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.replied("telegram:1").await.unwrap());
    assert_eq!(
        store.claim("telegram:1", "m1").await.unwrap(),
        Claim::Replied
    );
    assert_eq!(store.claim("telegram:2", "m2").await.unwrap(), Claim::Mine);
    drop(store);
    // Opening again does not migrate twice.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.claim("telegram:2", "m3").await.unwrap(), Claim::Taken);
}

#[tokio::test]
async fn usage_logged_before_running_totals_is_added_up_once() {
    let dir = temp_dir();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    {
        // What an earlier molten left: logs, no running totals.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE usage_daily;
             INSERT INTO usage (at_ms, user, model, llm_calls, prompt_tokens, completion_tokens,
                                cost_usd)
             VALUES (86400000, 'telegram:1', 'm', 1, 10, 2, 0.25),
                    (86400001, 'telegram:1', 'm', 1, 5, 1, 0.25);
             INSERT INTO skill_log (at_ms, user, session, skill, parameters, success, error,
                                    duration_ms)
             VALUES (86400002, 'telegram:1', 's', 'bash', '{}', 0, 'error: x', 7);",
        )
        .unwrap();
    }
    for _ in 0..2 {
        let store = SqliteStore::open(&path).unwrap();
        let rows = store.rollups(0, 5).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        let report = usage::report(
            &rows,
            &usage::Query {
                user: None,
                skill: None,
                since: 1,
                until: 1,
            },
        );
        assert_eq!((report.total.messages, report.total.prompt_tokens), (2, 15));
        assert_eq!((report.skill_calls, report.skill_failures), (1, 1));
    }
}
