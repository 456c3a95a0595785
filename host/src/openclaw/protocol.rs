//! The OpenClaw gateway's frames (wire protocol 4) as a real gateway speaks them: the connect
//! request with its Ed25519 device proof, `chat.send`, and the `chat` events of a run. Every
//! object the gateway checks is closed, so nothing is sent that it does not know.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The protocol version spoken.
pub const PROTOCOL: u32 = 4;
/// The client id and mode of a server-side backend (an enum on the gateway's side).
pub const CLIENT_ID: &str = "gateway-client";
/// See [`CLIENT_ID`].
pub const CLIENT_MODE: &str = "backend";
/// The role asked for.
pub const ROLE: &str = "operator";
/// The scopes asked for: reading and sending chat.
pub const SCOPES: [&str; 2] = ["operator.read", "operator.write"];
/// The platform named in the connect request and the device proof.
const PLATFORM: &str = std::env::consts::OS;

/// A frame from the gateway.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Incoming {
    /// The answer to a request.
    Res {
        /// The request's id.
        id: String,
        /// Whether it succeeded.
        ok: bool,
        /// What it returned.
        #[serde(default)]
        payload: Value,
        /// Why it failed.
        #[serde(default)]
        error: Option<Fault>,
    },
    /// Something that happened.
    Event {
        /// Its name (`connect.challenge`, `chat`, `tick`, `shutdown`, ...).
        event: String,
        /// Its content.
        #[serde(default)]
        payload: Value,
    },
    /// A request from the gateway (none is expected of a backend).
    Req {},
}

/// A gateway error (`res.error`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fault {
    /// `INVALID_REQUEST`, `UNAVAILABLE`, `FORBIDDEN`, `NOT_PAIRED`, ...
    pub code: String,
    /// What it says.
    #[serde(default)]
    pub message: String,
    /// Details such as `{"code": "AUTH_TOKEN_MISMATCH"}`.
    #[serde(default)]
    pub details: Value,
    /// How long to wait before trying again, when the gateway says.
    #[serde(default, rename = "retryAfterMs")]
    pub retry_after_ms: Option<u64>,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(code) = self.details["code"].as_str() {
            write!(f, " ({code})")?;
        }
        Ok(())
    }
}

/// The persistent Ed25519 identity molten connects with.
pub struct Device {
    key: SigningKey,
}

impl Device {
    /// The key given as 64 hex digits (`openclaw.device_key`), so that every replica, however
    /// often it is replaced, is the one device the gateway paired.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let seed: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("not 64 hex digits (make one with: openssl rand -hex 32)")?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key in `path` (32 random bytes, hex), made and written (mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text).map_err(|why| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: {why}; delete it to make a new device identity",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(std::io::Error::other)?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::OpenOptions::new();
                file.write(true).create_new(true);
                std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
                std::io::Write::write_all(&mut file.open(path)?, hex::encode(seed).as_bytes())?;
                Ok(Self {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `device.id`: hex SHA-256 of the raw public key.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().as_bytes()))
    }

    /// `device.publicKey`: base64url (no padding) of the raw public key.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// The `device` object of a connect request answering the challenge (`nonce`, `ts`), signed
    /// over the v3 payload with the `token` sent in `auth`.
    pub fn proof(&self, token: &str, nonce: &str, ts: u64) -> Value {
        let payload = proof_payload(&self.id(), token, nonce, ts);
        json!({
            "id": self.id(),
            "publicKey": self.public_key(),
            "signature": URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes()),
            "signedAt": ts,
            "nonce": nonce,
        })
    }
}

/// What the device signs: `v3|id|client id|mode|role|scopes|signedAt|token|nonce|platform|family`.
pub fn proof_payload(device_id: &str, token: &str, nonce: &str, ts: u64) -> String {
    format!(
        "v3|{device_id}|{CLIENT_ID}|{CLIENT_MODE}|{ROLE}|{}|{ts}|{token}|{nonce}|{}|",
        SCOPES.join(","),
        PLATFORM.to_ascii_lowercase()
    )
}

/// The `connect` request answering the challenge (`nonce`, `ts`).
pub fn connect(
    id: &str,
    credential: Credential<'_>,
    device: &Device,
    nonce: &str,
    ts: u64,
) -> Value {
    let (auth, token) = match credential {
        Credential::Shared(token) => (json!({ "token": token }), token),
        Credential::Device(token) => (json!({ "deviceToken": token }), token),
    };
    json!({
        "type": "req",
        "id": id,
        "method": "connect",
        "params": {
            "minProtocol": PROTOCOL,
            "maxProtocol": PROTOCOL,
            "client": {
                "id": CLIENT_ID,
                "displayName": "molten",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": PLATFORM,
                "mode": CLIENT_MODE,
            },
            "caps": [],
            "role": ROLE,
            "scopes": SCOPES,
            "auth": auth,
            "userAgent": concat!("molten/", env!("CARGO_PKG_VERSION")),
            "device": device.proof(token, nonce, ts),
        },
    })
}

