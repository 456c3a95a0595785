//! Outbound replies: Telegram `sendMessage`, Slack `chat.postMessage` in the thread, a Discord
//! interaction follow-up, or the terminal of `molten chat`. Transient failures (429 with its
//! retry hint, 5xx, no answer) are retried a few times; after that the caller leaves the message
//! on the queue.

mod discord;
mod slack;
mod telegram;

use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::envelope::ReplyTo;

/// Attempts per reply chunk before giving up.
const ATTEMPTS: u32 = 3;
/// First backoff delay when the platform gives no hint.
const BACKOFF: Duration = Duration::from_millis(200);
/// Longest platform retry hint honoured.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// A reply that was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The channel of the message is not configured (any more).
    #[error("{0} is not configured; add its section to the config file")]
    NotConfigured(&'static str),
    /// Worth retrying later: rate limit, server error, no answer.
    #[error("{platform} did not take the reply: {message}")]
    Transient {
        /// The platform.
        platform: &'static str,
        /// What happened.
        message: String,
        /// The platform's hint.
        retry_after: Option<Duration>,
    },
    /// The platform refused the request (bad token, unknown chat...).
    #[error("{platform} refused the reply: {message}")]
    Refused {
        /// The platform.
        platform: &'static str,
        /// The platform's error.
        message: String,
    },
}

/// Sends replies on every configured platform.
pub struct Channels {
    http: reqwest::Client,
    telegram: Option<crate::config::TelegramConfig>,
    slack: Option<crate::config::SlackConfig>,
    discord: Option<crate::config::DiscordConfig>,
    terminal: Option<mpsc::UnboundedSender<String>>,
}

impl Channels {
    /// Channels for the configured platforms; `terminal` receives replies to `molten chat`.
    pub fn new(
        http: reqwest::Client,
        config: &Config,
        terminal: Option<mpsc::UnboundedSender<String>>,
    ) -> Self {
        Self {
            http,
            telegram: config.telegram.clone(),
            slack: config.slack.clone(),
            discord: config.discord.clone(),
            terminal,
        }
    }

    /// Delivers `text` to `to`, split into the platform's message size, retrying transient
    /// failures.
    pub async fn send(&self, to: &ReplyTo, text: &str) -> Result<(), ChannelError> {
        match to {
            ReplyTo::Telegram {
                chat_id,
                message_id,
            } => {
                let config = self
                    .telegram
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured("telegram"))?;
                for (i, chunk) in split(text, telegram::MAX_UTF16).iter().enumerate() {
                    let reply_to = (i == 0).then_some(*message_id);
                    retry(|| telegram::send(&self.http, config, *chat_id, reply_to, chunk)).await?;
                }
                Ok(())
            }
            ReplyTo::Slack { channel, thread_ts } => {
                let config = self
                    .slack
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured("slack"))?;
                for chunk in split(text, slack::MAX_UTF16) {
                    retry(|| slack::send(&self.http, config, channel, thread_ts, &chunk)).await?;
                }
                Ok(())
            }
            ReplyTo::Discord {
                application_id,
                token,
            } => {
                let config = self
                    .discord
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured("discord"))?;
                for chunk in split(text, discord::MAX_UTF16) {
                    retry(|| discord::send(&self.http, config, application_id, token, &chunk))
                        .await?;
                }
                Ok(())
            }
            ReplyTo::Terminal => {
                let terminal = self
                    .terminal
                    .as_ref()
                    .ok_or(ChannelError::NotConfigured("terminal"))?;
                terminal
                    .send(text.to_owned())
                    .map_err(|_| ChannelError::Refused {
                        platform: "terminal",
                        message: "the terminal session has ended".into(),
                    })
            }
        }
    }
}

async fn retry<F, Fut>(mut attempt: F) -> Result<(), ChannelError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ChannelError>>,
{
    let mut delay = BACKOFF;
    let mut made = 1;
    loop {
        match attempt().await {
            Err(ChannelError::Transient { retry_after, .. }) if made < ATTEMPTS => {
                tokio::time::sleep(retry_after.unwrap_or(delay).min(MAX_WAIT)).await;
                delay *= 2;
                made += 1;
            }
            other => return other,
        }
    }
}

/// Classifies an HTTP failure: 429 and 5xx are transient, other statuses a refusal.
fn from_status(
    platform: &'static str,
    status: reqwest::StatusCode,
    message: String,
    retry_after: Option<Duration>,
) -> ChannelError {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        ChannelError::Transient {
            platform,
            message: format!("{status}: {message}"),
            retry_after,
        }
    } else {
        ChannelError::Refused {
            platform,
            message: format!("{status}: {message}"),
        }
    }
}

/// A request that got no answer: transient.
fn unreachable_platform(platform: &'static str, e: reqwest::Error) -> ChannelError {
    ChannelError::Transient {
        platform,
        message: format!("no answer: {e}"),
        retry_after: None,
    }
}

/// Splits `text` into chunks of at most `max` UTF-16 code units (the unit Telegram and Discord
/// count), at a line break or space where one is near the end.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.encode_utf16().count() > max {
        let mut units = 0;
        let mut cut = 0;
        for (i, c) in rest.char_indices() {
            units += c.len_utf16();
            if units > max {
                break;
            }
            cut = i + c.len_utf8();
        }
        // Prefer a line break, then a space, in the last quarter of the chunk.
        let window = &rest[cut - cut / 4..cut];
        let soft = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .map(|i| cut - cut / 4 + i + 1);
        let at = soft.unwrap_or(cut);
        chunks.push(rest[..at].to_owned());
        rest = &rest[at..];
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest.to_owned());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_the_limit_and_loses_nothing() {
        let text = "word ".repeat(2000);
        let chunks = split(&text, 4096);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.encode_utf16().count() <= 4096));
        assert!(chunks[0].ends_with(' '));
        assert_eq!(chunks.concat(), text);
    }

    #[test]
    fn split_counts_utf16_units_and_never_cuts_a_character() {
        let text = "😀".repeat(3000); // 2 units each
        let chunks = split(&text, 4096);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].encode_utf16().count(), 4096);
        assert_eq!(chunks.concat(), text);
        assert_eq!(split("", 10), vec![String::new()]);
        assert_eq!(split("short", 10), vec!["short".to_owned()]);
    }
}
