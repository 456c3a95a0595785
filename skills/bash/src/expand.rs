//! Word expansion in bash's order: braces, tilde, parameters, command substitution and
//! arithmetic, then field splitting of unquoted results, then pathname expansion (globbing),
//! then quote removal. brush-parser splits a word into pieces; this module gives them values.

use brush_parser::word::{
    self, BraceExpressionMember as Member, BraceExpressionOrText as Brace, Parameter,
    ParameterExpr as P, ParameterTestType, ParameterTransformOp, SpecialParameter,
    SubstringMatchKind, WordPiece,
};

use crate::commands::Fail;
use crate::io::{Io, Out};
use crate::pattern::{self, Anchor, Trim};
use crate::shell::{parser_options, Flow, Shell};

/// A field being built: its text, and the same text as a pattern (quoted characters escaped).
#[derive(Default)]
struct Field {
    text: String,
    pattern: String,
    glob: bool,
    /// Has quoted content, so it survives even when empty (`""`).
    kept: bool,
}

/// The fields one word expands to.
#[derive(Default)]
struct Fields {
    done: Vec<Field>,
    current: Field,
}

impl Fields {
    fn push(&mut self, text: &str, quoted: bool) {
        let f = &mut self.current;
        f.text.push_str(text);
        if quoted {
            f.pattern.push_str(&pattern::escape(text));
            f.kept = true;
        } else {
            f.pattern.push_str(text);
            f.glob |= pattern::has_glob(text);
            f.kept |= !text.is_empty();
        }
    }

    /// Ends the current field.
    fn split(&mut self) {
        let field = std::mem::take(&mut self.current);
        if field.kept {
            self.done.push(field);
        }
    }

    /// An unquoted expansion result: split on IFS.
    fn push_split(&mut self, value: &str, ifs: &str) {
        let mut pending_space = false;
        for c in value.chars() {
            if ifs.contains(c) {
                if c.is_whitespace() {
                    pending_space = true;
                } else {
                    self.current.kept = true;
                    self.split();
                    pending_space = false;
                }
                continue;
            }
            if pending_space {
                self.split();
                pending_space = false;
            }
            let mut buf = [0; 4];
            self.push(c.encode_utf8(&mut buf), false);
        }
        if pending_space {
            self.split();
        }
    }

    fn finish(mut self) -> Vec<Field> {
        self.split();
        self.done
    }
}

/// How a piece list is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Command words: split and glob.
    Fields,
    /// One string (assignment, redirection target, `case` word): no splitting.
    Single,
}

/// Whether `raw` expands to itself: no quoting, expansion, brace or glob character in it.
fn is_literal(raw: &str) -> bool {
    !raw.is_empty()
        && !raw.contains(|c| {
            matches!(
                c,
                '$' | '`' | '\'' | '"' | '\\' | '~' | '{' | '*' | '?' | '[' | '\n'
            )
        })
}

/// Expands command words into arguments.
pub fn words(
    sh: &mut Shell,
    words: &[brush_parser::ast::Word],
    io: &Io,
) -> Result<Vec<String>, Fail> {
    let mut out = Vec::new();
    for w in words {
        if is_literal(&w.value) {
            out.push(w.value.clone());
            continue;
        }
        for text in braces(&w.value) {
            let pieces = parse_word(&text)?;
            let mut fields = Fields::default();
            expand_pieces(sh, &pieces, false, Mode::Fields, &mut fields, io)?;
            for field in fields.finish() {
                if field.glob {
                    let matches = crate::glob::expand(&sh.cwd, &field.pattern);
                    if !matches.is_empty() {
                        out.extend(matches);
                        continue;
                    }
                }
                out.push(field.text);
            }
        }
    }
    Ok(out)
}

/// Expands a word to one string, without splitting or globbing.
pub fn single(sh: &mut Shell, raw: &str, io: &Io) -> Result<String, Fail> {
    if is_literal(raw) {
        return Ok(raw.to_owned());
    }
    let pieces = parse_word(raw)?;
    let mut fields = Fields::default();
    expand_pieces(sh, &pieces, false, Mode::Single, &mut fields, io)?;
    Ok(fields.current.text)
}

/// Expands a word to a pattern: quoted characters match only themselves.
pub fn pattern(sh: &mut Shell, raw: &str, io: &Io) -> Result<String, Fail> {
    let pieces = parse_word(raw)?;
    let mut fields = Fields::default();
    expand_pieces(sh, &pieces, false, Mode::Single, &mut fields, io)?;
    Ok(fields.current.pattern)
}

