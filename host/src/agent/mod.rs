//! The tool-calling loop: history and the user's message go to the model with every skill as a
//! tool; each tool call runs the skill of exactly that name; the loop ends at a text answer, or
//! after [`MAX_TOOL_ROUNDS`] with one last call that offers no tools.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{AgentConfig, Price};
use crate::envelope::Envelope;
use crate::llm::{ChatRequest, Completion, LlmBackend, LlmError, Message, Tool, ToolCall, Usage};
use crate::metrics::{Metrics, ModelLabels, SkillLabels, SkillName, TokenLabels};
use crate::redact::Redactor;
use crate::skills::{CallContext, Registry};
use crate::store::{SessionMessage, SkillCallRecord, Store, StoreError, UsageRecord};
use tracing::Instrument as _;

/// Model calls that may ask for tools before the answer is forced.
pub const MAX_TOOL_ROUNDS: usize = 5;

/// Roughly how many characters make a token, for the history budget.
const CHARS_PER_TOKEN: usize = 4;

/// Why a turn produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The model failed after retries.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// State could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The model, the skills and the state, wired for answering messages.
pub struct Agent {
    llm: Arc<dyn LlmBackend>,
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    redactor: Arc<Redactor>,
    config: AgentConfig,
    max_tokens: u32,
    cache_ttl: Duration,
    price: Option<Price>,
    metrics: Arc<Metrics>,
}

/// Settings the agent takes from the `[llm]` section and the price table.
pub struct AgentLimits {
    /// `max_tokens` of every request.
    pub max_tokens: u32,
    /// Response cache lifetime (0 disables).
    pub cache_ttl: Duration,
    /// Prices by model.
    pub prices: BTreeMap<String, Price>,
}

impl Agent {
    /// Wires an agent.
    pub fn new(
        llm: Arc<dyn LlmBackend>,
        registry: Arc<Registry>,
        store: Arc<dyn Store>,
        redactor: Arc<Redactor>,
        config: AgentConfig,
        limits: AgentLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let price = limits.prices.get(llm.model()).copied();
        Self {
            llm,
            registry,
            store,
            redactor,
            config,
            max_tokens: limits.max_tokens,
            cache_ttl: limits.cache_ttl,
            price,
            metrics,
        }
    }

    /// Answers one message with redacted text, logging its usage (also returned, for the
    /// spend caps). Does not save the session: the caller does that once the reply has
    /// been delivered, so a redelivered message does not appear twice in the history.
    pub async fn answer(&self, envelope: &Envelope) -> Result<(String, UsageRecord), TurnError> {
        let history = self
            .store
            .session(&envelope.session_key(), self.config.session_ttl)
            .await?;
        let mut messages = vec![Message::text("system", &self.config.system_prompt)];
        messages.extend(trim_history(
            &history,
            self.config.history_messages,
            self.config.history_tokens,
        ));
        messages.push(Message::text("user", &envelope.text));
        let tools: Vec<Tool> = self
            .registry
            .skills()
            .iter()
            .map(|skill| Tool::from(skill.definition()))
            .collect();
        let context = CallContext::new(envelope.user_key(), envelope.session_key());
        let mut usage = UsageRecord {
            user: envelope.user_key(),
            model: self.llm.model().to_owned(),
            llm_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
        };

        let mut text = None;
        for _ in 0..MAX_TOOL_ROUNDS {
            let completion = self.complete(&messages, tools.clone(), &mut usage).await?;
            let calls = completion.message.tool_calls.clone().unwrap_or_default();
            if calls.is_empty() {
                text = Some(completion.message.content.unwrap_or_default());
                break;
            }
            messages.push(completion.message);
            for call in &calls {
                let output = self.run_tool(call, &context).await?;
                messages.push(Message::tool_result(&call.id, output));
            }
        }
        let text = match text {
            Some(text) => text,
            // Rounds used up: one last call with no tools, so the model must answer in text.
            None => {
                let completion = self.complete(&messages, Vec::new(), &mut usage).await?;
                completion.message.content.unwrap_or_default()
            }
        };
        let text = if text.trim().is_empty() {
            "I have no answer to that.".to_owned()
        } else {
            self.redactor.redact(&text)
        };
        if let Some(price) = self.price {
            usage.cost_usd = (usage.prompt_tokens as f64 * price.input_per_1k
                + usage.completion_tokens as f64 * price.output_per_1k)
                / 1000.0;
        }
        self.count_usage(&usage);
        self.store.record_usage(&usage).await?;
        Ok((text, usage))
    }

    /// Adds a turn's tokens and cost to the metrics.
    fn count_usage(&self, usage: &UsageRecord) {
        let metrics = &self.metrics;
        for (kind, tokens) in [
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        ] {
            metrics
                .tokens
                .get_or_create(&TokenLabels {
                    model: usage.model.clone(),
                    kind,
                })
                .inc_by(tokens);
        }
        metrics
            .cost_microusd
            .get_or_create(&ModelLabels {
                model: usage.model.clone(),
            })
            .inc_by((usage.cost_usd * 1e6).round() as u64);
    }

