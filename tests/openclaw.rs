//! The OpenClaw gateway backend against a loopback gateway that speaks protocol 4 as a real one
//! was captured speaking it (tests/data/openclaw): challenge, connect with the device signature
//! verified and closed schemas enforced, hello-ok, chat.send acknowledged and its run streamed
//! as chat events; and its failures. The user always gets exactly one answer: the gateway's, or
//! the model's when the gateway cannot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::fakes::{config, llm_text, Fake, Molten};

const TOKEN: &str = "gateway-token-for-tests";
const WAIT: Duration = Duration::from_secs(30);

/// How the fake gateway behaves.
#[derive(Clone, Debug, PartialEq)]
enum Mode {
    /// Answers every message after `delay`.
    Answer { delay: Duration },
    /// Speaks protocol 5 only.
    NewerProtocol,
    /// Refuses the first `n` connects with UNAVAILABLE and `retryAfterMs`.
    Starting {
        refusals: usize,
        retry_after_ms: u64,
    },
    /// Streams a delta, then drops the connection.
    DropMidAnswer,
    /// Accepts the socket and never says a word.
    Silent,
    /// Connects, then falls silent (no ticks, no answers).
    GoesQuiet,
}

#[derive(Default)]
struct Seen {
    /// Every connect request, after its device proof was verified.
    connects: Vec<Value>,
    /// Every chat.send's params.
    sends: Vec<Value>,
    /// Connects refused (UNAVAILABLE).
    refused: usize,
}

struct Gateway {
    url: String,
    /// The shared token (`gateway.auth.token`); a test may rotate it.
    token: Mutex<String>,
    /// The device token issued to each paired device id.
    paired: Mutex<HashMap<String, String>>,
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
    /// Bumped to close every open connection (a gateway restart).
    kick: tokio::sync::watch::Sender<u64>,
}

