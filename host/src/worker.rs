//! The queue consumer: lease a message, answer it, deliver the reply, and only then delete it.
//!
//! The lease is renewed while the turn runs. Whatever fails, the message stays queued and comes
//! back after the visibility timeout; a message already answered (the store says so) is deleted
//! without a second reply; after `max_deliveries` the message is poisoned and the user gets an
//! apology. A failing model does not leave the user waiting: they get an apology at once.
//!
//! The steps of one message, and what the process dying between two of them does (each
//! boundary is a crash point, tested in `tests/crash.rs`):
//!
//! 1. claim the platform message for this queued copy ([`Store::claim`]): two copies of one
//!    message (see `enqueue_once`) are never both answered;
//! 2. run the turn, logging its skill calls and the model's usage (a crash after that logs the
//!    next delivery's turn too, which was really spent);
//! 3. `worker.answered` — crash: nothing was sent; the message comes back and is answered once;
//! 4. send the reply; `worker.replied` — crash: the user has the answer but nothing records it;
//!    the message comes back and is answered **again**. This is the one window of at-least-once
//!    delivery (no platform can be asked whether a message was sent);
//! 5. mark it replied; `worker.marked` — crash: the redelivery finds the mark and is deleted
//!    unanswered; the turn is missing from the chat's history (the user has it);
//! 6. append the turn to the session; `worker.saved` — crash: the redelivery is deleted
//!    unanswered;
//! 7. delete the message.
//!
//! Poisoning apologises first and moves the message aside second (see `Worker::poison`); the
//! queue's own multi-step writes say what a crash does beside them (`enqueue_once`, `poison`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify};

use crate::agent::{Agent, TurnError};
use crate::channels::Channels;
use crate::config::{AgentConfig, WorkerConfig};
use crate::envelope::Envelope;
use tracing::Instrument as _;

use crate::limits::Admission;
use crate::llm::safety::SafetyFilter;
use crate::metrics::Metrics;
use crate::queue::{Leased, QueueError, Receipt, WorkQueue};
use crate::redact::Redactor;
use crate::store::{Claim, SessionMessage, Store};

/// Told to the user when the model cannot be reached after retries.
pub const LLM_APOLOGY: &str =
    "Sorry, I can't reach my language model right now. Please try again in a few minutes.";
/// Told to the user when their message is given up on.
pub const POISON_APOLOGY: &str =
    "Sorry, something went wrong while answering your message and I had to give up on it. Please send it again.";
/// Told to the user when no model is configured.
pub const NOT_CONFIGURED: &str =
    "I'm not set up yet: no language model is configured. Ask the operator to set [llm] in molten's config.";

/// Everything a worker needs.
pub struct Worker {
    /// Where messages come from.
    pub queue: Arc<dyn WorkQueue>,
    /// Dedupe and sessions.
    pub store: Arc<dyn Store>,
    /// `None` when no model is configured.
    pub agent: Option<Arc<Agent>>,
    /// Where replies go.
    pub channels: Arc<Channels>,
    /// Input pre-filter.
    pub safety: Arc<SafetyFilter>,
    /// Scrubs apologies and refusals too (they may quote configured text).
    pub redactor: Arc<Redactor>,
    /// Leases, retries, concurrency.
    pub config: WorkerConfig,
    /// History limits.
    pub agent_config: AgentConfig,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Rate limits and spend caps, if any are configured.
    pub limits: Option<Arc<crate::limits::Limits>>,
    /// Notified when a message is queued in this process.
    pub wake: Arc<Notify>,
    /// The OpenClaw gateway turns go to first, if one is configured.
    pub openclaw: Option<Arc<crate::openclaw::OpenClaw>>,
}

/// What happened to one leased message.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Replied (or found already replied) and deleted.
    Done,
    /// Left on the queue to come back.
    Retry,
    /// Moved to the poison table.
    Poisoned,
}

