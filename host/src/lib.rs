//! molten: a self-hostable AI chat agent whose tools ("skills") are sandboxed WebAssembly
//! components.
//!
//! This library holds everything the `molten` binary does; `main.rs` only parses the command
//! line. See `DESIGN.md` at the repository root for the architecture: its floors, the path of one
//! message, and how to add a channel, a backend or a host capability.
#![deny(missing_docs)]

pub mod agent;
pub mod authoring;
pub mod azure;
pub mod channels;
pub mod config;
pub mod crash;
pub mod db;
pub mod envelope;
pub mod ingress;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod net;
pub mod openclaw;
pub mod plugins;
pub mod queue;
pub mod redact;
pub mod secrets;
pub mod service;
pub mod skills;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod worker;
