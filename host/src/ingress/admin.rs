//! `GET /healthz` (the process answers), `GET /ready` (it can do its job, and if not, what is
//! missing), `GET /admin/status` (numbers for the operator), `GET /admin/skills` (each
//! skill's effective grant, and the plugins refused), `GET /admin/poison` (messages that never
//! got an answer) and `GET /metrics` (Prometheus), all behind the admin bearer token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{AppError, AppState};
use crate::skills::Origin;

/// Always 200 while the process serves requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store, the queue, the skills and the model are usable; 503 naming what is not.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = match state.store.replied("ready-probe").await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let queue = match state.queue.depth().await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.to_string(),
    };
    let loaded = state.registry.skills().len();
    let progress = state.registry.progress();
    let skills = if !progress.finished {
        format!("compiling {} of {}", progress.done, progress.total)
    } else if loaded > 0 {
        "ok".to_owned()
    } else {
        format!(
            "no skills loaded from {}; run scripts/setup or set --skills-dir",
            state
                .config
                .skills_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let llm = if state.config.llm.is_some() {
        "ok".to_owned()
    } else {
        "not configured: set [llm] base_url and model in the config file (or MOLTEN_LLM_BASE_URL and MOLTEN_LLM_MODEL)".to_owned()
    };
    let ok = [&store, &queue, &skills, &llm].iter().all(|s| *s == "ok");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ok,
            "checks": { "store": store, "queue": queue, "skills": skills, "llm": llm },
        })),
    )
}

/// Version, uptime, queue depth, skills and counters.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let unavailable = |e: &dyn std::fmt::Display| AppError::Unavailable(e.to_string());
    let depth = state.queue.depth().await.map_err(|e| unavailable(&e))?;
    let totals = state.store.totals().await.map_err(|e| unavailable(&e))?;
    let skills: Vec<String> = state
        .registry
        .skills()
        .iter()
        .map(|s| s.manifest().name.clone())
        .collect();
    let skill_errors: Vec<String> = state
        .registry
        .errors()
        .iter()
        .map(|e| e.to_string())
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "queue_depth": depth,
        "skills": skills,
        "skill_errors": skill_errors,
        "llm": state.config.llm.as_ref().map(|l| l.model.as_str()),
        "counters": state.metrics.snapshot(),
        "totals": totals,
    })))
}

/// Refuses a request without the admin bearer token or, with `[admin]`, a valid Entra token.
/// Why a token was refused is logged, never answered.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let (token, entra) = (&state.config.server.admin_token, &state.entra);
    if token.is_none() && entra.is_none() {
        return Err(AppError::Unauthorized(
            "the admin token is not set; set server.admin_token or MOLTEN_ADMIN_TOKEN (or [admin] for Entra ID tokens)".into(),
        ));
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token
        .as_ref()
        .is_some_and(|t| bool::from(given.as_bytes().ct_eq(t.expose().as_bytes())))
    {
        return Ok(());
    }
    if let (Some(entra), false) = (entra, given.is_empty()) {
        match entra.verify(given).await {
            Ok(()) => return Ok(()),
            Err(reason) => tracing::warn!(%reason, "admin token refused"),
        }
    }
    Err(AppError::Unauthorized(
        "send Authorization: Bearer <admin token>".into(),
    ))
}

/// Every live skill with the grant in effect (the manifest's ask, the operator's policy and
/// HTTP grant intersected), the skills the operator disabled, and why others were refused.
pub async fn skills(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let registry = &state.registry;
    let skills: Vec<Value> = registry
        .skills()
        .iter()
        .map(|skill| {
            let m = skill.manifest();
            let origin = match skill.origin() {
                Origin::Builtin => json!({"kind": "builtin"}),
                Origin::Plugin { digest, key } => {
                    json!({"kind": "plugin", "digest": digest, "signed_by": key})
                }
            };
            let http: Vec<String> = skill
                .http()
                .map(|p| p.rules().iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            json!({
                "name": m.name,
                "description": skill.definition().description,
                "origin": origin,
                "limits": {
                    "fuel": m.limits.fuel,
                    "timeout_ms": m.limits.timeout.as_millis() as u64,
                    "memory_mb": m.limits.memory_bytes >> 20,
                    "output_kb": m.limits.output_bytes >> 10,
                },
                "filesystem": m.capabilities.filesystem.to_string(),
                "http": http,
                "secrets_not_bound": skill.unbound_secrets(),
                "secrets_not_set": skill.missing_secrets(),
            })
        })
        .collect();
    let refused: Vec<String> = registry.errors().iter().map(|e| e.to_string()).collect();
    Ok(Json(json!({
        "skills": skills,
        "disabled": registry.disabled(),
        "refused": refused,
    })))
}

/// Every metric in the Prometheus text format, behind the admin token (the queue depth is
/// sampled now).
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl axum::response::IntoResponse, AppError> {
    authorize(&state, &headers).await?;
    if let Ok(depth) = state.queue.depth().await {
        state.metrics.queue_depth.set(depth as i64);
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    ))
}

/// Poisoned messages (oldest first; at most 32 on Azure): id, reason and the message, so an
/// operator can see what never got an answer.
pub async fn poison(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let poisoned = state
        .queue
        .poisoned()
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let messages: Vec<Value> = poisoned
        .into_iter()
        .map(|p| {
            let message = serde_json::from_str::<Value>(&p.body).unwrap_or(Value::String(p.body));
            json!({ "id": p.id, "reason": p.reason, "message": message })
        })
        .collect();
    Ok(Json(json!({ "poisoned": messages })))
}
