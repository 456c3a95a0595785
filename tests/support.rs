//! Shared test setup: temp dirs, a runtime per test, paths of the built components.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use molten::skills::{CallContext, Grants, InvokeError, Registry, Runtime, RuntimeConfig};
use serde_json::Value;
use tempfile::TempDir;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// A file produced by `scripts/build-skills`, e.g. `built("skills", "text_editor.wasm")`.
pub fn built(dir: &str, file: &str) -> PathBuf {
    let path = root().join("target").join(dir).join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-skills (scripts/test does) before cargo test",
        path.display()
    );
    path
}

/// A temp dir under `target/tmp`, so that no host path in a test starts with `/tmp`, which is
/// what skills see their sandbox as.
pub fn temp_dir() -> TempDir {
    let base = root().join("target").join("tmp");
    std::fs::create_dir_all(&base).expect("create target/tmp");
    tempfile::tempdir_in(base).expect("create temp dir")
}

/// One runtime with its own data dir, sharing the compiled-component cache with other tests.
pub struct Host {
    pub registry: Registry,
    pub dir: TempDir,
}

impl Host {
    /// Loads the skills in `dirs`.
    pub async fn load(dirs: &[PathBuf]) -> Self {
        Self::load_in(temp_dir(), dirs).await
    }

    /// Loads the skills in `dirs`, keeping sandboxes in `dir`.
    pub async fn load_in(dir: TempDir, dirs: &[PathBuf]) -> Self {
        Self::load_granted(dir, dirs, &Grants::default()).await
    }

    /// Loads the skills in `dirs` with the operator's `grants`, keeping sandboxes in `dir`.
    pub async fn load_granted(dir: TempDir, dirs: &[PathBuf], grants: &Grants) -> Self {
        Self::load_with(dir, dirs, grants, molten::skills::DEFAULT_QUOTA_BYTES).await
    }

    async fn load_with(dir: TempDir, dirs: &[PathBuf], grants: &Grants, quota: u64) -> Self {
        Self::load_config(
            dir,
            dirs,
            grants,
            RuntimeConfig {
                sandbox_quota: quota,
                ..RuntimeConfig::in_data_dir(Path::new(""))
            },
        )
        .await
    }

    /// Loads the skills in `dirs` on a runtime configured as `config` says, but for where
    /// sandboxes (in `dir`) and the compile cache (shared) live.
    async fn load_config(
        dir: TempDir,
        dirs: &[PathBuf],
        grants: &Grants,
        config: RuntimeConfig,
    ) -> Self {
        let runtime = Runtime::new(RuntimeConfig {
            sandbox_root: dir.path().join("sandboxes"),
            cache_dir: Some(root().join("target").join("test-cache")),
            ..config
        })
        .expect("engine starts");
        let registry = Registry::load(Arc::new(runtime), dirs, grants).await;
        Self { registry, dir }
    }

    /// The built-in skills with sandboxes of at most `max_files` entries.
    pub async fn with_max_files(max_files: u64) -> Self {
        let skills = [root().join("target").join("skills")];
        let config = RuntimeConfig {
            sandbox_max_files: max_files,
            ..RuntimeConfig::in_data_dir(Path::new(""))
        };
        Self::load_config(temp_dir(), &skills, &Grants::default(), config).await
    }

    /// The built-in skills with sandboxes of `quota` bytes.
    pub async fn with_quota(quota: u64) -> Self {
        let skills = [root().join("target").join("skills")];
        Self::load_with(temp_dir(), &skills, &Grants::default(), quota).await
    }

    /// The built-in skills, all of which must load.
    pub async fn builtin() -> Self {
        let host = Self::load(&[root().join("target").join("skills")]).await;
        assert!(
            host.registry.errors().is_empty(),
            "{:?}",
            host.registry.errors()
        );
        assert!(host.registry.get("text_editor").is_some());
        host
    }

    /// The probe fixture under a manifest whose `[limits]` and `[capabilities]` are `sections`.
    pub async fn probe(sections: &str) -> Self {
        Self::probe_with(sections, molten::skills::default_total_memory()).await
    }

    /// [`Host::probe`] on a runtime whose skills may hold `total_memory` bytes together.
    pub async fn probe_with(sections: &str, total_memory: u64) -> Self {
        let dir = temp_dir();
        let skills = dir.path().join("skills");
        let probe = std::fs::read(built("test-skills", "probe.wasm")).unwrap();
        install(
            &skills,
            "probe",
            &probe,
            &format!("name = \"probe\"\ndescription = \"test fixture\"\n{sections}\n"),
        );
        let config = RuntimeConfig {
            max_total_memory: total_memory,
            ..RuntimeConfig::in_data_dir(Path::new(""))
        };
        let host = Self::load_config(dir, &[skills], &Grants::default(), config).await;
        assert!(
            host.registry.errors().is_empty(),
            "{:?}",
            host.registry.errors()
        );
        host
    }

    /// Calls `skill` as `user` with `args`.
    pub async fn call(&self, skill: &str, user: &str, args: Value) -> Result<String, InvokeError> {
        self.registry
            .invoke(
                skill,
                &args.to_string(),
                &CallContext::new(user, "test-session"),
            )
            .await
    }

    /// `text_editor` as `user`, expecting success.
    pub async fn edit(&self, user: &str, args: Value) -> String {
        self.call("text_editor", user, args.clone())
            .await
            .unwrap_or_else(|e| panic!("text_editor {args} failed: {e}"))
    }

    /// `text_editor` as `user`, expecting an error.
    pub async fn edit_err(&self, user: &str, args: Value) -> InvokeError {
        match self.call("text_editor", user, args.clone()).await {
            Ok(out) => panic!("text_editor {args} succeeded: {out}"),
            Err(e) => e,
        }
    }

    /// The host directory that `user`'s skills see as `/tmp`.
    pub fn sandbox(&self, user: &str) -> PathBuf {
        self.dir.path().join("sandboxes").join(user)
    }
}

/// Writes `name.wasm` (`wasm`) and `name.toml` (`manifest`) into the skills dir `skills`.
pub fn install(skills: &Path, name: &str, wasm: &[u8], manifest: &str) {
    std::fs::create_dir_all(skills).unwrap();
    std::fs::write(skills.join(format!("{name}.wasm")), wasm).unwrap();
    std::fs::write(skills.join(format!("{name}.toml")), manifest).unwrap();
}

/// Points `<data>/cache/components` at the compile cache the tests share, so that a `molten`
/// process in a fresh data directory does not compile every skill again.
pub fn share_compile_cache(data: &Path) {
    let cache = data.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let shared = root().join("target").join("test-cache");
    std::fs::create_dir_all(&shared).unwrap();
    let _ = std::os::unix::fs::symlink(&shared, cache.join("components"));
}

/// `molten skill run SKILL ARGS` with `config` in a fresh data directory and `env` set;
/// returns success, stdout and stderr. Blocks: call it off the async runtime.
pub fn skill_run(
    config: &str,
    skill: &str,
    args: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let dir = temp_dir();
    share_compile_cache(dir.path());
    let path = dir.path().join("molten.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_molten"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--skills-dir")
        .arg(root().join("target").join("skills"))
        .args(["skill", "run", skill, args])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
