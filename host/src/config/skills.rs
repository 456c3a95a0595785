//! `[skills.<name>]` (what the operator grants each skill), `[secrets]`, `[graph]` (the Graph
//! token's client credentials) and `[sandbox]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{parse_url, positive, required_secret, Config, ConfigError, Secret};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SandboxFile {
    quota_mb: Option<u64>,
    max_files: Option<u64>,
    dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GraphFile {
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    authority: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantFile {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    endpoints: BTreeMap<String, String>,
    requests_per_minute: Option<u32>,
    requests_per_minute_total: Option<u32>,
    response_kb: Option<usize>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
    secrets: Option<Vec<String>>,
    enabled: Option<bool>,
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    output_kb: Option<u64>,
    filesystem: Option<bool>,
    network: Option<bool>,
}

impl GrantFile {
    /// `enabled`, the lowered limits and the denied capabilities, checked.
    fn policy(&self, skill: &str) -> Result<crate::skills::Policy, ConfigError> {
        let limit = |key: &str, value: Option<u64>| -> Result<Option<u64>, ConfigError> {
            value
                .map(|v| positive(&format!("skills.{skill}.{key}"), Some(v), 1))
                .transpose()
        };
        Ok(crate::skills::Policy {
            enabled: self.enabled.unwrap_or(true),
            fuel: limit("fuel", self.fuel)?,
            timeout: limit("timeout_ms", self.timeout_ms)?.map(std::time::Duration::from_millis),
            memory_bytes: limit("memory_mb", self.memory_mb)?.map(|mb| (mb << 20) as usize),
            output_bytes: limit("output_kb", self.output_kb)?.map(|kb| (kb << 10) as usize),
            filesystem: self.filesystem.unwrap_or(true),
            network: self.network.unwrap_or(true),
        })
    }
}

/// `[skills.<name>]`, checked: the rules parse, the endpoints are URLs, settings are scalars.
pub(super) fn build_grants(
    files: BTreeMap<String, GrantFile>,
) -> Result<BTreeMap<String, crate::skills::SkillGrant>, ConfigError> {
    let mut grants = BTreeMap::new();
    for (skill, g) in files {
        let policy = g.policy(&skill)?;
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
        let per_user = positive(
            &format!("skills.{skill}.requests_per_minute"),
            g.requests_per_minute,
            crate::skills::http::DEFAULT_REQUESTS_PER_MINUTE,
        )?;
        let grant = crate::skills::SkillGrant {
            settings,
            http,
            endpoints: g.endpoints,
            requests_per_minute: per_user,
            requests_per_minute_total: positive(
                &format!("skills.{skill}.requests_per_minute_total"),
                g.requests_per_minute_total,
                per_user.saturating_mul(crate::skills::http::TOTAL_PER_USER_RATIO),
            )?,
            secrets: match g.secrets {
                Some(names) => names.into_iter().collect(),
                None => builtin_secrets(&skill),
            },
            max_response_bytes: positive(
                &format!("skills.{skill}.response_kb"),
                g.response_kb,
                crate::skills::http::DEFAULT_RESPONSE_BYTES >> 10,
            )? << 10,
            policy,
        };
        grants.insert(skill, grant);
    }
    Ok(grants)
}

/// The secrets a built-in skill is bound to when its `[skills.<name>]` does not say: what its
/// own manifest names, so that configs written before bindings existed keep working.
fn builtin_secrets(skill: &str) -> std::collections::BTreeSet<String> {
    let names: &[&str] = match skill {
        "web_search" => &["tavily-api-key"],
        "calendar_create" | "email_send" => &["graph-token"],
        _ => &[],
    };
    names.iter().map(|n| n.to_string()).collect()
}

/// `[graph]`, checked.
pub(super) fn build_graph(graph: Option<GraphFile>) -> Result<Option<GraphConfig>, ConfigError> {
    graph
        .map(|g| -> Result<_, ConfigError> {
            let missing = |key: &str, env: &str| ConfigError::Invalid {
                key: format!("graph.{key}"),
                message: format!("missing: copy it from the Entra app registration (or set {env})"),
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
        .transpose()
}

/// `[runtime]`: what all running skills may hold together.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuntimeFile {
    max_total_memory_mb: Option<u64>,
}

impl RuntimeFile {
    /// The memory budget of all running skills in bytes (default half the machine's memory).
    pub(super) fn build(self) -> Result<u64, ConfigError> {
        match self.max_total_memory_mb {
            None => Ok(crate::skills::default_total_memory()),
            Some(mb) => Ok(positive("runtime.max_total_memory_mb", Some(mb), 1)? << 20),
        }
    }
}

impl SandboxFile {
    /// Where sandboxes live (default `<data dir>/sandboxes`), each one's quota in bytes and
    /// its most entries.
    pub(super) fn build(self, data_dir: &Path) -> Result<(PathBuf, u64, u64), ConfigError> {
        let dir = self
            .dir
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| data_dir.join("sandboxes"));
        let quota = positive(
            "sandbox.quota_mb",
            self.quota_mb,
            crate::skills::DEFAULT_QUOTA_BYTES >> 20,
        )? << 20;
        let max_files = positive(
            "sandbox.max_files",
            self.max_files,
            crate::skills::DEFAULT_MAX_FILES,
        )?;
        Ok((dir, quota, max_files))
    }
}

impl Config {
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
}
