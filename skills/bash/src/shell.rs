//! The interpreter: walks brush-parser's syntax tree. Every command runs in this process, so a
//! pipeline runs its stages one after the other through bounded buffers, a subshell is a copy of
//! the shell state, and background jobs (`&`) simply run to completion.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use brush_parser::ast::{self, AndOr, Command, CompoundCommand, IoFileRedirectKind as Kind};
use brush_parser::ast::{CommandPrefixOrSuffixItem as Item, IoFileRedirectTarget as Target};
use brush_parser::{ParseError, ParserOptions};

use crate::commands::{self, Ctx, Fail};
use crate::io::{describe, In, Io, Out};
use crate::path;

/// Deepest function nesting before the call is refused (bash's FUNCNEST).
pub const MAX_FUNCTION_DEPTH: usize = 200;
/// Deepest nesting of subshells, command substitutions, `eval` and `source`.
pub const MAX_NESTING: usize = 64;

/// Why execution leaves the normal flow.
#[derive(Debug)]
pub enum Flow {
    /// `exit`, or a fatal error in a non-interactive shell.
    Exit(i32),
    /// `return` from a function or sourced file.
    Return(i32),
    /// `break N`.
    Break(u32),
    /// `continue N`.
    Continue(u32),
}

/// Status of a command, or a change of control flow.
pub type Status = Result<i32, Flow>;

/// `set -e`, `set -u`, `set -o pipefail`.
#[derive(Clone, Default)]
pub struct Options {
    /// `set -e`: a failing command ends the script.
    pub errexit: bool,
    /// `set -u`: expanding an unset variable ends the script.
    pub nounset: bool,
    /// `set -o pipefail`: a pipeline fails when any stage fails.
    pub pipefail: bool,
}

/// An indexed (sparse) or associative array.
#[derive(Clone, Debug)]
pub enum Array {
    /// `a=(x y)`, `declare -a`: integer indices, possibly with gaps.
    Indexed(BTreeMap<i64, String>),
    /// `declare -A`: string keys.
    Assoc(BTreeMap<String, String>),
}

impl Array {
    /// The values in index (or key) order.
    pub fn values(&self) -> Vec<String> {
        match self {
            Array::Indexed(m) => m.values().cloned().collect(),
            Array::Assoc(m) => m.values().cloned().collect(),
        }
    }

    /// The indices (or keys) in order.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Array::Indexed(m) => m.keys().map(i64::to_string).collect(),
            Array::Assoc(m) => m.keys().cloned().collect(),
        }
    }

    /// The index after the last one (`a+=(x)` appends there).
    pub fn next_index(&self) -> i64 {
        match self {
            Array::Indexed(m) => m.keys().next_back().map_or(0, |k| k + 1),
            Array::Assoc(m) => m.len() as i64,
        }
    }
}

/// Where an array element is: an integer index or a key.
#[derive(Clone, Debug)]
pub enum Slot {
    /// An index of an indexed array.
    Index(i64),
    /// A key of an associative array.
    Key(String),
}

/// The state of one shell: variables, functions, positional parameters, directory.
#[derive(Clone)]
pub struct Shell {
    /// Scalar variables.
    pub vars: HashMap<String, String>,
    /// Array variables (a name is in one map or the other).
    pub arrays: HashMap<String, Array>,
    /// Names passed on to commands (`export`), as `env` shows them.
    pub exported: BTreeSet<String>,
    /// Names declared with `declare -i`: what is assigned to them is evaluated as arithmetic.
    pub integers: HashSet<String>,
    /// Defined functions by name.
    pub functions: HashMap<String, Rc<ast::FunctionBody>>,
    /// `$1`, `$2`, ...
    pub positional: Vec<String>,
    /// `$0`: "bash", or the script's name.
    pub arg0: String,
    /// Absolute, normalised working directory (inside `/tmp` unless the script went elsewhere).
    pub cwd: String,
    /// `$?`.
    pub status: i32,
    /// `set` options.
    pub options: Options,
    /// What `trap CMD EXIT` runs when the script ends.
    pub exit_trap: Option<String>,
    /// Saved values of `local` variables, one frame per active function call.
    locals: Vec<Vec<Saved>>,
    /// Depth of if/while/until conditions and `&&`/`||` left sides, where `set -e` is off.
    condition: usize,
    /// Depth of subshells, substitutions and eval.
    pub nesting: usize,
    /// Status of the last command substitution of the current command, if one ran.
    pub substituted: Option<i32>,
    loop_depth: u32,
}

