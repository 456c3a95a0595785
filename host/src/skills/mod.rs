//! The skill runtime: one wasmtime engine, capability-confined calls, a registry of loaded skills.
//!
//! A skill is a WebAssembly component implementing the `molten:skill` world (`wit/skill.wit`)
//! with a manifest (`<name>.toml`) beside it (`<name>.wasm`). [`Registry::load`] compiles each
//! one once (cached on disk by content hash) and keeps it ready to instantiate; every
//! [`Registry::invoke`] gets a fresh instance in a fresh store holding only what the manifest was
//! granted: fuel, a wall-clock deadline, a memory cap, an output cap, and, when asked for, the
//! caller's own sandbox directory as `/tmp` under a size quota (see `quota.rs`), and `wasi:http` requests checked against what the
//! operator granted (see [`http`]). Nothing else (sockets, environment, arguments, host stdio)
//! exists for the skill.

mod bindings;
mod call;
pub mod descriptors;
mod error;
mod host_log;
pub mod http;
pub mod manifest;
pub mod nesting;
mod policy;
mod quota;
mod registry;
mod runtime;
mod sandbox;
pub mod schema;

pub use call::CallContext;
pub use error::{EngineError, InvokeError, LoadError};
pub use http::{HttpPolicy, HttpRule, SkillGrant};
pub use manifest::Manifest;
pub use policy::Policy;
pub use quota::{DEFAULT_MAX_FILES, DEFAULT_QUOTA_BYTES};
pub use registry::{Grants, Origin, Progress, Registry, Skill, SkillFiles, Step, ToolDefinition};
pub use runtime::{default_total_memory, MemoryBudget, Runtime, RuntimeConfig};
pub use sandbox::Sandboxes;
