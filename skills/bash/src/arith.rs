//! `$(( ))`, `(( ))` and `for (( ))`: brush-parser parses the expression, this evaluates it in
//! 64-bit wrapping arithmetic as bash does. Variables hold decimal text; unset or empty is 0.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use brush_parser::ast::{
    ArithmeticExpr as E, ArithmeticTarget, BinaryOperator as B, UnaryAssignmentOperator as UA,
    UnaryOperator as U,
};

use crate::commands::Fail;
use crate::io::Io;
use crate::shell::{Array, Shell, Slot};

/// Deepest chain of variables holding expressions (`a=b`, `b=c`, ...) that is followed.
const MAX_INDIRECTION: usize = 32;

/// Expands `text` (parameters and substitutions) and evaluates it.
pub fn eval_str(sh: &mut Shell, text: &str, io: &Io) -> Result<i64, Fail> {
    let expanded = crate::expand::single(sh, text, io)?;
    eval_text(sh, &expanded, 0)
}

/// Parsed expressions kept per call: a loop evaluates the same text again and again.
const CACHE_ENTRIES: usize = 256;

thread_local! {
    static PARSED: RefCell<HashMap<String, Rc<E>>> = RefCell::new(HashMap::new());
}

fn eval_text(sh: &mut Shell, text: &str, depth: usize) -> Result<i64, Fail> {
    if text.trim().is_empty() {
        return Ok(0);
    }
    let cached = PARSED.with(|p| p.borrow().get(text).cloned());
    let expr = match cached {
        Some(expr) => expr,
        None => {
            let expr =
                Rc::new(brush_parser::arithmetic::parse(text).map_err(|_| {
                    Fail::msg(format!("{}: syntax error in expression", text.trim()))
                })?);
            PARSED.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() >= CACHE_ENTRIES {
                    p.clear();
                }
                p.insert(text.to_owned(), expr.clone());
            });
            expr
        }
    };
    eval(sh, &expr, depth)
}

fn variable(sh: &mut Shell, target: &ArithmeticTarget, depth: usize) -> Result<i64, Fail> {
    let value = match target {
        ArithmeticTarget::Variable(name) => sh.var(name).unwrap_or("").to_owned(),
        ArithmeticTarget::ArrayElement(name, index) => {
            let slot = slot(sh, name, index, depth)?;
            sh.element(name, &slot).unwrap_or_default()
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    if let Some(n) = parse_number(value) {
        return Ok(n);
    }
    if depth >= MAX_INDIRECTION {
        return Err(Fail::msg(format!(
            "{value}: expression recursion level exceeded"
        )));
    }
    eval_text(sh, value, depth + 1)
}

/// `a[i]` inside arithmetic: an associative array takes a bare name as its key.
fn slot(sh: &mut Shell, name: &str, index: &E, depth: usize) -> Result<Slot, Fail> {
    if let (Some(Array::Assoc(_)), E::Reference(ArithmeticTarget::Variable(key))) =
        (sh.arrays.get(name), index)
    {
        return Ok(Slot::Key(key.clone()));
    }
    let i = eval(sh, index, depth)?;
    let end = sh.arrays.get(name).map_or(0, Array::next_index);
    Ok(Slot::Index(if i < 0 { end + i } else { i }))
}

/// A literal in bash's notations: decimal, `0x1f`, octal `017`, `base#digits`.
fn parse_number(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some((base, rest)) = digits.split_once('#') {
        i64::from_str_radix(rest, base.parse().ok()?).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(digits, 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

fn assign(sh: &mut Shell, target: &ArithmeticTarget, value: i64) -> Result<i64, Fail> {
    match target {
        ArithmeticTarget::Variable(name) => sh.set_var(name, value.to_string()),
        ArithmeticTarget::ArrayElement(name, index) => {
            let slot = slot(sh, name, index, 0)?;
            sh.set_element(name, slot, value.to_string());
        }
    }
    Ok(value)
}

fn eval(sh: &mut Shell, expr: &E, depth: usize) -> Result<i64, Fail> {
    Ok(match expr {
        E::Literal(n) => *n,
        E::Reference(target) => variable(sh, target, depth)?,
        E::UnaryOp(op, inner) => {
            let v = eval(sh, inner, depth)?;
            match op {
                U::UnaryPlus => v,
                U::UnaryMinus => v.wrapping_neg(),
                U::BitwiseNot => !v,
                U::LogicalNot => i64::from(v == 0),
            }
        }
        E::BinaryOp(B::LogicalAnd, l, r) => {
            i64::from(eval(sh, l, depth)? != 0 && eval(sh, r, depth)? != 0)
        }
        E::BinaryOp(B::LogicalOr, l, r) => {
            i64::from(eval(sh, l, depth)? != 0 || eval(sh, r, depth)? != 0)
        }
        E::BinaryOp(op, l, r) => {
            let l = eval(sh, l, depth)?;
            let r = eval(sh, r, depth)?;
            binary(op, l, r)?
        }
        E::Conditional(c, a, b) => {
            if eval(sh, c, depth)? != 0 {
                eval(sh, a, depth)?
            } else {
                eval(sh, b, depth)?
            }
        }
        E::Assignment(target, value) => {
            let v = eval(sh, value, depth)?;
            assign(sh, target, v)?
        }
        E::BinaryAssignment(op, target, value) => {
            let current = variable(sh, target, depth)?;
            let v = eval(sh, value, depth)?;
            let result = binary(op, current, v)?;
            assign(sh, target, result)?
        }
        E::UnaryAssignment(op, target) => {
            let current = variable(sh, target, depth)?;
            match op {
                UA::PrefixIncrement => assign(sh, target, current.wrapping_add(1))?,
                UA::PrefixDecrement => assign(sh, target, current.wrapping_sub(1))?,
                UA::PostfixIncrement => {
                    assign(sh, target, current.wrapping_add(1))?;
                    current
                }
                UA::PostfixDecrement => {
                    assign(sh, target, current.wrapping_sub(1))?;
                    current
                }
            }
        }
    })
}

fn binary(op: &B, l: i64, r: i64) -> Result<i64, Fail> {
    Ok(match op {
        B::Power => {
            if r < 0 {
                return Err(Fail::msg("exponent less than 0"));
            }
            l.wrapping_pow(r.min(u32::MAX as i64) as u32)
        }
        B::Multiply => l.wrapping_mul(r),
        B::Divide | B::Modulo if r == 0 => return Err(Fail::msg("division by 0")),
        B::Divide => l.wrapping_div(r),
        B::Modulo => l.wrapping_rem(r),
        B::Comma => r,
        B::Add => l.wrapping_add(r),
        B::Subtract => l.wrapping_sub(r),
        B::ShiftLeft => l.wrapping_shl(r as u32),
        B::ShiftRight => l.wrapping_shr(r as u32),
        B::LessThan => i64::from(l < r),
        B::LessThanOrEqualTo => i64::from(l <= r),
        B::GreaterThan => i64::from(l > r),
        B::GreaterThanOrEqualTo => i64::from(l >= r),
        B::Equals => i64::from(l == r),
        B::NotEquals => i64::from(l != r),
        B::BitwiseAnd => l & r,
        B::BitwiseXor => l ^ r,
        B::BitwiseOr => l | r,
        B::LogicalAnd => i64::from(l != 0 && r != 0),
        B::LogicalOr => i64::from(l != 0 || r != 0),
    })
}