impl Shell {
    /// A fresh shell in `/tmp`, with the only environment a skill has.
    pub fn new() -> Self {
        let mut sh = Shell {
            vars: HashMap::new(),
            arrays: HashMap::new(),
            integers: HashSet::new(),
            exported: BTreeSet::new(),
            functions: HashMap::new(),
            positional: Vec::new(),
            arg0: "bash".into(),
            cwd: path::HOME.into(),
            status: 0,
            options: Options::default(),
            exit_trap: None,
            locals: Vec::new(),
            condition: 0,
            nesting: 0,
            substituted: None,
            loop_depth: 0,
        };
        for (k, v) in [
            ("HOME", path::HOME),
            ("PWD", path::HOME),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("SHELL", "/bin/bash"),
            ("USER", "user"),
            ("LOGNAME", "user"),
            ("LANG", "C.UTF-8"),
            ("TMPDIR", path::HOME),
        ] {
            sh.vars.insert(k.into(), v.into());
            sh.exported.insert(k.into());
        }
        sh
    }

    /// Parses and runs `source`, then its EXIT trap, returning the exit status.
    pub fn run_script(&mut self, source: &str, io: &Io) -> i32 {
        let status = self.run_isolated(|sh| sh.run_source(source, io));
        match self.exit_trap.take() {
            Some(trap) => {
                self.status = status;
                match self.run_source(&trap, io) {
                    Err(Flow::Exit(s)) => s,
                    _ => status,
                }
            }
            None => status,
        }
    }

    /// Parses and runs `source` in this shell (`eval`, `source`, `bash -c`).
    pub fn run_source(&mut self, source: &str, io: &Io) -> Status {
        let program = match parse(source) {
            Ok(p) => p,
            Err(message) => {
                let _ = io.stderr.write(format!("bash: {message}\n").as_bytes());
                return Ok(2);
            }
        };
        let mut status = 0;
        for list in &program.complete_commands {
            status = self.run_list(list, io)?;
        }
        Ok(status)
    }

    /// The value of a variable, if set (element 0 of an array).
    pub fn var(&self, name: &str) -> Option<&str> {
        match self.arrays.get(name) {
            Some(Array::Indexed(m)) => m.get(&0).map(String::as_str),
            Some(Array::Assoc(m)) => m.get("0").map(String::as_str),
            None => self.vars.get(name).map(String::as_str),
        }
    }

    /// Sets a variable (element 0 of an array, as bash does).
    pub fn set_var(&mut self, name: &str, value: String) {
        match self.arrays.get_mut(name) {
            Some(Array::Indexed(m)) => {
                m.insert(0, value);
            }
            Some(Array::Assoc(m)) => {
                m.insert("0".into(), value);
            }
            None => {
                self.vars.insert(name.to_owned(), value);
            }
        }
    }

    /// Removes a variable or array.
    pub fn unset_var(&mut self, name: &str) {
        self.vars.remove(name);
        self.arrays.remove(name);
        self.exported.remove(name);
    }

    /// Sets one element, making `name` an indexed array if it is not an array yet.
    pub fn set_element(&mut self, name: &str, slot: Slot, value: String) {
        let scalar = self.vars.remove(name);
        let array = self
            .arrays
            .entry(name.to_owned())
            .or_insert_with(|| Array::Indexed(scalar.into_iter().map(|v| (0, v)).collect()));
        match (array, slot) {
            (Array::Indexed(m), Slot::Index(i)) => {
                m.insert(i, value);
            }
            (Array::Indexed(m), Slot::Key(k)) => {
                m.insert(k.parse().unwrap_or(0), value);
            }
            (Array::Assoc(m), Slot::Key(k)) => {
                m.insert(k, value);
            }
            (Array::Assoc(m), Slot::Index(i)) => {
                m.insert(i.to_string(), value);
            }
        }
    }

    /// Where `a[index]` is: a key for an associative array, else an arithmetic index
    /// (negative counts from the end).
    pub fn slot(&mut self, name: &str, index: &str, io: &Io) -> Result<Slot, Fail> {
        match self.arrays.get(name) {
            Some(Array::Assoc(_)) => Ok(Slot::Key(crate::expand::single(self, index, io)?)),
            other => {
                let end = other.map_or(0, Array::next_index);
                let i = crate::arith::eval_str(self, index, io)?;
                Ok(Slot::Index(if i < 0 { end + i } else { i }))
            }
        }
    }

    /// The element at `slot`, if set.
    pub fn element(&self, name: &str, slot: &Slot) -> Option<String> {
        match (self.arrays.get(name), slot) {
            (Some(Array::Indexed(m)), Slot::Index(i)) => m.get(i).cloned(),
            (Some(Array::Assoc(m)), Slot::Key(k)) => m.get(k).cloned(),
            (Some(Array::Assoc(m)), Slot::Index(i)) => m.get(&i.to_string()).cloned(),
            (Some(Array::Indexed(_)), Slot::Key(_)) => None,
            (None, Slot::Index(0)) => self.vars.get(name).cloned(),
            (None, _) => None,
        }
    }

