//! Text utilities: head, tail, wc, grep, sort, uniq, cut, tr, sed, diff, base64, md5sum,
//! sha256sum. Output formats follow GNU coreutils, checked against them in the tests.

use std::cmp::Ordering;
use std::fmt::Write as _;

use base64::Engine as _;
use regex::{Regex, RegexBuilder};

use crate::commands::{lines, Args, Command, Ctx, Fail, Outcome};

/// The text utility called `name`.
pub fn lookup(name: &str) -> Option<Command> {
    Some(match name {
        "head" => |ctx, argv| head_tail(ctx, argv, true),
        "tail" => |ctx, argv| head_tail(ctx, argv, false),
        "wc" => wc,
        "grep" | "egrep" | "fgrep" => grep,
        "sort" => sort,
        "uniq" => uniq,
        "cut" => cut,
        "tr" => tr,
        "sed" => sed,
        "diff" => diff,
        "base64" => base64_,
        "md5sum" => |ctx, argv| checksum(ctx, argv, Digest::Md5),
        "sha256sum" => |ctx, argv| checksum(ctx, argv, Digest::Sha256),
        "rev" => rev,
        "nl" => nl,
        "paste" => paste,
        _ => return None,
    })
}

/// `-5` means `-n 5` for head and tail (but in `-n -5` it is the count itself).
fn numeric_shorthand(argv: &[String]) -> Vec<String> {
    argv.iter()
        .enumerate()
        .map(|(i, a)| {
            let after_option = i > 0 && matches!(argv[i - 1].as_str(), "-n" | "-c");
            if i > 0
                && !after_option
                && a.len() > 1
                && a.starts_with('-')
                && a[1..].chars().all(|c| c.is_ascii_digit())
            {
                format!("-n{}", &a[1..])
            } else {
                a.clone()
            }
        })
        .collect()
}

fn head_tail(ctx: &mut Ctx, argv: &[String], head: bool) -> Outcome {
    let argv = numeric_shorthand(argv);
    let args = Args::parse(
        &argv,
        "qvf",
        "nc",
        &[("lines", 'n'), ("bytes", 'c'), ("quiet", 'q')],
    )?;
    let (count_text, bytes_mode) = match (args.value('n'), args.value('c')) {
        (_, Some(c)) => (c.to_owned(), true),
        (Some(n), None) => (n.to_owned(), false),
        (None, None) => ("10".to_owned(), false),
    };
    let from_start = count_text.starts_with('+');
    let all_but = count_text.starts_with('-');
    let count: usize = count_text
        .trim_start_matches(['+', '-'])
        .parse()
        .map_err(|_| Fail::msg(format!("invalid number of lines: '{count_text}'")))?;
    let (inputs, failed) = ctx.inputs(&argv[0], &args.operands);
    let headers = inputs.len() > 1 && !args.has('q');
    for (i, (name, bytes)) in inputs.iter().enumerate() {
        if headers {
            let shown = if name == "-" { "standard input" } else { name };
            ctx.out(format!(
                "{}==> {shown} <==\n",
                if i > 0 { "\n" } else { "" }
            ))?;
        }
        let units: Vec<&[u8]> = if bytes_mode {
            bytes.chunks(1).collect()
        } else {
            bytes.split_inclusive(|&b| b == b'\n').collect()
        };
        let n = units.len();
        let range = match (head, from_start, all_but) {
            (true, _, false) => 0..count.min(n),
            (true, _, true) => 0..n.saturating_sub(count),
            (false, true, _) => count.saturating_sub(1).min(n)..n,
            (false, false, _) => n.saturating_sub(count)..n,
        };
        ctx.out(units[range].concat())?;
    }
    Ok(i32::from(failed))
}

fn wc(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "lwcm",
        "",
        &[
            ("lines", 'l'),
            ("words", 'w'),
            ("bytes", 'c'),
            ("chars", 'm'),
        ],
    )?;
    let mut which: Vec<char> = ['l', 'w', 'm', 'c']
        .into_iter()
        .filter(|&c| args.has(c))
        .collect();
    if which.is_empty() {
        which = vec!['l', 'w', 'c'];
    }
    let (inputs, failed) = ctx.inputs("wc", &args.operands);
    let counts: Vec<(String, [u64; 4])> = inputs
        .iter()
        .map(|(name, b)| {
            let text = String::from_utf8_lossy(b);
            let counts = [
                b.iter().filter(|&&c| c == b'\n').count() as u64,
                text.split_whitespace().count() as u64,
                text.chars().count() as u64,
                b.len() as u64,
            ];
            (name.clone(), counts)
        })
        .collect();
    let mut totals = [0u64; 4];
    for (_, c) in &counts {
        for i in 0..4 {
            totals[i] += c[i];
        }
    }
    // GNU's width: one column for one count of one input; else the digits of the total bytes
    // of regular files, at least 7 when stdin is among the inputs.
    let stdin = args.operands.is_empty() || args.operands.iter().any(|o| o == "-");
    let width = if which.len() == 1 && counts.len() == 1 {
        1
    } else {
        let digits = totals[3].max(1).to_string().len();
        if stdin {
            digits.max(7)
        } else {
            digits
        }
    };
    let index = |c: char| match c {
        'l' => 0,
        'w' => 1,
        'm' => 2,
        _ => 3,
    };
    let mut out = String::new();
    let mut row = |values: &[u64; 4], name: &str| {
        let cols: Vec<String> = which
            .iter()
            .map(|&c| format!("{:>width$}", values[index(c)]))
            .collect();
        out.push_str(&cols.join(" "));
        if !name.is_empty() && name != "-" || (name == "-" && !args.operands.is_empty()) {
            out.push(' ');
            out.push_str(name);
        }
        out.push('\n');
    };
    for (name, c) in &counts {
        row(c, name);
    }
    if counts.len() > 1 {
        row(&totals, "total");
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}

