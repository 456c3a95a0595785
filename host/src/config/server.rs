//! `[server]` (the HTTP listener) and `[worker]` (the queue consumers).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{positive, ConfigError, Secret};

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Bearer token for `/admin/*`; admin routes answer 401 while it is unset.
    pub admin_token: Option<Secret>,
    /// A bearer token that opens `/metrics` only, for a scraper that should not hold the
    /// admin token.
    pub metrics_token: Option<Secret>,
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
    /// How users appear in log lines (`[privacy]`).
    pub privacy: PrivacyConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelemetryFile {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
    export_delay_ms: Option<u64>,
}

impl TelemetryFile {
    pub(super) fn build(self) -> Result<crate::telemetry::TelemetryConfig, ConfigError> {
        let otlp_endpoint = self
            .otlp_endpoint
            .filter(|e| !e.is_empty())
            .map(|text| {
                // A base without a trailing slash would lose its last segment in `join`.
                let text = if text.ends_with('/') { text } else { format!("{text}/") };
                reqwest::Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| ConfigError::Invalid {
                        key: "telemetry.otlp_endpoint".into(),
                        message: format!(
                            "{text:?} is not an http(s) URL; write the collector's OTLP/HTTP address, e.g. http://localhost:4318"
                        ),
                    })
            })
            .transpose()?;
        Ok(crate::telemetry::TelemetryConfig {
            otlp_endpoint,
            service_name: self.service_name.unwrap_or_else(|| "molten".to_owned()),
            export_delay: Duration::from_millis(positive(
                "telemetry.export_delay_ms",
                self.export_delay_ms,
                2000,
            )?),
        })
    }
}

/// `[privacy]`: what log lines say about users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrivacyConfig {
    /// Log a keyed hash of each user id instead of the id.
    pub hash_user_ids: bool,
    /// The hash's key. Without one, a short numeric id (a Telegram user's) can be recovered
    /// from its hash by trying every id; with one, only who knows the key can.
    pub salt: Option<Secret>,
}

impl PrivacyConfig {
    /// The user `user_key` as log lines name them: the key, or with `hash_user_ids` the first
    /// 16 hex digits of SHA-256(salt, key) (the same on every replica with the same salt).
    pub fn log_user(&self, user_key: &str) -> String {
        use sha2::{Digest, Sha256};
        if !self.hash_user_ids {
            return user_key.to_owned();
        }
        let salt = self.salt.as_ref().map_or("", |s| s.expose());
        let mut hash = Sha256::new();
        hash.update((salt.len() as u64).to_be_bytes());
        hash.update(salt.as_bytes());
        hash.update(user_key.as_bytes());
        let digest = hash.finalize();
        format!("u-{}", hex::encode(&digest[..8]))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PrivacyFile {
    #[serde(default)]
    hash_user_ids: bool,
    salt: Option<Secret>,
}

impl PrivacyFile {
    pub(super) fn build(self) -> PrivacyConfig {
        PrivacyConfig {
            hash_user_ids: self.hash_user_ids,
            salt: self.salt.filter(|s| !s.expose().is_empty()),
        }
    }
}

/// `[admin]`: Entra ID (or any OpenID Connect issuer's) tokens accepted on `/admin/*` and
/// `/metrics`, beside `server.admin_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The token issuer (`iss`), e.g. `https://login.microsoftonline.com/<tenant>/v2.0`.
    pub issuer: String,
    /// The audience (`aud`) tokens must be for: the app's client id or id URI.
    pub audience: String,
    /// An app role the token must carry in `roles`.
    pub role: Option<String>,
    /// A group id the token must carry in `groups`.
    pub group: Option<String>,
    /// Where the issuer's OpenID configuration is (default `<issuer>/.well-known/openid-configuration`).
    pub openid_configuration: reqwest::Url,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    issuer: Option<String>,
    audience: Option<String>,
    role: Option<String>,
    group: Option<String>,
    openid_configuration: Option<String>,
}

impl AdminFile {
    pub(super) fn build(self) -> Result<Option<AdminConfig>, ConfigError> {
        let Some(issuer) = self.issuer.filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        let audience = self.audience.filter(|a| !a.is_empty()).ok_or_else(|| {
            ConfigError::Invalid {
                key: "admin.audience".into(),
                message: "missing: the client id (or application id URI) of the app registration the admin tokens are for".into(),
            }
        })?;
        if self.role.is_none() && self.group.is_none() {
            return Err(ConfigError::Invalid {
                key: "admin.role".into(),
                message: "set admin.role (an app role) or admin.group (a group id): otherwise any account of the tenant would be an administrator".into(),
            });
        }
        let discovery = self.openid_configuration.unwrap_or_else(|| {
            format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            )
        });
        Ok(Some(AdminConfig {
            openid_configuration: super::parse_url("admin.openid_configuration", &discovery)?,
            issuer,
            audience,
            role: self.role,
            group: self.group,
        }))
    }
}