    /// Makes `name` local to the running function (`local`).
    pub fn make_local(&mut self, name: &str) -> bool {
        let old = Saved {
            name: name.to_owned(),
            scalar: self.vars.get(name).cloned(),
            array: self.arrays.get(name).cloned(),
        };
        match self.locals.last_mut() {
            Some(frame) => {
                if !frame.iter().any(|s| s.name == name) {
                    frame.push(old);
                }
                true
            }
            None => false,
        }
    }

    /// Whether a loop is running (for `break` and `continue`).
    pub fn in_loop(&self) -> bool {
        self.loop_depth > 0
    }

    /// Whether a function is running (for `return` and `local`).
    pub fn in_function(&self) -> bool {
        !self.locals.is_empty()
    }

    /// The variables a command started from here would see, as `env` prints them.
    pub fn environment(&self) -> Vec<(String, String)> {
        self.exported
            .iter()
            .filter_map(|k| self.vars.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }

    pub(crate) fn run_list(&mut self, list: &ast::CompoundList, io: &Io) -> Status {
        let mut status = self.status;
        for ast::CompoundListItem(and_or, _separator) in &list.0 {
            status = self.run_and_or(and_or, io)?;
        }
        Ok(status)
    }

    fn run_and_or(&mut self, list: &ast::AndOrList, io: &Io) -> Status {
        let n = list.additional.len();
        // Every pipeline but the last of `a && b || c` is a condition, where `set -e` is off.
        let mut status = self.guarded(n > 0, |sh| sh.run_pipeline(&list.first, io))?;
        let mut final_ran = n == 0;
        let mut bang = list.first.bang;
        for (i, next) in list.additional.iter().enumerate() {
            let last = i + 1 == n;
            let (run, pipeline) = match next {
                AndOr::And(p) => (status == 0, p),
                AndOr::Or(p) => (status != 0, p),
            };
            if run {
                status = self.guarded(!last, |sh| sh.run_pipeline(pipeline, io))?;
                final_ran = last;
                bang = pipeline.bang;
            }
        }
        if status != 0 && final_ran && !bang && self.options.errexit && self.condition == 0 {
            return Err(Flow::Exit(status));
        }
        Ok(status)
    }

    /// Runs `f` as a condition when `on`: `set -e` does not apply inside.
    fn guarded(&mut self, on: bool, f: impl FnOnce(&mut Shell) -> Status) -> Status {
        if on {
            self.condition += 1;
        }
        let result = f(self);
        if on {
            self.condition -= 1;
        }
        result
    }

    fn run_pipeline(&mut self, pipeline: &ast::Pipeline, io: &Io) -> Status {
        if pipeline.bang {
            self.condition += 1;
        }
        let result = if pipeline.seq.len() == 1 {
            self.run_command(&pipeline.seq[0], io).map(|s| (s, vec![s]))
        } else {
            Ok(self.run_stages(&pipeline.seq, io))
        };
        if pipeline.bang {
            self.condition -= 1;
        }
        let (status, each) = result?;
        self.arrays.insert(
            "PIPESTATUS".into(),
            Array::Indexed((0..).zip(each.into_iter().map(|s| s.to_string())).collect()),
        );
        self.status = if pipeline.bang {
            i32::from(status == 0)
        } else {
            status
        };
        Ok(self.status)
    }

    /// Runs the stages of `a | b | c` one after another, each in a copy of the shell (as bash
    /// runs each in a subshell), feeding each the output of the one before. Returns the
    /// pipeline's status and each stage's (`PIPESTATUS`).
    fn run_stages(&mut self, stages: &[Command], io: &Io) -> (i32, Vec<i32>) {
        let mut input = io.stdin.clone();
        let mut failed = 0;
        let mut status = 0;
        let mut each = Vec::with_capacity(stages.len());
        for (i, command) in stages.iter().enumerate() {
            let last = i + 1 == stages.len();
            let out = if last { io.stdout.clone() } else { Out::pipe() };
            let stage_io = Io {
                stdin: std::mem::take(&mut input),
                stdout: out.clone(),
                stderr: io.stderr.clone(),
            };
            let mut sub = self.clone();
            status = sub.run_isolated(|sh| sh.run_command(command, &stage_io));
            each.push(status);
            if status != 0 {
                failed = status;
            }
            if !last {
                input = In::bytes(out.take());
            }
        }
        (
            if self.options.pipefail {
                failed
            } else {
                status
            },
            each,
        )
    }

    /// Runs `f` as a subshell body: `exit` ends only it.
    pub fn run_isolated(&mut self, f: impl FnOnce(&mut Shell) -> Status) -> i32 {
        match f(self) {
            Ok(s) | Err(Flow::Exit(s)) | Err(Flow::Return(s)) => s,
            Err(Flow::Break(_) | Flow::Continue(_)) => self.status,
        }
    }

    fn run_command(&mut self, command: &Command, io: &Io) -> Status {
        match command {
            Command::Simple(simple) => self.run_simple(simple, io),
            Command::Compound(compound, redirects) => {
                let io = match self.redirect_list(redirects.as_ref(), io)? {
                    Some(io) => io,
                    None => return Ok(1),
                };
                self.run_compound(compound, &io)
            }
            Command::Function(def) => {
                self.functions
                    .insert(def.fname.value.clone(), Rc::new(def.body.clone()));
                Ok(0)
            }
            Command::ExtendedTest(test, redirects) => {
                let io = match self.redirect_list(redirects.as_ref(), io)? {
                    Some(io) => io,
                    None => return Ok(1),
                };
                match crate::test::extended(self, &test.expr, &io) {
                    Ok(true) => Ok(0),
                    Ok(false) => Ok(1),
                    Err(Fail::Flow(flow)) => Err(flow),
                    Err(Fail::Msg(message, status)) => {
                        let _ = io.stderr.write(format!("bash: {message}\n").as_bytes());
                        Ok(status)
                    }
                }
            }
        }
    }

    fn redirect_list(
        &mut self,
        list: Option<&ast::RedirectList>,
        io: &Io,
    ) -> Result<Option<Io>, Flow> {
        let redirects: Vec<&ast::IoRedirect> =
            list.map(|l| l.0.iter().collect()).unwrap_or_default();
        self.redirect(&redirects, io)
    }

    fn run_compound(&mut self, compound: &CompoundCommand, io: &Io) -> Status {
        match compound {
            CompoundCommand::BraceGroup(group) => self.run_list(&group.list, io),
            CompoundCommand::Subshell(sub) => {
                let mut copy = self.nested()?;
                Ok(copy.run_isolated(|sh| sh.run_list(&sub.list, io)))
            }
            CompoundCommand::IfClause(clause) => {
                if self.condition_holds(&clause.condition, io)? {
                    return self.run_list(&clause.then, io);
                }
                for branch in clause.elses.iter().flatten() {
                    match &branch.condition {
                        Some(c) if !self.condition_holds(c, io)? => continue,
                        _ => return self.run_list(&branch.body, io),
                    }
                }
                Ok(0)
            }
            CompoundCommand::WhileClause(clause) => self.run_while(clause, true, io),
            CompoundCommand::UntilClause(clause) => self.run_while(clause, false, io),
            CompoundCommand::ForClause(clause) => {
                let values = match &clause.values {
                    Some(words) => match crate::expand::words(self, words, io) {
                        Ok(v) => v,
                        Err(e) => return self.expansion_failed(e, io),
                    },
                    None => self.positional.clone(),
                };
                self.in_loop_scope(|sh| {
                    let mut status = 0;
                    for value in values {
                        sh.set_var(&clause.variable_name, value);
                        if !sh.loop_body(&clause.body.list, io, &mut status)? {
                            break;
                        }
                    }
                    Ok(status)
                })
            }
            CompoundCommand::ArithmeticForClause(clause) => {
                let eval = |sh: &mut Shell, e: &Option<ast::UnexpandedArithmeticExpr>| match e {
                    Some(e) => crate::arith::eval_str(sh, &e.value, io).map(Some),
                    None => Ok(None),
                };
                if let Err(e) = eval(self, &clause.initializer) {
                    return self.expansion_failed(e, io);
                }
                self.in_loop_scope(|sh| {
                    let mut status = 0;
                    loop {
                        match eval(sh, &clause.condition) {
                            Ok(Some(0)) => break,
                            Ok(_) => {}
                            Err(e) => return sh.expansion_failed(e, io),
                        }
                        if !sh.loop_body(&clause.body.list, io, &mut status)? {
                            break;
                        }
                        if let Err(e) = eval(sh, &clause.updater) {
                            return sh.expansion_failed(e, io);
                        }
                    }
                    Ok(status)
                })
            }
            CompoundCommand::CaseClause(clause) => {
                let value = match crate::expand::single(self, &clause.value.value, io) {
                    Ok(v) => v,
                    Err(e) => return self.expansion_failed(e, io),
                };
                let mut status = 0;
                let mut fall_through = false;
                for item in &clause.cases {
                    let mut matched = fall_through;
                    if !matched {
                        for pattern in &item.patterns {
                            match crate::expand::pattern(self, &pattern.value, io) {
                                Ok(p) => {
                                    if crate::pattern::matches(&p, &value) {
                                        matched = true;
                                        break;
                                    }
                                }
                                Err(e) => return self.expansion_failed(e, io),
                            }
                        }
                    }
                    if !matched {
                        continue;
                    }
                    if let Some(cmd) = &item.cmd {
                        status = self.run_list(cmd, io)?;
                    }
                    match item.post_action {
                        ast::CaseItemPostAction::ExitCase => break,
                        ast::CaseItemPostAction::UnconditionallyExecuteNextCaseItem => {
                            fall_through = true
                        }
                        ast::CaseItemPostAction::ContinueEvaluatingCases => fall_through = false,
                    }
                }
                Ok(status)
            }
            CompoundCommand::Arithmetic(arith) => {
                match crate::arith::eval_str(self, &arith.expr.value, io) {
                    Ok(v) => Ok(i32::from(v == 0)),
                    Err(e) => self.expansion_failed(e, io),
                }
            }
            CompoundCommand::Coprocess(_) => {
                let _ = io
                    .stderr
                    .write(b"bash: coproc: not supported in this sandbox\n");
                Ok(1)
            }
        }
    }

    fn condition_holds(&mut self, list: &ast::CompoundList, io: &Io) -> Result<bool, Flow> {
        self.condition += 1;
        let result = self.run_list(list, io);
        self.condition -= 1;
        Ok(result? == 0)
    }

    fn run_while(
        &mut self,
        clause: &ast::WhileOrUntilClauseCommand,
        want: bool,
        io: &Io,
    ) -> Status {
        self.in_loop_scope(|sh| {
            let mut status = 0;
            while sh.condition_holds(&clause.0, io)? == want {
                if !sh.loop_body(&clause.1.list, io, &mut status)? {
                    break;
                }
            }
            Ok(status)
        })
    }

    /// Runs `f` as a loop, where `break` and `continue` mean something.
    fn in_loop_scope(&mut self, f: impl FnOnce(&mut Shell) -> Status) -> Status {
        self.loop_depth += 1;
        let result = f(self);
        self.loop_depth -= 1;
        result
    }

    /// Runs one pass of a loop body into `status`; `Ok(false)` when `break` ends the loop.
    fn loop_body(
        &mut self,
        body: &ast::CompoundList,
        io: &Io,
        status: &mut i32,
    ) -> Result<bool, Flow> {
        match self.run_list(body, io) {
            Ok(s) => {
                *status = s;
                Ok(true)
            }
            Err(flow) => match loop_control(flow)? {
                LoopStep::Next => Ok(true),
                LoopStep::Stop => Ok(false),
            },
        }
    }

    /// A copy of this shell one level deeper, or a fatal error past [`MAX_NESTING`].
    pub fn nested(&self) -> Result<Shell, Flow> {
        if self.nesting >= MAX_NESTING {
            return Err(Flow::Exit(2));
        }
        let mut copy = self.clone();
        copy.nesting += 1;
        Ok(copy)
    }

    /// Reports an expansion error; fatal ones (`${x:?}`, `set -u`) end the shell.
    fn expansion_failed(&mut self, e: Fail, io: &Io) -> Status {
        match e {
            Fail::Flow(flow) => Err(flow),
            Fail::Msg(message, status) => {
                let _ = io.stderr.write(format!("bash: {message}\n").as_bytes());
                Ok(status)
            }
        }
    }

    fn run_simple(&mut self, simple: &ast::SimpleCommand, io: &Io) -> Status {
        let mut assignments = Vec::new();
        let mut words = Vec::new();
        let mut redirects = Vec::new();
        // Assignments count only before the command name; after it (`export A=1`) they are words.
        for item in simple.prefix.iter().flat_map(|p| p.0.iter()) {
            match item {
                Item::IoRedirect(r) => redirects.push(r),
                Item::AssignmentWord(a, _) => assignments.push(a),
                Item::Word(w) => words.push(w.clone()),
                Item::ProcessSubstitution(..) => return unsupported_substitution(io),
            }
        }
        words.extend(simple.word_or_name.iter().cloned());
        for item in simple.suffix.iter().flat_map(|s| s.0.iter()) {
            match item {
                Item::IoRedirect(r) => redirects.push(r),
                Item::AssignmentWord(_, w) | Item::Word(w) => words.push(w.clone()),
                Item::ProcessSubstitution(..) => return unsupported_substitution(io),
            }
        }
        let argv = match crate::expand::words(self, &words, io) {
            Ok(argv) => argv,
            Err(e) => return self.expansion_failed(e, io),
        };
        let mut values = Vec::new();
        self.substituted = None;
        for a in &assignments {
            match self.assignment_value(a, io) {
                Ok(v) => values.push(v),
                Err(e) => return self.expansion_failed(e, io),
            }
        }
        let io = match self.redirect(&redirects, io)? {
            Some(io) => io,
            None => return Ok(1),
        };
        if argv.is_empty() {
            // Plain assignments: `$?` is that of the last command substitution, else 0.
            let status = self.substituted.take().unwrap_or(0);
            for assigned in values {
                self.assign(assigned);
            }
            return Ok(status);
        }
        // `NAME=value command`: the value holds for that command only (arrays stay).
        let values: Vec<(String, String)> = values
            .into_iter()
            .filter_map(|assigned| match assigned {
                Assigned::Scalar(name, value) => Some((name, value)),
                other => {
                    self.assign(other);
                    None
                }
            })
            .collect();
        let saved: Vec<_> = values
            .iter()
            .map(|(n, _)| {
                (
                    n.clone(),
                    self.vars.get(n).cloned(),
                    self.exported.contains(n),
                )
            })
            .collect();
        for (name, value) in values {
            self.exported.insert(name.clone());
            self.set_var(&name, value);
        }
        let result = self.exec(argv, &io);
        for (name, old, was_exported) in saved {
            match old {
                Some(v) => {
                    self.vars.insert(name.clone(), v);
                }
                None => {
                    self.vars.remove(&name);
                }
            }
            if !was_exported {
                self.exported.remove(&name);
            }
        }
        result
    }

    fn assignment_value(&mut self, a: &ast::Assignment, io: &Io) -> Result<Assigned, Fail> {
        match (&a.name, &a.value) {
            (ast::AssignmentName::VariableName(name), ast::AssignmentValue::Scalar(w)) => {
                let value = crate::expand::single(self, &w.value, io)?;
                let value = if self.integers.contains(name) {
                    let n = crate::arith::eval_str(self, &value, io)?;
                    let base = if a.append {
                        crate::arith::eval_str(self, name, io)?
                    } else {
                        0
                    };
                    base.wrapping_add(n).to_string()
                } else if a.append {
                    format!("{}{}", self.var(name).unwrap_or(""), value)
                } else {
                    value
                };
                Ok(Assigned::Scalar(name.clone(), value))
            }
            (
                ast::AssignmentName::ArrayElementName(name, index),
                ast::AssignmentValue::Scalar(w),
            ) => {
                let slot = self.slot(name, index, io)?;
                let value = crate::expand::single(self, &w.value, io)?;
                let value = if a.append {
                    format!("{}{}", self.element(name, &slot).unwrap_or_default(), value)
                } else {
                    value
                };
                Ok(Assigned::Element(name.clone(), slot, value))
            }
            (ast::AssignmentName::VariableName(name), ast::AssignmentValue::Array(items)) => {
                let assoc = matches!(self.arrays.get(name), Some(Array::Assoc(_)));
                let mut array = match self.arrays.get(name) {
                    Some(existing) if a.append => existing.clone(),
                    _ if assoc => Array::Assoc(BTreeMap::new()),
                    _ => Array::Indexed(BTreeMap::new()),
                };
                let mut next = array.next_index();
                for (key, value) in items {
                    match key {
                        Some(k) => {
                            let k = crate::expand::single(self, &k.value, io)?;
                            let v = crate::expand::single(self, &value.value, io)?;
                            match &mut array {
                                Array::Assoc(m) => {
                                    m.insert(k, v);
                                }
                                Array::Indexed(m) => {
                                    let i = crate::arith::eval_str(self, &k, io)?;
                                    m.insert(i, v);
                                    next = i + 1;
                                }
                            }
                        }
                        None => {
                            for v in crate::expand::words(self, std::slice::from_ref(value), io)? {
                                match &mut array {
                                    Array::Indexed(m) => {
                                        m.insert(next, v);
                                    }
                                    Array::Assoc(m) => {
                                        m.insert(next.to_string(), v);
                                    }
                                }
                                next += 1;
                            }
                        }
                    }
                }
                Ok(Assigned::Array(name.clone(), array))
            }
            (ast::AssignmentName::ArrayElementName(name, _), ast::AssignmentValue::Array(_)) => {
                Err(Fail::msg(format!(
                    "{name}: cannot assign a list to an array element"
                )))
            }
        }
    }

    /// Applies an assignment for good.
    fn assign(&mut self, assigned: Assigned) {
        match assigned {
            Assigned::Scalar(name, value) => self.set_var(&name, value),
            Assigned::Element(name, slot, value) => self.set_element(&name, slot, value),
            Assigned::Array(name, array) => {
                self.vars.remove(&name);
                self.arrays.insert(name, array);
            }
        }
    }

    /// Runs a command by name: a function, a builtin or utility, or "command not found".
    pub fn exec(&mut self, argv: Vec<String>, io: &Io) -> Status {
        if let Some(body) = self.functions.get(&argv[0]).cloned() {
            return self.call_function(&body, argv, io);
        }
        let name = commands::canonical_name(&argv[0]);
        match commands::lookup(name) {
            Some(command) => {
                let mut ctx = Ctx { sh: self, io };
                match command(&mut ctx, &argv) {
                    Ok(status) => Ok(status),
                    Err(Fail::Flow(flow)) => Err(flow),
                    Err(Fail::Msg(message, status)) => {
                        let _ = io.stderr.write(format!("{name}: {message}\n").as_bytes());
                        Ok(status)
                    }
                }
            }
            None if argv[0].contains('/') => self.run_file(argv, io),
            None => {
                let message = { format!("bash: {}: command not found\n", argv[0]) };
                let _ = io.stderr.write(message.as_bytes());
                Ok(127)
            }
        }
    }

    /// `./script.sh args`: a file in the sandbox run as a bash script in a child shell.
    fn run_file(&mut self, argv: Vec<String>, io: &Io) -> Status {
        let name = argv[0].clone();
        let fail = |message: String, status: i32| {
            let _ = io
                .stderr
                .write(format!("bash: {name}: {message}\n").as_bytes());
            Ok(status)
        };
        let source = match std::fs::read(path::resolve(&self.cwd, &name)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                return fail("Is a directory".into(), 126)
            }
            Err(e) => return fail(describe(&e), 127),
        };
        if let Some(shebang) = source.lines().next().and_then(|l| l.strip_prefix("#!")) {
            let interpreter = shebang.split_whitespace().last().unwrap_or("");
            if !matches!(path::basename(interpreter), "bash" | "sh") {
                return fail(
                    format!("{interpreter}: not available in this sandbox (only bash scripts run)"),
                    126,
                );
            }
        }
        let mut argv = argv;
        argv[0] = "bash".into();
        argv.insert(1, name.clone());
        let mut ctx = Ctx { sh: self, io };
        match commands::lookup("bash").map(|bash| bash(&mut ctx, &argv)) {
            Some(Ok(status)) => Ok(status),
            Some(Err(Fail::Flow(flow))) => Err(flow),
            Some(Err(Fail::Msg(message, status))) => fail(message, status),
            None => fail("command not found".into(), 127),
        }
    }

