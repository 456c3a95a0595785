//! The skill authors' loop: `molten skill new` scaffolds a project that builds as it is (the
//! SDK and the WIT contract vendored in), `molten skill build` compiles it with molten's
//! toolchain into `dist/<name>.wasm` + `dist/<name>.toml`, and `molten skill test` runs its
//! `tests.toml` cases through the real runtime. Checking a built skill is the host's own
//! loading (`skills::Registry`), so a skill that passes here loads in `molten serve`.

pub mod build;
pub mod cases;
pub mod scaffold;

use std::path::PathBuf;

/// Why an authoring step failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AuthorError {
    /// A file could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The project, its manifest or its cases are not usable.
    #[error("{0}")]
    Project(String),
    /// A piece of the toolchain is missing and could not be installed.
    #[error("{0}")]
    Toolchain(String),
    /// The compiler refused the skill (its errors were shown above).
    #[error("{0}")]
    Compile(String),
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuthorError {
    let path = path.into();
    move |source| AuthorError::Io { path, source }
}
