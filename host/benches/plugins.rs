//! The plugin store: time from a new version's files landing in the watched directory to the
//! first call answered by that version (each version is new bytes, so this includes compiling
//! it), over 50 swaps of the small probe fixture and a few of the 1.6 MB bash skill; and the
//! memory each loaded plugin holds.
//!
//! Run with `cargo bench --bench plugins` after `scripts/build-skills`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use molten::plugins::{DirStore, PluginFiles, PluginPolicy, PluginStore, Plugins};
use molten::skills::{CallContext, Registry, Runtime, RuntimeConfig};

const PROBE_SWAPS: usize = 50;
const BASH_SWAPS: usize = 5;
const LOADED: usize = 20;

/// `wasm` with a custom section naming `n` appended: a new component (new digest, compiled
/// afresh) that behaves as the original.
fn variant(wasm: &[u8], n: usize) -> Vec<u8> {
    let name = format!("molten-bench-{n}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // size (< 128, one LEB128 byte)
    out.extend_from_slice(&section);
    out
}

struct Setup {
    registry: Arc<Registry>,
    plugins: Arc<Plugins>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn setup(runtime: &Arc<Runtime>, dir: &Path) -> Setup {
    let registry = Arc::new(Registry::load(runtime.clone(), &[], &Default::default()).await);
    let store: Arc<dyn PluginStore> = Arc::new(DirStore::open(dir).expect("plugin dir"));
    let plugins = Arc::new(Plugins::new(
        store,
        registry.clone(),
        PluginPolicy {
            poll: Duration::from_secs(2),
            ..Default::default()
        },
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(plugins.clone().run(shutdown));
    Setup {
        registry,
        plugins,
        _stop: stop,
    }
}

/// Swaps `count` new versions of skill `name` in and times each from the files landing to the
/// first call (with `arguments`) that the new version answered.
async fn swaps(
    setup: &Setup,
    name: &str,
    wasm: &[u8],
    manifest: &[u8],
    arguments: &str,
    count: usize,
) -> Vec<Duration> {
    let context = CallContext::new("bench", "bench");
    let mut samples = Vec::new();
    for n in 0..count {
        let component = variant(wasm, n);
        let digest = molten::plugins::signature::digest(&component);
        let files = PluginFiles {
            component: Some(component),
            manifest: Some(manifest.to_vec()),
            signature: None,
        };
        let landed = Instant::now();
        setup.plugins.store().put(name, &files).await.expect("put");
        loop {
            let live = setup.registry.get(name).is_some_and(|s| {
                matches!(s.origin(), molten::skills::Origin::Plugin { digest: d, .. } if *d == digest)
            });
            if live {
                setup
                    .registry
                    .invoke(name, arguments, &context)
                    .await
                    .expect("call");
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(landed.elapsed());
    }
    samples
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = |dir: &str, file: &str| -> PathBuf {
        let path = root.join("target").join(dir).join(file);
        assert!(
            path.is_file(),
            "{} is missing: run scripts/build-skills first",
            path.display()
        );
        path
    };
    let probe = std::fs::read(built("test-skills", "probe.wasm")).unwrap();
    let bash = std::fs::read(built("skills", "bash.wasm")).unwrap();
    let bash_manifest = std::fs::read(built("skills", "bash.toml")).unwrap();
    let probe_manifest = b"name = \"probe\"\ndescription = \"bench\"\n".to_vec();
    let work = tempfile::tempdir().expect("temp dir");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        // No compile cache: every version is compiled, as a new plugin is.
        let runtime = Arc::new(
            Runtime::new(RuntimeConfig {
                cache_dir: None,
                ..RuntimeConfig::in_data_dir(work.path())
            })
            .expect("engine"),
        );
        let probe_args = r#"{"mode":"version"}"#;
        let started = Instant::now();
        let store = setup(&runtime, &work.path().join("probe")).await;
        let samples = swaps(&store, "probe", &probe, &probe_manifest, probe_args, PROBE_SWAPS).await;
        common::report(
            &format!("probe swap ({} KiB)", probe.len() >> 10),
            started.elapsed(),
            samples,
        );

        let started = Instant::now();
        let store = setup(&runtime, &work.path().join("bash")).await;
        let samples = swaps(
            &store,
            "bash",
            &bash,
            &bash_manifest,
            r#"{"command":"echo hi"}"#,
            BASH_SWAPS,
        )
        .await;
        common::report(
            &format!("bash swap ({} KiB)", bash.len() >> 10),
            started.elapsed(),
            samples,
        );

        // Memory: LOADED distinct versions of the probe live at once, each in its own registry.
        let before = rss_kib();
        let mut held = Vec::new();
        for n in 0..LOADED {
            let store = setup(&runtime, &work.path().join(format!("mem{n}"))).await;
            let files = PluginFiles {
                component: Some(variant(&probe, 1000 + n)),
                manifest: Some(probe_manifest.clone()),
                signature: None,
            };
            store.plugins.store().put("probe", &files).await.unwrap();
            store.plugins.sync().await.unwrap();
            assert!(store.registry.get("probe").is_some());
            held.push(store);
        }
        let per_plugin = (rss_kib().saturating_sub(before)) / LOADED as u64;
        println!(
            "memory          {per_plugin} KiB of RSS per loaded probe plugin ({} KiB component), {LOADED} loaded",
            probe.len() >> 10
        );
    });
}
