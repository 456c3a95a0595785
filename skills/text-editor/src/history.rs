//! Per-file undo history, kept in the sandbox so it survives between calls.
//!
//! Each edited file gets a directory `/tmp/.molten/text_editor/history/<hash>/` holding the
//! file's path (to rule out hash collisions) and one snapshot per edit, numbered in order. A
//! snapshot is the content before the edit, or a marker that the file did not exist.

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::SkillError;

const ROOT: &str = "/tmp/.molten/text_editor/history";
/// Snapshots kept per file; older ones are dropped so history cannot fill the sandbox.
const MAX_SNAPSHOTS: usize = 10;
const ABSENT: &[u8] = b"A";
const PRESENT: u8 = b'F';

fn dir_for(path: &str) -> PathBuf {
    // FNV-1a: stable across builds, unlike std's randomly keyed hasher.
    let hash = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    PathBuf::from(format!("{ROOT}/{hash:016x}"))
}

fn failed(e: io::Error) -> SkillError {
    SkillError::Failed(format!("Cannot update the undo history: {e}."))
}

/// Snapshot numbers present for `path`, oldest first; empty if the directory belongs to another
/// path or does not exist.
fn snapshots(dir: &PathBuf, path: &str) -> io::Result<Vec<u64>> {
    match fs::read_to_string(dir.join("path")) {
        Ok(owner) if owner == path => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut seqs: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Records the state of `path` before an edit: `None` if it did not exist.
pub fn record(path: &str, previous: Option<&str>) -> Result<(), SkillError> {
    let dir = dir_for(path);
    let mut seqs = snapshots(&dir, path).map_err(failed)?;
    if seqs.is_empty() {
        // A fresh start (or a hash collision with another file): clear whatever is there.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(failed)?;
        fs::write(dir.join("path"), path).map_err(failed)?;
    }
    let next = seqs.last().map_or(0, |s| s + 1);
    let body = match previous {
        None => ABSENT.to_vec(),
        Some(text) => [&[PRESENT], text.as_bytes()].concat(),
    };
    fs::write(dir.join(format!("{next:08}")), body).map_err(failed)?;
    seqs.push(next);
    while seqs.len() > MAX_SNAPSHOTS {
        let oldest = seqs.remove(0);
        fs::remove_file(dir.join(format!("{oldest:08}"))).map_err(failed)?;
    }
    Ok(())
}

/// Takes the newest snapshot of `path`: `None` if there is no history, `Some(None)` if the file
/// did not exist before the last edit, `Some(Some(text))` otherwise.
pub fn pop(path: &str) -> Result<Option<Option<String>>, SkillError> {
    let dir = dir_for(path);
    let Some(last) = snapshots(&dir, path).map_err(failed)?.pop() else {
        return Ok(None);
    };
    let file = dir.join(format!("{last:08}"));
    let body = fs::read(&file).map_err(failed)?;
    fs::remove_file(&file).map_err(failed)?;
    match body.split_first() {
        Some((&PRESENT, text)) => Ok(Some(Some(String::from_utf8_lossy(text).into_owned()))),
        _ => Ok(Some(None)),
    }
}