impl Worker {
    /// Runs `config.concurrency` consumers until `shutdown` becomes true; each finishes the
    /// message it holds first.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        tracing::info!(consumers = self.config.concurrency, "worker started");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency {
            let (worker, shutdown) = (self.clone(), shutdown.clone());
            tasks.spawn(async move { worker.consume(shutdown).await });
        }
        let pruner = self.clone();
        let mut prune_shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                let dedupe_age = Duration::from_secs(7 * 24 * 3600);
                let ttl = pruner.agent_config.session_ttl;
                if let Err(e) = pruner.store.prune(dedupe_age, ttl).await {
                    tracing::warn!(error = %e, "pruning the store failed");
                }
                if let Err(e) = pruner.queue.forget_accepted(dedupe_age).await {
                    tracing::warn!(error = %e, "pruning the queue's dedupe keys failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = prune_shutdown.wait_for(|stop| *stop) => break,
                }
            }
        });
        while tasks.join_next().await.is_some() {}
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) {
        let mut idle = Duration::from_millis(5);
        while !*shutdown.borrow() {
            match self.queue.lease(self.config.visibility_timeout).await {
                Ok(Some(leased)) => {
                    idle = Duration::from_millis(5);
                    let outcome = self.handle(leased).await;
                    tracing::debug!(?outcome, "message handled");
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(idle) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                    idle = (idle * 2).min(self.config.poll_interval);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot lease from the queue");
                    tokio::time::sleep(self.config.poll_interval).await;
                }
            }
        }
    }

    async fn handle(&self, leased: Leased) -> Outcome {
        let envelope: Envelope = match serde_json::from_str(&leased.body) {
            Ok(envelope) => envelope,
            Err(e) => {
                return self
                    .poison(&leased, &format!("not a message envelope: {e}"), None)
                    .await
            }
        };
        // Every line logged while this message is handled names it. At error level, so the
        // fields are there whatever the filter shows.
        let span = tracing::error_span!(
            "turn",
            message = %envelope.message_id,
            channel = envelope.reply_to.channel(),
            user = %self.config.privacy.log_user(&envelope.user_key()),
        );
        crate::telemetry::continue_trace(&span, envelope.trace.as_deref());
        self.handle_envelope(leased, envelope)
            .instrument(span)
            .await
    }

    async fn handle_envelope(&self, leased: Leased, envelope: Envelope) -> Outcome {
        let key = envelope.dedupe_key();
        if leased.dequeue_count > self.config.max_deliveries {
            let reason = format!(
                "not answered after {} deliveries",
                self.config.max_deliveries
            );
            return self.poison(&leased, &reason, Some(&envelope)).await;
        }
        match self.store.claim(&key, &leased.receipt.id).await {
            Ok(Claim::Mine) => {}
            Ok(Claim::Replied) => {
                tracing::info!(%key, "already answered; dropping the redelivery");
                return self.delete(&leased.receipt).await;
            }
            Ok(Claim::Taken) => {
                tracing::info!(%key, id = %leased.receipt.id, "another queued copy of this message answers it; dropping this one");
                return self.delete(&leased.receipt).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read dedupe state; will retry");
                return Outcome::Retry;
            }
        }

        // Keep the message invisible while the turn runs.
        let (stop, stopped) = oneshot::channel();
        let renewer = tokio::spawn(renew(
            self.queue.clone(),
            leased.receipt.clone(),
            self.config.visibility_timeout,
            stopped,
        ));
        let outcome = self.answer(&envelope).await;
        let _ = stop.send(());
        let receipt = renewer.await.unwrap_or(leased.receipt);
        match outcome {
            Some(Outcome::Done) => self.delete(&receipt).await,
            Some(other) => other,
            None => Outcome::Retry,
        }
    }

    /// Produces and delivers the reply; `None` when the message must come back later.
    async fn answer(&self, envelope: &Envelope) -> Option<Outcome> {
        let admission = match &self.limits {
            Some(limits) => match limits.admit(&envelope.user_key()).await {
                Ok(admission) => admission,
                Err(e) => {
                    tracing::error!(error = %e, "cannot check the limits; will retry");
                    return None;
                }
            },
            None => Admission::Admit,
        };
        let (reply, turn) = if let Some(refusal) = self.safety.check(&envelope.text) {
            (refusal, false)
        } else if let Admission::Refuse(reply) = admission {
            Metrics::bump(&self.metrics.limited);
            (reply, false)
        } else if let Some(reply) = self.gateway_turn(envelope).await {
            (reply, true)
        } else if let Some(agent) = &self.agent {
            match agent.answer(envelope).await {
                Ok((text, usage)) => {
                    if let Some(limits) = &self.limits {
                        let tokens = usage.prompt_tokens + usage.completion_tokens;
                        if let Err(e) = limits.charge(&usage.user, tokens, usage.cost_usd).await {
                            tracing::error!(error = %e, "cannot charge the turn to the limits");
                        }
                    }
                    (text, true)
                }
                Err(TurnError::Llm(e)) => {
                    tracing::error!(error = %e, "the model failed; apologising");
                    Metrics::bump(&self.metrics.llm_failures);
                    (LLM_APOLOGY.to_owned(), false)
                }
                Err(TurnError::Store(e)) => {
                    tracing::error!(error = %e, "state storage failed; will retry");
                    return None;
                }
            }
        } else {
            (NOT_CONFIGURED.to_owned(), false)
        };
        let reply = self.redactor.redact(&reply);
        crate::crash::point("worker.answered");
        let delivered = self
            .channels
            .send(&envelope.reply_to, &reply)
            .instrument(tracing::debug_span!("reply"))
            .await;
        if let Err(e) = delivered {
            tracing::error!(error = %e, key = %envelope.dedupe_key(), "reply not delivered; the message stays queued");
            Metrics::bump(&self.metrics.delivery_failures);
            return None;
        }
        Metrics::bump(&self.metrics.replied);
        crate::crash::point("worker.replied");
        // From here on a redelivery must not answer again.
        if let Err(e) = self.store.mark_replied(&envelope.dedupe_key()).await {
            tracing::error!(error = %e, "cannot record the reply; a redelivery may answer twice");
        }
        crate::crash::point("worker.marked");
        if turn {
            let messages = [
                SessionMessage {
                    role: "user".into(),
                    content: envelope.text.clone(),
                },
                SessionMessage {
                    role: "assistant".into(),
                    content: reply,
                },
            ];
            if let Err(e) = self
                .store
                .append_session(
                    &envelope.session_key(),
                    &messages,
                    self.agent_config.history_messages.max(2),
                )
                .await
            {
                tracing::error!(error = %e, "cannot save the session");
            }
        }
        crate::crash::point("worker.saved");
        Some(Outcome::Done)
    }

    /// The OpenClaw gateway's answer, if one is configured and answers in time; otherwise the
    /// model answers (the gateway never replies to the user itself, so there is one answer).
    async fn gateway_turn(&self, envelope: &Envelope) -> Option<String> {
        let gateway = self.openclaw.as_ref()?;
        let session = format!(
            "agent:main:molten-{}",
            envelope.session_key().replace(':', "-")
        );
        match gateway
            .turn(&envelope.dedupe_key(), &session, &envelope.text)
            .instrument(tracing::debug_span!("openclaw"))
            .await
        {
            Ok(reply) => Some(reply),
            Err(error) => {
                gateway.fell_back();
                tracing::warn!(%error, "the OpenClaw gateway did not answer; the model answers instead");
                None
            }
        }
    }

    async fn delete(&self, receipt: &Receipt) -> Outcome {
        match self.queue.delete(receipt).await {
            Ok(()) => Outcome::Done,
            Err(e) => {
                // The reply is recorded, so the redelivery is dropped without a second answer.
                tracing::warn!(error = %e, "cannot delete an answered message");
                Outcome::Retry
            }
        }
    }

    /// Apologises (once), then moves the message aside. In that order because a crash after
    /// the move and before the apology would leave the user with no answer at all; a crash at
    /// `worker.apologised` brings the message back, past its delivery limit, and it is moved
    /// aside without a second apology.
    async fn poison(&self, leased: &Leased, reason: &str, envelope: Option<&Envelope>) -> Outcome {
        tracing::error!(id = %leased.receipt.id, %reason, "poisoning message");
        if let Some(envelope) = envelope {
            let key = envelope.dedupe_key();
            let answered = matches!(self.store.replied(&key).await, Ok(true));
            if !answered {
                match self.channels.send(&envelope.reply_to, POISON_APOLOGY).await {
                    Ok(()) => {
                        let _ = self.store.mark_replied(&key).await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot deliver the apology"),
                }
            }
        }
        crate::crash::point("worker.apologised");
        if let Err(e) = self.queue.poison(leased, reason).await {
            tracing::error!(error = %e, "cannot poison the message");
            return Outcome::Retry;
        }
        Metrics::bump(&self.metrics.poisoned);
        Outcome::Poisoned
    }
}

/// Renews the lease at a third of the visibility timeout until told to stop (never in the
/// middle of a renewal) or the lease is lost; returns the current receipt.
async fn renew(
    queue: Arc<dyn WorkQueue>,
    mut receipt: Receipt,
    visibility: Duration,
    mut stop: oneshot::Receiver<()>,
) -> Receipt {
    loop {
        tokio::select! {
            _ = &mut stop => return receipt,
            _ = tokio::time::sleep(visibility / 3) => {}
        }
        match queue.renew(&receipt, visibility).await {
            Ok(fresh) => receipt = fresh,
            Err(QueueError::LeaseLost { id }) => {
                tracing::warn!(%id, "lease lost while answering; the message will come back");
                return receipt;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew a lease; trying again"),
        }
    }
}
