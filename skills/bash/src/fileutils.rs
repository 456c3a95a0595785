//! File utilities over the sandbox: cat, ls, mkdir, rmdir, rm, cp, mv, touch, find, du, df, tee.
//! Each does plain `std::fs` calls; WASI confines them to the preopened sandbox.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use crate::commands::{Args, Command, Ctx, Fail, Outcome};
use crate::io::describe;
use crate::path;

/// The file utility called `name`.
pub fn lookup(name: &str) -> Option<Command> {
    Some(match name {
        "cat" => cat,
        "ls" => ls,
        "mkdir" => mkdir,
        "rmdir" => rmdir,
        "rm" => rm,
        "cp" => cp,
        "mv" => mv,
        "touch" => touch,
        "find" => find,
        "du" => du,
        "df" => df,
        "tee" => tee,
        "mktemp" => mktemp,
        "chmod" | "chown" | "chgrp" => chmod,
        _ => return None,
    })
}

fn cat(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "nAsuv", "", &[("number", 'n')])?;
    let (inputs, failed) = ctx.inputs("cat", &args.operands);
    let mut line_no = 0;
    for (_, bytes) in inputs {
        if args.has('n') {
            let mut out = Vec::with_capacity(bytes.len() + 8);
            for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
                let _ = i;
                line_no += 1;
                out.extend_from_slice(format!("{line_no:>6}\t").as_bytes());
                out.extend_from_slice(line);
            }
            ctx.out(out)?;
        } else {
            ctx.out(bytes)?;
        }
    }
    Ok(i32::from(failed))
}

/// What `ls -l` and `find` need to know about one entry.
struct Entry {
    name: String,
    is_dir: bool,
    is_link: bool,
    size: u64,
    modified: Option<SystemTime>,
}

fn entry(name: String, p: &Path) -> std::io::Result<Entry> {
    let meta = fs::symlink_metadata(p)?;
    Ok(Entry {
        name,
        is_dir: meta.is_dir(),
        is_link: meta.file_type().is_symlink(),
        size: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Sizes as `ls -h`, `du -h` and `df -h` print them: 1 decimal under 10, K/M/G powers of 1024.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    value /= 1024.0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        let rounded = (value * 10.0).ceil() / 10.0;
        if rounded < 10.0 {
            return format!("{rounded:.1}{}", UNITS[unit]);
        }
    }
    format!("{}{}", value.ceil() as u64, UNITS[unit])
}

/// 1 KiB blocks a file of `size` bytes takes on a 4 KiB-block filesystem.
fn blocks(size: u64) -> u64 {
    size.div_ceil(4096) * 4
}

fn mtime_text(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "?".into();
    };
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) else {
        return "?".into();
    };
    // Like ls: the time for the last six months, the year otherwise.
    if (now - secs).abs() < 183 * 24 * 3600 {
        dt.format("%b %e %H:%M").to_string()
    } else {
        dt.format("%b %e  %Y").to_string()
    }
}

fn ls(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "laAhR1dtrSF",
        "",
        &[
            ("all", 'a'),
            ("almost-all", 'A'),
            ("recursive", 'R'),
            ("human-readable", 'h'),
        ],
    )?;
    let operands = if args.operands.is_empty() {
        vec![".".to_owned()]
    } else {
        args.operands.clone()
    };
    let mut failed = false;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for name in &operands {
        let p = ctx.path(name);
        match entry(name.clone(), &p) {
            Ok(e) if e.is_dir && !args.has('d') => dirs.push((name.clone(), p)),
            Ok(e) => files.push(e),
            Err(e) => {
                ctx.warn("ls", format!("cannot access '{name}': {}", describe(&e)));
                failed = true;
            }
        }
    }
    sort_entries(&mut files, &args);
    let mut first = true;
    if !files.is_empty() {
        ctx.out(listing(&files, &args, false))?;
        first = false;
    }
    let headers = operands.len() > 1 || args.has('R');
    let mut queue: std::collections::VecDeque<(String, std::path::PathBuf)> = dirs.into();
    while let Some((shown, p)) = queue.pop_front() {
        let mut entries = match read_entries(&p, &args) {
            Ok(e) => e,
            Err(e) => {
                ctx.warn(
                    "ls",
                    format!("cannot open directory '{shown}': {}", describe(&e)),
                );
                failed = true;
                continue;
            }
        };
        sort_entries(&mut entries, &args);
        let mut text = String::new();
        if headers {
            if !first {
                text.push('\n');
            }
            text.push_str(&format!("{shown}:\n"));
        }
        first = false;
        text.push_str(&listing(&entries, &args, true));
        ctx.out(text)?;
        if args.has('R') {
            let subdirs: Vec<_> = entries
                .iter()
                .filter(|e| e.is_dir && e.name != "." && e.name != "..")
                .map(|e| {
                    let shown = if shown.ends_with('/') {
                        format!("{shown}{}", e.name)
                    } else {
                        format!("{shown}/{}", e.name)
                    };
                    (shown, p.join(&e.name))
                })
                .collect();
            for (i, d) in subdirs.into_iter().enumerate() {
                queue.insert(i, d);
            }
        }
    }
    Ok(if failed { 2 } else { 0 })
}

