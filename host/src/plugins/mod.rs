//! The operators' plugin store: skills added, replaced and removed while molten runs. A store
//! (a local directory, or an Azure blob container shared by every replica) holds
//! `<name>.wasm`, `<name>.toml` and optionally `<name>.sig`; [`Plugins`] scans it when it
//! changes (and every `poll_secs` as a safety net), checks each new version (signature, pinned
//! digest, built-in names), compiles and describes it off the async executor, and only then
//! swaps it in. A refused or broken version never replaces a working one; calls already running
//! finish on the version they started with.

mod blob;
mod dir;
pub mod signature;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{watch, Mutex, Notify};

pub use blob::BlobStore;
pub use dir::DirStore;
pub use signature::{Trust, Verified};

use crate::metrics::PluginLoad;
use crate::skills::{LoadError, Origin, Registry, SkillFiles};

/// A plugin's files, in the order they are written: component, signature, manifest.
pub(crate) const EXTENSIONS: [&str; 3] = ["wasm", "sig", "toml"];

/// How long a directory must be quiet after a change before it is scanned, so that a copy in
/// progress is read once it is whole rather than several times half-way.
const SETTLE: Duration = Duration::from_millis(50);

/// A store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A file of the directory store.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The blob container.
    #[error("plugin container: {0}")]
    Azure(String),
}

/// One plugin's files as read together; any may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginFiles {
    /// `<name>.wasm`.
    pub component: Option<Vec<u8>>,
    /// `<name>.toml`.
    pub manifest: Option<Vec<u8>>,
    /// `<name>.sig`.
    pub signature: Option<Vec<u8>>,
}

impl PluginFiles {
    /// The files by extension, in [`EXTENSIONS`] order (the order they are written in).
    pub fn by_extension(&self) -> [(&'static str, Option<&[u8]>); 3] {
        [
            (EXTENSIONS[0], self.component.as_deref()),
            (EXTENSIONS[1], self.signature.as_deref()),
            (EXTENSIONS[2], self.manifest.as_deref()),
        ]
    }

    /// The set of the files read for each of [`EXTENSIONS`], in that order.
    pub fn from_extensions([component, signature, manifest]: [Option<Vec<u8>>; 3]) -> Self {
        Self {
            component,
            manifest,
            signature,
        }
    }
}

/// Where plugins are kept: a directory or a blob container.
#[async_trait::async_trait]
pub trait PluginStore: Send + Sync {
    /// Where it is, for logs and messages.
    fn location(&self) -> String;

    /// How plugin `name`'s file with extension `ext` is named in messages.
    fn path_of(&self, name: &str, ext: &str) -> PathBuf;

    /// The plugins it holds now, each with a version that changes whenever any of its files
    /// does. An unchanged store costs one listing.
    async fn list(&self) -> Result<BTreeMap<String, String>, PluginError>;

    /// Plugin `name`'s files, if they are still at `version` once read (else the caller tries
    /// again at the next scan: a half-written set is never used).
    async fn read(&self, name: &str, version: &str) -> Result<Option<PluginFiles>, PluginError>;

    /// Writes plugin `name`, component and signature first and manifest last, each file whole
    /// or not at all; a file `files` lacks is removed.
    async fn put(&self, name: &str, files: &PluginFiles) -> Result<(), PluginError>;

    /// Removes plugin `name`, manifest first; returns whether it had any file.
    async fn delete(&self, name: &str) -> Result<bool, PluginError>;

    /// Signalled when the store may have changed, if it can tell; otherwise it is polled.
    fn changes(&self) -> Option<Arc<Notify>>;
}

/// What the operator configured for plugins, beyond where the store is.
#[derive(Debug, Clone, Default)]
pub struct PluginPolicy {
    /// Keys, required signatures and pinned digests.
    pub trust: Trust,
    /// Built-in skills a plugin of the same name may replace.
    pub replace_builtins: BTreeSet<String>,
    /// How often the store is scanned even without a change notice.
    pub poll: Duration,
}

/// What was last seen of one plugin in the store.
struct Seen {
    /// The store's version of its files.
    version: String,
    /// Digest of the component and manifest now live, if any.
    live: Option<String>,
}

/// Keeps the registry's plugins equal to what the store holds.
pub struct Plugins {
    store: Arc<dyn PluginStore>,
    registry: Arc<Registry>,
    policy: PluginPolicy,
    seen: Mutex<BTreeMap<String, Seen>>,
    loads: Family<PluginLoad, Counter>,
}

impl Plugins {
    /// Syncs `registry` with `store` under `policy` (call [`Plugins::sync`] or
    /// [`Plugins::run`] to start).
    pub fn new(store: Arc<dyn PluginStore>, registry: Arc<Registry>, policy: PluginPolicy) -> Self {
        Self {
            store,
            registry,
            policy,
            seen: Mutex::new(BTreeMap::new()),
            loads: Family::default(),
        }
    }

    /// Plugins loaded, replaced, refused and removed, for `/metrics`.
    pub fn loads(&self) -> &Family<PluginLoad, Counter> {
        &self.loads
    }

