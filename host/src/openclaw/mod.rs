//! The OpenClaw Gateway backend (`[openclaw]`): a turn is handed to a gateway over one
//! persistent WebSocket shared by the worker's consumers, and falls back to the direct model
//! loop whenever the gateway cannot answer in time.
//!
//! The client waits for the gateway's `connect.challenge`, answers with `connect` (protocol 4,
//! the shared token and a signed Ed25519 device proof, [`protocol`]), keeps the device token
//! `hello-ok` issues (and connects with it when the gateway refuses a shared token that was
//! rotated since, so a rotation does not cut molten off), and stays connected: it reconnects
//! with backoff (1 s doubling to 30 s, or the gateway's `retryAfterMs`), and drops a
//! connection that sends nothing, not even its `tick`, for two tick intervals (a half-open
//! socket). [`OpenClaw::turn`] never waits for a connection: without one it fails at once, and
//! the worker answers with the model.

mod protocol;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;

use protocol::{Credential, Incoming, RunEvent};
pub use protocol::{Device, Fault};

use crate::secrets::Secret;

/// How long connecting (socket, challenge, hello) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failed or lost connection; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The tick interval assumed until `hello-ok` gives one.
const DEFAULT_TICK: Duration = Duration::from_secs(30);

/// `[openclaw]`.
#[derive(Debug, Clone)]
pub struct OpenClawConfig {
    /// The gateway, `ws://` or `wss://`.
    pub url: url::Url,
    /// The gateway's shared token (`gateway.auth.token`).
    pub token: Secret,
    /// How long a turn may take on the gateway before the model answers instead.
    pub turn_timeout: Duration,
    /// The device key (64 hex digits) when it is given rather than kept in the data directory.
    pub device_key: Option<Secret>,
}

/// Why the gateway did not answer a turn (the worker then asks the model).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// There is no connection now.
    #[error("the OpenClaw gateway is not connected ({0})")]
    NotConnected(String),
    /// The gateway refused `chat.send`.
    #[error("the OpenClaw gateway refused the message: {0}")]
    Refused(Fault),
    /// The run ended without an answer.
    #[error("{0}")]
    Run(String),
    /// The connection closed during the turn.
    #[error("the OpenClaw gateway's connection closed during the turn")]
    Closed,
    /// No answer within `turn_timeout_secs`.
    #[error("the OpenClaw gateway did not answer within {0:?} (openclaw.turn_timeout_secs)")]
    Timeout(Duration),
}

/// What `/ready` and `/admin/status` say about the gateway.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Whether a connection is up.
    pub connected: bool,
    /// Why the last connection failed or ended.
    pub last_error: Option<String>,
    /// Turns the gateway answered.
    pub answered: u64,
    /// Turns the model answered because the gateway could not.
    pub fallbacks: u64,
    /// This molten's device id.
    pub device: String,
    /// Whether the gateway paired the device (issued a device token).
    pub paired: bool,
    /// What the connection authenticated with: `token` (openclaw.token) or `device-token`
    /// (the gateway refused openclaw.token; the token it issued at pairing was accepted).
    pub auth: Option<&'static str>,
}

/// One live connection: requests wait for their `res` by id, runs for their `chat` events.
struct Connection {
    out: mpsc::UnboundedSender<Message>,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, Fault>>>>,
    runs: Mutex<HashMap<String, mpsc::UnboundedSender<RunEvent>>>,
}

impl Connection {
    /// Routes one frame; returns why the connection should end, if it should.
    fn dispatch(&self, frame: Incoming) -> Option<String> {
        match frame {
            Incoming::Res {
                id,
                ok,
                payload,
                error,
            } => {
                let waiting = self.pending.lock().expect("never poisoned").remove(&id);
                if let Some(waiting) = waiting {
                    let _ = waiting.send(if ok {
                        Ok(payload)
                    } else {
                        Err(error.unwrap_or_else(|| Fault {
                            code: "UNKNOWN".into(),
                            message: "refused without a reason".into(),
                            details: Value::Null,
                            retry_after_ms: None,
                        }))
                    });
                }
            }
            Incoming::Event { event, payload } => match event.as_str() {
                "chat" => {
                    if let Some((run, event)) = protocol::chat_event(&payload) {
                        if let Some(run) = self.runs.lock().expect("never poisoned").get(&run) {
                            let _ = run.send(event);
                        }
                    }
                }
                "shutdown" => {
                    return Some(format!(
                        "the gateway is shutting down ({})",
                        payload["reason"].as_str().unwrap_or("no reason given")
                    ))
                }
                _ => {}
            },
            Incoming::Req {} => {}
        }
        None
    }

