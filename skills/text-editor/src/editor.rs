//! The five editor commands over `std::fs`, which WASI maps onto the caller's sandbox.

use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;

use crate::history;
use crate::SkillError;

/// JSON Schema of the arguments, as offered to the LLM.
pub const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "command": {
      "type": "string",
      "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
      "description": "The operation to perform."
    },
    "path": {
      "type": "string",
      "description": "Absolute path of the file or directory, e.g. /tmp/notes.md."
    },
    "file_text": {
      "type": "string",
      "description": "create: the whole content of the file."
    },
    "view_range": {
      "type": "array",
      "items": {"type": "integer"},
      "minItems": 2,
      "maxItems": 2,
      "description": "view: [first, last] line numbers, 1-based; last = -1 means to the end."
    },
    "old_str": {
      "type": "string",
      "description": "str_replace: text that appears exactly once in the file."
    },
    "new_str": {
      "type": "string",
      "description": "str_replace: replacement text (empty deletes); insert: the text to insert."
    },
    "insert_line": {
      "type": "integer",
      "description": "insert: the line after which to insert; 0 inserts at the top."
    }
  },
  "required": ["command", "path"]
}"#;

/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;

/// WASI's errno for "capabilities insufficient": what the sandbox answers for a path outside it.
const WASI_ENOTCAPABLE: i32 = 76;

#[derive(Deserialize)]
struct Args {
    command: String,
    path: String,
    file_text: Option<String>,
    view_range: Option<Vec<i64>>,
    old_str: Option<String>,
    new_str: Option<String>,
    insert_line: Option<i64>,
}

/// Parses `arguments` and runs the command they name.
pub fn run(arguments: &str) -> Result<String, SkillError> {
    let args: Args = serde_json::from_str(arguments).map_err(|e| {
        SkillError::InvalidInput(format!(
            "The arguments are not valid: {e}. Send a JSON object with at least \"command\" and \"path\"."
        ))
    })?;
    let path = args.path.as_str();
    if !path.starts_with('/') {
        return Err(SkillError::InvalidInput(format!(
            "The path {path} is not an absolute path. Use an absolute path under /tmp, e.g. /tmp/{}.",
            path.trim_start_matches("./")
        )));
    }
    match args.command.as_str() {
        "view" => view(path, args.view_range.as_deref()),
        "create" => create(path, required(args.file_text, "file_text", "create")?),
        "str_replace" => str_replace(
            path,
            &required(args.old_str, "old_str", "str_replace")?,
            args.new_str.as_deref().unwrap_or(""),
        ),
        "insert" => insert(
            path,
            required(args.insert_line, "insert_line", "insert")?,
            &required(args.new_str, "new_str", "insert")?,
        ),
        "undo_edit" => undo_edit(path),
        other => Err(SkillError::InvalidInput(format!(
            "Unrecognized command {other}. The allowed commands are: view, create, str_replace, insert, undo_edit."
        ))),
    }
}

fn required<T>(value: Option<T>, name: &str, command: &str) -> Result<T, SkillError> {
    value.ok_or_else(|| {
        SkillError::InvalidInput(format!(
            "Parameter `{name}` is required for command: {command}."
        ))
    })
}

/// Turns an I/O error into a message the LLM can act on.
fn io_error(path: &str, action: &str, e: io::Error) -> SkillError {
    if e.kind() == io::ErrorKind::NotFound {
        return SkillError::InvalidInput(format!(
            "The path {path} does not exist. Check the path, or view /tmp to list the files."
        ));
    }
    if e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(WASI_ENOTCAPABLE) {
        return SkillError::Denied(format!(
            "Cannot {action} {path}: the sandbox does not allow it ({e}). Only files under /tmp are available."
        ));
    }
    SkillError::Failed(format!("Cannot {action} {path}: {e}."))
}

fn read_text(path: &str) -> Result<String, SkillError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, "read", e))?;
    String::from_utf8(bytes).map_err(|_| {
        SkillError::Failed(format!(
            "{path} is not a UTF-8 text file; this tool edits text files only."
        ))
    })
}

fn write_text(path: &str, text: &str) -> Result<(), SkillError> {
    fs::write(path, text).map_err(|e| io_error(path, "write", e))
}

/// Splits into lines, each keeping its `\n`; a trailing newline does not start an extra line.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// `cat -n` formatting of `lines`, numbering from `first`.
fn numbered(lines: &[&str], first: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\n').unwrap_or(line);
        out.push_str(&format!("{:6}\t{}\n", first + i, line));
    }
    out
}

fn view(path: &str, range: Option<&[i64]>) -> Result<String, SkillError> {
    let meta = fs::metadata(path).map_err(|e| io_error(path, "view", e))?;
    if meta.is_dir() {
        if range.is_some() {
            return Err(SkillError::InvalidInput(
                "The `view_range` parameter is not allowed when `path` points to a directory."
                    .into(),
            ));
        }
        return view_dir(path);
    }
    let text = read_text(path)?;
    let all = lines(&text);
    let (first, last) = match range {
        None => (1, all.len()),
        Some(range) => check_range(range, all.len())?,
    };
    let shown = if all.is_empty() {
        &[][..]
    } else {
        &all[first - 1..last]
    };
    Ok(format!(
        "Here's the result of running `cat -n` on {path}:\n{}",
        numbered(shown, first)
    ))
}