/// A POSIX basic (or extended) regular expression in the syntax of the `regex` crate.
pub fn posix_regex(pattern: &str, extended: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut at_start = true;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            // Copy a bracket expression whole: `]` first is literal; `[:class:]` nests.
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '^' {
                j += 1;
            }
            if j < chars.len() && chars[j] == ']' {
                j += 1;
            }
            while j < chars.len() && chars[j] != ']' {
                if chars[j] == '[' && j + 1 < chars.len() && matches!(chars[j + 1], ':' | '.' | '=')
                {
                    let close = chars[j + 1];
                    j += 2;
                    while j + 1 < chars.len() && !(chars[j] == close && chars[j + 1] == ']') {
                        j += 1;
                    }
                    j += 2;
                } else {
                    j += 1;
                }
            }
            // The regex crate gives `[`, `&&` and `~~` meaning inside a class; POSIX does not.
            let inner = &chars[i + 1..(j + 1).min(chars.len())];
            let mut body = String::from("[");
            for (k, &ch) in inner.iter().enumerate() {
                let opens_class = inner
                    .get(k + 1)
                    .is_some_and(|n| matches!(n, ':' | '.' | '='));
                match ch {
                    '[' if !opens_class => body.push_str("\\["),
                    '\\' => body.push_str("\\\\"),
                    '&' | '~' => {
                        body.push('\\');
                        body.push(ch);
                    }
                    _ => body.push(ch),
                }
            }
            out.push_str(&body);
            i = j + 1;
            at_start = false;
            continue;
        }
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            i += 2;
            match n {
                '<' | '>' => out.push_str("\\b"),
                '(' | ')' | '{' | '}' | '+' | '?' | '|' if !extended => out.push(n),
                'n' => out.push_str("\\n"),
                't' => out.push_str("\\t"),
                'w' | 'W' | 's' | 'S' | 'b' | 'B' | 'd' | 'D' => {
                    out.push('\\');
                    out.push(n)
                }
                _ if n.is_ascii_digit() => {
                    // Back-references are not supported by the regex crate: match the digit.
                    out.push(n);
                }
                _ => {
                    out.push_str(&regex::escape(&n.to_string()));
                }
            }
            at_start = n == '(' && !extended;
            continue;
        }
        match c {
            '(' | ')' | '{' | '}' | '+' | '?' | '|' if !extended => {
                out.push('\\');
                out.push(c);
            }
            '*' if at_start => out.push_str("\\*"),
            _ => out.push(c),
        }
        at_start = (c == '(' && extended) || (c == '|');
        i += 1;
    }
    out
}

fn build_regex(pattern: &str, extended: bool, fixed: bool, fold: bool) -> Result<Regex, Fail> {
    let source = if fixed {
        regex::escape(pattern)
    } else {
        posix_regex(pattern, extended)
    };
    RegexBuilder::new(&source)
        .case_insensitive(fold)
        .build()
        .map_err(|_| Fail::Msg(format!("invalid regular expression '{pattern}'"), 2))
}

