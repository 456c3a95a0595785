//! The remaining utilities: seq, date, env, sleep, xargs, yes, basename, dirname, and the
//! format engine `printf` uses.

use std::fmt::Write as _;

use crate::commands::{Args, Command, Ctx, Fail, Outcome};
use crate::path;

/// The utility called `name`.
pub fn lookup(name: &str) -> Option<Command> {
    Some(match name {
        "seq" => seq,
        "date" => date,
        "env" | "printenv" => env,
        "sleep" => sleep,
        "xargs" => xargs,
        "yes" => yes,
        "basename" => basename,
        "dirname" => dirname,
        "whoami" => |ctx, _| {
            ctx.out("user\n")?;
            Ok(0)
        },
        "wait" => |_, _| Ok(0),
        "awk" | "gawk" | "mawk" => crate::awk::awk,
        _ => return None,
    })
}

/// Formats `args` with a printf `format`, repeating it while arguments remain. Returns the text
/// and whether every numeric argument was valid.
pub fn format(format: &str, args: &[String]) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let mut next = 0;
    loop {
        let used_before = next;
        format_pass(format, args, &mut next, &mut ok, &mut out);
        if next >= args.len() || next == used_before {
            break;
        }
    }
    (out, ok)
}

/// One pass of `format` over `args` (awk's printf and sprintf do not repeat the format).
pub fn format_once(format: &str, args: &[String]) -> String {
    let (mut out, mut ok, mut next) = (String::new(), true, 0);
    format_pass(format, args, &mut next, &mut ok, &mut out);
    out
}

fn format_pass(format: &str, args: &[String], next: &mut usize, ok: &mut bool, out: &mut String) {
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let (text, consumed) = escape_at(&chars[i..]);
            out.push_str(&text);
            i += consumed;
            continue;
        }
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'%') {
            out.push('%');
            i += 2;
            continue;
        }
        // %[flags][width][.precision]conversion
        let mut j = i + 1;
        while j < chars.len() && "-+ 0#".contains(chars[j]) {
            j += 1;
        }
        let spec_start = j;
        while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.' || chars[j] == '*') {
            j += 1;
        }
        let Some(&conv) = chars.get(j) else {
            out.extend(&chars[i..]);
            break;
        };
        let flags: String = chars[i + 1..spec_start].iter().collect();
        let mut spec: String = chars[spec_start..j].iter().collect();
        while let Some(star) = spec.find('*') {
            let v = args.get(*next).cloned().unwrap_or_default();
            *next += 1;
            spec.replace_range(star..star + 1, &v);
        }
        let (width, precision) = match spec.split_once('.') {
            Some((w, p)) => (
                w.parse::<usize>().ok(),
                Some(p.parse::<usize>().unwrap_or(0)),
            ),
            None => (spec.parse::<usize>().ok(), None),
        };
        let arg = args.get(*next).cloned();
        *next += 1;
        let body = match conv {
            's' => {
                let s = arg.unwrap_or_default();
                match precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            'b' => crate::expand::ansi_c(&arg.unwrap_or_default()),
            'c' => arg
                .and_then(|a| a.chars().next())
                .map(String::from)
                .unwrap_or_default(),
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                let n = match arg.as_deref().map(parse_int) {
                    Some(Some(n)) => n,
                    None => 0,
                    Some(None) => {
                        *ok = false;
                        0
                    }
                };
                let digits = match conv {
                    'x' => format!("{n:x}"),
                    'X' => format!("{n:X}"),
                    'o' => format!("{n:o}"),
                    _ => n.abs().to_string(),
                };
                let digits = match precision {
                    Some(p) if digits.len() < p => {
                        format!("{}{digits}", "0".repeat(p - digits.len()))
                    }
                    _ => digits,
                };
                let sign = if n < 0 && matches!(conv, 'd' | 'i' | 'u') {
                    "-"
                } else if flags.contains('+') {
                    "+"
                } else if flags.contains(' ') {
                    " "
                } else {
                    ""
                };
                pad_number(sign, &digits, width, &flags)
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let x = match arg.as_deref().map(|a| a.trim().parse::<f64>()) {
                    Some(Ok(x)) => x,
                    None => 0.0,
                    Some(Err(_)) => {
                        *ok = false;
                        0.0
                    }
                };
                let p = precision.unwrap_or(6);
                let text = match conv {
                    'e' | 'E' => {
                        let t = format!("{:.*e}", p, x.abs());
                        // Rust writes 1.5e2; C writes 1.5e+02.
                        let (mantissa, exp) = t.split_once('e').unwrap_or((&t, "0"));
                        let exp: i32 = exp.parse().unwrap_or(0);
                        let t = format!(
                            "{mantissa}e{}{:02}",
                            if exp < 0 { '-' } else { '+' },
                            exp.abs()
                        );
                        if conv == 'E' {
                            t.to_uppercase()
                        } else {
                            t
                        }
                    }
                    'g' | 'G' => {
                        let t = general(x.abs(), precision.unwrap_or(6), flags.contains('#'));
                        if conv == 'G' {
                            t.to_uppercase()
                        } else {
                            t
                        }
                    }
                    _ => format!("{:.*}", p, x.abs()),
                };
                let sign = if x < 0.0 {
                    "-"
                } else if flags.contains('+') {
                    "+"
                } else {
                    ""
                };
                pad_number(sign, &text, width, &flags)
            }
            other => {
                out.push('%');
                out.push(other);
                i = j + 1;
                continue;
            }
        };
        let body = if matches!(conv, 's' | 'b' | 'c') {
            pad_text(&body, width, flags.contains('-'))
        } else {
            body
        };
        out.push_str(&body);
        i = j + 1;
    }
}

