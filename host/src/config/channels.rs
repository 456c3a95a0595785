//! `[telegram]`, `[slack]` and `[discord]`: what ingress checks and where channels reply.

use serde::Deserialize;

use super::{parse_url, required_secret, ConfigError, Secret};

/// `[telegram]`
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// Bot token for `sendMessage`.
    pub bot_token: Secret,
    /// The `secret_token` given to `setWebhook`: requests without it are refused. `None` only
    /// when the operator set `allow_unauthenticated = true`.
    pub secret_token: Option<Secret>,
    /// Bot API base URL.
    pub api_base: reqwest::Url,
}

/// `[slack]`
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Signing secret for the v0 signature.
    pub signing_secret: Secret,
    /// Bot token (`xoxb-...`) for `chat.postMessage`.
    pub bot_token: Secret,
    /// Web API base URL.
    pub api_base: reqwest::Url,
}

/// `[discord]`
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key (written in hex in the file).
    pub public_key: ed25519_dalek::VerifyingKey,
    /// API base URL for interaction follow-ups.
    pub api_base: reqwest::Url,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TelegramFile {
    bot_token: Option<Secret>,
    secret_token: Option<Secret>,
    api_base: Option<String>,
    #[serde(default)]
    allow_unauthenticated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlackFile {
    signing_secret: Option<Secret>,
    bot_token: Option<Secret>,
    api_base: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiscordFile {
    public_key: Option<String>,
    api_base: Option<String>,
}

impl TelegramFile {
    /// Checks the section. Without a secret token anyone who finds the webhook URL could post
    /// to it, so that is refused unless the operator opts out explicitly.
    pub(super) fn build(self) -> Result<TelegramConfig, ConfigError> {
        let bot_token = required_secret(
            "telegram.bot_token",
            self.bot_token,
            "MOLTEN_TELEGRAM_BOT_TOKEN",
        )?;
        let secret_token = self.secret_token.filter(|s| !s.expose().is_empty());
        if secret_token.is_none() && !self.allow_unauthenticated {
            return Err(ConfigError::Invalid {
                key: "telegram.secret_token".into(),
                message: "not set, so anyone who finds /webhook/telegram could post to it: \
                          choose a random token (1-256 of A-Z a-z 0-9 _ -), set it here or in \
                          MOLTEN_TELEGRAM_SECRET_TOKEN, and pass it as secret_token to \
                          setWebhook; or set telegram.allow_unauthenticated = true to accept \
                          webhooks from anyone"
                    .into(),
            });
        }
        Ok(TelegramConfig {
            bot_token,
            secret_token,
            api_base: parse_url(
                "telegram.api_base",
                self.api_base
                    .as_deref()
                    .unwrap_or("https://api.telegram.org"),
            )?,
        })
    }
}

impl SlackFile {
    pub(super) fn build(self) -> Result<SlackConfig, ConfigError> {
        Ok(SlackConfig {
            signing_secret: required_secret(
                "slack.signing_secret",
                self.signing_secret,
                "MOLTEN_SLACK_SIGNING_SECRET",
            )?,
            bot_token: required_secret(
                "slack.bot_token",
                self.bot_token,
                "MOLTEN_SLACK_BOT_TOKEN",
            )?,
            api_base: parse_url(
                "slack.api_base",
                self.api_base.as_deref().unwrap_or("https://slack.com/api"),
            )?,
        })
    }
}

impl DiscordFile {
    pub(super) fn build(self) -> Result<DiscordConfig, ConfigError> {
        let public_key = self.public_key.filter(|k| !k.is_empty()).ok_or_else(|| {
            ConfigError::Invalid {
                key: "discord.public_key".into(),
                message: "missing: copy the application's public key from the Discord developer portal (or set MOLTEN_DISCORD_PUBLIC_KEY)".into(),
            }
        })?;
        Ok(DiscordConfig {
            public_key: discord_key(&public_key).map_err(|message| ConfigError::Invalid {
                key: "discord.public_key".into(),
                message,
            })?,
            api_base: parse_url(
                "discord.api_base",
                self.api_base
                    .as_deref()
                    .unwrap_or("https://discord.com/api/v10"),
            )?,
        })
    }
}

/// The Ed25519 key from its hex form (the developer portal shows it so).
fn discord_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .ok()
        .and_then(|()| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            "the Discord public key must be the 64 hex characters shown on the application's \
             General Information page"
                .to_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discord_key_is_64_hex_characters_of_a_curve_point() {
        for key in ["", "abc", &"g".repeat(64), &"00".repeat(31)] {
            let err = discord_key(key).expect_err("refused");
            assert!(err.contains("64 hex characters"), "{key}: {err}");
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        assert_eq!(discord_key(&hex::encode(key.as_bytes())), Ok(key));
    }
}