    /// One model call, answered from the cache when an identical text answer is fresh there.
    async fn complete(
        &self,
        messages: &[Message],
        tools: Vec<Tool>,
        usage: &mut UsageRecord,
    ) -> Result<Completion, TurnError> {
        let request = ChatRequest {
            messages: messages.to_vec(),
            tools,
            max_tokens: self.max_tokens,
        };
        let key = request.cache_key(self.llm.model());
        let cache = !self.cache_ttl.is_zero();
        if cache {
            if let Some(hit) = self.store.cache_get(&key).await? {
                if let Ok(completion) = serde_json::from_str::<Completion>(&hit) {
                    self.metrics.llm_cache_hits.inc();
                    return Ok(completion);
                }
            }
        }
        let started = Instant::now();
        let completion = self
            .llm
            .complete(&request)
            .instrument(tracing::debug_span!("llm", model = %self.llm.model()))
            .await;
        self.metrics
            .llm_seconds
            .observe(started.elapsed().as_secs_f64());
        let completion = completion?;
        let Usage {
            prompt_tokens,
            completion_tokens,
        } = completion.usage;
        usage.llm_calls += 1;
        usage.prompt_tokens += prompt_tokens;
        usage.completion_tokens += completion_tokens;
        // Only text answers are cached: replaying a tool call would repeat its side effects.
        let is_text = completion
            .message
            .tool_calls
            .as_ref()
            .is_none_or(Vec::is_empty);
        if cache && is_text {
            if let Ok(json) = serde_json::to_string(&completion) {
                self.store.cache_put(&key, &json, self.cache_ttl).await?;
            }
        }
        Ok(completion)
    }

    /// Runs one tool call and returns what the model sees: the output, or the error as text it
    /// can act on. Both are redacted and logged.
    async fn run_tool(&self, call: &ToolCall, context: &CallContext) -> Result<String, TurnError> {
        let name = &call.function.name;
        let started = Instant::now();
        let result = self
            .registry
            .invoke(name, &call.function.arguments, context)
            .instrument(tracing::debug_span!("skill", skill = %name))
            .await;
        let duration = started.elapsed();
        let result_label = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .skill_calls
            .get_or_create(&SkillLabels {
                skill: name.clone(),
                result: result_label,
            })
            .inc();
        self.metrics
            .skill_seconds
            .get_or_create(&SkillName {
                skill: name.clone(),
            })
            .observe(duration.as_secs_f64());
        let (success, output, error) = match result {
            Ok(output) => (true, self.redactor.redact(&output), None),
            Err(error) => {
                let message = self.redactor.redact(&format!("error: {error}"));
                (false, message.clone(), Some(message))
            }
        };
        tracing::info!(skill = %name, success, duration_ms = duration.as_millis() as u64, "skill call");
        self.store
            .record_skill_call(&SkillCallRecord {
                user: context.user_id.clone(),
                session: context.session_id.clone(),
                skill: name.clone(),
                parameters: self.redactor.redact(&call.function.arguments),
                success,
                error,
                duration,
            })
            .await?;
        Ok(output)
    }
}

/// The newest messages that fit both budgets (`max_messages`, about `max_tokens`), oldest first.
fn trim_history(
    history: &[SessionMessage],
    max_messages: usize,
    max_tokens: usize,
) -> Vec<Message> {
    let mut budget = max_tokens * CHARS_PER_TOKEN;
    let mut kept: Vec<Message> = history
        .iter()
        .rev()
        .take(max_messages)
        .take_while(|m| match budget.checked_sub(m.content.len()) {
            Some(rest) => {
                budget = rest;
                true
            }
            None => false,
        })
        .map(|m| Message::text(&m.role, &m.content))
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(sizes: &[usize]) -> Vec<SessionMessage> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| SessionMessage {
                role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
                content: i.to_string().repeat(*n),
            })
            .collect()
    }

    #[test]
    fn history_keeps_the_newest_messages_within_both_budgets() {
        let h = history(&[4, 4, 4, 4, 4]);
        let kept = trim_history(&h, 3, 1000);
        let texts: Vec<_> = kept.iter().map(|m| m.content.clone().unwrap()).collect();
        assert_eq!(texts, ["2222", "3333", "4444"]);
        assert_eq!(kept[0].role, "user");

        // 3 tokens = 12 characters: three 4-character messages fit, a fourth does not.
        assert_eq!(trim_history(&h, 20, 3).len(), 3);
        // One huge old message stops the walk back; nothing older sneaks in.
        let h = history(&[4, 400, 4]);
        let kept = trim_history(&h, 20, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].content.as_deref(), Some("2222"));
        assert!(trim_history(&[], 20, 10).is_empty());
    }
}