/// What molten connects with: the device proof is signed over the token sent.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The gateway's shared token (`gateway.auth.token`).
    Shared(&'a str),
    /// The device token the gateway issued when it paired molten's device.
    Device(&'a str),
}

/// A `chat.send` request: `message` to session `session_key`, run `idempotency_key` (a
/// redelivered message reuses it, so the gateway does not start a second run).
pub fn chat_send(id: &str, session_key: &str, message: &str, idempotency_key: &str) -> Value {
    json!({
        "type": "req",
        "id": id,
        "method": "chat.send",
        "params": {
            "sessionKey": session_key,
            "message": message,
            "idempotencyKey": idempotency_key,
        },
    })
}

/// What a `chat` event says about its run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// More text (`replace`: the text so far is replaced).
    Delta {
        /// The increment.
        text: String,
        /// Whether it replaces the text so far.
        replace: bool,
    },
    /// The run finished with this answer.
    Final(String),
    /// The run ended without an answer (`error` or `aborted`), and why.
    Failed(String),
    /// Progress without text (`status`).
    Status,
}

/// The run id and event of a `chat` event payload.
pub fn chat_event(payload: &Value) -> Option<(String, RunEvent)> {
    let run = payload["runId"].as_str()?.to_owned();
    let text_of = |message: &Value| -> String {
        message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect()
    };
    let event = match payload["state"].as_str()? {
        "delta" => RunEvent::Delta {
            text: payload["deltaText"].as_str().unwrap_or_default().to_owned(),
            replace: payload["replace"] == Value::Bool(true),
        },
        "final" => RunEvent::Final(text_of(&payload["message"])),
        "error" => RunEvent::Failed(format!(
            "the gateway's run failed: {} ({})",
            payload["errorMessage"].as_str().unwrap_or("no message"),
            payload["errorKind"].as_str().unwrap_or("unknown")
        )),
        "aborted" => RunEvent::Failed(format!(
            "the gateway aborted the run: {}",
            payload["errorMessage"]
                .as_str()
                .or(payload["stopReason"].as_str())
                .unwrap_or("no reason")
        )),
        _ => RunEvent::Status,
    };
    Some((run, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

    fn frame(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/openclaw")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// Checks `signature` (base64url) by `public_key` (base64url) over `payload`.
    fn verify(public_key: &str, signature: &str, payload: &str) {
        let key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(public_key)
            .unwrap()
            .try_into()
            .unwrap();
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap()
            .try_into()
            .unwrap();
        VerifyingKey::from_bytes(&key)
            .unwrap()
            .verify(payload.as_bytes(), &Signature::from_bytes(&signature))
            .expect("the signature is over this payload");
    }

    /// The v3 payload of a captured connect, rebuilt the way `proof_payload` builds it, is what
    /// the real client signed.
    #[test]
    fn the_captured_device_signature_verifies_over_the_v3_payload() {
        let connect = frame("02-connect-req.json");
        let p = &connect["params"];
        let device = &p["device"];
        let key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(device["publicKey"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(key)),
            device["id"].as_str().unwrap()
        );
        let scopes: Vec<&str> = p["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let payload = format!(
            "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
            device["id"].as_str().unwrap(),
            p["client"]["id"].as_str().unwrap(),
            p["client"]["mode"].as_str().unwrap(),
            p["role"].as_str().unwrap(),
            scopes.join(","),
            device["signedAt"],
            p["auth"]["token"].as_str().unwrap(),
            device["nonce"].as_str().unwrap(),
            p["client"]["platform"].as_str().unwrap(),
        );
        verify(
            device["publicKey"].as_str().unwrap(),
            device["signature"].as_str().unwrap(),
            &payload,
        );
    }

    #[test]
    fn our_proof_verifies_and_our_device_keeps_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw-device.key");
        let device = Device::load_or_create(&path).unwrap();
        let again = Device::load_or_create(&path).unwrap();
        assert_eq!(device.id(), again.id(), "the identity persists");
        let proof = device.proof("tok", "n-1", 1795600048529);
        let payload = proof_payload(&device.id(), "tok", "n-1", 1795600048529);
        assert!(payload.ends_with("|tok|n-1|linux|"), "{payload}");
        verify(
            proof["publicKey"].as_str().unwrap(),
            proof["signature"].as_str().unwrap(),
            &payload,
        );
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn captured_chat_events_make_one_answer() {
        let events = frame("06-chat-events-all.json");
        let mut text = String::new();
        let mut last = None;
        for frame in events.as_array().unwrap() {
            if frame["event"] != "chat" {
                continue;
            }
            match chat_event(&frame["payload"]).unwrap().1 {
                RunEvent::Delta { text: d, replace } => {
                    if replace {
                        text.clear();
                    }
                    text.push_str(&d);
                }
                other => last = Some(other),
            }
        }
        assert_eq!(text, "pong from fake llm");
        assert_eq!(last, Some(RunEvent::Final("pong from fake llm".into())));
        let error = frame("15-chat-error-events-llm-500.json");
        let failed = error
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["event"] == "chat")
            .filter_map(|f| chat_event(&f["payload"]))
            .find(|(_, e)| matches!(e, RunEvent::Failed(_)));
        assert!(failed.is_some());
    }
}
