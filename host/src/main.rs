//! The `molten` command line.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use molten::azure::KeyVaultSecrets;
use molten::config::{AzureConfig, Config};
use molten::service::{Role, Service};
use molten::skills::{CallContext, Registry, Runtime, Skill};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;

/// A self-hostable AI chat agent whose tools are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "molten", version)]
struct Cli {
    /// Config file (TOML; see molten.example.toml) [default: <data dir>/molten.toml if present]
    #[arg(long, env = "MOLTEN_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// Directory for sandboxes and caches [default: $XDG_DATA_HOME/molten or ~/.local/share/molten]
    #[arg(long, env = "MOLTEN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Directory of skills (`<name>.toml` + `<name>.wasm`); repeat, or separate with `:` in the
    /// environment variable [default: <data dir>/skills]
    #[arg(
        long = "skills-dir",
        env = "MOLTEN_SKILLS_DIR",
        value_delimiter = ':',
        global = true
    )]
    skills_dirs: Vec<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the chat agent: webhook routes and the queue worker.
    Serve {
        /// Run only the routes, only the worker, or both.
        #[arg(long, value_enum, default_value = "all")]
        role: Role,
        /// Address to listen on [default: server.listen from the config, 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Talk to the agent in the terminal, through the same queue and worker as the platforms.
    Chat,
    /// List and run skills.
    #[command(subcommand)]
    Skill(SkillCommand),
}

#[derive(Subcommand)]
enum SkillCommand {
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
        /// Print the skill's output and errors byte for byte. By default control characters
        /// are shown escaped when printing to a terminal, so that a skill cannot clear the
        /// screen, retitle the window or write the clipboard.
        #[arg(long)]
        raw: bool,
    },
}

fn main() -> ExitCode {
    let _crash_points = molten::crash::setup();
    raise_open_files_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lifts the soft limit on open files to the hard one. Skills hold host descriptors (each call
/// at most `skills::descriptors::MAX_OPEN`, 32 calls at once), and the usual soft limit of 1,024
/// would let them crowd out the sockets of other users' webhooks.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            ..limit
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            eprintln!("warning: cannot raise the open-files limit: {e}");
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = |var: &str| std::env::var(var).ok();
    let azure = Config::load_azure(cli.config.as_deref(), cli.data_dir.as_deref(), env)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        // Settings the environment leaves unset may live in Key Vault: they are read from
        // there before the config is checked.
        let from_vault = match vault(&azure)? {
            Some(vault) => vault.config_values(env).await.map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        if !from_vault.is_empty() {
            let names: Vec<&String> = from_vault.keys().collect();
            tracing::info!(?names, "settings from Key Vault");
        }
        let config = Config::load(
            cli.config.as_deref(),
            cli.data_dir,
            cli.skills_dirs,
            |var| env(var).or_else(|| from_vault.get(var).cloned()),
        )?;
        match cli.command {
            Command::Skill(command) => skill_command(&config, command).await,
            Command::Serve { role, listen } => serve(config, role, listen).await,
            Command::Chat => chat(config).await,
        }
    })
}

async fn serve(
    mut config: Config,
    role: Role,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    if let Some(addr) = listen {
        config.server.listen = addr;
    }
    let service = Service::build(config, None).await?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    service.serve(role, None, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn chat(mut config: Config) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    // Its own queue file, so a `molten serve` on the same data directory never takes a
    // terminal message it could not answer.
    config.queue_path = config.data_dir.join("chat-queue.db");
    config.worker.concurrency = 1;
    let (replies, mut reply) = tokio::sync::mpsc::unbounded_channel();
    let service = Service::build(config, Some(replies)).await?;
    let (stop, shutdown) = watch::channel(false);
    let worker = tokio::spawn(service.worker.clone().run(shutdown));
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        if service.config.llm.is_none() {
            eprintln!("note: no language model is configured; see molten.example.toml");
        }
        eprintln!("molten chat: type a message and press Enter; Ctrl-D ends.");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut seq = 0;
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        if line.trim().is_empty() {
            continue;
        }
        seq += 1;
        service.enqueue_terminal(&line, seq).await?;
        let answer = reply
            .recv()
            .await
            .context("the worker stopped before answering")?;
        println!("{answer}");
    }
    let _ = stop.send(true);
    let _ = worker.await;
    Ok(ExitCode::SUCCESS)
}

/// The configured Key Vault, reached with the replica's Entra identity.
fn vault(azure: &AzureConfig) -> anyhow::Result<Option<Arc<KeyVaultSecrets>>> {
    if azure.key_vault_url.is_none() {
        return Ok(None);
    }
    let http = molten::service::http_client()?;
    let entra = molten::service::azure_identity(azure, &http)?;
    Ok(molten::service::key_vault(azure, &http, Some(&entra))?)
}

async fn skill_command(config: &Config, command: SkillCommand) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(config.runtime())?;
    let vault = vault(&config.azure)?.map(|v| v as Arc<dyn molten::secrets::SecretStore>);
    let registry = Registry::load(
        Arc::new(runtime),
        &config.skills_dirs,
        &config.grants(vault),
    )
    .await;
    match command {
        SkillCommand::List => list(&registry),
        SkillCommand::Run {
            name,
            arguments,
            user,
            session,
            raw,
        } => {
            if registry.get(&name).is_none() {
                report_load_errors(&registry);
            }
            let arguments = if arguments == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("cannot read the arguments from standard input")?
            } else {
                arguments
            };
            let context = CallContext::new(user, session);
            match registry.invoke(&name, &arguments, &context).await {
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
        writeln!(out, "{}", shown(describe_skill(skill), raw))?;
    }
    if registry.skills().next().is_none() {
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
        "{name}\n  {description}\n  limits: fuel {fuel}, timeout {timeout} ms, memory {memory} MiB, output {output} KiB\n  capabilities: filesystem {fs}{http}\n  component: {path}",
        name = m.name,
        description = m.description,
        fuel = l.fuel,
        timeout = l.timeout.as_millis(),
        memory = l.memory_bytes >> 20,
        output = l.output_bytes >> 10,
        fs = m.capabilities.filesystem,
        path = skill.component_path().display(),
    )
}

fn report_load_errors(registry: &Registry) {
    for error in registry.errors() {
        eprintln!("error: skill not loaded: {error}");
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