/// Expands a here-document body: parameters and substitutions, quotes kept as they are.
pub fn heredoc(sh: &mut Shell, raw: &str, io: &Io) -> Result<String, Fail> {
    let pieces = word::parse_heredoc(raw, &parser_options())
        .map_err(|e| Fail::msg(format!("bad substitution in here-document: {e}")))?;
    let mut fields = Fields::default();
    expand_pieces(sh, &pieces, true, Mode::Single, &mut fields, io)?;
    Ok(fields.current.text)
}

fn parse_word(raw: &str) -> Result<Vec<word::WordPieceWithSource>, Fail> {
    word::parse(raw, &parser_options()).map_err(|_| Fail::msg(format!("{raw}: bad substitution")))
}

/// `a{b,c}d` → `abd acd`; `{1..3}` → `1 2 3`. Words without a brace expression stay whole.
fn braces(raw: &str) -> Vec<String> {
    match word::parse_brace_expansions(raw, &parser_options()) {
        Ok(Some(parts)) if parts.iter().any(|p| matches!(p, Brace::Expr(_))) => {
            brace_product(&parts, zero_padding(raw))
        }
        _ => vec![raw.to_owned()],
    }
}

/// The width of `{01..10}`: a bound written with a leading zero pads every number to the
/// longest bound. The parser keeps only the numbers, so this reads the word itself.
fn zero_padding(raw: &str) -> usize {
    let mut width = 0;
    for part in raw.split('{').skip(1) {
        let Some(body) = part.split('}').next() else {
            continue;
        };
        let bounds: Vec<&str> = body.split("..").collect();
        if bounds.len() < 2
            || !bounds
                .iter()
                .all(|b| b.trim_start_matches('-').parse::<u64>().is_ok())
        {
            continue;
        }
        let padded = bounds[..2].iter().any(|b| {
            b.trim_start_matches('-').len() > 1 && b.trim_start_matches('-').starts_with('0')
        });
        if padded {
            width = width.max(bounds[0].len()).max(bounds[1].len());
        }
    }
    width
}

fn brace_product(parts: &[Brace], width: usize) -> Vec<String> {
    let mut results = vec![String::new()];
    for part in parts {
        let options: Vec<String> = match part {
            Brace::Text(t) => vec![t.clone()],
            Brace::Expr(members) => members
                .iter()
                .flat_map(|m| brace_member(m, width))
                .collect(),
        };
        results = results
            .iter()
            .flat_map(|prefix| options.iter().map(move |o| format!("{prefix}{o}")))
            .collect();
        if results.len() > 100_000 {
            break;
        }
    }
    results
}

fn brace_member(member: &Member, width: usize) -> Vec<String> {
    match member {
        Member::Child(parts) => brace_product(parts, width),
        Member::NumberSequence {
            start,
            end,
            increment,
        } => {
            let step = increment.unsigned_abs().max(1) as usize;
            let seq: Vec<i64> = if start <= end {
                (*start..=*end).step_by(step).collect()
            } else {
                (*end..=*start).rev().step_by(step).collect()
            };
            seq.into_iter().map(|n| format!("{n:0width$}")).collect()
        }
        Member::CharSequence {
            start,
            end,
            increment,
        } => {
            let step = increment.unsigned_abs().max(1) as usize;
            let (a, b) = (*start as u32, *end as u32);
            let seq: Vec<u32> = if a <= b {
                (a..=b).step_by(step).collect()
            } else {
                (b..=a).rev().step_by(step).collect()
            };
            seq.into_iter()
                .filter_map(char::from_u32)
                .map(String::from)
                .collect()
        }
    }
}

fn ifs(sh: &Shell) -> String {
    sh.var("IFS").unwrap_or(" \t\n").to_owned()
}

