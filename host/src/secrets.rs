//! Where secret values come from. Skills name secrets in their manifests; the host resolves the
//! names here and adds the values to allowed requests itself, so a skill never holds one.
//!
//! The embedded default reads `[secrets]` of the config file and `MOLTEN_SECRET_<NAME>`
//! environment variables (the name upper-cased, `-` as `_`); Azure Key Vault implements the same
//! trait.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Secret;

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