fn grep(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "ivncrREFolLqwxhHsIaz",
        "emABC",
        &[
            ("ignore-case", 'i'),
            ("invert-match", 'v'),
            ("line-number", 'n'),
            ("count", 'c'),
            ("recursive", 'r'),
            ("extended-regexp", 'E'),
            ("fixed-strings", 'F'),
            ("only-matching", 'o'),
            ("files-with-matches", 'l'),
            ("quiet", 'q'),
            ("word-regexp", 'w'),
            ("line-regexp", 'x'),
            ("regexp", 'e'),
            ("max-count", 'm'),
            ("include", 'I'),
        ],
    )?;
    let mut operands = args.operands.clone();
    let patterns = args.all('e');
    let pattern = match args.value('e') {
        Some(_) => patterns.join("\n"),
        None if operands.is_empty() => {
            return Err(Fail::Msg(
                "usage: grep [OPTION]... PATTERNS [FILE]...".into(),
                2,
            ))
        }
        None => operands.remove(0),
    };
    let extended = args.has('E') || argv[0] == "egrep";
    let fixed = args.has('F') || argv[0] == "fgrep";
    let alternatives: Vec<String> = pattern
        .split('\n')
        .map(|p| {
            let p = if fixed {
                regex::escape(p)
            } else {
                posix_regex(p, extended)
            };
            let p = if args.has('w') {
                format!("\\b(?:{p})\\b")
            } else {
                p
            };
            if args.has('x') {
                format!("^(?:{p})$")
            } else {
                p
            }
        })
        .collect();
    let re = RegexBuilder::new(&alternatives.join("|"))
        .case_insensitive(args.has('i'))
        .build()
        .map_err(|_| Fail::Msg(format!("invalid regular expression '{pattern}'"), 2))?;
    let recursive = args.has('r') || args.has('R');
    if recursive && operands.is_empty() {
        operands.push(".".into());
    }
    let mut files: Vec<String> = Vec::new();
    let mut errors = false;
    for name in &operands {
        let p = ctx.path(name);
        if p.is_dir() {
            if recursive {
                files.extend(crate::fileutils::files_under(name, &p));
            } else {
                ctx.warn("grep", format!("{name}: Is a directory"));
                errors = true;
            }
        } else {
            files.push(name.clone());
        }
    }
    let show_names = (files.len() > 1 || recursive || args.has('H')) && !args.has('h');
    let max = args.value('m').and_then(|m| m.parse::<usize>().ok());
    let lines_of = |c: char| -> Result<Option<usize>, Fail> {
        match args.value(c) {
            Some(n) => n
                .parse()
                .map(Some)
                .map_err(|_| Fail::Msg(format!("{n}: invalid context length argument"), 2)),
            None => Ok(None),
        }
    };
    let around = lines_of('C')?.unwrap_or(0);
    // (lines before, lines after) each match.
    let context = (
        lines_of('B')?.unwrap_or(around),
        lines_of('A')?.unwrap_or(around),
    );
    let mut any = false;
    let inputs: Vec<String> = if operands.is_empty() {
        vec!["-".into()]
    } else {
        files
    };
    for name in inputs {
        let bytes = match ctx.input(&name) {
            Ok(b) => b,
            Err(Fail::Msg(m, _)) => {
                if !args.has('s') {
                    ctx.warn("grep", m);
                }
                errors = true;
                continue;
            }
            Err(f) => return Err(f),
        };
        let shown = if name == "-" {
            "(standard input)".to_owned()
        } else {
            name.clone()
        };
        let mut count = 0;
        let mut out = String::new();
        let quiet = args.has('q') || args.has('l') || args.has('L') || args.has('c');
        // name:line:text for matches, name-line-text for context, `--` between groups.
        let prefix = |i: usize, sep: char| match (show_names, args.has('n')) {
            (true, true) => format!("{shown}{sep}{}{sep}", i + 1),
            (true, false) => format!("{shown}{sep}"),
            (false, true) => format!("{}{sep}", i + 1),
            (false, false) => String::new(),
        };
        let all = lines(&bytes);
        let mut last_shown: Option<usize> = None;
        let mut after_left = 0;
        for (i, line) in all.iter().enumerate() {
            let room = max.is_none_or(|m| count < m);
            if !room && after_left == 0 {
                break;
            }
            if room && re.is_match(line) != args.has('v') {
                count += 1;
                if quiet {
                    continue;
                }
                let from = i
                    .saturating_sub(context.0)
                    .max(last_shown.map_or(0, |l| l + 1));
                if context != (0, 0) && last_shown.is_some_and(|l| from > l + 1) {
                    out.push_str("--\n");
                }
                for (j, before) in all.iter().enumerate().take(i).skip(from) {
                    let _ = writeln!(out, "{}{before}", prefix(j, '-'));
                }
                if args.has('o') && !args.has('v') {
                    for m in re.find_iter(line).filter(|m| !m.as_str().is_empty()) {
                        let _ = writeln!(out, "{}{}", prefix(i, ':'), m.as_str());
                    }
                } else {
                    let _ = writeln!(out, "{}{line}", prefix(i, ':'));
                }
                last_shown = Some(i);
                after_left = context.1;
            } else if after_left > 0 && !quiet {
                let _ = writeln!(out, "{}{line}", prefix(i, '-'));
                last_shown = Some(i);
                after_left -= 1;
            }
        }
        any |= count > 0;
        if args.has('q') && any {
            return Ok(0);
        }
        if args.has('c') {
            if show_names {
                let _ = writeln!(out, "{shown}:{count}");
            } else {
                let _ = writeln!(out, "{count}");
            }
        }
        if args.has('l') && count > 0 {
            let _ = writeln!(out, "{shown}");
        }
        if args.has('L') && count == 0 {
            let _ = writeln!(out, "{shown}");
        }
        ctx.out(out)?;
    }
    Ok(if errors && !any {
        2
    } else if any {
        0
    } else {
        1
    })
}

/// Which part of a line a sort key covers: fields `start..=end` (1-based).
struct Key {
    start: usize,
    end: Option<usize>,
    numeric: bool,
    reverse: bool,
}

fn parse_key(spec: &str) -> Result<Key, Fail> {
    let bad = || Fail::Msg(format!("invalid key '{spec}'"), 2);
    let (range, opts): (String, String) = spec
        .chars()
        .partition(|c| c.is_ascii_digit() || *c == ',' || *c == '.');
    let mut parts = range.split(',');
    let field = |s: &str| s.split('.').next().unwrap_or("").parse::<usize>();
    let start = field(parts.next().unwrap_or("")).map_err(|_| bad())?;
    let end = match parts.next() {
        Some(e) => Some(field(e).map_err(|_| bad())?),
        None => None,
    };
    Ok(Key {
        start,
        end,
        numeric: opts.contains('n') || opts.contains('h') || opts.contains('g'),
        reverse: opts.contains('r'),
    })
}

fn fields_of(line: &str, sep: Option<char>) -> Vec<&str> {
    match sep {
        Some(c) => line.split(c).collect(),
        None => line.split_whitespace().collect(),
    }
}

fn key_text(line: &str, key: &Key, sep: Option<char>) -> String {
    let fields = fields_of(line, sep);
    let end = key.end.unwrap_or(fields.len()).min(fields.len());
    if key.start == 0 || key.start > end {
        return String::new();
    }
    let joiner = sep.map(String::from).unwrap_or_else(|| " ".into());
    fields[key.start - 1..end].join(&joiner)
}

/// The leading number of `s` as `sort -n` reads it; none is 0.
fn leading_number(s: &str) -> f64 {
    let s = s.trim_start();
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() || (c == '.') || (i == 0 && c == '-') {
            end = i + c.len_utf8();
        } else {
            break;
        }
    }
    s[..end].parse().unwrap_or(0.0)
}