/// C's `%g`: `%e` or `%f` by the exponent, trailing zeros removed (kept with `#`).
fn general(x: f64, precision: usize, keep_zeros: bool) -> String {
    let p = precision.max(1);
    if x == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to `p` digits (9.9999996 rounds up to 1.00000e1).
    let e_form = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = e_form.split_once('e').unwrap_or((&e_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mantissa = if keep_zeros {
            mantissa.to_owned()
        } else {
            strip_zeros(mantissa)
        };
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        let t = format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, x);
        if keep_zeros {
            t
        } else {
            strip_zeros(&t)
        }
    }
}

fn strip_zeros(t: &str) -> String {
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        t.to_owned()
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(c) = t.strip_prefix('\'').or_else(|| t.strip_prefix('"')) {
        return c.chars().next().map(|c| c as i64);
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse().ok()
}

fn pad_text(text: &str, width: Option<usize>, left: bool) -> String {
    let w = width.unwrap_or(0);
    let len = text.chars().count();
    if len >= w {
        return text.to_owned();
    }
    let pad = " ".repeat(w - len);
    if left {
        format!("{text}{pad}")
    } else {
        format!("{pad}{text}")
    }
}

fn pad_number(sign: &str, digits: &str, width: Option<usize>, flags: &str) -> String {
    let w = width.unwrap_or(0);
    let len = sign.len() + digits.len();
    if len >= w {
        return format!("{sign}{digits}");
    }
    if flags.contains('-') {
        format!("{sign}{digits}{}", " ".repeat(w - len))
    } else if flags.contains('0') {
        format!("{sign}{}{digits}", "0".repeat(w - len))
    } else {
        format!("{}{sign}{digits}", " ".repeat(w - len))
    }
}

/// A backslash escape at the start of `chars`: its text and how many characters it took.
fn escape_at(chars: &[char]) -> (String, usize) {
    let Some(&c) = chars.get(1) else {
        return ("\\".into(), 1);
    };
    if c.is_digit(8) {
        let digits: String = chars[1..]
            .iter()
            .take(3)
            .take_while(|c| c.is_digit(8))
            .collect();
        let n = digits.len();
        let ch = u32::from_str_radix(&digits, 8)
            .ok()
            .and_then(char::from_u32)
            .unwrap_or('\0');
        return (ch.to_string(), 1 + n);
    }
    let text: String = chars[..2].iter().collect();
    (crate::expand::ansi_c(&text), 2)
}

fn seq(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut sep = "\n".to_owned();
    let mut equal_width = false;
    let mut numbers = Vec::new();
    let mut rest = argv[1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "-s" => sep = rest.next().cloned().unwrap_or_default(),
            "-w" => equal_width = true,
            a if a.starts_with("-s") => sep = a[2..].to_owned(),
            _ => numbers.push(a.clone()),
        }
    }
    let parsed: Result<Vec<f64>, _> = numbers.iter().map(|n| n.parse::<f64>()).collect();
    let parsed = parsed.map_err(|_| {
        Fail::msg(format!(
            "invalid floating point argument: '{}'",
            numbers.join(" ")
        ))
    })?;
    let (first, step, last) = match parsed.as_slice() {
        [l] => (1.0, 1.0, *l),
        [f, l] => (*f, 1.0, *l),
        [f, s, l] => (*f, *s, *l),
        _ => return Err(Fail::msg("missing operand")),
    };
    if step == 0.0 {
        return Err(Fail::msg("invalid Zero increment value: '0'"));
    }
    let decimals = numbers
        .iter()
        .map(|n| n.split_once('.').map_or(0, |(_, d)| d.len()))
        .max()
        .unwrap_or(0);
    let width = if equal_width {
        [first, last]
            .iter()
            .map(|x| format!("{x:.decimals$}").len())
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    let mut out = String::new();
    let mut x = first;
    let mut count = 0u64;
    while (step > 0.0 && x <= last + 1e-9) || (step < 0.0 && x >= last - 1e-9) {
        if count > 0 {
            out.push_str(&sep);
        }
        let _ = write!(out, "{x:0width$.decimals$}");
        count += 1;
        x = first + step * count as f64;
        if out.len() > 1 << 20 {
            ctx.out(std::mem::take(&mut out))?;
        }
    }
    if count > 0 {
        out.push('\n');
    }
    ctx.out(out)?;
    Ok(0)
}

fn date(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(
        argv,
        "uRI",
        "dr",
        &[("utc", 'u'), ("date", 'd'), ("iso-8601", 'I')],
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut secs = now.as_secs() as i64;
    if let Some(d) = args.value('d') {
        secs = match d.strip_prefix('@') {
            Some(n) => n
                .parse()
                .map_err(|_| Fail::msg(format!("invalid date '{d}'")))?,
            None => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|dt| dt.and_utc().timestamp())
                .or_else(|| {
                    chrono::DateTime::parse_from_rfc3339(d)
                        .ok()
                        .map(|dt| dt.timestamp())
                })
                .ok_or_else(|| Fail::msg(format!("invalid date '{d}'")))?,
        };
    }
    let dt = chrono::DateTime::from_timestamp(
        secs,
        if args.value('d').is_some() {
            0
        } else {
            now.subsec_nanos()
        },
    )
    .ok_or_else(|| Fail::msg("date out of range"))?;
    let format = match args.operands.first() {
        Some(f) => f
            .strip_prefix('+')
            .ok_or_else(|| Fail::msg(format!("invalid date '{f}'")))?
            .to_owned(),
        None if args.has('R') => "%a, %d %b %Y %H:%M:%S +0000".into(),
        None if args.has('I') => "%Y-%m-%d".into(),
        None => "%a %b %e %H:%M:%S UTC %Y".into(),
    };
    // chrono's %Z prints "UTC" for UTC, like date with TZ unset.
    let mut text = String::new();
    write!(text, "{}", dt.format(&format))
        .map_err(|_| Fail::msg(format!("invalid format '{format}'")))?;
    ctx.out(format!("{text}\n"))?;
    Ok(0)
}

fn env(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    if argv[0] == "printenv" && argv.len() > 1 {
        let mut status = 0;
        for name in &argv[1..] {
            match ctx.sh.environment().into_iter().find(|(k, _)| k == name) {
                Some((_, v)) => ctx.out(format!("{v}\n"))?,
                None => status = 1,
            }
        }
        return Ok(status);
    }
    let mut assignments = Vec::new();
    let mut rest = argv[1..].iter().peekable();
    let mut clear = false;
    while let Some(a) = rest.peek() {
        if *a == "-i" || *a == "-" {
            clear = true;
        } else if a.contains('=') && !a.starts_with('=') {
            assignments.push((*a).clone());
        } else {
            break;
        }
        rest.next();
    }
    let command: Vec<String> = rest.cloned().collect();
    if command.is_empty() {
        let mut vars = if clear {
            Vec::new()
        } else {
            ctx.sh.environment()
        };
        for a in &assignments {
            if let Some((k, v)) = a.split_once('=') {
                vars.retain(|(name, _)| name != k);
                vars.push((k.to_owned(), v.to_owned()));
            }
        }
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        ctx.out(text)?;
        return Ok(0);
    }
    let mut child = ctx.sh.clone();
    if clear {
        for (k, _) in child.environment() {
            child.unset_var(&k);
        }
    }
    for a in &assignments {
        if let Some((k, v)) = a.split_once('=') {
            child.set_var(k, v.to_owned());
            child.exported.insert(k.to_owned());
        }
    }
    Ok(child.run_isolated(|sh| sh.exec(command, ctx.io)))
}

fn sleep(_ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut total = 0.0;
    for a in &argv[1..] {
        let (number, unit) = match a.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&a[..i], c),
            _ => (a.as_str(), 's'),
        };
        let n: f64 = number
            .parse()
            .map_err(|_| Fail::msg(format!("invalid time interval '{a}'")))?;
        total += n * match unit {
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => 1.0,
        };
    }
    // The skill's deadline still applies: a long sleep ends with the call.
    std::thread::sleep(std::time::Duration::from_secs_f64(total.max(0.0)));
    Ok(0)
}

