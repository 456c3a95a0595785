//! One typed configuration: an optional TOML file, environment overrides for every secret and
//! endpoint, defaults for the rest. Validated once at start; every error names the key and says
//! what to do. `molten.example.toml` at the top of the repository documents every key.
//!
//! Precedence: command-line flags, then `MOLTEN_*` environment variables, then the file, then
//! defaults. The file is `--config`/`MOLTEN_CONFIG`, else `<data dir>/molten.toml` if it exists.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A value that must never be printed: its `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it (a header, a signature check).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Settings after the file, the environment and defaults are combined and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sandboxes, caches, the queue and the state database live here.
    pub data_dir: PathBuf,
    /// Directories holding `<name>.toml` + `<name>.wasm` skills, loaded in order.
    pub skills_dirs: Vec<PathBuf>,
    /// The SQLite file of the embedded queue (`<data dir>/queue.db`).
    pub queue_path: PathBuf,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The queue consumers.
    pub worker: WorkerConfig,
    /// The model; `None` until an endpoint is configured (molten still starts and says so).
    pub llm: Option<LlmConfig>,
    /// Conversation handling.
    pub agent: AgentConfig,
    /// Input filter and output redaction.
    pub safety: SafetyConfig,
    /// Price per 1,000 tokens by model name, for the usage log.
    pub prices: BTreeMap<String, Price>,
    /// Telegram, if configured.
    pub telegram: Option<TelegramConfig>,
    /// Slack, if configured.
    pub slack: Option<SlackConfig>,
    /// Discord, if configured.
    pub discord: Option<DiscordConfig>,
    /// What the operator grants each skill beyond its sandbox (`[skills.<name>]`).
    pub grants: BTreeMap<String, crate::skills::SkillGrant>,
    /// Secret values by name (`[secrets]`); `MOLTEN_SECRET_<NAME>` overrides and adds.
    pub secrets: BTreeMap<String, Secret>,
    /// Client credentials for the Graph token (`graph-token`), if configured.
    pub graph: Option<GraphConfig>,
    /// Most bytes one user's sandbox may hold (`[sandbox] quota_mb`).
    pub sandbox_quota_bytes: u64,
    /// Where users' sandboxes live (`[sandbox] dir`, default `<data dir>/sandboxes`): a share
    /// mounted on every replica (Azure Files) lets any worker answer any user.
    pub sandbox_dir: PathBuf,
    /// Azure Storage and Key Vault, when configured (`[azure]`).
    pub azure: AzureConfig,
}

/// `[azure]`: where replicas keep shared state, and where secrets come from.
#[derive(Debug, Clone, Default)]
pub struct AzureConfig {
    /// The storage account for the queue and state, as a connection string; `None` keeps them
    /// in SQLite. `azure.storage_account = "name"` becomes `AccountName=name`: no key, so the
    /// replica's Entra identity authorises.
    pub storage: Option<Secret>,
    /// The work queue's name (`molten-work`); poisoned messages go to `<queue>-poison`.
    pub queue: String,
    /// The blob container for sessions and the response cache (`molten-state`).
    pub container: String,
    /// Prefix of the tables (`molten`): `<prefix>accepted`, `replied`, `usage`, `skillcalls`.
    pub table_prefix: String,
    /// Key Vault to read secrets from, e.g. `https://molten-kv.vault.azure.net`.
    pub key_vault_url: Option<reqwest::Url>,
    /// Client id of a user-assigned managed identity (the system-assigned one otherwise).
    pub client_id: Option<String>,
}

impl AzureConfig {
    /// Whether storage or Key Vault authenticate with the replica's Entra identity.
    pub fn needs_entra(&self) -> bool {
        self.storage
            .as_ref()
            .is_some_and(crate::azure::StorageAccount::is_identity_based)
            || self.key_vault_url.is_some()
    }
}

/// `[graph]`: an Entra application whose client-credentials token becomes the `graph-token`
/// secret (unless `graph-token` is set directly).
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Entra authority.
    pub authority: reqwest::Url,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Bearer token for `/admin/*`; admin routes answer 401 while it is unset.
    pub admin_token: Option<Secret>,
}