fn sort(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "nrufbshVcgM",
        "ktoS",
        &[
            ("numeric-sort", 'n'),
            ("reverse", 'r'),
            ("unique", 'u'),
            ("ignore-case", 'f'),
            ("key", 'k'),
            ("field-separator", 't'),
            ("output", 'o'),
        ],
    )?;
    let sep = match args.value('t') {
        Some(t) => Some(t.chars().next().ok_or_else(|| Fail::msg("empty tab"))?),
        None => None,
    };
    let key = match args.value('k') {
        Some(k) => Some(parse_key(k)?),
        None => None,
    };
    let numeric =
        args.has('n') || args.has('h') || args.has('g') || key.as_ref().is_some_and(|k| k.numeric);
    let reverse = args.has('r') || key.as_ref().is_some_and(|k| k.reverse);
    let (inputs, failed) = ctx.inputs("sort", &args.operands);
    let mut all: Vec<String> = inputs.iter().flat_map(|(_, b)| lines(b)).collect();
    let fold = args.has('f');
    let key_of = |line: &str| -> String {
        let k = match &key {
            Some(k) => key_text(line, k, sep),
            None => line.to_owned(),
        };
        if fold {
            k.to_uppercase()
        } else {
            k
        }
    };
    let compare_keys = |a: &str, b: &str| -> Ordering {
        let (ka, kb) = (key_of(a), key_of(b));
        if numeric {
            leading_number(&ka)
                .partial_cmp(&leading_number(&kb))
                .unwrap_or(Ordering::Equal)
        } else {
            ka.as_bytes().cmp(kb.as_bytes())
        }
    };
    let stable = args.has('s') || args.has('u');
    all.sort_by(|a, b| {
        let mut o = compare_keys(a, b);
        if o == Ordering::Equal && !stable {
            o = a.as_bytes().cmp(b.as_bytes());
        }
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
    if args.has('u') {
        all.dedup_by(|a, b| compare_keys(a, b) == Ordering::Equal);
    }
    let text: String = all.iter().map(|l| format!("{l}\n")).collect();
    match args.value('o') {
        Some(out) => std::fs::write(ctx.path(out), text).map_err(|e| Fail::io(out, &e))?,
        None => ctx.out(text)?,
    }
    Ok(i32::from(failed) * 2)
}

fn uniq(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "cdui",
        "",
        &[
            ("count", 'c'),
            ("repeated", 'd'),
            ("unique", 'u'),
            ("ignore-case", 'i'),
        ],
    )?;
    let input = ctx.input(args.operands.first().map_or("-", String::as_str))?;
    let mut groups: Vec<(String, usize)> = Vec::new();
    for line in lines(&input) {
        match groups.last_mut() {
            Some((prev, n))
                if *prev == line
                    || (args.has('i') && prev.to_lowercase() == line.to_lowercase()) =>
            {
                *n += 1
            }
            _ => groups.push((line, 1)),
        }
    }
    let mut out = String::new();
    for (line, n) in groups {
        if (args.has('d') && n < 2) || (args.has('u') && n > 1) {
            continue;
        }
        if args.has('c') {
            let _ = writeln!(out, "{n:>7} {line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    match args.operands.get(1) {
        Some(dest) => std::fs::write(ctx.path(dest), out).map_err(|e| Fail::io(dest, &e))?,
        None => ctx.out(out)?,
    }
    Ok(0)
}

/// A `cut` list such as `1,3-4,6-` as inclusive 1-based ranges.
fn parse_list(spec: &str) -> Result<Vec<(usize, usize)>, Fail> {
    let bad = || Fail::msg(format!("invalid field range '{spec}'"));
    spec.split(',')
        .map(|part| {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (
                    if a.is_empty() {
                        1
                    } else {
                        a.parse().map_err(|_| bad())?
                    },
                    if b.is_empty() {
                        usize::MAX
                    } else {
                        b.parse().map_err(|_| bad())?
                    },
                ),
                None => {
                    let n = part.parse().map_err(|_| bad())?;
                    (n, n)
                }
            };
            if a == 0 {
                return Err(Fail::msg("fields and positions are numbered from 1"));
            }
            Ok((a, b))
        })
        .collect()
}

fn cut(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "s",
        "dfcb",
        &[
            ("delimiter", 'd'),
            ("fields", 'f'),
            ("characters", 'c'),
            ("bytes", 'b'),
        ],
    )?;
    let in_list =
        |ranges: &[(usize, usize)], i: usize| ranges.iter().any(|&(a, b)| i >= a && i <= b);
    let (inputs, failed) = ctx.inputs("cut", &args.operands);
    let mut out = String::new();
    if let Some(spec) = args.value('f') {
        let ranges = parse_list(spec)?;
        let delim = args.value('d').unwrap_or("\t");
        let d = delim
            .chars()
            .next()
            .ok_or_else(|| Fail::msg("the delimiter must be a single character"))?;
        for (_, bytes) in &inputs {
            for line in lines(bytes) {
                if !line.contains(d) {
                    if !args.has('s') {
                        let _ = writeln!(out, "{line}");
                    }
                    continue;
                }
                let picked: Vec<&str> = line
                    .split(d)
                    .enumerate()
                    .filter(|(i, _)| in_list(&ranges, i + 1))
                    .map(|(_, f)| f)
                    .collect();
                let _ = writeln!(out, "{}", picked.join(&d.to_string()));
            }
        }
    } else if let Some(spec) = args.value('c').or(args.value('b')) {
        let ranges = parse_list(spec)?;
        for (_, bytes) in &inputs {
            for line in lines(bytes) {
                let picked: String = line
                    .chars()
                    .enumerate()
                    .filter(|(i, _)| in_list(&ranges, i + 1))
                    .map(|(_, c)| c)
                    .collect();
                let _ = writeln!(out, "{picked}");
            }
        }
    } else {
        return Err(Fail::msg(
            "you must specify a list of bytes, characters, or fields",
        ));
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}

/// Expands a `tr` set: ranges, escapes and `[:class:]`.
fn tr_set(spec: &str) -> Vec<char> {
    type Class = (&'static str, fn(char) -> bool);
    let classes: [Class; 8] = [
        ("[:lower:]", |c| c.is_ascii_lowercase()),
        ("[:upper:]", |c| c.is_ascii_uppercase()),
        ("[:digit:]", |c| c.is_ascii_digit()),
        ("[:alpha:]", |c| c.is_ascii_alphabetic()),
        ("[:alnum:]", |c| c.is_ascii_alphanumeric()),
        ("[:space:]", |c| c.is_ascii_whitespace() || c == '\x0b'),
        ("[:punct:]", |c| c.is_ascii_punctuation()),
        ("[:blank:]", |c| c == ' ' || c == '\t'),
    ];
    let mut out = Vec::new();
    let text = crate::expand::ansi_c(spec);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    'outer: while i < chars.len() {
        for (name, test) in &classes {
            let n: Vec<char> = name.chars().collect();
            if chars[i..].starts_with(&n) {
                out.extend((0u8..128).map(char::from).filter(|&c| test(c)));
                i += n.len();
                continue 'outer;
            }
        }
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i] <= chars[i + 2] {
            out.extend(chars[i]..=chars[i + 2]);
            i += 3;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn tr(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "dscC",
        "",
        &[
            ("delete", 'd'),
            ("squeeze-repeats", 's'),
            ("complement", 'c'),
        ],
    )?;
    let input = String::from_utf8_lossy(&ctx.io.stdin.read_all()).into_owned();
    let set1 = tr_set(
        args.operands
            .first()
            .ok_or_else(|| Fail::msg("missing operand"))?,
    );
    let complement = args.has('c') || args.has('C');
    let in1 = |c: char| set1.contains(&c) != complement;
    let mut out = String::with_capacity(input.len());
    if args.has('d') {
        let squeeze: Vec<char> = args.operands.get(1).map(|s| tr_set(s)).unwrap_or_default();
        for c in input.chars().filter(|&c| !in1(c)) {
            if args.has('s') && out.ends_with(c) && squeeze.contains(&c) {
                continue;
            }
            out.push(c);
        }
    } else if let Some(spec2) = args.operands.get(1) {
        let set2 = tr_set(spec2);
        for c in input.chars() {
            let mapped = if complement {
                if in1(c) {
                    *set2.last().unwrap_or(&c)
                } else {
                    c
                }
            } else {
                match set1.iter().rposition(|&x| x == c) {
                    Some(i) => *set2.get(i).or(set2.last()).unwrap_or(&c),
                    None => c,
                }
            };
            if args.has('s') && out.ends_with(mapped) && set2.contains(&mapped) {
                continue;
            }
            out.push(mapped);
        }
    } else if args.has('s') {
        for c in input.chars() {
            if out.ends_with(c) && in1(c) {
                continue;
            }
            out.push(c);
        }
    } else {
        return Err(Fail::msg("missing operand after set"));
    }
    ctx.out(out)?;
    Ok(0)
}

/// Where a sed command applies.
#[derive(Clone)]
enum Address {
    Line(usize),
    Last,
    Regex(Regex),
}

enum SedOp {
    Substitute {
        re: Regex,
        replacement: String,
        global: bool,
        nth: usize,
        print: bool,
    },
    Delete,
    Print,
    Quit,
    LineNumber,
    Append(String),
    Insert(String),
    Change(String),
    Transliterate(Vec<char>, Vec<char>),
    /// `h`, `H`, `g`, `G`, `x`: the hold space.
    Hold {
        append: bool,
    },
    Get {
        append: bool,
    },
    Exchange,
    /// `n` (print and replace) and `N` (append) the next line.
    Next {
        append: bool,
    },
}

struct SedCommand {
    start: Option<Address>,
    end: Option<Address>,
    negate: bool,
    op: SedOp,
    active: bool,
}

struct SedParser<'a> {
    chars: Vec<char>,
    pos: usize,
    extended: bool,
    _src: &'a str,
}

impl SedParser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }

    /// Text up to an unescaped `delim`; `\delim` becomes `delim`, `\n` a newline when `text`.
    fn until(&mut self, delim: char, text: bool) -> Result<String, Fail> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == delim {
                return Ok(out);
            }
            if c == '\\' {
                if let Some(n) = self.peek() {
                    self.pos += 1;
                    if n == delim {
                        out.push(n);
                    } else if n == 'n' && text {
                        out.push('\n');
                    } else {
                        out.push('\\');
                        out.push(n);
                    }
                    continue;
                }
            }
            out.push(c);
        }
        Err(Fail::msg(format!("-e expression: unterminated `{delim}'")))
    }

    fn regex(&mut self, source: &str, fold: bool) -> Result<Regex, Fail> {
        build_regex(source, self.extended, false, fold)
    }

    fn address(&mut self) -> Result<Option<Address>, Fail> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                let mut n = 0usize;
                while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
                    n = n * 10 + d as usize;
                    self.pos += 1;
                }
                Ok(Some(Address::Line(n)))
            }
            Some('$') => {
                self.pos += 1;
                Ok(Some(Address::Last))
            }
            Some('/') => {
                self.pos += 1;
                let source = self.until('/', false)?;
                let fold = self.peek() == Some('I');
                if fold {
                    self.pos += 1;
                }
                Ok(Some(Address::Regex(self.regex(&source, fold)?)))
            }
            _ => Ok(None),
        }
    }

    /// The text of `a`, `i` and `c`: to the end of the line, after an optional `\`+newline.
    fn rest_of_line(&mut self) -> String {
        self.skip_space();
        if self.peek() == Some('\\') {
            self.pos += 1;
            if self.peek() == Some('\n') {
                self.pos += 1;
            }
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c != '\n') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn commands(&mut self) -> Result<Vec<SedCommand>, Fail> {
        let mut out = Vec::new();
        loop {
            while self.peek().is_some_and(|c| c.is_whitespace() || c == ';') {
                self.pos += 1;
            }
            if self.peek().is_none() {
                return Ok(out);
            }
            let start = self.address()?;
            let mut end = None;
            if start.is_some() && self.peek() == Some(',') {
                self.pos += 1;
                end = self.address()?;
            }
            self.skip_space();
            let mut negate = false;
            if self.peek() == Some('!') {
                negate = true;
                self.pos += 1;
                self.skip_space();
            }
            let Some(c) = self.peek() else {
                return Err(Fail::msg("-e expression: missing command"));
            };
            self.pos += 1;
            let op = match c {
                'd' => SedOp::Delete,
                'p' => SedOp::Print,
                'q' => SedOp::Quit,
                '=' => SedOp::LineNumber,
                'h' => SedOp::Hold { append: false },
                'H' => SedOp::Hold { append: true },
                'g' => SedOp::Get { append: false },
                'G' => SedOp::Get { append: true },
                'x' => SedOp::Exchange,
                'n' => SedOp::Next { append: false },
                'N' => SedOp::Next { append: true },
                'a' => SedOp::Append(self.rest_of_line()),
                'i' => SedOp::Insert(self.rest_of_line()),
                'c' => SedOp::Change(self.rest_of_line()),
                's' => {
                    let delim = self
                        .peek()
                        .ok_or_else(|| Fail::msg("unterminated `s' command"))?;
                    self.pos += 1;
                    let pattern = self.until(delim, false)?;
                    let replacement = self.until(delim, true)?;
                    let (mut global, mut print, mut fold, mut nth) = (false, false, false, 1);
                    while let Some(f) = self.peek() {
                        match f {
                            'g' => global = true,
                            'p' => print = true,
                            'i' | 'I' => fold = true,
                            d if d.is_ascii_digit() => nth = d.to_digit(10).unwrap_or(1) as usize,
                            _ => break,
                        }
                        self.pos += 1;
                    }
                    let re = self.regex(&pattern, fold)?;
                    SedOp::Substitute {
                        re,
                        replacement,
                        global,
                        nth,
                        print,
                    }
                }
                'y' => {
                    let delim = self
                        .peek()
                        .ok_or_else(|| Fail::msg("unterminated `y' command"))?;
                    self.pos += 1;
                    let from: Vec<char> = self.until(delim, true)?.chars().collect();
                    let to: Vec<char> = self.until(delim, true)?.chars().collect();
                    if from.len() != to.len() {
                        return Err(Fail::msg("strings for `y' command are different lengths"));
                    }
                    SedOp::Transliterate(from, to)
                }
                other => {
                    return Err(Fail::msg(format!(
                        "-e expression: unknown command: `{other}'"
                    )))
                }
            };
            out.push(SedCommand {
                start,
                end,
                negate,
                op,
                active: false,
            });
        }
    }
}

