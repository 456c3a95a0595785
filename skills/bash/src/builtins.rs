//! Builtins: the commands that change the shell itself (variables, directory, control flow),
//! plus `echo`, `printf`, `test`, `read` and `bash -c`.

use crate::commands::{to_flow, Args, Command, Ctx, Fail, Outcome};
use crate::io::Io;
use crate::path;
use crate::shell::{Array, Flow, Shell, Slot};

/// The builtin called `name`.
pub fn lookup(name: &str) -> Option<Command> {
    Some(match name {
        ":" | "true" => |_, _| Ok(0),
        "false" => |_, _| Ok(1),
        "cd" => cd,
        "pwd" => |ctx, _| {
            ctx.out(format!("{}\n", ctx.sh.cwd))?;
            Ok(0)
        },
        "export" => export,
        "unset" => unset,
        "set" => set,
        "shift" => shift,
        "read" => read,
        "local" => local,
        "declare" | "typeset" | "readonly" => declare,
        "return" => return_,
        "exit" => exit,
        "break" => |ctx, argv| loop_jump(ctx, argv, Flow::Break),
        "continue" => |ctx, argv| loop_jump(ctx, argv, Flow::Continue),
        "eval" => eval,
        "source" | "." => source,
        "test" | "[" => crate::test::command,
        "echo" => echo,
        "printf" => printf,
        "type" => type_,
        "command" => command,
        "let" => let_,
        "bash" | "sh" => bash,
        "trap" => trap,
        "mapfile" | "readarray" => mapfile,
        "which" => which,
        _ => return None,
    })
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn cd(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let target = match argv.get(1).map(String::as_str) {
        None | Some("~") => ctx.sh.var("HOME").unwrap_or(path::HOME).to_owned(),
        Some("-") => {
            let old = ctx.sh.var("OLDPWD").unwrap_or(path::HOME).to_owned();
            ctx.out(format!("{old}\n"))?;
            old
        }
        Some(dir) => dir.to_owned(),
    };
    let resolved = path::absolute(&ctx.sh.cwd, &target);
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_dir() => {
            let old = std::mem::replace(&mut ctx.sh.cwd, resolved.clone());
            ctx.sh.set_var("OLDPWD", old);
            ctx.sh.set_var("PWD", resolved);
            Ok(0)
        }
        Ok(_) => Err(Fail::msg(format!("{target}: Not a directory"))),
        Err(e) => Err(Fail::io(&target, &e)),
    }
}

/// `NAME=value` or `NAME`.
fn split_assignment(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    }
}

fn export(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let names: Vec<&String> = argv[1..].iter().filter(|a| !a.starts_with('-')).collect();
    if names.is_empty() {
        for (k, v) in ctx.sh.environment() {
            ctx.out(format!("declare -x {k}=\"{v}\"\n"))?;
        }
        return Ok(0);
    }
    let mut status = 0;
    for word in names {
        let (name, value) = split_assignment(word);
        if !is_name(name) {
            ctx.warn("bash: export", format!("`{word}': not a valid identifier"));
            status = 1;
            continue;
        }
        if let Some(v) = value {
            ctx.sh.set_var(name, v.to_owned());
        }
        ctx.sh.exported.insert(name.to_owned());
    }
    Ok(status)
}

fn unset(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let functions = argv.get(1).is_some_and(|a| a == "-f");
    for name in argv[1..].iter().filter(|a| !a.starts_with('-')) {
        if functions {
            ctx.sh.functions.remove(name);
        } else if let Some((array, index)) = name.strip_suffix(']').and_then(|n| n.split_once('['))
        {
            let slot = ctx.sh.slot(array, index, ctx.io)?;
            match (ctx.sh.arrays.get_mut(array), slot) {
                (Some(Array::Indexed(m)), Slot::Index(i)) => {
                    m.remove(&i);
                }
                (Some(Array::Assoc(m)), Slot::Key(k)) => {
                    m.remove(&k);
                }
                _ => {}
            }
        } else {
            ctx.sh.unset_var(name);
        }
    }
    Ok(0)
}

