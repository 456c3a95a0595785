//! `GET /healthz` (the process answers), `GET /ready` (it can do its job, and if not, what is
//! missing), and behind the admin token: `GET /admin/status` (numbers for the operator),
//! `GET /admin/skills` (each skill's effective grant and figures, and the plugins refused),
//! `POST /admin/skills/{name}/disable|enable`, `GET /admin/usage` (spend and skill use),
//! `GET /admin/poison` (messages that never got an answer), `POST /admin/poison/{id}/retry`
//! and `GET /metrics` (Prometheus).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{AppError, AppState};
use crate::envelope::Envelope;
use crate::skills::Origin;
use crate::usage::{self, today};

/// The days `/admin/skills` reports calls, failures and durations over.
const SKILL_FIGURE_DAYS: i64 = 7;

fn unavailable(e: &dyn std::fmt::Display) -> AppError {
    AppError::Unavailable(e.to_string())
}

/// The report of `query`, read from the store's running totals.
async fn report(state: &AppState, query: &usage::Query) -> Result<usage::Report, AppError> {
    let rows = state
        .store
        .rollups(query.since, query.until)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(usage::report(&rows, query))
}

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
    // Informative only: without the gateway, turns go to the model.
    let openclaw = state.openclaw.as_ref().map(|gateway| {
        let status = gateway.status();
        if status.connected {
            "connected".to_owned()
        } else {
            format!(
                "not connected ({}); turns go to the model",
                status.last_error.unwrap_or_default()
            )
        }
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut checks = json!({ "store": store, "queue": queue, "skills": skills, "llm": llm });
    if let Some(openclaw) = openclaw {
        checks["openclaw"] = json!(openclaw);
    }
    (
        status,
        Json(json!({
            "ready": ok,
            "checks": checks,
        })),
    )
}

/// Version, uptime, queue depth, skills and counters.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let depth = state.queue.depth().await.map_err(|e| unavailable(&e))?;
    let all_time = usage::Query {
        user: None,
        skill: None,
        since: 0,
        until: today(),
    };
    let report = report(&state, &all_time).await?;
    let totals = json!({
        "messages": report.total.messages,
        "prompt_tokens": report.total.prompt_tokens,
        "completion_tokens": report.total.completion_tokens,
        "cost_usd": report.total.cost_usd,
        "skill_calls": report.skill_calls,
        "skill_failures": report.skill_failures,
    });
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
        "openclaw": state.openclaw.as_ref().map(|gateway| gateway.status()),
        "totals": totals,
    })))
}

/// The bearer token of a request ("" without one).
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Whether `given` is the configured `token`, compared in constant time.
fn matches(given: &str, token: Option<&crate::secrets::Secret>) -> bool {
    token.is_some_and(|t| bool::from(given.as_bytes().ct_eq(t.expose().as_bytes())))
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
    let given = bearer(headers);
    if matches(given, token.as_ref()) {
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
/// HTTP grant intersected) and its calls, failures, average and p95 duration over the last
/// seven days; the skills the operator disabled or switched off; and why others were refused.
pub async fn skills(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let registry = &state.registry;
    let week = usage::Query {
        user: None,
        skill: None,
        since: today() - (SKILL_FIGURE_DAYS - 1),
        until: today(),
    };
    let figures: BTreeMap<String, usage::SkillLine> = report(&state, &week)
        .await?
        .skills
        .into_iter()
        .map(|line| (line.skill.clone(), line))
        .collect();
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
                "last_7_days": figures.get(&m.name).map_or_else(
                    || json!({"calls": 0, "failures": 0}),
                    |f| json!({
                        "calls": f.calls,
                        "failures": f.failures,
                        "average_ms": f.average_ms,
                        "p95_ms": f.p95_ms,
                    }),
                ),
            })
        })
        .collect();
    let refused: Vec<String> = registry.errors().iter().map(|e| e.to_string()).collect();
    Ok(Json(json!({
        "skills": skills,
        "disabled": registry.disabled(),
        "switched_off": registry.switched_off(),
        "refused": refused,
    })))
}

/// `POST /admin/skills/{name}/disable`: the skill stays loaded but is not offered to the model
/// (nor runs) on any replica until enabled again; kept across restarts.
pub async fn disable_skill(
    state: State<AppState>,
    headers: HeaderMap,
    name: Path<String>,
) -> Result<Json<Value>, AppError> {
    switch(state, headers, name, true).await
}