    fn request(&self, frame: Value, id: String) -> oneshot::Receiver<Result<Value, Fault>> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("never poisoned").insert(id, tx);
        // A closed writer drops the request: its receiver sees the close.
        if self.out.send(Message::text(frame.to_string())).is_err() {
            self.pending.lock().expect("never poisoned").clear();
        }
        rx
    }
}

/// Why connecting failed, how long the gateway asked to wait, whether the gateway itself
/// refused (rather than the network failing), and whether it said the device token would be
/// accepted instead.
struct ConnectFailure {
    why: String,
    retry_after: Option<Duration>,
    refused: bool,
    device_token_may_help: bool,
}

impl<E: std::fmt::Display> From<E> for ConnectFailure {
    fn from(e: E) -> Self {
        Self {
            why: e.to_string(),
            retry_after: None,
            refused: false,
            device_token_may_help: false,
        }
    }
}

/// The gateway client.
pub struct OpenClaw {
    config: OpenClawConfig,
    device: Device,
    live: Mutex<Option<Arc<Connection>>>,
    status: Mutex<GatewayStatus>,
    device_token: Mutex<Option<Secret>>,
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl OpenClaw {
    /// A client of the gateway `config` names, with `device` as its identity. Call
    /// [`OpenClaw::run`] to connect.
    pub fn new(config: OpenClawConfig, device: Device) -> Self {
        let status = GatewayStatus {
            device: device.id(),
            last_error: Some("not connected yet".into()),
            ..GatewayStatus::default()
        };
        Self {
            config,
            device,
            live: Mutex::new(None),
            status: Mutex::new(status),
            device_token: Mutex::new(None),
        }
    }

    /// The gateway's state now.
    pub fn status(&self) -> GatewayStatus {
        self.status.lock().expect("never poisoned").clone()
    }

    fn set_status(&self, change: impl FnOnce(&mut GatewayStatus)) {
        change(&mut self.status.lock().expect("never poisoned"));
    }

    /// Counts a turn the model answered instead.
    pub fn fell_back(&self) {
        self.set_status(|s| s.fallbacks += 1);
    }

    /// Connects and stays connected until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wait = match self.authenticate().await {
                Ok((connection, reader)) => {
                    backoff = FIRST_BACKOFF;
                    *self.live.lock().expect("never poisoned") = Some(connection);
                    self.set_status(|s| {
                        s.connected = true;
                        s.last_error = None;
                    });
                    tracing::info!(url = %self.config.url, "connected to the OpenClaw gateway");
                    let why = tokio::select! {
                        why = reader => why,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    };
                    self.lose(&why);
                    backoff
                }
                Err(failure) => {
                    self.lose(&failure.why);
                    failure.retry_after.unwrap_or(backoff)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.min(MAX_BACKOFF)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn lose(&self, why: &str) {
        // Dropping the connection fails every request and run waiting on it.
        if let Some(connection) = self.live.lock().expect("never poisoned").take() {
            connection.pending.lock().expect("never poisoned").clear();
            connection.runs.lock().expect("never poisoned").clear();
        }
        let news = {
            let mut status = self.status.lock().expect("never poisoned");
            let news = status.connected || status.last_error.as_deref() != Some(why);
            status.connected = false;
            status.last_error = Some(why.to_owned());
            news
        };
        // Said once per change: a gateway that stays down is not a warning every 30 s.
        if news {
            tracing::warn!(url = %self.config.url, reason = why, "no connection to the OpenClaw gateway; turns go to the model meanwhile");
        } else {
            tracing::debug!(url = %self.config.url, reason = why, "still no connection to the OpenClaw gateway");
        }
    }

    /// Connects with openclaw.token or, when the gateway refuses it and says a device token
    /// would do (the shared token was rotated), with the device token it issued at pairing.
    async fn authenticate(
        &self,
    ) -> Result<(Arc<Connection>, impl std::future::Future<Output = String>), ConnectFailure> {
        let shared = self
            .connect(Credential::Shared(self.config.token.expose()))
            .await;
        let held = self.device_token.lock().expect("never poisoned").clone();
        let (failure, device_token) = match (shared, held) {
            (Err(failure), Some(token)) if failure.device_token_may_help => (failure, token),
            (Ok(connected), _) => {
                self.set_status(|s| s.auth = Some("token"));
                return Ok(connected);
            }
            (Err(failure), _) => return Err(failure),
        };
        match self
            .connect(Credential::Device(device_token.expose()))
            .await
        {
            Ok(connected) => {
                tracing::warn!(url = %self.config.url, refused = failure.why, "the OpenClaw gateway refused openclaw.token; connected with the device token it issued when it paired molten. Set openclaw.token to the gateway's gateway.auth.token before molten restarts (the device token is not kept across restarts)");
                self.set_status(|s| s.auth = Some("device-token"));
                Ok(connected)
            }
            Err(second) => {
                // Revoked or expired: asking again with it would only fail again.
                if second.refused {
                    *self.device_token.lock().expect("never poisoned") = None;
                    self.set_status(|s| s.paired = false);
                }
                Err(ConnectFailure {
                    why: format!(
                        "{}; the device token was refused too: {}",
                        failure.why, second.why
                    ),
                    ..second
                })
            }
        }
    }

    /// Opens the socket, answers the challenge with `credential` and reads `hello-ok`; returns
    /// the connection and the reader that serves it until it ends (with why).
    async fn connect(
        &self,
        credential: Credential<'_>,
    ) -> Result<(Arc<Connection>, impl std::future::Future<Output = String>), ConnectFailure> {
        let url = self.config.url.as_str();
        let connector = if self.config.url.scheme() == "wss" {
            use rustls_platform_verifier::ConfigVerifierExt as _;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = rustls::ClientConfig::with_platform_verifier()?;
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls)))
        } else {
            None
        };
        // Small frames both ways: without TCP_NODELAY, Nagle's algorithm and delayed ACKs add
        // 40 ms to every turn (measured by the openclaw bench).
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector);
        let (socket, _) = timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("no connection to {url} within {CONNECT_TIMEOUT:?}"))??;
        let (mut write, mut read) = socket.split();
        let mut next = async || -> Result<Incoming, ConnectFailure> {
            loop {
                let frame = timeout(CONNECT_TIMEOUT, read.next())
                    .await
                    .map_err(|_| "the gateway sent nothing within 10 s of the connection")?;
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        return Ok(serde_json::from_str(&text).map_err(|e| {
                            format!("the gateway sent a frame that is not JSON: {e}")
                        })?)
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(format!(
                            "the gateway closed the connection while connecting: {}",
                            frame.map_or_else(String::new, |f| format!("{} {}", f.code, f.reason))
                        )
                        .into())
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("the gateway closed the connection while connecting".into()),
                }
            }
        };
        let (nonce, ts) = match next().await? {
            Incoming::Event { event, payload } if event == "connect.challenge" => (
                payload["nonce"].as_str().unwrap_or_default().to_owned(),
                payload["ts"].as_u64().unwrap_or_default(),
            ),
            other => {
                return Err(
                    format!("the gateway did not start with connect.challenge: {other:?}").into(),
                )
            }
        };
        let id = random_id();
        let connect = protocol::connect(&id, credential, &self.device, &nonce, ts);
        write.send(Message::text(connect.to_string())).await?;
        let hello = loop {
            match next().await? {
                Incoming::Res {
                    id: got,
                    ok,
                    payload,
                    error,
                } if got == id => {
                    if ok {
                        break payload;
                    }
                    let fault = error.unwrap_or_else(|| Fault {
                        code: "UNKNOWN".into(),
                        message: "connect refused without a reason".into(),
                        details: Value::Null,
                        retry_after_ms: None,
                    });
                    return Err(ConnectFailure {
                        retry_after: fault.retry_after_ms.map(Duration::from_millis),
                        refused: true,
                        device_token_may_help: fault.details["canRetryWithDeviceToken"]
                            .as_bool()
                            .unwrap_or(false),
                        why: format!("the gateway refused to connect: {fault}{}", hint(&fault)),
                    });
                }
                _ => {}
            }
        };
        let scopes: Vec<&str> = hello["auth"]["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !scopes.contains(&"operator.write") {
            return Err(format!(
                "the gateway let molten in without operator.write (scopes {scopes:?}), so it cannot send chat; check the gateway's pairing settings"
            )
            .into());
        }
        if let Some(token) = hello["auth"]["deviceToken"].as_str() {
            *self.device_token.lock().expect("never poisoned") = Some(Secret::new(token));
            self.set_status(|s| s.paired = true);
        }
        let tick = hello["policy"]["tickIntervalMs"]
            .as_u64()
            .map_or(DEFAULT_TICK, Duration::from_millis);

        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let connection = Arc::new(Connection {
            out,
            pending: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
        });
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if write.send(message).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        let serving = connection.clone();
        let reader = async move {
            let why = loop {
                // Ticks come every interval: twice that in silence is a dead connection.
                match timeout(tick * 2, read.next()).await {
                    Err(_) => {
                        break format!(
                            "the gateway sent nothing, not even a tick, for {:?}",
                            tick * 2
                        )
                    }
                    Ok(None) => break "the gateway closed the connection".to_owned(),
                    Ok(Some(Err(e))) => break format!("the connection failed: {e}"),
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        break format!(
                            "the gateway closed the connection: {}",
                            frame.map_or_else(String::new, |f| format!("{} {}", f.code, f.reason))
                        )
                    }
                    Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
                        Ok(frame) => {
                            if let Some(why) = serving.dispatch(frame) {
                                break why;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "ignoring a gateway frame that is not a known JSON frame")
                        }
                    },
                    Ok(Some(Ok(_))) => {}
                }
            };
            writer.abort();
            why
        };
        Ok((connection, reader))
    }

    /// Hands `message` to the gateway as run `key` (the queue message's dedupe key, so a
    /// redelivered message does not start a second run) in session `session`, and waits for
    /// the answer until `openclaw.turn_timeout_secs`.
    pub async fn turn(
        &self,
        key: &str,
        session: &str,
        message: &str,
    ) -> Result<String, GatewayError> {
        let connection = self.live.lock().expect("never poisoned").clone();
        let Some(connection) = connection else {
            let why = self.status().last_error.unwrap_or_default();
            return Err(GatewayError::NotConnected(why));
        };
        let deadline = Instant::now() + self.config.turn_timeout;
        // The idempotency key becomes the run id: listen before sending.
        let (events, mut received) = mpsc::unbounded_channel();
        connection
            .runs
            .lock()
            .expect("never poisoned")
            .insert(key.to_owned(), events.clone());
        let names = Mutex::new(vec![key.to_owned()]);
        let answer = async {
            let id = random_id();
            let sent = connection.request(protocol::chat_send(&id, session, message, key), id);
            let started = timeout_at(deadline, sent)
                .await
                .map_err(|_| GatewayError::Timeout(self.config.turn_timeout))?
                .map_err(|_| GatewayError::Closed)?
                .map_err(GatewayError::Refused)?;
            if let Some(run) = started["runId"].as_str().filter(|run| *run != key) {
                names.lock().expect("never poisoned").push(run.to_owned());
                connection
                    .runs
                    .lock()
                    .expect("never poisoned")
                    .insert(run.to_owned(), events.clone());
            }
            // Only the connection holds the senders now: its end ends the wait.
            drop(events);
            let mut text = String::new();
            loop {
                let event = timeout_at(deadline, received.recv())
                    .await
                    .map_err(|_| GatewayError::Timeout(self.config.turn_timeout))?
                    .ok_or(GatewayError::Closed)?;
                match event {
                    RunEvent::Delta {
                        text: more,
                        replace,
                    } => {
                        if replace {
                            text.clear();
                        }
                        text.push_str(&more);
                    }
                    RunEvent::Final(full) => return Ok(if full.is_empty() { text } else { full }),
                    RunEvent::Failed(why) => return Err(GatewayError::Run(why)),
                    RunEvent::Status => {}
                }
            }
        }
        .await;
        let mut runs = connection.runs.lock().expect("never poisoned");
        for name in names.lock().expect("never poisoned").iter() {
            runs.remove(name);
        }
        drop(runs);
        if answer.is_ok() {
            self.set_status(|s| s.answered += 1);
        }
        answer
    }
}

/// What an operator can do about a refused connect.
fn hint(fault: &Fault) -> &'static str {
    match fault.details["code"].as_str() {
        Some("AUTH_TOKEN_MISMATCH") => "; set openclaw.token (MOLTEN_OPENCLAW_TOKEN, or Key Vault openclaw-gateway-token) to the gateway's gateway.auth.token",
        Some("PROTOCOL_MISMATCH") => "; this molten speaks OpenClaw protocol 4: upgrade the gateway or molten so they match",
        Some("PAIRING_REQUIRED") | Some("DEVICE_IDENTITY_REQUIRED") => "; approve molten's device on the gateway (openclaw devices approve)",
        _ => "",
    }
}
