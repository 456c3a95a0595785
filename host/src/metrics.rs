//! Process-wide metrics: the counters of `/admin/status`, and everything `/metrics` exports in
//! the Prometheus text format (requests by route and status, turns, model latency, tokens and
//! cost, skill calls and durations). Depends on nothing else in molten.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// HTTP requests by route and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/webhook/telegram` (`other` for unknown paths).
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// Model tokens by model and kind (`prompt`, `completion`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The model (or Azure deployment).
    pub model: String,
    /// `prompt` or `completion`.
    pub kind: &'static str,
}

/// Per model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model (or Azure deployment).
    pub model: String,
}

/// Skill calls by skill and result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkillLabels {
    /// The skill.
    pub skill: String,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Per skill.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkillName {
    /// The skill.
    pub skill: String,
}

/// Plugin store events by result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLoad {
    /// `loaded`, `replaced`, `refused` or `removed`.
    pub result: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Counters shared by ingress and workers, and the Prometheus registry that exports them.
pub struct Metrics {
    /// Webhooks verified and queued.
    pub accepted: Counter,
    /// Requests refused (any 4xx): bad signature or token, malformed, too large, unknown
    /// route or method.
    pub rejected: Counter,
    /// Webhooks for a message already queued.
    pub duplicates: Counter,
    /// Webhooks with nothing to answer (edits, bot messages, non-text updates).
    pub ignored: Counter,
    /// Replies delivered.
    pub replied: Counter,
    /// Turns whose reply could not be delivered (the message stays queued).
    pub delivery_failures: Counter,
    /// Turns where the model failed and the user got an apology.
    pub llm_failures: Counter,
    /// Messages moved to the poison table.
    pub poisoned: Counter,
    /// Messages answered with a limit reply instead of reaching the model.
    pub limited: Counter,
    /// HTTP requests by route and status.
    pub requests: Family<RouteLabels, Counter>,
    /// Model calls' latency.
    pub llm_seconds: Histogram,
    /// Model calls answered from the response cache.
    pub llm_cache_hits: Counter,
    /// Tokens by model and kind.
    pub tokens: Family<TokenLabels, Counter>,
    /// Cost in micro-dollars by model (from the price table).
    pub cost_microusd: Family<ModelLabels, Counter>,
    /// Skill calls by skill and result.
    pub skill_calls: Family<SkillLabels, Counter>,
    /// Skill calls' duration by skill.
    pub skill_seconds: Family<SkillName, Histogram>,
    /// Messages waiting in the queue, sampled when scraped.
    pub queue_depth: Gauge,
    /// Age of the oldest waiting message in seconds, sampled when scraped.
    pub queue_oldest_seconds: Gauge<f64, AtomicU64>,
    /// Share of `[limits] global_daily_usd` spent today (0 without that cap).
    pub budget_used: Gauge<f64, AtomicU64>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            accepted: Counter::default(),
            rejected: Counter::default(),
            duplicates: Counter::default(),
            ignored: Counter::default(),
            replied: Counter::default(),
            delivery_failures: Counter::default(),
            llm_failures: Counter::default(),
            poisoned: Counter::default(),
            limited: Counter::default(),
            requests: Family::default(),
            llm_seconds: seconds_histogram(),
            llm_cache_hits: Counter::default(),
            tokens: Family::default(),
            cost_microusd: Family::default(),
            skill_calls: Family::default(),
            skill_seconds: Family::new_with_constructor(seconds_histogram),
            queue_depth: Gauge::default(),
            queue_oldest_seconds: Gauge::default(),
            budget_used: Gauge::default(),
            registry: Registry::with_prefix("molten"),
        };
        metrics.register()
    }
}

impl Metrics {
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "webhooks_accepted",
            "Webhooks verified and queued",
            self.accepted.clone(),
        );
        r.register(
            "requests_rejected",
            "Requests refused (any 4xx)",
            self.rejected.clone(),
        );
        r.register(
            "webhooks_duplicate",
            "Webhooks for a message already queued",
            self.duplicates.clone(),
        );
        r.register(
            "webhooks_ignored",
            "Webhooks with nothing to answer",
            self.ignored.clone(),
        );
        r.register("replies_sent", "Replies delivered", self.replied.clone());
        r.register(
            "reply_failures",
            "Replies that could not be delivered (retried)",
            self.delivery_failures.clone(),
        );
        r.register(
            "llm_failures",
            "Turns where the model failed and the user got an apology",
            self.llm_failures.clone(),
        );
        r.register(
            "messages_poisoned",
            "Messages moved aside after too many deliveries",
            self.poisoned.clone(),
        );
        r.register(
            "messages_limited",
            "Messages answered with a limit reply ([limits])",
            self.limited.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            self.requests.clone(),
        );
        r.register(
            "llm_request_seconds",
            "Model calls' latency",
            self.llm_seconds.clone(),
        );
        r.register(
            "llm_cache_hits",
            "Model calls answered from the response cache",
            self.llm_cache_hits.clone(),
        );
        r.register(
            "llm_tokens",
            "Model tokens by model and kind",
            self.tokens.clone(),
        );
        r.register(
            "llm_cost_microusd",
            "Model cost in millionths of a US dollar, by model",
            self.cost_microusd.clone(),
        );
        r.register(
            "skill_calls",
            "Skill calls by skill and result",
            self.skill_calls.clone(),
        );
        r.register(
            "skill_call_seconds",
            "Skill calls' duration by skill",
            self.skill_seconds.clone(),
        );
        r.register(
            "queue_depth",
            "Messages waiting in the queue",
            self.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_message_seconds",
            "How long the oldest waiting message has waited",
            self.queue_oldest_seconds.clone(),
        );
        r.register(
            "global_daily_budget_used_ratio",
            "Share of limits.global_daily_usd spent today (a warning is logged at 0.8)",
            self.budget_used.clone(),
        );
        self
    }

    /// Exports the meters the skill runtime and the plugin store keep themselves.
    pub fn watch_skills(
        &mut self,
        fuel_used: Family<SkillName, Counter>,
        plugin_loads: Family<PluginLoad, Counter>,
    ) {
        self.registry.register(
            "skill_fuel_used",
            "Wasm fuel used by skill calls, by skill",
            fuel_used,
        );
        self.registry.register(
            "plugin_loads",
            "Plugin store events by result (loaded, replaced, refused, removed)",
            plugin_loads,
        );
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &Counter) {
        counter.inc();
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }

    /// The counters now, for `/admin/status`.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            accepted: self.accepted.get(),
            rejected: self.rejected.get(),
            duplicates: self.duplicates.get(),
            ignored: self.ignored.get(),
            replied: self.replied.get(),
            delivery_failures: self.delivery_failures.get(),
            llm_failures: self.llm_failures.get(),
            poisoned: self.poisoned.get(),
        }
    }
}

/// A copy of the counters, for JSON.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    accepted: u64,
    rejected: u64,
    duplicates: u64,
    ignored: u64,
    replied: u64,
    delivery_failures: u64,
    llm_failures: u64,
    poisoned: u64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("counters", &self.snapshot())
            .finish_non_exhaustive()
    }
}
