//! The OpenAI-compatible HTTP client, in the OpenAI and the Azure OpenAI flavour.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::{ChatRequest, Completion, LlmBackend, LlmError, Message, Usage};
use crate::config::{LlmConfig, LlmProvider};

/// A chat-completions endpoint with retries on 429, 5xx and timeouts.
pub struct OpenAiClient {
    http: reqwest::Client,
    url: reqwest::Url,
    config: LlmConfig,
    entra: Option<Arc<dyn TokenCredential>>,
}

/// The scope of Entra tokens for Azure OpenAI.
const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

#[derive(Deserialize)]
struct WireResponse {
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Message,
}

impl OpenAiClient {
    /// A client for the configured endpoint.
    pub fn new(http: reqwest::Client, config: LlmConfig) -> Self {
        let mut url = config.base_url.clone();
        // Url::join drops the last path segment unless the base ends with '/'.
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let url = match config.provider {
            LlmProvider::Openai => url.join("chat/completions"),
            LlmProvider::Azure => {
                let mut u = url.join(&format!(
                    "openai/deployments/{}/chat/completions",
                    config.model
                ));
                if let Ok(u) = &mut u {
                    u.query_pairs_mut()
                        .append_pair("api-version", &config.api_version);
                }
                u
            }
        }
        .unwrap_or_else(|_| config.base_url.clone());
        Self {
            http,
            url,
            config,
            entra: None,
        }
    }

    /// Authenticates with Entra tokens from `credential` when no API key is configured
    /// (Azure OpenAI with a managed identity).
    pub fn with_entra(mut self, credential: Option<Arc<dyn TokenCredential>>) -> Self {
        self.entra = credential;
        self
    }

    async fn attempt(
        &self,
        body: &serde_json::Value,
    ) -> Result<Completion, (LlmError, Option<Duration>)> {
        let mut request = self
            .http
            .post(self.url.clone())
            .json(body)
            .timeout(self.config.timeout);
        if let Some(key) = &self.config.api_key {
            request = match self.config.provider {
                LlmProvider::Openai => request.bearer_auth(key.expose()),
                LlmProvider::Azure => request.header("api-key", key.expose()),
            };
        } else if let Some(credential) = &self.entra {
            let token = credential
                .get_token(&[COGNITIVE_SERVICES_SCOPE], None)
                .await
                .map_err(|e| (LlmError::Token(e.to_string()), None))?;
            request = request.bearer_auth(token.token.secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| (LlmError::Transport(describe(&e)), None))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| (LlmError::Transport(describe(&e)), None))?;
        if !status.is_success() {
            return Err((
                LlmError::Status {
                    status: status.as_u16(),
                    message: error_message(&text),
                },
                retry_after,
            ));
        }
        let wire: WireResponse =
            serde_json::from_str(&text).map_err(|e| (LlmError::Malformed(e.to_string()), None))?;
        let choice = wire
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| (LlmError::Malformed("no choices".into()), None))?;
        Ok(Completion {
            message: choice.message,
            usage: wire.usage,
        })
    }
}

#[async_trait::async_trait]
impl LlmBackend for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.model
    }

    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError> {
        let mut body =
            serde_json::to_value(request).map_err(|e| LlmError::Malformed(e.to_string()))?;
        if self.config.provider == LlmProvider::Openai {
            body["model"] = self.config.model.clone().into();
        }
        let mut attempt = 0;
        loop {
            let (error, retry_after) = match self.attempt(&body).await {
                Ok(completion) => return Ok(completion),
                Err(failure) => failure,
            };
            if !error.is_transient() || attempt >= self.config.max_retries {
                return Err(error);
            }
            let backoff = self.config.retry_base.saturating_mul(1 << attempt.min(16));
            let delay = retry_after.unwrap_or(backoff);
            if delay > self.config.max_retry_after {
                return Err(error);
            }
            tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "retrying the model");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// `retry-after-ms` (Azure, OpenAI) or `Retry-After` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

/// The `error.message` of an OpenAI error body, else the start of the body.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// reqwest's Display hides the cause ("error sending request"); keep the chain.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut date = HeaderMap::new();
        date.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn error_message_reads_openai_errors() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
            "Rate limit reached"
        );
        assert_eq!(error_message("upstream down"), "upstream down");
    }
}