    fn call_function(&mut self, body: &ast::FunctionBody, argv: Vec<String>, io: &Io) -> Status {
        if self.locals.len() >= MAX_FUNCTION_DEPTH {
            let message = format!(
                "bash: {}: maximum function nesting level exceeded ({MAX_FUNCTION_DEPTH})\n",
                argv[0]
            );
            let _ = io.stderr.write(message.as_bytes());
            return Err(Flow::Exit(1));
        }
        let io = match self.redirect_list(body.1.as_ref(), io)? {
            Some(io) => io,
            None => return Ok(1),
        };
        let saved = std::mem::replace(&mut self.positional, argv[1..].to_vec());
        self.locals.push(Vec::new());
        let result = self.run_compound(&body.0, &io);
        for old in self.locals.pop().unwrap_or_default().into_iter().rev() {
            match old.scalar {
                Some(v) => self.vars.insert(old.name.clone(), v),
                None => self.vars.remove(&old.name),
            };
            match old.array {
                Some(a) => self.arrays.insert(old.name, a),
                None => self.arrays.remove(&old.name),
            };
        }
        self.positional = saved;
        match result {
            Err(Flow::Return(s)) => Ok(s),
            other => other,
        }
    }

    /// Applies redirections left to right. `None` when one failed (reported on stderr).
    fn redirect(&mut self, redirects: &[&ast::IoRedirect], io: &Io) -> Result<Option<Io>, Flow> {
        let mut io = io.clone();
        for redirect in redirects {
            match self.apply_redirect(redirect, &mut io) {
                Ok(()) => {}
                Err(Fail::Flow(flow)) => return Err(flow),
                Err(Fail::Msg(message, _)) => {
                    let _ = io.stderr.write(format!("bash: {message}\n").as_bytes());
                    return Ok(None);
                }
            }
        }
        Ok(Some(io))
    }

