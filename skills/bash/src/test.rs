//! `test`, `[ ]` and `[[ ]]`: brush-parser parses the expression, this evaluates it against the
//! sandbox (files) and the shell (variables).

use brush_parser::ast::{
    BinaryPredicate as B, ExtendedTestExpr as X, TestExpr as T, UnaryPredicate as U,
};

use crate::commands::{Ctx, Fail};
use crate::io::Io;
use crate::path;
use crate::shell::Shell;

/// `test ARGS` / `[ ARGS ]`: 0 when true, 1 when false, 2 on a malformed expression.
pub fn command(ctx: &mut Ctx, argv: &[String]) -> Result<i32, Fail> {
    let mut args = &argv[1..];
    if argv[0] == "[" {
        match args.split_last() {
            Some((last, rest)) if last == "]" => args = rest,
            _ => return Err(Fail::Msg("missing `]'".into(), 2)),
        }
    }
    if args.is_empty() {
        return Ok(1);
    }
    let expr = brush_parser::test_command::parse(args)
        .map_err(|_| Fail::Msg(format!("{}: unexpected expression", args.join(" ")), 2))?;
    Ok(i32::from(!simple(ctx.sh, &expr)?))
}

fn simple(sh: &Shell, expr: &T) -> Result<bool, Fail> {
    Ok(match expr {
        T::False => false,
        T::Literal(s) => !s.is_empty(),
        T::And(a, b) => simple(sh, a)? && simple(sh, b)?,
        T::Or(a, b) => simple(sh, a)? || simple(sh, b)?,
        T::Not(e) => !simple(sh, e)?,
        T::Parenthesized(e) => simple(sh, e)?,
        T::UnaryTest(op, operand) => unary(sh, op, operand),
        T::BinaryTest(op, l, r) => binary(sh, op, l, r, false)?,
    })
}

/// `[[ EXPR ]]`: words are expanded without splitting; `==` takes a pattern, `=~` a regex.
pub fn extended(sh: &mut Shell, expr: &X, io: &Io) -> Result<bool, Fail> {
    Ok(match expr {
        X::And(a, b) => extended(sh, a, io)? && extended(sh, b, io)?,
        X::Or(a, b) => extended(sh, a, io)? || extended(sh, b, io)?,
        X::Not(e) => !extended(sh, e, io)?,
        X::Parenthesized(e) => extended(sh, e, io)?,
        X::UnaryTest(op, w) => {
            let operand = crate::expand::single(sh, &w.value, io)?;
            unary(sh, op, &operand)
        }
        X::BinaryTest(op, l, r) => {
            let left = crate::expand::single(sh, &l.value, io)?;
            let right = match op {
                B::StringExactlyMatchesPattern | B::StringDoesNotExactlyMatchPattern => {
                    crate::expand::pattern(sh, &r.value, io)?
                }
                _ => crate::expand::single(sh, &r.value, io)?,
            };
            binary(sh, op, &left, &right, true)?
        }
    })
}

fn unary(sh: &Shell, op: &U, operand: &str) -> bool {
    let file = || std::fs::metadata(path::resolve(&sh.cwd, operand));
    match op {
        U::StringHasZeroLength => operand.is_empty(),
        U::StringHasNonZeroLength => !operand.is_empty(),
        U::FileExists | U::FileExistsAndIsReadable | U::FileExistsAndIsWritable => file().is_ok(),
        U::FileExistsAndIsRegularFile => file().is_ok_and(|m| m.is_file()),
        U::FileExistsAndIsDir | U::FileExistsAndIsExecutable => file().is_ok_and(|m| m.is_dir()),
        U::FileExistsAndIsNotZeroLength => file().is_ok_and(|m| m.len() > 0),
        U::FileExistsAndIsSymlink => std::fs::symlink_metadata(path::resolve(&sh.cwd, operand))
            .is_ok_and(|m| m.file_type().is_symlink()),
        U::ShellVariableIsSetAndAssigned => sh.var(operand).is_some(),
        U::FileExistsAndOwnedByEffectiveUserId | U::FileExistsAndOwnedByEffectiveGroupId => {
            file().is_ok()
        }
        _ => false,
    }
}

fn number(s: &str) -> Result<i64, Fail> {
    s.trim()
        .parse()
        .map_err(|_| Fail::Msg(format!("{s}: integer expression expected"), 2))
}

fn binary(sh: &Shell, op: &B, l: &str, r: &str, extended: bool) -> Result<bool, Fail> {
    let modified = |name: &str| {
        std::fs::metadata(path::resolve(&sh.cwd, name))
            .and_then(|m| m.modified())
            .ok()
    };
    Ok(match op {
        B::StringExactlyMatchesPattern if extended => crate::pattern::matches(r, l),
        B::StringDoesNotExactlyMatchPattern if extended => !crate::pattern::matches(r, l),
        B::StringExactlyMatchesPattern | B::StringExactlyMatchesString => l == r,
        B::StringDoesNotExactlyMatchPattern | B::StringDoesNotExactlyMatchString => l != r,
        B::StringMatchesRegex => regex::Regex::new(r)
            .map_err(|_| Fail::Msg(format!("{r}: invalid regular expression"), 2))?
            .is_match(l),
        B::StringContainsSubstring => l.contains(r),
        B::LeftSortsBeforeRight => l < r,
        B::LeftSortsAfterRight => l > r,
        B::ArithmeticEqualTo => number(l)? == number(r)?,
        B::ArithmeticNotEqualTo => number(l)? != number(r)?,
        B::ArithmeticLessThan => number(l)? < number(r)?,
        B::ArithmeticLessThanOrEqualTo => number(l)? <= number(r)?,
        B::ArithmeticGreaterThan => number(l)? > number(r)?,
        B::ArithmeticGreaterThanOrEqualTo => number(l)? >= number(r)?,
        B::LeftFileIsNewerOrExistsWhenRightDoesNot => match (modified(l), modified(r)) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => true,
            _ => false,
        },
        B::LeftFileIsOlderOrDoesNotExistWhenRightDoes => match (modified(l), modified(r)) {
            (Some(a), Some(b)) => a < b,
            (None, Some(_)) => true,
            _ => false,
        },
        B::FilesReferToSameDeviceAndInodeNumbers => {
            path::resolve(&sh.cwd, l) == path::resolve(&sh.cwd, r) && modified(l).is_some()
        }
    })
}
