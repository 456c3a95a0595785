//! The plugin store: skills added, replaced and removed while molten runs, signatures, refusals
//! that never replace a working version, and the operator's policy. In process (the real
//! runtime, registry and directory store) and through the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use molten::plugins::{
    signature, DirStore, PluginFiles, PluginPolicy, PluginStore, Plugins, Trust,
};
use molten::skills::{
    CallContext, Grants, InvokeError, Origin, Policy, Registry, Runtime, RuntimeConfig, SkillGrant,
};
use serde_json::json;

use crate::fakes::{config, llm_text, llm_tool, Fake, Molten};
use crate::support::{built, root, temp_dir, Host};

const WAIT: Duration = Duration::from_secs(20);

/// The probe fixture's component, as version `A` (as built) or another letter (its version
/// string replaced in the bytes).
fn probe_wasm(version: char) -> Vec<u8> {
    let mut wasm = std::fs::read(built("test-skills", "probe.wasm")).unwrap();
    let marker = b"probe-version-A";
    let at = wasm
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the probe carries its version string");
    *wasm.get_mut(at + marker.len() - 1).unwrap() = version as u8;
    wasm
}

fn probe_manifest(extra: &str) -> Vec<u8> {
    format!("name = \"probe\"\ndescription = \"test fixture\"\n{extra}").into_bytes()
}

fn files(wasm: Vec<u8>, manifest: Vec<u8>, signature: Option<String>) -> PluginFiles {
    PluginFiles {
        component: Some(wasm),
        manifest: Some(manifest),
        signature: signature.map(String::into_bytes),
    }
}

fn signed(key: &SigningKey, wasm: Vec<u8>, manifest: Vec<u8>) -> PluginFiles {
    let sig = signature::sign(key, &wasm, &manifest);
    files(wasm, manifest, Some(sig))
}

/// A registry (built-in skills from `builtin`) kept in sync with a plugin directory.
struct Store {
    registry: Arc<Registry>,
    plugins: Arc<Plugins>,
    dir: PathBuf,
    _data: tempfile::TempDir,
}

impl Store {
    async fn new(builtin: &[PathBuf], grants: &Grants, policy: PluginPolicy) -> Self {
        let data = temp_dir();
        let runtime = Runtime::new(RuntimeConfig {
            sandbox_root: data.path().join("sandboxes"),
            cache_dir: Some(root().join("target").join("test-cache")),
            ..RuntimeConfig::in_data_dir(Path::new(""))
        })
        .unwrap();
        let registry = Arc::new(Registry::load(Arc::new(runtime), builtin, grants).await);
        let dir = data.path().join("plugins");
        let store: Arc<dyn PluginStore> = Arc::new(DirStore::open(&dir).unwrap());
        let plugins = Arc::new(Plugins::new(store, registry.clone(), policy));
        Self {
            registry,
            plugins,
            dir,
            _data: data,
        }
    }

    async fn plain() -> Self {
        Self::new(&[], &Grants::default(), policy(Trust::default())).await
    }

    /// Writes `files` as plugin `name` and scans.
    async fn put(&self, name: &str, files: &PluginFiles) {
        self.plugins.store().put(name, files).await.unwrap();
        self.plugins.sync().await.unwrap();
    }

    async fn call(&self, args: serde_json::Value) -> Result<String, InvokeError> {
        self.registry
            .invoke("probe", &args.to_string(), &CallContext::new("u", "s"))
            .await
    }

    async fn version(&self) -> String {
        self.call(json!({"mode": "version"})).await.unwrap()
    }

    /// The refusal recorded for plugin file `name`, as text.
    fn refusal(&self) -> String {
        let errors = self.registry.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].to_string()
    }
}

fn policy(trust: Trust) -> PluginPolicy {
    PluginPolicy {
        trust,
        replace_builtins: Default::default(),
        poll: Duration::from_millis(200),
    }
}

