//! The per-call cost of a skill by language: the Rust, Python and JavaScript project templates
//! of `molten skill new`, built as an author would, each called with a trivial request that
//! ends in an error (Rust and Python: a file that does not exist; JavaScript, which has no
//! files: rows without columns) on a fresh instance, in the same run. Also the size of each
//! component and its first compile.
//!
//! Run with `cargo bench --bench languages` after `scripts/build-skills` (the Rust template
//! reuses its guest target directory; the Python one installs componentize-py if missing).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use molten::authoring::{build, scaffold};
use molten::skills::{CallContext, Registry, Runtime, RuntimeConfig};

const CALLS: usize = 300;
const WARMUP: usize = 20;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().expect("temp dir");
    // The Rust template reuses the standard library scripts/build-skills built for wasm.
    std::env::set_var("CARGO_TARGET_DIR", root.join("target/guest"));
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::in_data_dir(work.path())
        })
        .expect("engine"),
    );
    for (lang, name, arguments) in [
        (
            scaffold::Lang::Rust,
            "bench_rust",
            r#"{"path":"/tmp/none.txt"}"#,
        ),
        (
            scaffold::Lang::Python,
            "bench_python",
            r#"{"path":"/tmp/none.csv"}"#,
        ),
        (scaffold::Lang::Js, "bench_js", r#"{"rows":[{}]}"#),
    ] {
        let project = work.path().join(name);
        scaffold::new(name, lang, &project).expect("scaffold");
        let built = build::build(&project).expect("build");
        let size = std::fs::metadata(&built.component).expect("built").len();
        let dist = built.component.parent().unwrap().to_owned();
        let compiling = Instant::now();
        let registry = tokio.block_on(Registry::load(
            runtime.clone(),
            &[dist],
            &Default::default(),
        ));
        assert!(registry.get(name).is_some(), "{:?}", registry.errors());
        println!(
            "{lang:?}: component {} KiB, compiled in {:.2?}",
            size >> 10,
            compiling.elapsed()
        );
        let context = CallContext::new("bench", "bench");
        let call = || async {
            let started = Instant::now();
            let result = registry.invoke(name, arguments, &context).await;
            assert!(result.is_err(), "every call is refused by the skill");
            started.elapsed()
        };
        let samples = tokio.block_on(async {
            for _ in 0..WARMUP {
                call().await;
            }
            let mut samples = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                samples.push(call().await);
            }
            samples
        });
        let total = samples.iter().sum();
        common::report(&format!("{lang:?} call"), total, samples);
    }
}
