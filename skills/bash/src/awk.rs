//! A POSIX awk subset: patterns (BEGIN, END, expressions, regexes), fields, associative arrays,
//! if/while/for/for-in, next/exit, print/printf (also `> file`), and the string and numeric
//! builtins scripts use most (length, substr, index, split, sub, gsub, match, sprintf, tolower,
//! toupper, int, sqrt, exp, log, sin, cos, atan2). No getline, no user-defined functions.

use std::collections::HashMap;

use regex::Regex;

use crate::commands::{Ctx, Fail, Outcome};

/// A value: a number, a string, or input text that compares as a number when it looks like one.
#[derive(Clone, Debug)]
enum Value {
    Num(f64),
    Str(String),
    StrNum(String),
}

impl Value {
    fn num(&self) -> f64 {
        match self {
            Value::Num(n) => *n,
            Value::Str(s) | Value::StrNum(s) => leading_number(s),
        }
    }

    fn string(&self) -> String {
        match self {
            Value::Num(n) => number_text(*n, "%.6g"),
            Value::Str(s) | Value::StrNum(s) => s.clone(),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Num(n) => *n != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::StrNum(s) => looks_numeric(s).map_or(!s.is_empty(), |n| n != 0.0),
        }
    }

    /// Numeric for comparisons: numbers, and input that looks like a number.
    fn numeric(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::StrNum(s) => looks_numeric(s),
            Value::Str(_) => None,
        }
    }
}

fn looks_numeric(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>()
        .ok()
        .filter(|_| !t.contains(['i', 'I', 'n', 'N', 'x', 'X']))
}

fn leading_number(s: &str) -> f64 {
    let t = s.trim_start();
    let mut end = 0;
    let mut seen_dot = false;
    let mut seen_e = false;
    let bytes = t.as_bytes();
    while end < bytes.len() {
        let c = bytes[end];
        let ok = c.is_ascii_digit()
            || ((c == b'-' || c == b'+') && (end == 0 || matches!(bytes[end - 1], b'e' | b'E')))
            || (c == b'.' && !seen_dot && !seen_e)
            || ((c == b'e' || c == b'E') && !seen_e && end > 0);
        if !ok {
            break;
        }
        seen_dot |= c == b'.';
        seen_e |= c == b'e' || c == b'E';
        end += 1;
    }
    while end > 0 && t[..end].parse::<f64>().is_err() {
        end -= 1;
    }
    t[..end].parse().unwrap_or(0.0)
}

