//! Loopback stand-ins for the services molten talks to, speaking their wire formats (Telegram
//! Bot API, Slack Web API, Discord interaction webhooks, OpenAI chat completions), and a helper
//! that runs the real `molten serve` binary against them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::Notify;

use crate::support::{root, share_compile_cache, temp_dir};

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as sent, for bodies that are not JSON (forms).
    pub raw: String,
    pub at: Instant,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    pub delay: Duration,
}

impl Scripted {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            ..Self::ok(body)
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// An OpenAI chat completion with a text answer.
pub fn llm_text(text: &str) -> Scripted {
    Scripted::ok(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "fake-model",
        "choices": [{ "index": 0, "finish_reason": "stop",
                      "message": { "role": "assistant", "content": text } }],
        "usage": { "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120 }
    }))
}

/// An OpenAI chat completion that calls one tool.
pub fn llm_tool(id: &str, name: &str, arguments: Value) -> Scripted {
    Scripted::ok(json!({
        "id": "chatcmpl-2", "object": "chat.completion", "model": "fake-model",
        "choices": [{ "index": 0, "finish_reason": "tool_calls",
                      "message": { "role": "assistant", "content": null,
                                   "tool_calls": [{ "id": id, "type": "function",
                                                    "function": { "name": name, "arguments": arguments.to_string() } }] } }],
        "usage": { "prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60 }
    }))
}

/// Tavily's answer to a search: two results about the query.
pub fn tavily_results(request: &Value) -> Scripted {
    let query = request["query"].as_str().unwrap_or_default();
    Scripted::ok(json!({
        "query": query,
        "answer": null,
        "images": [],
        "results": [
            { "title": format!("{query} - Wikipedia"), "url": "https://en.wikipedia.org/wiki/Molten",
              "content": "Molten material is liquid.   It flows.", "score": 0.98, "raw_content": null },
            { "title": "Second result", "url": "https://example.org/two",
              "content": "Another snippet.", "score": 0.5, "raw_content": null,
              "published_date": "2026-11-01" }
        ],
        "response_time": 0.42
    }))
}

/// A Tavily error body.
pub fn tavily_error(status: u16, message: &str) -> Scripted {
    Scripted::status(status, json!({ "detail": { "error": message } }))
}

/// A Microsoft Graph error body.
pub fn graph_error(status: u16, code: &str, message: &str) -> Scripted {
    Scripted::status(
        status,
        json!({ "error": { "code": code, "message": message,
        "innerError": { "request-id": "1d6a1c9c", "date": "2026-11-25T12:00:00" } } }),
    )
}

/// An OpenAI error body.
pub fn llm_error(status: u16, message: &str) -> Scripted {
    Scripted::status(
        status,
        json!({ "error": { "message": message, "type": "server_error", "code": null } }),
    )
}

#[derive(Default)]
pub struct FakeState {
    requests: Mutex<Vec<Recorded>>,
    llm: Mutex<VecDeque<Scripted>>,
    platform: Mutex<VecDeque<Scripted>>,
    api: Mutex<VecDeque<Scripted>>,
    arrived: Notify,
    /// While true, model calls wait (see [`Fake::hold_llm`]).
    llm_held: tokio::sync::watch::Sender<bool>,
    llm_parked: AtomicUsize,
}

/// Telegram, Slack, Discord and an OpenAI endpoint on one loopback port. Unscripted LLM calls
/// answer "default answer"; unscripted platform calls succeed.
pub struct Fake {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
}

impl Fake {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the LLM endpoint.
    pub fn script_llm(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.llm.lock().unwrap().extend(answers);
    }

    /// Queues answers for the platform APIs.
    pub fn script_platform(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.platform.lock().unwrap().extend(answers);
    }

    /// Forgets the platform answers not yet given (later requests get the default answer).
    pub fn clear_platform(&self) {
        self.state.platform.lock().unwrap().clear();
    }

    /// Queues answers for the third-party APIs skills call (Tavily, Graph).
    pub fn script_api(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.api.lock().unwrap().extend(answers);
    }

    /// Every request whose path contains `part`.
    pub fn requests(&self, part: &str) -> Vec<Recorded> {
        let all = self.state.requests.lock().unwrap();
        all.iter()
            .filter(|r| r.path.contains(part))
            .cloned()
            .collect()
    }

    /// Makes model calls wait until [`Fake::release_llm`]: whoever called is parked mid-turn.
    pub fn hold_llm(&self) {
        self.state.llm_held.send_replace(true);
    }

    pub fn release_llm(&self) {
        self.state.llm_held.send_replace(false);
    }

    /// Model calls waiting because of [`Fake::hold_llm`].
    pub fn parked_llm(&self) -> usize {
        self.state.llm_parked.load(Ordering::SeqCst)
    }

    pub fn llm_requests(&self) -> Vec<Recorded> {
        self.requests("/chat/completions")
    }

    /// Waits until `count` requests whose path contains `part` arrived; panics after `limit`.
    pub async fn wait_for(&self, part: &str, count: usize, limit: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + limit;
        loop {
            let arrived = self.state.arrived.notified();
            // Counted without copying: the scale test waits for thousands.
            let seen = {
                let all = self.state.requests.lock().unwrap();
                all.iter().filter(|r| r.path.contains(part)).count()
            };
            if seen >= count {
                return self.requests(part);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {limit:?} for {count} requests to {part}; got {seen}: {:?}",
                self.requests(part)
                    .iter()
                    .map(|r| r.body.clone())
                    .collect::<Vec<_>>()
            );
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

async fn handle(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.to_string();
    let raw = String::from_utf8_lossy(&body).into_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded {
        path: path.clone(),
        headers,
        raw,
        body: body.clone(),
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    if path.contains("/chat/completions") && *state.llm_held.borrow() {
        state.llm_parked.fetch_add(1, Ordering::SeqCst);
        let _ = state.llm_held.subscribe().wait_for(|held| !*held).await;
        state.llm_parked.fetch_sub(1, Ordering::SeqCst);
    }
    let scripted = if path.contains("/chat/completions") {
        state
            .llm
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| llm_text("default answer"))
    } else if path == "/v1/traces" {
        // An OTLP/HTTP collector taking spans as JSON.
        Scripted::ok(json!({ "partialSuccess": {} }))
    } else if path.ends_with("/oauth2/v2.0/token") {
        Scripted::ok(
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                            "access_token": "eyJ0eXAiOiJKV1QifQ.client-credentials-token.c2ln"}),
        )
    } else if path == "/search" || path.starts_with("/v1.0/") {
        let next = state.api.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            if path == "/search" {
                tavily_results(&body)
            } else if path.ends_with("/events") {
                let mut event = body.clone();
                event["id"] = json!("AAMkAGI2TG93AAA=");
                event["webLink"] =
                    json!("https://outlook.office365.com/owa/?itemid=AAMkAGI2TG93AAA%3D");
                Scripted::status(201, event)
            } else if path.ends_with("/sendMail") {
                Scripted::status(202, Value::Null)
            } else {
                Scripted::status(
                    404,
                    json!({"error": {"code": "ResourceNotFound", "message": "Resource not found"}}),
                )
            }
        })
    } else {
        let next = state.platform.lock().unwrap().pop_front();
        next.unwrap_or_else(|| {
            if path.contains("/sendMessage") {
                Scripted::ok(json!({ "ok": true, "result": { "message_id": 1, "date": 0, "chat": { "id": 1, "type": "private" } } }))
            } else if path.contains("/chat.postMessage") {
                Scripted::ok(json!({ "ok": true, "channel": "C1", "ts": "1.1" }))
            } else if path.starts_with("/webhooks/") && method == Method::POST {
                Scripted::ok(json!({ "id": "1", "content": "" }))
            } else {
                Scripted::status(404, json!({ "error": "unknown path" }))
            }
        })
    };
    tokio::time::sleep(scripted.delay).await;
    let mut response = (
        StatusCode::from_u16(scripted.status).unwrap(),
        axum::Json(scripted.body),
    )
        .into_response();
    for (name, value) in scripted.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Discord test key: the fake application's signing key.
pub fn discord_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

pub const TELEGRAM_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0";
pub const TELEGRAM_SECRET: &str = "webhook-secret-token";
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const SLACK_TOKEN: &str = "xoxb-1234567890-test-bot-token";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// A config with every platform and the LLM pointing at `fake`, plus `extra` TOML appended
/// (new sections only; change a value shown here with `str::replace`).
pub fn config(fake: &Fake, extra: &str) -> String {
    let key: String = discord_key()
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        r#"
[server]
admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 65536

[llm]
base_url = "{url}/v1"
model = "fake-model"
api_key = "sk-test-key-that-must-not-leak-0123456789"
retry_base_ms = 10
cache_ttl_secs = 0

[telegram]
bot_token = "{TELEGRAM_TOKEN}"
secret_token = "{TELEGRAM_SECRET}"
api_base = "{url}"

[slack]
signing_secret = "{SLACK_SECRET}"
bot_token = "{SLACK_TOKEN}"
api_base = "{url}/api"

[discord]
public_key = "{key}"
api_base = "{url}/api/v10"

[prices]
"fake-model" = {{ input_per_1k = 0.5, output_per_1k = 1.5 }}
{extra}
"#,
        url = fake.url()
    )
}

