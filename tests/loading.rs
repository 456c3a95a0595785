//! Loading: bad files give a clear error naming the file, never a panic, and never keep good
//! skills from loading. Compiled components are cached on disk.

use std::path::{Path, PathBuf};

use molten::skills::LoadError;
use serde_json::json;

use crate::support::{built, install, root, temp_dir, Host};

/// A skills dir holding the built text_editor plus `name.wasm` (`wasm`) with a manifest.
fn dir_with(name: &str, wasm: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = temp_dir();
    let skills = dir.path().join("skills");
    let editor = std::fs::read(built("skills", "text_editor.wasm")).unwrap();
    let manifest = std::fs::read_to_string(built("skills", "text_editor.toml")).unwrap();
    install(&skills, "text_editor", &editor, &manifest);
    install(
        &skills,
        name,
        wasm,
        &format!("name = \"{name}\"\ndescription = \"under test\"\n"),
    );
    (dir, skills)
}

/// Loads `dirs`, checks that text_editor loaded and works anyway, and returns the host, which
/// must hold exactly one load error.
async fn load_with_one_error(dirs: &[&Path]) -> Host {
    let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let host = Host::load(&dirs).await;
    assert!(
        host.registry.get("text_editor").is_some(),
        "good skills still load"
    );
    let out = host
        .call(
            "text_editor",
            "u",
            json!({"command": "view", "path": "/tmp"}),
        )
        .await
        .unwrap();
    assert!(out.contains("/tmp"));
    assert_eq!(
        host.registry.errors().len(),
        1,
        "{:?}",
        host.registry.errors()
    );
    host
}

fn the_error(host: &Host) -> std::sync::Arc<LoadError> {
    host.registry.errors()[0].clone()
}

fn mentions(message: &str, path: &Path) -> bool {
    message.contains(&path.display().to_string())
}

