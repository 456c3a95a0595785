//! The config's unit tests: defaults, overrides, the example file, errors naming the key.

use std::path::{Path, PathBuf};

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("molten.toml");
    std::fs::write(&path, text).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(Some(&path), Some("/data".into()), Vec::new(), |k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
}

#[test]
fn skills_default_to_the_data_dir() {
    let config = Config::load(None, Some("/nonexistent".into()), Vec::new(), |_| None).unwrap();
    assert_eq!(
        config.skills_dirs,
        vec![PathBuf::from("/nonexistent/skills")]
    );
}

#[test]
fn explicit_skills_dirs_win() {
    let dirs = vec![PathBuf::from("a"), PathBuf::from("b")];
    let config = Config::load(None, Some("/nonexistent".into()), dirs.clone(), |_| None).unwrap();
    assert_eq!(config.skills_dirs, dirs);
}

#[test]
fn an_empty_file_gives_defaults_and_no_llm() {
    let config = load("", &[]).unwrap();
    assert!(config.llm.is_none());
    assert_eq!(config.worker.max_deliveries, 5);
    assert_eq!(config.server.max_body_bytes, 1 << 20);
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn environment_overrides_the_file_and_secrets_do_not_print() {
    let config = load(
        "[llm]\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\napi_key = \"from-file\"\n",
        &[("MOLTEN_LLM_API_KEY", "sk-from-env-123")],
    )
    .unwrap();
    let llm = config.llm.as_ref().unwrap();
    assert_eq!(llm.api_key.as_ref().unwrap().expose(), "sk-from-env-123");
    assert!(!format!("{config:?}").contains("sk-from-env-123"));
    assert!(config
        .secret_values()
        .contains(&"sk-from-env-123".to_owned()));
}

#[test]
fn the_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../molten.example.toml");
    let config = Config::load(Some(&path), Some("/data".into()), Vec::new(), |_| None).unwrap();
    assert!(config.llm.is_none() && config.telegram.is_none());
    assert_eq!(config.worker.concurrency, 4);
}

#[test]
fn azure_settings_come_from_the_environment() {
    let config = load(
        "[llm]\nprovider = \"azure\"\nbase_url = \"https://x.openai.azure.com\"\nmodel = \"d\"\n",
        &[
            ("MOLTEN_AZURE_STORAGE_ACCOUNT", "moltenstate"),
            ("MOLTEN_AZURE_QUEUE", "work"),
            ("MOLTEN_KEY_VAULT_URL", "https://molten-kv.vault.azure.net"),
        ],
    )
    .unwrap();
    assert!(config.azure.storage.as_ref().map(Secret::expose) == Some("AccountName=moltenstate"));
    assert_eq!(
        (config.azure.queue.as_str(), config.azure.container.as_str()),
        ("work", "molten-state")
    );
    assert_eq!(
        config.azure.key_vault_url.unwrap().as_str(),
        "https://molten-kv.vault.azure.net/"
    );
    // Azure OpenAI without a key: the managed identity's token is used instead.
    assert!(config.llm.unwrap().api_key.is_none());
    assert!(
        load("", &[]).unwrap().azure.storage.is_none(),
        "SQLite by default"
    );
}

