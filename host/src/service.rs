//! Wiring: builds the queue, store, skills, model client, channels, worker and routes from a
//! [`Config`], and runs them as `molten serve` or `molten chat`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use crate::agent::{Agent, AgentLimits};
use crate::azure::{credential_chain, KeyVaultSecrets, StorageAccount};
use crate::channels::Channels;
use crate::config::AzureConfig;
use crate::config::Config;
use crate::envelope::{Envelope, ReplyTo};
use crate::ingress::{router, AppState};
use crate::limits::Limits;
use crate::llm::safety::SafetyFilter;
use crate::llm::OpenAiClient;
use crate::metrics::Metrics;
use crate::plugins::{BlobStore, DirStore, PluginStore, Plugins};
use crate::queue::{AzureQueue, SqliteQueue, WorkQueue};
use crate::redact::Redactor;
use crate::skills::{Registry, Runtime, Step};
use crate::store::{AzureStore, SqliteStore, Store};
use crate::worker::Worker;
use azure_core::credentials::TokenCredential;

/// Which parts of molten a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Ingress and worker in one process.
    All,
    /// Only the HTTP routes: verify and enqueue.
    Ingress,
    /// Only the queue consumer.
    Worker,
}

/// A startup failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The skill engine could not be created.
    #[error(transparent)]
    Engine(#[from] crate::skills::EngineError),
    /// The queue could not be opened.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A platform key in the config is unusable.
    #[error("{0}")]
    Key(#[from] crate::ingress::verify::KeyError),
    /// A safety pattern does not compile.
    #[error("safety.blocked_patterns: {0}")]
    Pattern(#[from] regex::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    /// An Azure account, identity or vault setting is unusable.
    #[error("{0}")]
    Azure(String),
    /// The plugin store cannot be opened.
    #[error("{0}; check [plugins] dir or container")]
    Plugins(String),
    /// The OpenClaw device identity cannot be read or made.
    #[error("[openclaw]: {0}")]
    OpenClaw(String),
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {source}; choose another server.listen or MOLTEN_LISTEN")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Every long-lived part, built once.
pub struct Service {
    /// The configuration it was built from.
    pub config: Arc<Config>,
    /// The routes' state.
    pub state: AppState,
    /// The consumer.
    pub worker: Arc<Worker>,
    /// Keeps the skills equal to the plugin store.
    pub plugins: Arc<Plugins>,
}

/// Switches the skills off (and on) as the store says (`POST /admin/skills/{name}/disable`
/// writes it there), so that every replica follows within `every`.
async fn follow_switches(state: AppState, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => crate::ingress::apply_switches(&state).await,
            _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => return,
        }
    }
}

/// An HTTP client for platforms and the model, with TLS from rustls and the system's roots.
pub fn http_client() -> Result<reqwest::Client, StartError> {
    crate::net::client_builder()
        .build()
        .map_err(|e| StartError::Http(e.to_string()))
}

impl Service {
    /// Opens the queue and store (SQLite in the data directory, or Azure Storage), loads the
    /// skills and wires everything. `terminal` receives replies to [`ReplyTo::Terminal`] messages.
    pub async fn build(
        config: Config,
        terminal: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Self, StartError> {
        let config = Arc::new(config);
        let http = http_client()?;
        let entra = entra_credential(&config, &http)?;
        let account = storage_account(&config, &http, entra.as_ref())?;
        let (queue, store) = open_state(&config, account.as_ref()).await?;
        let vault = key_vault(&config.azure, &http, entra.as_ref())?
            .map(|vault| vault as Arc<dyn crate::secrets::SecretStore>);
        let (registry, plugins) = skill_set(&config, account.as_ref(), vault).await?;
        let plugins = Arc::new(plugins);
        let mut secrets = config.secret_values();
        secrets.extend(registry.secret_values());
        let redactor = Arc::new(Redactor::new(&secrets));
        let mut metrics = Metrics::default();
        metrics.watch_skills(
            registry.runtime().fuel_used().clone(),
            plugins.loads().clone(),
        );
        let metrics = Arc::new(metrics);
        let agent = config.llm.clone().map(|llm| {
            let limits = AgentLimits {
                max_tokens: llm.max_tokens,
                cache_ttl: llm.cache_ttl,
                prices: config.prices.clone(),
            };
            Arc::new(Agent::new(
                Arc::new(OpenAiClient::new(http.clone(), llm).with_entra(entra.clone())),
                registry.clone(),
                store.clone(),
                redactor.clone(),
                config.agent.clone(),
                limits,
                metrics.clone(),
            ))
        });
        if config
            .telegram
            .as_ref()
            .is_some_and(|t| t.secret_token.is_none())
        {
            tracing::warn!("telegram.allow_unauthenticated is on: /webhook/telegram accepts webhooks from anyone who finds it; set telegram.secret_token and pass it to setWebhook");
        }
        let openclaw = match &config.openclaw {
            Some(gateway) => {
                let device = match &gateway.device_key {
                    Some(key) => crate::openclaw::Device::from_hex(key.expose())
                        .map_err(|e| StartError::OpenClaw(format!("openclaw.device_key: {e}")))?,
                    None => {
                        let key = config.data_dir.join("openclaw-device.key");
                        crate::openclaw::Device::load_or_create(&key).map_err(|e| {
                            StartError::OpenClaw(format!("the device key {}: {e}", key.display()))
                        })?
                    }
                };
                Some(Arc::new(crate::openclaw::OpenClaw::new(
                    gateway.clone(),
                    device,
                )))
            }
            None => None,
        };
        let wake = Arc::new(Notify::new());
        let worker = Arc::new(Worker {
            queue: queue.clone(),
            store: store.clone(),
            agent,
            channels: Arc::new(Channels::new(http.clone(), &config, terminal)),
            safety: Arc::new(SafetyFilter::new(&config.safety)?),
            redactor,
            config: config.worker.clone(),
            agent_config: config.agent.clone(),
            metrics: metrics.clone(),
            limits: config.limits.any().then(|| {
                Arc::new(Limits::new(
                    config.limits.clone(),
                    store.clone(),
                    metrics.budget_used.clone(),
                ))
            }),
            wake: wake.clone(),
            openclaw: openclaw.clone(),
        });
        let mut state = AppState::new(queue, store, registry, config.clone(), metrics, wake, http)?;
        state.openclaw = openclaw;
        Ok(Self {
            config,
            state,
            worker,
            plugins,
        })
    }

    /// Loads the built-in skills (calling `report` after each) and scans the plugin store once.
    pub async fn load_skills(&self, report: impl FnMut(Step<'_>)) {
        load_into(
            &self.state.registry,
            &self.plugins,
            &self.config.skills_dirs,
            report,
        )
        .await;
    }

    /// Serves until `shutdown` turns true: routes (unless `role` is worker) and the worker
    /// (unless `role` is ingress). The routes answer first, while the skills load (`/ready`
    /// says how far that got); the worker starts once they are loaded. `report` hears each
    /// step. In-flight turns finish before it returns.
    pub async fn serve(
        self,
        role: Role,
        listener: Option<TcpListener>,
        shutdown: watch::Receiver<bool>,
        mut report: impl FnMut(Startup<'_>),
    ) -> Result<(), StartError> {
        let mut addr = None;
        let routes = if role != Role::Worker {
            let listener = match listener {
                Some(listener) => listener,
                None => bind(self.config.server.listen).await?,
            };
            let bound = listener.local_addr().map_err(|source| StartError::Listen {
                addr: self.config.server.listen,
                source,
            })?;
            addr = Some(bound);
            tracing::info!(addr = %bound, "listening");
            report(Startup::Listening(bound));
            let mut stop = shutdown.clone();
            let app = router(self.state.clone());
            Some(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
                    .map_err(|source| StartError::Listen {
                        addr: bound,
                        source,
                    })
            }))
        } else {
            None
        };
        self.load_skills(|step| report(Startup::Loaded(step))).await;
        for error in self.state.registry.errors() {
            tracing::error!(%error, "skill not loaded");
        }
        crate::ingress::apply_switches(&self.state).await;
        report(Startup::Ready(self.banner(role, addr)));
        tokio::spawn(self.plugins.clone().run(shutdown.clone()));
        if let (Some(gateway), true) = (&self.state.openclaw, role != Role::Ingress) {
            tokio::spawn(gateway.clone().run(shutdown.clone()));
        }
        tokio::spawn(follow_switches(
            self.state.clone(),
            self.config.plugins.policy.poll,
            shutdown.clone(),
        ));
        let worker = (role != Role::Ingress).then(|| {
            let shutdown = shutdown.clone();
            tokio::spawn(self.worker.clone().run(shutdown))
        });
        if let Some(routes) = routes {
            routes
                .await
                .map_err(|e| StartError::Http(format!("the HTTP server stopped: {e}")))??;
        }
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        Ok(())
    }

    /// What is running, for the person who started it: where it listens, the channels and
    /// their webhook paths, the skills (and why any are not), the model and the state backend.
    pub fn banner(&self, role: Role, addr: Option<std::net::SocketAddr>) -> String {
        let config = &self.config;
        let registry = &self.state.registry;
        let mut lines = vec![match addr {
            Some(addr) => format!(
                "molten {} listening on http://{addr} (role {role:?})",
                env!("CARGO_PKG_VERSION")
            ),
            None => format!(
                "molten {} worker started (no HTTP routes)",
                env!("CARGO_PKG_VERSION")
            ),
        }];
        if role != Role::Worker {
            let channels: Vec<String> = [
                ("telegram", config.telegram.is_some()),
                ("slack", config.slack.is_some()),
                ("discord", config.discord.is_some()),
            ]
            .iter()
            .map(|(name, on)| {
                if *on {
                    format!("{name} on POST /webhook/{name}")
                } else {
                    format!("{name} off")
                }
            })
            .collect();
            lines.push(format!("  channels: {}", channels.join(", ")));
        }
        let names: Vec<String> = registry
            .skills()
            .iter()
            .map(|s| s.manifest().name.clone())
            .collect();
        lines.push(format!(
            "  skills: {} loaded ({}); plugins from {}",
            names.len(),
            if names.is_empty() {
                "none: run scripts/setup or set --skills-dir".to_owned()
            } else {
                names.join(", ")
            },
            self.plugins.store().location()
        ));
        for name in registry.disabled() {
            lines.push(format!(
                "  skill {name} disabled by [skills.{name}] enabled = false"
            ));
        }
        for error in registry.errors() {
            lines.push(format!("  skill refused: {error}"));
        }
        lines.push(match &config.llm {
            Some(llm) => format!("  model: {} at {}", llm.model, llm.base_url),
            None => "  model: none configured: set MOLTEN_LLM_BASE_URL and MOLTEN_LLM_MODEL \
                     (or [llm] in the config); until then every message is answered with a note \
                     saying so"
                .to_owned(),
        });
        if let Some(gateway) = &config.openclaw {
            lines.push(format!(
                "  openclaw: turns go to the gateway at {} first; the model answers when it cannot",
                gateway.url
            ));
        }
        lines.push(match &config.azure.storage {
            Some(_) => format!(
                "  state: Azure Storage (queue {}, container {})",
                config.azure.queue, config.azure.container
            ),
            None => format!("  state: SQLite in {}", config.data_dir.display()),
        });
        lines.join("\n")
    }

    /// Queues one line typed in `molten chat`, as the terminal user.
    pub async fn enqueue_terminal(&self, line: &str, seq: u64) -> Result<(), StartError> {
        let envelope = Envelope {
            reply_to: ReplyTo::Terminal,
            chat: "terminal".into(),
            user: "terminal".into(),
            message_id: format!("{}-{seq}", std::process::id()),
            text: line.to_owned(),
            retry: 0,
            trace: None,
        };
        let body = serde_json::to_string(&envelope).expect("an envelope serialises");
        self.state.queue.enqueue(&body).await?;
        self.state.wake.notify_one();
        Ok(())
    }
}

/// The replica's Entra identity, if anything configured needs it.
pub fn entra_credential(
    config: &Config,
    http: &reqwest::Client,
) -> Result<Option<Arc<dyn TokenCredential>>, StartError> {
    if !config.needs_entra() {
        return Ok(None);
    }
    azure_identity(&config.azure, http).map(Some)
}

/// The credential chain, for a user-assigned identity when `azure.client_id` is set.
pub fn azure_identity(
    azure: &AzureConfig,
    http: &reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, StartError> {
    let chain = credential_chain(azure.client_id.as_deref(), http)
        .map_err(|e| StartError::Azure(e.to_string()))?;
    Ok(Arc::new(chain))
}

/// Key Vault, if `azure.key_vault_url` is set.
pub fn key_vault(
    azure: &AzureConfig,
    http: &reqwest::Client,
    entra: Option<&Arc<dyn TokenCredential>>,
) -> Result<Option<Arc<KeyVaultSecrets>>, StartError> {
    let (Some(url), Some(credential)) = (&azure.key_vault_url, entra) else {
        return Ok(None);
    };
    KeyVaultSecrets::new(url, credential.clone(), http)
        .map(|vault| Some(Arc::new(vault)))
        .map_err(StartError::Azure)
}

/// The Azure storage account, when `[azure] storage` is set.
pub fn storage_account(
    config: &Config,
    http: &reqwest::Client,
    entra: Option<&Arc<dyn TokenCredential>>,
) -> Result<Option<StorageAccount>, StartError> {
    config
        .azure
        .storage
        .as_ref()
        .map(|connection| {
            StorageAccount::from_connection_string(connection, entra.cloned(), http.clone())
                .map_err(|e| StartError::Azure(e.to_string()))
        })
        .transpose()
}

/// The plugin store: the blob container when `plugins.container` is set, else the directory.
pub async fn plugin_store(
    config: &Config,
    account: Option<&StorageAccount>,
) -> Result<Arc<dyn PluginStore>, StartError> {
    let plugin_error = |e: crate::plugins::PluginError| StartError::Plugins(e.to_string());
    Ok(match (&config.plugins.container, account) {
        (Some(container), Some(account)) => Arc::new(
            BlobStore::open(account, container)
                .await
                .map_err(plugin_error)?,
        ),
        _ => Arc::new(DirStore::open(&config.plugins.dir).map_err(plugin_error)?),
    })
}

/// What [`Service::serve`] reports as it starts.
pub enum Startup<'a> {
    /// The routes answer at this address (the skills may still be loading).
    Listening(std::net::SocketAddr),
    /// One built-in skill was loaded.
    Loaded(Step<'a>),
    /// Everything runs: the banner for the person who started it.
    Ready(String),
}

/// The skills for `molten skill`: the built-in ones from `skills_dirs` and the plugin store's,
/// as `molten serve` loads them. Secrets come from the config and `vault`.
pub async fn load_skills(
    config: &Config,
    account: Option<&StorageAccount>,
    vault: Option<Arc<dyn crate::secrets::SecretStore>>,
) -> Result<Arc<Registry>, StartError> {
    let (registry, plugins) = skill_set(config, account, vault).await?;
    load_into(&registry, &plugins, &config.skills_dirs, |_| {}).await;
    Ok(registry)
}

/// Loads the built-in skills of `dirs` into `registry`, then scans the plugin store once.
async fn load_into(
    registry: &Registry,
    plugins: &Plugins,
    dirs: &[std::path::PathBuf],
    report: impl FnMut(Step<'_>),
) {
    registry.load_dirs(dirs, report).await;
    if let Err(error) = plugins.sync().await {
        tracing::error!(%error, "cannot read the plugin store; trying again every plugins.poll_secs");
    }
}

/// An empty registry on a new runtime, under the config's grants (secrets from the config and
/// `vault`), and the plugin store that will fill it beside the built-in skills.
async fn skill_set(
    config: &Config,
    account: Option<&StorageAccount>,
    vault: Option<Arc<dyn crate::secrets::SecretStore>>,
) -> Result<(Arc<Registry>, Plugins), StartError> {
    let runtime = Arc::new(Runtime::new(config.runtime())?);
    let registry = Arc::new(Registry::new(runtime, &config.grants(vault)).await);
    let store = plugin_store(config, account).await?;
    let policy = &config.plugins.policy;
    tracing::info!(
        store = %store.location(),
        signatures = if policy.trust.require_signatures { "required" } else { "optional" },
        trusted_keys = policy.trust.keys.len(),
        "plugin store"
    );
    let plugins = Plugins::new(store, registry.clone(), policy.clone());
    Ok((registry, plugins))
}

/// The queue and the store: SQLite in the data directory, or Azure Storage when configured.
async fn open_state(
    config: &Config,
    account: Option<&StorageAccount>,
) -> Result<(Arc<dyn WorkQueue>, Arc<dyn Store>), StartError> {
    let Some(account) = account else {
        return Ok((
            Arc::new(SqliteQueue::open(&config.queue_path)?),
            Arc::new(SqliteStore::open(&config.state_path())?),
        ));
    };
    let azure = &config.azure;
    let queue = AzureQueue::open(account, &azure.queue, &azure.table_prefix).await?;
    let store = AzureStore::open(account, &azure.container, &azure.table_prefix).await?;
    tracing::info!(queue = %azure.queue, container = %azure.container, "state in Azure Storage");
    Ok((Arc::new(queue), Arc::new(store)))
}

/// Binds the listen address with a clear error.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
