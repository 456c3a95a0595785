//! Pathname expansion: `*.txt`, `src/*/mod.rs`, `[ab]?`. Matches are sorted; names starting
//! with `.` match only a pattern that starts with `.`; no match leaves the word as it was.

use crate::path;
use crate::pattern;

/// The paths matching `pat` (relative to `cwd` unless absolute), as the script would write them.
pub fn expand(cwd: &str, pat: &str) -> Vec<String> {
    let absolute = pat.starts_with('/');
    let parts: Vec<&str> = pat.split('/').filter(|p| !p.is_empty()).collect();
    // (display form, absolute path)
    let mut found = vec![(
        if absolute {
            "/".to_owned()
        } else {
            String::new()
        },
        if absolute {
            "/".to_owned()
        } else {
            cwd.to_owned()
        },
    )];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for (shown, real) in &found {
            let join = |name: &str| {
                let shown = if shown.is_empty() || shown.ends_with('/') {
                    format!("{shown}{name}")
                } else {
                    format!("{shown}/{name}")
                };
                (shown, path::absolute(real, name))
            };
            if !pattern::has_glob(part) {
                let name = pattern::unescape(part);
                let (s, r) = join(&name);
                if std::fs::symlink_metadata(&r).is_ok() {
                    next.push((s, r));
                }
                continue;
            }
            let Some(re) = pattern::compile(part) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(real) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| last || e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && re.is_match(n))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        found = next;
        if found.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = found
        .into_iter()
        .map(|(s, _)| {
            if pat.ends_with('/') {
                format!("{s}/")
            } else {
                s
            }
        })
        .collect();
    out.sort();
    out
}