/// A sed replacement for one match: `&`, `\1`..`\9`, `\n`.
fn sed_replacement(template: &str, caps: &regex::Captures) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str(caps.get(0).map_or("", |m| m.as_str())),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let i = d.to_digit(10).unwrap_or(0) as usize;
                    out.push_str(caps.get(i).map_or("", |m| m.as_str()));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            _ => out.push(c),
        }
    }
    out
}

fn address_matches(a: &Address, line_no: usize, last: bool, line: &str) -> bool {
    match a {
        Address::Line(n) => *n == line_no,
        Address::Last => last,
        Address::Regex(re) => re.is_match(line),
    }
}

fn selected(cmd: &mut SedCommand, line_no: usize, last: bool, line: &str) -> bool {
    let hit = match (&cmd.start, &cmd.end) {
        (None, _) => true,
        (Some(s), None) => address_matches(s, line_no, last, line),
        (Some(s), Some(e)) => {
            if cmd.active {
                let ends = match e {
                    Address::Line(n) => line_no >= *n,
                    _ => address_matches(e, line_no, last, line),
                };
                if ends {
                    cmd.active = false;
                }
                true
            } else if address_matches(s, line_no, last, line) {
                // A line-number end at or before the start closes the range at once.
                cmd.active = !matches!(e, Address::Line(n) if *n <= line_no);
                true
            } else {
                false
            }
        }
    };
    hit != cmd.negate
}