fn trusting(key: &SigningKey) -> Trust {
    Trust {
        keys: vec![key.verifying_key()],
        require_signatures: true,
        pins: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_replaced_under_load_without_a_failed_call() {
    let store = Store::plain().await;
    store
        .put("probe", &files(probe_wasm('A'), probe_manifest(""), None))
        .await;
    assert_eq!(store.version().await, "probe-version-A");
    let (_running, shutdown) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(store.plugins.clone().run(shutdown));

    // Four clients call it continuously while the files are replaced on disk.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (registry, stop) = (store.registry.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = registry
                    .invoke(
                        "probe",
                        r#"{"mode":"version"}"#,
                        &CallContext::new("u", "s"),
                    )
                    .await
                    .expect("no call fails while the plugin is replaced");
                if seen.last() != Some(&answer) {
                    seen.push(answer);
                }
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let replaced = Instant::now();
    store
        .plugins
        .store()
        .put("probe", &files(probe_wasm('B'), probe_manifest(""), None))
        .await
        .unwrap();
    while store.version().await != "probe-version-B" {
        assert!(replaced.elapsed() < WAIT, "the new version never went live");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("replaced in {:?}", replaced.elapsed());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        // Each client saw A, then B, and never A again.
        assert_eq!(
            client.await.unwrap(),
            ["probe-version-A", "probe-version-B"]
        );
    }

    // Removed from the store: gone from the registry.
    assert!(store.plugins.store().delete("probe").await.unwrap());
    let removed = Instant::now();
    while store.registry.get("probe").is_some() {
        assert!(removed.elapsed() < WAIT, "the plugin was never removed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        store.call(json!({"mode": "version"})).await,
        Err(InvokeError::UnknownSkill(_))
    ));
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_plugins_signed_by_a_trusted_key_load_and_a_refusal_keeps_the_good_version() {
    let key = SigningKey::from_bytes(&[11; 32]);
    let stranger = SigningKey::from_bytes(&[12; 32]);
    let store = Store::new(&[], &Grants::default(), policy(trusting(&key))).await;
    store
        .put("probe", &signed(&key, probe_wasm('A'), probe_manifest("")))
        .await;
    assert_eq!(store.version().await, "probe-version-A");
    let skill = store.registry.get("probe").unwrap();
    assert_eq!(
        skill.origin(),
        &Origin::Plugin {
            digest: signature::digest(&probe_wasm('A')),
            key: Some(signature::key_id(&key.verifying_key())),
        }
    );
    assert!(store.registry.errors().is_empty());

    let good = signed(&key, probe_wasm('A'), probe_manifest(""));
    let mut tampered_wasm = good.clone();
    tampered_wasm.component = Some(probe_wasm('B'));
    let mut tampered_manifest = good.clone();
    // One byte of the manifest: a longer timeout than was signed.
    tampered_manifest.manifest = Some(probe_manifest("[limits]\ntimeout_ms = 20001\n"));
    for (files, expected) in [
        (
            files(probe_wasm('B'), probe_manifest(""), None),
            "probe.wasm is not signed and plugins.require_signatures is on",
        ),
        (
            signed(&stranger, probe_wasm('B'), probe_manifest("")),
            "which is not in plugins.trusted_keys",
        ),
        (tampered_wasm, "changed after signing"),
        (tampered_manifest, "changed after signing"),
    ] {
        store.put("probe", &files).await;
        let refusal = store.refusal();
        assert!(
            refusal.contains(expected) && refusal.contains("probe."),
            "{refusal}"
        );
        assert_eq!(
            store.version().await,
            "probe-version-A",
            "the signed version keeps serving"
        );
    }

    // A good signature again: the refusal is gone and the new version live.
    store
        .put("probe", &signed(&key, probe_wasm('C'), probe_manifest("")))
        .await;
    assert!(store.registry.errors().is_empty());
    assert_eq!(store.version().await, "probe-version-C");

    // A pinned digest admits only that component.
    let mut pinned = trusting(&key);
    pinned
        .pins
        .insert("probe".into(), signature::digest(&probe_wasm('A')));
    let store = Store::new(&[], &Grants::default(), policy(pinned)).await;
    store
        .put("probe", &signed(&key, probe_wasm('B'), probe_manifest("")))
        .await;
    assert!(store.refusal().contains("plugins.pin.probe"));
    store
        .put("probe", &signed(&key, probe_wasm('A'), probe_manifest("")))
        .await;
    assert_eq!(store.version().await, "probe-version-A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_plugins_are_refused_with_a_reason_and_the_working_version_stays() {
    let grants = Grants {
        http: BTreeMap::from([(
            "probe".to_owned(),
            SkillGrant {
                policy: Policy {
                    filesystem: false,
                    ..Policy::default()
                },
                ..SkillGrant::default()
            },
        )]),
        ..Grants::default()
    };
    let store = Store::new(&[], &grants, policy(Trust::default())).await;
    store
        .put("probe", &files(probe_wasm('A'), probe_manifest(""), None))
        .await;
    assert_eq!(store.version().await, "probe-version-A");

    let mut truncated = probe_wasm('B');
    truncated.truncate(truncated.len() / 2);
    let not_a_skill = std::fs::read(built("test-skills", "not_a_skill.wasm")).unwrap();
    let cases: Vec<(PluginFiles, &str)> = vec![
        (
            files(truncated, probe_manifest(""), None),
            "not a valid WebAssembly component",
        ),
        (
            files(not_a_skill, probe_manifest(""), None),
            "does not implement the molten:skill",
        ),
        (
            files(b"\0asm garbage".to_vec(), probe_manifest(""), None),
            "not a valid WebAssembly component",
        ),
        (
            files(
                probe_wasm('B'),
                probe_manifest("[capabilities]\nfilesystem = \"sandbox\"\n"),
                None,
            ),
            "[skills.probe] filesystem = false denies it",
        ),
        (
            files(probe_wasm('B'), b"name = \"probe\"\n".to_vec(), None),
            "missing field `description`",
        ),
        (
            PluginFiles {
                manifest: None,
                ..files(probe_wasm('B'), Vec::new(), None)
            },
            "no manifest beside it",
        ),
    ];
    for (files, expected) in cases {
        store.put("probe", &files).await;
        let refusal = store.refusal();
        assert!(refusal.contains(expected), "{expected}: {refusal}");
        assert!(
            refusal.contains(&store.dir.display().to_string()),
            "{refusal}"
        );
        assert_eq!(store.version().await, "probe-version-A");
    }

    // A plugin named like a built-in skill is refused unless the operator lets it replace it.
    let builtin = [root().join("target").join("skills")];
    let editor = {
        let dir = root().join("target").join("skills");
        files(
            std::fs::read(dir.join("text_editor.wasm")).unwrap(),
            std::fs::read(dir.join("text_editor.toml")).unwrap(),
            None,
        )
    };
    let store = Store::new(&builtin, &Grants::default(), policy(Trust::default())).await;
    store.put("text_editor", &editor).await;
    assert!(store.refusal().contains("plugins.replace_builtins"));
    assert_eq!(
        store.registry.get("text_editor").unwrap().origin(),
        &Origin::Builtin
    );
    let mut replacing = policy(Trust::default());
    replacing.replace_builtins.insert("text_editor".into());
    let store = Store::new(&builtin, &Grants::default(), replacing).await;
    store.put("text_editor", &editor).await;
    assert!(matches!(
        store.registry.get("text_editor").unwrap().origin(),
        Origin::Plugin { .. }
    ));
    // Removed: the built-in one is back.
    store.plugins.store().delete("text_editor").await.unwrap();
    store.plugins.sync().await.unwrap();
    assert_eq!(
        store.registry.get("text_editor").unwrap().origin(),
        &Origin::Builtin
    );
}

#[tokio::test]
async fn the_operators_policy_disables_skills_and_lowers_limits() {
    let dir = temp_dir();
    let skills = dir.path().join("skills");
    crate::support::install(
        &skills,
        "probe",
        &probe_wasm('A'),
        "name = \"probe\"\ndescription = \"test fixture\"\n",
    );
    let grant = |policy: Policy| Grants {
        http: BTreeMap::from([(
            "probe".to_owned(),
            SkillGrant {
                policy,
                ..SkillGrant::default()
            },
        )]),
        ..Grants::default()
    };
    let lowered = Host::load_granted(
        temp_dir(),
        std::slice::from_ref(&skills),
        &grant(Policy {
            fuel: Some(3_000_000),
            ..Policy::default()
        }),
    )
    .await;
    // The manifest's default is 5 billion units: the operator's lower limit stops the spin.
    match lowered.call("probe", "u", json!({"mode": "spin"})).await {
        Err(InvokeError::OutOfFuel { fuel, .. }) => assert_eq!(fuel, 3_000_000),
        other => panic!("{other:?}"),
    }
    let disabled = Host::load_granted(
        temp_dir(),
        &[skills],
        &grant(Policy {
            enabled: false,
            ..Policy::default()
        }),
    )
    .await;
    assert!(disabled.registry.get("probe").is_none());
    assert!(disabled.registry.errors().is_empty());
    assert_eq!(disabled.registry.disabled(), ["probe"]);
    assert!(matches!(
        disabled.call("probe", "u", json!({"mode": "echo"})).await,
        Err(InvokeError::UnknownSkill(_))
    ));
}

/// The tools offered in model request `n`, and the last tool result in it.
fn offered(fake: &Fake, n: usize) -> (Vec<String>, String) {
    let requests = fake.llm_requests();
    let body = &requests[n].body;
    let tools = body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let last = body["messages"].as_array().unwrap().last().unwrap();
    (
        tools,
        last["content"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_dropped_into_the_directory_come_and_go_while_molten_serves() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, "[skills.bash]\nenabled = false\n"), &[]).await;
    let plugins = molten.data.join("plugins");
    assert!(plugins.is_dir(), "the default store is created at start");
    assert!(!molten.live_skills().await.contains(&"probe".to_owned()));

    // Dropped in with plain copies (not atomic): loaded once whole.
    std::fs::write(plugins.join("probe.toml"), probe_manifest("")).unwrap();
    std::fs::write(plugins.join("probe.wasm"), probe_wasm('A')).unwrap();
    eprintln!("loaded after {:?}", molten.until_skill("probe", true).await);
    fake.script_llm([
        llm_tool("c1", "probe", json!({"mode": "version"})),
        llm_text("first"),
    ]);
    molten.telegram(1, 7, "which version?").await;
    fake.wait_for("/sendMessage", 1, WAIT).await;
    let (tools, result) = offered(&fake, 1);
    assert!(tools.contains(&"probe".to_owned()), "{tools:?}");
    assert!(!tools.contains(&"bash".to_owned()), "disabled: {tools:?}");
    assert_eq!(result, "probe-version-A");

    // A broken plugin beside it is refused, and /admin/skills says why.
    std::fs::write(
        plugins.join("broken.toml"),
        "name = \"broken\"\ndescription = \"d\"\n",
    )
    .unwrap();
    std::fs::write(plugins.join("broken.wasm"), b"not wasm").unwrap();
    let started = Instant::now();
    let skills = loop {
        let skills = molten.admin("/admin/skills").await;
        if skills["refused"].as_array().is_some_and(|r| !r.is_empty()) {
            break skills;
        }
        assert!(started.elapsed() < WAIT, "{skills}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let refused = skills["refused"][0].as_str().unwrap();
    assert!(
        refused.contains("broken.wasm") && refused.contains("not a valid WebAssembly component"),
        "{refused}"
    );
    assert_eq!(skills["disabled"], json!(["bash"]));
    let probe = skills["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "probe")
        .unwrap();
    assert_eq!(probe["origin"]["kind"], "plugin");
    assert_eq!(
        probe["origin"]["digest"],
        signature::digest(&probe_wasm('A'))
    );
    assert_eq!(probe["filesystem"], "none");
    assert_eq!(
        molten.get("/admin/skills", None).await.status(),
        401,
        "operators only"
    );

    // Replaced by renaming a new file over the old one.
    let staged = molten.data.join("probe.wasm.new");
    std::fs::write(&staged, probe_wasm('B')).unwrap();
    std::fs::rename(&staged, plugins.join("probe.wasm")).unwrap();
    let replaced = Instant::now();
    while !molten.log().contains("plugin replaced") {
        assert!(replaced.elapsed() < WAIT, "{}", molten.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.script_llm([
        llm_tool("c2", "probe", json!({"mode": "version"})),
        llm_text("second"),
    ]);
    molten.telegram(2, 7, "and now?").await;
    fake.wait_for("/sendMessage", 2, WAIT).await;
    assert_eq!(offered(&fake, 3).1, "probe-version-B");

    // Removed: no longer offered to the model.
    std::fs::remove_file(plugins.join("probe.toml")).unwrap();
    std::fs::remove_file(plugins.join("probe.wasm")).unwrap();
    molten.until_skill("probe", false).await;
    fake.script_llm([llm_text("third")]);
    molten.telegram(3, 7, "still there?").await;
    fake.wait_for("/sendMessage", 3, WAIT).await;
    let (tools, _) = offered(&fake, 4);
    assert!(!tools.contains(&"probe".to_owned()), "{tools:?}");
    assert!(tools.contains(&"text_editor".to_owned()), "{tools:?}");
    let log = molten.log();
    assert!(
        log.contains("plugin loaded") && log.contains("plugin removed"),
        "{log}"
    );
    assert!(log.contains(&signature::digest(&probe_wasm('B'))), "{log}");
    let metrics = molten
        .get("/metrics", Some(crate::fakes::ADMIN_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    for result in ["loaded", "replaced", "refused", "removed"] {
        let line = format!("molten_plugin_loads_total{{result=\"{result}\"}} 1");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
}

/// `molten skill` with the config `config` in data directory `data`.
fn molten_cli(data: &Path, config: &str, args: &[&str]) -> std::process::Output {
    let path = data.join("molten.toml");
    std::fs::write(&path, config).unwrap();
    crate::support::share_compile_cache(data);
    std::process::Command::new(env!("CARGO_BIN_EXE_molten"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(data)
        .arg("--skills-dir")
        .arg(root().join("target").join("skills"))
        .args(["skill"])
        .args(args)
        .env_remove("MOLTEN_PLUGINS_DIR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_installs_lists_and_removes_a_plugin_with_the_cli() {
    let work = temp_dir();
    let data = temp_dir();
    let key = work.path().join("release.key");
    let wasm = work.path().join("probe.wasm");
    std::fs::write(&wasm, probe_wasm('A')).unwrap();
    std::fs::write(work.path().join("probe.toml"), probe_manifest("")).unwrap();
    let wasm_arg = wasm.to_str().unwrap();

    let keygen = molten_cli(data.path(), "", &["keygen", "--out", key.to_str().unwrap()]);
    assert!(keygen.status.success(), "{}", text(&keygen.stderr));
    let public = text(&keygen.stdout).trim().to_owned();
    assert!(public.starts_with("ed25519:"), "{public}");
    let config = format!("[plugins]\ntrusted_keys = [\"{public}\"]\n");

    // Unsigned: refused before it reaches the store.
    let refused = molten_cli(data.path(), &config, &["install", wasm_arg]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("not signed"),
        "{}",
        text(&refused.stderr)
    );

    let sign = molten_cli(
        data.path(),
        "",
        &["sign", wasm_arg, "--key", key.to_str().unwrap()],
    );
    assert!(sign.status.success(), "{}", text(&sign.stderr));
    let public_file = signature::public_path(&key);
    let verify = molten_cli(
        data.path(),
        "",
        &["verify", wasm_arg, "--pub", public_file.to_str().unwrap()],
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert!(text(&verify.stdout).contains("good signature"));

    let install = molten_cli(data.path(), &config, &["install", wasm_arg]);
    assert!(install.status.success(), "{}", text(&install.stderr));
    assert!(
        text(&install.stdout).contains("installed probe"),
        "{}",
        text(&install.stdout)
    );
    for ext in ["wasm", "toml", "sig"] {
        assert!(data
            .path()
            .join("plugins")
            .join(format!("probe.{ext}"))
            .is_file());
    }
    let list = molten_cli(data.path(), &config, &["list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    assert!(
        listed.contains(&format!(
            "plugin: {}, signed by key {}",
            signature::digest(&probe_wasm('A')),
            signature::key_id(&signature::read_public_key(&public_file).unwrap())
        )),
        "{listed}"
    );
    let run = molten_cli(
        data.path(),
        &config,
        &["run", "probe", r#"{"mode":"version"}"#],
    );
    assert_eq!(
        text(&run.stdout).trim(),
        "probe-version-A",
        "{}",
        text(&run.stderr)
    );

    // A tampered component fails verification, and `skill list` shows the refusal.
    std::fs::write(
        data.path().join("plugins").join("probe.wasm"),
        probe_wasm('B'),
    )
    .unwrap();
    let list = molten_cli(data.path(), &config, &["list"]);
    assert!(!list.status.success());
    assert!(
        text(&list.stderr).contains("probe.sig does not match"),
        "{}",
        text(&list.stderr)
    );

    let remove = molten_cli(data.path(), &config, &["remove", "probe"]);
    assert!(remove.status.success(), "{}", text(&remove.stderr));
    assert!(!data.path().join("plugins").join("probe.wasm").exists());
    let again = molten_cli(data.path(), &config, &["remove", "probe"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("no plugin named probe"));
}

/// Waits until `molten`'s log has `line` one more time than `before`.
async fn until_logged(molten: &Molten, line: &str, before: usize) {
    let started = Instant::now();
    while molten.log().matches(line).count() <= before {
        assert!(started.elapsed() < WAIT, "no {line:?}:\n{}", molten.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_uploaded_to_the_blob_container_is_live_on_every_worker_within_two_seconds() {
    use crate::azurite::{azurite, unique, Names};
    let fake = Fake::start().await;
    let settings = config(
        &fake,
        &format!(
            "{}\n[plugins]\ncontainer = \"{}\"\npoll_secs = 1\n",
            Names::new().section(&azurite().connection_string()),
            unique("plugins")
        ),
    );
    let workers = [
        Molten::start(&settings, &["--role", "worker"]).await,
        Molten::start(&settings, &["--role", "worker"]).await,
    ];
    // Compiled once already, as a replica that restarts finds it in its cache: what is timed
    // here is distribution (compiling is measured by the plugin benchmark).
    let warm = Store::plain().await;
    for version in ['A', 'B'] {
        warm.put(
            "probe",
            &files(probe_wasm(version), probe_manifest(""), None),
        )
        .await;
    }

    let work = temp_dir();
    let wasm = work.path().join("probe.wasm");
    std::fs::write(work.path().join("probe.toml"), probe_manifest("")).unwrap();
    for (version, line) in [('A', "plugin loaded"), ('B', "plugin replaced")] {
        std::fs::write(&wasm, probe_wasm(version)).unwrap();
        let before: Vec<usize> = workers
            .iter()
            .map(|w| w.log().matches(line).count())
            .collect();
        let install = molten_cli(
            temp_dir().path(),
            &settings,
            &["install", wasm.to_str().unwrap()],
        );
        assert!(install.status.success(), "{}", text(&install.stderr));
        let uploaded = Instant::now();
        for (worker, before) in workers.iter().zip(before) {
            until_logged(worker, line, before).await;
            let took = uploaded.elapsed();
            eprintln!("{line} on a worker {took:?} after the upload");
            assert!(took < Duration::from_secs(2), "{line} after {took:?}");
        }
    }
    let digest = signature::digest(&probe_wasm('B'));
    assert!(workers.iter().all(|w| w.log().contains(&digest)));

    let remove = molten_cli(temp_dir().path(), &settings, &["remove", "probe"]);
    assert!(remove.status.success(), "{}", text(&remove.stderr));
    let removed = Instant::now();
    for worker in &workers {
        until_logged(worker, "plugin removed", 0).await;
        let took = removed.elapsed();
        assert!(took < Duration::from_secs(2), "removed after {took:?}");
    }
}
