//! `echo hi | wc -c` through the bash skill (fresh store, instance, shell, pipeline) against
//! `bash -c` as a subprocess, which is what the reference system runs, in the same run.
//!
//! Run with `cargo bench --bench bash` after `scripts/build-skills`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use molten::skills::{CallContext, Registry, Runtime, RuntimeConfig};

const SKILL_CALLS: usize = 2_000;
const SUBPROCESS_SPAWNS: usize = 500;
const WARMUP: usize = 100;
const SCRIPT: &str = "echo hi | wc -c";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let skills = root.join("target/skills");
    assert!(
        skills.join("bash.wasm").is_file(),
        "target/skills/bash.wasm is missing: run scripts/build-skills first"
    );
    let work = tempfile::tempdir().expect("temp dir");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(RuntimeConfig {
        sandbox_root: work.path().join("sandboxes"),
        cache_dir: Some(root.join("target/bench-cache")),
        sandbox_quota: molten::skills::DEFAULT_QUOTA_BYTES,
        max_total_memory: molten::skills::default_total_memory(),
        sandbox_max_files: molten::skills::DEFAULT_MAX_FILES,
    })
    .expect("engine");
    let registry = tokio.block_on(Registry::load(
        Arc::new(runtime),
        &[skills],
        &Default::default(),
    ));
    assert!(registry.get("bash").is_some(), "{:?}", registry.errors());
    let context = CallContext::new("bench", "bench");
    let arguments = serde_json::json!({ "command": SCRIPT }).to_string();

    println!("`{SCRIPT}`");
    let samples = tokio.block_on(async {
        let call = async || {
            let out = registry
                .invoke("bash", &arguments, &context)
                .await
                .expect("bash skill");
            assert!(out.contains(r#""stdout":"3\n""#), "{out}");
        };
        for _ in 0..WARMUP {
            call().await;
        }
        let mut samples = Vec::with_capacity(SKILL_CALLS);
        for _ in 0..SKILL_CALLS {
            let start = Instant::now();
            call().await;
            samples.push(start.elapsed());
        }
        samples
    });
    let total = samples.iter().sum::<Duration>();
    common::report("bash skill", total, samples);

    let samples: Vec<Duration> = (0..SUBPROCESS_SPAWNS)
        .map(|_| {
            let start = Instant::now();
            let out = std::process::Command::new("bash")
                .args(["-c", SCRIPT])
                .output()
                .expect("spawn bash");
            assert_eq!(out.stdout, b"3\n");
            start.elapsed()
        })
        .collect();
    let total = samples.iter().sum::<Duration>();
    common::report("bash -c", total, samples);
}