    fn apply_redirect(&mut self, redirect: &ast::IoRedirect, io: &mut Io) -> Result<(), Fail> {
        match redirect {
            ast::IoRedirect::File(fd, kind, target) => {
                let fd = fd.unwrap_or(match kind {
                    Kind::Read | Kind::DuplicateInput | Kind::ReadAndWrite => 0,
                    _ => 1,
                });
                match (kind, target) {
                    (Kind::DuplicateOutput, Target::Fd(n)) => dup(io, fd, *n),
                    (_, Target::Duplicate(w)) => {
                        let word = crate::expand::single(self, &w.value, io)?;
                        if word == "-" {
                            set_out(io, fd, Out::Null)
                        } else {
                            match word.parse::<i32>() {
                                Ok(n) => dup(io, fd, n),
                                Err(_) => Err(Fail::msg(format!("{word}: ambiguous redirect"))),
                            }
                        }
                    }
                    (Kind::DuplicateInput, Target::Fd(_)) => Ok(()),
                    (_, Target::Filename(w)) => {
                        let name = crate::expand::single(self, &w.value, io)?;
                        self.redirect_file(io, fd, kind, &name)
                    }
                    (_, Target::Fd(n)) => dup(io, fd, *n),
                    (_, Target::ProcessSubstitution(..)) => Err(Fail::msg(
                        "process substitution is not supported in this sandbox",
                    )),
                }
            }
            ast::IoRedirect::HereDocument(fd, doc) => {
                let text = if doc.requires_expansion {
                    crate::expand::heredoc(self, &doc.doc.value, io)?
                } else {
                    doc.doc.value.clone()
                };
                let text = if doc.remove_tabs {
                    text.lines()
                        .map(|l| format!("{}\n", l.trim_start_matches('\t')))
                        .collect()
                } else {
                    text
                };
                if fd.unwrap_or(0) == 0 {
                    io.stdin = In::bytes(text.into_bytes());
                }
                Ok(())
            }
            ast::IoRedirect::HereString(fd, word) => {
                let mut text = crate::expand::single(self, &word.value, io)?;
                text.push('\n');
                if fd.unwrap_or(0) == 0 {
                    io.stdin = In::bytes(text.into_bytes());
                }
                Ok(())
            }
            ast::IoRedirect::OutputAndError(word, append) => {
                let name = crate::expand::single(self, &word.value, io)?;
                let kind = if *append { Kind::Append } else { Kind::Write };
                self.redirect_file(io, 1, &kind, &name)?;
                io.stderr = io.stdout.clone();
                Ok(())
            }
        }
    }

