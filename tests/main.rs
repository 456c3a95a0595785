//! molten's integration tests: the real wasmtime runtime running the real skill components
//! (built by `scripts/build-skills`), and the real `molten` binary.

mod support;

/// Runs each contract test of a module once per backend: the module's `Backend::sqlite()` and
/// `Backend::azure()` (Azurite).
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::sqlite()).await
                }
            )*
        }
        mod azurite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backend::azure()).await
                }
            )*
        }
    };
}

mod admin_auth;
mod authoring;
mod azurite;

mod bash;
mod cli;
mod confinement;
#[cfg(feature = "failpoints")]
mod crash;
mod fakes;
mod first_run;
mod graph;
mod http;
mod key_vault;
mod limits;
mod loading;
mod observability;
mod openclaw;
mod pipeline;
mod plugins;
mod queue;
mod scale;
mod store;
mod text_editor;
pub mod web_search;
mod webhooks;