/// `[limits]`: per-user rate limits and daily spend caps; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    /// Messages one user may send per minute.
    pub messages_per_minute: Option<u32>,
    /// Messages one user may send per day (UTC).
    pub messages_per_day: Option<u32>,
    /// Model tokens one user may use per day.
    pub user_daily_tokens: Option<u64>,
    /// US dollars (from `[prices]`) one user's turns may cost per day.
    pub user_daily_usd: Option<f64>,
    /// US dollars all turns together may cost per day.
    pub global_daily_usd: Option<f64>,
}

impl LimitsConfig {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    messages_per_minute: Option<u32>,
    messages_per_day: Option<u32>,
    user_daily_tokens: Option<u64>,
    user_daily_usd: Option<f64>,
    global_daily_usd: Option<f64>,
}

impl LimitsFile {
    pub(super) fn build(self) -> Result<LimitsConfig, ConfigError> {
        for (key, value) in [
            ("limits.user_daily_usd", self.user_daily_usd),
            ("limits.global_daily_usd", self.global_daily_usd),
        ] {
            if value.is_some_and(|v| v.is_nan() || v <= 0.0) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be more than 0 (leave it out for no cap)".into(),
                });
            }
        }
        for (key, value) in [
            (
                "limits.messages_per_minute",
                self.messages_per_minute.map(u64::from),
            ),
            (
                "limits.messages_per_day",
                self.messages_per_day.map(u64::from),
            ),
            ("limits.user_daily_tokens", self.user_daily_tokens),
        ] {
            if value == Some(0) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: "must be more than 0 (leave it out for no limit)".into(),
                });
            }
        }
        Ok(LimitsConfig {
            messages_per_minute: self.messages_per_minute,
            messages_per_day: self.messages_per_day,
            user_daily_tokens: self.user_daily_tokens,
            user_daily_usd: self.user_daily_usd,
            global_daily_usd: self.global_daily_usd,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    admin_token: Option<Secret>,
    metrics_token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkerFile {
    concurrency: Option<usize>,
    visibility_timeout_secs: Option<u64>,
    max_deliveries: Option<u32>,
    poll_interval_ms: Option<u64>,
}

impl ServerFile {
    pub(super) fn build(self) -> Result<ServerConfig, ConfigError> {
        Ok(ServerConfig {
            listen: parse_addr(self.listen.as_deref().unwrap_or("127.0.0.1:8080"))?,
            max_body_bytes: positive("server.max_body_bytes", self.max_body_bytes, 1 << 20)?,
            admin_token: self.admin_token.filter(|t| !t.expose().is_empty()),
            metrics_token: self.metrics_token.filter(|t| !t.expose().is_empty()),
        })
    }
}

impl WorkerFile {
    pub(super) fn build(self, privacy: PrivacyConfig) -> Result<WorkerConfig, ConfigError> {
        Ok(WorkerConfig {
            privacy,
            concurrency: positive("worker.concurrency", self.concurrency, 4)?,
            visibility_timeout: Duration::from_secs(positive(
                "worker.visibility_timeout_secs",
                self.visibility_timeout_secs,
                60,
            )?),
            max_deliveries: positive("worker.max_deliveries", self.max_deliveries, 5)?,
            poll_interval: Duration::from_millis(positive(
                "worker.poll_interval_ms",
                self.poll_interval_ms,
                200,
            )?),
        })
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        key: "server.listen".into(),
        message: format!(
            "{text:?} is not an address ({e}); write it as IP:PORT, e.g. 0.0.0.0:8080"
        ),
    })
}