/// `[worker]`
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Messages processed at once.
    pub concurrency: usize,
    /// How long a leased message stays invisible; renewed while its turn runs.
    pub visibility_timeout: Duration,
    /// Deliveries after which a message is poisoned and the user gets an apology.
    pub max_deliveries: u32,
    /// Longest wait between polls of an empty queue.
    pub poll_interval: Duration,
}

/// Which wire flavour of chat completions the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer` (OpenAI, Ollama, llama.cpp...).
    Openai,
    /// `POST {base_url}/openai/deployments/{model}/chat/completions?api-version=`, `api-key`.
    Azure,
}

/// `[llm]`
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Wire flavour.
    pub provider: LlmProvider,
    /// Endpoint base URL.
    pub base_url: reqwest::Url,
    /// Model name (OpenAI) or deployment name (Azure).
    pub model: String,
    /// Key, if the endpoint needs one.
    pub api_key: Option<Secret>,
    /// Azure `api-version`.
    pub api_version: String,
    /// Cap on the answer's length.
    pub max_tokens: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after 429, 5xx or a timeout.
    pub max_retries: u32,
    /// First backoff delay, doubled each retry (a `Retry-After` header wins).
    pub retry_base: Duration,
    /// Longest `Retry-After` honoured; longer waits count as failure.
    pub max_retry_after: Duration,
    /// Identical requests within this time are answered from the cache (0 disables).
    pub cache_ttl: Duration,
}

/// `[agent]`
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The system prompt.
    pub system_prompt: String,
    /// History kept per chat: at most this many messages...
    pub history_messages: usize,
    /// ...and at most about this many tokens (4 characters a token).
    pub history_tokens: usize,
    /// A chat idle for longer starts afresh.
    pub session_ttl: Duration,
}

/// `[safety]`
#[derive(Debug, Clone)]
pub struct SafetyConfig {
    /// Longer messages are refused politely.
    pub max_input_chars: usize,
    /// Regular expressions; a message matching one is refused politely.
    pub blocked_patterns: Vec<String>,
    /// What the user is told when a message is refused.
    pub refusal: String,
}

/// One model's prices in US dollars per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input_per_1k: f64,
    /// Completion tokens.
    pub output_per_1k: f64,
}

