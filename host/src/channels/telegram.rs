//! Telegram Bot API `sendMessage`.

use std::time::Duration;

use serde_json::json;

use super::{from_status, unreachable_platform, ChannelError};
use crate::config::TelegramConfig;

/// Telegram's limit on a message's text, in UTF-16 code units.
pub const MAX_UTF16: usize = 4096;

/// Sends one chunk; `reply_to` threads it under the user's message.
pub async fn send(
    http: &reqwest::Client,
    config: &TelegramConfig,
    chat_id: i64,
    reply_to: Option<i64>,
    text: &str,
) -> Result<(), ChannelError> {
    let mut url = config.api_base.clone();
    url.set_path(&format!(
        "{}/bot{}/sendMessage",
        url.path().trim_end_matches('/'),
        config.bot_token.expose()
    ));
    let mut body = json!({ "chat_id": chat_id, "text": text });
    if let Some(message_id) = reply_to {
        body["reply_parameters"] =
            json!({ "message_id": message_id, "allow_sending_without_reply": true });
    }
    let response = http
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        // The URL holds the bot token: never let it into an error message.
        .map_err(|e| unreachable_platform("telegram", e.without_url()))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() && answer["ok"] == true {
        return Ok(());
    }
    let retry_after = answer["parameters"]["retry_after"]
        .as_u64()
        .map(Duration::from_secs);
    let description = answer["description"]
        .as_str()
        .unwrap_or("no description")
        .to_owned();
    Err(from_status("telegram", status, description, retry_after))
}
