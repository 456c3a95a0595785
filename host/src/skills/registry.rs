//! The loaded skills: found in directories as `<name>.toml` + `<name>.wasm`, each checked,
//! compiled once and described once, then invoked by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings::SkillPre;
use super::call::{self, CallContext, CallState, Granted};
use super::error::{InvokeError, LoadError};
use super::http::{HttpPolicy, SkillGrant};
use super::manifest::Manifest;
use super::runtime::Runtime;
use super::schema;
use crate::secrets::{LocalSecrets, SecretStore};

/// What the operator grants skills beyond their manifests' sandbox: HTTP by skill name, and
/// where secret values come from. The default grants nothing.
#[derive(Clone)]
pub struct Grants {
    /// `[skills.<name>]` of the config.
    pub http: BTreeMap<String, SkillGrant>,
    /// Resolves the secrets manifests name.
    pub secrets: Arc<dyn SecretStore>,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            http: BTreeMap::new(),
            secrets: Arc::new(LocalSecrets::default()),
        }
    }
}

/// What the LLM is offered for one skill: an OpenAI-style function definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolDefinition {
    /// Function name, equal to the manifest's `name`.
    pub name: String,
    /// When to use it, from the skill's `describe`.
    pub description: String,
    /// JSON Schema (an object schema) of the arguments.
    pub parameters: serde_json::Value,
}

/// One loaded skill, ready to instantiate.
pub struct Skill {
    manifest: Manifest,
    definition: ToolDefinition,
    component: PathBuf,
    pre: SkillPre<CallState>,
    granted: Granted,
    secret_values: Vec<String>,
    missing_secrets: Vec<String>,
    unbound_secrets: Vec<String>,
}

impl Skill {
    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The function definition from the skill's `describe`.
    pub fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    /// The component file it was loaded from.
    pub fn component_path(&self) -> &Path {
        &self.component
    }

    /// The HTTP access in effect (manifest and grant agreeing), if any.
    pub fn http(&self) -> Option<&HttpPolicy> {
        self.granted.http.as_deref()
    }

    /// Secrets the manifest names that no secret store has: requests go without them.
    pub fn missing_secrets(&self) -> &[String] {
        &self.missing_secrets
    }

    /// Secrets the manifest names that the operator did not bind to this skill
    /// (`[skills.<name>] secrets`): never sent.
    pub fn unbound_secrets(&self) -> &[String] {
        &self.unbound_secrets
    }
}

/// The skills loaded from a list of directories, and the reasons others were not.
pub struct Registry {
    runtime: Arc<Runtime>,
    skills: BTreeMap<String, Skill>,
    errors: Vec<LoadError>,
}

impl Registry {
    /// Loads every `<name>.toml` + `<name>.wasm` pair in `dirs`, in order. A skill that fails to
    /// load is recorded in [`Registry::errors`] and does not keep the others from loading.
    pub async fn load(runtime: Arc<Runtime>, dirs: &[PathBuf], grants: &Grants) -> Self {
        let mut registry = Self {
            runtime,
            skills: BTreeMap::new(),
            errors: Vec::new(),
        };
        for dir in dirs {
            match find_skill_files(dir) {
                Ok(found) => {
                    for manifest in found.manifests {
                        registry.load_one(&manifest, grants).await;
                    }
                    registry.errors.extend(found.errors);
                }
                Err(error) => registry.errors.push(error),
            }
        }
        registry
    }

    async fn load_one(&mut self, manifest_path: &Path, grants: &Grants) {
        let loaded = load_skill(&self.runtime, manifest_path, grants).await;
        match loaded {
            Ok(skill) => {
                if let Some(first) = self.skills.get(&skill.manifest.name) {
                    self.errors.push(LoadError::Duplicate {
                        path: manifest_path.to_owned(),
                        name: skill.manifest.name.clone(),
                        other: first.component.with_extension("toml"),
                    });
                } else {
                    tracing::debug!(skill = %skill.manifest.name, "skill loaded");
                    self.skills.insert(skill.manifest.name.clone(), skill);
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "skill not loaded");
                self.errors.push(error);
            }
        }
    }

    /// The loaded skill called `name`.
    pub fn get(&self, name: &str) -> Option<&Skill> {
        self.skills.get(name)
    }

    /// The loaded skills, by name.
    pub fn skills(&self) -> impl Iterator<Item = &Skill> {
        self.skills.values()
    }

    /// Every secret value the loaded skills' policies added at load time, for the redactor of
    /// replies (tokens fetched later are JWTs, which the redactor recognises by shape).
    pub fn secret_values(&self) -> Vec<String> {
        self.skills
            .values()
            .flat_map(|s| s.secret_values.iter().cloned())
            .collect()
    }

    /// Why the skills that are not loaded failed to load.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    /// The runtime the skills run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Runs skill `name` with JSON `arguments` for `context`, on a fresh instance.
    pub async fn invoke(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
    ) -> Result<String, InvokeError> {
        let skill = self
            .skills
            .get(name)
            .ok_or_else(|| InvokeError::UnknownSkill(name.to_owned()))?;
        call::invoke(
            &self.runtime,
            &skill.pre,
            &skill.manifest,
            &skill.granted,
            arguments,
            context,
        )
        .await
    }
}