    fn redirect_file(&mut self, io: &mut Io, fd: i32, kind: &Kind, name: &str) -> Result<(), Fail> {
        let reading = matches!(kind, Kind::Read | Kind::DuplicateInput);
        match name {
            "/dev/null" if reading => {
                io.stdin = In::default();
                return Ok(());
            }
            "/dev/null" => return set_out(io, fd, Out::Null),
            "/dev/stdout" => return set_out(io, fd, io.stdout.clone()),
            "/dev/stderr" => return set_out(io, fd, io.stderr.clone()),
            "/dev/stdin" if reading => return Ok(()),
            _ => {}
        }
        let target = path::resolve(&self.cwd, name);
        let failed = |e: std::io::Error| Fail::msg(format!("{name}: {}", describe(&e)));
        if reading {
            let bytes = std::fs::read(&target).map_err(failed)?;
            if fd == 0 {
                io.stdin = In::bytes(bytes);
            }
            return Ok(());
        }
        let mut options = std::fs::OpenOptions::new();
        match kind {
            Kind::Append => options.append(true).create(true),
            Kind::ReadAndWrite => options.read(true).write(true).create(true),
            _ => options.write(true).create(true).truncate(true),
        };
        let file = options.open(&target).map_err(failed)?;
        set_out(io, fd, Out::File(Rc::new(std::cell::RefCell::new(file))))
    }
}