#[test]
fn errors_name_the_key() {
    let unknown = load("[llm]\nbase_ur = \"x\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("base_ur"), "{unknown}");
    let url = load("[llm]\nbase_url = \"not a url\"\nmodel = \"m\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(url.starts_with("llm.base_url:"), "{url}");
    let both = load(
        "[azure]\nstorage = \"UseDevelopmentStorage=true\"\nstorage_account = \"molten\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(both.starts_with("azure.storage:"), "{both}");
    let queue = load("[azure]\nqueue = \"Work_Queue\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        queue.starts_with("azure.queue:") && queue.contains("lower-case"),
        "{queue}"
    );
    let zero = load("[worker]\nconcurrency = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(zero.starts_with("worker.concurrency:"), "{zero}");
    let regex = load("[safety]\nblocked_patterns = [\"(\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(regex.starts_with("safety.blocked_patterns[0]:"), "{regex}");
    let telegram = load("[telegram]\n", &[]).unwrap_err().to_string();
    assert!(telegram.contains("MOLTEN_TELEGRAM_BOT_TOKEN"), "{telegram}");
}

#[test]
fn telegram_without_a_secret_token_is_refused_unless_the_operator_opts_out() {
    let open = load("[telegram]\nbot_token = \"1:x\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        open.starts_with("telegram.secret_token:")
            && open.contains("setWebhook")
            && open.contains("allow_unauthenticated = true"),
        "{open}"
    );
    let opted_out = load(
        "[telegram]\nbot_token = \"1:x\"\nallow_unauthenticated = true\n",
        &[],
    )
    .unwrap();
    assert!(opted_out.telegram.unwrap().secret_token.is_none());
    let from_env = load(
        "[telegram]\nbot_token = \"1:x\"\n",
        &[("MOLTEN_TELEGRAM_SECRET_TOKEN", "s3cret")],
    )
    .unwrap();
    assert!(from_env.telegram.unwrap().secret_token.is_some());
}

#[test]
fn secrets_are_bound_by_the_operator_with_defaults_for_built_in_skills() {
    let config = load(
        "[skills.web_search]\nhttp = [\"https://api.tavily.com\"]\n\
         [skills.custom]\nhttp = [\"https://api.tavily.com\"]\n\
         [skills.email_send]\nhttp = [\"https://graph.microsoft.com/v1.0\"]\nsecrets = []\n\
         [skills.other]\nsecrets = [\"tavily-api-key\"]\n",
        &[],
    )
    .unwrap();
    let bound = |skill: &str| {
        config.grants[skill]
            .secrets
            .iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bound("web_search"),
        ["tavily-api-key"],
        "the built-in default"
    );
    assert!(
        bound("custom").is_empty(),
        "a plugin gets none unless named"
    );
    assert!(bound("email_send").is_empty(), "the operator's word wins");
    assert_eq!(bound("other"), ["tavily-api-key"]);
}

#[test]
fn a_skill_is_rate_limited_per_user_under_a_ceiling() {
    let config = load(
        "[skills.a]\nrequests_per_minute = 5\n[skills.b]\nrequests_per_minute_total = 7\n",
        &[],
    )
    .unwrap();
    let limits = |skill: &str| {
        let g = &config.grants[skill];
        (g.requests_per_minute, g.requests_per_minute_total)
    };
    assert_eq!(limits("a"), (5, 50));
    assert_eq!(limits("b"), (60, 7));
    let zero = load("[skills.a]\nrequests_per_minute_total = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        zero.starts_with("skills.a.requests_per_minute_total:"),
        "{zero}"
    );
}

#[test]
fn the_memory_of_all_skills_has_a_budget() {
    let config = load("[runtime]\nmax_total_memory_mb = 512\n", &[]).unwrap();
    assert_eq!(config.max_total_memory_bytes, 512 << 20);
    assert_eq!(config.runtime().max_total_memory, 512 << 20);
    let default = load("", &[]).unwrap().max_total_memory_bytes;
    assert!(default >= 1 << 30, "half the machine: {default}");
    let zero = load("[runtime]\nmax_total_memory_mb = 0\n", &[])
        .unwrap_err()
        .to_string();
    assert!(zero.starts_with("runtime.max_total_memory_mb:"), "{zero}");
}

#[test]
fn a_sandbox_has_an_entry_limit() {
    assert_eq!(load("", &[]).unwrap().sandbox_max_files, 20_000);
    let config = load("[sandbox]\nmax_files = 500\n", &[]).unwrap();
    assert_eq!(config.runtime().sandbox_max_files, 500);
}

#[test]
fn plugins_and_skill_policy_are_checked_and_named_by_key() {
    let key = crate::plugins::signature::public_key_text(
        &ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key(),
    );
    let pin = format!("sha256:{}", "ab".repeat(32));
    let config = load(
        &format!(
            "[plugins]\ntrusted_keys = [\"{key}\"]\nreplace_builtins = [\"web_search\"]\n\
             [plugins.pin]\nmine = \"{pin}\"\n\
             [skills.bash]\nenabled = false\nfuel = 1000\nmemory_mb = 8\nnetwork = false\n"
        ),
        &[("MOLTEN_PLUGINS_DIR", "/srv/plugins")],
    )
    .unwrap();
    let plugins = &config.plugins;
    assert_eq!(plugins.dir, Path::new("/srv/plugins"));
    assert!(plugins.container.is_none());
    assert!(
        plugins.policy.trust.require_signatures,
        "required once a key is trusted"
    );
    assert_eq!(plugins.policy.trust.pins["mine"], pin);
    assert_eq!(plugins.policy.poll, std::time::Duration::from_secs(2));
    let policy = &config.grants["bash"].policy;
    assert!(!policy.enabled && !policy.network && policy.filesystem);
    assert_eq!(
        (policy.fuel, policy.memory_bytes),
        (Some(1000), Some(8 << 20))
    );
    assert_eq!(
        load("", &[]).unwrap().plugins.dir,
        Path::new("/data/plugins")
    );

    for (text, key) in [
        (
            "[plugins]\ntrusted_keys = [\"abc\"]\n",
            "plugins.trusted_keys[0]:",
        ),
        (
            "[plugins]\nrequire_signatures = true\n",
            "plugins.require_signatures:",
        ),
        ("[plugins.pin]\nx = \"md5:1\"\n", "plugins.pin.x:"),
        ("[plugins]\ncontainer = \"plugins\"\n", "plugins.container:"),
        ("[plugins]\npoll_secs = 0\n", "plugins.poll_secs:"),
        ("[skills.bash]\nfuel = 0\n", "skills.bash.fuel:"),
    ] {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.starts_with(key), "{text}: {err}");
    }
}

#[test]
fn entra_admin_needs_an_audience_and_a_role_or_group() {
    let issuer = "https://login.microsoftonline.com/t/v2.0";
    let admin = load(
        &format!(
            "[admin]\nissuer = \"{issuer}\"\naudience = \"api://m\"\nrole = \"Molten.Admin\"\n"
        ),
        &[],
    )
    .unwrap()
    .admin
    .unwrap();
    assert_eq!(
        admin.openid_configuration.as_str(),
        "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
    );
    let no_role = load(
        &format!("[admin]\nissuer = \"{issuer}\"\naudience = \"api://m\"\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(no_role.starts_with("admin.role:"), "{no_role}");
    let no_audience = load(
        &format!("[admin]\nissuer = \"{issuer}\"\nrole = \"r\"\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(no_audience.starts_with("admin.audience:"), "{no_audience}");
    assert!(load("", &[]).unwrap().admin.is_none());
}