fn set(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    if argv.len() == 1 {
        let mut vars: Vec<_> = ctx.sh.vars.iter().collect();
        vars.sort();
        let text: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        ctx.out(text)?;
        return Ok(0);
    }
    let mut args = argv[1..].iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            ctx.sh.positional = args.cloned().collect();
            break;
        }
        let (on, letters) = match (arg.strip_prefix('-'), arg.strip_prefix('+')) {
            (Some(l), _) => (true, l),
            (_, Some(l)) => (false, l),
            _ => {
                ctx.sh.positional = std::iter::once(arg).chain(args).cloned().collect();
                break;
            }
        };
        for c in letters.chars() {
            match c {
                'e' => ctx.sh.options.errexit = on,
                'u' => ctx.sh.options.nounset = on,
                'x' | 'v' | 'f' | 'h' | 'B' | 'C' => {}
                'o' => {
                    let option = args.next().map(String::as_str).unwrap_or("");
                    match option {
                        "pipefail" => ctx.sh.options.pipefail = on,
                        "errexit" => ctx.sh.options.errexit = on,
                        "nounset" => ctx.sh.options.nounset = on,
                        "xtrace" | "noglob" | "noclobber" | "verbose" => {}
                        other => return Err(Fail::msg(format!("{other}: invalid option name"))),
                    }
                }
                other => return Err(Fail::Msg(format!("-{other}: invalid option"), 2)),
            }
        }
    }
    Ok(0)
}

fn shift(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let n: usize = match argv.get(1) {
        Some(n) => n
            .parse()
            .map_err(|_| Fail::msg(format!("{n}: numeric argument required")))?,
        None => 1,
    };
    if n > ctx.sh.positional.len() {
        return Ok(1);
    }
    ctx.sh.positional.drain(..n);
    Ok(0)
}

fn read(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "rs", "pdtnua", &[])?;
    let raw = args.has('r');
    let Some((line, newline)) = ctx.io.stdin.read_line() else {
        for name in &args.operands {
            ctx.sh.set_var(name, String::new());
        }
        return Ok(1);
    };
    let mut text = String::from_utf8_lossy(&line).into_owned();
    if !raw {
        text = remove_backslashes(&text);
    }
    if let Some(array) = args.value('a') {
        let ifs = ctx.sh.var("IFS").unwrap_or(" \t\n").to_owned();
        let words: Vec<(i64, String)> = text
            .split(|c: char| ifs.contains(c))
            .filter(|w| !w.is_empty())
            .enumerate()
            .map(|(i, w)| (i as i64, w.to_owned()))
            .collect();
        ctx.sh.vars.remove(array);
        ctx.sh.arrays.insert(
            array.to_owned(),
            Array::Indexed(words.into_iter().collect()),
        );
        return Ok(i32::from(!newline));
    }
    let names: Vec<String> = if args.operands.is_empty() {
        vec!["REPLY".into()]
    } else {
        args.operands.clone()
    };
    if names.len() == 1 && names[0] == "REPLY" && args.operands.is_empty() {
        ctx.sh.set_var("REPLY", text);
        return Ok(i32::from(!newline));
    }
    let ifs = ctx.sh.var("IFS").unwrap_or(" \t\n").to_owned();
    let is_sep = |c: char| ifs.contains(c);
    let mut rest = text.trim_matches(|c: char| is_sep(c) && c.is_whitespace());
    for (i, name) in names.iter().enumerate() {
        if i + 1 == names.len() {
            let value = rest.trim_end_matches(|c: char| is_sep(c) && c.is_whitespace());
            ctx.sh.set_var(name, value.to_owned());
            break;
        }
        match rest.find(is_sep) {
            Some(at) => {
                ctx.sh.set_var(name, rest[..at].to_owned());
                let sep_len = rest[at..].chars().next().map_or(1, char::len_utf8);
                rest = rest[at + sep_len..]
                    .trim_start_matches(|c: char| is_sep(c) && c.is_whitespace());
            }
            None => {
                ctx.sh.set_var(name, rest.to_owned());
                rest = "";
            }
        }
    }
    Ok(i32::from(!newline))
}

