//! `[plugins]`: where the plugin store is (a directory, or an Azure blob container), which keys
//! it trusts, which digests are pinned, and which built-in skills a plugin may replace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{positive, ConfigError};
use crate::plugins::{PluginPolicy, Trust};

/// How often the store is scanned when nothing says it changed.
const DEFAULT_POLL_SECS: u64 = 2;

/// `[plugins]`, checked.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// The directory store (default `<data dir>/plugins`).
    pub dir: PathBuf,
    /// The blob container of `[azure] storage`, which replaces the directory when set.
    pub container: Option<String>,
    /// Trust, built-in replacement and polling.
    pub policy: PluginPolicy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginsFile {
    dir: Option<PathBuf>,
    container: Option<String>,
    poll_secs: Option<u64>,
    #[serde(default)]
    trusted_keys: Vec<String>,
    require_signatures: Option<bool>,
    #[serde(default)]
    replace_builtins: Vec<String>,
    #[serde(default)]
    pin: BTreeMap<String, String>,
}

impl PluginsFile {
    /// Checks keys, pins and names. Signatures are required by default once a key is trusted.
    pub(super) fn build(self, data_dir: &Path) -> Result<PluginsConfig, ConfigError> {
        let keys = self
            .trusted_keys
            .iter()
            .enumerate()
            .map(|(i, text)| {
                crate::plugins::signature::parse_public_key(text).map_err(|message| {
                    ConfigError::Invalid {
                        key: format!("plugins.trusted_keys[{i}]"),
                        message,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let require_signatures = self.require_signatures.unwrap_or(!keys.is_empty());
        if require_signatures && keys.is_empty() {
            return Err(ConfigError::Invalid {
                key: "plugins.require_signatures".into(),
                message: "is on but plugins.trusted_keys is empty, so every plugin would be \
                          refused; add the public key `molten skill keygen` printed"
                    .into(),
            });
        }
        for (name, digest) in &self.pin {
            let hex = digest.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid {
                    key: format!("plugins.pin.{name}"),
                    message: format!(
                        "`{digest}` is not `sha256:` and 64 hex digits; copy the digest \
                         `molten skill list` shows"
                    ),
                });
            }
        }
        for (i, name) in self.replace_builtins.iter().enumerate() {
            if !crate::skills::manifest::is_valid_name(name) {
                return Err(ConfigError::Invalid {
                    key: format!("plugins.replace_builtins[{i}]"),
                    message: format!("`{name}` is not a skill name"),
                });
            }
        }
        let container = self
            .container
            .filter(|c| !c.is_empty())
            .map(|c| super::azure::storage_name("plugins.container", c, false))
            .transpose()?;
        Ok(PluginsConfig {
            dir: self
                .dir
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or_else(|| data_dir.join("plugins")),
            container,
            policy: PluginPolicy {
                trust: Trust {
                    keys,
                    require_signatures,
                    pins: self
                        .pin
                        .into_iter()
                        .map(|(name, digest)| (name, digest.to_ascii_lowercase()))
                        .collect(),
                },
                replace_builtins: self.replace_builtins.into_iter().collect::<BTreeSet<_>>(),
                poll: Duration::from_secs(positive(
                    "plugins.poll_secs",
                    self.poll_secs,
                    DEFAULT_POLL_SECS,
                )?),
            },
        })
    }
}