fn expand_pieces(
    sh: &mut Shell,
    pieces: &[word::WordPieceWithSource],
    quoted: bool,
    mode: Mode,
    out: &mut Fields,
    io: &Io,
) -> Result<(), Fail> {
    for piece in pieces {
        match &piece.piece {
            WordPiece::Text(t) => out.push(t, quoted),
            WordPiece::SingleQuotedText(t) => out.push(t, true),
            WordPiece::AnsiCQuotedText(t) => out.push(&ansi_c(t), true),
            WordPiece::EscapeSequence(e) => {
                let c = &e[1..];
                if quoted && !matches!(c, "$" | "`" | "\"" | "\\" | "\n") {
                    out.push(e, true);
                } else if c != "\n" {
                    out.push(c, true);
                }
            }
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                out.current.kept = true;
                expand_pieces(sh, inner, true, mode, out, io)?;
            }
            WordPiece::TildeExpansion(t) => {
                let value = match t {
                    word::TildeExpr::Home => sh.var("HOME").unwrap_or("/tmp").to_owned(),
                    word::TildeExpr::WorkingDir => sh.cwd.clone(),
                    word::TildeExpr::OldWorkingDir => sh.var("OLDPWD").unwrap_or("").to_owned(),
                    other => format!("~{}", tilde_text(other)),
                };
                out.push(&value, true);
            }
            WordPiece::ParameterExpansion(expr) => {
                if let Some((values, joined)) = list_expansion(sh, expr, io)? {
                    if quoted && mode == Mode::Fields && !joined {
                        // "$@": one field per word, the first and last joined to what
                        // stands around them.
                        for (i, v) in values.iter().enumerate() {
                            if i > 0 {
                                out.split();
                            }
                            out.push(v, true);
                        }
                        if values.is_empty() {
                            out.current.kept = !out.current.text.is_empty();
                        }
                        continue;
                    }
                    let sep = if joined {
                        sh.var("IFS")
                            .map_or(" ", |s| s.get(..1).unwrap_or(""))
                            .to_owned()
                    } else {
                        " ".to_owned()
                    };
                    let joined = values.join(&sep);
                    push_value(sh, out, &joined, quoted, mode);
                    continue;
                }
                let value = parameter(sh, expr, io)?;
                push_value(sh, out, &value, quoted, mode);
            }
            WordPiece::CommandSubstitution(source)
            | WordPiece::BackquotedCommandSubstitution(source) => {
                let value = substitute(sh, source, io)?;
                push_value(sh, out, &value, quoted, mode);
            }
            WordPiece::ArithmeticExpression(expr) => {
                let value = crate::arith::eval_str(sh, &expr.value, io)?.to_string();
                push_value(sh, out, &value, quoted, mode);
            }
        }
    }
    Ok(())
}

fn tilde_text(t: &word::TildeExpr) -> String {
    match t {
        word::TildeExpr::UserHome(user) => user.clone(),
        _ => String::new(),
    }
}

fn push_value(sh: &Shell, out: &mut Fields, value: &str, quoted: bool, mode: Mode) {
    if quoted || mode == Mode::Single {
        out.push(value, quoted);
    } else {
        out.push_split(value, &ifs(sh));
    }
}

/// Expansions to a list of words: `$@`, `$*`, `${a[@]}`, `${a[*]}`, `${!a[@]}` and their
/// slices `${a[@]:off:len}`. Returns the words and whether they are joined into one (`*`).
fn list_expansion(sh: &mut Shell, expr: &P, io: &Io) -> Result<Option<(Vec<String>, bool)>, Fail> {
    let list = |sh: &Shell, p: &Parameter| match p {
        Parameter::Special(SpecialParameter::AllPositionalParameters { concatenate }) => {
            Some((sh.positional.clone(), *concatenate))
        }
        Parameter::NamedWithAllIndices { name, concatenate } => {
            Some((element_list(sh, name), *concatenate))
        }
        _ => None,
    };
    Ok(match expr {
        P::Parameter {
            parameter,
            indirect: false,
        } => list(sh, parameter),
        P::MemberKeys {
            variable_name,
            concatenate,
        } => {
            let keys = match sh.arrays.get(variable_name) {
                Some(array) => array.keys(),
                None if sh.vars.contains_key(variable_name) => vec!["0".into()],
                None => Vec::new(),
            };
            Some((keys, *concatenate))
        }
        P::Substring {
            parameter,
            indirect: false,
            offset,
            length,
        } => match list(sh, parameter) {
            None => None,
            Some((values, joined)) => {
                // `$@` slices count `$0` as position 0.
                let values = if matches!(parameter, Parameter::Special(_)) {
                    std::iter::once(sh.arg0.clone()).chain(values).collect()
                } else {
                    values
                };
                let (start, end) = slice_bounds(sh, offset, length.as_ref(), values.len(), io)?;
                Some((values[start..end].to_vec(), joined))
            }
        },
        _ => None,
    })
}