/// Validates a 1-based inclusive `[first, last]` range (`last = -1`: to the end).
fn check_range(range: &[i64], n_lines: usize) -> Result<(usize, usize), SkillError> {
    let invalid = |why: String| {
        SkillError::InvalidInput(format!("Invalid `view_range` parameter {range:?}: {why}"))
    };
    let [first, last] = range else {
        return Err(invalid("it should be a list of two integers.".into()));
    };
    let n = n_lines as i64;
    if *first < 1 || *first > n.max(1) {
        return Err(invalid(format!(
            "its first element {first} should be within the range of lines of the file: [1, {n}]."
        )));
    }
    let last = if *last == -1 { n } else { *last };
    if last > n {
        return Err(invalid(format!(
            "its second element {last} should be smaller than the number of lines in the file: {n}."
        )));
    }
    if last < *first {
        return Err(invalid(format!(
            "its second element {last} should be larger or equal than its first {first}."
        )));
    }
    Ok((*first as usize, last.max(0) as usize))
}

/// Lists non-hidden entries up to two levels deep, sorted.
fn view_dir(path: &str) -> Result<String, SkillError> {
    let mut entries = Vec::new();
    collect_entries(Path::new(path), 2, &mut entries).map_err(|e| io_error(path, "list", e))?;
    entries.sort();
    let mut out = format!(
        "Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{path}\n"
    );
    for entry in entries {
        out.push_str(&entry);
        out.push('\n');
    }
    Ok(out)
}

fn collect_entries(dir: &Path, depth: usize, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let child = dir.join(&name);
        let is_dir = entry.file_type()?.is_dir();
        out.push(format!(
            "{}{}",
            child.display(),
            if is_dir { "/" } else { "" }
        ));
        if is_dir && depth > 1 {
            collect_entries(&child, depth - 1, out)?;
        }
    }
    Ok(())
}

fn create(path: &str, text: String) -> Result<String, SkillError> {
    let previous = match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(SkillError::InvalidInput(format!(
                "{path} is a directory; give a file path to create."
            )))
        }
        Ok(_) => Some(read_text(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(path, "create", e)),
    };
    if let Some(parent) = Path::new(path).parent() {
        fs::create_dir_all(parent).map_err(|e| io_error(path, "create", e))?;
    }
    write_text(path, &text)?;
    history::record(path, previous.as_deref())?;
    Ok(match previous {
        None => format!("File created successfully at: {path}"),
        Some(_) => format!(
            "File overwritten successfully at: {path} (undo_edit restores the previous content)"
        ),
    })
}

fn str_replace(path: &str, old: &str, new: &str) -> Result<String, SkillError> {
    if old.is_empty() {
        return Err(SkillError::InvalidInput(
            "Parameter `old_str` must not be empty; to add text use the insert command.".into(),
        ));
    }
    let text = read_text(path)?;
    let starts: Vec<usize> = text.match_indices(old).map(|(i, _)| i).collect();
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    match starts.as_slice() {
        [] => Err(SkillError::InvalidInput(format!(
            "No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
        ))),
        [start] => {
            let edited = format!("{}{new}{}", &text[..*start], &text[start + old.len()..]);
            write_text(path, &edited)?;
            history::record(path, Some(&text))?;
            let line = line_of(*start);
            let span = new.matches('\n').count();
            Ok(format!(
                "The file {path} has been edited. {}Review the changes and make sure they are as expected. Edit the file again if necessary.",
                snippet(path, &edited, line, span)
            ))
        }
        many => {
            let lines: Vec<usize> = many.iter().map(|s| line_of(*s)).collect();
            Err(SkillError::InvalidInput(format!(
                "No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines:?}. Please ensure it is unique."
            )))
        }
    }
}

fn insert(path: &str, after: i64, new: &str) -> Result<String, SkillError> {
    let text = read_text(path)?;
    let all = lines(&text);
    let n = all.len();
    if after < 0 || after as usize > n {
        return Err(SkillError::InvalidInput(format!(
            "Invalid `insert_line` parameter: {after}. It should be within the range of lines of the file: [0, {n}]."
        )));
    }
    let after = after as usize;
    let offset: usize = all[..after].iter().map(|l| l.len()).sum();
    let mut inserted = String::new();
    if offset == text.len() && !text.is_empty() && !text.ends_with('\n') {
        inserted.push('\n');
    }
    inserted.push_str(new);
    if !new.ends_with('\n') {
        inserted.push('\n');
    }
    let edited = format!("{}{inserted}{}", &text[..offset], &text[offset..]);
    write_text(path, &edited)?;
    history::record(path, Some(&text))?;
    let span = new.matches('\n').count();
    Ok(format!(
        "The file {path} has been edited. {}Review the changes and make sure they are as expected (correct indentation, no duplicate lines). Edit the file again if necessary.",
        snippet(path, &edited, after + 1, span)
    ))
}

/// The edited region (lines `line..=line+span`) with context, numbered.
fn snippet(path: &str, text: &str, line: usize, span: usize) -> String {
    let all = lines(text);
    let first = line.saturating_sub(SNIPPET_CONTEXT).max(1);
    let last = (line + span + SNIPPET_CONTEXT).min(all.len());
    let shown = if first <= last {
        &all[first - 1..last]
    } else {
        &[][..]
    };
    format!(
        "Here's the result of running `cat -n` on a snippet of {path}:\n{}",
        numbered(shown, first)
    )
}

fn undo_edit(path: &str) -> Result<String, SkillError> {
    match history::pop(path)? {
        None => Err(SkillError::InvalidInput(format!(
            "No edit history found for {path}."
        ))),
        Some(None) => {
            fs::remove_file(path).map_err(|e| io_error(path, "remove", e))?;
            Ok(format!(
                "Last edit to {path} undone: the file did not exist before it, so it was removed."
            ))
        }
        Some(Some(previous)) => {
            write_text(path, &previous)?;
            Ok(format!(
                "Last edit to {path} undone successfully. {}",
                view(path, None)?
            ))
        }
    }
}
