//! `<name>.toml`, the manifest beside each skill component: what the skill is and what it asks
//! for. Parsed from a raw form, then validated into [`Manifest`], the only form the runtime uses.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use super::http::HttpRule;

/// Fuel when the manifest sets none: far above any normal call (editing a megabyte file burns
/// a few tens of millions), and about 10 s of pure computation on a current core, so that a
/// runaway stops even when its wall-clock deadline is generous.
pub const DEFAULT_FUEL: u64 = 5_000_000_000;
/// Wall-clock deadline when the manifest sets none.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Memory cap when the manifest sets none.
pub const DEFAULT_MEMORY_MB: u64 = 64;
/// Output cap when the manifest sets none: more than an LLM should be handed in one tool result.
pub const DEFAULT_OUTPUT_KB: u64 = 256;

/// Largest deadline a manifest may ask for.
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Largest memory cap a manifest may ask for; the engine's pooling allocator is sized for it.
pub const MAX_MEMORY_MB: u64 = 1024;
/// Largest output cap a manifest may ask for.
pub const MAX_OUTPUT_KB: u64 = 16 * 1024;
/// Longest skill name (an LLM function name).
pub const MAX_NAME_LEN: usize = 64;

/// A validated skill manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The skill's name: `[a-z][a-z0-9_]*`, the function name the LLM calls.
    pub name: String,
    /// What the skill does, for operators (`molten skill list`).
    pub description: String,
    /// Resource limits applied to every call.
    pub limits: Limits,
    /// Capabilities the skill asks for.
    pub capabilities: Capabilities,
}

/// Resource limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel budget (roughly one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Cap on the skill's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Cap on the returned text, in bytes; longer output is truncated with a marker.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            memory_bytes: (DEFAULT_MEMORY_MB << 20) as usize,
            output_bytes: (DEFAULT_OUTPUT_KB << 10) as usize,
        }
    }
}

/// What a skill may touch besides its own memory. Asking is not getting: the operator's
/// `[skills.<name>]` grant decides what of `http` is given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Filesystem access.
    pub filesystem: Filesystem,
    /// Origins (with an optional path prefix) the skill asks to reach over `wasi:http`.
    pub http: Vec<HttpRule>,
    /// Secrets the host adds to the skill's requests.
    pub secrets: Vec<SecretRule>,
}

/// A secret the host adds as a header to requests for one host; the skill never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    /// The secret's name in the secret store, e.g. `tavily-api-key`.
    pub name: String,
    /// Requests to this host (exactly) get the header.
    pub host: String,
    /// The header, e.g. `Authorization`.
    pub header: String,
    /// The header value with `{}` where the secret goes, e.g. `Bearer {}`.
    #[serde(default = "plain_format")]
    pub format: String,
}

fn plain_format() -> String {
    "{}".to_owned()
}

/// Filesystem access a skill asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    /// No filesystem at all.
    #[default]
    None,
    /// The calling user's sandbox directory, read-write, seen as `/tmp`.
    Sandbox,
}

impl std::fmt::Display for Filesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Sandbox => "sandbox (the user's directory as /tmp)",
        })
    }
}

/// The manifest as written; every field checked later by [`Manifest::parse`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    description: String,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    capabilities: RawCapabilities,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<u64>,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
    output_kb: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    filesystem: Filesystem,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    secrets: Vec<SecretRule>,
}

/// Why a manifest was rejected; the message names the field and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(String);

