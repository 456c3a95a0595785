//! Errors of loading and calling skills. Each message says what happened and what to do.

use std::path::PathBuf;
use std::time::Duration;

/// The WebAssembly engine could not start (an invalid configuration, or the operating system
/// refusing the memory reservation or the epoch thread).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(pub(crate) String);

/// Why a skill could not be loaded. Every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest is missing, unreadable or invalid.
    #[error("{path}: {reason}", path = path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The component file is missing or unreadable.
    #[error("{path}: cannot read the component: {source}; build it or remove its manifest", path = path.display())]
    Read {
        /// The component file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid WebAssembly component.
    #[error("{path}: not a valid WebAssembly component ({reason}); rebuild it as a wasm32-wasip2 component", path = path.display())]
    Compile {
        /// The component file.
        path: PathBuf,
        /// What the compiler said.
        reason: String,
    },
    /// The component does not implement the `molten:skill` world, or imports what the host does
    /// not provide.
    #[error("{path}: does not implement the molten:skill@0.1.0 world ({reason}); build it against wit/skill.wit", path = path.display())]
    World {
        /// The component file.
        path: PathBuf,
        /// What is missing or mismatched.
        reason: String,
    },
    /// `describe` failed or returned something unusable.
    #[error("{path}: describe() {reason}", path = path.display())]
    Describe {
        /// The component file.
        path: PathBuf,
        /// What is wrong with the description.
        reason: String,
    },
    /// The operator's grant for the skill cannot be applied.
    #[error("{path}: {reason}", path = path.display())]
    Grant {
        /// The manifest.
        path: PathBuf,
        /// What is wrong, naming the config key.
        reason: String,
    },
    /// The operator disabled the skill (`[skills.<name>] enabled = false`).
    #[error("{name}: {reason}")]
    Disabled {
        /// The skill.
        name: String,
        /// Which setting disabled it.
        reason: String,
    },
    /// A plugin was refused before it was compiled: unsigned, signed by an unknown key,
    /// tampered, not matching its pinned digest, or named like a built-in skill.
    #[error("{path}: {reason}", path = path.display())]
    Refused {
        /// The file at fault.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// Two skills have the same name.
    #[error("{path}: a skill named `{name}` is already loaded from {other}; remove one of them", path = path.display(), other = other.display())]
    Duplicate {
        /// The rejected manifest.
        path: PathBuf,
        /// The name both claim.
        name: String,
        /// The manifest that was loaded first.
        other: PathBuf,
    },
    /// A skills directory could not be listed.
    #[error("{path}: cannot list the skills directory: {source}", path = path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why a skill call produced no output. The first three variants come from the skill itself;
/// the rest are the host stopping or refusing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No skill of that name is loaded.
    #[error("no skill named `{0}` is loaded; `molten skill list` shows the loaded skills")]
    UnknownSkill(String),
    /// The skill rejected its arguments.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The skill, or the sandbox around it, refused.
    #[error("denied: {0}")]
    Denied(String),
    /// The skill tried and failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The skill used up its fuel budget.
    #[error("skill `{skill}` used up its fuel budget of {fuel} and was stopped; raise limits.fuel in its manifest if the work is legitimate")]
    OutOfFuel {
        /// The skill.
        skill: String,
        /// The budget it had.
        fuel: u64,
    },
    /// The skill ran past its wall-clock deadline.
    #[error("skill `{skill}` ran past its deadline of {} ms and was stopped; raise limits.timeout_ms in its manifest if the work is legitimate", timeout.as_millis())]
    Timeout {
        /// The skill.
        skill: String,
        /// The deadline it had.
        timeout: Duration,
    },
    /// The skill tried to grow its memory past its cap.
    #[error("skill `{skill}` tried to use more than its memory limit of {} MiB and was stopped; raise limits.memory_mb in its manifest if the work is legitimate", limit_bytes >> 20)]
    MemoryLimit {
        /// The skill.
        skill: String,
        /// The cap it had.
        limit_bytes: usize,
    },
    /// The skill could not grow its memory because all running skills together hold the
    /// host's budget.
    #[error("skill `{skill}` was stopped: all running skills together reached the host's memory budget of {} MiB ([runtime] max_total_memory_mb); try again when fewer calls run", limit_bytes >> 20)]
    HostMemory {
        /// The skill.
        skill: String,
        /// The budget.
        limit_bytes: u64,
    },
    /// The skill trapped (a panic, a stack overflow, a bug).
    #[error("skill `{skill}` crashed: {detail}")]
    Crashed {
        /// The skill.
        skill: String,
        /// The trap and what the skill wrote to stderr.
        detail: String,
    },
    /// The caller's sandbox directory could not be prepared.
    #[error("cannot prepare the sandbox for user `{user}`: {reason}; check that the data directory is writable")]
    Sandbox {
        /// The user.
        user: String,
        /// The I/O error.
        reason: String,
    },
}
