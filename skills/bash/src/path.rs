//! Paths as the script sees them. The working directory lives in the shell (WASI has none);
//! a relative path is joined to it and `.`/`..` are folded lexically. Where the result points
//! is WASI's business: only the preopened sandbox exists, so `/etc/passwd` simply is not there.

use std::path::PathBuf;

/// The sandbox's mount point, the home directory and the starting directory.
pub const HOME: &str = "/tmp";

/// `name` made absolute against `cwd`, with `.` and `..` folded.
pub fn resolve(cwd: &str, name: &str) -> PathBuf {
    PathBuf::from(absolute(cwd, name))
}

/// Like [`resolve`], as a string.
pub fn absolute(cwd: &str, name: &str) -> String {
    let joined = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("{cwd}/{name}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The last component of `name`, as `basename` prints it.
pub fn basename(name: &str) -> &str {
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() {
        return if name.is_empty() { "" } else { "/" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Everything before the last component, as `dirname` prints it.
pub fn dirname(name: &str) -> &str {
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() {
        return if name.starts_with('/') { "/" } else { "." };
    }
    match trimmed.rfind('/') {
        None => ".",
        Some(i) => {
            let parent = trimmed[..i].trim_end_matches('/');
            if parent.is_empty() {
                "/"
            } else {
                parent
            }
        }
    }
}
