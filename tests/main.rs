//! molten's integration tests: the real wasmtime runtime running the real skill components
//! (built by `scripts/build-skills`), and the real `molten` binary.

mod support;

mod azurite;

mod bash;
mod cli;
mod confinement;
mod fakes;
mod graph;
mod http;
mod key_vault;
mod limits;
mod loading;
mod pipeline;
mod queue;
mod scale;
mod store;
mod text_editor;
pub mod web_search;
mod webhooks;