/// The real `molten serve`, killed when dropped.
pub struct Molten {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    config: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _dir: Option<TempDir>,
}

impl Molten {
    /// Starts `molten serve` with `config` in a fresh data directory.
    pub async fn start(config: &str, args: &[&str]) -> Self {
        Self::start_with_env(config, args, &[]).await
    }

    /// Starts `molten serve` with extra environment variables (not `MOLTEN_*` ones, which
    /// belong in `config`).
    pub async fn start_with_env(config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = temp_dir();
        let mut molten = Self::prepare(dir.path(), config, args);
        molten.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        molten._dir = Some(dir);
        molten.spawn().await;
        molten
    }

    fn prepare(data: &Path, config: &str, args: &[&str]) -> Self {
        share_compile_cache(data);
        let path = data.join("molten.toml");
        std::fs::write(&path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
        Self {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            data: data.to_owned(),
            config: path,
            args,
            env: Vec::new(),
            _dir: None,
        }
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("molten.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_molten"));
        for (var, _) in std::env::vars() {
            if var.starts_with("MOLTEN_") {
                command.env_remove(var);
            }
        }
        let child = command
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--skills-dir")
            .arg(root().join("target").join("skills"))
            .arg("serve")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "molten=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn molten");
        self.child = Some(child);
        let client = molten::service::http_client().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // A worker replica serves no routes: it is up once its consumers run.
        let worker_only = self.args.windows(2).any(|a| a == ["--role", "worker"]);
        let started = self.log().matches("worker started").count();
        let banners = self.log().matches(" listening on http://").count();
        loop {
            if worker_only {
                if self.log().matches("worker started").count() > started {
                    return;
                }
            } else if self.log().matches(" listening on http://").count() > banners {
                // The routes answer at once; the banner comes once the skills are loaded.
                let health = client.get(format!("{}/healthz", self.url)).send().await;
                assert!(health.is_ok_and(|r| r.status().is_success()));
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("molten exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "molten did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to end by itself and returns how it ended; panics after `limit`.
    #[cfg(feature = "failpoints")]
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "molten did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drops the extra environment variables `start_with_env` gave, for the next start.
    #[cfg(feature = "failpoints")]
    pub fn clear_env(&mut self) {
        self.env.clear();
    }

    /// Starts the same data directory and config again.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What admin route `path` answers, with the admin token.
    pub async fn admin(&self, path: &str) -> Value {
        self.get(path, Some(ADMIN_TOKEN))
            .await
            .json()
            .await
            .unwrap()
    }

    /// `molten ARGS` on this instance's data directory (so with its config), not started.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_molten"));
        command.arg("--data-dir").arg(&self.data).args(args);
        command
    }

    /// The skills `/admin/status` says are live.
    pub async fn live_skills(&self) -> Vec<String> {
        let status = self.admin("/admin/status").await;
        serde_json::from_value(status["skills"].clone()).unwrap()
    }

    /// Waits until skill `name` is live (`present`) or gone; returns how long that took.
    pub async fn until_skill(&self, name: &str, present: bool) -> Duration {
        let started = Instant::now();
        while self.live_skills().await.iter().any(|s| s == name) != present {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name} never {}:\n{}",
                if present { "came" } else { "left" },
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("molten.log")).unwrap_or_default()
    }

    /// A connection to the state database, for checking what was recorded.
    pub fn state(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data.join("state.db")).unwrap()
    }

