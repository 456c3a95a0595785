//! Secrets from Azure Key Vault, read with the replica's Entra identity through the official
//! `azure_security_keyvault_secrets` client. Values are cached for a few minutes so a busy
//! worker does not call the vault on every skill call, and rotations still arrive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, StatusCode, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use crate::secrets::Secret;
use crate::secrets::SecretStore;

/// How long a value (or its absence) is reused.
const CACHE_FOR: Duration = Duration::from_secs(300);

/// Configuration that may live in the vault, under the reference system's names, and the
/// environment variable each one stands in for when that variable is not set.
pub const CONFIG_SECRETS: &[(&str, &str)] = &[
    ("azure-openai-endpoint", "MOLTEN_LLM_BASE_URL"),
    ("azure-openai-api-key", "MOLTEN_LLM_API_KEY"),
    ("azure-openai-deployment", "MOLTEN_LLM_MODEL"),
    ("telegram-bot-token", "MOLTEN_TELEGRAM_BOT_TOKEN"),
    ("telegram-webhook-secret", "MOLTEN_TELEGRAM_SECRET_TOKEN"),
    ("slack-signing-secret", "MOLTEN_SLACK_SIGNING_SECRET"),
    ("slack-bot-token", "MOLTEN_SLACK_BOT_TOKEN"),
    ("discord-public-key", "MOLTEN_DISCORD_PUBLIC_KEY"),
    ("admin-token", "MOLTEN_ADMIN_TOKEN"),
    ("storage-connection-string", "MOLTEN_AZURE_STORAGE"),
    ("openclaw-gateway-token", "MOLTEN_OPENCLAW_TOKEN"),
    ("openclaw-device-key", "MOLTEN_OPENCLAW_DEVICE_KEY"),
];

/// A Key Vault as a [`SecretStore`].
pub struct KeyVaultSecrets {
    client: SecretClient,
    vault: String,
    cache: tokio::sync::Mutex<HashMap<String, (Option<Secret>, Instant)>>,
}

impl KeyVaultSecrets {
    /// A reader of the vault at `url`, authenticating with `credential`.
    pub fn new(
        url: &url::Url,
        credential: Arc<dyn TokenCredential>,
        http: &reqwest::Client,
    ) -> Result<Self, String> {
        let options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http.clone()))),
                ..ClientOptions::default()
            },
            // The SDK checks that the vault's host is a subdomain of the resource its challenge
            // names (so a forged challenge cannot obtain a token for something else). A vault on
            // a loopback address (an emulator, a test) has no domain to check.
            verify_challenge_resource: Some(!is_loopback(url)),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(url.as_str(), credential, Some(options))
            .map_err(|e| format!("azure.key_vault_url {url}: {e}"))?;
        Ok(Self {
            client,
            vault: url.to_string(),
            cache: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The current value of `name`, or `None` if the vault has no such secret.
    pub async fn fetch(&self, name: &str) -> Result<Option<Secret>, String> {
        match self.client.get_secret(name, None).await {
            Ok(response) => {
                let secret = response
                    .into_model()
                    .map_err(|e| format!("secret {name} in {}: unreadable answer: {e}", self.vault))?;
                Ok(secret.value.map(Secret::new))
            }
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(None),
            Err(e) => Err(format!(
                "cannot read secret {name} from Key Vault {}: {}; give the replica's identity the 'Key Vault Secrets User' role on the vault",
                self.vault,
                super::describe(&e)
            )),
        }
    }

    /// Values for the [`CONFIG_SECRETS`] the environment does not set, as environment
    /// variable names and values.
    pub async fn config_values(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HashMap<String, String>, String> {
        let mut values = HashMap::new();
        for (name, var) in CONFIG_SECRETS {
            if env(var).is_some_and(|v| !v.is_empty()) {
                continue;
            }
            if let Some(value) = self.fetch(name).await? {
                values.insert((*var).to_owned(), value.expose().to_owned());
            }
        }
        // An endpoint from the vault is an Azure OpenAI endpoint.
        if values.contains_key("MOLTEN_LLM_BASE_URL") && env("MOLTEN_LLM_PROVIDER").is_none() {
            values.insert("MOLTEN_LLM_PROVIDER".into(), "azure".into());
        }
        Ok(values)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

#[async_trait::async_trait]
impl SecretStore for KeyVaultSecrets {
    async fn get(&self, name: &str) -> Option<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some((value, at)) = cache.get(name) {
            if at.elapsed() < CACHE_FOR {
                return value.clone();
            }
        }
        match self.fetch(name).await {
            Ok(value) => {
                cache.insert(name.to_owned(), (value.clone(), Instant::now()));
                value
            }
            Err(e) => {
                tracing::error!(secret = name, error = %e, "Key Vault read failed");
                None
            }
        }
    }
}