/// Splits xargs input into items: blanks and newlines separate, quotes group.
fn xargs_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut has = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, c) if c.is_whitespace() => {
                if has || !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                    has = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if has || !current.is_empty() {
        items.push(current);
    }
    items
}

fn xargs(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut per_call = usize::MAX;
    let mut replace: Option<String> = None;
    let mut null = false;
    let mut i = 1;
    while i < argv.len() && argv[i].starts_with('-') {
        match argv[i].as_str() {
            "-n" => {
                i += 1;
                per_call = argv
                    .get(i)
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Fail::msg("invalid number for -n"))?;
            }
            "-I" => {
                i += 1;
                replace = argv.get(i).cloned();
            }
            "-0" => null = true,
            "-r" | "-t" | "--no-run-if-empty" => {}
            a if a.starts_with("-n") => {
                per_call = a[2..]
                    .parse()
                    .map_err(|_| Fail::msg("invalid number for -n"))?
            }
            a if a.starts_with("-I") => replace = Some(a[2..].to_owned()),
            a => return Err(Fail::msg(format!("invalid option -- '{}'", &a[1..]))),
        }
        i += 1;
    }
    let command: Vec<String> = if i < argv.len() {
        argv[i..].to_vec()
    } else {
        vec!["echo".into()]
    };
    let input = String::from_utf8_lossy(&ctx.io.stdin.read_all()).into_owned();
    let items: Vec<String> = if null {
        input
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    } else if replace.is_some() {
        input
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        xargs_items(&input)
    };
    let mut status = 0;
    let io = ctx.io;
    let mut run = |argv: Vec<String>| -> Result<(), Fail> {
        let s = ctx.sh.exec(argv, io).map_err(Fail::Flow)?;
        if s != 0 {
            status = 123;
        }
        Ok(())
    };
    if let Some(token) = replace {
        for item in &items {
            run(command.iter().map(|a| a.replace(&token, item)).collect())?;
        }
    } else if items.is_empty() {
        if command[0] == "echo" {
            run(command.clone())?;
        }
    } else {
        for chunk in items.chunks(per_call.min(items.len()).max(1)) {
            let mut call = command.clone();
            call.extend(chunk.iter().cloned());
            run(call)?;
        }
    }
    Ok(status)
}