impl Manifest {
    /// Parses and validates manifest text. `file_stem` is the name the files carry
    /// (`<stem>.toml`, `<stem>.wasm`); the manifest's `name` must equal it.
    pub fn parse(text: &str, file_stem: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| ManifestError(format!("invalid TOML: {}", e.to_string().trim_end())))?;
        let name = raw.name;
        if !is_valid_name(&name) {
            return Err(ManifestError(format!(
                "field `name`: `{name}` is not a valid skill name; use 1 to {MAX_NAME_LEN} \
                 characters from a-z, 0-9 and _, starting with a letter"
            )));
        }
        if name != file_stem {
            return Err(ManifestError(format!(
                "field `name`: the skill is called `{name}` but its files are named `{file_stem}`; \
                 name them `{name}.toml` and `{name}.wasm`"
            )));
        }
        let description = raw.description.trim().to_owned();
        if description.is_empty() {
            return Err(ManifestError(
                "field `description`: must not be empty; say in a sentence what the skill does"
                    .into(),
            ));
        }
        let l = raw.limits;
        let limits = Limits {
            fuel: bounded("limits.fuel", l.fuel, DEFAULT_FUEL, u64::MAX)?,
            timeout: Duration::from_millis(bounded(
                "limits.timeout_ms",
                l.timeout_ms,
                DEFAULT_TIMEOUT_MS,
                MAX_TIMEOUT_MS,
            )?),
            memory_bytes: (bounded(
                "limits.memory_mb",
                l.memory_mb,
                DEFAULT_MEMORY_MB,
                MAX_MEMORY_MB,
            )? << 20) as usize,
            output_bytes: (bounded(
                "limits.output_kb",
                l.output_kb,
                DEFAULT_OUTPUT_KB,
                MAX_OUTPUT_KB,
            )? << 10) as usize,
        };
        let c = raw.capabilities;
        let http = c
            .http
            .iter()
            .enumerate()
            .map(|(i, text)| {
                HttpRule::parse(text)
                    .map_err(|e| ManifestError(format!("field `capabilities.http[{i}]`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, secret) in c.secrets.iter().enumerate() {
            let field = |f: &str| format!("field `capabilities.secrets[{i}].{f}`");
            if secret.name.trim().is_empty() {
                return Err(ManifestError(format!(
                    "{}: must not be empty",
                    field("name")
                )));
            }
            if !http
                .iter()
                .any(|rule| rule.host() == secret.host.to_ascii_lowercase())
            {
                return Err(ManifestError(format!(
                    "{}: `{}` is not the host of any `capabilities.http` entry; a secret can only \
                     go to a host the skill may reach",
                    field("host"),
                    secret.host
                )));
            }
            if http::HeaderName::from_bytes(secret.header.as_bytes()).is_err() {
                return Err(ManifestError(format!(
                    "{}: `{}` is not a header name",
                    field("header"),
                    secret.header
                )));
            }
            if secret.format.matches("{}").count() != 1 {
                return Err(ManifestError(format!(
                    "{}: must contain `{{}}` exactly once, where the secret goes",
                    field("format")
                )));
            }
        }
        Ok(Self {
            name,
            description,
            limits,
            capabilities: Capabilities {
                filesystem: c.filesystem,
                http,
                secrets: c.secrets,
            },
        })
    }

    /// Reads and validates the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError(format!("cannot read the manifest: {e}")))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        Self::parse(&text, stem)
    }
}

/// Whether `name` can be an LLM function name and a file name on every platform.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn bounded(field: &str, value: Option<u64>, default: u64, max: u64) -> Result<u64, ManifestError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ManifestError(format!(
            "field `{field}`: must be greater than 0 (leave it out for the default {default})"
        ))),
        Some(v) if v > max => Err(ManifestError(format!(
            "field `{field}`: {v} is above the maximum {max}"
        ))),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_limits_are_absent() {
        let m = Manifest::parse("name = \"x\"\ndescription = \"d\"", "x").unwrap();
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.capabilities.filesystem, Filesystem::None);
    }

    #[test]
    fn every_field_is_read() {
        let text = r#"
            name = "web_search"
            description = "Search the web"
            [limits]
            fuel = 5
            timeout_ms = 1500
            memory_mb = 32
            output_kb = 8
            [capabilities]
            filesystem = "sandbox"
        "#;
        let m = Manifest::parse(text, "web_search").unwrap();
        assert_eq!(m.limits.fuel, 5);
        assert_eq!(m.limits.timeout, Duration::from_millis(1500));
        assert_eq!(m.limits.memory_bytes, 32 << 20);
        assert_eq!(m.limits.output_bytes, 8 << 10);
        assert_eq!(m.capabilities.filesystem, Filesystem::Sandbox);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "name = \"Bad-Name\"\ndescription = \"d\"",
                "Bad-Name",
                "field `name`",
            ),
            (
                "name = \"a\"\ndescription = \"d\"",
                "b",
                "name them `a.toml`",
            ),
            (
                "name = \"a\"\ndescription = \"  \"",
                "a",
                "field `description`",
            ),
            (
                "name = \"a\"\ndescription = \"d\"\n[limits]\nmemory_mb = 4096",
                "a",
                "field `limits.memory_mb`: 4096 is above the maximum 1024",
            ),
            (
                "name = \"a\"\ndescription = \"d\"\n[limits]\ntimeout_ms = 0",
                "a",
                "field `limits.timeout_ms`: must be greater than 0",
            ),
            (
                "name = \"a\"\ndescription = \"d\"\n[limits]\nfuel = -1",
                "a",
                "invalid TOML",
            ),
            (
                "name = \"a\"\ndescription = \"d\"\n[limits]\nmemroy_mb = 1",
                "a",
                "unknown field `memroy_mb`",
            ),
            (
                "name = \"a\"\ndescription = \"d\"\n[capabilities]\nfilesystem = \"host\"",
                "a",
                "unknown variant `host`",
            ),
            ("description = \"d\"", "a", "missing field `name`"),
        ];
        for (text, stem, expected) in cases {
            let err = Manifest::parse(text, stem).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{text:?}: {err:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn names_are_llm_function_names() {
        assert!(is_valid_name("text_editor"));
        assert!(is_valid_name("a1"));
        for bad in ["", "1a", "_a", "a-b", "A", "a.b", "a/b", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