fn frame(name: &str) -> Value {
    let path = crate::support::root()
        .join("tests/data/openclaw")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The connect params' problem, as the gateway words it, if any (closed schemas, protocol
/// range, shared token or the device token issued to the device, device proof).
fn check_connect(
    params: &Value,
    shared: &str,
    paired: &HashMap<String, String>,
    nonce: &str,
    protocol: u64,
) -> Result<(), (Value, CloseCode)> {
    let refuse = |code: &str, message: &str, detail: Value, close| {
        Err((
            json!({"code": code, "message": message, "details": detail}),
            close,
        ))
    };
    let allowed = [
        "minProtocol",
        "maxProtocol",
        "client",
        "caps",
        "role",
        "scopes",
        "auth",
        "locale",
        "userAgent",
        "device",
        "commands",
        "permissions",
        "pathEnv",
    ];
    for key in params.as_object().unwrap().keys() {
        if !allowed.contains(&key.as_str()) {
            let message = format!("invalid connect params: unexpected property '{key}'");
            return refuse("INVALID_REQUEST", &message, Value::Null, CloseCode::Policy);
        }
    }
    let (min, max) = (
        params["minProtocol"].as_u64(),
        params["maxProtocol"].as_u64(),
    );
    if !(min <= Some(protocol) && max >= Some(protocol)) {
        return refuse(
            "INVALID_REQUEST",
            "protocol mismatch",
            json!({"code": "PROTOCOL_MISMATCH", "expectedProtocol": protocol}),
            CloseCode::Protocol,
        );
    }
    let device = &params["device"];
    let auth = &params["auth"];
    let token = match (auth["token"].as_str(), auth["deviceToken"].as_str()) {
        (Some(token), None) if token == shared => token,
        (Some(_), None) => {
            // As captured (10-auth-failure-wrong-token.json).
            let error =
                frame("10-auth-failure-wrong-token.json")["frames"][2]["frame"]["error"].clone();
            return Err((error, CloseCode::Policy));
        }
        (None, Some(token))
            if paired
                .get(device["id"].as_str().unwrap_or_default())
                .map(String::as_str)
                == Some(token) =>
        {
            token
        }
        _ => {
            return refuse(
                "INVALID_REQUEST",
                "unauthorized: device token mismatch (rotate/reissue device token)",
                json!({"code": "AUTH_DEVICE_TOKEN_MISMATCH", "canRetryWithDeviceToken": false}),
                CloseCode::Policy,
            )
        }
    };
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(device["publicKey"].as_str().unwrap_or_default())
        .unwrap_or_default()
        .try_into()
        .unwrap_or([0; 32]);
    if hex::encode(Sha256::digest(key)) != device["id"].as_str().unwrap_or_default() {
        return refuse(
            "INVALID_REQUEST",
            "device id mismatch",
            json!({"code": "DEVICE_AUTH_DEVICE_ID_MISMATCH"}),
            CloseCode::Policy,
        );
    }
    if device["nonce"] != nonce {
        return refuse(
            "INVALID_REQUEST",
            "nonce mismatch",
            json!({"code": "DEVICE_AUTH_NONCE_MISMATCH"}),
            CloseCode::Policy,
        );
    }
    let scopes: Vec<&str> = params["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let payload = format!(
        "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        device["id"].as_str().unwrap(),
        params["client"]["id"].as_str().unwrap(),
        params["client"]["mode"].as_str().unwrap(),
        params["role"].as_str().unwrap_or("operator"),
        scopes.join(","),
        device["signedAt"],
        token,
        nonce,
        params["client"]["platform"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        params["client"]["deviceFamily"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase(),
    );
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(device["signature"].as_str().unwrap_or_default())
        .unwrap_or_default()
        .try_into()
        .unwrap_or([0; 64]);
    let verified = VerifyingKey::from_bytes(&key)
        .map(|k| {
            k.verify(payload.as_bytes(), &Signature::from_bytes(&signature))
                .is_ok()
        })
        .unwrap_or(false);
    if !verified {
        return refuse(
            "INVALID_REQUEST",
            "device signature invalid",
            json!({"code": "DEVICE_AUTH_SIGNATURE_INVALID"}),
            CloseCode::Policy,
        );
    }
    Ok(())
}

impl Gateway {
    async fn start(mode: Mode) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Arc::new(Self {
            url: format!("ws://{}/", listener.local_addr().unwrap()),
            token: Mutex::new(TOKEN.into()),
            paired: Mutex::default(),
            mode: Mutex::new(mode),
            seen: Mutex::default(),
            kick: tokio::sync::watch::Sender::new(0),
        });
        let serving = gateway.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let gateway = serving.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(socket).await {
                        gateway.serve(ws).await;
                    }
                });
            }
        });
        gateway
    }

    fn mode(&self) -> Mode {
        self.mode.lock().unwrap().clone()
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Restarts with a new shared token: every connection closes; paired devices stay paired.
    fn rotate_token(&self, token: &str) {
        *self.token.lock().unwrap() = token.into();
        self.kick.send_modify(|n| *n += 1);
    }

    /// Forgets every paired device (their device tokens stop working).
    fn unpair_all(&self) {
        self.paired.lock().unwrap().clear();
    }

    async fn serve(&self, ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) {
        let (mut tx, mut rx) = ws.split();
        let send = |v: Value| Message::text(v.to_string());
        if self.mode() == Mode::Silent {
            // Holds the socket open and says nothing.
            while rx.next().await.is_some() {}
            return;
        }
        let nonce = format!("nonce-{}", now_ms());
        let _ = tx
            .send(send(json!({"type": "event", "event": "connect.challenge",
                "payload": {"nonce": nonce, "ts": now_ms(), "capabilities": ["model-catalog-snapshot"]}})))
            .await;
        let Some(Ok(Message::Text(first))) = rx.next().await else {
            return;
        };
        let connect: Value = serde_json::from_str(&first).unwrap();
        let id = connect["id"].clone();
        if connect["method"] != "connect" {
            let _ = tx.send(send(json!({"type": "res", "id": id, "ok": false,
                "error": {"code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}))).await;
            return;
        }
        let params = connect["params"].clone();
        let protocol = if self.mode() == Mode::NewerProtocol {
            5
        } else {
            4
        };
        if let Mode::Starting {
            refusals,
            retry_after_ms,
        } = self.mode()
        {
            let refuse = {
                let mut seen = self.seen.lock().unwrap();
                let refuse = seen.refused < refusals;
                seen.refused += usize::from(refuse);
                refuse
            };
            if refuse {
                let _ = tx.send(send(json!({"type": "res", "id": id, "ok": false,
                    "error": {"code": "UNAVAILABLE", "message": "gateway starting", "retryable": true,
                              "retryAfterMs": retry_after_ms, "details": {"reason": "startup-sidecars"}}}))).await;
                let _ = tx
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Again,
                        reason: "gateway starting".into(),
                    })))
                    .await;
                return;
            }
        }
        let checked = {
            let shared = self.token.lock().unwrap().clone();
            check_connect(
                &params,
                &shared,
                &self.paired.lock().unwrap(),
                &nonce,
                protocol,
            )
        };
        if let Err((error, code)) = checked {
            let reason = error["message"].as_str().unwrap().to_owned();
            let _ = tx
                .send(send(
                    json!({"type": "res", "id": id, "ok": false, "error": error}),
                ))
                .await;
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            return;
        }
        self.seen.lock().unwrap().connects.push(params.clone());
        let device = params["device"]["id"].as_str().unwrap().to_owned();
        let issued = format!("device-token-{}", now_ms());
        self.paired.lock().unwrap().insert(device, issued.clone());
        let method = if params["auth"]["deviceToken"].is_string() {
            "device-token"
        } else {
            "token"
        };
        let mut hello = frame("03-hello-ok-res.json");
        hello["id"] = id;
        hello["payload"]["auth"] = json!({"method": method, "role": "operator",
            "scopes": params["scopes"], "deviceToken": issued, "issuedAtMs": now_ms()});
        if self.mode() == Mode::GoesQuiet {
            hello["payload"]["policy"]["tickIntervalMs"] = json!(300);
        }
        let _ = tx.send(send(hello)).await;
        if self.mode() == Mode::GoesQuiet {
            while rx.next().await.is_some() {}
            return;
        }
        let mut seq = 0;
        let mut runs: HashMap<String, String> = HashMap::new();
        let mut kicked = self.kick.subscribe();
        loop {
            let message = tokio::select! {
                message = rx.next() => message,
                _ = kicked.changed() => {
                    let _ = tx
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Restart,
                            reason: "gateway restarting".into(),
                        })))
                        .await;
                    return;
                }
            };
            let Some(Ok(message)) = message else {
                return;
            };
            let Message::Text(text) = message else {
                continue;
            };
            let request: Value = serde_json::from_str(&text).unwrap();
            if request["method"] != "chat.send" {
                continue;
            }
            let p = &request["params"];
            for key in p.as_object().unwrap().keys() {
                assert!(
                    ["sessionKey", "message", "idempotencyKey"].contains(&key.as_str()),
                    "{key}"
                );
            }
            self.seen.lock().unwrap().sends.push(p.clone());
            let run = p["idempotencyKey"].as_str().unwrap().to_owned();
            let answer = runs
                .entry(run.clone())
                .or_insert_with(|| format!("gateway says: {}", p["message"].as_str().unwrap()))
                .clone();
            let _ = tx
                .send(send(json!({"type": "res", "id": request["id"], "ok": true,
                "payload": {"runId": run, "status": "started"}})))
                .await;
            let mut event = |payload: Value| {
                seq += 1;
                send(json!({"type": "event", "event": "chat", "payload": payload, "seq": seq}))
            };
            let base = json!({"runId": run, "sessionKey": p["sessionKey"], "agentId": "main"});
            let with = |extra: Value| {
                let mut payload = base.clone();
                payload
                    .as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                payload
            };
            let _ = tx
                .send(event(with(
                    json!({"seq": 1, "state": "status", "phase": "starting_model"}),
                )))
                .await;
            let (first, rest) = answer.split_at(answer.len() / 2);
            let _ = tx
                .send(event(with(
                    json!({"seq": 2, "state": "delta", "deltaText": first}),
                )))
                .await;
            match self.mode() {
                Mode::DropMidAnswer => return,
                Mode::Answer { delay } => tokio::time::sleep(delay).await,
                _ => {}
            }
            let _ = tx
                .send(event(with(
                    json!({"seq": 3, "state": "delta", "deltaText": rest}),
                )))
                .await;
            let _ = tx
                .send(event(with(
                    json!({"seq": 3, "state": "final", "stopReason": "stop",
                "message": {"role": "assistant", "content": [{"type": "text", "text": answer}]}}),
                )))
                .await;
        }
    }
}