/// `[telegram]`
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// Bot token for `sendMessage`.
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`; when set, requests without it are refused.
    pub secret_token: Option<Secret>,
    /// Bot API base URL.
    pub api_base: reqwest::Url,
}

/// `[slack]`
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Signing secret for the v0 signature.
    pub signing_secret: Secret,
    /// Bot token (`xoxb-...`) for `chat.postMessage`.
    pub bot_token: Secret,
    /// Web API base URL.
    pub api_base: reqwest::Url,
}

/// `[discord]`
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key, hex.
    pub public_key: String,
    /// API base URL for interaction follow-ups.
    pub api_base: reqwest::Url,
}

/// A configuration that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a data directory nor a home directory is known.
    #[error("no data directory: set --data-dir or MOLTEN_DATA_DIR (or HOME)")]
    NoDataDir,
    /// The file named by `--config` cannot be read.
    #[error("cannot read the config file {path}: {source}; check the path given to --config or MOLTEN_CONFIG")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("{path}: {message}(see molten.example.toml for every key)")]
    Parse {
        /// The file, or the environment.
        path: String,
        /// toml's message, naming the key and line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{key}: {message}")]
    Invalid {
        /// The key as written in the file, e.g. `llm.base_url`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Environment variables that override a `section.key` string in the file.
pub const ENV_OVERRIDES: &[(&str, &str, &str)] = &[
    ("MOLTEN_LISTEN", "server", "listen"),
    ("MOLTEN_ADMIN_TOKEN", "server", "admin_token"),
    ("MOLTEN_LLM_PROVIDER", "llm", "provider"),
    ("MOLTEN_LLM_BASE_URL", "llm", "base_url"),
    ("MOLTEN_LLM_MODEL", "llm", "model"),
    ("MOLTEN_LLM_API_KEY", "llm", "api_key"),
    ("MOLTEN_LLM_API_VERSION", "llm", "api_version"),
    ("MOLTEN_TELEGRAM_BOT_TOKEN", "telegram", "bot_token"),
    ("MOLTEN_TELEGRAM_SECRET_TOKEN", "telegram", "secret_token"),
    ("MOLTEN_TELEGRAM_API_BASE", "telegram", "api_base"),
    ("MOLTEN_SLACK_SIGNING_SECRET", "slack", "signing_secret"),
    ("MOLTEN_SLACK_BOT_TOKEN", "slack", "bot_token"),
    ("MOLTEN_SLACK_API_BASE", "slack", "api_base"),
    ("MOLTEN_DISCORD_PUBLIC_KEY", "discord", "public_key"),
    ("MOLTEN_DISCORD_API_BASE", "discord", "api_base"),
    ("MOLTEN_GRAPH_TENANT_ID", "graph", "tenant_id"),
    ("MOLTEN_GRAPH_CLIENT_ID", "graph", "client_id"),
    ("MOLTEN_GRAPH_CLIENT_SECRET", "graph", "client_secret"),
    ("MOLTEN_AZURE_STORAGE", "azure", "storage"),
    ("MOLTEN_AZURE_STORAGE_ACCOUNT", "azure", "storage_account"),
    ("MOLTEN_AZURE_QUEUE", "azure", "queue"),
    ("MOLTEN_AZURE_CONTAINER", "azure", "container"),
    ("MOLTEN_AZURE_TABLE_PREFIX", "azure", "table_prefix"),
    ("MOLTEN_KEY_VAULT_URL", "azure", "key_vault_url"),
    ("MOLTEN_SANDBOX_DIR", "sandbox", "dir"),
    ("MOLTEN_AZURE_CLIENT_ID", "azure", "client_id"),
];

/// The file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    skills_dirs: Option<Vec<PathBuf>>,
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    worker: WorkerFile,
    llm: Option<LlmFile>,
    #[serde(default)]
    agent: AgentFile,
    #[serde(default)]
    safety: SafetyFile,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    telegram: Option<TelegramFile>,
    slack: Option<SlackFile>,
    discord: Option<DiscordFile>,
    #[serde(default)]
    skills: BTreeMap<String, GrantFile>,
    #[serde(default)]
    secrets: BTreeMap<String, Secret>,
    graph: Option<GraphFile>,
    #[serde(default)]
    sandbox: SandboxFile,
    #[serde(default)]
    azure: AzureFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureFile {
    storage: Option<Secret>,
    storage_account: Option<String>,
    queue: Option<String>,
    container: Option<String>,
    table_prefix: Option<String>,
    key_vault_url: Option<String>,
    client_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxFile {
    quota_mb: Option<u64>,
    dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authority: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    endpoints: BTreeMap<String, String>,
    requests_per_minute: Option<u32>,
    response_kb: Option<usize>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    admin_token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerFile {
    concurrency: Option<usize>,
    visibility_timeout_secs: Option<u64>,
    max_deliveries: Option<u32>,
    poll_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmFile {
    provider: Option<LlmProvider>,
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<Secret>,
    api_version: Option<String>,
    max_tokens: Option<u32>,
    timeout_secs: Option<u64>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
    max_retry_after_secs: Option<u64>,
    cache_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    system_prompt: Option<String>,
    history_messages: Option<usize>,
    history_tokens: Option<usize>,
    session_ttl_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyFile {
    max_input_chars: Option<usize>,
    blocked_patterns: Option<Vec<String>>,
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramFile {
    bot_token: Option<Secret>,
    secret_token: Option<Secret>,
    api_base: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackFile {
    signing_secret: Option<Secret>,
    bot_token: Option<Secret>,
    api_base: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordFile {
    public_key: Option<String>,
    api_base: Option<String>,
}

const DEFAULT_SYSTEM_PROMPT: &str =
    "You are molten, a helpful assistant in a chat. Answer briefly. \
You can call tools; files you create live in the user's sandbox under /tmp.";

impl Config {
    /// Where and how the skill runtime keeps its state.
    pub fn runtime(&self) -> crate::skills::RuntimeConfig {
        crate::skills::RuntimeConfig {
            sandbox_quota: self.sandbox_quota_bytes,
            sandbox_root: self.sandbox_dir.clone(),
            ..crate::skills::RuntimeConfig::in_data_dir(&self.data_dir)
        }
    }

    /// Reads the config file (`config` if given, else `<data dir>/molten.toml` if present),
    /// applies `MOLTEN_*` overrides from `env`, and validates.
    pub fn load(
        config: Option<&Path>,
        data_dir: Option<PathBuf>,
        skills_dirs: Vec<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = read_file(config, data_dir.as_deref(), &env)?;
        Self::build(file, data_dir, skills_dirs)
    }

    /// Only `[azure]`, from the same sources as [`Config::load`]: where to find Key Vault
    /// before the rest of the settings, some of which may live there, are checked.
    pub fn load_azure(
        config: Option<&Path>,
        data_dir: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AzureConfig, ConfigError> {
        build_azure(read_file(config, data_dir, &env)?.azure)
    }

    fn build(
        file: File,
        data_dir: Option<PathBuf>,
        skills_dirs: Vec<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let data_dir = match data_dir.or(file.data_dir) {
            Some(dir) => dir,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let skills_dirs = if !skills_dirs.is_empty() {
            skills_dirs
        } else {
            file.skills_dirs
                .unwrap_or_else(|| vec![data_dir.join("skills")])
        };
        let server = ServerConfig {
            listen: parse_addr(file.server.listen.as_deref().unwrap_or("127.0.0.1:8080"))?,
            max_body_bytes: positive("server.max_body_bytes", file.server.max_body_bytes, 1 << 20)?,
            admin_token: file.server.admin_token.filter(|t| !t.expose().is_empty()),
        };
        let worker = WorkerConfig {
            concurrency: positive("worker.concurrency", file.worker.concurrency, 4)?,
            visibility_timeout: Duration::from_secs(positive(
                "worker.visibility_timeout_secs",
                file.worker.visibility_timeout_secs,
                60,
            )?),
            max_deliveries: positive("worker.max_deliveries", file.worker.max_deliveries, 5)?,
            poll_interval: Duration::from_millis(positive(
                "worker.poll_interval_ms",
                file.worker.poll_interval_ms,
                200,
            )?),
        };
        let llm = file.llm.map(build_llm).transpose()?.flatten();
        let agent = AgentConfig {
            system_prompt: file
                .agent
                .system_prompt
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
            history_messages: file.agent.history_messages.unwrap_or(20),
            history_tokens: file.agent.history_tokens.unwrap_or(4_000),
            session_ttl: Duration::from_secs(
                3600 * positive("agent.session_ttl_hours", file.agent.session_ttl_hours, 24)?,
            ),
        };
        let safety = SafetyConfig {
            max_input_chars: positive(
                "safety.max_input_chars",
                file.safety.max_input_chars,
                4_000,
            )?,
            blocked_patterns: file.safety.blocked_patterns.unwrap_or_default(),
            refusal: file.safety.refusal.unwrap_or_else(|| {
                "Sorry, I can't help with that message. Please rephrase it or keep it shorter."
                    .to_owned()
            }),
        };
        for (i, pattern) in safety.blocked_patterns.iter().enumerate() {
            regex::Regex::new(pattern).map_err(|e| ConfigError::Invalid {
                key: format!("safety.blocked_patterns[{i}]"),
                message: format!("not a valid regular expression: {e}"),
            })?;
        }
        for (model, price) in &file.prices {
            if !(price.input_per_1k >= 0.0 && price.output_per_1k >= 0.0) {
                return Err(ConfigError::Invalid {
                    key: format!("prices.{model}"),
                    message: "prices must be zero or more (US dollars per 1,000 tokens)".into(),
                });
            }
        }
        let telegram = file
            .telegram
            .map(|t| -> Result<_, ConfigError> {
                Ok(TelegramConfig {
                    bot_token: required_secret(
                        "telegram.bot_token",
                        t.bot_token,
                        "MOLTEN_TELEGRAM_BOT_TOKEN",
                    )?,
                    secret_token: t.secret_token.filter(|s| !s.expose().is_empty()),
                    api_base: parse_url(
                        "telegram.api_base",
                        t.api_base.as_deref().unwrap_or("https://api.telegram.org"),
                    )?,
                })
            })
            .transpose()?;
        let slack = file
            .slack
            .map(|s| -> Result<_, ConfigError> {
                Ok(SlackConfig {
                    signing_secret: required_secret(
                        "slack.signing_secret",
                        s.signing_secret,
                        "MOLTEN_SLACK_SIGNING_SECRET",
                    )?,
                    bot_token: required_secret(
                        "slack.bot_token",
                        s.bot_token,
                        "MOLTEN_SLACK_BOT_TOKEN",
                    )?,
                    api_base: parse_url(
                        "slack.api_base",
                        s.api_base.as_deref().unwrap_or("https://slack.com/api"),
                    )?,
                })
            })
            .transpose()?;
        let discord = file
            .discord
            .map(|d| -> Result<_, ConfigError> {
                let public_key = d.public_key.filter(|k| !k.is_empty()).ok_or_else(|| {
                    ConfigError::Invalid {
                        key: "discord.public_key".into(),
                        message: "missing: copy the application's public key from the Discord developer portal (or set MOLTEN_DISCORD_PUBLIC_KEY)".into(),
                    }
                })?;
                crate::ingress::verify::DiscordVerifier::from_hex(&public_key).map_err(|e| {
                    ConfigError::Invalid {
                        key: "discord.public_key".into(),
                        message: e.to_string(),
                    }
                })?;
                Ok(DiscordConfig {
                    public_key,
                    api_base: parse_url(
                        "discord.api_base",
                        d.api_base.as_deref().unwrap_or("https://discord.com/api/v10"),
                    )?,
                })
            })
            .transpose()?;
        let mut grants = BTreeMap::new();
        for (skill, g) in file.skills {
            let http = g
                .http
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    crate::skills::HttpRule::parse(text).map_err(|message| ConfigError::Invalid {
                        key: format!("skills.{skill}.http[{i}]"),
                        message,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (origin, target) in &g.endpoints {
                crate::skills::HttpRule::parse(origin).map_err(|message| ConfigError::Invalid {
                    key: format!("skills.{skill}.endpoints"),
                    message,
                })?;
                parse_url(&format!("skills.{skill}.endpoints.\"{origin}\""), target)?;
            }
            let settings = g
                .settings
                .into_iter()
                .map(|(key, value)| match value {
                    toml::Value::String(s) => Ok((key, s)),
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        Ok((key, value.to_string()))
                    }
                    _ => Err(ConfigError::Invalid {
                        key: format!("skills.{skill}.settings.{key}"),
                        message: "must be a string, number or boolean".into(),
                    }),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            let grant = crate::skills::SkillGrant {
                settings,
                http,
                endpoints: g.endpoints,
                requests_per_minute: positive(
                    &format!("skills.{skill}.requests_per_minute"),
                    g.requests_per_minute,
                    crate::skills::http::DEFAULT_REQUESTS_PER_MINUTE,
                )?,
                max_response_bytes: positive(
                    &format!("skills.{skill}.response_kb"),
                    g.response_kb,
                    crate::skills::http::DEFAULT_RESPONSE_BYTES >> 10,
                )? << 10,
            };
            grants.insert(skill, grant);
        }
        let graph = file
            .graph
            .map(|g| -> Result<_, ConfigError> {
                let missing = |key: &str, env: &str| ConfigError::Invalid {
                    key: format!("graph.{key}"),
                    message: format!(
                        "missing: copy it from the Entra app registration (or set {env})"
                    ),
                };
                Ok(GraphConfig {
                    tenant_id: g
                        .tenant_id
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| missing("tenant_id", "MOLTEN_GRAPH_TENANT_ID"))?,
                    client_id: g
                        .client_id
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| missing("client_id", "MOLTEN_GRAPH_CLIENT_ID"))?,
                    client_secret: required_secret(
                        "graph.client_secret",
                        g.client_secret,
                        "MOLTEN_GRAPH_CLIENT_SECRET",
                    )?,
                    authority: parse_url(
                        "graph.authority",
                        g.authority
                            .as_deref()
                            .unwrap_or("https://login.microsoftonline.com"),
                    )?,
                })
            })
            .transpose()?;
        let azure = build_azure(file.azure)?;
        let sandbox_dir = file
            .sandbox
            .dir
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| data_dir.join("sandboxes"));
        Ok(Self {
            azure,
            grants,
            graph,
            secrets: file.secrets,
            queue_path: data_dir.join("queue.db"),
            data_dir,
            skills_dirs,
            server,
            worker,
            llm,
            agent,
            safety,
            sandbox_dir,
            sandbox_quota_bytes: positive(
                "sandbox.quota_mb",
                file.sandbox.quota_mb,
                crate::skills::DEFAULT_QUOTA_BYTES >> 20,
            )? << 20,
            prices: file.prices,
            telegram,
            slack,
            discord,
        })
    }

    /// The operator's grants for [`crate::skills::Registry::load`], with secrets from the
    /// process environment and `[secrets]`, then from `vault` (Key Vault) if given.
    pub fn grants(
        &self,
        vault: Option<std::sync::Arc<dyn crate::secrets::SecretStore>>,
    ) -> crate::skills::Grants {
        use crate::secrets::{ClientCredentials, LayeredSecrets, LocalSecrets};
        let mut tokens = BTreeMap::new();
        if let Some(g) = &self.graph {
            match ClientCredentials::new(
                &g.authority,
                &g.tenant_id,
                &g.client_id,
                g.client_secret.clone(),
                "https://graph.microsoft.com/.default",
            ) {
                Ok(source) => {
                    tokens.insert("graph-token".to_owned(), std::sync::Arc::new(source));
                }
                Err(e) => tracing::error!(error = %e, "graph.authority is unusable"),
            }
        }
        crate::skills::Grants {
            http: self.grants.clone(),
            secrets: std::sync::Arc::new(LayeredSecrets::new(
                LocalSecrets::from_process(self.secrets.clone()),
                tokens,
                vault,
            )),
        }
    }

    /// Whether anything configured authenticates with the replica's Entra identity: a storage
    /// account without a key, Azure OpenAI without a key, or Key Vault.
    pub fn needs_entra(&self) -> bool {
        self.azure.needs_entra()
            || self
                .llm
                .as_ref()
                .is_some_and(|l| l.provider == LlmProvider::Azure && l.api_key.is_none())
    }

    /// The SQLite file of the embedded store.
    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("state.db")
    }

    /// Every configured secret value, so replies and tool output can be scanned for them.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets: Vec<&Secret> = Vec::new();
        secrets.extend(&self.server.admin_token);
        if let Some(llm) = &self.llm {
            secrets.extend(&llm.api_key);
        }
        if let Some(t) = &self.telegram {
            secrets.push(&t.bot_token);
            secrets.extend(&t.secret_token);
        }
        if let Some(s) = &self.slack {
            secrets.push(&s.signing_secret);
            secrets.push(&s.bot_token);
        }
        secrets.extend(self.secrets.values());
        if let Some(g) = &self.graph {
            secrets.push(&g.client_secret);
        }
        secrets
            .into_iter()
            .map(|s| s.expose().to_owned())
            .filter(|s| s.len() >= 6)
            .collect()
    }
}

fn build_azure(a: AzureFile) -> Result<AzureConfig, ConfigError> {
    let storage = match (
        a.storage.filter(|s| !s.expose().is_empty()),
        a.storage_account.filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "azure.storage".into(),
                message: "set either a connection string (azure.storage) or an account reached with the managed identity (azure.storage_account), not both".into(),
            })
        }
        (Some(connection), None) => Some(connection),
        (None, Some(account)) => {
            if !(3..=24).contains(&account.len())
                || !account.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(ConfigError::Invalid {
                    key: "azure.storage_account".into(),
                    message: format!("{account:?} is not a storage account name (3 to 24 lower-case letters and digits)"),
                });
            }
            Some(Secret::new(format!("AccountName={account}")))
        }
        (None, None) => None,
    };
    let name = |key: &str, value: Option<String>, default: &str, table: bool| {
        let value = value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned());
        let ok = (3..=56).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || (!table && b == b'-'))
            && value.as_bytes()[0].is_ascii_lowercase();
        if ok {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                key: format!("azure.{key}"),
                message: format!(
                    "{value:?}: use 3 to 56 lower-case letters{}, starting with a letter",
                    if table {
                        " and digits"
                    } else {
                        ", digits and hyphens"
                    }
                ),
            })
        }
    };
    Ok(AzureConfig {
        storage,
        queue: name("queue", a.queue, "molten-work", false)?,
        container: name("container", a.container, "molten-state", false)?,
        table_prefix: name("table_prefix", a.table_prefix, "molten", true)?,
        key_vault_url: a
            .key_vault_url
            .filter(|u| !u.is_empty())
            .map(|u| parse_url("azure.key_vault_url", &u))
            .transpose()?,
        client_id: a.client_id.filter(|c| !c.is_empty()),
    })
}

/// `[llm]` with no endpoint is "not configured", not an error.
fn build_llm(l: LlmFile) -> Result<Option<LlmConfig>, ConfigError> {
    let Some(base_url) = l.base_url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let provider = l.provider.unwrap_or(LlmProvider::Openai);
    let base_url = parse_url("llm.base_url", &base_url)?;
    let model = l.model.filter(|m| !m.is_empty()).ok_or_else(|| ConfigError::Invalid {
        key: "llm.model".into(),
        message: match provider {
            LlmProvider::Openai => "missing: name the model, e.g. model = \"gpt-4o-mini\" (or set MOLTEN_LLM_MODEL)",
            LlmProvider::Azure => "missing: name the Azure OpenAI deployment (or set MOLTEN_LLM_MODEL)",
        }
        .into(),
    })?;
    // Azure OpenAI without a key authenticates with the replica's Entra identity.
    let api_key = l.api_key.filter(|k| !k.expose().is_empty());
    Ok(Some(LlmConfig {
        provider,
        base_url,
        model,
        api_key,
        api_version: l.api_version.unwrap_or_else(|| "2024-10-21".to_owned()),
        max_tokens: positive("llm.max_tokens", l.max_tokens, 512)?,
        timeout: Duration::from_secs(positive("llm.timeout_secs", l.timeout_secs, 60)?),
        max_retries: l.max_retries.unwrap_or(3).min(10),
        retry_base: Duration::from_millis(l.retry_base_ms.unwrap_or(500)),
        max_retry_after: Duration::from_secs(l.max_retry_after_secs.unwrap_or(60)),
        cache_ttl: Duration::from_secs(l.cache_ttl_secs.unwrap_or(300)),
    }))
}

/// The file with the environment's overrides applied, not yet validated.
fn read_file(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<File, ConfigError> {
    let (mut table, origin) = match config {
        Some(path) => (read_table(path)?, path.display().to_string()),
        None => {
            let dir = match data_dir {
                Some(dir) => dir.to_owned(),
                None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
            };
            let path = dir.join("molten.toml");
            if path.exists() {
                (read_table(&path)?, path.display().to_string())
            } else {
                (toml::Table::new(), "environment".to_owned())
            }
        }
    };
    for (var, section, key) in ENV_OVERRIDES {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(ConfigError::Invalid {
                    key: section.to_string(),
                    message: "must be a table ([section])".into(),
                });
            };
            section_table.insert(key.to_string(), toml::Value::String(value));
        }
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: origin,
            message: e.to_string(),
        })
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

fn positive<T: PartialOrd + Default + fmt::Display>(
    key: &str,
    value: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    let value = value.unwrap_or(default);
    if value <= T::default() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("must be more than 0 (got {value})"),
        });
    }
    Ok(value)
}

fn parse_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        key: "server.listen".into(),
        message: format!(
            "{text:?} is not an address ({e}); write it as IP:PORT, e.g. 0.0.0.0:8080"
        ),
    })
}

fn parse_url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(text).map_err(|e| ConfigError::Invalid {
        key: key.into(),
        message: format!(
            "{text:?} is not a URL ({e}); write it with its scheme, e.g. https://host/path"
        ),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("{text:?} must be an http or https URL"),
        });
    }
    Ok(url)
}

fn required_secret(key: &str, value: Option<Secret>, env: &str) -> Result<Secret, ConfigError> {
    value
        .filter(|s| !s.expose().is_empty())
        .ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            message: format!("missing: set it in the file or in {env}"),
        })
}

fn default_data_dir() -> Option<PathBuf> {
    let non_empty = |var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    non_empty("XDG_DATA_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".local").join("share")))
        .map(|base| base.join("molten"))
}

#[cfg(test)]
mod tests {
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
        let config =
            Config::load(None, Some("/nonexistent".into()), dirs.clone(), |_| None).unwrap();
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
        assert!(
            config.azure.storage.as_ref().map(Secret::expose) == Some("AccountName=moltenstate")
        );
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
}
