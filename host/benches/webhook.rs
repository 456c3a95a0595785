//! The chat pipeline's own cost, in one process on loopback:
//!
//! - `ack`: Telegram webhook throughput and acknowledgement latency with durable enqueue
//!   (ingress only), from a load generator on its own thread and runtime;
//! - `pipeline`: webhook to reply sent, with a zero-latency model that asks for one
//!   `text_editor` call and then answers.
//!
//! Each runs twice, in a child process each: observability off (the log at its default level,
//! no traces, nobody scraping), then on (every span exported over OTLP to a loopback collector,
//! `/metrics` scraped every 100 ms).
//!
//! Run with `scripts/build-skills && cargo bench --bench webhook [ack|pipeline]`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use molten::config::Config;
use molten::service::{http_client, Role, Service};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use common::report;

const SECRET: &str = "bench-secret";
const ACK_REQUESTS: usize = 40_000;
const ACK_CONNECTIONS: usize = 32;
const TURNS: usize = 500;

/// Set in a child: `off` or `on`.
const OBSERVED: &str = "MOLTEN_BENCH_OBSERVED";

fn main() {
    let which = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let Ok(mode) = std::env::var(OBSERVED) else {
        // A subscriber is set once per process: each benchmark and mode gets its own.
        let exe = std::env::current_exe().expect("own path");
        for bench in ["ack", "pipeline"] {
            if which.as_deref().is_some_and(|w| w != bench) {
                continue;
            }
            for mode in ["off", "on"] {
                let status = std::process::Command::new(&exe)
                    .arg(bench)
                    .env(OBSERVED, mode)
                    .status()
                    .expect("run the benchmark");
                assert!(status.success(), "{bench} with observability {mode} failed");
            }
        }
        return;
    };
    let observed = mode == "on";
    match which.as_deref() {
        Some("ack") => ack(observed),
        Some("pipeline") => pipeline(observed),
        other => panic!("no benchmark {other:?}: ack or pipeline"),
    }
}

/// Installs the log as `molten serve` does and, when `observed`, an OTLP exporter to a loopback
/// collector on `rt`; returns the exporter and the count of spans the collector got.
fn observe(
    rt: &tokio::runtime::Runtime,
    observed: bool,
) -> Option<(
    opentelemetry_sdk::trace::SdkTracerProvider,
    Arc<AtomicUsize>,
)> {
    if !observed {
        molten::telemetry::install(false, "warn", None);
        return None;
    }
    let spans = Arc::new(AtomicUsize::new(0));
    let collector = axum::Router::new()
        .route("/v1/traces", axum::routing::post(collect))
        .with_state(spans.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let endpoint = format!("http://{}/", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, collector).await.unwrap() });
    let telemetry = molten::telemetry::TelemetryConfig {
        otlp_endpoint: Some(endpoint.parse().expect("url")),
        service_name: "bench".into(),
        export_delay: Duration::from_millis(500),
    };
    let provider = rt
        .block_on(async { molten::telemetry::provider(&telemetry, http_client().expect("client")) })
        .expect("a provider");
    molten::telemetry::install(false, "warn", Some(&provider));
    Some((provider, spans))
}

/// The loopback collector: counts the spans of each export.
async fn collect(State(spans): State<Arc<AtomicUsize>>, Json(export): Json<Value>) -> Json<Value> {
    let count = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .map_or(0, Vec::len);
    spans.fetch_add(count, Ordering::Relaxed);
    Json(json!({}))
}

/// Flushes the exporter and says how many spans the collector got.
fn finish(
    observation: Option<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        Arc<AtomicUsize>,
    )>,
) {
    if let Some((provider, spans)) = observation {
        provider.shutdown().expect("flush the spans");
        println!("  ({} spans exported)", spans.load(Ordering::Relaxed));
    }
}

/// `ack` or `pipeline`, and whether observability is on.
fn label(what: &str, observed: bool) -> String {
    format!(
        "{what} [observability {}]",
        if observed { "on" } else { "off" }
    )
}

fn config(dir: &std::path::Path, platform: &str, extra: &str) -> Config {
    let skills = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/skills");
    let text = format!(
        "skills_dirs = [{skills:?}]\n[server]\nadmin_token = \"x\"\n[telegram]\nbot_token = \"1:bench\"\nsecret_token = \"{SECRET}\"\napi_base = \"{platform}\"\n{extra}"
    );
    let path = dir.join("molten.toml");
    std::fs::write(&path, text).expect("write config");
    Config::load(Some(&path), Some(dir.to_owned()), Vec::new(), |_| None).expect("config")
}

