//! `POST /webhook/telegram`: Bot API updates, authenticated by the secret token of `setWebhook`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{verify, AppError, AppState};
use crate::envelope::{Envelope, ReplyTo};

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    chat: Chat,
    from: Option<User>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
}

/// Queues a text message; answers 200 to every other update so Telegram does not resend it.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let config = state
        .config
        .telegram
        .as_ref()
        .ok_or(AppError::NotConfigured("telegram"))?;
    if let Some(secret) = &config.secret_token {
        let header = headers
            .get("x-telegram-bot-api-secret-token")
            .and_then(|v| v.to_str().ok());
        verify::telegram(secret.expose(), header).map_err(AppError::from)?;
    }
    let update: Update = state.parse(&body)?;
    let Some(message) = update.message else {
        return Ok(state.ignore());
    };
    let (Some(text), Some(from)) = (message.text, message.from) else {
        return Ok(state.ignore());
    };
    if from.is_bot {
        return Ok(state.ignore());
    }
    let envelope = Envelope {
        reply_to: ReplyTo::Telegram {
            chat_id: message.chat.id,
            message_id: message.message_id,
        },
        chat: message.chat.id.to_string(),
        user: from.id.to_string(),
        message_id: update.update_id.to_string(),
        text,
        retry: 0,
        trace: None,
    };
    state.accept(&envelope).await?;
    Ok(StatusCode::OK)
}