fn yes(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let word = if argv.len() > 1 {
        argv[1..].join(" ")
    } else {
        "y".into()
    };
    let chunk = format!("{word}\n").repeat((8192 / (word.len() + 1)).max(1));
    // Runs until the pipe, the file system or the fuel runs out, as `yes` does.
    loop {
        ctx.out(&chunk)?;
    }
}

fn basename(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "az", "s", &[("multiple", 'a'), ("suffix", 's')])?;
    let (names, suffix): (Vec<&String>, Option<String>) =
        if args.has('a') || args.value('s').is_some() {
            (
                args.operands.iter().collect(),
                args.value('s').map(str::to_owned),
            )
        } else {
            match args.operands.as_slice() {
                [name] => (vec![name], None),
                [name, suffix] => (vec![name], Some(suffix.clone())),
                _ => return Err(Fail::msg("missing operand")),
            }
        };
    let mut out = String::new();
    for name in names {
        let base = path::basename(name);
        let base = match &suffix {
            Some(s) if base.len() > s.len() => base.strip_suffix(s.as_str()).unwrap_or(base),
            _ => base,
        };
        out.push_str(base);
        out.push('\n');
    }
    ctx.out(out)?;
    Ok(0)
}

fn dirname(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    if argv.len() < 2 {
        return Err(Fail::msg("missing operand"));
    }
    let text: String = argv[1..]
        .iter()
        .map(|a| format!("{}\n", path::dirname(a)))
        .collect();
    ctx.out(text)?;
    Ok(0)
}