fn run_sed(commands: &mut [SedCommand], input: &[u8], quiet: bool) -> String {
    let all = lines(input);
    let ends_with_newline = input.ends_with(b"\n");
    let mut out = String::new();
    let mut hold = String::new();
    let mut i = 0;
    while i < all.len() {
        let mut line_no = i + 1;
        let mut last = line_no == all.len();
        let mut space = all[i].clone();
        let mut deleted = false;
        let mut quit = false;
        let mut appended = Vec::new();
        for cmd in commands.iter_mut() {
            if !selected(cmd, line_no, last, &space) {
                continue;
            }
            match &cmd.op {
                SedOp::Hold { append: false } => hold = space.clone(),
                SedOp::Hold { append: true } => {
                    hold.push('\n');
                    hold.push_str(&space);
                }
                SedOp::Get { append: false } => space = hold.clone(),
                SedOp::Get { append: true } => {
                    space.push('\n');
                    space.push_str(&hold);
                }
                SedOp::Exchange => std::mem::swap(&mut space, &mut hold),
                SedOp::Next { append } => {
                    if last {
                        // No next line: GNU sed prints the pattern space and ends.
                        quit = true;
                        break;
                    }
                    if !append && !quiet {
                        out.push_str(&space);
                        out.push('\n');
                    }
                    i += 1;
                    line_no = i + 1;
                    last = line_no == all.len();
                    if *append {
                        space.push('\n');
                        space.push_str(&all[i]);
                    } else {
                        space = all[i].clone();
                    }
                }
                SedOp::Delete => {
                    deleted = true;
                    break;
                }
                SedOp::Print => {
                    out.push_str(&space);
                    out.push('\n');
                }
                SedOp::Quit => {
                    quit = true;
                    break;
                }
                SedOp::LineNumber => {
                    let _ = writeln!(out, "{line_no}");
                }
                SedOp::Append(t) => appended.push(t.clone()),
                SedOp::Insert(t) => {
                    out.push_str(t);
                    out.push('\n');
                }
                SedOp::Change(t) => {
                    out.push_str(t);
                    out.push('\n');
                    deleted = true;
                    break;
                }
                SedOp::Transliterate(from, to) => {
                    space = space
                        .chars()
                        .map(|c| from.iter().position(|&f| f == c).map_or(c, |i| to[i]))
                        .collect();
                }
                SedOp::Substitute {
                    re,
                    replacement,
                    global,
                    nth,
                    print,
                } => {
                    let mut count = 0;
                    let mut replaced = false;
                    let new = re.replace_all(&space, |caps: &regex::Captures| {
                        count += 1;
                        if count == *nth || (*global && count > *nth) {
                            replaced = true;
                            sed_replacement(replacement, caps)
                        } else {
                            caps[0].to_owned()
                        }
                    });
                    let new = new.into_owned();
                    if replaced {
                        space = new;
                        if *print {
                            out.push_str(&space);
                            out.push('\n');
                        }
                    }
                }
            }
        }
        if !deleted && !quiet {
            out.push_str(&space);
            if !last || ends_with_newline || quit {
                out.push('\n');
            }
        }
        for t in appended {
            out.push_str(&t);
            out.push('\n');
        }
        if quit {
            break;
        }
        i += 1;
    }
    out
}

