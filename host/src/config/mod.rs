//! One typed configuration: an optional TOML file, environment overrides for every secret and
//! endpoint, defaults for the rest. Validated once at start; every error names the key and says
//! what to do. `molten.example.toml` at the top of the repository documents every key.
//!
//! Precedence: command-line flags, then `MOLTEN_*` environment variables, then the file, then
//! defaults. The file is `--config`/`MOLTEN_CONFIG`, else `<data dir>/molten.toml` if it exists.

mod azure;
mod channels;
mod llm;
mod openclaw;
mod plugins;
mod server;
mod skills;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::azure::AzureConfig;
pub use self::channels::{DiscordConfig, SlackConfig, TelegramConfig};
pub use self::llm::{AgentConfig, LlmConfig, LlmProvider, Price, SafetyConfig};
pub use self::plugins::PluginsConfig;
pub use self::server::{AdminConfig, LimitsConfig, PrivacyConfig, ServerConfig, WorkerConfig};
pub use self::skills::GraphConfig;
use crate::secrets::Secret;

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
    /// Most files, directories and symlinks one user's sandbox may hold (`[sandbox] max_files`).
    pub sandbox_max_files: u64,
    /// Where users' sandboxes live (`[sandbox] dir`, default `<data dir>/sandboxes`): a share
    /// mounted on every replica (Azure Files) lets any worker answer any user.
    pub sandbox_dir: PathBuf,
    /// Azure Storage and Key Vault, when configured (`[azure]`).
    pub azure: AzureConfig,
    /// Most bytes of memory all running skills may hold together (`[runtime]
    /// max_total_memory_mb`, default half the machine's memory).
    pub max_total_memory_bytes: u64,
    /// The plugin store (`[plugins]`).
    pub plugins: PluginsConfig,
    /// Per-user rate limits and daily spend caps (`[limits]`).
    pub limits: LimitsConfig,
    /// OpenTelemetry traces (`[telemetry]`).
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// The OpenClaw gateway turns go to first (`[openclaw]`).
    pub openclaw: Option<crate::openclaw::OpenClawConfig>,
    /// Entra ID tokens for the admin routes (`[admin]`), if configured.
    pub admin: Option<AdminConfig>,
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
    ("MOLTEN_METRICS_TOKEN", "server", "metrics_token"),
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
    ("MOLTEN_PLUGINS_DIR", "plugins", "dir"),
    ("MOLTEN_PLUGINS_CONTAINER", "plugins", "container"),
    ("MOLTEN_AZURE_CLIENT_ID", "azure", "client_id"),
    ("MOLTEN_PRIVACY_SALT", "privacy", "salt"),
    ("MOLTEN_OTLP_ENDPOINT", "telemetry", "otlp_endpoint"),
    ("MOLTEN_OPENCLAW_URL", "openclaw", "url"),
    ("MOLTEN_OPENCLAW_TOKEN", "openclaw", "token"),
    ("MOLTEN_OPENCLAW_DEVICE_KEY", "openclaw", "device_key"),
];

/// The file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: Option<PathBuf>,
    skills_dirs: Option<Vec<PathBuf>>,
    #[serde(default)]
    server: server::ServerFile,
    #[serde(default)]
    worker: server::WorkerFile,
    llm: Option<llm::LlmFile>,
    #[serde(default)]
    agent: llm::AgentFile,
    #[serde(default)]
    safety: llm::SafetyFile,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    telegram: Option<channels::TelegramFile>,
    slack: Option<channels::SlackFile>,
    discord: Option<channels::DiscordFile>,
    #[serde(default)]
    skills: BTreeMap<String, skills::GrantFile>,
    #[serde(default)]
    secrets: BTreeMap<String, Secret>,
    graph: Option<skills::GraphFile>,
    #[serde(default)]
    sandbox: skills::SandboxFile,
    #[serde(default)]
    azure: azure::AzureFile,
    #[serde(default)]
    runtime: skills::RuntimeFile,
    #[serde(default)]
    plugins: plugins::PluginsFile,
    #[serde(default)]
    limits: server::LimitsFile,
    #[serde(default)]
    admin: server::AdminFile,
    #[serde(default)]
    privacy: server::PrivacyFile,
    #[serde(default)]
    telemetry: server::TelemetryFile,
    #[serde(default)]
    openclaw: openclaw::OpenClawFile,
}

impl Config {
    /// Where and how the skill runtime keeps its state.
    pub fn runtime(&self) -> crate::skills::RuntimeConfig {
        crate::skills::RuntimeConfig {
            sandbox_quota: self.sandbox_quota_bytes,
            sandbox_max_files: self.sandbox_max_files,
            sandbox_root: self.sandbox_dir.clone(),
            max_total_memory: self.max_total_memory_bytes,
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
        azure::build_azure(read_file(config, data_dir, &env)?.azure)
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
        let server = file.server.build()?;
        let worker = file.worker.build(file.privacy.build())?;
        let llm = file.llm.map(llm::build_llm).transpose()?.flatten();
        let agent = file.agent.build()?;
        let safety = file.safety.build()?;
        llm::check_prices(&file.prices)?;
        let telegram = file.telegram.map(|t| t.build()).transpose()?;
        let slack = file.slack.map(|s| s.build()).transpose()?;
        let discord = file.discord.map(|d| d.build()).transpose()?;
        let grants = skills::build_grants(file.skills)?;
        let graph = skills::build_graph(file.graph)?;
        let azure = azure::build_azure(file.azure)?;
        let (sandbox_dir, sandbox_quota_bytes, sandbox_max_files) =
            file.sandbox.build(&data_dir)?;
        let max_total_memory_bytes = file.runtime.build()?;
        let plugins = file.plugins.build(&data_dir)?;
        if plugins.container.is_some() && azure.storage.is_none() {
            return Err(ConfigError::Invalid {
                key: "plugins.container".into(),
                message: "is a blob container, but [azure] storage is not set; set it (or \
                          MOLTEN_AZURE_STORAGE), or remove plugins.container to use plugins.dir"
                    .into(),
            });
        }
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
            sandbox_quota_bytes,
            sandbox_max_files,
            max_total_memory_bytes,
            plugins,
            limits: file.limits.build()?,
            admin: file.admin.build()?,
            telemetry: file.telemetry.build()?,
            openclaw: file.openclaw.build()?,
            prices: file.prices,
            telegram,
            slack,
            discord,
        })
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
        secrets.extend(&self.server.metrics_token);
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
        if let Some(o) = &self.openclaw {
            secrets.push(&o.token);
            secrets.extend(&o.device_key);
        }
        secrets
            .into_iter()
            .map(|s| s.expose().to_owned())
            .filter(|s| s.len() >= 6)
            .collect()
    }
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