/// Runs `$(source)` in a copy of the shell and returns its output without trailing newlines.
/// `$(< file)` is the file's content.
pub fn substitute(sh: &mut Shell, source: &str, io: &Io) -> Result<String, Fail> {
    if let Some(name) = source.trim().strip_prefix('<') {
        let name = single(sh, name.trim(), io)?;
        let text = match std::fs::read(crate::path::resolve(&sh.cwd, &name)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                let message = format!("bash: {name}: {}\n", crate::io::describe(&e));
                let _ = io.stderr.write(message.as_bytes());
                sh.status = 1;
                sh.substituted = Some(1);
                String::new()
            }
        };
        return Ok(text.trim_end_matches('\n').to_owned());
    }
    let mut sub = sh.nested().map_err(Fail::Flow)?;
    let capture = Out::pipe();
    let sub_io = Io {
        stdin: io.stdin.clone(),
        stdout: capture.clone(),
        stderr: io.stderr.clone(),
    };
    let status = sub.run_isolated(|s| s.run_source(source, &sub_io));
    sh.status = status;
    sh.substituted = Some(status);
    let bytes = capture.take();
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.trim_end_matches('\n').to_owned())
}

fn lookup(sh: &mut Shell, p: &Parameter, io: &Io) -> Result<Option<String>, Fail> {
    Ok(match p {
        Parameter::Positional(0) => Some(sh.arg0.clone()),
        Parameter::Positional(n) => sh.positional.get(*n as usize - 1).cloned(),
        Parameter::Special(s) => match s {
            SpecialParameter::LastExitStatus => Some(sh.status.to_string()),
            SpecialParameter::PositionalParameterCount => Some(sh.positional.len().to_string()),
            SpecialParameter::AllPositionalParameters { .. } => Some(sh.positional.join(" ")),
            SpecialParameter::ProcessId => Some("1".into()),
            SpecialParameter::ShellName => Some(sh.arg0.clone()),
            SpecialParameter::CurrentOptionFlags => Some("hB".into()),
            SpecialParameter::LastBackgroundProcessId => None,
        },
        Parameter::Named(name) => match name.as_str() {
            "RANDOM" => Some((random() % 32768).to_string()),
            "PWD" => Some(sh.cwd.clone()),
            _ => sh.var(name).map(str::to_owned),
        },
        Parameter::NamedWithIndex { name, index } => {
            let slot = sh.slot(name, index, io)?;
            sh.element(name, &slot)
        }
        Parameter::NamedWithAllIndices { name, .. } => {
            let values = element_list(sh, name);
            (!values.is_empty() || sh.vars.contains_key(name)).then(|| values.join(" "))
        }
    })
}

/// The values of `name` as a list: an array's elements, a scalar alone, or nothing.
fn element_list(sh: &Shell, name: &str) -> Vec<String> {
    match sh.arrays.get(name) {
        Some(array) => array.values(),
        None => sh.vars.get(name).cloned().into_iter().collect(),
    }
}

fn random() -> u64 {
    let mut seed = [0u8; 8];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    seed[..4].copy_from_slice(&nanos.to_le_bytes());
    u64::from_le_bytes(seed).wrapping_mul(6364136223846793005) >> 33
}

fn name_of(p: &Parameter) -> String {
    match p {
        Parameter::Positional(n) => n.to_string(),
        Parameter::Special(s) => s.to_string(),
        Parameter::Named(n) | Parameter::NamedWithIndex { name: n, .. } => n.clone(),
        Parameter::NamedWithAllIndices { name, .. } => name.clone(),
    }
}

/// The value of `p`, following `${!name}` indirection.
fn value_of(
    sh: &mut Shell,
    p: &Parameter,
    indirect: bool,
    io: &Io,
) -> Result<Option<String>, Fail> {
    let value = lookup(sh, p, io)?;
    Ok(if indirect {
        value.and_then(|name| sh.var(&name).map(str::to_owned))
    } else {
        value
    })
}

fn is_unset(value: &Option<String>, test: &ParameterTestType) -> bool {
    match test {
        ParameterTestType::Unset => value.is_none(),
        ParameterTestType::UnsetOrNull => value.as_deref().is_none_or(str::is_empty),
    }
}