    /// Messages in the queue (visible or leased).
    pub fn queue_depth(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.data.join("queue.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .unwrap()
    }

    /// Waits until every queued message has been handled and deleted (a reply is sent before
    /// its message leaves the queue, so a reply alone does not mean the queue is empty).
    pub async fn until_queue_empty(&self) {
        let started = Instant::now();
        while self.queue_depth() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the queue still holds {} messages",
                self.queue_depth()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn poisoned(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.data.join("queue.db")).unwrap();
        let mut stmt = conn.prepare("SELECT reason FROM poison").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The host directory that `user`'s skills see as `/tmp`.
    pub fn sandbox(&self, user: &str) -> PathBuf {
        molten::skills::Sandboxes::new(self.data.join("sandboxes"))
            .dir_for(user)
            .unwrap()
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = molten::service::http_client()
            .unwrap()
            .post(format!("{}{path}", self.url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.expect("molten answers")
    }

    /// POSTs to an admin route with the admin token.
    pub async fn post_admin(&self, path: &str) -> reqwest::Response {
        molten::service::http_client()
            .unwrap()
            .post(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("molten answers")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = molten::service::http_client()
            .unwrap()
            .get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("molten answers")
    }

    /// Posts a Telegram text message update with the right secret.
    pub async fn telegram(&self, update_id: i64, chat: i64, text: &str) -> reqwest::Response {
        self.try_telegram(update_id, chat, text)
            .await
            .expect("molten answers")
    }

    /// Posts a Telegram update; an error when molten did not answer (it died, or is down).
    pub async fn try_telegram(
        &self,
        update_id: i64,
        chat: i64,
        text: &str,
    ) -> reqwest::Result<reqwest::Response> {
        post_telegram(&self.url, update_id, chat, text).await
    }
}

/// Every secret the test config holds: none may appear in a log line.
pub const TEST_SECRETS: [&str; 6] = [
    TELEGRAM_TOKEN,
    TELEGRAM_SECRET,
    SLACK_SECRET,
    SLACK_TOKEN,
    ADMIN_TOKEN,
    "sk-test-key-that-must-not-leak-0123456789",
];

impl Drop for Molten {
    /// Stops molten, and fails the test if its log holds a secret of the test config.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            return;
        }
        let log = self.log();
        for secret in TEST_SECRETS {
            assert!(
                !log.contains(secret),
                "the log holds the secret {secret:?}:\n{log}"
            );
        }
    }
}

/// Posts a Telegram text message update with the right secret to the molten at `url`.
pub async fn post_telegram(
    url: &str,
    update_id: i64,
    chat: i64,
    text: &str,
) -> reqwest::Result<reqwest::Response> {
    molten::service::http_client()
        .unwrap()
        .post(format!("{url}/webhook/telegram"))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
        .body(telegram_update(update_id, chat, text).to_string())
        .send()
        .await
}

pub fn telegram_update(update_id: i64, chat: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1000,
            "date": 1_700_000_000,
            "from": { "id": chat, "is_bot": false, "first_name": "Ada" },
            "chat": { "id": chat, "type": "private", "first_name": "Ada" },
            "text": text
        }
    })
}

/// Headers Slack would send with `body` at `timestamp`.
pub fn slack_headers(body: &str, timestamp: u64) -> Vec<(&'static str, String)> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("content-type", "application/json".into()),
        ("x-slack-request-timestamp", timestamp.to_string()),
        ("x-slack-signature", format!("v0={sig}")),
    ]
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Headers Discord would send with `body`.
pub fn discord_headers(body: &str) -> Vec<(&'static str, String)> {
    use ed25519_dalek::Signer;
    let timestamp = now_secs().to_string();
    let sig = discord_key().sign(format!("{timestamp}{body}").as_bytes());
    let hex: String = sig.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("content-type", "application/json".into()),
        ("x-signature-ed25519", hex),
        ("x-signature-timestamp", timestamp),
    ]
}