fn read_entries(dir: &Path, args: &Args) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    if args.has('a') {
        for dot in [".", ".."] {
            entries.push(Entry {
                name: dot.into(),
                is_dir: true,
                is_link: false,
                size: 4096,
                modified: fs::metadata(dir).and_then(|m| m.modified()).ok(),
            });
        }
    }
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && !args.has('a') && !args.has('A') {
            continue;
        }
        if let Ok(e) = entry(name, &item.path()) {
            entries.push(e);
        }
    }
    Ok(entries)
}

fn sort_entries(entries: &mut [Entry], args: &Args) {
    if args.has('t') {
        entries.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    } else if args.has('S') {
        entries.sort_by(|a, b| b.size.cmp(&a.size).then(a.name.cmp(&b.name)));
    } else {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if args.has('r') {
        entries.reverse();
    }
}

fn listing(entries: &[Entry], args: &Args, with_total: bool) -> String {
    let suffix = |e: &Entry| {
        if args.has('F') && e.is_dir {
            "/"
        } else {
            ""
        }
    };
    if !args.has('l') {
        return entries
            .iter()
            .map(|e| format!("{}{}\n", e.name, suffix(e)))
            .collect();
    }
    let size_text = |e: &Entry| {
        if args.has('h') {
            human(e.size)
        } else {
            e.size.to_string()
        }
    };
    let width = entries
        .iter()
        .map(|e| size_text(e).len())
        .max()
        .unwrap_or(1);
    let mut out = String::new();
    if with_total {
        let total: u64 = entries.iter().map(|e| blocks(e.size)).sum();
        let total = if args.has('h') {
            human(total * 1024)
        } else {
            total.to_string()
        };
        out.push_str(&format!("total {total}\n"));
    }
    for e in entries {
        let mode = if e.is_link {
            "lrwxrwxrwx"
        } else if e.is_dir {
            "drwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        let links = if e.is_dir { 2 } else { 1 };
        out.push_str(&format!(
            "{mode} {links} user user {:>width$} {} {}{}\n",
            size_text(e),
            mtime_text(e.modified),
            e.name,
            suffix(e)
        ));
    }
    out
}

fn mkdir(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "pv", "m", &[("parents", 'p')])?;
    if args.operands.is_empty() {
        return Err(Fail::msg("missing operand"));
    }
    let mut status = 0;
    for name in &args.operands {
        let p = ctx.path(name);
        let result = if args.has('p') {
            fs::create_dir_all(&p)
        } else {
            fs::create_dir(&p)
        };
        if let Err(e) = result {
            ctx.warn(
                "mkdir",
                format!("cannot create directory '{name}': {}", describe(&e)),
            );
            status = 1;
        }
    }
    Ok(status)
}

fn rmdir(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "pv", "", &[("parents", 'p')])?;
    let mut status = 0;
    for name in &args.operands {
        if let Err(e) = fs::remove_dir(ctx.path(name)) {
            ctx.warn(
                "rmdir",
                format!("failed to remove '{name}': {}", describe(&e)),
            );
            status = 1;
        }
    }
    Ok(status)
}

