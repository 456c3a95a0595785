//! `[openclaw]`: hand turns to an OpenClaw Gateway, falling back to the model.

use std::time::Duration;

use serde::Deserialize;

use super::{positive, ConfigError};
use crate::openclaw::OpenClawConfig;
use crate::secrets::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenClawFile {
    enabled: Option<bool>,
    url: Option<String>,
    token: Option<Secret>,
    turn_timeout_secs: Option<u64>,
    device_key: Option<Secret>,
}

impl OpenClawFile {
    /// `None` unless enabled (the default once `url` is set).
    pub(super) fn build(self) -> Result<Option<OpenClawConfig>, ConfigError> {
        let url = self.url.filter(|u| !u.is_empty());
        if !self.enabled.unwrap_or(url.is_some()) {
            return Ok(None);
        }
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        let url = url.ok_or_else(|| {
            invalid(
                "openclaw.url",
                "is required when openclaw.enabled is true (MOLTEN_OPENCLAW_URL), e.g. ws://127.0.0.1:18789".into(),
            )
        })?;
        let url = url::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "ws" | "wss"))
            .ok_or_else(|| {
                invalid(
                    "openclaw.url",
                    format!("{url:?} is not a ws:// or wss:// URL"),
                )
            })?;
        let token = self.token.filter(|t| !t.expose().is_empty()).ok_or_else(|| {
            invalid(
                "openclaw.token",
                "is required: the gateway's gateway.auth.token (MOLTEN_OPENCLAW_TOKEN, or Key Vault openclaw-gateway-token)".into(),
            )
        })?;
        let device_key = self.device_key.filter(|k| !k.expose().is_empty());
        if let Some(key) = &device_key {
            crate::openclaw::Device::from_hex(key.expose())
                .map_err(|why| invalid("openclaw.device_key", why))?;
        }
        Ok(Some(OpenClawConfig {
            url,
            token,
            device_key,
            turn_timeout: Duration::from_secs(positive(
                "openclaw.turn_timeout_secs",
                self.turn_timeout_secs,
                120,
            )?),
        }))
    }
}
