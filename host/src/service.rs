//! Wiring: builds the queue, store, skills, model client, channels, worker and routes from a
//! [`Config`], and runs them as `molten serve` or `molten chat`.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use crate::agent::{Agent, AgentLimits};
use crate::channels::Channels;
use crate::config::Config;
use crate::envelope::{Envelope, ReplyTo};
use crate::ingress::{router, AppState};
use crate::llm::safety::{Redactor, SafetyFilter};
use crate::llm::OpenAiClient;
use crate::metrics::Metrics;
use crate::queue::{SqliteQueue, WorkQueue};
use crate::skills::{Registry, Runtime};
use crate::store::{SqliteStore, Store};
use crate::worker::Worker;

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
}

/// An HTTP client for platforms and the model, with TLS from rustls and the system's roots.
pub fn http_client() -> Result<reqwest::Client, StartError> {
    crate::net::client_builder()
        .build()
        .map_err(|e| StartError::Http(e.to_string()))
}

impl Service {
    /// Opens the embedded queue and store in the data directory, loads the skills and wires
    /// everything. `terminal` receives replies to [`ReplyTo::Terminal`] messages.
    pub async fn build(
        config: Config,
        terminal: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Self, StartError> {
        let config = Arc::new(config);
        let queue: Arc<dyn WorkQueue> = Arc::new(SqliteQueue::open(&config.queue_path)?);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.state_path())?);
        let runtime = Runtime::new(config.runtime())?;
        let registry = Arc::new(
            Registry::load(Arc::new(runtime), &config.skills_dirs, &config.grants()).await,
        );
        for error in registry.errors() {
            tracing::error!(%error, "skill not loaded");
        }
        let http = http_client()?;
        let mut secrets = config.secret_values();
        secrets.extend(registry.secret_values());
        let redactor = Arc::new(Redactor::new(&secrets));
        let agent = config.llm.clone().map(|llm| {
            let limits = AgentLimits {
                max_tokens: llm.max_tokens,
                cache_ttl: llm.cache_ttl,
                prices: config.prices.clone(),
            };
            Arc::new(Agent::new(
                Arc::new(OpenAiClient::new(http.clone(), llm)),
                registry.clone(),
                store.clone(),
                redactor.clone(),
                config.agent.clone(),
                limits,
            ))
        });
        if config
            .telegram
            .as_ref()
            .is_some_and(|t| t.secret_token.is_none())
        {
            tracing::warn!("telegram.secret_token is not set: anyone who finds /webhook/telegram can post to it; set it and pass it to setWebhook");
        }
        if agent.is_none() {
            tracing::warn!(
                "no language model configured: messages get a reply saying so; see /ready"
            );
        }
        let metrics = Arc::new(Metrics::default());
        let wake = Arc::new(Notify::new());
        let worker = Arc::new(Worker {
            queue: queue.clone(),
            store: store.clone(),
            agent,
            channels: Arc::new(Channels::new(http, &config, terminal)),
            safety: Arc::new(SafetyFilter::new(&config.safety)?),
            redactor,
            config: config.worker.clone(),
            agent_config: config.agent.clone(),
            metrics: metrics.clone(),
            wake: wake.clone(),
        });
        let state = AppState::new(queue, store, registry, config.clone(), metrics, wake)?;
        Ok(Self {
            config,
            state,
            worker,
        })
    }

    /// Serves until `shutdown` turns true: routes (unless `role` is worker) and the worker
    /// (unless `role` is ingress). In-flight turns finish before it returns.
    pub async fn serve(
        self,
        role: Role,
        listener: Option<TcpListener>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), StartError> {
        let worker = (role != Role::Ingress).then(|| {
            let shutdown = shutdown.clone();
            tokio::spawn(self.worker.clone().run(shutdown))
        });
        if role != Role::Worker {
            let listener = match listener {
                Some(listener) => listener,
                None => bind(self.config.server.listen).await?,
            };
            let addr = listener.local_addr().map_err(|source| StartError::Listen {
                addr: self.config.server.listen,
                source,
            })?;
            tracing::info!(%addr, "listening");
            let mut stop = shutdown.clone();
            axum::serve(listener, router(self.state))
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
        }
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        Ok(())
    }

    /// Queues one line typed in `molten chat`, as the terminal user.
    pub async fn enqueue_terminal(&self, line: &str, seq: u64) -> Result<(), StartError> {
        let envelope = Envelope {
            reply_to: ReplyTo::Terminal,
            chat: "terminal".into(),
            user: "terminal".into(),
            message_id: format!("{}-{seq}", std::process::id()),
            text: line.to_owned(),
        };
        let body = serde_json::to_string(&envelope).expect("an envelope serialises");
        self.state.queue.enqueue(&body).await?;
        self.state.wake.notify_one();
        Ok(())
    }
}

/// Binds the listen address with a clear error.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
