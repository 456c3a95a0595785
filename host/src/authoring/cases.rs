//! `tests.toml`: a skill's test cases, each arguments and the expected output (exactly) or
//! error (a part of its message), run through the real runtime with the manifest's limits.

use std::path::Path;

use serde::Deserialize;

use super::AuthorError;
use crate::skills::{CallContext, Registry};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The JSON object the model would pass.
    pub arguments: toml::Value,
    /// The answer, exactly.
    pub output: Option<String>,
    /// A part of the error message.
    pub error: Option<String>,
    /// The user whose sandbox the call works in (default `test`).
    pub user: Option<String>,
    /// Files written into that sandbox before the call: relative path → content.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

/// What a case did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which case (from 1).
    pub index: usize,
    /// Whether it did what the case expects.
    pub passed: bool,
    /// The arguments, as JSON.
    pub arguments: String,
    /// What was expected and what came, when it failed.
    pub detail: String,
}

/// Reads the cases of `path`.
pub fn read(path: &Path) -> Result<Vec<Case>, AuthorError> {
    let text = std::fs::read_to_string(path).map_err(super::io(path))?;
    let file: CasesFile = toml::from_str(&text)
        .map_err(|e| AuthorError::Project(format!("{}: {}", path.display(), e.message().trim())))?;
    for (i, case) in file.case.iter().enumerate() {
        let outside = case.files.keys().find(|name| {
            let path = Path::new(name);
            path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
        });
        if let Some(name) = outside {
            return Err(AuthorError::Project(format!(
                "{}: case {}: file `{name}` must be a relative path inside the sandbox",
                path.display(),
                i + 1
            )));
        }
        if case.output.is_some() == case.error.is_some() {
            return Err(AuthorError::Project(format!(
                "{}: case {} needs exactly one of `output` and `error`",
                path.display(),
                i + 1
            )));
        }
    }
    Ok(file.case)
}

/// Runs every case against skill `name` of `registry`.
pub async fn run(
    registry: &Registry,
    name: &str,
    cases: &[Case],
) -> Result<Vec<Outcome>, AuthorError> {
    let mut outcomes = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let arguments = serde_json::to_string(&case.arguments).unwrap_or_default();
        let user = case.user.as_deref().unwrap_or("test");
        if !case.files.is_empty() {
            let sandbox =
                registry.runtime().sandboxes().dir_for(user).map_err(|e| {
                    AuthorError::Project(format!("cannot prepare the sandbox: {e}"))
                })?;
            for (file, content) in &case.files {
                let path = sandbox.join(file);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(super::io(parent))?;
                }
                std::fs::write(&path, content).map_err(super::io(&path))?;
            }
        }
        let result = registry
            .invoke(name, &arguments, &CallContext::new(user, "test"))
            .await;
        let (passed, detail) = match (&case.output, &case.error, result) {
            (Some(want), _, Ok(got)) => (got == *want, format!("expected {want:?}, got {got:?}")),
            (Some(want), _, Err(e)) => (false, format!("expected {want:?}, got error: {e}")),
            (_, Some(want), Err(e)) => {
                let message = e.to_string();
                (
                    message.contains(want.as_str()),
                    format!("expected an error containing {want:?}, got: {message}"),
                )
            }
            (_, Some(want), Ok(got)) => (
                false,
                format!("expected an error containing {want:?}, got {got:?}"),
            ),
            (None, None, _) => (false, "no expectation".into()),
        };
        outcomes.push(Outcome {
            index: i + 1,
            passed,
            arguments,
            detail,
        });
    }
    Ok(outcomes)
}
