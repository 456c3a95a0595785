//! Per-user sandbox directories: the only files a skill can ever see.
//!
//! Each user gets `<root>/<encoded user id>/`, preopened into the skill as `/tmp`. WASI (through
//! cap-std) resolves every guest path inside that directory handle, so `..`, absolute host paths
//! and symlinks pointing out of it fail inside the runtime; nothing here inspects guest paths.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

/// The directory holding every user's sandbox.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    root: PathBuf,
}

impl Sandboxes {
    /// Sandboxes live under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The sandbox directory of `user`, created if missing.
    pub fn dir_for(&self, user: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(encode_user(user));
        // This runs on every call: one stat when the directory exists, which is the usual case.
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(dir)
    }
}

/// Maps any user id to one safe directory name, injectively: letters, digits, `-` and `_` stay;
/// every other byte becomes `%XX`. So `.`, `..`, `/` and NUL can never form a path component,
/// and two different ids never share a directory. The empty id becomes `%`.
fn encode_user(user: &str) -> String {
    if user.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_become_single_safe_components() {
        assert_eq!(encode_user("alice"), "alice");
        assert_eq!(encode_user("telegram:42"), "telegram%3A42");
        assert_eq!(encode_user(".."), "%2E%2E");
        assert_eq!(encode_user("../../etc"), "%2E%2E%2F%2E%2E%2Fetc");
        assert_eq!(encode_user(""), "%");
        assert_eq!(encode_user("é"), "%C3%A9");
        // Injective: an id that looks like an encoding is itself encoded.
        assert_ne!(encode_user("%3A"), encode_user(":"));
    }

    #[test]
    fn dir_for_stays_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sandboxes");
        let sandboxes = Sandboxes::new(&root);
        for user in ["alice", "..", "/etc", "a/../../b", ""] {
            let dir = sandboxes.dir_for(user).unwrap();
            assert_eq!(dir.parent().unwrap(), root, "{user:?}");
            assert!(dir.is_dir());
        }
    }
}