#[tokio::test]
async fn a_corrupt_component_is_refused_naming_the_file() {
    let good = std::fs::read(built("skills", "text_editor.wasm")).unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"this is not wasm at all".to_vec()),
        ("empty", Vec::new()),
        ("core_module", b"\0asm\x01\0\0\0".to_vec()),
    ];
    for (name, bytes) in cases {
        let (_dir, skills) = dir_with(name, &bytes);
        let host = load_with_one_error(&[&skills]).await;
        let error = the_error(&host);
        assert!(
            matches!(&*error, LoadError::Compile { .. }),
            "{name}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            mentions(&message, &skills.join(format!("{name}.wasm"))),
            "{name}: {message}"
        );
        assert!(
            message.contains("not a valid WebAssembly component"),
            "{name}: {message}"
        );
    }
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_naming_the_file() {
    let other = std::fs::read(built("test-skills", "not_a_skill.wasm")).unwrap();
    let (_dir, skills) = dir_with("not_a_skill", &other);
    let host = load_with_one_error(&[&skills]).await;
    let error = the_error(&host);
    assert!(matches!(&*error, LoadError::World { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        mentions(&message, &skills.join("not_a_skill.wasm")),
        "{message}"
    );
    assert!(
        message.contains("does not implement the molten:skill@0.1.0 world"),
        "{message}"
    );
}

#[tokio::test]
async fn describe_must_agree_with_the_manifest() {
    // The probe component says it is `probe`; installed as `impostor` it is refused.
    let probe = std::fs::read(built("test-skills", "probe.wasm")).unwrap();
    let (_dir, skills) = dir_with("impostor", &probe);
    let host = load_with_one_error(&[&skills]).await;
    let message = the_error(&host).to_string();
    assert!(
        matches!(&*the_error(&host), LoadError::Describe { .. }),
        "{message}"
    );
    assert!(
        message.contains("names the skill `probe` but its manifest names it `impostor`"),
        "{message}"
    );
    assert!(
        mentions(&message, &skills.join("impostor.wasm")),
        "{message}"
    );
}

#[tokio::test]
async fn manifest_problems_name_the_file_and_field() {
    let (_dir, skills) = dir_with(
        "probe",
        &std::fs::read(built("test-skills", "probe.wasm")).unwrap(),
    );
    let manifest = skills.join("probe.toml");
    let cases = [
        (
            "name = \"probe\"\ndescription = \"d\"\n[limits]\nmemory_mb = 99999\n",
            "field `limits.memory_mb`: 99999 is above the maximum 1024",
        ),
        (
            "name = \"probe\"\ndescription = \"d\"\nnetwork = true\n",
            "unknown field `network`",
        ),
        (
            "name = \"other\"\ndescription = \"d\"\n",
            "field `name`: the skill is called `other`",
        ),
        ("name = \"probe\"\n", "missing field `description`"),
        ("this is [not toml", "invalid TOML"),
    ];
    for (text, expected) in cases {
        std::fs::write(&manifest, text).unwrap();
        let host = load_with_one_error(&[&skills]).await;
        let message = the_error(&host).to_string();
        assert!(
            matches!(&*the_error(&host), LoadError::Manifest { .. }),
            "{message}"
        );
        assert!(mentions(&message, &manifest), "{message}");
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[tokio::test]
async fn missing_halves_of_a_skill_are_reported() {
    let (_dir, skills) = dir_with("probe", b"");
    std::fs::remove_file(skills.join("probe.wasm")).unwrap();
    let host = load_with_one_error(&[&skills]).await;
    assert!(
        matches!(&*the_error(&host), LoadError::Read { .. }),
        "{:?}",
        the_error(&host)
    );
    assert!(mentions(
        &the_error(&host).to_string(),
        &skills.join("probe.wasm")
    ));

    std::fs::remove_file(skills.join("probe.toml")).unwrap();
    std::fs::copy(
        built("test-skills", "probe.wasm"),
        skills.join("orphan.wasm"),
    )
    .unwrap();
    let host = load_with_one_error(&[&skills]).await;
    let message = the_error(&host).to_string();
    assert!(message.contains("no manifest beside it"), "{message}");
    assert!(mentions(&message, &skills.join("orphan.wasm")), "{message}");
}

#[tokio::test]
async fn the_first_of_two_skills_with_one_name_wins() {
    let builtin = root().join("target").join("skills");
    let (_dir, skills) = dir_with(
        "probe",
        &std::fs::read(built("test-skills", "probe.wasm")).unwrap(),
    );
    let host = load_with_one_error(&[&builtin, &skills]).await;
    assert!(
        matches!(&*the_error(&host), LoadError::Duplicate { name, .. } if name == "text_editor")
    );
    assert_eq!(
        host.registry.get("text_editor").unwrap().component_path(),
        builtin.join("text_editor.wasm")
    );
    assert!(host.registry.get("probe").is_some());
}

#[tokio::test]
async fn a_missing_directory_is_reported() {
    let builtin = root().join("target").join("skills");
    let missing = root().join("target").join("no-such-skills-dir");
    let host = load_with_one_error(&[&builtin, &missing]).await;
    assert!(matches!(&*the_error(&host), LoadError::Directory { .. }));
    assert!(mentions(&the_error(&host).to_string(), &missing));
}

#[tokio::test]
async fn the_tool_definition_comes_from_describe() {
    let host = Host::builtin().await;
    let skill = host.registry.get("text_editor").unwrap();
    let definition = skill.definition();
    assert_eq!(definition.name, "text_editor");
    assert!(definition.description.contains("str_replace"));
    assert_eq!(definition.parameters["type"], "object");
    assert_eq!(
        definition.parameters["required"],
        json!(["command", "path"])
    );
    assert_eq!(
        definition.parameters["properties"]["command"]["enum"],
        json!(["view", "create", "str_replace", "insert", "undo_edit"])
    );
}

#[tokio::test]
async fn compiled_components_are_cached_and_a_bad_cache_entry_is_recompiled() {
    use molten::skills::{Registry, Runtime, RuntimeConfig};
    use std::sync::Arc;

    let dir = temp_dir();
    let cache = dir.path().join("cache");
    let load = || async {
        let runtime = Runtime::new(RuntimeConfig {
            sandbox_root: dir.path().join("sandboxes"),
            sandbox_quota: molten::skills::DEFAULT_QUOTA_BYTES,
            cache_dir: Some(cache.clone()),
            max_total_memory: molten::skills::default_total_memory(),
            sandbox_max_files: molten::skills::DEFAULT_MAX_FILES,
        })
        .unwrap();
        Registry::load(
            Arc::new(runtime),
            &[root().join("target").join("skills")],
            &Default::default(),
        )
        .await
    };
    let registry = load().await;
    assert!(registry.errors().is_empty());
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        registry.skills().len(),
        "one entry a skill: {entries:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e.extension().is_some_and(|e| e == "cwasm")));

    // Corrupted entries are discarded and rewritten, not trusted.
    for entry in &entries {
        std::fs::write(entry, b"corrupted").unwrap();
    }
    let registry = load().await;
    assert!(registry.errors().is_empty(), "{:?}", registry.errors());
    for entry in &entries {
        assert!(std::fs::metadata(entry).unwrap().len() > 1000);
    }
    let out = registry
        .invoke(
            "text_editor",
            r#"{"command":"view","path":"/tmp"}"#,
            &molten::skills::CallContext::new("u", "s"),
        )
        .await
        .unwrap();
    assert!(out.starts_with("Here's the files"));
}

/// The probe with the operator's `settings`, which steer what its describe() returns.
async fn probe_describing(settings: &[(&str, &str)]) -> Host {
    let (dir, skills) = dir_with(
        "probe",
        &std::fs::read(built("test-skills", "probe.wasm")).unwrap(),
    );
    let grant = molten::skills::SkillGrant {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let grants = molten::skills::Grants {
        http: [("probe".to_owned(), grant)].into(),
        ..Default::default()
    };
    Host::load_granted(dir, &[skills], &grants).await
}

/// Oversized describe(): a plugin's 48 MiB description went with every model request of every
/// user. Description and schema are capped at load, the refusal naming the field.
#[tokio::test]
async fn oversized_describe_is_refused_naming_the_field() {
    let host = probe_describing(&[("description_bytes", "2000000")]).await;
    assert!(host.registry.get("probe").is_none());
    let message = host.registry.errors()[0].to_string();
    assert!(
        message.contains("description of 2000000 bytes") && message.contains("at most 1024"),
        "{message}"
    );
    let huge = format!(
        r#"{{"type":"object","description":"{}"}}"#,
        "x".repeat(20_000)
    );
    let host = probe_describing(&[("parameters", &huge)]).await;
    let message = host.registry.errors()[0].to_string();
    assert!(message.contains("parameters of 20034 bytes"), "{message}");
    assert!(host.registry.get("text_editor").is_some(), "others load");
}

/// Schemas: JSON with "type":"object" that is not a valid JSON Schema was offered to the model.
#[tokio::test]
async fn a_schema_that_is_not_a_json_schema_is_refused() {
    for schema in [
        r#"{"type":"object","properties":{"n":{"type":7}}}"#,
        r#"{"type":"object","required":"mode"}"#,
        r#"{"type":"object","$ref":"file:///etc/passwd"}"#,
    ] {
        let host = probe_describing(&[("parameters", schema)]).await;
        assert!(host.registry.get("probe").is_none(), "{schema}");
        let message = host.registry.errors()[0].to_string();
        assert!(message.contains("not a valid JSON Schema"), "{message}");
    }
}

/// A component built against `molten:skill@0.1.0` (by `molten skill new` + `build` of molten
/// 0.1.0, checked in as it was built): every later molten must keep loading and running it.
#[tokio::test]
async fn a_skill_built_against_0_1_0_keeps_loading() {
    let host = Host::load(&[root().join("tests").join("data").join("abi")]).await;
    assert!(
        host.registry.errors().is_empty(),
        "{:?}",
        host.registry.errors()
    );
    let skill = host.registry.get("word_count").expect("loaded");
    assert!(skill.definition().parameters["properties"]["text"].is_object());
    let out = host
        .call("word_count", "u", json!({"text": "one two three"}))
        .await
        .unwrap();
    assert_eq!(out, "1 lines, 3 words, 13 characters");
}
