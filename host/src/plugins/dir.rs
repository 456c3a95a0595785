//! The plugin store in a local directory (the embedded default, `<data dir>/plugins`): watched
//! with `notify`, so a change is seen at once, and rescanned periodically by the caller as a
//! safety net (a watch can miss events, e.g. on network filesystems).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::Watcher as _;
use tokio::sync::Notify;

use super::{PluginError, PluginFiles, PluginStore, EXTENSIONS};

/// A directory of `<name>.wasm`, `<name>.toml` and `<name>.sig` files.
pub struct DirStore {
    dir: PathBuf,
    changed: Arc<Notify>,
    // Kept so the watch lasts as long as the store.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl DirStore {
    /// Opens (creating it if needed) and watches `dir`. Without a watch (the system refused
    /// one) changes are still found by the periodic rescan.
    pub fn open(dir: &Path) -> Result<Self, PluginError> {
        std::fs::create_dir_all(dir).map_err(|source| PluginError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let changed = Arc::new(Notify::new());
        let wake = changed.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                wake.notify_one();
            }
        })
        .and_then(|mut watcher| {
            watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Ok(watcher)
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the plugin directory; changes are found by the periodic rescan only");
                None
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            changed,
            _watcher: watcher,
        })
    }

    fn path(&self, name: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{name}.{ext}"))
    }

    fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PluginError + '_ {
        move |source| PluginError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The version of plugin `name`: size, change time and inode of each of its files, so a
    /// file rewritten or renamed over changes it.
    fn version(&self, name: &str) -> String {
        EXTENSIONS
            .iter()
            .map(|ext| match std::fs::metadata(self.path(name, ext)) {
                Ok(m) => format!("{}:{}.{}:{}", m.len(), m.ctime(), m.ctime_nsec(), m.ino()),
                Err(_) => "-".to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PluginError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io_error(path)(e)),
        }
    }
}

#[async_trait::async_trait]
impl PluginStore for DirStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn path_of(&self, name: &str, ext: &str) -> PathBuf {
        self.path(name, ext)
    }

    async fn list(&self) -> Result<BTreeMap<String, String>, PluginError> {
        let entries = std::fs::read_dir(&self.dir).map_err(Self::io_error(&self.dir))?;
        let mut names = std::collections::BTreeSet::new();
        for entry in entries {
            let path = entry.map_err(Self::io_error(&self.dir))?.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            // Dot files are installs in progress (and editors' swap files).
            if !stem.starts_with('.') && EXTENSIONS.contains(&ext) {
                names.insert(stem.to_owned());
            }
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let version = self.version(&name);
                (name, version)
            })
            .collect())
    }

    async fn read(&self, name: &str, version: &str) -> Result<Option<PluginFiles>, PluginError> {
        let [component, signature, manifest] =
            EXTENSIONS.map(|ext| Self::read_optional(&self.path(name, ext)));
        let files = PluginFiles::from_extensions([component?, signature?, manifest?]);
        // A file replaced while it was read: the set may be half old, half new.
        Ok((self.version(name) == version).then_some(files))
    }

    async fn put(&self, name: &str, files: &PluginFiles) -> Result<(), PluginError> {
        // The manifest last: a scan in between sees the old manifest with the new code, which
        // fails its signature or compiles as a new version of the same skill.
        for (ext, bytes) in files.by_extension() {
            let path = self.path(name, ext);
            match bytes {
                Some(bytes) => {
                    let tmp = self
                        .dir
                        .join(format!(".{name}.{ext}.{}.tmp", std::process::id()));
                    std::fs::write(&tmp, bytes).map_err(Self::io_error(&tmp))?;
                    std::fs::rename(&tmp, &path).map_err(Self::io_error(&path))?;
                }
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Self::io_error(&path)(e))
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, PluginError> {
        let mut found = false;
        // The manifest first: without it the plugin is gone at once.
        for ext in ["toml", "wasm", "sig"] {
            let path = self.path(name, ext);
            match std::fs::remove_file(&path) {
                Ok(()) => found = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io_error(&path)(e)),
            }
        }
        Ok(found)
    }

    fn changes(&self) -> Option<Arc<Notify>> {
        Some(self.changed.clone())
    }
}