fn rm(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "rRfvid",
        "",
        &[
            ("recursive", 'r'),
            ("force", 'f'),
            ("no-preserve-root", 'x'),
        ],
    )?;
    if args.operands.is_empty() && !args.has('f') {
        return Err(Fail::msg("missing operand"));
    }
    let recursive = args.has('r') || args.has('R');
    let mut status = 0;
    for name in &args.operands {
        let p = ctx.path(name);
        let result = match fs::symlink_metadata(&p) {
            Err(e) if args.has('f') && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() && recursive => fs::remove_dir_all(&p),
            Ok(m) if m.is_dir() && args.has('d') => fs::remove_dir(&p),
            Ok(m) if m.is_dir() => {
                ctx.warn("rm", format!("cannot remove '{name}': Is a directory"));
                status = 1;
                continue;
            }
            Ok(_) => fs::remove_file(&p),
        };
        if let Err(e) = result {
            ctx.warn("rm", format!("cannot remove '{name}': {}", describe(&e)));
            status = 1;
        }
    }
    Ok(status)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::metadata(from)?.is_dir() {
        fs::create_dir_all(to)?;
        for item in fs::read_dir(from)? {
            let item = item?;
            copy_tree(&item.path(), &to.join(item.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(|_| ())
    }
}

/// Sources and the destination of `cp`/`mv`; a destination that is a directory receives them.
fn targets(
    ctx: &Ctx,
    operands: &[String],
) -> Result<Vec<(String, std::path::PathBuf, std::path::PathBuf)>, Fail> {
    let Some((dest, sources)) = operands.split_last() else {
        return Err(Fail::msg("missing file operand"));
    };
    if sources.is_empty() {
        return Err(Fail::msg(format!(
            "missing destination file operand after '{dest}'"
        )));
    }
    let dest_path = ctx.path(dest);
    let into_dir = dest_path.is_dir();
    if sources.len() > 1 && !into_dir {
        return Err(Fail::msg(format!("target '{dest}' is not a directory")));
    }
    Ok(sources
        .iter()
        .map(|s| {
            let from = ctx.path(s);
            let to = if into_dir {
                dest_path.join(path::basename(s))
            } else {
                dest_path.clone()
            };
            (s.clone(), from, to)
        })
        .collect())
}

fn cp(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "rRafpvni", "", &[("recursive", 'r')])?;
    let recursive = args.has('r') || args.has('R') || args.has('a');
    let mut status = 0;
    for (name, from, to) in targets(ctx, &args.operands)? {
        if from.is_dir() && !recursive {
            ctx.warn(
                "cp",
                format!("-r not specified; omitting directory '{name}'"),
            );
            status = 1;
            continue;
        }
        if to.starts_with(&from) && from.is_dir() {
            ctx.warn(
                "cp",
                format!("cannot copy a directory, '{name}', into itself"),
            );
            status = 1;
            continue;
        }
        if args.has('n') && to.exists() {
            continue;
        }
        if let Err(e) = copy_tree(&from, &to) {
            ctx.warn("cp", format!("cannot copy '{name}': {}", describe(&e)));
            status = 1;
        }
    }
    Ok(status)
}

fn mv(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "fvni", "", &[])?;
    let mut status = 0;
    for (name, from, to) in targets(ctx, &args.operands)? {
        if args.has('n') && to.exists() {
            continue;
        }
        if let Err(e) = fs::rename(&from, &to) {
            ctx.warn("mv", format!("cannot move '{name}': {}", describe(&e)));
            status = 1;
        }
    }
    Ok(status)
}

fn touch(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "acm", "dt", &[])?;
    let mut status = 0;
    for name in &args.operands {
        let p = ctx.path(name);
        let result = fs::OpenOptions::new()
            .create(!args.has('c'))
            .append(true)
            .open(&p)
            .and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = result {
            if !(args.has('c') && e.kind() == std::io::ErrorKind::NotFound) {
                ctx.warn("touch", format!("cannot touch '{name}': {}", describe(&e)));
                status = 1;
            }
        }
    }
    Ok(status)
}

