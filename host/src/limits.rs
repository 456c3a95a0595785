//! Per-user rate limits and daily spend caps (`[limits]`): checked before a message reaches the
//! model, charged after its turn. Counters live in the store, so every replica shares them
//! (exact on SQLite; on Azure Table storage with ETag-checked adds). A user over a limit gets a
//! polite reply saying when they can continue; the message is answered with it, never lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::gauge::Gauge;

use crate::config::LimitsConfig;
use crate::store::{Store, StoreError};

const MINUTE: u64 = 60;
const DAY: u64 = 24 * 3600;
/// Share of the global daily cap at which a warning is logged.
const WARN_AT: f64 = 0.8;

/// Whether a message may go to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Within every limit.
    Admit,
    /// Over a limit: the reply to send instead.
    Refuse(String),
}

/// The limits and the counters they are kept with.
pub struct Limits {
    config: LimitsConfig,
    store: Arc<dyn Store>,
    /// The day (since the epoch) whose 80% warning was logged.
    warned_day: AtomicU64,
    /// Share of the global daily cap spent, for `/metrics`.
    budget_used: Gauge<f64, AtomicU64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// "in about N hours/minutes" until the next UTC midnight.
fn until_tomorrow(now: u64) -> String {
    let left = DAY - now % DAY;
    if left >= 3600 {
        format!("in about {} hours (after 00:00 UTC)", left.div_ceil(3600))
    } else {
        format!("in about {} minutes (after 00:00 UTC)", left.div_ceil(60))
    }
}

impl Limits {
    /// Limits `config` kept in `store`; the share of the global daily cap spent goes to
    /// `budget_used`.
    pub fn new(
        config: LimitsConfig,
        store: Arc<dyn Store>,
        budget_used: Gauge<f64, AtomicU64>,
    ) -> Self {
        Self {
            config,
            store,
            warned_day: AtomicU64::new(u64::MAX),
            budget_used,
        }
    }

    async fn add(&self, key: &str, amount: f64, ttl: u64) -> Result<f64, StoreError> {
        self.store
            .add_to_counter(key, amount, Duration::from_secs(ttl))
            .await
    }

    /// Counts this message in counter `key` and says whether that makes it more than `max`.
    async fn one_too_many(&self, key: &str, ttl: u64, max: f64) -> Result<bool, StoreError> {
        Ok(self.add(key, 1.0, ttl).await? > max)
    }

    /// Whether what counter `key` holds (today's tokens or dollars) has reached `cap`.
    async fn used_up(&self, key: &str, cap: f64) -> Result<bool, StoreError> {
        Ok(self.add(key, 0.0, 2 * DAY).await? >= cap)
    }

    /// Counts a message of `user` and says whether it may reach the model.
    pub async fn admit(&self, user: &str) -> Result<Admission, StoreError> {
        let c = &self.config;
        let now = now_secs();
        let day = now / DAY;
        let keys = Keys::new(user, day);
        let tomorrow = || until_tomorrow(now);
        let refuse = |reply: String| Ok(Admission::Refuse(reply));
        if let Some(max) = c.messages_per_minute {
            let key = format!("msgs:{user}:m{}", now / MINUTE);
            if self.one_too_many(&key, 2 * MINUTE, f64::from(max)).await? {
                return refuse(format!(
                    "You are sending messages faster than the {max} a minute allowed here. \
                     Please wait {} seconds and send it again.",
                    MINUTE - now % MINUTE
                ));
            }
        }
        if let Some(max) = c.messages_per_day {
            if self
                .one_too_many(&keys.messages, 2 * DAY, f64::from(max))
                .await?
            {
                return refuse(format!(
                    "You have sent the {max} messages allowed per day. You can continue {}.",
                    tomorrow()
                ));
            }
        }
        if let Some(cap) = c.user_daily_tokens {
            if self.used_up(&keys.tokens, cap as f64).await? {
                return refuse(format!(
                    "You have used today's allowance of {cap} tokens. You can continue {}.",
                    tomorrow()
                ));
            }
        }
        if let Some(cap) = c.user_daily_usd {
            if self.used_up(&keys.usd, cap).await? {
                return refuse(format!(
                    "You have used today's budget. You can continue {}.",
                    tomorrow()
                ));
            }
        }
        if let Some(cap) = c.global_daily_usd {
            let spent = self.add(&keys.usd_all, 0.0, 2 * DAY).await?;
            self.budget_used.set(spent / cap);
            if spent >= cap {
                tracing::warn!(spent, cap, "the global daily budget (limits.global_daily_usd) is used up; messages get the budget reply until 00:00 UTC");
                return refuse(format!(
                    "This assistant has used its budget for today. It will answer again {}.",
                    tomorrow()
                ));
            }
            if spent >= cap * WARN_AT && self.warned_day.swap(day, Ordering::Relaxed) != day {
                tracing::warn!(
                    spent,
                    cap,
                    "80% of the global daily budget (limits.global_daily_usd) is used"
                );
            }
        }
        Ok(Admission::Admit)
    }

    /// Charges a turn of `user` that used `tokens` and cost `usd` to the counters a limit
    /// reads.
    pub async fn charge(&self, user: &str, tokens: u64, usd: f64) -> Result<(), StoreError> {
        let keys = Keys::new(user, now_secs() / DAY);
        let c = &self.config;
        for (limited, key, amount) in [
            (c.user_daily_tokens.is_some(), &keys.tokens, tokens as f64),
            (c.user_daily_usd.is_some(), &keys.usd, usd),
            (c.global_daily_usd.is_some(), &keys.usd_all, usd),
        ] {
            if limited && amount > 0.0 {
                let total = self.add(key, amount, 2 * DAY).await?;
                if let (true, Some(cap)) = (key == &keys.usd_all, c.global_daily_usd) {
                    self.budget_used.set(total / cap);
                }
            }
        }
        Ok(())
    }
}

/// The names of a user's daily counters, and of everyone's.
struct Keys {
    messages: String,
    tokens: String,
    usd: String,
    usd_all: String,
}

impl Keys {
    fn new(user: &str, day: u64) -> Self {
        Self {
            messages: format!("msgs:{user}:d{day}"),
            tokens: format!("tokens:{user}:d{day}"),
            usd: format!("usd:{user}:d{day}"),
            usd_all: format!("usd:*:d{day}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_until_tomorrow_is_said_in_hours_or_minutes() {
        assert_eq!(until_tomorrow(0), "in about 24 hours (after 00:00 UTC)");
        assert_eq!(
            until_tomorrow(DAY - 90),
            "in about 2 minutes (after 00:00 UTC)"
        );
    }
}