/// `POST /admin/skills/{name}/enable`: undoes a disable.
pub async fn enable_skill(
    state: State<AppState>,
    headers: HeaderMap,
    name: Path<String>,
) -> Result<Json<Value>, AppError> {
    switch(state, headers, name, false).await
}

async fn switch(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    off: bool,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    // Switching on what is switched off works even if it is no longer loaded.
    if off && !state.registry.is_loaded(&name) {
        return Err(AppError::NotFound(format!(
            "no skill is called {name:?}; GET /admin/skills lists them"
        )));
    }
    state
        .store
        .switch_skill(&name, off)
        .await
        .map_err(|e| unavailable(&e))?;
    apply_switches(&state).await;
    tracing::warn!(skill = %name, "skill {} by the operator", if off { "disabled" } else { "enabled" });
    Ok(Json(json!({
        "skill": name,
        "enabled": !off,
        "switched_off": state.registry.switched_off(),
    })))
}

/// `GET /admin/usage?user=&skill=&since=&until=` (dates `YYYY-MM-DD`, the last 30 days by
/// default): tokens and cost per day and for the top users, executions, success rate and
/// durations per skill.
pub async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<usage::Report>, AppError> {
    authorize(&state, &headers).await?;
    let query = usage::Query::parse(&params).map_err(AppError::BadRequest)?;
    Ok(Json(report(&state, &query).await?))
}

/// Every metric in the Prometheus text format, behind the admin token or the scrape token
/// (`server.metrics_token`); the queue's depth and oldest message are sampled now.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl axum::response::IntoResponse, AppError> {
    if !matches(bearer(&headers), state.config.server.metrics_token.as_ref()) {
        authorize(&state, &headers).await?;
    }
    if let Ok(depth) = state.queue.depth().await {
        state.metrics.queue_depth.set(depth as i64);
    }
    if let Ok(oldest) = state.queue.oldest().await {
        let seconds = oldest.map_or(0.0, |age| age.as_secs_f64());
        state.metrics.queue_oldest_seconds.set(seconds);
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
    let poisoned = state.queue.poisoned().await.map_err(|e| unavailable(&e))?;
    let messages: Vec<Value> = poisoned
        .into_iter()
        .map(|p| {
            let message = serde_json::from_str::<Value>(&p.body).unwrap_or(Value::String(p.body));
            json!({ "id": p.id, "reason": p.reason, "message": message })
        })
        .collect();
    Ok(Json(json!({ "poisoned": messages })))
}

/// `POST /admin/poison/{id}/retry`: sends a poisoned message back to the queue, to be answered
/// afresh (once) even though its user got an apology.
pub async fn retry_poisoned(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers).await?;
    let poisoned = state.queue.poisoned().await.map_err(|e| unavailable(&e))?;
    let not_found = || {
        AppError::NotFound(format!(
            "no poisoned message has id {id:?}; GET /admin/poison lists them"
        ))
    };
    let message = poisoned
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(not_found)?;
    let mut envelope: Envelope = serde_json::from_str(&message.body).map_err(|e| {
        AppError::Conflict(format!(
            "message {id} is not a message envelope ({e}); it cannot be answered, only read"
        ))
    })?;
    // A new dedupe key: the first attempt is marked answered (by its apology).
    envelope.retry += 1;
    let body = serde_json::to_string(&envelope).map_err(|e| unavailable(&e))?;
    if !state
        .queue
        .requeue(&id, &body)
        .await
        .map_err(|e| unavailable(&e))?
    {
        return Err(not_found());
    }
    state.wake.notify_one();
    tracing::warn!(%id, key = %envelope.dedupe_key(), "poisoned message sent back to the queue by the operator");
    Ok(Json(
        json!({ "requeued": id, "key": envelope.dedupe_key() }),
    ))
}

/// Reads the skills switched off from the store and applies them to the registry.
pub async fn apply_switches(state: &AppState) {
    match state.store.switched_off().await {
        Ok(names) => {
            let names = names.into_iter().collect();
            for name in state.registry.switch_off(&names) {
                let off = names.contains(&name);
                tracing::info!(skill = %name, "skill switched {}", if off { "off" } else { "on" });
            }
        }
        Err(error) => tracing::warn!(%error, "cannot read the skills switched off; trying again"),
    }
}