    fn count(&self, result: &'static str) {
        self.loads.get_or_create(&PluginLoad { result }).inc();
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn PluginStore> {
        &self.store
    }

    /// One scan: plugins gone from the store are removed, new and changed ones checked,
    /// compiled and swapped in (or refused, the working version staying live).
    pub async fn sync(&self) -> Result<(), PluginError> {
        let listed = self.store.list().await?;
        let mut seen = self.seen.lock().await;
        let gone: Vec<String> = seen
            .keys()
            .filter(|name| !listed.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            let removed = seen.remove(&name).and_then(|s| s.live);
            if self.registry.remove(&name) {
                self.count("removed");
                tracing::info!(plugin = %name, digest = removed.as_deref().unwrap_or("-"), "plugin removed");
            }
        }
        for (name, version) in listed {
            if seen.get(&name).is_some_and(|s| s.version == version) {
                continue;
            }
            let Some(files) = self.store.read(&name, &version).await? else {
                tracing::debug!(plugin = %name, "plugin changed while read; reading it again at the next scan");
                continue;
            };
            let live = seen.get(&name).and_then(|s| s.live.clone());
            let live = self.consider(&name, files, live).await;
            seen.insert(name, Seen { version, live });
        }
        Ok(())
    }

    /// Checks, compiles and swaps in one version of plugin `name`; returns the digest now live.
    async fn consider(
        &self,
        name: &str,
        files: PluginFiles,
        live: Option<String>,
    ) -> Option<String> {
        let path = |ext| self.store.path_of(name, ext);
        let digest = files
            .component
            .as_deref()
            .map_or_else(|| "-".to_owned(), signature::digest);
        let refuse = |error: LoadError| {
            self.count("refused");
            tracing::warn!(plugin = %name, %digest, %error, "plugin refused; the version running before (if any) stays");
            self.registry.refuse(name, error);
            live.clone()
        };
        let (component, manifest) = match (files.component, files.manifest) {
            (Some(component), Some(manifest)) => (component, manifest),
            (None, _) => {
                return refuse(LoadError::Refused {
                    path: path("toml"),
                    reason: format!("no component beside it; install {name}.wasm too"),
                })
            }
            (Some(_), None) => {
                return refuse(LoadError::Refused {
                    path: path("wasm"),
                    reason: format!("no manifest beside it; install {name}.toml too"),
                })
            }
        };
        if self.registry.is_builtin(name) && !self.policy.replace_builtins.contains(name) {
            return refuse(LoadError::Refused {
                path: path("wasm"),
                reason: format!(
                    "a built-in skill is called `{name}`; rename the plugin, or add \"{name}\" to \
                     plugins.replace_builtins to let it replace the built-in one"
                ),
            });
        }
        let signature = files
            .signature
            .map(|s| String::from_utf8_lossy(&s).into_owned());
        let verified =
            match self
                .policy
                .trust
                .check(name, &component, &manifest, signature.as_deref())
            {
                Ok(verified) => verified,
                Err(reason) => {
                    return refuse(LoadError::Refused {
                        path: path(if signature.is_some() { "sig" } else { "wasm" }),
                        reason,
                    })
                }
            };
        let identity = format!("{}+{}", verified.digest, signature::digest(&manifest));
        if live.as_deref() == Some(identity.as_str()) {
            // Touched, not changed: nothing to swap.
            return live;
        }
        let manifest = match String::from_utf8(manifest) {
            Ok(text) => text,
            Err(_) => {
                return refuse(LoadError::Manifest {
                    path: path("toml"),
                    reason: "is not UTF-8 text".into(),
                })
            }
        };
        let files = SkillFiles {
            manifest_path: path("toml"),
            manifest,
            component_path: path("wasm"),
            component,
        };
        let origin = Origin::Plugin {
            digest: verified.digest.clone(),
            key: verified.key.clone(),
        };
        match self.registry.prepare(files, origin).await {
            Ok(skill) => {
                self.registry.install(skill);
                self.count(if live.is_some() { "replaced" } else { "loaded" });
                tracing::info!(
                    plugin = %name,
                    digest = %verified.digest,
                    key = verified.key.as_deref().unwrap_or("unsigned"),
                    "{}", if live.is_some() { "plugin replaced" } else { "plugin loaded" }
                );
                Some(identity)
            }
            Err(error) => refuse(error),
        }
    }

    /// Scans whenever the store signals a change (after it settles) and every `poll`, until
    /// `shutdown` turns true. A scan that fails is logged and retried at the next one.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let changes = self.store.changes();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.policy.poll) => {}
                _ = async {
                    match &changes {
                        Some(changes) => changes.notified().await,
                        None => std::future::pending().await,
                    }
                } => tokio::time::sleep(SETTLE).await,
                _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => return,
            }
            if let Err(error) = self.sync().await {
                tracing::warn!(store = %self.store.location(), %error, "cannot scan the plugin store; trying again");
            }
        }
    }
}
