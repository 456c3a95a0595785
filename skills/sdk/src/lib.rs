//! Write a molten skill as one function from typed arguments to text.
//!
//! ```ignore
//! use molten_skill::{Context, Error};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// What the model passes.
//! #[derive(Deserialize, JsonSchema)]
//! struct Args {
//!     /// The text to count the words of.
//!     text: String,
//! }
//!
//! fn count(args: Args, _context: &Context) -> Result<String, Error> {
//!     Ok(args.text.split_whitespace().count().to_string())
//! }
//!
//! molten_skill::skill!(
//!     name: "word_count",
//!     description: "Counts the words of a text.",
//!     run: count,
//! );
//! ```
//!
//! The skill's crate depends on `serde` (with `derive`) and `schemars` (with `derive`) itself,
//! as their derive macros expect. The parameter schema offered to the model is derived from the
//! argument type (doc comments
//! become descriptions); molten checks every call's arguments against it before the skill
//! runs. The sandbox (`/tmp`, when the manifest asks for it) is reached with `std::fs`, the
//! network with [`http`] (only what the operator granted; secrets are added by the host and
//! never seen here), the operator's settings with [`setting`], the host's log with [`log`].

pub use molten_http as http;
pub use serde_json;

use schemars::JsonSchema;

/// The bindings of the `molten:skill` world; [`skill!`] implements them.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "skill",
        pub_export_macro: true,
        default_bindings_module: "molten_skill::bindings",
    });
}

use bindings::molten::skill::{log as host_log, sandbox, settings};
use bindings::{CallContext, Descriptor, SkillError};

/// Who a call is for: lets a skill keep per-user or per-conversation state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// Stable id of the user on whose behalf the skill runs.
    pub user_id: String,
    /// The conversation the call belongs to.
    pub session_id: String,
}

/// Why a call failed. The model reads the message: say what to do differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The arguments are wrong.
    InvalidInput(String),
    /// The skill or its sandbox refused.
    Denied(String),
    /// The arguments were fine but the work failed.
    Failed(String),
}

impl Error {
    /// [`Error::Failed`] with `error`'s message.
    pub fn failed(error: impl std::fmt::Display) -> Self {
        Self::Failed(error.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::PermissionDenied => Self::Denied(error.to_string()),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput => {
                Self::InvalidInput(error.to_string())
            }
            _ => Self::Failed(error.to_string()),
        }
    }
}

impl From<http::Error> for Error {
    fn from(error: http::Error) -> Self {
        Self::Failed(error.to_string())
    }
}

/// The operator's setting `key` (`[skills.<name>] settings = { key = "..." }`), if set.
pub fn setting(key: &str) -> Option<String> {
    settings::get(key)
}

/// The caller's sandbox quota and what it holds now, in bytes (both 0 without a filesystem).
pub fn sandbox_usage() -> (u64, u64) {
    let sizes = sandbox::usage();
    (sizes.quota, sizes.used)
}

/// Lines in the host's log, tagged with the skill and the user.
pub mod log {
    use super::host_log::{log, Level};

    /// A debug line (shown with `RUST_LOG=molten=debug`).
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// An info line.
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// A warning.
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// An error.
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// The descriptor of a skill whose function takes `A`. Used by [`skill!`].
#[doc(hidden)]
pub fn __describe<A: JsonSchema, F: Fn(A, &Context) -> Result<String, Error>>(
    _run: &F,
    name: &str,
    description: &str,
) -> Descriptor {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(A)).expect("a generated schema serialises");
    if let Some(root) = schema.as_object_mut() {
        // The model needs neither; molten validates against the schema's own keywords.
        root.remove("$schema");
        root.remove("title");
    }
    Descriptor {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: schema.to_string(),
    }
}

/// Runs `run` on the parsed `arguments`. Used by [`skill!`].
#[doc(hidden)]
pub fn __invoke<A: serde::de::DeserializeOwned>(
    run: impl Fn(A, &Context) -> Result<String, Error>,
    arguments: String,
    context: CallContext,
) -> Result<String, SkillError> {
    let args: A = serde_json::from_str(&arguments)
        .map_err(|e| SkillError::InvalidInput(format!("the arguments do not fit: {e}")))?;
    let context = Context {
        user_id: context.user_id,
        session_id: context.session_id,
    };
    run(args, &context).map_err(|error| match error {
        Error::InvalidInput(m) => SkillError::InvalidInput(m),
        Error::Denied(m) => SkillError::Denied(m),
        Error::Failed(m) => SkillError::Failed(m),
    })
}

/// Makes this crate a molten skill: `name` (equal to the manifest's), the `description` the
/// model reads to decide when to call it, and the function that `run`s a call.
#[macro_export]
macro_rules! skill {
    (name: $name:expr, description: $description:expr, run: $run:path $(,)?) => {
        struct __MoltenSkill;

        impl $crate::bindings::Guest for __MoltenSkill {
            fn describe() -> $crate::bindings::Descriptor {
                $crate::__describe(&$run, $name, $description)
            }

            fn invoke(
                arguments: ::std::string::String,
                context: $crate::bindings::CallContext,
            ) -> ::std::result::Result<::std::string::String, $crate::bindings::SkillError> {
                $crate::__invoke($run, arguments, context)
            }
        }

        $crate::bindings::export!(__MoltenSkill with_types_in $crate::bindings);
    };
}
