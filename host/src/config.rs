//! Where molten keeps its state and finds its skills.
//!
//! Command-line flags and `MOLTEN_*` environment variables (handled by clap in `main.rs`) come
//! first; otherwise the XDG data directory is used.

use std::path::PathBuf;

/// Settings after defaults are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Sandboxes and caches live here.
    pub data_dir: PathBuf,
    /// Directories holding `<name>.toml` + `<name>.wasm` skills, loaded in order.
    pub skills_dirs: Vec<PathBuf>,
}

/// A setting that could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a data directory nor a home directory is known.
    #[error("no data directory: set --data-dir or MOLTEN_DATA_DIR (or HOME)")]
    NoDataDir,
}

impl Config {
    /// Applies defaults: data in `$XDG_DATA_HOME/molten` or `~/.local/share/molten`; skills in
    /// `<data dir>/skills` (where `scripts/setup` installs the built-in ones).
    pub fn resolve(
        data_dir: Option<PathBuf>,
        skills_dirs: Vec<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let data_dir = match data_dir {
            Some(dir) => dir,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let skills_dirs = if skills_dirs.is_empty() {
            vec![data_dir.join("skills")]
        } else {
            skills_dirs
        };
        Ok(Self {
            data_dir,
            skills_dirs,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_default_to_the_data_dir() {
        let config = Config::resolve(Some("/data".into()), Vec::new()).unwrap();
        assert_eq!(config.skills_dirs, vec![PathBuf::from("/data/skills")]);
    }

    #[test]
    fn explicit_skills_dirs_win() {
        let dirs = vec![PathBuf::from("a"), PathBuf::from("b")];
        let config = Config::resolve(Some("/data".into()), dirs.clone()).unwrap();
        assert_eq!(config.skills_dirs, dirs);
    }
}