fn opt_word(sh: &mut Shell, raw: &Option<String>, io: &Io) -> Result<String, Fail> {
    match raw {
        Some(raw) => single(sh, raw, io),
        None => Ok(String::new()),
    }
}

fn opt_pattern(sh: &mut Shell, raw: &Option<String>, io: &Io) -> Result<String, Fail> {
    match raw {
        Some(raw) => pattern(sh, raw, io),
        None => Ok(String::new()),
    }
}

/// The value of one `${...}` expression.
fn parameter(sh: &mut Shell, expr: &P, io: &Io) -> Result<String, Fail> {
    let required = |sh: &mut Shell, p: &Parameter, indirect: bool| -> Result<String, Fail> {
        match value_of(sh, p, indirect, io)? {
            Some(v) => Ok(v),
            None if sh.options.nounset && !matches!(p, Parameter::Special(_)) => {
                let _ = io
                    .stderr
                    .write(format!("bash: {}: unbound variable\n", name_of(p)).as_bytes());
                Err(Fail::Flow(Flow::Exit(127)))
            }
            None => Ok(String::new()),
        }
    };
    Ok(match expr {
        P::Parameter {
            parameter,
            indirect,
        } => required(sh, parameter, *indirect)?,
        // `${x:-word}` uses the word when x is unset (or null); `${x:=word}` also keeps it.
        P::UseDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        }
        | P::AssignDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        } => {
            let value = value_of(sh, parameter, *indirect, io)?;
            if is_unset(&value, test_type) {
                let new = opt_word(sh, default_value, io)?;
                if let (P::AssignDefaultValues { .. }, Parameter::Named(name)) = (expr, parameter) {
                    sh.set_var(name, new.clone());
                }
                new
            } else {
                value.unwrap_or_default()
            }
        }
        P::IndicateErrorIfNullOrUnset {
            parameter,
            indirect,
            test_type,
            error_message,
        } => {
            let value = value_of(sh, parameter, *indirect, io)?;
            if is_unset(&value, test_type) {
                let mut message = opt_word(sh, error_message, io)?;
                if message.is_empty() {
                    message = "parameter null or not set".into();
                }
                let _ = io
                    .stderr
                    .write(format!("bash: {}: {message}\n", name_of(parameter)).as_bytes());
                return Err(Fail::Flow(Flow::Exit(127)));
            }
            value.unwrap_or_default()
        }
        P::UseAlternativeValue {
            parameter,
            indirect,
            test_type,
            alternative_value,
        } => {
            let value = value_of(sh, parameter, *indirect, io)?;
            if is_unset(&value, test_type) {
                String::new()
            } else {
                opt_word(sh, alternative_value, io)?
            }
        }
        P::ParameterLength {
            parameter,
            indirect,
        } => {
            if let Parameter::Special(SpecialParameter::AllPositionalParameters { .. }) = parameter
            {
                sh.positional.len().to_string()
            } else if let Parameter::NamedWithAllIndices { name, .. } = parameter {
                element_list(sh, name).len().to_string()
            } else {
                required(sh, parameter, *indirect)?
                    .chars()
                    .count()
                    .to_string()
            }
        }
        P::RemoveSmallestSuffixPattern {
            parameter,
            indirect,
            pattern: p,
        } => trimmed(sh, parameter, *indirect, p, Trim::ShortestSuffix, io)?,
        P::RemoveLargestSuffixPattern {
            parameter,
            indirect,
            pattern: p,
        } => trimmed(sh, parameter, *indirect, p, Trim::LongestSuffix, io)?,
        P::RemoveSmallestPrefixPattern {
            parameter,
            indirect,
            pattern: p,
        } => trimmed(sh, parameter, *indirect, p, Trim::ShortestPrefix, io)?,
        P::RemoveLargestPrefixPattern {
            parameter,
            indirect,
            pattern: p,
        } => trimmed(sh, parameter, *indirect, p, Trim::LongestPrefix, io)?,
        P::Substring {
            parameter,
            indirect,
            offset,
            length,
        } => {
            let value: Vec<char> = required(sh, parameter, *indirect)?.chars().collect();
            let (start, end) = slice_bounds(sh, offset, length.as_ref(), value.len(), io)?;
            value[start..end].iter().collect()
        }
        P::Transform {
            parameter,
            indirect,
            op,
        } => {
            let value = required(sh, parameter, *indirect)?;
            match op {
                ParameterTransformOp::ToUpperCase => value.to_uppercase(),
                ParameterTransformOp::ToLowerCase => value.to_lowercase(),
                ParameterTransformOp::CapitalizeInitial => capitalize(&value, true),
                ParameterTransformOp::Quoted => format!("'{}'", value.replace('\'', "'\\''")),
                ParameterTransformOp::ExpandEscapeSequences => ansi_c(&value),
                _ => value,
            }
        }
        P::UppercaseFirstChar {
            parameter,
            indirect,
            ..
        } => capitalize(&required(sh, parameter, *indirect)?, true),
        P::LowercaseFirstChar {
            parameter,
            indirect,
            ..
        } => capitalize(&required(sh, parameter, *indirect)?, false),
        P::UppercasePattern {
            parameter,
            indirect,
            ..
        } => required(sh, parameter, *indirect)?.to_uppercase(),
        P::LowercasePattern {
            parameter,
            indirect,
            ..
        } => required(sh, parameter, *indirect)?.to_lowercase(),
        P::ReplaceSubstring {
            parameter,
            indirect,
            pattern: p,
            replacement,
            match_kind,
        } => {
            let value = required(sh, parameter, *indirect)?;
            let p = pattern(sh, p, io)?;
            let replacement = opt_word(sh, replacement, io)?;
            let anchor = match match_kind {
                SubstringMatchKind::Prefix => Anchor::Prefix,
                SubstringMatchKind::Suffix => Anchor::Suffix,
                SubstringMatchKind::FirstOccurrence => Anchor::First,
                SubstringMatchKind::Anywhere => Anchor::All,
            };
            pattern::replace(&value, &p, &replacement, anchor)
        }
        P::VariableNames { prefix, .. } => {
            let mut names: Vec<&String> = sh
                .vars
                .keys()
                .filter(|k| k.starts_with(prefix.as_str()))
                .collect();
            names.sort();
            names.into_iter().cloned().collect::<Vec<_>>().join(" ")
        }
        P::MemberKeys { variable_name, .. } => match sh.arrays.get(variable_name) {
            Some(array) => array.keys().join(" "),
            None if sh.vars.contains_key(variable_name) => "0".into(),
            None => String::new(),
        },
    })
}

