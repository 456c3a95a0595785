//! `POST /webhook/discord`: interactions, authenticated by Ed25519. PING is answered with PONG;
//! an application command is queued and answered at once with a deferred response (Discord
//! allows 3 s); the answer follows later through the interaction webhook.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppError, AppState};
use crate::envelope::{Envelope, ReplyTo};

const PING: u8 = 1;
const APPLICATION_COMMAND: u8 = 2;
const PONG: u8 = 1;
const CHANNEL_MESSAGE: u8 = 4;
const DEFERRED_CHANNEL_MESSAGE: u8 = 5;

#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: u8,
    id: Option<String>,
    application_id: Option<String>,
    token: Option<String>,
    channel_id: Option<String>,
    data: Option<CommandData>,
    member: Option<Member>,
    user: Option<User>,
}

#[derive(Deserialize)]
struct CommandData {
    #[serde(default)]
    options: Vec<CommandOption>,
}

#[derive(Deserialize)]
struct CommandOption {
    name: String,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct Member {
    user: User,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

/// Verifies and answers an interaction.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let verifier = state
        .discord
        .clone()
        .ok_or(AppError::NotConfigured("discord"))?;
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    verifier
        .verify(
            header("x-signature-ed25519"),
            header("x-signature-timestamp"),
            &body,
        )
        .map_err(AppError::from)?;
    let interaction: Interaction = state.parse(&body)?;
    match interaction.kind {
        PING => return Ok(Json(json!({ "type": PONG }))),
        APPLICATION_COMMAND => {}
        other => {
            return Err(AppError::BadRequest(format!(
                "interaction type {other} is not supported; only slash commands are"
            )))
        }
    }
    let missing = |field| AppError::BadRequest(format!("missing {field}"));
    let id = interaction.id.ok_or_else(|| missing("id"))?;
    let application_id = interaction
        .application_id
        .ok_or_else(|| missing("application_id"))?;
    let token = interaction.token.ok_or_else(|| missing("token"))?;
    let user = interaction
        .member
        .map(|m| m.user)
        .or(interaction.user)
        .ok_or_else(|| missing("member.user or user"))?;
    // `/ask prompt:<text>`: the `prompt` option, else the first string option.
    let options = interaction.data.map(|d| d.options).unwrap_or_default();
    let text = options
        .iter()
        .find(|o| o.name == "prompt")
        .or_else(|| {
            options
                .iter()
                .find(|o| o.value.as_ref().is_some_and(Value::is_string))
        })
        .and_then(|o| o.value.as_ref()?.as_str())
        .map(str::to_owned);
    let Some(text) = text else {
        state.ignore();
        return Ok(Json(json!({
            "type": CHANNEL_MESSAGE,
            "data": { "content": "Ask me something: /ask prompt:<your question>" }
        })));
    };
    let envelope = Envelope {
        reply_to: ReplyTo::Discord {
            application_id,
            token,
        },
        chat: interaction
            .channel_id
            .unwrap_or_else(|| format!("dm-{}", user.id)),
        user: user.id,
        message_id: id,
        text,
        retry: 0,
        trace: None,
    };
    state.accept(&envelope).await?;
    Ok(Json(json!({ "type": DEFERRED_CHANNEL_MESSAGE })))
}
