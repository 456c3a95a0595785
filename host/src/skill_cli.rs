//! `molten skill ...`: list and run skills, and sign, install and remove plugins.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use molten::authoring;
use molten::config::Config;
use molten::plugins::{signature, PluginFiles, PluginStore, Verified};
use molten::skills::{CallContext, Origin, Registry, Runtime, Skill};

#[derive(Subcommand)]
pub(crate) enum SkillCommand {
    /// List the loaded skills with their limits and capabilities, and any that failed to load.
    List,
    /// Run one skill once and print its output.
    Run {
        /// The skill's name, as `molten skill list` shows it.
        name: String,
        /// The arguments: a JSON object matching the skill's parameters, or `-` to read it
        /// from standard input (for arguments too long for a command line).
        arguments: String,
        /// The user whose sandbox the skill works in.
        #[arg(long, default_value = "cli")]
        user: String,
        /// The conversation the call belongs to.
        #[arg(long, default_value = "cli")]
        session: String,
        /// Run the skill found in this directory (e.g. a project's dist/) instead of the
        /// installed ones.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the skill's output and errors byte for byte. By default control characters
        /// are shown escaped when printing to a terminal, so that a skill cannot clear the
        /// screen, retitle the window or write the clipboard.
        #[arg(long)]
        raw: bool,
    },
    /// Start a skill project in DIR (default ./NAME) that builds and passes its tests as it is.
    New {
        /// The skill's name: the function the model calls ([a-z][a-z0-9_]*).
        name: String,
        /// Where to put it [default: ./NAME]
        dir: Option<PathBuf>,
        /// The language of the project.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
    },
    /// Compile the skill project in DIR (default .) to dist/NAME.wasm and check it as the host
    /// will: world, describe() against the manifest, limits, capabilities.
    Build {
        /// The project [default: .]
        dir: Option<PathBuf>,
    },
    /// Build the skill project in DIR (default .), then run its tests.toml through the runtime.
    Test {
        /// The project [default: .]
        dir: Option<PathBuf>,
    },
    /// Make an Ed25519 key pair for signing plugins: KEY (private, mode 0600) and KEY.pub.
    Keygen(KeygenArgs),
    /// Sign NAME.wasm and the NAME.toml beside it, writing NAME.sig.
    Sign(SignArgs),
    /// Check NAME.sig against NAME.wasm, NAME.toml and a public key.
    Verify(VerifyArgs),
    /// Copy a built skill (NAME.wasm, NAME.toml and NAME.sig if there is one) into the plugin
    /// store, where running molten instances pick it up.
    Install {
        /// The component; its manifest (and signature) must be beside it.
        wasm: PathBuf,
        /// The store: the `[plugins] dir`, or the `[plugins] container` [default: the
        /// container if one is configured, else the directory]
        #[arg(long, value_enum)]
        store: Option<StoreKind>,
    },
    /// Remove plugin NAME from the plugin store.
    Remove {
        /// The plugin's name.
        name: String,
        /// The store [default: as for install]
        #[arg(long, value_enum)]
        store: Option<StoreKind>,
    },
}

/// `molten skill keygen`.
#[derive(clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where the private key goes; the public key goes to the same path plus `.pub`.
    #[arg(long)]
    out: PathBuf,
}

/// `molten skill sign`.
#[derive(clap::Args)]
pub(crate) struct SignArgs {
    /// The component; its manifest must be beside it.
    wasm: PathBuf,
    /// The private key made by `molten skill keygen`.
    #[arg(long)]
    key: PathBuf,
}

/// `molten skill verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The component; its manifest and signature must be beside it.
    wasm: PathBuf,
    /// The public key (KEY.pub).
    #[arg(long = "pub")]
    public: PathBuf,
}

/// A skill project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust, with the molten-skill SDK.
    Rust,
    /// Python (CPython in the component, by componentize-py).
    Python,
    /// JavaScript (SpiderMonkey in the component, by componentize-js).
    Js,
}

/// Which plugin store a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    /// `[plugins] dir`.
    Dir,
    /// `[plugins] container`.
    Azure,
}