/// What a directory holds: manifests to load, and files that cannot be a skill.
struct SkillFiles {
    manifests: Vec<PathBuf>,
    errors: Vec<LoadError>,
}

fn find_skill_files(dir: &Path) -> Result<SkillFiles, LoadError> {
    let directory_error = |source| LoadError::Directory {
        path: dir.to_owned(),
        source,
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(directory_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(directory_error)?;
    paths.sort();
    let has = |path: &Path, ext: &str| path.extension().is_some_and(|e| e == ext);
    let mut found = SkillFiles {
        manifests: Vec::new(),
        errors: Vec::new(),
    };
    for path in &paths {
        if has(path, "toml") {
            found.manifests.push(path.clone());
        } else if has(path, "wasm") && !path.with_extension("toml").is_file() {
            found.errors.push(LoadError::Manifest {
                path: path.clone(),
                reason: format!(
                    "no manifest beside it; add {} with at least `name` and `description`",
                    path.with_extension("toml").display()
                ),
            });
        }
    }
    Ok(found)
}

async fn load_skill(
    runtime: &Runtime,
    manifest_path: &Path,
    grants: &Grants,
) -> Result<Skill, LoadError> {
    let manifest = Manifest::from_file(manifest_path).map_err(|e| LoadError::Manifest {
        path: manifest_path.to_owned(),
        reason: e.to_string(),
    })?;
    let HttpSecrets {
        policy: http,
        values: secret_values,
        missing: missing_secrets,
        unbound: unbound_secrets,
    } = http_policy(&manifest, grants)
        .await
        .map_err(|reason| LoadError::Grant {
            path: manifest_path.to_owned(),
            reason,
        })?;
    let component = manifest_path.with_extension("wasm");
    let pre = runtime.prepare(&component)?;
    let describe_error = |reason: String| LoadError::Describe {
        path: component.clone(),
        reason,
    };
    // describe() may read the operator's settings, as invoke() does.
    let settings = Arc::new(
        grants
            .http
            .get(&manifest.name)
            .map(|g| g.settings.clone())
            .unwrap_or_default(),
    );
    let describing = Granted {
        http: None,
        settings: settings.clone(),
    };
    let descriptor = call::describe(runtime, &pre, &manifest, &describing)
        .await
        .map_err(|e| describe_error(format!("failed: {e}")))?;
    if descriptor.name != manifest.name {
        return Err(describe_error(format!(
            "names the skill `{}` but its manifest names it `{}`; make them equal",
            descriptor.name, manifest.name
        )));
    }
    let parameters = schema::check_describe(&descriptor.description, &descriptor.parameters)
        .map_err(describe_error)?;
    Ok(Skill {
        definition: ToolDefinition {
            name: descriptor.name,
            description: descriptor.description,
            parameters,
        },
        manifest,
        component,
        pre,
        granted: Granted { http, settings },
        secret_values,
        missing_secrets,
        unbound_secrets,
    })
}

/// The skill's effective HTTP policy, and its secrets: the values set now (for the redactor of
/// replies), the names not set anywhere, and the names its manifest claims that the operator did
/// not bind to it (never sent).
async fn http_policy(manifest: &Manifest, grants: &Grants) -> Result<HttpSecrets, String> {
    let asked = &manifest.capabilities;
    let Some(grant) = grants.http.get(&manifest.name) else {
        if !asked.http.is_empty() {
            tracing::info!(skill = %manifest.name, "skill asks for HTTP but has no [skills.{}] grant; its requests will be refused", manifest.name);
        }
        return Ok(HttpSecrets::default());
    };
    let (bound, unbound): (Vec<_>, Vec<_>) = asked
        .secrets
        .iter()
        .cloned()
        .partition(|rule| grant.secrets.contains(&rule.name));
    let unbound: Vec<String> = unbound.into_iter().map(|rule| rule.name).collect();
    for name in &unbound {
        tracing::warn!(skill = %manifest.name, secret = %name, "the manifest names a secret the operator has not bound to this skill; its requests go without it (add secrets = [\"{name}\"] to [skills.{}] if it should have it)", manifest.name);
    }
    let policy = HttpPolicy::new(
        &manifest.name,
        &asked.http,
        grant,
        &bound,
        grants.secrets.clone(),
    )
    .map_err(|e| e.to_string())?;
    let (mut values, mut missing) = (Vec::new(), Vec::new());
    if policy.is_some() {
        for rule in &bound {
            match grants.secrets.get(&rule.name).await {
                Some(value) => values.push(value.expose().to_owned()),
                None => {
                    tracing::warn!(skill = %manifest.name, secret = %rule.name, env = %crate::secrets::env_name(&rule.name), "secret not set; requests go without it");
                    missing.push(rule.name.clone());
                }
            }
        }
    }
    Ok(HttpSecrets {
        policy: policy.map(Arc::new),
        values,
        missing,
        unbound,
    })
}

/// A skill's HTTP policy and the state of the secrets its manifest names.
#[derive(Default)]
struct HttpSecrets {
    policy: Option<Arc<HttpPolicy>>,
    values: Vec<String>,
    missing: Vec<String>,
    unbound: Vec<String>,
}
