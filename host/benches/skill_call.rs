//! Per-call overhead of a skill (fresh store + instance + call) against spawning
//! `python3 -c pass`, which is what the reference system pays for every skill call.
//!
//! Run with `cargo bench --bench skill_call` after `scripts/build-skills`. Prints p50/p90/p99.
//! `-- skill` or `-- subprocess` runs one half (e.g. to profile it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use molten::skills::{CallContext, Registry, Runtime, RuntimeConfig};

const SKILL_CALLS: usize = 20_000;
const WARMUP_CALLS: usize = 2_000;
const SUBPROCESS_SPAWNS: usize = 200;

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let skill = wanted("skill").then(bench_skill_calls);
    let subprocess = wanted("subprocess").then(bench_subprocess);
    if let (Some(skill), Some(subprocess)) = (skill, subprocess) {
        let ratio = subprocess.p50.as_secs_f64() / skill.p50.as_secs_f64();
        println!("ratio (p50, subprocess / skill without filesystem): {ratio:.0}x");
    }
}

/// Returns the figures of the call without filesystem.
fn bench_skill_calls() -> Stats {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let probe = root.join("target/test-skills/probe.wasm");
    assert!(
        probe.is_file(),
        "{} is missing: run scripts/build-skills first",
        probe.display()
    );
    let work = tempfile::tempdir().expect("temp dir");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    println!("skill call: fresh store + instance + invoke of a trivial skill, {SKILL_CALLS} calls");
    let mut results = Vec::new();
    for (label, filesystem) in [
        ("no filesystem", "none"),
        ("with sandbox preopen", "sandbox"),
    ] {
        let dir = work.path().join(filesystem);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&probe, dir.join("probe.wasm")).unwrap();
        std::fs::write(
            dir.join("probe.toml"),
            format!("name = \"probe\"\ndescription = \"bench\"\n[capabilities]\nfilesystem = \"{filesystem}\"\n"),
        )
        .unwrap();
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
            &[dir],
            &Default::default(),
        ));
        assert!(registry.errors().is_empty(), "{:?}", registry.errors());
        let context = CallContext::new("bench", "bench");
        let samples = tokio.block_on(async {
            for _ in 0..WARMUP_CALLS {
                call(&registry, &context).await;
            }
            let mut samples = Vec::with_capacity(SKILL_CALLS);
            for _ in 0..SKILL_CALLS {
                let start = Instant::now();
                call(&registry, &context).await;
                samples.push(start.elapsed());
            }
            samples
        });
        let stats = Stats::of(samples);
        println!("  {label:<22} {stats}");
        results.push(stats);
    }
    results.swap_remove(0)
}

fn bench_subprocess() -> Stats {
    let python = real_python().expect("python3 on PATH");
    println!("subprocess: `python3 -c pass`, {SUBPROCESS_SPAWNS} spawns");
    let samples = (0..SUBPROCESS_SPAWNS)
        .map(|_| {
            let start = Instant::now();
            let status = std::process::Command::new(&python)
                .args(["-c", "pass"])
                .status()
                .expect("spawn python3");
            assert!(status.success());
            start.elapsed()
        })
        .collect();
    let subprocess = Stats::of(samples);
    println!("  {:<22} {subprocess}", "python3 -c pass");
    subprocess
}

async fn call(registry: &Registry, context: &CallContext) {
    let out = registry
        .invoke("probe", r#"{"mode":"echo"}"#, context)
        .await
        .expect("probe echo");
    assert_eq!(out.len(), 15);
}

/// The python3 interpreter itself: `python3` on PATH may be a shell shim (pyenv) that would
/// add its own start-up to every spawn.
fn real_python() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    path.is_file().then_some(path)
}

struct Stats {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    mean: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            mean,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>9.1?}  p90 {:>9.1?}  p99 {:>9.1?}  mean {:>9.1?}",
            self.p50, self.p90, self.p99, self.mean
        )
    }
}
