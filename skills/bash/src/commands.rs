//! The commands a script can run: shell builtins and the utilities, all in this process. Each is
//! a function from the shell and its streams plus `argv` to an exit status.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::io::{describe, Io};
use crate::path;
use crate::shell::{Flow, Shell};
use crate::{builtins, fileutils, sysutils, textutils};

/// Why a command stopped early: a message for stderr (prefixed with the command's name) and a
/// status, or a change of control flow (`exit`, `return`, `break`, `continue`).
#[derive(Debug)]
pub enum Fail {
    /// A message and the status to exit with.
    Msg(String, i32),
    /// `exit`, `return`, `break` or `continue` passing through.
    Flow(Flow),
}

impl Fail {
    /// A failure with status 1.
    pub fn msg(message: impl Into<String>) -> Self {
        Fail::Msg(message.into(), 1)
    }

    /// `name: <what the error means>`, status 1.
    pub fn io(name: &str, e: &std::io::Error) -> Self {
        Fail::msg(format!("{name}: {}", describe(e)))
    }
}

/// What a command's result is.
pub type Outcome = Result<i32, Fail>;

/// A command's view of the shell and its streams.
pub struct Ctx<'a> {
    /// The shell running the command.
    pub sh: &'a mut Shell,
    /// Its standard streams, redirections applied.
    pub io: &'a Io,
}

impl Ctx<'_> {
    /// Writes to stdout; a full pipe or disk ends the command with an error.
    pub fn out(&self, bytes: impl AsRef<[u8]>) -> Result<(), Fail> {
        self.io
            .stdout
            .write(bytes.as_ref())
            .map_err(|e| Fail::msg(format!("write error: {}", describe(&e))))
    }

    /// Writes `command: message` to stderr.
    pub fn warn(&self, command: &str, message: impl AsRef<str>) {
        let _ = self
            .io
            .stderr
            .write(format!("{command}: {}\n", message.as_ref()).as_bytes());
    }

    /// A script path resolved against the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        path::resolve(&self.sh.cwd, name)
    }

    /// The bytes of an input operand: `-` is stdin, `/dev/null` is empty.
    pub fn input(&self, name: &str) -> Result<Vec<u8>, Fail> {
        match name {
            "-" | "/dev/stdin" => Ok(self.io.stdin.read_all()),
            "/dev/null" => Ok(Vec::new()),
            _ => {
                let p = self.path(name);
                if p.is_dir() {
                    return Err(Fail::msg(format!("{name}: Is a directory")));
                }
                std::fs::read(p).map_err(|e| Fail::io(name, &e))
            }
        }
    }

    /// Reads each operand (stdin when there are none), reporting unreadable ones and going on.
    /// Returns the contents read, with names, and whether any failed.
    pub fn inputs(&self, command: &str, operands: &[String]) -> (Vec<(String, Vec<u8>)>, bool) {
        let names: Vec<String> = if operands.is_empty() {
            vec!["-".into()]
        } else {
            operands.to_vec()
        };
        let mut read = Vec::new();
        let mut failed = false;
        for name in names {
            match self.input(&name) {
                Ok(bytes) => read.push((name, bytes)),
                Err(Fail::Msg(m, _)) => {
                    self.warn(command, m);
                    failed = true;
                }
                Err(Fail::Flow(_)) => failed = true,
            }
        }
        (read, failed)
    }
}

/// A command: shell state and streams in, exit status out.
pub type Command = fn(&mut Ctx, &[String]) -> Outcome;

/// `/bin/ls` and `/usr/bin/ls` run `ls`.
pub fn canonical_name(name: &str) -> &str {
    [
        "/usr/local/bin/",
        "/usr/bin/",
        "/bin/",
        "/usr/sbin/",
        "/sbin/",
    ]
    .iter()
    .find_map(|dir| name.strip_prefix(dir))
    .filter(|rest| !rest.contains('/'))
    .unwrap_or(name)
}

/// The command called `name`, if there is one.
pub fn lookup(name: &str) -> Option<Command> {
    builtins::lookup(name)
        .or_else(|| fileutils::lookup(name))
        .or_else(|| textutils::lookup(name))
        .or_else(|| sysutils::lookup(name))
}

/// Whether `name` is a shell builtin rather than a utility (for `type`).
pub fn is_builtin(name: &str) -> bool {
    builtins::lookup(name).is_some()
}

/// Parsed command-line options: single-letter flags, flags with values, and operands.
#[derive(Default)]
pub struct Args {
    /// Flags given without a value.
    pub flags: HashSet<char>,
    /// The last value of each flag that takes one.
    pub values: HashMap<char, String>,
    /// Every value of a flag given more than once (`grep -e a -e b`), in order.
    pub repeated: Vec<(char, String)>,
    /// Everything that is not an option.
    pub operands: Vec<String>,
}

impl Args {
    /// Whether flag `c` was given.
    pub fn has(&self, c: char) -> bool {
        self.flags.contains(&c)
    }

    /// The value of flag `c` (the last one, when given more than once).
    pub fn value(&self, c: char) -> Option<&str> {
        self.values.get(&c).map(String::as_str)
    }

    /// Every value of flag `c`, in order.
    pub fn all(&self, c: char) -> Vec<&str> {
        self.repeated
            .iter()
            .filter(|(f, _)| *f == c)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parses `argv[1..]`: `flags` take no value, `valued` take one (`-n 5`, `-n5`); `long`
    /// maps long options to letters (`--recursive` → `r`, `--lines=5` → `n`).
    pub fn parse(
        argv: &[String],
        flags: &str,
        valued: &str,
        long: &[(&str, char)],
    ) -> Result<Args, Fail> {
        let mut args = Args::default();
        let mut rest = argv[1..].iter();
        while let Some(arg) = rest.next() {
            if arg == "--" {
                args.operands.extend(rest.cloned());
                break;
            }
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (name, None),
                };
                let Some(&(_, c)) = long.iter().find(|(l, _)| *l == name) else {
                    return Err(Fail::msg(format!("unrecognized option '--{name}'")));
                };
                if valued.contains(c) {
                    let value = match inline {
                        Some(v) => v,
                        None => rest.next().cloned().ok_or_else(|| {
                            Fail::msg(format!("option '--{name}' requires an argument"))
                        })?,
                    };
                    args.repeated.push((c, value.clone()));
                    args.values.insert(c, value);
                } else {
                    args.flags.insert(c);
                }
                continue;
            }
            if arg.len() < 2 || !arg.starts_with('-') {
                args.operands.push(arg.clone());
                continue;
            }
            let body = &arg[1..];
            for (i, c) in body.char_indices() {
                if valued.contains(c) {
                    let inline = &body[i + c.len_utf8()..];
                    let value = if inline.is_empty() {
                        rest.next().cloned().ok_or_else(|| {
                            Fail::msg(format!("option requires an argument -- '{c}'"))
                        })?
                    } else {
                        inline.to_owned()
                    };
                    args.repeated.push((c, value.clone()));
                    args.values.insert(c, value);
                    break;
                }
                if !flags.contains(c) {
                    return Err(Fail::msg(format!("invalid option -- '{c}'")));
                }
                args.flags.insert(c);
            }
        }
        Ok(args)
    }
}

/// Lines of `bytes` as text, without their newlines.
pub fn lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    lines
}

/// Splits a command's result into the status or the flow it ends with.
pub fn to_flow(outcome: Result<i32, Flow>) -> Outcome {
    outcome.map_err(Fail::Flow)
}