/// One test of a `find` expression.
enum Test {
    Name(regex::Regex),
    Path(regex::Regex),
    Type(char),
    Empty,
    Not(Box<Test>),
}

impl Test {
    fn holds(&self, shown: &str, e: &Entry, p: &Path) -> bool {
        match self {
            Test::Name(re) => re.is_match(path::basename(shown)),
            Test::Path(re) => re.is_match(shown),
            Test::Type('d') => e.is_dir,
            Test::Type('f') => !e.is_dir && !e.is_link,
            Test::Type('l') => e.is_link,
            Test::Type(_) => false,
            Test::Empty => {
                if e.is_dir {
                    fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
                } else {
                    e.size == 0
                }
            }
            Test::Not(t) => !t.holds(shown, e, p),
        }
    }
}

/// What `find` does with a match.
enum Action {
    Print,
    Delete,
    Exec(Vec<String>),
}

fn glob_regex(pattern: &str, fold: bool) -> Result<regex::Regex, Fail> {
    let body = brush_parser::pattern::pattern_to_regex_str(pattern, false)
        .map_err(|_| Fail::msg(format!("invalid pattern '{pattern}'")))?;
    let flags = if fold { "(?is)" } else { "(?s)" };
    regex::Regex::new(&format!("{flags}^{body}$"))
        .map_err(|_| Fail::msg(format!("invalid pattern '{pattern}'")))
}

fn find(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut roots = Vec::new();
    let mut i = 1;
    while i < argv.len() && !argv[i].starts_with('-') && argv[i] != "!" && argv[i] != "(" {
        roots.push(argv[i].clone());
        i += 1;
    }
    if roots.is_empty() {
        roots.push(".".into());
    }
    let mut tests = Vec::new();
    let mut actions = Vec::new();
    let (mut min_depth, mut max_depth) = (0usize, usize::MAX);
    let mut negate = false;
    while i < argv.len() {
        let arg = argv[i].as_str();
        let value = |n: usize| {
            argv.get(i + n)
                .cloned()
                .ok_or_else(|| Fail::msg(format!("missing argument to `{arg}'")))
        };
        let mut test = None;
        match arg {
            "!" | "-not" => {
                negate = !negate;
                i += 1;
                continue;
            }
            "-name" => test = Some(Test::Name(glob_regex(&value(1)?, false)?)),
            "-iname" => test = Some(Test::Name(glob_regex(&value(1)?, true)?)),
            "-path" | "-wholename" => test = Some(Test::Path(glob_regex(&value(1)?, false)?)),
            "-type" => test = Some(Test::Type(value(1)?.chars().next().unwrap_or('?'))),
            "-empty" => test = Some(Test::Empty),
            "-maxdepth" | "-mindepth" => {
                let n = value(1)?
                    .parse()
                    .map_err(|_| Fail::msg(format!("{arg}: expected a non-negative number")))?;
                if arg == "-maxdepth" {
                    max_depth = n;
                } else {
                    min_depth = n;
                }
            }
            "-print" => actions.push(Action::Print),
            "-delete" => actions.push(Action::Delete),
            "-exec" => {
                let mut command = Vec::new();
                let mut j = i + 1;
                while j < argv.len() && argv[j] != ";" && argv[j] != "+" {
                    command.push(argv[j].clone());
                    j += 1;
                }
                if j >= argv.len() || command.is_empty() {
                    return Err(Fail::msg("missing argument to `-exec'"));
                }
                actions.push(Action::Exec(command));
                i = j + 1;
                continue;
            }
            "-a" | "-and" => {
                i += 1;
                continue;
            }
            other => return Err(Fail::msg(format!("unknown predicate `{other}'"))),
        }
        if let Some(t) = test {
            tests.push(if negate { Test::Not(Box::new(t)) } else { t });
            negate = false;
            i += 2;
        } else {
            i += if matches!(arg, "-maxdepth" | "-mindepth") {
                2
            } else {
                1
            };
        }
    }
    if actions.is_empty() {
        actions.push(Action::Print);
    }
    let mut status = 0;
    for root in roots {
        let p = ctx.path(&root);
        let mut found = Vec::new();
        if let Err(e) = walk(&root, &p, 0, max_depth, &mut found) {
            ctx.warn("find", format!("'{root}': {}", describe(&e)));
            status = 1;
            continue;
        }
        // `-delete` works depth-first: children before their directory.
        if actions.iter().any(|a| matches!(a, Action::Delete)) {
            found.reverse();
        }
        for (shown, p, depth, e) in found {
            if depth < min_depth || !tests.iter().all(|t| t.holds(&shown, &e, &p)) {
                continue;
            }
            for action in &actions {
                match action {
                    Action::Print => ctx.out(format!("{shown}\n"))?,
                    Action::Delete => {
                        let result = if e.is_dir {
                            fs::remove_dir(&p)
                        } else {
                            fs::remove_file(&p)
                        };
                        if let Err(err) = result {
                            ctx.warn(
                                "find",
                                format!("cannot delete '{shown}': {}", describe(&err)),
                            );
                            status = 1;
                        }
                    }
                    Action::Exec(command) => {
                        let argv: Vec<String> =
                            command.iter().map(|a| a.replace("{}", &shown)).collect();
                        let io = ctx.io;
                        if ctx.sh.exec(argv, io).map_err(Fail::Flow)? != 0 {
                            status = 1;
                        }
                    }
                }
            }
        }
    }
    Ok(status)
}

