//! The HTTP side: platform webhooks, health and admin routes. A webhook is verified before its
//! body is parsed, normalised into an [`Envelope`], and durably queued before the 200 goes back;
//! no model work happens on the request path.

mod admin;
mod discord;
pub mod entra;
mod slack;
mod telegram;
pub mod verify;

pub use admin::apply_switches;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Notify;
use tracing::Instrument as _;

use crate::config::Config;
use crate::envelope::Envelope;
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::skills::Registry;
use crate::store::Store;

/// What every route shares.
#[derive(Clone)]
pub struct AppState {
    /// Where accepted messages go.
    pub queue: Arc<dyn WorkQueue>,
    /// Dedupe and totals.
    pub store: Arc<dyn Store>,
    /// Skills, for readiness and status.
    pub registry: Arc<Registry>,
    /// Secrets, limits, platform settings.
    pub config: Arc<Config>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Wakes an in-process worker when a message is queued.
    pub wake: Arc<Notify>,
    /// For uptime.
    pub started: Instant,
    /// The OpenClaw gateway client, for its state in `/ready` and `/admin/status`.
    pub openclaw: Option<Arc<crate::openclaw::OpenClaw>>,
    slack: Option<Arc<verify::SlackVerifier>>,
    discord: Option<Arc<verify::DiscordVerifier>>,
    entra: Option<Arc<entra::EntraVerifier>>,
}

/// The router with every route and the body limit. Every refusal, whoever makes it (a route,
/// the body limit, an unknown path or method), is a JSON `{"error": ...}` and is counted.
pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    let refusals = state.clone();
    Router::new()
        .route("/webhook/telegram", post(telegram::webhook))
        .route("/webhook/slack", post(slack::webhook))
        .route("/webhook/discord", post(discord::webhook))
        .route("/healthz", get(admin::healthz))
        .route("/ready", get(admin::ready))
        .route("/admin/status", get(admin::status))
        .route("/admin/skills", get(admin::skills))
        .route("/admin/skills/{name}/disable", post(admin::disable_skill))
        .route("/admin/skills/{name}/enable", post(admin::enable_skill))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/poison", get(admin::poison))
        .route("/admin/poison/{id}/retry", post(admin::retry_poisoned))
        .route("/metrics", get(admin::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let state = refusals.clone();
                async move {
                    // Matched routes by their pattern, everything else as one label: the
                    // label set stays small whatever paths clients try.
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
                    // A webhook starts the trace of a turn (see crate::telemetry).
                    let response = if route.starts_with("/webhook/") {
                        let span = tracing::debug_span!("webhook", route = %route);
                        next.run(request).instrument(span).await
                    } else {
                        next.run(request).await
                    };
                    state
                        .metrics
                        .requests
                        .get_or_create(&crate::metrics::RouteLabels {
                            route,
                            status: response.status().as_u16(),
                        })
                        .inc();
                    state.refusal(response)
                }
            },
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "no route {}; molten serves POST /webhook/telegram, /webhook/slack, /webhook/discord, \
         GET /healthz, /ready, /metrics, /admin/status, /admin/skills, /admin/poison",
        uri.path()
    );
    (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let message = format!(
        "{method} is not allowed on {}; webhooks are POST, health and admin routes GET",
        uri.path()
    );
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// A request molten does not accept, as the HTTP status and a JSON `{"error": ...}` body.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The platform is not configured: 404.
    #[error("{0} is not configured on this server; add its section to the config file")]
    NotConfigured(&'static str),
    /// Signature or token missing or wrong: 401.
    #[error("not authenticated: {0}")]
    Unauthorized(String),
    /// Not JSON, or not the platform's shape: 400.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// What was asked for does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// What was asked for cannot be done to this thing: 409.
    #[error("{0}")]
    Conflict(String),
    /// The queue or store failed; the platform should retry: 503.
    #[error("cannot accept the message now ({0}); it was not queued, retry later")]
    Unavailable(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotConfigured(_) | AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "webhook not accepted");
        } else {
            tracing::info!(error = %self, "webhook refused");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<verify::VerifyError> for AppError {
    fn from(e: verify::VerifyError) -> Self {
        AppError::Unauthorized(e.to_string())
    }
}

impl AppState {
    /// Counts a refused request (any 4xx) and gives a refusal that is not yet JSON (axum's
    /// own, such as a body over the limit) the `{"error": ...}` shape.
    fn refusal(&self, response: Response) -> Response {
        let status = response.status();
        if !status.is_client_error() {
            return response;
        }
        Metrics::bump(&self.metrics.rejected);
        let is_json = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            return response;
        }
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "the body is larger than the {} bytes allowed (server.max_body_bytes)",
                self.config.server.max_body_bytes
            )
        } else {
            status
                .canonical_reason()
                .unwrap_or("refused")
                .to_lowercase()
        };
        (status, Json(json!({ "error": message }))).into_response()
    }

    /// Shared state for the routes; builds the signature verifiers once. `http` fetches the
    /// admin token issuer's keys.
    pub fn new(
        queue: Arc<dyn WorkQueue>,
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
        http: reqwest::Client,
    ) -> Result<Self, verify::KeyError> {
        let slack = config
            .slack
            .as_ref()
            .map(|s| verify::SlackVerifier::new(s.signing_secret.expose()).map(Arc::new))
            .transpose()?;
        let discord = config
            .discord
            .as_ref()
            .map(|d| Arc::new(verify::DiscordVerifier::new(d.public_key)));
        let entra = config
            .admin
            .clone()
            .map(|admin| Arc::new(entra::EntraVerifier::new(admin, http)));
        Ok(Self {
            queue,
            store,
            registry,
            config,
            metrics,
            wake,
            started: Instant::now(),
            openclaw: None,
            slack,
            discord,
            entra,
        })
    }

    /// Parses a verified body as the platform's JSON.
    fn parse<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, AppError> {
        serde_json::from_slice(body).map_err(|e| AppError::BadRequest(e.to_string()))
    }

    /// Queues a message unless it was queued before (a platform resend).
    async fn accept(&self, envelope: &Envelope) -> Result<(), AppError> {
        let unavailable = |e: &dyn std::fmt::Display| AppError::Unavailable(e.to_string());
        let span = tracing::debug_span!("enqueue", message = %envelope.message_id);
        let envelope = Envelope {
            trace: span.in_scope(crate::telemetry::current_traceparent),
            ..envelope.clone()
        };
        let body = serde_json::to_string(&envelope).map_err(|e| unavailable(&e))?;
        let queued = self
            .queue
            .enqueue_once(&envelope.dedupe_key(), &body)
            .instrument(span)
            .await
            .map_err(|e| unavailable(&e))?;
        // Queued and its key recorded, not yet acknowledged: the platform resends, and the
        // resend is dropped as a duplicate of the queued message.
        crate::crash::point("ingress.enqueued");
        if queued.is_none() {
            Metrics::bump(&self.metrics.duplicates);
            return Ok(());
        }
        Metrics::bump(&self.metrics.accepted);
        self.wake.notify_one();
        Ok(())
    }

    /// Counts an update that needs no answer.
    fn ignore(&self) -> StatusCode {
        Metrics::bump(&self.metrics.ignored);
        StatusCode::OK
    }
}
