//! Replicas with a managed identity and no secrets of their own: the real `molten serve` gets
//! Entra tokens from the identity endpoint (Container Apps' `IDENTITY_ENDPOINT` protocol), reads
//! its Telegram token, its Azure OpenAI endpoint and a skill's API key from Key Vault (https, the
//! vault's challenge protocol), calls Azure OpenAI with a bearer token instead of a key, and
//! keeps its queue and state in a storage account it reaches with a token (Azurite over https
//! with `--oauth basic`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use molten::azure::StorageAccount;
use molten::queue::{AzureQueue, WorkQueue};
use molten::secrets::Secret;
use molten::store::{AzureStore, Store};

use crate::azurite::Names;
use crate::fakes::{config, llm_text, llm_tool, Fake, Molten, TELEGRAM_TOKEN};
use crate::support::temp_dir;

const IDENTITY_HEADER: &str = "identity-header-from-the-platform";
/// What the vault's challenge names, as Azure's vaults do.
const VAULT_RESOURCE: &str = "https://vault.azure.net";
const TAVILY_KEY: &str = "tvly-from-key-vault-0123456789";

const STORAGE_RESOURCE: &str = "https://storage.azure.com";

/// The token the identity endpoint issues for `resource`: JWT-shaped for storage (Azurite
/// decodes it and checks audience, issuer and lifetime, not the signature).
fn token_for(resource: &str) -> String {
    if resource != STORAGE_RESOURCE {
        return format!("mi-token:{resource}");
    }
    let now = molten::db::now_ms() / 1000;
    let part = |value: serde_json::Value| azure_core::base64::encode_url_safe(value.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({"alg": "RS256", "typ": "JWT"})),
        part(json!({
            "aud": STORAGE_RESOURCE,
            "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "5c1e7c2b-0d4b-4b8e-9c55-6d1b2f0e9a11",
        }))
    )
}

/// Starts the identity endpoint; returns its URL and the resources it issued tokens for.
async fn start_identity() -> (String, Arc<Mutex<Vec<String>>>) {
    let issued = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/msi/token", get(identity))
        .with_state(issued.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, issued)
}

/// `molten serve` on a platform that gives it a managed identity at `identity_url`, trusting
/// `cert` (rustls reads the system's roots from SSL_CERT_FILE).
async fn start_with_identity(settings: &str, identity_url: &str, cert: &std::path::Path) -> Molten {
    Molten::start_with_env(
        settings,
        &[],
        &[
            ("IDENTITY_ENDPOINT", identity_url),
            ("IDENTITY_HEADER", IDENTITY_HEADER),
            ("SSL_CERT_FILE", cert.to_str().unwrap()),
        ],
    )
    .await
}

/// A self-signed certificate for 127.0.0.1, as PEM files `<name>.pem` and `<name>.key`.
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    rcgen::CertifiedKey<rcgen::KeyPair>,
) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_file, key_file) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_file, key.cert.pem()).unwrap();
    std::fs::write(&key_file, key.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file, key)
}

/// The managed identity endpoint: tokens for any resource, to a caller with the header.
async fn identity(
    State(log): State<Arc<Mutex<Vec<String>>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_HEADER)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    let resource = query.get("resource").cloned().unwrap_or_default();
    log.lock().unwrap().push(resource.clone());
    let expires = molten::db::now_ms() / 1000 + 3600;
    Json(json!({
        "access_token": token_for(&resource),
        "expires_on": expires.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
    .into_response()
}

/// Key Vault's `GET /secrets/{name}/`: a 401 challenge without a token, the value with one.
async fn vault(
    State(secrets): State<Arc<HashMap<String, String>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth.is_none() {
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"{VAULT_RESOURCE}\""
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            Json(json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})),
        )
            .into_response();
    }
    if auth != Some(format!("Bearer {}", token_for(VAULT_RESOURCE)).as_str()) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": "Forbidden", "message": "Caller is not authorized to perform action on resource."}})),
        )
            .into_response();
    }
    match secrets.get(&name) {
        Some(value) => Json(json!({
            "value": value,
            "id": format!("https://127.0.0.1/secrets/{name}/4387e9f3d6e14c459867679a90fd0f79"),
            "attributes": {"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000, "recoveryLevel": "Recoverable+Purgeable"},
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "SecretNotFound", "message": format!("A secret with (name/id) {name} was not found in this key vault.")}})),
        )
            .into_response(),
    }
}