/// A variable's value before `local` shadowed it.
#[derive(Clone)]
struct Saved {
    name: String,
    scalar: Option<String>,
    array: Option<Array>,
}

/// A checked assignment, not applied yet.
enum Assigned {
    /// `name=value`
    Scalar(String, String),
    /// `name[index]=value`
    Element(String, Slot, String),
    /// `name=(...)`
    Array(String, Array),
}

impl Default for Shell {
    fn default() -> Self {
        Self::new()
    }
}

fn unsupported_substitution(io: &Io) -> Status {
    let _ = io
        .stderr
        .write(b"bash: process substitution is not supported in this sandbox\n");
    Ok(1)
}

fn set_out(io: &mut Io, fd: i32, out: Out) -> Result<(), Fail> {
    match fd {
        1 => io.stdout = out,
        2 => io.stderr = out,
        0 => {}
        n => {
            return Err(Fail::msg(format!(
                "{n}: file descriptors above 2 are not supported"
            )))
        }
    }
    Ok(())
}

/// `N>&M`: fd `N` writes where `M` writes now.
fn dup(io: &mut Io, fd: i32, to: i32) -> Result<(), Fail> {
    let out = match to {
        1 => io.stdout.clone(),
        2 => io.stderr.clone(),
        0 => return Ok(()),
        n => return Err(Fail::msg(format!("{n}: Bad file descriptor"))),
    };
    set_out(io, fd, out)
}

