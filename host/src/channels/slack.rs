//! Slack Web API `chat.postMessage`.

use std::time::Duration;

use serde_json::json;

use super::{from_status, unreachable_platform, ChannelError};
use crate::config::SlackConfig;

/// Slack truncates longer messages; 4,000 characters is its advice.
pub const MAX_UTF16: usize = 4000;

/// Posts one chunk in the thread.
pub async fn send(
    http: &reqwest::Client,
    config: &SlackConfig,
    channel: &str,
    thread_ts: &str,
    text: &str,
) -> Result<(), ChannelError> {
    let mut url = config.api_base.clone();
    url.set_path(&format!(
        "{}/chat.postMessage",
        url.path().trim_end_matches('/')
    ));
    let response = http
        .post(url)
        .bearer_auth(config.bot_token.expose())
        .json(&json!({ "channel": channel, "text": text, "thread_ts": thread_ts }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| unreachable_platform("slack", e))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map(Duration::from_secs);
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() && answer["ok"] == true {
        return Ok(());
    }
    let error = answer["error"]
        .as_str()
        .unwrap_or("no error given")
        .to_owned();
    // Slack reports most failures as 200 with ok=false; only "ratelimited" is worth a retry.
    if status.is_success() && error != "ratelimited" {
        return Err(ChannelError::Refused {
            platform: "slack",
            message: error,
        });
    }
    let status = if status.is_success() {
        reqwest::StatusCode::TOO_MANY_REQUESTS
    } else {
        status
    };
    Err(from_status("slack", status, error, retry_after))
}