fn remove_backslashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn local(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    if !ctx.sh.in_function() {
        return Err(Fail::msg("can only be used in a function"));
    }
    assign_words(ctx, argv, true)
}

fn declare(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let local = ctx.sh.in_function() && argv[0] != "readonly";
    assign_words(ctx, argv, local)
}

fn assign_words(ctx: &mut Ctx, argv: &[String], local: bool) -> Outcome {
    let mut export = false;
    // `declare -a NAME` / `declare -A NAME`: an empty array of that kind.
    let mut kind: Option<Array> = None;
    let mut integer = false;
    for word in &argv[1..] {
        if let Some(flags) = word.strip_prefix('-') {
            export |= flags.contains('x');
            integer |= flags.contains('i');
            if flags.contains('A') {
                kind = Some(Array::Assoc(Default::default()));
            } else if flags.contains('a') {
                kind = Some(Array::Indexed(Default::default()));
            }
            continue;
        }
        let (name, value) = split_assignment(word);
        if !is_name(name) {
            return Err(Fail::msg(format!("`{word}': not a valid identifier")));
        }
        if local {
            ctx.sh.make_local(name);
        }
        // `local -a NAME=(a b)`: the list arrives expanded, so its words split on blanks.
        if let Some(list) = value.and_then(|v| v.strip_prefix('(')?.strip_suffix(')')) {
            let items = list.split_whitespace().enumerate();
            let array = match kind {
                Some(Array::Assoc(_)) => {
                    Array::Assoc(items.map(|(i, w)| (i.to_string(), w.to_owned())).collect())
                }
                _ => Array::Indexed(items.map(|(i, w)| (i as i64, w.to_owned())).collect()),
            };
            ctx.sh.vars.remove(name);
            ctx.sh.arrays.insert(name.to_owned(), array);
            continue;
        }
        if integer {
            ctx.sh.integers.insert(name.to_owned());
        }
        let value = match value {
            Some(v) if integer => Some(crate::arith::eval_str(ctx.sh, v, ctx.io)?.to_string()),
            other => other.map(str::to_owned),
        };
        let value = value.as_deref();
        match (&kind, value) {
            (Some(array), _) => {
                if !ctx.sh.arrays.contains_key(name) || local {
                    ctx.sh.vars.remove(name);
                    ctx.sh.arrays.insert(name.to_owned(), array.clone());
                }
            }
            (None, Some(v)) => ctx.sh.set_var(name, v.to_owned()),
            (None, None) if local => ctx.sh.set_var(name, String::new()),
            (None, None) => {}
        }
        if export {
            ctx.sh.exported.insert(name.to_owned());
        }
    }
    Ok(0)
}

fn status_arg(ctx: &Ctx, argv: &[String]) -> Result<i32, Fail> {
    match argv.get(1) {
        None => Ok(ctx.sh.status),
        Some(n) => n
            .parse::<i64>()
            .map(|n| (n & 0xff) as i32)
            .map_err(|_| Fail::Msg(format!("{n}: numeric argument required"), 2)),
    }
}

fn return_(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    if !ctx.sh.in_function() {
        return Err(Fail::msg(
            "can only `return' from a function or sourced script",
        ));
    }
    Err(Fail::Flow(Flow::Return(status_arg(ctx, argv)?)))
}

fn exit(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let status = status_arg(ctx, argv).unwrap_or(2);
    Err(Fail::Flow(Flow::Exit(status)))
}

fn loop_jump(ctx: &mut Ctx, argv: &[String], flow: fn(u32) -> Flow) -> Outcome {
    if !ctx.sh.in_loop() {
        return Err(Fail::Msg(
            "only meaningful in a `for', `while', or `until' loop".into(),
            0,
        ));
    }
    let n = match argv.get(1) {
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Fail::msg(format!("{n}: loop count out of range")))?,
        None => 1,
    };
    Err(Fail::Flow(flow(n)))
}