enum LoopStep {
    Next,
    Stop,
}

/// What `break`/`continue` mean for the innermost loop; other flows pass up.
fn loop_control(flow: Flow) -> Result<LoopStep, Flow> {
    match flow {
        Flow::Break(1) => Ok(LoopStep::Stop),
        Flow::Break(n) => Err(Flow::Break(n - 1)),
        Flow::Continue(1) => Ok(LoopStep::Next),
        Flow::Continue(n) => Err(Flow::Continue(n - 1)),
        other => Err(other),
    }
}

/// Parses a script, or says where bash would say the syntax error is.
pub fn parse(source: &str) -> Result<ast::Program, String> {
    let options = ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    };
    let mut parser = brush_parser::Parser::new(source.as_bytes(), &options);
    parser.parse_program().map_err(|e| match e {
        ParseError::ParsingNear(pos) => {
            let near = source
                .get(pos.index..)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("");
            format!(
                "line {}: syntax error near unexpected token `{near}'",
                pos.line
            )
        }
        ParseError::ParsingAtEndOfInput => "syntax error: unexpected end of file".into(),
        ParseError::Tokenizing { inner, position } => match position {
            Some(p) => format!("line {}: syntax error: {inner}", p.line),
            None => format!("syntax error: {inner}"),
        },
    })
}

/// Options shared by every word parse.
pub fn parser_options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}