type Found = (String, std::path::PathBuf, usize, Entry);

/// Every file (not directory) under `p`, named from `shown`, in sorted order (`grep -r`).
pub fn files_under(shown: &str, p: &Path) -> Vec<String> {
    let mut found = Vec::new();
    // What could be read is listed; an unreadable directory is skipped, as grep -r does.
    let _ = walk(shown, p, 0, usize::MAX, &mut found);
    found
        .into_iter()
        .filter(|(_, _, _, e)| !e.is_dir)
        .map(|(shown, ..)| shown)
        .collect()
}

fn walk(
    shown: &str,
    p: &Path,
    depth: usize,
    max: usize,
    out: &mut Vec<Found>,
) -> std::io::Result<()> {
    let e = entry(shown.to_owned(), p)?;
    let is_dir = e.is_dir;
    out.push((shown.to_owned(), p.to_owned(), depth, e));
    if !is_dir || depth >= max {
        return Ok(());
    }
    let mut names: Vec<String> = fs::read_dir(p)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let child = if shown.ends_with('/') {
            format!("{shown}{name}")
        } else {
            format!("{shown}/{name}")
        };
        walk(&child, &p.join(&name), depth + 1, max, out)?;
    }
    Ok(())
}

/// Bytes under `p` in 1 KiB blocks, as `du` counts (a directory takes one 4 KiB block).
fn disk_usage(p: &Path) -> std::io::Result<u64> {
    let meta = fs::symlink_metadata(p)?;
    if !meta.is_dir() {
        return Ok(blocks(meta.len()));
    }
    let mut total = 4;
    for item in fs::read_dir(p)? {
        total += disk_usage(&item?.path())?;
    }
    Ok(total)
}

fn du(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "shac",
        "d",
        &[("summarize", 's'), ("human-readable", 'h')],
    )?;
    let operands = if args.operands.is_empty() {
        vec![".".to_owned()]
    } else {
        args.operands.clone()
    };
    let show = |kib: u64| {
        if args.has('h') {
            human(kib * 1024)
        } else {
            kib.to_string()
        }
    };
    let mut status = 0;
    let mut grand = 0;
    for name in &operands {
        let p = ctx.path(name);
        if !args.has('s') && p.is_dir() {
            let mut found = Vec::new();
            let _ = walk(name, &p, 0, usize::MAX, &mut found);
            let mut lines = Vec::new();
            for (shown, sub, _, e) in found.iter().rev() {
                if e.is_dir {
                    lines.push(format!("{}\t{shown}\n", show(disk_usage(sub).unwrap_or(0))));
                }
            }
            ctx.out(lines.concat())?;
            grand += disk_usage(&p).unwrap_or(0);
            continue;
        }
        match disk_usage(&p) {
            Ok(kib) => {
                grand += kib;
                ctx.out(format!("{}\t{name}\n", show(kib)))?;
            }
            Err(e) => {
                ctx.warn("du", format!("cannot access '{name}': {}", describe(&e)));
                status = 1;
            }
        }
    }
    if args.has('c') {
        ctx.out(format!("{}\ttotal\n", show(grand)))?;
    }
    Ok(status)
}

