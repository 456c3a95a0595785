//! `[azure]`: the storage account replicas share, Key Vault, and the managed identity.

use serde::Deserialize;

use super::{parse_url, ConfigError, Secret};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AzureFile {
    storage: Option<Secret>,
    storage_account: Option<String>,
    queue: Option<String>,
    container: Option<String>,
    table_prefix: Option<String>,
    key_vault_url: Option<String>,
    client_id: Option<String>,
}

pub(super) fn build_azure(a: AzureFile) -> Result<AzureConfig, ConfigError> {
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
        storage_name(&format!("azure.{key}"), value, table)
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

/// Checks the name of a queue or blob container (`table`: of a table, which has no hyphens)
/// for the config key `key`.
pub(super) fn storage_name(key: &str, value: String, table: bool) -> Result<String, ConfigError> {
    let ok = (3..=56).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || (!table && b == b'-'))
        && value.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
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
}
