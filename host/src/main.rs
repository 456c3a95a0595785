//! The `molten` command line.

mod admin_cli;
mod skill_cli;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use molten::azure::KeyVaultSecrets;
use molten::config::{AzureConfig, Config};
use molten::service::{Role, Service, Startup};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;

/// A self-hostable AI chat agent whose tools are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "molten", version)]
struct Cli {
    /// Log lines as text (colour only on a terminal) or as one JSON object each.
    #[arg(
        long,
        env = "MOLTEN_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
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
    Skill(skill_cli::SkillCommand),
    /// Ask a running molten for its status, usage, skills or poisoned messages.
    #[command(subcommand)]
    Admin(admin_cli::AdminCommand),
    /// Exit 0 if a molten answers on this machine (the container image's health check).
    Health {
        /// Its address [default: MOLTEN_LISTEN, else 127.0.0.1:8080; 0.0.0.0 means this machine]
        #[arg(long, env = "MOLTEN_LISTEN")]
        listen: Option<String>,
        /// Ask whether it is ready (GET /ready) instead of alive (GET /healthz).
        #[arg(long)]
        ready: bool,
    },
}

fn main() -> ExitCode {
    let _crash_points = molten::crash::setup();
    raise_open_files_limit();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat, default: &str, traces: Option<&SdkTracerProvider>) {
    molten::telemetry::install(format == LogFormat::Json, default, traces);
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
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A server says what goes wrong (and when plugins come and go) by default; a one-shot
    // command only its errors.
    let default_filter = match cli.command {
        Command::Serve { .. } | Command::Chat => "warn,molten::plugins=info",
        Command::Skill(_) | Command::Admin(_) | Command::Health { .. } => "error",
    };
    // Signing needs no configuration: it runs where plugins are built.
    let cli = match cli.command {
        Command::Skill(command) if !command.needs_config() => {
            init_logs(cli.log_format, default_filter, None);
            return tokio.block_on(skill_cli::run(None, command));
        }
        // Run every few seconds by a container runtime: no config, no Key Vault.
        Command::Health { listen, ready } => return tokio.block_on(health(listen, ready)),
        command => Cli { command, ..cli },
    };
    let env = |var: &str| std::env::var(var).ok();
    let azure = Config::load_azure(cli.config.as_deref(), cli.data_dir.as_deref(), env)?;
    tokio.block_on(async {
        // Settings the environment leaves unset may live in Key Vault: they are read from
        // there before the config is checked.
        let from_vault = match vault(&azure)? {
            Some(vault) => vault.config_values(env).await.map_err(anyhow::Error::msg)?,
            None => Default::default(),
        };
        let config = Config::load(
            cli.config.as_deref(),
            cli.data_dir,
            cli.skills_dirs,
            |var| env(var).or_else(|| from_vault.get(var).cloned()),
        )?;
        // Only a server exports traces.
        let traces = match cli.command {
            Command::Serve { .. } => {
                molten::telemetry::provider(&config.telemetry, molten::service::http_client()?)
            }
            _ => None,
        };
        init_logs(cli.log_format, default_filter, traces.as_ref());
        if !from_vault.is_empty() {
            let names: Vec<&String> = from_vault.keys().collect();
            tracing::info!(?names, "settings from Key Vault");
        }
        match cli.command {
            Command::Skill(command) => skill_cli::run(Some(&config), command).await,
            Command::Serve { role, listen } => {
                let served = serve(config, role, listen, cli.log_format).await;
                if let Some(provider) = traces {
                    // Sends the last spans; blocking, so off the async workers.
                    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
                }
                served
            }
            Command::Chat => chat(config).await,
            Command::Health { .. } => unreachable!("answered before the config is read"),
            Command::Admin(command) => admin_cli::run(&config, command).await,
        }
    })
}

async fn serve(
    mut config: Config,
    role: Role,
    listen: Option<std::net::SocketAddr>,
    log_format: LogFormat,
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
    service
        .serve(role, None, shutdown, startup_reporter(log_format))
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Shows `molten serve` starting: each skill as it loads (a progress line on a terminal, a
/// line per skill otherwise), then the banner; each line a JSON object with `--log-format json`.
fn startup_reporter(format: LogFormat) -> impl FnMut(Startup<'_>) {
    let terminal = std::io::stderr().is_terminal() && format == LogFormat::Text;
    let say = move |text: &str| match format {
        LogFormat::Text => eprintln!("{text}"),
        LogFormat::Json => {
            for line in text.lines() {
                eprintln!(
                    "{}",
                    serde_json::json!({
                        "level": "INFO",
                        "fields": { "message": line.trim() },
                        "target": "molten::startup",
                    })
                );
            }
        }
    };
    move |event| match event {
        Startup::Listening(_) => {}
        Startup::Loaded(step) => {
            let name = step
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let line = format!(
                "loading skills {}/{}: {name} ({} KiB) in {:.1} s",
                step.index,
                step.total,
                step.size >> 10,
                step.took.as_secs_f64()
            );
            if terminal {
                eprint!("\r\x1b[2K{line}");
                if step.index == step.total {
                    eprintln!();
                }
            } else {
                say(&line);
            }
        }
        Startup::Ready(banner) => say(&banner),
    }
}

/// `molten health`: GET /healthz (or /ready) on `listen`; success only on a 200.
async fn health(listen: Option<String>, ready: bool) -> anyhow::Result<ExitCode> {
    let listen = listen.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let mut addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("MOLTEN_LISTEN={listen:?} is not an address like 0.0.0.0:8080"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/{}", if ready { "ready" } else { "healthz" });
    let response = molten::service::http_client()?
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .with_context(|| format!("no molten answers at {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{url}: {status} {body}")
    }
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
    // Its own queue file, so a `molten serve` on the same data directory never takes a
    // terminal message it could not answer.
    config.queue_path = config.data_dir.join("chat-queue.db");
    config.worker.concurrency = 1;
    let (replies, mut reply) = tokio::sync::mpsc::unbounded_channel();
    let service = Service::build(config, Some(replies)).await?;
    service.load_skills(|_| {}).await;
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
pub(crate) fn vault(azure: &AzureConfig) -> anyhow::Result<Option<Arc<KeyVaultSecrets>>> {
    if azure.key_vault_url.is_none() {
        return Ok(None);
    }
    let http = molten::service::http_client()?;
    let entra = molten::service::azure_identity(azure, &http)?;
    Ok(molten::service::key_vault(azure, &http, Some(&entra))?)
}
