//! Discord interaction follow-up: `POST /webhooks/{application_id}/{token}`.

use std::time::Duration;

use serde_json::json;

use super::{from_status, unreachable_platform, ChannelError};
use crate::config::DiscordConfig;

/// Discord's limit on a message's content.
pub const MAX_UTF16: usize = 2000;

/// Sends one chunk as a follow-up of a deferred interaction.
pub async fn send(
    http: &reqwest::Client,
    config: &DiscordConfig,
    application_id: &str,
    token: &str,
    text: &str,
) -> Result<(), ChannelError> {
    let mut url = config.api_base.clone();
    url.path_segments_mut()
        .map_err(|()| ChannelError::Refused {
            platform: "discord",
            message: "discord.api_base cannot be a base URL".into(),
        })?
        .pop_if_empty()
        .extend(["webhooks", application_id, token]);
    let response = http
        .post(url)
        .json(&json!({ "content": text, "allowed_mentions": { "parse": [] } }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        // The URL holds the interaction token.
        .map_err(|e| unreachable_platform("discord", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    let retry_after = answer["retry_after"].as_f64().map(Duration::from_secs_f64);
    let message = answer["message"]
        .as_str()
        .unwrap_or("no message")
        .to_owned();
    Err(from_status("discord", status, message, retry_after))
}
