//! The loaded skills: built-in ones found in directories as `<name>.toml` + `<name>.wasm`,
//! and plugins installed, replaced and removed while molten runs (`crate::plugins`). Each is
//! checked, compiled once and described once, then invoked by name. A call holds the version it
//! started on, so replacing a skill never cuts a running call short.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::bindings::SkillPre;
use super::call::{self, CallContext, CallState, Granted};
use super::error::{InvokeError, LoadError};
use super::http::{HttpPolicy, SkillGrant};
use super::manifest::Manifest;
use super::runtime::Runtime;
use super::schema::{self, Parameters};
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

/// Where a loaded skill came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A skills directory, read at start.
    Builtin,
    /// The plugin store.
    Plugin {
        /// `sha256:<hex>` of the component.
        digest: String,
        /// Id of the key that signed it, if signed.
        key: Option<String>,
    },
}

/// One loaded skill, ready to instantiate.
pub struct Skill {
    manifest: Manifest,
    definition: ToolDefinition,
    parameters: Parameters,
    component: PathBuf,
    origin: Origin,
    pre: SkillPre<CallState>,
    granted: Granted,
    missing_secrets: Vec<String>,
    unbound_secrets: Vec<String>,
}

impl Skill {
    /// The validated manifest, with the operator's policy applied to its limits.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The function definition from the skill's `describe`.
    pub fn definition(&self) -> &ToolDefinition {
        &self.definition
    }

    /// The component file it was loaded from (for a plugin in blob storage, its blob name).
    pub fn component_path(&self) -> &Path {
        &self.component
    }

    /// Whether it is built in or a plugin.
    pub fn origin(&self) -> &Origin {
        &self.origin
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

/// A skill's two files, read: what [`Registry::prepare`] checks and compiles.
pub struct SkillFiles {
    /// The manifest's path (or blob name), for messages.
    pub manifest_path: PathBuf,
    /// The manifest's text.
    pub manifest: String,
    /// The component's path (or blob name), for messages.
    pub component_path: PathBuf,
    /// The component's bytes.
    pub component: Vec<u8>,
}

impl SkillFiles {
    /// Reads `<name>.toml` at `manifest_path` and the `<name>.wasm` beside it.
    pub fn read(manifest_path: &Path) -> Result<Self, LoadError> {
        let manifest = std::fs::read_to_string(manifest_path).map_err(|e| LoadError::Manifest {
            path: manifest_path.to_owned(),
            reason: format!("cannot read the manifest: {e}"),
        })?;
        let component_path = manifest_path.with_extension("wasm");
        let component = std::fs::read(&component_path).map_err(|source| LoadError::Read {
            path: component_path.clone(),
            source,
        })?;
        Ok(Self {
            manifest_path: manifest_path.to_owned(),
            manifest,
            component_path,
            component,
        })
    }
}

/// What is live: built-in skills and plugins, and why others are not.
#[derive(Default)]
struct Live {
    builtin: BTreeMap<String, Arc<Skill>>,
    errors: Vec<Arc<LoadError>>,
    disabled: Vec<String>,
    plugins: BTreeMap<String, Arc<Skill>>,
    refused: BTreeMap<String, Arc<LoadError>>,
    /// Switched off at run time (`POST /admin/skills/{name}/disable`): loaded, not offered.
    switched_off: BTreeSet<String>,
}

/// How far loading the built-in skills has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Skills loaded (or refused) so far.
    pub done: usize,
    /// Skills found in the directories.
    pub total: usize,
    /// Whether every directory has been loaded.
    pub finished: bool,
}

/// One built-in skill loaded, as [`Registry::load_dirs`] reports it.
pub struct Step<'a> {
    /// Its manifest.
    pub path: &'a Path,
    /// This is skill `index` (from 1) of `total`.
    pub index: usize,
    /// Skills found in the directories.
    pub total: usize,
    /// Bytes of its component.
    pub size: u64,
    /// How long checking, compiling and describing it took.
    pub took: std::time::Duration,
}