impl SkillCommand {
    /// Key generation, signing and verifying run where plugins are built, with no config.
    pub(crate) fn needs_config(&self) -> bool {
        !matches!(
            self,
            Self::Keygen(_) | Self::Sign(_) | Self::Verify(_) | Self::New { .. }
        )
    }
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let public = signature::keygen(&args.out)?;
    println!("{}", signature::public_key_text(&public));
    eprintln!(
        "private key: {} (keep it secret); public key: {}\nadd the public key to [plugins] trusted_keys of the molten config",
        args.out.display(),
        signature::public_path(&args.out).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let key = signature::read_signing_key(&args.key)?;
    let (name, files) = read_plugin(&args.wasm, false)?;
    let sig = signature::sign(
        &key,
        files.component.as_deref().unwrap_or_default(),
        files.manifest.as_deref().unwrap_or_default(),
    );
    let path = args.wasm.with_extension("sig");
    std::fs::write(&path, sig).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "signed {name} with key {}: {}",
        signature::key_id(&key.verifying_key()),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = signature::read_public_key(&args.public)?;
    let (name, files) = read_plugin(&args.wasm, true)?;
    let trust = signature::Trust {
        keys: vec![key],
        require_signatures: true,
        ..Default::default()
    };
    Ok(match check(&trust, &name, &files) {
        Ok(verified) => {
            println!(
                "{name}: good signature by key {} ({})",
                signature::key_id(&key),
                verified.digest
            );
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::FAILURE
        }
    })
}

fn check(trust: &signature::Trust, name: &str, files: &PluginFiles) -> Result<Verified, String> {
    let sig = files.signature.as_deref().map(String::from_utf8_lossy);
    trust.check(
        name,
        files.component.as_deref().unwrap_or_default(),
        files.manifest.as_deref().unwrap_or_default(),
        sig.as_deref(),
    )
}

/// Reads `NAME.wasm`, the `NAME.toml` beside it and, if there is one (or `need_sig`), the
/// `NAME.sig`; checks that the manifest names the skill `NAME`.
fn read_plugin(wasm: &Path, need_sig: bool) -> anyhow::Result<(String, PluginFiles)> {
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| wasm.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| format!("{} is not a NAME.wasm file", wasm.display()))?
        .to_owned();
    let read = |ext: &str| {
        let path = wasm.with_extension(ext);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let component = read("wasm")?;
    let manifest = read("toml")?;
    molten::skills::Manifest::parse(&String::from_utf8_lossy(&manifest), &name)
        .with_context(|| format!("{}", wasm.with_extension("toml").display()))?;
    let sig_path = wasm.with_extension("sig");
    let signature = if need_sig || sig_path.exists() {
        Some(read("sig")?)
    } else {
        None
    };
    Ok((
        name,
        PluginFiles {
            component: Some(component),
            manifest: Some(manifest),
            signature,
        },
    ))
}

/// The Azure storage account of the config, reached as `molten serve` reaches it.
fn storage_account(config: &Config) -> anyhow::Result<Option<molten::azure::StorageAccount>> {
    let http = molten::service::http_client()?;
    let entra = molten::service::entra_credential(config, &http)?;
    Ok(molten::service::storage_account(
        config,
        &http,
        entra.as_ref(),
    )?)
}

/// The plugin store `kind` (default: as `molten serve` uses it).
async fn open_store(
    config: &Config,
    kind: Option<StoreKind>,
) -> anyhow::Result<Arc<dyn PluginStore>> {
    let account = storage_account(config)?;
    let mut config = config.clone();
    match kind {
        Some(StoreKind::Dir) => config.plugins.container = None,
        Some(StoreKind::Azure) if config.plugins.container.is_none() || account.is_none() => {
            anyhow::bail!(
                "--store azure needs [plugins] container and [azure] storage in the config"
            )
        }
        _ => {}
    }
    Ok(molten::service::plugin_store(&config, account.as_ref()).await?)
}

/// Runs a `molten skill` command.
pub(crate) async fn run(
    config: Option<&Config>,
    command: SkillCommand,
) -> anyhow::Result<ExitCode> {
    let config = || config.context("this command needs the molten configuration");
    match command {
        SkillCommand::New { name, dir, lang } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let lang = match lang {
                Lang::Rust => authoring::scaffold::Lang::Rust,
                Lang::Python => authoring::scaffold::Lang::Python,
                Lang::Js => authoring::scaffold::Lang::Js,
            };
            authoring::scaffold::new(&name, lang, &dir)?;
            println!("created {name} in {}", dir.display());
            eprintln!(
                "next: cd {} && molten skill test   (the first build installs the toolchain if needed: a minute or two)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        SkillCommand::Build { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let (built, registry) = build_and_load(config()?, &dir).await?;
            let skill = registry.get(&built.name).expect("loaded");
            let size = std::fs::metadata(&built.component).map_or(0, |m| m.len());
            println!("{}", describe_skill(&skill));
            println!("  size: {} KiB", size >> 10);
            Ok(ExitCode::SUCCESS)
        }
        SkillCommand::Test { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let cases = authoring::cases::read(&dir.join("tests.toml"))?;
            let (built, registry) = build_and_load(config()?, &dir).await?;
            let outcomes = authoring::cases::run(&registry, &built.name, &cases).await?;
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            for outcome in &outcomes {
                if outcome.passed {
                    println!("ok     case {} {}", outcome.index, outcome.arguments);
                } else {
                    println!(
                        "FAILED case {} {}: {}",
                        outcome.index,
                        outcome.arguments,
                        shown(outcome.detail.clone(), !std::io::stdout().is_terminal())
                    );
                }
            }
            println!(
                "{}: {} passed, {failed} failed",
                built.name,
                outcomes.len() - failed
            );
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SkillCommand::Keygen(args) => keygen(&args),
        SkillCommand::Sign(args) => sign(&args),
        SkillCommand::Verify(args) => verify(&args),
        SkillCommand::Install { wasm, store } => install(config()?, &wasm, store).await,
        SkillCommand::Remove { name, store } => {
            let store = open_store(config()?, store).await?;
            Ok(if store.delete(&name).await? {
                println!("removed {name} from {}", store.location());
                ExitCode::SUCCESS
            } else {
                eprintln!("error: no plugin named {name} in {}", store.location());
                ExitCode::FAILURE
            })
        }
        SkillCommand::List => list(&*load(config()?).await?),
        SkillCommand::Run {
            name,
            arguments,
            user,
            session,
            raw,
            dir,
        } => {
            let registry = match dir {
                Some(dir) => Arc::new(load_dir(config()?, &dir).await?),
                None => load(config()?).await?,
            };
            run_skill(
                &registry,
                &name,
                arguments,
                CallContext::new(user, session),
                raw,
            )
            .await
        }
    }
}

async fn install(
    config: &Config,
    wasm: &Path,
    store: Option<StoreKind>,
) -> anyhow::Result<ExitCode> {
    let (name, files) = read_plugin(wasm, false)?;
    let policy = &config.plugins.policy;
    let verified = check(&policy.trust, &name, &files).map_err(anyhow::Error::msg)?;
    let store = open_store(config, store).await?;
    store.put(&name, &files).await?;
    println!(
        "installed {name} ({}, {}) into {}; running instances load it within {} s",
        verified.digest,
        verified
            .key
            .map_or("unsigned".to_owned(), |k| format!("signed by key {k}")),
        store.location(),
        policy.poll.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}

/// The skills as `molten serve` would load them: built-in ones and the plugin store's.
async fn load(config: &Config) -> anyhow::Result<Arc<Registry>> {
    let vault = crate::vault(&config.azure)?.map(|v| v as Arc<dyn molten::secrets::SecretStore>);
    let account = storage_account(config)?;
    Ok(molten::service::load_skills(config, account.as_ref(), vault).await?)
}

/// Only the skills in `dir`, under the config's grants and policy.
async fn load_dir(config: &Config, dir: &Path) -> anyhow::Result<Registry> {
    let runtime = Arc::new(Runtime::new(config.runtime())?);
    Ok(Registry::load(runtime, &[dir.to_owned()], &config.grants(None)).await)
}

/// Builds the project in `dir` and loads it as the host would; an error if it does not load.
async fn build_and_load(
    config: &Config,
    dir: &Path,
) -> anyhow::Result<(authoring::build::Built, Registry)> {
    let built = authoring::build::build(dir)?;
    let dist = built.component.parent().unwrap_or(dir).to_owned();
    let registry = load_dir(config, &dist).await?;
    if registry.get(&built.name).is_none() {
        report_load_errors(&registry);
        anyhow::bail!(
            "{} compiled but would not load in molten; fix what is said above",
            built.name
        );
    }
    Ok((built, registry))
}

/// Runs skill `name` once and prints its output (or error).
async fn run_skill(
    registry: &Registry,
    name: &str,
    arguments: String,
    context: CallContext,
    raw: bool,
) -> anyhow::Result<ExitCode> {
    if registry.get(name).is_none() {
        report_load_errors(registry);
    }
    let arguments = if arguments == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the arguments from standard input")?
    } else {
        arguments
    };
    match registry.invoke(name, &arguments, &context).await {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            let output = shown(output, raw || !stdout.is_terminal());
            stdout.write_all(output.as_bytes())?;
            if !output.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let raw = raw || !std::io::stderr().is_terminal();
            eprintln!("error: {}", shown(error.to_string(), raw));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A skill's text for a terminal: control characters other than newline and tab shown as
/// `\u{..}` escapes, so no escape sequence reaches the terminal; as it is when `raw`.
fn shown(text: String, raw: bool) -> String {
    if raw || !text.chars().any(is_terminal_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if is_terminal_control(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A character a terminal may act on (C0 and C1 controls), newline and tab aside.
fn is_terminal_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn list(registry: &Registry) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    // Descriptions come from the skills themselves: no escape sequences on a terminal.
    let raw = !out.is_terminal();
    for skill in registry.skills() {
        writeln!(out, "{}", shown(describe_skill(&skill), raw))?;
    }
    if registry.skills().is_empty() {
        writeln!(out, "no skills loaded")?;
    }
    report_load_errors(registry);
    Ok(if registry.errors().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn describe_skill(skill: &Skill) -> String {
    let m = skill.manifest();
    let l = m.limits;
    let mut http = String::new();
    if !m.capabilities.http.is_empty() {
        let granted: Vec<String> = skill
            .http()
            .map(|p| p.rules().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let asked: Vec<String> = m
            .capabilities
            .http
            .iter()
            .map(ToString::to_string)
            .collect();
        http = format!(
            "\n  http: asks {}; granted {}",
            asked.join(", "),
            if granted.is_empty() {
                format!(
                    "nothing (add [skills.{}] http = [...] to the config)",
                    m.name
                )
            } else {
                granted.join(", ")
            }
        );
        for secret in &m.capabilities.secrets {
            let state = if skill.unbound_secrets().contains(&secret.name) {
                format!(
                    "NOT BOUND by the operator, never sent (add secrets = [\"{}\"] to [skills.{}])",
                    secret.name, m.name
                )
            } else if skill.missing_secrets().contains(&secret.name) {
                format!("NOT SET (set {})", molten::secrets::env_name(&secret.name))
            } else if skill.http().is_some() {
                "set".to_owned()
            } else {
                "unused without a grant".to_owned()
            };
            http.push_str(&format!(
                "\n  secret {} -> {} header of {}: {state}",
                secret.name, secret.header, secret.host
            ));
        }
    }
    format!(
        "{name}\n  {description}\n  limits: fuel {fuel}, timeout {timeout} ms, memory {memory} MiB, output {output} KiB\n  capabilities: filesystem {fs}{http}\n  component: {path}{origin}",
        name = m.name,
        description = m.description,
        fuel = l.fuel,
        timeout = l.timeout.as_millis(),
        memory = l.memory_bytes >> 20,
        output = l.output_bytes >> 10,
        fs = m.capabilities.filesystem,
        path = skill.component_path().display(),
        origin = match skill.origin() {
            Origin::Builtin => String::new(),
            Origin::Plugin { digest, key } => format!(
                "\n  plugin: {digest}, {}",
                key.as_ref()
                    .map_or("unsigned".to_owned(), |k| format!("signed by key {k}"))
            ),
        },
    )
}

fn report_load_errors(registry: &Registry) {
    for error in registry.errors() {
        eprintln!("error: skill not loaded: {error}");
    }
    for name in registry.disabled() {
        eprintln!("note: {name} is disabled by [skills.{name}] enabled = false");
    }
}

#[cfg(test)]
mod tests {
    use super::{is_terminal_control, shown};

    #[test]
    fn terminal_control_sequences_from_a_skill_are_shown_escaped() {
        // Clear screen, window title, clipboard write (OSC 52), and C1's CSI.
        let hostile = "a\u{1b}[2J\u{1b}]0;owned\u{7}\u{1b}]52;c;aGk=\u{7}\u{9b}31m\tb\n".to_owned();
        let safe = shown(hostile.clone(), false);
        assert!(!safe.chars().any(is_terminal_control));
        assert_eq!(
            safe,
            "a\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{1b}]52;c;aGk=\\u{7}\\u{9b}31m\tb\n"
        );
        assert_eq!(
            shown(hostile.clone(), true),
            hostile,
            "--raw keeps the bytes"
        );
        assert_eq!(shown("plain\n".into(), false), "plain\n");
    }
}
