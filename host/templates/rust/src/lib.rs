//! `{{name}}`: counts the lines, words and characters of a text, or of a file in the user's
//! sandbox. Replace it with what your skill does; `molten skill test` runs `tests.toml`.

use molten_skill::{Context, Error};
use schemars::JsonSchema;
use serde::Deserialize;

/// What the model passes: a text, or the path of a file under /tmp.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// The text to count.
    #[serde(default)]
    text: Option<String>,
    /// A file in the user's sandbox to count instead, e.g. /tmp/notes.md.
    #[serde(default)]
    path: Option<String>,
}

fn count(args: Args, _context: &Context) -> Result<String, Error> {
    let text = match (args.text, args.path) {
        (Some(text), None) => text,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| Error::InvalidInput(format!("cannot read {path}: {e}")))?,
        _ => {
            return Err(Error::InvalidInput(
                "give exactly one of `text` and `path`".into(),
            ))
        }
    };
    molten_skill::log::debug(&format!("counting {} bytes", text.len()));
    Ok(format!(
        "{} lines, {} words, {} characters",
        text.lines().count(),
        text.split_whitespace().count(),
        text.chars().count()
    ))
}

molten_skill::skill!(
    name: "{{name}}",
    description: "Counts the lines, words and characters of a text, or of a file under /tmp.",
    run: count,
);