/// The skills: built-in ones loaded at start, and plugins that come and go while it runs.
pub struct Registry {
    runtime: Arc<Runtime>,
    grants: Grants,
    secret_values: Vec<String>,
    live: RwLock<Live>,
    progress: std::sync::Mutex<Progress>,
}

impl Registry {
    /// A registry with no skill yet, under the operator's `grants`: [`Registry::load_dirs`]
    /// adds the built-in ones (meanwhile [`Registry::progress`] says how far it got).
    pub async fn new(runtime: Arc<Runtime>, grants: &Grants) -> Self {
        Self {
            runtime,
            grants: grants.clone(),
            secret_values: bound_secret_values(grants).await,
            live: RwLock::default(),
            progress: std::sync::Mutex::new(Progress {
                done: 0,
                total: 0,
                finished: false,
            }),
        }
    }

    /// [`Registry::new`], then [`Registry::load_dirs`].
    pub async fn load(runtime: Arc<Runtime>, dirs: &[PathBuf], grants: &Grants) -> Self {
        let registry = Self::new(runtime, grants).await;
        registry.load_dirs(dirs, |_| {}).await;
        registry
    }

    fn live(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().expect("the skill table is never poisoned")
    }

    fn live_mut(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live
            .write()
            .expect("the skill table is never poisoned")
    }