fn sed(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut scripts = Vec::new();
    let mut files = Vec::new();
    let (mut quiet, mut extended, mut in_place) = (false, false, false);
    let mut rest = argv[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-n" | "--quiet" | "--silent" => quiet = true,
            "-E" | "-r" | "--regexp-extended" => extended = true,
            "-e" | "--expression" => scripts.push(
                rest.next()
                    .cloned()
                    .ok_or_else(|| Fail::msg("option requires an argument -- 'e'"))?,
            ),
            "-f" => {
                let name = rest
                    .next()
                    .ok_or_else(|| Fail::msg("option requires an argument -- 'f'"))?;
                scripts.push(String::from_utf8_lossy(&ctx.input(name)?).into_owned());
            }
            a if a.starts_with("-i") => in_place = true,
            a if a.starts_with('-') && a.len() > 1 && a[1..].chars().all(|c| "nEr".contains(c)) => {
                quiet |= a.contains('n');
                extended |= a.contains('E') || a.contains('r');
            }
            _ => files.push(arg.clone()),
        }
    }
    if scripts.is_empty() {
        if files.is_empty() {
            return Err(Fail::msg("no script specified"));
        }
        scripts.push(files.remove(0));
    }
    let script = scripts.join("\n");
    let mut parser = SedParser {
        chars: script.chars().collect(),
        pos: 0,
        extended,
        _src: &script,
    };
    let mut commands = parser.commands()?;
    if in_place {
        if files.is_empty() {
            return Err(Fail::msg("no input files"));
        }
        for name in &files {
            let input = ctx.input(name)?;
            for c in commands.iter_mut() {
                c.active = false;
            }
            let output = run_sed(&mut commands, &input, quiet);
            std::fs::write(ctx.path(name), output).map_err(|e| Fail::io(name, &e))?;
        }
        return Ok(0);
    }
    let (inputs, failed) = ctx.inputs("sed", &files);
    let input: Vec<u8> = inputs.into_iter().flat_map(|(_, b)| b).collect();
    ctx.out(run_sed(&mut commands, &input, quiet))?;
    Ok(i32::from(failed) * 2)
}

fn diff_range(start: usize, len: usize) -> String {
    match len {
        0 => start.to_string(),
        1 => (start + 1).to_string(),
        _ => format!("{},{}", start + 1, start + len),
    }
}

fn file_stamp(ctx: &Ctx, name: &str) -> String {
    let modified = std::fs::metadata(ctx.path(name))
        .and_then(|m| m.modified())
        .ok();
    let Some(t) = modified else {
        return String::new();
    };
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .map(|dt| dt.format("%Y-%m-%d %H:%M:%S.%f +0000").to_string())
        .unwrap_or_default()
}