fn run_nested(ctx: &mut Ctx, source: &str) -> Outcome {
    if ctx.sh.nesting >= crate::shell::MAX_NESTING {
        return Err(Fail::msg("maximum nesting level exceeded"));
    }
    ctx.sh.nesting += 1;
    let result = ctx.sh.run_source(source, ctx.io);
    ctx.sh.nesting -= 1;
    to_flow(result)
}

fn eval(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let source = argv[1..].join(" ");
    run_nested(ctx, &source)
}

fn source(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let Some(name) = argv.get(1) else {
        return Err(Fail::Msg("filename argument required".into(), 2));
    };
    let bytes = ctx.input(name)?;
    let saved =
        (argv.len() > 2).then(|| std::mem::replace(&mut ctx.sh.positional, argv[2..].to_vec()));
    let result = run_nested(ctx, &String::from_utf8_lossy(&bytes));
    if let Some(saved) = saved {
        ctx.sh.positional = saved;
    }
    match result {
        Err(Fail::Flow(Flow::Return(s))) => Ok(s),
        other => other,
    }
}

fn echo(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut newline = true;
    let mut escapes = false;
    let mut words = &argv[1..];
    while let Some(first) = words.first() {
        let Some(flags) = first.strip_prefix('-') else {
            break;
        };
        if flags.is_empty() || !flags.chars().all(|c| matches!(c, 'n' | 'e' | 'E')) {
            break;
        }
        for c in flags.chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        words = &words[1..];
    }
    let mut text = words.join(" ");
    if escapes {
        if let Some(cut) = text.find("\\c") {
            text.truncate(cut);
            newline = false;
        }
        text = crate::expand::ansi_c(&text);
    }
    if newline {
        text.push('\n');
    }
    ctx.out(text)?;
    Ok(0)
}

fn printf(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let (target, rest) = if argv.get(1).is_some_and(|a| a == "-v") {
        (argv.get(2).cloned(), &argv[3..])
    } else {
        (None, &argv[1..])
    };
    let Some((format, args)) = rest.split_first() else {
        return Err(Fail::Msg(
            "usage: printf [-v var] format [arguments]".into(),
            2,
        ));
    };
    let (text, ok) = crate::sysutils::format(format, args);
    match target {
        Some(var) => ctx.sh.set_var(&var, text),
        None => ctx.out(text)?,
    }
    Ok(i32::from(!ok))
}

fn describe_command(sh: &Shell, name: &str) -> Option<String> {
    if sh.functions.contains_key(name) {
        Some(format!("{name} is a function"))
    } else if crate::commands::is_builtin(name) {
        Some(format!("{name} is a shell builtin"))
    } else if crate::commands::lookup(name).is_some() {
        Some(format!("{name} is /usr/bin/{name}"))
    } else {
        None
    }
}

fn type_(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut status = 0;
    for name in &argv[1..] {
        match describe_command(ctx.sh, name) {
            Some(text) => ctx.out(format!("{text}\n"))?,
            None => {
                ctx.warn("bash: type", format!("{name}: not found"));
                status = 1;
            }
        }
    }
    Ok(status)
}

fn command(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    match argv.get(1).map(String::as_str) {
        Some("-v" | "-V") => {
            let mut status = 0;
            for name in &argv[2..] {
                if ctx.sh.functions.contains_key(name) || crate::commands::is_builtin(name) {
                    ctx.out(format!("{name}\n"))?;
                } else if crate::commands::lookup(name).is_some() {
                    ctx.out(format!("/usr/bin/{name}\n"))?;
                } else {
                    status = 1;
                }
            }
            Ok(status)
        }
        Some(_) => {
            // `command NAME args`: skip functions.
            let name = crate::commands::canonical_name(&argv[1]);
            match crate::commands::lookup(name) {
                Some(f) => f(ctx, &argv[1..]),
                None => Err(Fail::Msg(format!("{}: command not found", argv[1]), 127)),
            }
        }
        None => Ok(0),
    }
}