fn df(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "hkPT", "", &[("human-readable", 'h')])?;
    let usage = crate::sandbox_usage();
    // df counts in 1 KiB blocks: any byte used takes a block.
    let (size, used) = (
        usage.quota,
        usage
            .used
            .div_ceil(1024)
            .saturating_mul(1024)
            .min(usage.quota),
    );
    let avail = size - used;
    let percent = if size == 0 {
        0
    } else {
        (used * 100).div_ceil(size)
    };
    let text = if args.has('h') {
        format!(
            "Filesystem      Size  Used Avail Use% Mounted on\nsandbox {:>9} {:>5} {:>5} {:>3}% /tmp\n",
            human(size),
            human(used),
            human(avail),
            percent
        )
    } else {
        format!(
            "Filesystem     1K-blocks  Used Available Use% Mounted on\nsandbox {:>16} {:>5} {:>9} {:>3}% /tmp\n",
            size / 1024,
            used.div_ceil(1024),
            avail / 1024,
            percent
        )
    };
    ctx.out(text)?;
    Ok(0)
}

fn tee(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "ai", "", &[("append", 'a')])?;
    let input = ctx.io.stdin.read_all();
    let mut status = 0;
    for name in &args.operands {
        let p = ctx.path(name);
        let result = if args.has('a') {
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&p)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &input))
        } else {
            fs::write(&p, &input)
        };
        if let Err(e) = result {
            ctx.warn("tee", format!("{name}: {}", describe(&e)));
            status = 1;
        }
    }
    ctx.out(&input)?;
    Ok(status)
}

/// `mktemp [-d] [-p DIR] [TEMPLATE]`: a new file (or directory) with a random name.
fn mktemp(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "dqtu", "p", &[("directory", 'd'), ("tmpdir", 'p')])?;
    let template = args
        .operands
        .first()
        .map_or("tmp.XXXXXXXXXX", String::as_str);
    let x_count = template.len() - template.trim_end_matches('X').len();
    if x_count < 3 {
        return Err(Fail::msg(format!("too few X's in template '{template}'")));
    }
    let dir = args.value('p').map_or_else(
        || {
            if template.contains('/') {
                String::new()
            } else {
                ctx.sh.var("TMPDIR").unwrap_or(path::HOME).to_owned()
            }
        },
        str::to_owned,
    );
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..100 {
        let mut name = template[..template.len() - x_count].to_owned();
        for _ in 0..x_count {
            name.push(CHARS[(random_u64() % CHARS.len() as u64) as usize] as char);
        }
        let shown = if dir.is_empty() {
            name
        } else {
            format!("{}/{name}", dir.trim_end_matches('/'))
        };
        let p = ctx.path(&shown);
        let created = if args.has('d') {
            fs::create_dir(&p)
        } else {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .map(|_| ())
        };
        match created {
            Ok(()) => {
                ctx.out(format!("{shown}\n"))?;
                return Ok(0);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Fail::msg(format!(
                    "failed to create '{shown}': {}",
                    describe(&e)
                )))
            }
        }
    }
    Err(Fail::msg("could not find an unused name"))
}

/// Random bits from the host (WASI random, behind std's hasher keys).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The sandbox has no owners or permission bits: `chmod` checks the files exist and succeeds.
fn chmod(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let files: Vec<&String> = argv[1..]
        .iter()
        .filter(|a| !a.starts_with('-'))
        .skip(1)
        .collect();
    if files.is_empty() {
        return Err(Fail::msg("missing operand"));
    }
    let mut status = 0;
    for name in files {
        if let Err(e) = fs::symlink_metadata(ctx.path(name)) {
            ctx.warn(
                &argv[0],
                format!("cannot access '{name}': {}", describe(&e)),
            );
            status = 1;
        }
    }
    Ok(status)
}
