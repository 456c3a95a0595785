//! The `bash` skill: a bash interpreter with the common coreutils, compiled to a component.
//!
//! Each call starts a fresh shell in `/tmp`, the caller's sandbox. Nothing here polices what a
//! script may do: it has no processes to spawn and no environment to leak, WASI shows it only
//! the sandbox, the host caps its size, and fuel and the deadline bound every loop.

mod arith;
mod awk;
mod builtins;
mod commands;
mod expand;
mod fileutils;
mod glob;
mod io;
mod path;
mod pattern;
mod shell;
mod sysutils;
mod test;
mod textutils;

use serde::Deserialize;

use crate::io::{In, Io, Out, Overflow};

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

/// Most bytes of stdout and of stderr returned; the rest is counted and marked.
const STREAM_CAP: usize = 64 << 10;
/// Longest script accepted.
const MAX_COMMAND_BYTES: usize = 1 << 20;

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "command": {
      "type": "string",
      "description": "A bash script: pipes, redirections, loops, functions and the usual utilities (ls, cat, grep, sed, sort, find, ...) work. It runs in /tmp; files there persist between calls."
    }
  },
  "required": ["command"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    command: String,
}

/// The quota and usage of the sandbox, from the host.
pub(crate) fn sandbox_usage() -> molten::skill::sandbox::Sizes {
    molten::skill::sandbox::usage()
}

struct Bash;

impl Guest for Bash {
    fn describe() -> Descriptor {
        Descriptor {
            name: "bash".into(),
            description: "Run a bash script in the user's sandbox directory /tmp (files persist \
                          between calls; nothing outside it exists). Returns JSON with stdout, \
                          stderr and exit_code. Coreutils, grep, sed, find, sort, diff, xargs \
                          and friends are available; there is no network and no package manager."
                .into(),
            parameters: SCHEMA.into(),
        }
    }

    fn invoke(arguments: String, _context: CallContext) -> Result<String, SkillError> {
        let args: Arguments = serde_json::from_str(&arguments).map_err(|e| {
            SkillError::InvalidInput(format!(
                "arguments must be {{\"command\": \"<bash script>\"}}: {e}"
            ))
        })?;
        if args.command.len() > MAX_COMMAND_BYTES {
            return Err(SkillError::InvalidInput(format!(
                "the command is {} bytes; at most {MAX_COMMAND_BYTES} are accepted. Write long \
                 content to a file in smaller pieces.",
                args.command.len()
            )));
        }
        Ok(run(&args.command))
    }
}

/// Runs `script` in a fresh shell and reports what it printed and how it exited, as JSON.
fn run(script: &str) -> String {
    let stdout = Out::buffer(STREAM_CAP, Overflow::Truncate);
    let stderr = Out::buffer(STREAM_CAP, Overflow::Truncate);
    let io = Io {
        stdin: In::default(),
        stdout: stdout.clone(),
        stderr: stderr.clone(),
    };
    let status = shell::Shell::new().run_script(script, &io);
    serde_json::json!({
        "stdout": shown("stdout", stdout),
        "stderr": shown("stderr", stderr),
        "exit_code": status,
    })
    .to_string()
}

/// A stream's text with a visible marker where it was cut.
fn shown(name: &str, out: Out) -> String {
    let (bytes, dropped) = out.finish();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if dropped > 0 {
        text.push_str(&format!(
            "\n[{name} truncated: {dropped} more bytes not shown]"
        ));
    }
    text
}

export!(Bash);