fn diff(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "uqrNaiwb", "U", &[("unified", 'u'), ("brief", 'q')])?;
    let [a, b] = args.operands.as_slice() else {
        return Err(Fail::Msg(
            format!(
                "missing operand after '{}'",
                argv.last().map_or("diff", |s| s.as_str())
            ),
            2,
        ));
    };
    let left = ctx.input(a).map_err(|e| match e {
        Fail::Msg(m, _) => Fail::Msg(m, 2),
        f => f,
    })?;
    let right = ctx.input(b).map_err(|e| match e {
        Fail::Msg(m, _) => Fail::Msg(m, 2),
        f => f,
    })?;
    if left == right {
        return Ok(0);
    }
    if args.has('q') {
        ctx.out(format!("Files {a} and {b} differ\n"))?;
        return Ok(1);
    }
    let (lt, rt) = (
        String::from_utf8_lossy(&left),
        String::from_utf8_lossy(&right),
    );
    let diff = similar::TextDiff::from_lines(lt.as_ref(), rt.as_ref());
    let mut out = String::new();
    let line = |s: &str| {
        if s.ends_with('\n') {
            s.to_owned()
        } else {
            format!("{s}\n\\ No newline at end of file\n")
        }
    };
    if args.has('u') || args.value('U').is_some() {
        let context = args.value('U').and_then(|u| u.parse().ok()).unwrap_or(3);
        let _ = writeln!(out, "--- {a}\t{}", file_stamp(ctx, a));
        let _ = writeln!(out, "+++ {b}\t{}", file_stamp(ctx, b));
        for hunk in diff.unified_diff().context_radius(context).iter_hunks() {
            let _ = writeln!(out, "{}", hunk.header());
            for change in hunk.iter_changes() {
                let sign = match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                };
                out.push(sign);
                out.push_str(&line(change.value()));
            }
        }
    } else {
        let old: Vec<&str> = diff.old_slices().to_vec();
        let new: Vec<&str> = diff.new_slices().to_vec();
        for group in diff.grouped_ops(0) {
            for op in group {
                let (tag, o, n) = op.as_tag_tuple();
                let code = match tag {
                    similar::DiffTag::Equal => continue,
                    similar::DiffTag::Delete => 'd',
                    similar::DiffTag::Insert => 'a',
                    similar::DiffTag::Replace => 'c',
                };
                let left = if code == 'a' {
                    o.start.to_string()
                } else {
                    diff_range(o.start, o.len())
                };
                let right = if code == 'd' {
                    n.start.to_string()
                } else {
                    diff_range(n.start, n.len())
                };
                let _ = writeln!(out, "{left}{code}{right}");
                for l in &old[o.clone()] {
                    out.push_str("< ");
                    out.push_str(&line(l));
                }
                if code == 'c' {
                    out.push_str("---\n");
                }
                for l in &new[n.clone()] {
                    out.push_str("> ");
                    out.push_str(&line(l));
                }
            }
        }
    }
    ctx.out(out)?;
    Ok(1)
}

fn base64_(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "di",
        "w",
        &[("decode", 'd'), ("wrap", 'w'), ("ignore-garbage", 'i')],
    )?;
    let input = ctx.input(args.operands.first().map_or("-", String::as_str))?;
    let engine = base64::engine::general_purpose::STANDARD;
    if args.has('d') {
        let clean: Vec<u8> = input
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let bytes = engine
            .decode(clean)
            .map_err(|_| Fail::msg("invalid input"))?;
        ctx.out(bytes)?;
        return Ok(0);
    }
    let wrap: usize = args.value('w').and_then(|w| w.parse().ok()).unwrap_or(76);
    let encoded = engine.encode(input);
    let mut out = String::new();
    if wrap == 0 {
        out.push_str(&encoded);
        out.push('\n');
    } else {
        for chunk in encoded.as_bytes().chunks(wrap) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
    }
    ctx.out(out)?;
    Ok(0)
}

#[derive(Clone, Copy)]
enum Digest {
    Md5,
    Sha256,
}

fn checksum(ctx: &mut Ctx, argv: &[String], digest: Digest) -> Outcome {
    use sha2::Digest as _;
    let args = Args::parse(argv, "btz", "", &[])?;
    let (inputs, failed) = ctx.inputs(&argv[0], &args.operands);
    let mut out = String::new();
    for (name, bytes) in inputs {
        let hex: String = match digest {
            Digest::Md5 => md5::Md5::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            Digest::Sha256 => sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        let _ = writeln!(out, "{hex}  {name}");
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}

fn rev(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let (inputs, failed) = ctx.inputs("rev", &argv[1..]);
    let mut out = String::new();
    for (_, bytes) in inputs {
        for line in lines(&bytes) {
            out.extend(line.chars().rev());
            out.push('\n');
        }
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}

fn nl(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let (inputs, failed) = ctx.inputs("nl", &argv[1..]);
    let mut out = String::new();
    let mut n = 0;
    for (_, bytes) in inputs {
        for line in lines(&bytes) {
            if line.is_empty() {
                out.push_str("       \n");
            } else {
                n += 1;
                let _ = writeln!(out, "{n:>6}\t{line}");
            }
        }
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}

/// `paste [-s] [-d LIST] FILE...`: lines of the files side by side, or (`-s`) each file's
/// lines on one line; the delimiters of LIST are used in turn.
fn paste(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "s", "d", &[("serial", 's'), ("delimiters", 'd')])?;
    let delims: Vec<char> = crate::expand::ansi_c(args.value('d').unwrap_or("\t"))
        .chars()
        .collect();
    let delim = |i: usize| delims.get(i % delims.len().max(1)).copied();
    let (inputs, failed) = ctx.inputs("paste", &args.operands);
    let columns: Vec<Vec<String>> = inputs.iter().map(|(_, b)| lines(b)).collect();
    let mut out = String::new();
    let join = |cells: &[String]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.extend(delim(i - 1));
            }
            line.push_str(cell);
        }
        line
    };
    if args.has('s') {
        for column in &columns {
            out.push_str(&join(column));
            out.push('\n');
        }
    } else {
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..rows {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| c.get(r).cloned().unwrap_or_default())
                .collect();
            out.push_str(&join(&cells));
            out.push('\n');
        }
    }
    ctx.out(out)?;
    Ok(i32::from(failed))
}
