//! `POST /webhook/slack`: Events API callbacks, authenticated by the v0 signature.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState};
use crate::envelope::{Envelope, ReplyTo};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Payload {
    UrlVerification {
        challenge: String,
    },
    EventCallback {
        event: Event,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    bot_id: Option<String>,
    user: Option<String>,
    text: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
}

/// Verifies, answers the URL check, queues messages and mentions.
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let verifier = state
        .slack
        .clone()
        .ok_or(AppError::NotConfigured("slack"))?;
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    verifier
        .verify(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            &body,
            SystemTime::now(),
        )
        .map_err(AppError::from)?;
    let event = match state.parse(&body)? {
        Payload::UrlVerification { challenge } => {
            return Ok(Json(json!({ "challenge": challenge })).into_response())
        }
        Payload::EventCallback { event } => event,
        Payload::Other => return Ok(state.ignore().into_response()),
    };
    // Bot messages (our own replies included), edits, joins... carry a bot_id or a subtype.
    let wanted = matches!(event.kind.as_str(), "message" | "app_mention")
        && event.subtype.is_none()
        && event.bot_id.is_none();
    let (true, Some(user), Some(text), Some(channel), Some(ts)) =
        (wanted, event.user, event.text, event.channel, event.ts)
    else {
        return Ok(state.ignore().into_response());
    };
    let envelope = Envelope {
        reply_to: ReplyTo::Slack {
            channel: channel.clone(),
            thread_ts: event.thread_ts.unwrap_or_else(|| ts.clone()),
        },
        user,
        text: strip_mentions(&text),
        retry: 0,
        trace: None,
        // A mention arrives as both `message` and `app_mention`, and retries repeat it: the
        // message's channel and ts identify it in every case.
        message_id: format!("{channel}:{ts}"),
        chat: channel,
    };
    state.accept(&envelope).await?;
    Ok(StatusCode::OK.into_response())
}

/// Removes `<@U123>` user mentions (the bot's own name) from the text.
fn strip_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_are_stripped() {
        assert_eq!(
            super::strip_mentions("<@U0BOT> what is  2+2?"),
            "what is 2+2?"
        );
        assert_eq!(super::strip_mentions("hi <@U1|bob> there"), "hi there");
        assert_eq!(super::strip_mentions("broken <@U1"), "broken <@U1");
    }
}
