//! `[llm]` (the model endpoint), `[agent]` (conversations), `[safety]` (the input filter) and
//! `[prices]`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{parse_url, positive, ConfigError, Secret};

/// Which wire flavour of chat completions the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer` (OpenAI, Ollama, llama.cpp...).
    Openai,
    /// `POST {base_url}/openai/deployments/{model}/chat/completions?api-version=`, `api-key`.
    Azure,
}

/// `[llm]`
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Wire flavour.
    pub provider: LlmProvider,
    /// Endpoint base URL.
    pub base_url: reqwest::Url,
    /// Model name (OpenAI) or deployment name (Azure).
    pub model: String,
    /// Key, if the endpoint needs one.
    pub api_key: Option<Secret>,
    /// Azure `api-version`.
    pub api_version: String,
    /// Cap on the answer's length.
    pub max_tokens: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after 429, 5xx or a timeout.
    pub max_retries: u32,
    /// First backoff delay, doubled each retry (a `Retry-After` header wins).
    pub retry_base: Duration,
    /// Longest `Retry-After` honoured; longer waits count as failure.
    pub max_retry_after: Duration,
    /// Identical requests within this time are answered from the cache (0 disables).
    pub cache_ttl: Duration,
}

/// `[agent]`
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The system prompt.
    pub system_prompt: String,
    /// History kept per chat: at most this many messages...
    pub history_messages: usize,
    /// ...and at most about this many tokens (4 characters a token).
    pub history_tokens: usize,
    /// A chat idle for longer starts afresh.
    pub session_ttl: Duration,
}

/// `[safety]`
#[derive(Debug, Clone)]
pub struct SafetyConfig {
    /// Longer messages are refused politely.
    pub max_input_chars: usize,
    /// Regular expressions; a message matching one is refused politely.
    pub blocked_patterns: Vec<String>,
    /// What the user is told when a message is refused.
    pub refusal: String,
}

/// One model's prices in US dollars per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input_per_1k: f64,
    /// Completion tokens.
    pub output_per_1k: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LlmFile {
    provider: Option<LlmProvider>,
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<Secret>,
    api_version: Option<String>,
    max_tokens: Option<u32>,
    timeout_secs: Option<u64>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
    max_retry_after_secs: Option<u64>,
    cache_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentFile {
    system_prompt: Option<String>,
    history_messages: Option<usize>,
    history_tokens: Option<usize>,
    session_ttl_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SafetyFile {
    max_input_chars: Option<usize>,
    blocked_patterns: Option<Vec<String>>,
    refusal: Option<String>,
}

const DEFAULT_SYSTEM_PROMPT: &str =
    "You are molten, a helpful assistant in a chat. Answer briefly. \
You can call tools; files you create live in the user's sandbox under /tmp.";

/// `[llm]` with no endpoint is "not configured", not an error.
pub(super) fn build_llm(l: LlmFile) -> Result<Option<LlmConfig>, ConfigError> {
    let Some(base_url) = l.base_url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let provider = l.provider.unwrap_or(LlmProvider::Openai);
    let base_url = parse_url("llm.base_url", &base_url)?;
    let model = l.model.filter(|m| !m.is_empty()).ok_or_else(|| ConfigError::Invalid {
        key: "llm.model".into(),
        message: match provider {
            LlmProvider::Openai => "missing: name the model, e.g. model = \"gpt-4o-mini\" (or set MOLTEN_LLM_MODEL)",
            LlmProvider::Azure => "missing: name the Azure OpenAI deployment (or set MOLTEN_LLM_MODEL)",
        }
        .into(),
    })?;
    // Azure OpenAI without a key authenticates with the replica's Entra identity.
    let api_key = l.api_key.filter(|k| !k.expose().is_empty());
    Ok(Some(LlmConfig {
        provider,
        base_url,
        model,
        api_key,
        api_version: l.api_version.unwrap_or_else(|| "2024-10-21".to_owned()),
        max_tokens: positive("llm.max_tokens", l.max_tokens, 512)?,
        timeout: Duration::from_secs(positive("llm.timeout_secs", l.timeout_secs, 60)?),
        max_retries: l.max_retries.unwrap_or(3).min(10),
        retry_base: Duration::from_millis(l.retry_base_ms.unwrap_or(500)),
        max_retry_after: Duration::from_secs(l.max_retry_after_secs.unwrap_or(60)),
        cache_ttl: Duration::from_secs(l.cache_ttl_secs.unwrap_or(300)),
    }))
}

impl AgentFile {
    pub(super) fn build(self) -> Result<AgentConfig, ConfigError> {
        Ok(AgentConfig {
            system_prompt: self
                .system_prompt
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
            history_messages: self.history_messages.unwrap_or(20),
            history_tokens: self.history_tokens.unwrap_or(4_000),
            session_ttl: Duration::from_secs(
                3600 * positive("agent.session_ttl_hours", self.session_ttl_hours, 24)?,
            ),
        })
    }
}

impl SafetyFile {
    pub(super) fn build(self) -> Result<SafetyConfig, ConfigError> {
        let safety = SafetyConfig {
            max_input_chars: positive("safety.max_input_chars", self.max_input_chars, 4_000)?,
            blocked_patterns: self.blocked_patterns.unwrap_or_default(),
            refusal: self.refusal.unwrap_or_else(|| {
                "Sorry, I can't help with that message. Please rephrase it or keep it shorter."
                    .to_owned()
            }),
        };
        for (i, pattern) in safety.blocked_patterns.iter().enumerate() {
            regex::Regex::new(pattern).map_err(|e| ConfigError::Invalid {
                key: format!("safety.blocked_patterns[{i}]"),
                message: format!("not a valid regular expression: {e}"),
            })?;
        }
        Ok(safety)
    }
}

/// `[prices]`, checked.
pub(super) fn check_prices(prices: &BTreeMap<String, Price>) -> Result<(), ConfigError> {
    for (model, price) in prices {
        if !(price.input_per_1k >= 0.0 && price.output_per_1k >= 0.0) {
            return Err(ConfigError::Invalid {
                key: format!("prices.{model}"),
                message: "prices must be zero or more (US dollars per 1,000 tokens)".into(),
            });
        }
    }
    Ok(())
}