/// `trap CMD EXIT` runs CMD when the script ends. No signal ever reaches the sandbox, so traps
/// on INT, TERM, HUP and QUIT are accepted and never fire; ERR, DEBUG and RETURN are refused.
fn trap(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let Some((command, signals)) = argv[1..].split_first() else {
        if let Some(t) = &ctx.sh.exit_trap {
            ctx.out(format!("trap -- '{t}' EXIT\n"))?;
        }
        return Ok(0);
    };
    for signal in signals {
        match signal.trim_start_matches("SIG") {
            "EXIT" | "0" => {
                ctx.sh.exit_trap = match command.as_str() {
                    "" | "-" => None,
                    cmd => Some(cmd.to_owned()),
                }
            }
            "INT" | "TERM" | "HUP" | "QUIT" | "PIPE" | "USR1" | "USR2" | "2" | "15" | "1" => {}
            other => return Err(Fail::msg(format!("{other}: not supported in this sandbox"))),
        }
    }
    Ok(0)
}

/// `mapfile -t NAME`: the lines of stdin into an indexed array (default MAPFILE).
fn mapfile(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let args = Args::parse(argv, "t", "dnOsuC", &[])?;
    let keep_newlines = !args.has('t');
    let name = args.operands.first().map_or("MAPFILE", String::as_str);
    let mut lines = std::collections::BTreeMap::new();
    while let Some((line, newline)) = ctx.io.stdin.read_line() {
        let mut text = String::from_utf8_lossy(&line).into_owned();
        if keep_newlines && newline {
            text.push('\n');
        }
        lines.insert(lines.len() as i64, text);
    }
    ctx.sh.vars.remove(name);
    ctx.sh.arrays.insert(name.to_owned(), Array::Indexed(lines));
    Ok(0)
}

fn which(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut status = 0;
    for name in argv[1..].iter().filter(|a| !a.starts_with('-')) {
        if crate::commands::lookup(name).is_some() {
            ctx.out(format!("/usr/bin/{name}\n"))?;
        } else {
            status = 1;
        }
    }
    Ok(status)
}

fn let_(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut last = 0;
    for expr in &argv[1..] {
        last = crate::arith::eval_str(ctx.sh, expr, ctx.io)?;
    }
    Ok(i32::from(last == 0))
}

/// `bash -c SCRIPT [NAME ARGS...]`, `bash FILE [ARGS...]`, or a script on stdin: a new shell
/// that inherits exported variables and the directory.
fn bash(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut child = Shell::new();
    for (k, v) in ctx.sh.environment() {
        child.set_var(&k, v);
        child.exported.insert(k);
    }
    child.cwd = ctx.sh.cwd.clone();
    child.nesting = ctx.sh.nesting + 1;
    if child.nesting > crate::shell::MAX_NESTING {
        return Err(Fail::msg("maximum nesting level exceeded"));
    }
    let mut args = argv[1..]
        .iter()
        .skip_while(|a| a.starts_with('-') && *a != "-c" && a.len() > 1 && !a.starts_with("--"));
    let script = match args.next().map(String::as_str) {
        Some("-c") => {
            let Some(script) = args.next() else {
                return Err(Fail::Msg("-c: option requires an argument".into(), 2));
            };
            if let Some(name) = args.next() {
                child.arg0 = name.clone();
            }
            child.positional = args.cloned().collect();
            script.clone()
        }
        Some(file) => {
            let bytes = ctx.input(file)?;
            child.arg0 = file.to_owned();
            child.positional = args.cloned().collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => String::from_utf8_lossy(&ctx.io.stdin.read_all()).into_owned(),
    };
    let io = Io {
        stdin: ctx.io.stdin.clone(),
        stdout: ctx.io.stdout.clone(),
        stderr: ctx.io.stderr.clone(),
    };
    Ok(child.run_script(&script, &io))
}