fn settings(fake: &Fake, url: &str, token: &str) -> String {
    config(
        fake,
        &format!("[openclaw]\nurl = \"{url}\"\ntoken = \"{token}\"\nturn_timeout_secs = 5\n[worker]\nvisibility_timeout_secs = 2\n"),
    )
}

/// The texts sent to Telegram so far, once `count` have arrived.
async fn replies(fake: &Fake, count: usize) -> Vec<String> {
    fake.wait_for("/sendMessage", count, WAIT)
        .await
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until molten says it is connected to the gateway.
async fn until_connected(molten: &Molten) {
    let started = Instant::now();
    loop {
        let status = molten.admin("/admin/status").await;
        if status["openclaw"]["connected"] == true {
            return;
        }
        assert!(started.elapsed() < WAIT, "not connected: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway answering after `delay`, and a molten connected to it with the right token.
async fn connected(delay: Duration) -> (Fake, Arc<Gateway>, Molten) {
    let fake = Fake::start().await;
    let gateway = Gateway::start(Mode::Answer { delay }).await;
    let molten = Molten::start(&settings(&fake, &gateway.url, TOKEN), &[]).await;
    until_connected(&molten).await;
    (fake, gateway, molten)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_goes_through_the_gateway_with_a_verified_device() {
    let (fake, gateway, molten) = connected(Duration::ZERO).await;
    molten.telegram(1, 5, "hello").await;
    assert_eq!(replies(&fake, 1).await, ["gateway says: hello"]);
    assert!(fake.llm_requests().is_empty(), "the model was not asked");

    let connect = gateway.seen(|s| s.connects[0].clone());
    assert_eq!(connect["client"]["id"], "gateway-client");
    assert_eq!(connect["client"]["mode"], "backend");
    assert_eq!(
        connect["scopes"],
        json!(["operator.read", "operator.write"])
    );
    let send = gateway.seen(|s| s.sends[0].clone());
    assert_eq!(
        send["idempotencyKey"], "telegram:1",
        "the queue message's dedupe key"
    );
    assert_eq!(send["sessionKey"], "agent:main:molten-telegram-5");

    let status = molten.admin("/admin/status").await;
    assert_eq!(status["openclaw"]["answered"], 1, "{status}");
    assert_eq!(
        status["openclaw"]["paired"], true,
        "the device token was kept"
    );
    let device = status["openclaw"]["device"].as_str().unwrap().to_owned();
    assert_eq!(device, connect["device"]["id"]);
    let ready = molten
        .get("/ready", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["openclaw"], "connected");

    // The device identity persists across a restart.
    let mut molten = molten;
    molten.restart().await;
    until_connected(&molten).await;
    assert_eq!(
        molten.admin("/admin/status").await["openclaw"]["device"],
        device.as_str()
    );
}

/// Starts molten against `gateway` (token `token`), sends one message and returns its reply
/// and molten.
async fn model_answers_instead(gateway_url: &str, token: &str) -> (Fake, Molten, String) {
    let fake = Fake::start().await;
    let molten = Molten::start(&settings(&fake, gateway_url, token), &[]).await;
    fake.script_llm([llm_text("the model answers")]);
    molten.telegram(1, 5, "hello").await;
    let reply = replies(&fake, 1).await.remove(0);
    (fake, molten, reply)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_falls_back_to_the_model_and_says_why() {
    let gateway = Gateway::start(Mode::Answer {
        delay: Duration::ZERO,
    })
    .await;
    let (_fake, molten, reply) = model_answers_instead(&gateway.url, "not-the-token").await;
    assert_eq!(reply, "the model answers");
    until("the refusal logged", || {
        molten.log().contains("AUTH_TOKEN_MISMATCH")
    })
    .await;
    let log = molten.log();
    assert!(log.contains("set openclaw.token"), "{log}");
    assert!(!log.contains("not-the-token"), "the token is never logged");
    let ready = molten.get("/ready", None).await;
    assert_eq!(ready.status(), 200, "the gateway is optional");
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["checks"]["openclaw"]
            .as_str()
            .unwrap()
            .contains("turns go to the model"),
        "{ready}"
    );
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["openclaw"]["fallbacks"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_gateway_token_is_bridged_by_the_device_token() {
    let (fake, gateway, molten) = connected(Duration::ZERO).await;
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["openclaw"]["auth"], "token", "{status}");
    assert_eq!(status["openclaw"]["paired"], true, "{status}");
    let issued = gateway
        .paired
        .lock()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();

    // The gateway restarts with a new shared token; molten still has the old one.
    gateway.rotate_token("rotated-token");
    until("a reconnect with the device token", || {
        gateway.seen(|s| s.connects.len()) == 2
    })
    .await;
    let again = gateway.seen(|s| s.connects[1].clone());
    // The gateway verified the device proof, signed over the device token sent.
    assert_eq!(again["auth"], json!({ "deviceToken": issued }));
    until_connected(&molten).await;
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["openclaw"]["auth"], "device-token", "{status}");
    molten.telegram(1, 5, "still there?").await;
    assert_eq!(replies(&fake, 1).await, ["gateway says: still there?"]);
    assert!(fake.llm_requests().is_empty(), "the model was not asked");
    let log = molten.log();
    assert!(log.contains("connected with the device token"), "{log}");
    assert!(!log.contains(&issued), "the device token is never logged");

    // Unpaired as well: nothing molten holds is accepted, and the model answers.
    gateway.unpair_all();
    gateway.rotate_token("rotated-again");
    until("both refusals logged", || {
        molten.log().contains("the device token was refused too")
    })
    .await;
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["openclaw"]["connected"], false, "{status}");
    assert_eq!(status["openclaw"]["paired"], false, "{status}");
    fake.script_llm([llm_text("the model answers")]);
    molten.telegram(2, 6, "and now?").await;
    assert_eq!(replies(&fake, 2).await[1], "the model answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protocol_mismatch_falls_back_and_names_it() {
    let gateway = Gateway::start(Mode::NewerProtocol).await;
    let (_fake, molten, reply) = model_answers_instead(&gateway.url, TOKEN).await;
    assert_eq!(reply, "the model answers");
    until("the mismatch logged", || {
        molten.log().contains("PROTOCOL_MISMATCH")
    })
    .await;
    assert!(molten.log().contains("speaks OpenClaw protocol 4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_starting_gateway_is_retried_after_the_wait_it_asks_for() {
    let fake = Fake::start().await;
    let gateway = Gateway::start(Mode::Starting {
        refusals: 2,
        retry_after_ms: 200,
    })
    .await;
    let started = Instant::now();
    let molten = Molten::start(&settings(&fake, &gateway.url, TOKEN), &[]).await;
    until_connected(&molten).await;
    // Two refusals, each followed by the 200 ms it asked for rather than the 1 s, 2 s backoff.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gateway.seen(|s| s.refused), 2);
    molten.telegram(1, 5, "hi").await;
    assert_eq!(replies(&fake, 1).await, ["gateway says: hi"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_that_drops_mid_answer_leaves_the_model_to_answer_once() {
    let fake = Fake::start().await;
    let gateway = Gateway::start(Mode::DropMidAnswer).await;
    let molten = Molten::start(&settings(&fake, &gateway.url, TOKEN), &[]).await;
    until_connected(&molten).await;
    fake.script_llm([llm_text("the model answers")]);
    molten.telegram(1, 5, "hello").await;
    assert_eq!(replies(&fake, 1).await, ["the model answers"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.requests("/sendMessage").len(),
        1,
        "one answer, no partial text"
    );
    assert_eq!(gateway.seen(|s| s.sends.len()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_or_missing_gateway_never_holds_a_turn() {
    for url in [
        Gateway::start(Mode::Silent).await.url.clone(),
        // Nothing listens there.
        format!(
            "ws://{}/",
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        ),
    ] {
        let started = Instant::now();
        let (_fake, molten, reply) = model_answers_instead(&url, TOKEN).await;
        assert_eq!(reply, "the model answers");
        // Well inside turn_timeout_secs: without a connection the model answers at once.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let status = molten.admin("/admin/status").await;
        assert_eq!(status["openclaw"]["connected"], false, "{status}");
        assert!(status["openclaw"]["last_error"].is_string(), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_that_falls_silent_is_dropped_and_the_model_answers() {
    let fake = Fake::start().await;
    let gateway = Gateway::start(Mode::GoesQuiet).await;
    let molten = Molten::start(&settings(&fake, &gateway.url, TOKEN), &[]).await;
    until_connected(&molten).await;
    fake.script_llm([llm_text("the model answers")]);
    molten.telegram(1, 5, "hello").await;
    assert_eq!(replies(&fake, 1).await, ["the model answers"]);
    until("the silence noticed", || {
        molten.log().contains("not even a tick")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_turn_and_restarted_it_answers_once_with_the_same_run() {
    let (fake, gateway, mut molten) = connected(Duration::from_secs(2)).await;
    molten.telegram(1, 5, "hello").await;
    until("the turn reached the gateway", || {
        gateway.seen(|s| s.sends.len()) == 1
    })
    .await;
    molten.kill();
    *gateway.mode.lock().unwrap() = Mode::Answer {
        delay: Duration::ZERO,
    };
    molten.restart().await;
    assert_eq!(replies(&fake, 1).await, ["gateway says: hello"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.requests("/sendMessage").len(), 1, "answered once");
    let sends = gateway.seen(|s| s.sends.clone());
    assert_eq!(sends.len(), 2, "the redelivery asked again");
    assert_eq!(
        sends[0]["idempotencyKey"], sends[1]["idempotencyKey"],
        "as the same run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_given_one_device_key_are_one_device() {
    let fake = Fake::start().await;
    let gateway = Gateway::start(Mode::Answer {
        delay: Duration::ZERO,
    })
    .await;
    let key = "11".repeat(32);
    let settings = settings(&fake, &gateway.url, TOKEN).replace(
        "[openclaw]\n",
        &format!("[openclaw]\ndevice_key = \"{key}\"\n"),
    );
    let replicas = [
        Molten::start(&settings, &[]).await,
        Molten::start(&settings, &[]).await,
    ];
    for molten in &replicas {
        until_connected(molten).await;
    }
    let devices: Vec<Value> = gateway.seen(|s| {
        s.connects
            .iter()
            .map(|c| c["device"]["id"].clone())
            .collect()
    });
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0], devices[1], "one device for both replicas");
    assert!(!replicas[0].data.join("openclaw-device.key").exists());

    // A key that is not one is refused at start, with what to do.
    let out = replicas[0]
        .cli(&["skill", "list"])
        .env("MOLTEN_OPENCLAW_DEVICE_KEY", "not-hex")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("openclaw.device_key") && said.contains("openssl rand -hex 32"),
        "{said}"
    );
}