    fn set_progress(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().expect("progress is never poisoned"));
    }

    /// Loads every `<name>.toml` + `<name>.wasm` pair in `dirs`, in order, each live as soon as
    /// it is loaded, calling `report` after each. A skill that fails to load is recorded in
    /// [`Registry::errors`] and does not keep the others from loading.
    pub async fn load_dirs(&self, dirs: &[PathBuf], mut report: impl FnMut(Step<'_>)) {
        let mut manifests = Vec::new();
        for dir in dirs {
            match find_skill_files(dir) {
                Ok(found) => {
                    manifests.extend(found.manifests);
                    self.live_mut()
                        .errors
                        .extend(found.errors.into_iter().map(Arc::new));
                }
                Err(error) => self.live_mut().errors.push(Arc::new(error)),
            }
        }
        let total = manifests.len();
        self.set_progress(|p| p.total = total);
        for (i, manifest) in manifests.iter().enumerate() {
            let started = std::time::Instant::now();
            let size = std::fs::metadata(manifest.with_extension("wasm")).map_or(0, |m| m.len());
            self.load_builtin(manifest).await;
            self.set_progress(|p| p.done = i + 1);
            report(Step {
                path: manifest,
                index: i + 1,
                total,
                size,
                took: started.elapsed(),
            });
        }
        self.set_progress(|p| p.finished = true);
    }

    /// How far loading the built-in skills has got.
    pub fn progress(&self) -> Progress {
        *self.progress.lock().expect("progress is never poisoned")
    }

    async fn load_builtin(&self, manifest_path: &Path) {
        let loaded = match SkillFiles::read(manifest_path) {
            Ok(files) => self.prepare(files, Origin::Builtin).await,
            Err(error) => Err(error),
        };
        let mut live = self.live_mut();
        match loaded {
            Ok(skill) => {
                if let Some(first) = live.builtin.get(&skill.manifest.name) {
                    let error = LoadError::Duplicate {
                        path: manifest_path.to_owned(),
                        name: skill.manifest.name.clone(),
                        other: first.component.with_extension("toml"),
                    };
                    live.errors.push(Arc::new(error));
                } else {
                    tracing::debug!(skill = %skill.manifest.name, "skill loaded");
                    live.builtin
                        .insert(skill.manifest.name.clone(), Arc::new(skill));
                }
            }
            Err(LoadError::Disabled { name, .. }) => {
                tracing::info!(skill = %name, "skill disabled by the operator");
                live.disabled.push(name);
            }
            Err(error) => {
                tracing::warn!(error = %error, "skill not loaded");
                live.errors.push(Arc::new(error));
            }
        }
    }

    /// Checks and compiles a skill (off the async executor) and runs its `describe`, under the
    /// operator's grants and policy. Nothing is swapped in: see [`Registry::install`].
    pub async fn prepare(&self, files: SkillFiles, origin: Origin) -> Result<Skill, LoadError> {
        load_skill(&self.runtime, files, &self.grants, origin).await
    }

    /// Whether a built-in skill is called `name`.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.live().builtin.contains_key(name)
    }

    /// Makes `skill` the live plugin of its name (over a built-in one of the same name, which
    /// the caller has allowed) and forgets an earlier refusal. Calls already running finish on
    /// the version they started with.
    pub fn install(&self, skill: Skill) {
        let mut live = self.live_mut();
        let name = skill.manifest.name.clone();
        live.refused.remove(&name);
        live.plugins.insert(name, Arc::new(skill));
    }

    /// Records why plugin `name` was refused. A working version of it stays live.
    pub fn refuse(&self, name: &str, error: LoadError) {
        self.live_mut()
            .refused
            .insert(name.to_owned(), Arc::new(error));
    }

    /// Removes plugin `name` and any refusal of it; a built-in skill of that name comes back.
    /// Returns whether a live plugin was removed.
    pub fn remove(&self, name: &str) -> bool {
        let mut live = self.live_mut();
        live.refused.remove(name);
        live.plugins.remove(name).is_some()
    }

    /// The skill called `name`: a plugin, else a built-in skill; none while it is switched off.
    pub fn get(&self, name: &str) -> Option<Arc<Skill>> {
        let live = self.live();
        if live.switched_off.contains(name) {
            return None;
        }
        live.plugins
            .get(name)
            .or_else(|| live.builtin.get(name))
            .cloned()
    }

    /// The live skills, by name (those switched off left out).
    pub fn skills(&self) -> Vec<Arc<Skill>> {
        let live = self.live();
        let mut all = live.builtin.clone();
        all.extend(live.plugins.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.retain(|name, _| !live.switched_off.contains(name));
        all.into_values().collect()
    }

    /// Whether a skill called `name` is loaded (switched off or not).
    pub fn is_loaded(&self, name: &str) -> bool {
        let live = self.live();
        live.plugins.contains_key(name) || live.builtin.contains_key(name)
    }

    /// Makes `names` the skills switched off at run time (the store holds them for every
    /// replica); returns the names that changed state.
    pub fn switch_off(&self, names: &BTreeSet<String>) -> Vec<String> {
        let mut live = self.live_mut();
        let changed = live
            .switched_off
            .symmetric_difference(names)
            .cloned()
            .collect();
        live.switched_off.clone_from(names);
        changed
    }

    /// The skills switched off at run time.
    pub fn switched_off(&self) -> Vec<String> {
        self.live().switched_off.iter().cloned().collect()
    }

    /// Every secret value the operator bound to a skill, for the redactor of replies (tokens
    /// fetched later are JWTs, which the redactor recognises by shape).
    pub fn secret_values(&self) -> Vec<String> {
        self.secret_values.clone()
    }

    /// Why the skills that are not live failed to load: built-in ones, then refused plugins.
    pub fn errors(&self) -> Vec<Arc<LoadError>> {
        let live = self.live();
        let mut errors = live.errors.clone();
        errors.extend(live.refused.values().cloned());
        errors
    }

    /// Skills the operator disabled (`[skills.<name>] enabled = false`).
    pub fn disabled(&self) -> Vec<String> {
        self.live().disabled.clone()
    }

    /// The runtime the skills run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Runs skill `name` with JSON `arguments` for `context`, on a fresh instance, once the
    /// arguments match its parameter schema.
    pub async fn invoke(
        &self,
        name: &str,
        arguments: &str,
        context: &CallContext,
    ) -> Result<String, InvokeError> {
        let skill = self
            .get(name)
            .ok_or_else(|| InvokeError::UnknownSkill(name.to_owned()))?;
        skill
            .parameters
            .check(arguments)
            .map_err(InvokeError::InvalidInput)?;
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

/// The values of every secret the operator bound to a skill that a secret store has now.
async fn bound_secret_values(grants: &Grants) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> =
        grants.http.values().flat_map(|g| &g.secrets).collect();
    let mut values = Vec::new();
    for name in names {
        if let Some(value) = grants.secrets.get(name).await {
            values.push(value.expose().to_owned());
        }
    }
    values
}

/// What a directory holds: manifests to load, and files that cannot be a skill.
struct FoundFiles {
    manifests: Vec<PathBuf>,
    errors: Vec<LoadError>,
}

fn find_skill_files(dir: &Path) -> Result<FoundFiles, LoadError> {
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
    let mut found = FoundFiles {
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
    runtime: &Arc<Runtime>,
    files: SkillFiles,
    grants: &Grants,
    origin: Origin,
) -> Result<Skill, LoadError> {
    let SkillFiles {
        manifest_path,
        manifest: text,
        component_path: component,
        component: bytes,
    } = files;
    let stem = manifest_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let mut manifest = Manifest::parse(&text, stem).map_err(|e| LoadError::Manifest {
        path: manifest_path.clone(),
        reason: e.to_string(),
    })?;
    let grant = grants.http.get(&manifest.name);
    if let Some(grant) = grant {
        grant.policy.apply(&mut manifest).map_err(|reason| {
            if grant.policy.enabled {
                LoadError::Grant {
                    path: manifest_path.clone(),
                    reason,
                }
            } else {
                LoadError::Disabled {
                    name: manifest.name.clone(),
                    reason,
                }
            }
        })?;
    }
    let HttpSecrets {
        policy: http,
        missing: missing_secrets,
        unbound: unbound_secrets,
    } = http_policy(&manifest, grants)
        .await
        .map_err(|reason| LoadError::Grant {
            path: manifest_path.clone(),
            reason,
        })?;
    // Compiling takes seconds for a large component: keep it off the async executor.
    let compiling = runtime.clone();
    let label = component.clone();
    let pre = tokio::task::spawn_blocking(move || compiling.prepare(&label, &bytes))
        .await
        .map_err(|e| LoadError::Compile {
            path: component.clone(),
            reason: format!("the compiler stopped: {e}"),
        })??;
    let describe_error = |reason: String| LoadError::Describe {
        path: component.clone(),
        reason,
    };
    // describe() may read the operator's settings, as invoke() does.
    let settings = Arc::new(grant.map(|g| g.settings.clone()).unwrap_or_default());
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
    let (offered, parameters) =
        schema::check_describe(&descriptor.description, &descriptor.parameters)
            .map_err(describe_error)?;
    Ok(Skill {
        definition: ToolDefinition {
            name: descriptor.name,
            description: descriptor.description,
            parameters: offered,
        },
        parameters,
        manifest,
        component,
        origin,
        pre,
        granted: Granted { http, settings },
        missing_secrets,
        unbound_secrets,
    })
}

/// The skill's effective HTTP policy, and its secrets: the names not set anywhere, and the names its manifest claims that the operator did
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
    let mut missing = Vec::new();
    if policy.is_some() {
        for rule in &bound {
            if grants.secrets.get(&rule.name).await.is_none() {
                tracing::warn!(skill = %manifest.name, secret = %rule.name, env = %crate::secrets::env_name(&rule.name), "secret not set; requests go without it");
                missing.push(rule.name.clone());
            }
        }
    }
    Ok(HttpSecrets {
        policy: policy.map(Arc::new),
        missing,
        unbound,
    })
}

/// A skill's HTTP policy and the state of the secrets its manifest names.
#[derive(Default)]
struct HttpSecrets {
    policy: Option<Arc<HttpPolicy>>,
    missing: Vec<String>,
    unbound: Vec<String>,
}
