//! What the OpenClaw client adds to a turn: `OpenClaw::turn` against a zero-latency loopback
//! gateway (challenge, connect, hello-ok once; then per turn `chat.send`, its `res`, a delta and
//! the final event), and how fast a turn falls back when the gateway is down: with no
//! connection, and when the gateway drops the connection right after taking the message.
//!
//! Run with `cargo bench --bench openclaw`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use molten::openclaw::{Device, OpenClaw, OpenClawConfig};
use molten::secrets::Secret;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::report;

const TURNS: usize = 2_000;

/// A gateway that lets anyone in and answers at once; with `drop_after_send`, it closes the
/// connection when a message arrives instead.
async fn gateway(drop_after_send: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            // As a Node.js gateway's ws server does.
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                let text = |v: Value| Message::text(v.to_string());
                let _ = tx
                    .send(text(json!({"type": "event", "event": "connect.challenge",
                        "payload": {"nonce": "n", "ts": 0}})))
                    .await;
                while let Some(Ok(Message::Text(frame))) = rx.next().await {
                    let request: Value = serde_json::from_str(&frame).expect("json");
                    let id = &request["id"];
                    if request["method"] == "connect" {
                        let hello = json!({"type": "res", "id": id, "ok": true, "payload": {
                            "type": "hello-ok", "protocol": 4,
                            "auth": {"scopes": ["operator.read", "operator.write"]},
                            "policy": {"tickIntervalMs": 30000}}});
                        let _ = tx.send(text(hello)).await;
                        continue;
                    }
                    if drop_after_send {
                        return;
                    }
                    let run = &request["params"]["idempotencyKey"];
                    let session = &request["params"]["sessionKey"];
                    let _ = tx
                        .send(text(json!({"type": "res", "id": id, "ok": true,
                            "payload": {"runId": run, "status": "started"}})))
                        .await;
                    let _ = tx
                        .send(text(json!({"type": "event", "event": "chat", "payload": {
                            "runId": run, "sessionKey": session, "seq": 1, "state": "delta",
                            "deltaText": "pong"}})))
                        .await;
                    let _ = tx
                        .send(text(json!({"type": "event", "event": "chat", "payload": {
                            "runId": run, "sessionKey": session, "seq": 2, "state": "final",
                            "message": {"role": "assistant", "content": [{"type": "text", "text": "pong"}]}}})))
                        .await;
                }
            });
        }
    });
    url
}

fn client(url: &str, dir: &std::path::Path) -> Arc<OpenClaw> {
    let config = OpenClawConfig {
        url: url.parse().expect("url"),
        token: Secret::new("bench"),
        turn_timeout: Duration::from_secs(10),
        device_key: None,
    };
    let device = Device::load_or_create(&dir.join("device.key")).expect("device");
    Arc::new(OpenClaw::new(config, device))
}

/// Starts `client` and waits until it is connected; it runs until the sender is dropped.
async fn connected(client: &Arc<OpenClaw>) -> tokio::sync::watch::Sender<bool> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(client.clone().run(shutdown));
    while !client.status().connected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let up = client(&gateway(false).await, dir.path());
        let _running = connected(&up).await;
        for i in 0..100 {
            up.turn(&format!("warm:{i}"), "agent:main:bench", "ping")
                .await
                .expect("turn");
        }
        let mut samples = Vec::with_capacity(TURNS);
        let start = Instant::now();
        for i in 0..TURNS {
            let t = Instant::now();
            let answer = up
                .turn(&format!("telegram:{i}"), "agent:main:bench", "ping")
                .await;
            samples.push(t.elapsed());
            assert_eq!(answer.expect("turn"), "pong");
        }
        report("gateway turn", start.elapsed(), samples);

        // Nothing listens: every turn fails at once and goes to the model.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let down = format!("ws://{}/", closed.local_addr().unwrap());
        drop(closed);
        let down = client(&down, dir.path());
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(down.clone().run(shutdown));
        let mut samples = Vec::new();
        let start = Instant::now();
        for i in 0..TURNS {
            let t = Instant::now();
            assert!(down.turn(&format!("d:{i}"), "s", "ping").await.is_err());
            samples.push(t.elapsed());
        }
        report("fallback, down", start.elapsed(), samples);

        // Connected, then the gateway drops the socket on the message: the turn ends when the
        // close is read.
        let mut samples = Vec::new();
        let start = Instant::now();
        let flaky_url = gateway(true).await;
        for i in 0..50 {
            let flaky = client(&flaky_url, dir.path());
            let _running = connected(&flaky).await;
            let t = Instant::now();
            assert!(flaky.turn(&format!("f:{i}"), "s", "ping").await.is_err());
            samples.push(t.elapsed());
        }
        report("fallback, drop", start.elapsed(), samples);
    });
}
