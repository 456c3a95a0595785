//! `[server]` (the HTTP listener) and `[worker]` (the queue consumers).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{positive, ConfigError, Secret};

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Bearer token for `/admin/*`; admin routes answer 401 while it is unset.
    pub admin_token: Option<Secret>,
}

/// `[worker]`
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Messages processed at once.
    pub concurrency: usize,
    /// How long a leased message stays invisible; renewed while its turn runs.
    pub visibility_timeout: Duration,
    /// Deliveries after which a message is poisoned and the user gets an apology.
    pub max_deliveries: u32,
    /// Longest wait between polls of an empty queue.
    pub poll_interval: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    admin_token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkerFile {
    concurrency: Option<usize>,
    visibility_timeout_secs: Option<u64>,
    max_deliveries: Option<u32>,
    poll_interval_ms: Option<u64>,
}

impl ServerFile {
    pub(super) fn build(self) -> Result<ServerConfig, ConfigError> {
        Ok(ServerConfig {
            listen: parse_addr(self.listen.as_deref().unwrap_or("127.0.0.1:8080"))?,
            max_body_bytes: positive("server.max_body_bytes", self.max_body_bytes, 1 << 20)?,
            admin_token: self.admin_token.filter(|t| !t.expose().is_empty()),
        })
    }
}

impl WorkerFile {
    pub(super) fn build(self) -> Result<WorkerConfig, ConfigError> {
        Ok(WorkerConfig {
            concurrency: positive("worker.concurrency", self.concurrency, 4)?,
            visibility_timeout: Duration::from_secs(positive(
                "worker.visibility_timeout_secs",
                self.visibility_timeout_secs,
                60,
            )?),
            max_deliveries: positive("worker.max_deliveries", self.max_deliveries, 5)?,
            poll_interval: Duration::from_millis(positive(
                "worker.poll_interval_ms",
                self.poll_interval_ms,
                200,
            )?),
        })
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        key: "server.listen".into(),
        message: format!(
            "{text:?} is not an address ({e}); write it as IP:PORT, e.g. 0.0.0.0:8080"
        ),
    })
}
