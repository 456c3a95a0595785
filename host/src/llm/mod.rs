//! Talking to the model: the OpenAI chat-completions wire format with tools, behind a trait so
//! the direct endpoint and a gateway can both serve the agent; retries with backoff; the safety
//! filter and the secret redactor.

mod openai;
pub mod safety;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use openai::OpenAiClient;

/// One message of a chat-completions conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; absent on an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<String>,
    /// The tools an assistant message calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with text only.
    pub fn text(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: None,
        }
    }

    /// The answer to one tool call.
    pub fn tool_result(call_id: &str, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call_id.to_owned()),
            ..Self::text("tool", content)
        }
    }
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Echoed back in the result's `tool_call_id`.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function")]
    pub kind: String,
    /// What to call.
    pub function: FunctionCall,
}

fn function() -> String {
    "function".to_owned()
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The skill's name.
    pub name: String,
    /// JSON text (the model may produce invalid JSON; the skill reports it).
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name, description and JSON-schema parameters.
    pub function: FunctionDef,
}

/// A function offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDef {
    /// The skill's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

impl From<&crate::skills::ToolDefinition> for Tool {
    fn from(def: &crate::skills::ToolDefinition) -> Self {
        Tool {
            kind: "function",
            function: FunctionDef {
                name: def.name.clone(),
                description: def.description.clone(),
                parameters: def.parameters.clone(),
            },
        }
    }
}

/// What the agent asks the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call; empty forces a text answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Cap on the answer.
    pub max_tokens: u32,
}

impl ChatRequest {
    /// A key identifying this request for the response cache.
    pub fn cache_key(&self, model: &str) -> String {
        let body = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::new()
            .chain_update(model.as_bytes())
            .chain_update([0])
            .chain_update(&body)
            .finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("llm:{hex}")
    }
}

/// Token counts reported by the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens written.
    #[serde(default)]
    pub completion_tokens: u64,
}

/// The model's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// Text, tool calls, or both.
    pub message: Message,
    /// Tokens used.
    pub usage: Usage,
}

/// A request the model could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The endpoint answered with an error status.
    #[error("the model endpoint answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The endpoint's error message.
        message: String,
    },
    /// No answer: connection refused, reset, or timed out.
    #[error("the model endpoint could not be reached: {0}")]
    Transport(String),
    /// The answer is not a chat completion.
    #[error("the model endpoint's answer is not a chat completion: {0}")]
    Malformed(String),
    /// No Entra token for Azure OpenAI.
    #[error("cannot get an Entra ID token for Azure OpenAI: {0}; give the replica's identity the 'Cognitive Services OpenAI User' role, or set llm.api_key")]
    Token(String),
}

impl LlmError {
    /// Whether trying again later may succeed (429, 5xx, 408, no answer).
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => {
                *status == 429 || *status == 408 || (500..600).contains(status)
            }
            LlmError::Transport(_) | LlmError::Token(_) => true,
            LlmError::Malformed(_) => false,
        }
    }
}

/// Something that answers chat-completion requests.
#[async_trait::async_trait]
pub trait LlmBackend: Send + Sync {
    /// The model name, for the price table and the cache key.
    fn model(&self) -> &str;

    /// Answers one request, retrying transient failures as configured.
    async fn complete(&self, request: &ChatRequest) -> Result<Completion, LlmError>;
}