/// A number as awk prints it: integers plainly, others with `format` (OFMT/CONVFMT).
fn number_text(n: f64, format: &str) -> String {
    if n.fract() == 0.0 && n.abs() < 1e16 {
        return format!("{}", n as i64);
    }
    let (text, _) = crate::sysutils::format(format, &[format!("{n}")]);
    text
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Regex(String),
    Name(String),
    Func(String),
    Dollar,
    Op(&'static str),
    Newline,
    Eof,
}

const OPS: [&str; 38] = [
    "+=", "-=", "*=", "/=", "%=", "^=", "==", "<=", ">=", "!=", "++", "--", "&&", "||", ">>", "!~",
    "{", "}", "(", ")", "[", "]", ";", ",", "+", "-", "*", "/", "%", "^", "!", ">", "<", "|", "?",
    ":", "~", "=",
];

const BUILTINS: [&str; 17] = [
    "length", "substr", "index", "split", "sub", "gsub", "match", "sprintf", "tolower", "toupper",
    "int", "sqrt", "exp", "log", "sin", "cos", "atan2",
];

fn tokenize(src: &str) -> Result<Vec<Tok>, Fail> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let regex_allowed = |toks: &Vec<Tok>| {
        !matches!(
            toks.last(),
            Some(Tok::Num(_) | Tok::Str(_) | Tok::Name(_) | Tok::Regex(_) | Tok::Dollar)
                | Some(Tok::Op(")" | "]" | "++" | "--"))
        )
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\\' if chars.get(i + 1) == Some(&'\n') => i += 2,
            '\n' => {
                toks.push(Tok::Newline);
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                        match chars[i] {
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            'r' => s.push('\r'),
                            '\\' => s.push('\\'),
                            '"' => s.push('"'),
                            '/' => s.push('/'),
                            other => {
                                s.push('\\');
                                s.push(other);
                            }
                        }
                    } else {
                        s.push(chars[i]);
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(Fail::Msg("unterminated string".into(), 2));
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '/' if regex_allowed(&toks) => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '/' {
                    if chars[i] == '\\' && chars.get(i + 1) == Some(&'/') {
                        s.push('/');
                        i += 2;
                        continue;
                    }
                    if chars[i] == '\n' {
                        return Err(Fail::Msg("unterminated regex".into(), 2));
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Regex(s));
            }
            '$' => {
                toks.push(Tok::Dollar);
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                    let save = i;
                    i += 1;
                    if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                        i += 1;
                    }
                    if i < chars.len() && chars[i].is_ascii_digit() {
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    } else {
                        i = save;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                toks.push(Tok::Num(text.parse().unwrap_or(0.0)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if BUILTINS.contains(&word.as_str()) {
                    toks.push(Tok::Func(word));
                } else {
                    toks.push(Tok::Name(word));
                }
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
                let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                    return Err(Fail::Msg(format!("syntax error at `{c}'"), 2));
                };
                toks.push(Tok::Op(op));
                i += op.chars().count();
            }
        }
    }
    toks.push(Tok::Eof);
    Ok(toks)
}

#[derive(Clone, Debug)]
enum Expr {
    Num(f64),
    Str(String),
    Regex(String),
    Var(String),
    Field(Box<Expr>),
    Index(String, Vec<Expr>),
    In(Vec<Expr>, String),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Concat(Box<Expr>, Box<Expr>),
    Match(bool, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Assign(&'static str, Box<Expr>, Box<Expr>),
    Incr(bool, f64, Box<Expr>),
    Call(String, Vec<Expr>),
    Group(Box<Expr>),
}

#[derive(Clone, Debug)]
enum Stmt {
    Print(Vec<Expr>, Option<(bool, Expr)>),
    Printf(Vec<Expr>, Option<(bool, Expr)>),
    Expr(Expr),
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    While(Expr, Box<Stmt>),
    Do(Box<Stmt>, Expr),
    For(Option<Expr>, Option<Expr>, Option<Expr>, Box<Stmt>),
    ForIn(String, String, Box<Stmt>),
    Block(Vec<Stmt>),
    Next,
    Exit(Option<Expr>),
    Break,
    Continue,
    Delete(String, Option<Vec<Expr>>),
}

enum Pattern {
    Begin,
    End,
    All,
    Expr(Expr),
    Range(Expr, Expr),
}

struct Rule {
    pattern: Pattern,
    action: Option<Vec<Stmt>>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Inside print's argument list, where `>` is a redirection.
    no_gt: bool,
    /// Inside `for (`, where `in` is the loop's.
    no_in: bool,
}

type P<T> = Result<T, Fail>;

fn syntax(what: impl std::fmt::Display) -> Fail {
    Fail::Msg(format!("syntax error: {what}"), 2)
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> P<()> {
        if self.eat(op) {
            Ok(())
        } else {
            Err(syntax(format!("expected `{op}' near {:?}", self.peek())))
        }
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Tok::Newline) || self.is_op(";") {
            self.next();
        }
    }

    fn skip_nl_only(&mut self) {
        while matches!(self.peek(), Tok::Newline) {
            self.next();
        }
    }

    fn program(&mut self) -> P<Vec<Rule>> {
        let mut rules = Vec::new();
        loop {
            self.skip_newlines();
            if matches!(self.peek(), Tok::Eof) {
                return Ok(rules);
            }
            let pattern = match self.peek() {
                Tok::Name(n) if n == "BEGIN" => {
                    self.next();
                    Pattern::Begin
                }
                Tok::Name(n) if n == "END" => {
                    self.next();
                    Pattern::End
                }
                Tok::Op("{") => Pattern::All,
                _ => {
                    let first = self.expr()?;
                    if self.eat(",") {
                        self.skip_nl_only();
                        Pattern::Range(first, self.expr()?)
                    } else {
                        Pattern::Expr(first)
                    }
                }
            };
            let action = if self.is_op("{") {
                Some(self.block()?)
            } else {
                None
            };
            rules.push(Rule { pattern, action });
        }
    }

    fn block(&mut self) -> P<Vec<Stmt>> {
        self.expect("{")?;
        let mut stmts = Vec::new();
        loop {
            self.skip_newlines();
            if self.eat("}") {
                return Ok(stmts);
            }
            if matches!(self.peek(), Tok::Eof) {
                return Err(syntax("missing `}'"));
            }
            stmts.push(self.statement()?);
        }
    }

    fn simple_end(&mut self) -> P<()> {
        if self.eat(";") || matches!(self.peek(), Tok::Newline) {
            self.skip_nl_only();
            return Ok(());
        }
        if self.is_op("}") || matches!(self.peek(), Tok::Eof) {
            return Ok(());
        }
        Err(syntax(format!("unexpected {:?}", self.peek())))
    }

    fn body(&mut self) -> P<Stmt> {
        self.skip_newlines();
        self.statement()
    }

    fn statement(&mut self) -> P<Stmt> {
        if self.is_op("{") {
            return Ok(Stmt::Block(self.block()?));
        }
        let name = match self.peek() {
            Tok::Name(n) => n.clone(),
            _ => String::new(),
        };
        let stmt = match name.as_str() {
            "if" => {
                self.next();
                self.expect("(")?;
                let cond = self.expr()?;
                self.expect(")")?;
                let then = self.body()?;
                let save = self.pos;
                self.skip_newlines();
                let otherwise = if matches!(self.peek(), Tok::Name(n) if n == "else") {
                    self.next();
                    Some(Box::new(self.body()?))
                } else {
                    self.pos = save;
                    None
                };
                return Ok(Stmt::If(cond, Box::new(then), otherwise));
            }
            "while" => {
                self.next();
                self.expect("(")?;
                let cond = self.expr()?;
                self.expect(")")?;
                if self.eat(";") {
                    return Ok(Stmt::While(cond, Box::new(Stmt::Block(Vec::new()))));
                }
                return Ok(Stmt::While(cond, Box::new(self.body()?)));
            }
            "do" => {
                self.next();
                let body = self.body()?;
                self.skip_newlines();
                if !matches!(self.next(), Tok::Name(n) if n == "while") {
                    return Err(syntax("expected `while' after `do'"));
                }
                self.expect("(")?;
                let cond = self.expr()?;
                self.expect(")")?;
                Stmt::Do(Box::new(body), cond)
            }
            "for" => {
                self.next();
                self.expect("(")?;
                if let (Tok::Name(var), Tok::Name(kw), Tok::Name(arr), Tok::Op(")")) = (
                    self.toks[self.pos].clone(),
                    self.toks[self.pos + 1].clone(),
                    self.toks.get(self.pos + 2).cloned().unwrap_or(Tok::Eof),
                    self.toks.get(self.pos + 3).cloned().unwrap_or(Tok::Eof),
                ) {
                    if kw == "in" {
                        self.pos += 4;
                        return Ok(Stmt::ForIn(var, arr, Box::new(self.body()?)));
                    }
                }
                let init = if self.is_op(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                self.skip_nl_only();
                let cond = if self.is_op(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                self.skip_nl_only();
                let step = if self.is_op(")") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(")")?;
                return Ok(Stmt::For(init, cond, step, Box::new(self.body()?)));
            }
            "next" => {
                self.next();
                Stmt::Next
            }
            "break" => {
                self.next();
                Stmt::Break
            }
            "continue" => {
                self.next();
                Stmt::Continue
            }
            "exit" => {
                self.next();
                let code = if self.ends_simple() {
                    None
                } else {
                    Some(self.expr()?)
                };
                Stmt::Exit(code)
            }
            "delete" => {
                self.next();
                let Tok::Name(arr) = self.next() else {
                    return Err(syntax("delete needs an array"));
                };
                let index = if self.eat("[") {
                    let list = self.expr_list()?;
                    self.expect("]")?;
                    Some(list)
                } else {
                    None
                };
                Stmt::Delete(arr, index)
            }
            "print" | "printf" => {
                self.next();
                let parens = self.is_op("(") && self.paren_list_ahead();
                self.no_gt = true;
                let args =
                    if self.ends_simple() || self.is_op(">") || self.is_op(">>") || self.is_op("|")
                    {
                        Vec::new()
                    } else if parens {
                        self.next();
                        let list = self.expr_list()?;
                        self.expect(")")?;
                        list
                    } else {
                        self.expr_list()?
                    };
                self.no_gt = false;
                let redirect = if self.eat(">") {
                    Some((false, self.concat()?))
                } else if self.eat(">>") {
                    Some((true, self.concat()?))
                } else if self.is_op("|") {
                    return Err(Fail::Msg(
                        "pipes to commands are not supported in this sandbox".into(),
                        2,
                    ));
                } else {
                    None
                };
                if name == "print" {
                    Stmt::Print(args, redirect)
                } else {
                    if args.is_empty() {
                        return Err(syntax("printf needs a format"));
                    }
                    Stmt::Printf(args, redirect)
                }
            }
            _ => Stmt::Expr(self.expr()?),
        };
        self.simple_end()?;
        Ok(stmt)
    }

    /// Whether `(` opens the whole argument list of print (`print (a, b)`), not a group.
    fn paren_list_ahead(&self) -> bool {
        let mut depth = 0;
        for (k, t) in self.toks[self.pos..].iter().enumerate() {
            match t {
                Tok::Op("(") => depth += 1,
                Tok::Op(")") => {
                    depth -= 1;
                    if depth == 0 {
                        let after = &self.toks[self.pos + k + 1];
                        return matches!(
                            after,
                            Tok::Newline | Tok::Eof | Tok::Op(";" | "}" | ">" | ">>" | "|")
                        );
                    }
                }
                Tok::Newline | Tok::Eof => return false,
                _ => {}
            }
        }
        false
    }

    fn ends_simple(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::Eof | Tok::Op(";" | "}"))
    }

    fn expr_list(&mut self) -> P<Vec<Expr>> {
        let mut list = vec![self.expr()?];
        while self.eat(",") {
            self.skip_nl_only();
            list.push(self.expr()?);
        }
        Ok(list)
    }

    fn expr(&mut self) -> P<Expr> {
        self.ternary()
    }

    fn ternary(&mut self) -> P<Expr> {
        let cond = self.or()?;
        if self.eat("?") {
            self.skip_nl_only();
            let a = self.ternary()?;
            self.skip_nl_only();
            self.expect(":")?;
            self.skip_nl_only();
            let b = self.ternary()?;
            return Ok(Expr::Cond(Box::new(cond), Box::new(a), Box::new(b)));
        }
        if let Tok::Op(op @ ("=" | "+=" | "-=" | "*=" | "/=" | "%=" | "^=")) = self.peek().clone() {
            if matches!(cond, Expr::Var(_) | Expr::Index(..) | Expr::Field(_)) {
                self.next();
                self.skip_nl_only();
                let value = self.ternary()?;
                return Ok(Expr::Assign(op, Box::new(cond), Box::new(value)));
            }
        }
        Ok(cond)
    }

    fn or(&mut self) -> P<Expr> {
        let mut left = self.and()?;
        while self.eat("||") {
            self.skip_nl_only();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> P<Expr> {
        let mut left = self.in_expr()?;
        while self.eat("&&") {
            self.skip_nl_only();
            left = Expr::And(Box::new(left), Box::new(self.in_expr()?));
        }
        Ok(left)
    }

    fn in_expr(&mut self) -> P<Expr> {
        let mut left = self.matching()?;
        while !self.no_in && matches!(self.peek(), Tok::Name(n) if n == "in") {
            self.next();
            let Tok::Name(arr) = self.next() else {
                return Err(syntax("`in' needs an array"));
            };
            let keys = match left {
                Expr::Group(inner) => vec![*inner],
                other => vec![other],
            };
            left = Expr::In(keys, arr);
        }
        Ok(left)
    }

    fn matching(&mut self) -> P<Expr> {
        let mut left = self.comparison()?;
        loop {
            let negate = if self.eat("~") {
                false
            } else if self.eat("!~") {
                true
            } else {
                return Ok(left);
            };
            left = Expr::Match(negate, Box::new(left), Box::new(self.comparison()?));
        }
    }

    fn comparison(&mut self) -> P<Expr> {
        let left = self.concat()?;
        let op = match self.peek() {
            Tok::Op(op @ ("<" | "<=" | "==" | "!=" | ">=")) => *op,
            Tok::Op(">") if !self.no_gt => ">",
            _ => return Ok(left),
        };
        self.next();
        Ok(Expr::Binary(op, Box::new(left), Box::new(self.concat()?)))
    }

    fn starts_operand(&self) -> bool {
        match self.peek() {
            Tok::Num(_) | Tok::Str(_) | Tok::Regex(_) | Tok::Func(_) | Tok::Dollar => true,
            Tok::Name(n) => n != "in",
            Tok::Op(op) => matches!(*op, "(" | "!" | "-" | "+" | "++" | "--"),
            _ => false,
        }
    }

    fn concat(&mut self) -> P<Expr> {
        let mut left = self.additive()?;
        // `a -1` is subtraction, not concatenation: additive() already took it.
        while self.starts_operand() && !self.is_op("-") && !self.is_op("+") {
            left = Expr::Concat(Box::new(left), Box::new(self.additive()?));
        }
        Ok(left)
    }

    fn additive(&mut self) -> P<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                "+"
            } else if self.eat("-") {
                "-"
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> P<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                "*"
            } else if self.eat("/") {
                "/"
            } else if self.eat("%") {
                "%"
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> P<Expr> {
        if self.eat("!") {
            return Ok(Expr::Unary("!", Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return Ok(Expr::Unary("-", Box::new(self.unary()?)));
        }
        if self.eat("+") {
            return Ok(Expr::Unary("+", Box::new(self.unary()?)));
        }
        self.power()
    }

    fn power(&mut self) -> P<Expr> {
        let base = self.postfix()?;
        if self.eat("^") {
            return Ok(Expr::Binary("^", Box::new(base), Box::new(self.unary()?)));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> P<Expr> {
        if self.eat("++") {
            return Ok(Expr::Incr(true, 1.0, Box::new(self.postfix()?)));
        }
        if self.eat("--") {
            return Ok(Expr::Incr(true, -1.0, Box::new(self.postfix()?)));
        }
        let e = self.primary()?;
        if matches!(e, Expr::Var(_) | Expr::Index(..) | Expr::Field(_)) {
            if self.eat("++") {
                return Ok(Expr::Incr(false, 1.0, Box::new(e)));
            }
            if self.eat("--") {
                return Ok(Expr::Incr(false, -1.0, Box::new(e)));
            }
        }
        Ok(e)
    }

    fn primary(&mut self) -> P<Expr> {
        match self.next() {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Regex(r) => Ok(Expr::Regex(r)),
            Tok::Dollar => {
                let e = if self.eat("++") || self.eat("--") {
                    return Err(syntax("increment of a field index"));
                } else {
                    self.primary()?
                };
                Ok(Expr::Field(Box::new(e)))
            }
            Tok::Op("(") => {
                let saved = (self.no_gt, self.no_in);
                self.no_gt = false;
                self.no_in = false;
                let first = self.expr()?;
                let e = if self.is_op(",") {
                    // (a, b) in arr
                    let mut keys = vec![first];
                    while self.eat(",") {
                        keys.push(self.expr()?);
                    }
                    self.expect(")")?;
                    if !matches!(self.peek(), Tok::Name(n) if n == "in") {
                        return Err(syntax("a list in parentheses must be followed by `in'"));
                    }
                    self.next();
                    let Tok::Name(arr) = self.next() else {
                        return Err(syntax("`in' needs an array"));
                    };
                    (self.no_gt, self.no_in) = saved;
                    return Ok(Expr::In(keys, arr));
                } else {
                    first
                };
                self.expect(")")?;
                (self.no_gt, self.no_in) = saved;
                Ok(Expr::Group(Box::new(e)))
            }
            Tok::Func(name) => {
                let mut args = Vec::new();
                if self.eat("(") {
                    let saved = self.no_gt;
                    self.no_gt = false;
                    if !self.is_op(")") {
                        args = self.expr_list()?;
                    }
                    self.no_gt = saved;
                    self.expect(")")?;
                }
                Ok(Expr::Call(name, args))
            }
            Tok::Name(name) => {
                if self.eat("[") {
                    let list = self.expr_list()?;
                    self.expect("]")?;
                    return Ok(Expr::Index(name, list));
                }
                if self.is_op("(") {
                    return Err(Fail::Msg(format!("function `{name}' is not defined (user-defined functions are not supported)"), 2));
                }
                Ok(Expr::Var(name))
            }
            other => Err(syntax(format!("unexpected {other:?}"))),
        }
    }
}

/// Why statement execution stopped early.
enum Jump {
    Next,
    Exit(i32),
    Break,
    Continue,
    Fail(Fail),
}

impl From<Fail> for Jump {
    fn from(f: Fail) -> Self {
        Jump::Fail(f)
    }
}

struct Awk<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    vars: HashMap<String, Value>,
    arrays: HashMap<String, HashMap<String, Value>>,
    fields: Vec<String>,
    record: String,
    regexes: HashMap<String, Regex>,
    output: String,
    files: HashMap<String, std::fs::File>,
    range_active: Vec<bool>,
}

impl Awk<'_, '_> {
    fn var(&self, name: &str) -> Value {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or(Value::Str(String::new()))
    }

    fn var_str(&self, name: &str) -> String {
        self.var(name).string()
    }

    fn regex(&mut self, source: &str) -> Result<Regex, Fail> {
        if let Some(re) = self.regexes.get(source) {
            return Ok(re.clone());
        }
        let translated = crate::textutils::posix_regex(source, true);
        let re = Regex::new(&translated)
            .map_err(|_| Fail::Msg(format!("invalid regex /{source}/"), 2))?;
        self.regexes.insert(source.to_owned(), re.clone());
        Ok(re)
    }

    fn set_record(&mut self, line: String) {
        self.record = line;
        self.split_record();
    }

    fn split_record(&mut self) {
        let fs = self.var_str("FS");
        self.fields = self.split(&self.record.clone(), &fs);
        self.vars
            .insert("NF".into(), Value::Num(self.fields.len() as f64));
    }

    fn split(&mut self, text: &str, fs: &str) -> Vec<String> {
        if fs == " " {
            return text.split_whitespace().map(str::to_owned).collect();
        }
        if text.is_empty() {
            return Vec::new();
        }
        if fs.chars().count() == 1 && fs != "\\" {
            return text.split(fs).map(str::to_owned).collect();
        }
        match self.regex(fs) {
            Ok(re) => re.split(text).map(str::to_owned).collect(),
            Err(_) => vec![text.to_owned()],
        }
    }

    fn rebuild_record(&mut self) {
        let ofs = self.var_str("OFS");
        self.record = self.fields.join(&ofs);
    }

    fn field(&self, i: usize) -> Value {
        if i == 0 {
            return Value::StrNum(self.record.clone());
        }
        self.fields
            .get(i - 1)
            .map_or(Value::Str(String::new()), |f| Value::StrNum(f.clone()))
    }

    fn key(&mut self, list: &[Expr]) -> Result<String, Jump> {
        let mut parts = Vec::new();
        for e in list {
            let v = self.eval(e)?;
            parts.push(self.to_key(&v));
        }
        Ok(parts.join("\u{1c}"))
    }

    fn to_key(&self, v: &Value) -> String {
        match v {
            Value::Num(n) => number_text(*n, &self.var_str("CONVFMT")),
            other => other.string(),
        }
    }

    fn assign(&mut self, target: &Expr, value: Value) -> Result<Value, Jump> {
        match target {
            Expr::Var(name) => {
                self.vars.insert(name.clone(), value.clone());
                if name == "NF" {
                    let n = value.num().max(0.0) as usize;
                    self.fields.resize(n, String::new());
                    self.rebuild_record();
                } else if name == "FS" || name == "OFS" {
                    // Takes effect from the next record, as in awk.
                }
            }
            Expr::Index(name, list) => {
                let key = self.key(list)?;
                self.arrays
                    .entry(name.clone())
                    .or_default()
                    .insert(key, value.clone());
            }
            Expr::Field(index) => {
                let i = self.eval(index)?.num().max(0.0) as usize;
                let text = self.to_key(&value);
                if i == 0 {
                    self.set_record(text);
                } else {
                    if self.fields.len() < i {
                        self.fields.resize(i, String::new());
                    }
                    self.fields[i - 1] = text;
                    self.vars
                        .insert("NF".into(), Value::Num(self.fields.len() as f64));
                    self.rebuild_record();
                }
            }
            _ => return Err(Jump::Fail(syntax("assignment to a non-variable"))),
        }
        Ok(value)
    }

    fn eval(&mut self, e: &Expr) -> Result<Value, Jump> {
        Ok(match e {
            Expr::Num(n) => Value::Num(*n),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Regex(r) => {
                let re = self.regex(r)?;
                Value::Num(f64::from(u8::from(re.is_match(&self.record))))
            }
            Expr::Var(name) => self.var(name),
            Expr::Group(inner) => self.eval(inner)?,
            Expr::Field(index) => {
                let i = self.eval(index)?.num();
                if i < 0.0 {
                    return Err(Jump::Fail(Fail::Msg(
                        format!("trying to access out of range field {i}"),
                        2,
                    )));
                }
                self.field(i as usize)
            }
            Expr::Index(name, list) => {
                let key = self.key(list)?;
                self.arrays
                    .entry(name.clone())
                    .or_default()
                    .entry(key)
                    .or_insert(Value::Str(String::new()))
                    .clone()
            }
            Expr::In(list, arr) => {
                let key = self.key(list)?;
                let found = self.arrays.get(arr).is_some_and(|a| a.contains_key(&key));
                Value::Num(f64::from(u8::from(found)))
            }
            Expr::Unary(op, inner) => {
                let v = self.eval(inner)?;
                match *op {
                    "!" => Value::Num(f64::from(u8::from(!v.truthy()))),
                    "-" => Value::Num(-v.num()),
                    _ => Value::Num(v.num()),
                }
            }
            Expr::Binary(op, l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                match *op {
                    "+" => Value::Num(a.num() + b.num()),
                    "-" => Value::Num(a.num() - b.num()),
                    "*" => Value::Num(a.num() * b.num()),
                    "/" | "%" if b.num() == 0.0 => {
                        return Err(Jump::Fail(Fail::Msg("division by zero".into(), 2)));
                    }
                    "/" => Value::Num(a.num() / b.num()),
                    "%" => Value::Num(a.num() % b.num()),
                    "^" => Value::Num(a.num().powf(b.num())),
                    cmp => {
                        let ord = match (a.numeric(), b.numeric()) {
                            (Some(x), Some(y)) => {
                                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                            }
                            _ => self.to_key(&a).cmp(&self.to_key(&b)),
                        };
                        let result = match cmp {
                            "<" => ord.is_lt(),
                            "<=" => ord.is_le(),
                            ">" => ord.is_gt(),
                            ">=" => ord.is_ge(),
                            "==" => ord.is_eq(),
                            _ => ord.is_ne(),
                        };
                        Value::Num(f64::from(u8::from(result)))
                    }
                }
            }
            Expr::Concat(l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                Value::Str(format!("{}{}", self.to_key(&a), self.to_key(&b)))
            }
            Expr::Match(negate, l, r) => {
                let text = self.eval(l)?;
                let text = self.to_key(&text);
                let source = match &**r {
                    Expr::Regex(src) => src.clone(),
                    other => {
                        let v = self.eval(other)?;
                        self.to_key(&v)
                    }
                };
                let re = self.regex(&source)?;
                Value::Num(f64::from(u8::from(re.is_match(&text) != *negate)))
            }
            Expr::And(l, r) => {
                let v = self.eval(l)?.truthy() && self.eval(r)?.truthy();
                Value::Num(f64::from(u8::from(v)))
            }
            Expr::Or(l, r) => {
                let v = self.eval(l)?.truthy() || self.eval(r)?.truthy();
                Value::Num(f64::from(u8::from(v)))
            }
            Expr::Cond(c, a, b) => {
                if self.eval(c)?.truthy() {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Expr::Assign(op, target, value) => {
                let v = self.eval(value)?;
                // A plain assignment keeps the value's kind (input stays "looks numeric").
                let v = if *op == "=" {
                    v
                } else {
                    let current = self.eval(target)?.num();
                    let rhs = v.num();
                    Value::Num(match *op {
                        "+=" => current + rhs,
                        "-=" => current - rhs,
                        "*=" => current * rhs,
                        "/=" if rhs == 0.0 => {
                            return Err(Jump::Fail(Fail::Msg("division by zero".into(), 2)))
                        }
                        "/=" => current / rhs,
                        "%=" => current % rhs,
                        _ => current.powf(rhs),
                    })
                };
                self.assign(target, v)?
            }
            Expr::Incr(prefix, delta, target) => {
                let old = self.eval(target)?.num();
                self.assign(target, Value::Num(old + delta))?;
                Value::Num(if *prefix { old + delta } else { old })
            }
            Expr::Call(name, args) => self.call(name, args)?,
        })
    }

    fn arg(&mut self, args: &[Expr], i: usize) -> Result<Value, Jump> {
        match args.get(i) {
            Some(e) => self.eval(e),
            None => Ok(Value::Str(String::new())),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> Result<Value, Jump> {
        let num = |v: Value| Value::Num(v.num());
        Ok(match name {
            "length" => {
                let text = if args.is_empty() {
                    self.record.clone()
                } else if let Some(Expr::Var(arr)) = args.first() {
                    if let Some(a) = self.arrays.get(arr) {
                        return Ok(Value::Num(a.len() as f64));
                    }
                    let v = self.eval(&args[0])?;
                    self.to_key(&v)
                } else {
                    let v = self.eval(&args[0])?;
                    self.to_key(&v)
                };
                Value::Num(text.chars().count() as f64)
            }
            "substr" => {
                let v = self.arg(args, 0)?;
                let s: Vec<char> = self.to_key(&v).chars().collect();
                let start = self.arg(args, 1)?.num().round();
                let len = if args.len() > 2 {
                    self.arg(args, 2)?.num().round()
                } else {
                    f64::INFINITY
                };
                let from = start.max(1.0);
                let to = (start + len).min(s.len() as f64 + 1.0);
                if to <= from {
                    Value::Str(String::new())
                } else {
                    Value::Str(s[(from as usize - 1)..(to as usize - 1)].iter().collect())
                }
            }
            "index" => {
                let hay = self.arg(args, 0)?.string();
                let needle = self.arg(args, 1)?.string();
                let pos = hay
                    .find(&needle)
                    .map_or(0, |b| hay[..b].chars().count() + 1);
                Value::Num(pos as f64)
            }
            "split" => {
                let text = self.arg(args, 0)?.string();
                let Some(Expr::Var(arr)) = args.get(1) else {
                    return Err(Jump::Fail(syntax("split needs an array")));
                };
                let fs = match args.get(2) {
                    Some(Expr::Regex(r)) => r.clone(),
                    Some(e) => self.eval(e)?.string(),
                    None => self.var_str("FS"),
                };
                let parts = self.split(&text, &fs);
                let n = parts.len();
                let map: HashMap<String, Value> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| ((i + 1).to_string(), Value::StrNum(p)))
                    .collect();
                self.arrays.insert(arr.clone(), map);
                Value::Num(n as f64)
            }
            "sub" | "gsub" => {
                let source = match args.first() {
                    Some(Expr::Regex(r)) => r.clone(),
                    Some(e) => self.eval(e)?.string(),
                    None => return Err(Jump::Fail(syntax(format!("{name} needs a regex")))),
                };
                let replacement = self.arg(args, 1)?.string();
                let target = args
                    .get(2)
                    .cloned()
                    .unwrap_or(Expr::Field(Box::new(Expr::Num(0.0))));
                let text = self.eval(&target)?.string();
                let re = self.regex(&source)?;
                let mut count = 0;
                let limit = if name == "sub" { 1 } else { usize::MAX };
                let result = re.replacen(&text, limit, |caps: &regex::Captures| {
                    count += 1;
                    awk_replacement(&replacement, &caps[0])
                });
                let result = result.into_owned();
                if count > 0 {
                    self.assign(&target, Value::Str(result))?;
                }
                Value::Num(count as f64)
            }
            "match" => {
                let text = self.arg(args, 0)?.string();
                let source = match args.get(1) {
                    Some(Expr::Regex(r)) => r.clone(),
                    Some(e) => self.eval(e)?.string(),
                    None => return Err(Jump::Fail(syntax("match needs a regex"))),
                };
                let re = self.regex(&source)?;
                let (start, len) = match re.find(&text) {
                    Some(m) => (
                        text[..m.start()].chars().count() + 1,
                        m.as_str().chars().count() as f64,
                    ),
                    None => (0, -1.0),
                };
                self.vars.insert("RSTART".into(), Value::Num(start as f64));
                self.vars.insert("RLENGTH".into(), Value::Num(len));
                Value::Num(start as f64)
            }
            "sprintf" => {
                let mut values = Vec::new();
                for e in args {
                    let v = self.eval(e)?;
                    values.push(self.to_key(&v));
                }
                let (fmt, rest) = values
                    .split_first()
                    .map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
                Value::Str(crate::sysutils::format_once(fmt, rest))
            }
            "tolower" => Value::Str(self.arg(args, 0)?.string().to_lowercase()),
            "toupper" => Value::Str(self.arg(args, 0)?.string().to_uppercase()),
            "int" => Value::Num(self.arg(args, 0)?.num().trunc()),
            "sqrt" => Value::Num(num(self.arg(args, 0)?).num().sqrt()),
            "exp" => Value::Num(self.arg(args, 0)?.num().exp()),
            "log" => Value::Num(self.arg(args, 0)?.num().ln()),
            "sin" => Value::Num(self.arg(args, 0)?.num().sin()),
            "cos" => Value::Num(self.arg(args, 0)?.num().cos()),
            "atan2" => {
                let y = self.arg(args, 0)?.num();
                Value::Num(y.atan2(self.arg(args, 1)?.num()))
            }
            other => return Err(Jump::Fail(syntax(format!("unknown function {other}")))),
        })
    }

    fn emit(&mut self, text: &str, redirect: &Option<(bool, Expr)>) -> Result<(), Jump> {
        let Some((append, target)) = redirect else {
            self.output.push_str(text);
            if self.output.len() > 1 << 16 {
                let out = std::mem::take(&mut self.output);
                self.ctx.out(out)?;
            }
            return Ok(());
        };
        let name = self.eval(target)?.string();
        if !self.files.contains_key(&name) {
            let path = self.ctx.path(&name);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .append(*append)
                .truncate(!*append)
                .open(&path)
                .map_err(|e| Fail::io(&name, &e))?;
            self.files.insert(name.clone(), file);
        }
        if let Some(f) = self.files.get_mut(&name) {
            std::io::Write::write_all(f, text.as_bytes())
                .map_err(|e| Fail::msg(format!("write error: {}", crate::io::describe(&e))))?;
        }
        Ok(())
    }

    fn exec(&mut self, stmts: &[Stmt]) -> Result<(), Jump> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), Jump> {
        match s {
            Stmt::Print(args, redirect) => {
                let text = if args.is_empty() {
                    self.record.clone()
                } else {
                    let mut parts = Vec::new();
                    for e in args {
                        let v = self.eval(e)?;
                        parts.push(match v {
                            Value::Num(n) => number_text(n, &self.var_str("OFMT")),
                            other => other.string(),
                        });
                    }
                    parts.join(&self.var_str("OFS"))
                };
                let text = text + &self.var_str("ORS");
                self.emit(&text, redirect)?;
            }
            Stmt::Printf(args, redirect) => {
                let mut values = Vec::new();
                for e in args {
                    let v = self.eval(e)?;
                    values.push(self.to_key(&v));
                }
                let text = crate::sysutils::format_once(&values[0], &values[1..]);
                self.emit(&text, redirect)?;
            }
            Stmt::Expr(e) => {
                self.eval(e)?;
            }
            Stmt::If(c, then, otherwise) => {
                if self.eval(c)?.truthy() {
                    self.stmt(then)?;
                } else if let Some(o) = otherwise {
                    self.stmt(o)?;
                }
            }
            Stmt::While(c, body) => {
                while self.eval(c)?.truthy() {
                    match self.stmt(body) {
                        Err(Jump::Break) => break,
                        Err(Jump::Continue) | Ok(()) => {}
                        Err(other) => return Err(other),
                    }
                }
            }
            Stmt::Do(body, c) => loop {
                match self.stmt(body) {
                    Err(Jump::Break) => break,
                    Err(Jump::Continue) | Ok(()) => {}
                    Err(other) => return Err(other),
                }
                if !self.eval(c)?.truthy() {
                    break;
                }
            },
            Stmt::For(init, cond, step, body) => {
                if let Some(i) = init {
                    self.eval(i)?;
                }
                loop {
                    if let Some(c) = cond {
                        if !self.eval(c)?.truthy() {
                            break;
                        }
                    }
                    match self.stmt(body) {
                        Err(Jump::Break) => break,
                        Err(Jump::Continue) | Ok(()) => {}
                        Err(other) => return Err(other),
                    }
                    if let Some(s) = step {
                        self.eval(s)?;
                    }
                }
            }
            Stmt::ForIn(var, arr, body) => {
                let mut keys: Vec<String> = self
                    .arrays
                    .get(arr)
                    .map(|a| a.keys().cloned().collect())
                    .unwrap_or_default();
                // awk leaves the order unspecified; sorted (numbers numerically) is predictable.
                keys.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    _ => a.cmp(b),
                });
                for k in keys {
                    self.vars.insert(var.clone(), Value::StrNum(k));
                    match self.stmt(body) {
                        Err(Jump::Break) => break,
                        Err(Jump::Continue) | Ok(()) => {}
                        Err(other) => return Err(other),
                    }
                }
            }
            Stmt::Block(stmts) => self.exec(stmts)?,
            Stmt::Next => return Err(Jump::Next),
            Stmt::Break => return Err(Jump::Break),
            Stmt::Continue => return Err(Jump::Continue),
            Stmt::Exit(code) => {
                let code = match code {
                    Some(e) => self.eval(e)?.num() as i32,
                    None => 0,
                };
                return Err(Jump::Exit(code));
            }
            Stmt::Delete(arr, index) => match index {
                Some(list) => {
                    let key = self.key(list)?;
                    if let Some(a) = self.arrays.get_mut(arr) {
                        a.remove(&key);
                    }
                }
                None => {
                    self.arrays.remove(arr);
                }
            },
        }
        Ok(())
    }

    fn matches(&mut self, i: usize, pattern: &Pattern) -> Result<bool, Jump> {
        Ok(match pattern {
            Pattern::All => true,
            Pattern::Begin | Pattern::End => false,
            Pattern::Expr(e) => self.eval(e)?.truthy(),
            Pattern::Range(a, b) => {
                if self.range_active[i] {
                    if self.eval(b)?.truthy() {
                        self.range_active[i] = false;
                    }
                    true
                } else if self.eval(a)?.truthy() {
                    self.range_active[i] = !self.eval(b)?.truthy();
                    true
                } else {
                    false
                }
            }
        })
    }
}

/// `&` is the match, `\&` a literal ampersand.
fn awk_replacement(template: &str, matched: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('&') => out.push('&'),
                Some(o) => {
                    out.push('\\');
                    out.push(o)
                }
                None => out.push('\\'),
            },
            '&' => out.push_str(matched),
            _ => out.push(c),
        }
    }
    out
}

/// `awk [-F fs] [-v var=value] 'program' [file | var=value]...`
pub fn awk(ctx: &mut Ctx, argv: &[String]) -> Outcome {
    let mut vars: HashMap<String, Value> = HashMap::new();
    for (k, v) in [
        ("FS", " "),
        ("OFS", " "),
        ("ORS", "\n"),
        ("OFMT", "%.6g"),
        ("CONVFMT", "%.6g"),
        ("SUBSEP", "\u{1c}"),
    ] {
        vars.insert(k.into(), Value::Str(v.into()));
    }
    let mut program = None;
    let mut operands = Vec::new();
    let mut rest = argv[1..].iter();
    let unescape = |s: &str| crate::expand::ansi_c(s);
    while let Some(a) = rest.next() {
        if program.is_some() {
            operands.push(a.clone());
            continue;
        }
        match a.as_str() {
            "-F" => {
                let fs = rest
                    .next()
                    .ok_or_else(|| Fail::Msg("option requires an argument -- F".into(), 2))?;
                vars.insert(
                    "FS".into(),
                    Value::Str(if fs == "t" { "\t".into() } else { unescape(fs) }),
                );
            }
            "-v" => {
                let assignment = rest
                    .next()
                    .ok_or_else(|| Fail::Msg("option requires an argument -- v".into(), 2))?;
                let (k, v) = assignment
                    .split_once('=')
                    .ok_or_else(|| Fail::Msg(format!("invalid -v argument `{assignment}'"), 2))?;
                vars.insert(k.into(), Value::StrNum(unescape(v)));
            }
            "-f" => {
                let name = rest
                    .next()
                    .ok_or_else(|| Fail::Msg("option requires an argument -- f".into(), 2))?;
                program = Some(String::from_utf8_lossy(&ctx.input(name)?).into_owned());
            }
            "--" => {}
            s if s.starts_with("-F") => {
                let fs = &s[2..];
                vars.insert(
                    "FS".into(),
                    Value::Str(if fs == "t" { "\t".into() } else { unescape(fs) }),
                );
            }
            s if s.starts_with("-v") => {
                let (k, v) = s[2..]
                    .split_once('=')
                    .ok_or_else(|| Fail::Msg(format!("invalid -v argument `{s}'"), 2))?;
                vars.insert(k.into(), Value::StrNum(unescape(v)));
            }
            _ => program = Some(a.clone()),
        }
    }
    let Some(program) = program else {
        return Err(Fail::Msg(
            "usage: awk [-F fs][-v var=value] 'prog' [file ...]".into(),
            2,
        ));
    };
    let toks = tokenize(&program)?;
    let mut parser = Parser {
        toks,
        pos: 0,
        no_gt: false,
        no_in: false,
    };
    let rules = parser.program()?;
    let mut awk = Awk {
        ctx,
        vars,
        arrays: HashMap::new(),
        fields: Vec::new(),
        record: String::new(),
        regexes: HashMap::new(),
        output: String::new(),
        files: HashMap::new(),
        range_active: vec![false; rules.len()],
    };
    let status = run(&mut awk, &rules, &operands);
    let out = std::mem::take(&mut awk.output);
    awk.ctx.out(out)?;
    match status {
        Ok(code) => Ok(code),
        Err(Jump::Fail(f)) => Err(f),
        Err(_) => Ok(0),
    }
}

fn run(awk: &mut Awk, rules: &[Rule], operands: &[String]) -> Result<i32, Jump> {
    let mut exit = None;
    for rule in rules.iter().filter(|r| matches!(r.pattern, Pattern::Begin)) {
        match awk.exec(rule.action.as_deref().unwrap_or(&[])) {
            Err(Jump::Exit(code)) => {
                exit = Some(code);
                break;
            }
            Err(Jump::Fail(f)) => return Err(Jump::Fail(f)),
            _ => {}
        }
    }
    let has_main = rules.iter().any(|r| !matches!(r.pattern, Pattern::Begin));
    let mut nr = 0;
    if exit.is_none() && has_main {
        let mut inputs: Vec<&String> = operands.iter().filter(|o| !is_assignment(o)).collect();
        let stdin = "-".to_string();
        if inputs.is_empty() {
            inputs.push(&stdin);
        }
        'files: for operand in operands
            .iter()
            .filter(|o| is_assignment(o))
            .chain(inputs.iter().copied())
        {
            if is_assignment(operand) {
                if let Some((k, v)) = operand.split_once('=') {
                    awk.vars
                        .insert(k.into(), Value::StrNum(crate::expand::ansi_c(v)));
                }
                continue;
            }
            let bytes = awk.ctx.input(operand)?;
            awk.vars.insert(
                "FILENAME".into(),
                Value::Str(if operand == "-" {
                    String::new()
                } else {
                    operand.clone()
                }),
            );
            for (fnr, line) in crate::commands::lines(&bytes).into_iter().enumerate() {
                nr += 1;
                awk.vars.insert("NR".into(), Value::Num(nr as f64));
                awk.vars.insert("FNR".into(), Value::Num((fnr + 1) as f64));
                awk.set_record(line);
                for (i, rule) in rules.iter().enumerate() {
                    if !awk.matches(i, &rule.pattern)? {
                        continue;
                    }
                    let result = match &rule.action {
                        Some(stmts) => awk.exec(stmts),
                        None => awk.stmt(&Stmt::Print(Vec::new(), None)),
                    };
                    match result {
                        Ok(()) => {}
                        Err(Jump::Next) => break,
                        Err(Jump::Exit(code)) => {
                            exit = Some(code);
                            break 'files;
                        }
                        Err(Jump::Fail(f)) => return Err(Jump::Fail(f)),
                        Err(_) => {}
                    }
                }
            }
        }
    }
    // END runs after an `exit` elsewhere too, as in awk.
    for rule in rules.iter().filter(|r| matches!(r.pattern, Pattern::End)) {
        match awk.exec(rule.action.as_deref().unwrap_or(&[])) {
            Err(Jump::Exit(code)) => return Ok(code),
            Err(Jump::Fail(f)) => return Err(Jump::Fail(f)),
            _ => {}
        }
    }
    Ok(exit.unwrap_or(0))
}

fn is_assignment(operand: &str) -> bool {
    operand.split_once('=').is_some_and(|(k, _)| {
        let mut chars = k.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}