/// TLS over a loopback listener, for `axum::serve`.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(stream) = self.tls.accept(stream).await {
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `secrets` as a vault on https://127.0.0.1:PORT; returns its URL and the PEM file of
/// its self-signed certificate.
async fn start_vault(
    secrets: HashMap<String, String>,
    dir: &std::path::Path,
) -> (String, std::path::PathBuf) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_file = dir.join("vault.pem");
    std::fs::write(&cert_file, key.cert.pem()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", tcp.local_addr().unwrap().port());
    let listener = TlsListener {
        tcp,
        tls: TlsAcceptor::from(Arc::new(server)),
    };
    let app = axum::Router::new()
        .route("/secrets/{name}", get(vault))
        .route("/secrets/{name}/", get(vault))
        .with_state(Arc::new(secrets));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, cert_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_identity_replica_takes_its_secrets_from_key_vault_and_its_model_token_from_entra(
) {
    let fake = Fake::start().await;
    let dir = temp_dir();
    let secrets = HashMap::from([
        ("telegram-bot-token".to_owned(), TELEGRAM_TOKEN.to_owned()),
        ("azure-openai-endpoint".to_owned(), fake.url()),
        (
            "azure-openai-deployment".to_owned(),
            "gpt-4o-prod".to_owned(),
        ),
        ("tavily-api-key".to_owned(), TAVILY_KEY.to_owned()),
    ]);
    let (vault_url, cert) = start_vault(secrets, dir.path()).await;
    let issued = Arc::new(Mutex::new(Vec::new()));
    let identity_app = axum::Router::new()
        .route("/msi/token", get(identity))
        .with_state(issued.clone());
    let identity_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let identity_url = format!(
        "http://{}/msi/token",
        identity_listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(identity_listener, identity_app).await.unwrap() });

    // The config has no model, no key and no bot token: only where the vault is.
    let base = config(&fake, &crate::web_search::grant(&fake));
    let start = base.find("[llm]").unwrap();
    let end = base.find("[telegram]").unwrap();
    let settings = format!(
        "{}{}\n[azure]\nkey_vault_url = \"{vault_url}\"\n",
        &base[..start],
        &base[end..]
    )
    .replace(&format!("bot_token = \"{TELEGRAM_TOKEN}\"\n"), "");
    assert!(!settings.contains(TELEGRAM_TOKEN) && !settings.contains("[llm]"));
    let molten = start_with_identity(&settings, &identity_url, &cert).await;

    fake.script_llm([
        llm_tool("s1", "web_search", json!({"query": "molten rock"})),
        llm_text("Molten rock is liquid."),
    ]);
    molten.telegram(1, 42, "what is molten rock?").await;
    let sent = fake
        .wait_for("/sendMessage", 1, Duration::from_secs(60))
        .await;
    assert_eq!(sent[0].body["text"], "Molten rock is liquid.");
    assert!(
        sent[0].path.starts_with(&format!("/bot{TELEGRAM_TOKEN}/")),
        "the bot token came from the vault: {}",
        sent[0].path
    );
    let llm = fake.llm_requests();
    assert!(
        llm[0]
            .path
            .starts_with("/openai/deployments/gpt-4o-prod/chat/completions?api-version="),
        "{}",
        llm[0].path
    );
    assert_eq!(
        llm[0].headers["authorization"],
        format!(
            "Bearer {}",
            token_for("https://cognitiveservices.azure.com")
        )
    );
    assert!(llm[0].headers.get("api-key").is_none());
    assert_eq!(
        fake.requests("/search")[0].headers["authorization"],
        format!("Bearer {TAVILY_KEY}"),
        "the skill's key came from the vault, added by the host"
    );
    let issued = issued.lock().unwrap().clone();
    assert!(issued.contains(&VAULT_RESOURCE.to_owned()), "{issued:?}");
    assert!(
        issued.contains(&"https://cognitiveservices.azure.com".to_owned()),
        "{issued:?}"
    );
    // Nothing secret in the log.
    let log = molten.log();
    for secret in [TELEGRAM_TOKEN, TAVILY_KEY, "mi-token:"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_identity_replica_keeps_its_queue_and_state_in_storage_with_entra_tokens() {
    let fake = Fake::start().await;
    let dir = temp_dir();
    let (cert, key, _) = certificate(dir.path(), "azurite");
    let storage = crate::azurite::with_oauth(&cert, &key);
    let (identity_url, issued) = start_identity().await;
    let names = Names::new();
    // Endpoints and no key: an identity-based connection.
    let settings = config(&fake, &names.section(&storage.endpoints("https")));
    let molten = start_with_identity(&settings, &identity_url, &cert).await;
    molten.telegram(7, 77, "hello").await;
    let sent = fake
        .wait_for("/sendMessage", 1, Duration::from_secs(60))
        .await;
    assert_eq!(sent[0].body["text"], "default answer");
    assert!(issued
        .lock()
        .unwrap()
        .contains(&STORAGE_RESOURCE.to_owned()));

    // What the replica wrote, read back with the account key over the same https endpoints.
    let http = molten::net::client_builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let account = StorageAccount::from_connection_string(
        &Secret::new(format!(
            "UseDevelopmentStorage=true;{}",
            storage.endpoints("https")
        )),
        None,
        http,
    )
    .unwrap();
    let queue = AzureQueue::open(&account, &names.queue, &names.tables)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while queue.depth().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the message was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = AzureStore::open(&account, &names.container, &names.tables)
        .await
        .unwrap();
    let session = store
        .session("telegram:77", Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        session
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        ["hello", "default answer"]
    );
    assert!(store.replied("telegram:7").await.unwrap());
    assert!(!molten.log().contains("eyJ"), "no token in the log");
}
