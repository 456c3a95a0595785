//! molten: a self-hostable AI chat agent whose tools ("skills") are sandboxed WebAssembly
//! components.
//!
//! This library holds everything the `molten` binary does; `main.rs` only parses the command
//! line. See `DESIGN.md` at the repository root for the architecture.
#![deny(missing_docs)]

pub mod config;
pub mod ingress;
pub mod queue;
pub mod skills;