fn update(id: usize) -> String {
    json!({"update_id": id, "message": {"message_id": id, "date": 0,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "B"},
        "text": "hello"}})
    .to_string()
}

/// Posts Telegram update `id` and checks it was acknowledged.
async fn post_update(client: &reqwest::Client, url: &str, id: usize) {
    let response = client
        .post(format!("{url}/webhook/telegram"))
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", SECRET)
        .body(update(id))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// Starts `service` on an ephemeral port (scraping its `/metrics` every 100 ms when
/// `observed`); returns its URL and the stop switch.
fn start(
    rt: &tokio::runtime::Runtime,
    service: Service,
    role: Role,
    observed: bool,
) -> (String, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move {
        service
            .serve(role, Some(listener), shutdown, |_| {})
            .await
            .expect("serve")
    });
    if observed {
        let metrics = format!("{url}/metrics");
        rt.spawn(async move {
            let client = http_client().expect("client");
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(response) = client.get(&metrics).bearer_auth("x").send().await {
                    let _ = response.bytes().await;
                }
            }
        });
    }
    (url, stop)
}

fn ack(observed: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = server_runtime();
    let observation = observe(&rt, observed);
    let service = rt
        .block_on(Service::build(
            config(dir.path(), "http://127.0.0.1:9", ""),
            None,
        ))
        .expect("service");
    let queue = service.state.queue.clone();
    let (url, _stop) = start(&rt, service, Role::Ingress, observed);

    // The load generator gets its own thread and single-threaded runtime, as a separate
    // process would; both share the machine's cores.
    let samples = std::thread::spawn(move || {
        let gen = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        gen.block_on(async move {
            let client = http_client().expect("client");
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..ACK_CONNECTIONS {
                let (client, next, url) = (client.clone(), next.clone(), url.clone());
                tasks.spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if id >= ACK_REQUESTS {
                            return samples;
                        }
                        let t = Instant::now();
                        post_update(&client, &url, id).await;
                        samples.push(t.elapsed());
                    }
                });
            }
            let mut samples = Vec::new();
            while let Some(part) = tasks.join_next().await {
                samples.extend(part.expect("connection task"));
            }
            (start.elapsed(), samples)
        })
    })
    .join()
    .expect("load generator");
    report(&label("webhook ack", observed), samples.0, samples.1);
    let depth = rt.block_on(queue.depth()).expect("depth");
    assert_eq!(
        depth as usize, ACK_REQUESTS,
        "every acknowledged webhook is queued"
    );
    finish(observation);
}

async fn fake_llm(Json(request): Json<Value>) -> Json<Value> {
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let message = if last["role"] == "tool" {
        json!({"role": "assistant", "content": "done"})
    } else {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "text_editor", "arguments": "{\"command\":\"view\",\"path\":\"/tmp\"}"}}]})
    };
    Json(
        json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2}}),
    )
}

/// Reports when each reply arrived.
async fn fake_telegram(State(sent): State<mpsc::UnboundedSender<Instant>>) -> Json<Value> {
    let _ = sent.send(Instant::now());
    Json(json!({"ok": true, "result": {"message_id": 1}}))
}

fn pipeline(observed: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = server_runtime();
    let observation = observe(&rt, observed);
    let (sent, mut rx) = mpsc::unbounded_channel();
    let fake = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(fake_llm))
        .fallback(axum::routing::post(fake_telegram))
        .with_state(sent);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, fake).await.unwrap() });
    let extra = format!("[llm]\nbase_url = \"{fake_url}/v1\"\nmodel = \"m\"\ncache_ttl_secs = 0\n");
    let service = rt
        .block_on(Service::build(config(dir.path(), &fake_url, &extra), None))
        .expect("service");
    let registry = service.state.registry.clone();
    let (url, _stop) = start(&rt, service, Role::All, observed);
    while !registry.progress().finished {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        registry.get("text_editor").is_some(),
        "run scripts/build-skills first"
    );
    let samples = rt.block_on(async move {
        let client = http_client().expect("client");
        let mut samples = Vec::with_capacity(TURNS);
        let start = Instant::now();
        for id in 0..TURNS + 20 {
            let t = Instant::now();
            post_update(&client, &url, id).await;
            let arrived = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a reply within 10 s")
                .expect("fake telegram");
            // The first turns warm up connections and the component's code.
            if id >= 20 {
                samples.push(arrived - t);
            }
        }
        (start.elapsed(), samples)
    });
    report(&label("webhook->reply", observed), samples.0, samples.1);
    finish(observation);
}