/// The range `${x:offset:length}` takes of `n` items: a negative offset counts from the end,
/// a negative length stops that far before the end.
fn slice_bounds(
    sh: &mut Shell,
    offset: &brush_parser::ast::UnexpandedArithmeticExpr,
    length: Option<&brush_parser::ast::UnexpandedArithmeticExpr>,
    n: usize,
    io: &Io,
) -> Result<(usize, usize), Fail> {
    let n = n as i64;
    let start = crate::arith::eval_str(sh, &offset.value, io)?;
    let start = if start < 0 {
        (n + start).max(0)
    } else {
        start.min(n)
    };
    let end = match length {
        Some(l) => {
            let l = crate::arith::eval_str(sh, &l.value, io)?;
            if l < 0 {
                (n + l).max(start)
            } else {
                (start + l).min(n)
            }
        }
        None => n,
    };
    Ok((start as usize, end as usize))
}

fn trimmed(
    sh: &mut Shell,
    parameter: &Parameter,
    indirect: bool,
    raw: &Option<String>,
    how: Trim,
    io: &Io,
) -> Result<String, Fail> {
    let value = value_of(sh, parameter, indirect, io)?.unwrap_or_default();
    let p = opt_pattern(sh, raw, io)?;
    Ok(pattern::trim(&value, &p, how))
}

fn capitalize(value: &str, upper: bool) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(c) if upper => c.to_uppercase().chain(chars).collect(),
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The escapes of `$'...'` and `echo -e`: `\n`, `\t`, `\\`, `\xHH`, `\0NNN`, ...
pub fn ansi_c(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('e' | 'E') => out.push('\x1b'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('x') => {
                let mut digits = String::new();
                while digits.len() < 2 && chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    digits.extend(chars.next());
                }
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(c) => out.push(c),
                    None => out.push_str("\\x"),
                }
            }
            Some(d @ '0'..='7') => {
                let mut digits = String::from(d);
                while digits.len() < 3 && chars.peek().is_some_and(|c| ('0'..='7').contains(c)) {
                    digits.extend(chars.next());
                }
                if let Some(c) = u32::from_str_radix(&digits, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    out.push(c);
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
