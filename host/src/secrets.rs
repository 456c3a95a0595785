//! Where secret values come from. Skills name secrets in their manifests; the host resolves the
//! names here and adds the values to allowed requests itself, so a skill never holds one.
//!
//! The embedded default reads `MOLTEN_SECRET_<NAME>` environment variables (the name
//! upper-cased, `-` as `_`), then `[secrets]` of the config file, then tokens the host fetches
//! itself (the Graph token by client credentials), then Azure Key Vault when configured
//! ([`crate::azure::KeyVaultSecrets`] implements the same trait).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Resolves secret names such as `tavily-api-key`.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The value of `name`, or `None` if it is not set anywhere.
    async fn get(&self, name: &str) -> Option<Secret>;
}

/// Looks a variable up in the environment (a closure, so tests need not touch the process's).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Secrets from the environment (`MOLTEN_SECRET_<NAME>`), else from the config file.
#[derive(Clone)]
pub struct LocalSecrets {
    file: BTreeMap<String, Secret>,
    env: EnvLookup,
}

impl Default for LocalSecrets {
    fn default() -> Self {
        Self::new(BTreeMap::new(), Arc::new(|_| None))
    }
}

impl LocalSecrets {
    /// The `[secrets]` table of the config, with `env` consulted first.
    pub fn new(file: BTreeMap<String, Secret>, env: EnvLookup) -> Self {
        Self { file, env }
    }

    /// The process environment and `file`.
    pub fn from_process(file: BTreeMap<String, Secret>) -> Self {
        Self::new(file, Arc::new(|name| std::env::var(name).ok()))
    }
}

#[async_trait::async_trait]
impl SecretStore for LocalSecrets {
    async fn get(&self, name: &str) -> Option<Secret> {
        (self.env)(&env_name(name))
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .or_else(|| self.file.get(name).cloned())
    }
}

/// An OAuth 2.0 client-credentials access token (Microsoft Entra ID), fetched by the host and
/// cached until five minutes before it expires. Skills never see the client secret or the
/// token; the host adds the token to their requests like any other secret.
pub struct ClientCredentials {
    token_url: reqwest::Url,
    client_id: String,
    client_secret: Secret,
    scope: String,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

impl ClientCredentials {
    /// A token source for `scope` from `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn new(
        authority: &reqwest::Url,
        tenant: &str,
        client_id: &str,
        client_secret: Secret,
        scope: &str,
    ) -> Result<Self, String> {
        let mut token_url = authority.clone();
        token_url
            .path_segments_mut()
            .map_err(|()| format!("{authority} cannot be a base URL"))?
            .pop_if_empty()
            .extend([tenant, "oauth2", "v2.0", "token"]);
        Ok(Self {
            token_url,
            client_id: client_id.to_owned(),
            client_secret,
            scope: scope.to_owned(),
            http: crate::net::client_builder()
                .build()
                .map_err(|e| e.to_string())?,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid token, from the cache or freshly fetched.
    pub async fn token(&self) -> Result<Secret, String> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + TOKEN_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("scope", &self.scope)
            .finish();
        let response = self
            .http
            .post(self.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("the token endpoint {} did not answer: {e}", self.token_url))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let Some(token) = body["access_token"]
            .as_str()
            .filter(|_| status.is_success())
        else {
            return Err(format!(
                "the token endpoint refused the client credentials ({status}: {} {}); check graph.tenant_id, graph.client_id and MOLTEN_GRAPH_CLIENT_SECRET",
                body["error"].as_str().unwrap_or_default(),
                body["error_description"].as_str().unwrap_or_default()
            ));
        };
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        let token = Secret::new(token);
        *cached = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }
}

/// Static secrets first, then tokens the host fetches itself, then a vault, by secret name.
pub struct LayeredSecrets {
    local: LocalSecrets,
    tokens: BTreeMap<String, Arc<ClientCredentials>>,
    vault: Option<Arc<dyn SecretStore>>,
}

impl LayeredSecrets {
    /// `local`, with `tokens` and then `vault` (Azure Key Vault) answering the names it does
    /// not have.
    pub fn new(
        local: LocalSecrets,
        tokens: BTreeMap<String, Arc<ClientCredentials>>,
        vault: Option<Arc<dyn SecretStore>>,
    ) -> Self {
        Self {
            local,
            tokens,
            vault,
        }
    }
}

#[async_trait::async_trait]
impl SecretStore for LayeredSecrets {
    async fn get(&self, name: &str) -> Option<Secret> {
        if let Some(value) = self.local.get(name).await {
            return Some(value);
        }
        if let Some(source) = self.tokens.get(name) {
            return match source.token().await {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::error!(secret = name, error = %e, "cannot obtain a token");
                    None
                }
            };
        }
        self.vault.as_ref()?.get(name).await
    }
}

/// `tavily-api-key` -> `MOLTEN_SECRET_TAVILY_API_KEY`.
pub fn env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MOLTEN_SECRET_{upper}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn environment_wins_over_the_file() {
        let mut file = BTreeMap::new();
        file.insert("tavily-api-key".to_owned(), Secret::new("from-file"));
        file.insert("graph-token".to_owned(), Secret::new("file-only"));
        let env: EnvLookup =
            Arc::new(|k| (k == "MOLTEN_SECRET_TAVILY_API_KEY").then(|| "from-env".to_owned()));
        let secrets = LocalSecrets::new(file, env);
        assert_eq!(
            secrets.get("tavily-api-key").await.unwrap().expose(),
            "from-env"
        );
        assert_eq!(
            secrets.get("graph-token").await.unwrap().expose(),
            "file-only"
        );
        assert!(secrets.get("other").await.is_none());
    }
}
