//! Per-user rate limits and daily spend caps (`[limits]`): checked before a message reaches the
//! model, charged after its turn. Counters live in the store, so every replica shares them
//! (exact on SQLite; on Azure Table storage with ETag-checked adds). A user over a limit gets a
//! polite reply saying when they can continue; the message is answered with it, never lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Limits `config` kept in `store`.
    pub fn new(config: LimitsConfig, store: Arc<dyn Store>) -> Self {
        Self {
            config,
            store,
            warned_day: AtomicU64::new(u64::MAX),
        }
    }

    async fn add(&self, key: String, amount: f64, ttl: u64) -> Result<f64, StoreError> {
        self.store
            .add_to_counter(&key, amount, Duration::from_secs(ttl))
            .await
    }

    /// Counts a message of `user` and says whether it may reach the model.
    pub async fn admit(&self, user: &str) -> Result<Admission, StoreError> {
        let c = &self.config;
        let now = now_secs();
        let (minute, day) = (now / MINUTE, now / DAY);
        if let Some(max) = c.messages_per_minute {
            let sent = self
                .add(format!("msgs:{user}:m{minute}"), 1.0, 2 * MINUTE)
                .await?;
            if sent > f64::from(max) {
                return Ok(Admission::Refuse(format!(
                    "You are sending messages faster than the {max} a minute allowed here. \
                     Please wait {} seconds and send it again.",
                    MINUTE - now % MINUTE
                )));
            }
        }
        if let Some(max) = c.messages_per_day {
            let sent = self
                .add(format!("msgs:{user}:d{day}"), 1.0, 2 * DAY)
                .await?;
            if sent > f64::from(max) {
                return Ok(Admission::Refuse(format!(
                    "You have sent the {max} messages allowed per day. You can continue {}.",
                    until_tomorrow(now)
                )));
            }
        }
        if let Some(cap) = c.user_daily_tokens {
            let used = self
                .add(format!("tokens:{user}:d{day}"), 0.0, 2 * DAY)
                .await?;
            if used >= cap as f64 {
                return Ok(Admission::Refuse(format!(
                    "You have used today's allowance of {cap} tokens. You can continue {}.",
                    until_tomorrow(now)
                )));
            }
        }
        if let Some(cap) = c.user_daily_usd {
            let spent = self.add(format!("usd:{user}:d{day}"), 0.0, 2 * DAY).await?;
            if spent >= cap {
                return Ok(Admission::Refuse(format!(
                    "You have used today's budget. You can continue {}.",
                    until_tomorrow(now)
                )));
            }
        }
        if let Some(cap) = c.global_daily_usd {
            let spent = self.add(format!("usd:*:d{day}"), 0.0, 2 * DAY).await?;
            if spent >= cap {
                tracing::warn!(spent, cap, "the global daily budget (limits.global_daily_usd) is used up; messages get the budget reply until 00:00 UTC");
                return Ok(Admission::Refuse(format!(
                    "This assistant has used its budget for today. It will answer again {}.",
                    until_tomorrow(now)
                )));
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

    /// Charges a turn of `user` that used `tokens` and cost `usd`.
    pub async fn charge(&self, user: &str, tokens: u64, usd: f64) -> Result<(), StoreError> {
        let day = now_secs() / DAY;
        let c = &self.config;
        if c.user_daily_tokens.is_some() && tokens > 0 {
            self.add(format!("tokens:{user}:d{day}"), tokens as f64, 2 * DAY)
                .await?;
        }
        if usd > 0.0 {
            if c.user_daily_usd.is_some() {
                self.add(format!("usd:{user}:d{day}"), usd, 2 * DAY).await?;
            }
            if c.global_daily_usd.is_some() {
                self.add(format!("usd:*:d{day}"), usd, 2 * DAY).await?;
            }
        }
        Ok(())
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
