//! The Azure work queue: an Azure Storage Queue (`<name>`) for the work, a second one
//! (`<name>-poison`) for messages that keep failing, and a table of accepted dedupe keys.
//! Leases are the queue's own visibility timeouts and pop receipts.

use std::time::Duration;

use azure_core::http::{headers::HeaderName, RequestContent, StatusCode};
use azure_storage_queue::models::{
    QueueClientGetPropertiesResultHeaders, QueueClientPeekMessagesOptions,
    QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage,
};
use azure_storage_queue::{QueueClient, QueueClientOptions};
use serde_json::json;

use crate::azure::{dated_row, describe, error_code, StorageAccount, TableClient};
use crate::db::{millis, now_ms};

use super::{Leased, Poisoned, QueueError, Receipt, WorkQueue};

/// Azure caps a message at 64 KiB of text. Bodies travel base64-encoded (as Azure Functions
/// expect), which leaves 48 KiB, and a poisoned copy adds a line with the reason: hence 46 KiB.
const MAX_BODY: usize = 46 * 1024;
const MAX_REASON: usize = 1024;
const ACCEPTED_PARTITION: &str = "accepted";
/// How long a message being poisoned stays invisible: long enough to copy it aside and delete
/// it, short enough that one cut short by a crash comes back soon to be poisoned again.
const POISON_HOLD: Duration = Duration::from_secs(10);
const POP_RECEIPT: HeaderName = HeaderName::from_static("x-ms-popreceipt");

/// A [`WorkQueue`] on Azure Storage: every replica with the same account and name shares it.
pub struct AzureQueue {
    work: QueueClient,
    poison: QueueClient,
    tables: TableClient,
    accepted: String,
    name: String,
}

impl AzureQueue {
    /// Connects to queue `name` (and `<name>-poison`, and the accepted-keys table
    /// `<table_prefix>accepted`), creating what is missing.
    pub async fn open(
        account: &StorageAccount,
        name: &str,
        table_prefix: &str,
    ) -> Result<Self, QueueError> {
        let client = |name: &str| {
            QueueClient::new(
                StorageAccount::resource_url(&account.queue, name),
                account.credential(),
                Some(QueueClientOptions {
                    client_options: account.client_options(),
                    ..QueueClientOptions::default()
                }),
            )
            .map_err(|e| storage(&format!("queue {name}"), &e))
        };
        let queue = Self {
            work: client(name)?,
            poison: client(&format!("{name}-poison"))?,
            tables: account.tables(),
            accepted: format!("{table_prefix}accepted"),
            name: name.to_owned(),
        };
        for (client, which) in [
            (&queue.work, name.to_owned()),
            (&queue.poison, format!("{name}-poison")),
        ] {
            // 201 created, 204 already there with the same metadata. A replica whose identity
            // may not create queues (an ingress that only sends) uses one that exists.
            match client.create(None).await {
                Ok(_) => {}
                Err(e) if e.http_status() == Some(StatusCode::Forbidden) => {
                    client.get_properties(None).await.map_err(|_| {
                        storage(
                            &format!("creating queue {which} (create it beforehand or give the replica's identity Storage Queue Data Contributor on it)"),
                            &e,
                        )
                    })?;
                }
                Err(e) => return Err(storage(&format!("creating queue {which}"), &e)),
            }
        }
        queue
            .tables
            .create_table(&queue.accepted)
            .await
            .map_err(|e| QueueError::Azure(e.to_string()))?;
        Ok(queue)
    }

    /// Sends `body` to `client`'s queue; returns its id and the receipt that can delete it
    /// until a worker leases it.
    async fn send(&self, client: &QueueClient, body: &str) -> Result<Receipt, QueueError> {
        let message = QueueMessage {
            message_text: Some(azure_core::base64::encode(body)),
        };
        let content: RequestContent<QueueMessage, _> = message
            .try_into()
            .map_err(|e| storage("encoding a message", &e))?;
        let sent = client
            .send_message(
                content,
                // Never expire: the default is seven days, after which work would vanish.
                Some(QueueClientSendMessageOptions {
                    message_time_to_live: Some(-1),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| storage(&format!("sending to queue {}", self.name), &e))?
            .into_model()
            .and_then(|list| list.into_message())
            .map_err(|e| storage("reading the sent message", &e))?;
        match (sent.message_id, sent.pop_receipt) {
            (Some(id), Some(pop_receipt)) => Ok(Receipt { id, pop_receipt }),
            _ => Err(QueueError::Azure(
                "the queue returned no message id or pop receipt".into(),
            )),
        }
    }

    /// Moves the lease's visibility to `visibility` from now: the receipt must be current.
    async fn update(&self, receipt: &Receipt, visibility: Duration) -> Result<Receipt, QueueError> {
        let response = self
            .work
            .update_message(&receipt.id, &receipt.pop_receipt, seconds(visibility), None)
            .await
            .map_err(|e| lease_error(receipt, &e))?;
        let pop_receipt = response
            .headers()
            .get_optional_str(&POP_RECEIPT)
            .ok_or_else(|| QueueError::Azure("the queue returned no pop receipt".into()))?
            .to_owned();
        Ok(Receipt {
            id: receipt.id.clone(),
            pop_receipt,
        })
    }
}

fn check_size(body: &str) -> Result<(), QueueError> {
    if body.len() > MAX_BODY {
        return Err(QueueError::Azure(format!(
            "a message of {} bytes is over the Azure queue's limit of {MAX_BODY}",
            body.len()
        )));
    }
    Ok(())
}

/// Azure counts visibility in whole seconds, at least one.
fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX)
}

fn storage(what: &str, e: &azure_core::Error) -> QueueError {
    QueueError::Azure(format!("{what}: {}", describe(e)))
}

/// Message gone (deleted, or poisoned) or its pop receipt no longer current: another lease
/// holds it. Any other refusal is a storage error.
fn lease_error(receipt: &Receipt, e: &azure_core::Error) -> QueueError {
    if e.http_status() == Some(StatusCode::NotFound) || error_code(e) == Some("PopReceiptMismatch")
    {
        QueueError::LeaseLost {
            id: receipt.id.clone(),
        }
    } else {
        storage(&format!("message {}", receipt.id), e)
    }
}

fn decode(text: &str) -> Result<String, QueueError> {
    let bytes = azure_core::base64::decode(text).map_err(|_| {
        QueueError::Azure(
            "a message is not base64: was it sent by something other than molten?".into(),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| QueueError::Azure("a message is not UTF-8 text".into()))
}

#[async_trait::async_trait]
impl WorkQueue for AzureQueue {
    async fn enqueue(&self, body: &str) -> Result<String, QueueError> {
        check_size(body)?;
        Ok(self.send(&self.work, body).await?.id)
    }

    /// The message is queued *before* its key is recorded, so there is no instant at which the
    /// key is recorded and the message is not queued: a resend is dropped only once a copy is
    /// in the queue, and whenever the process dies an acknowledged message is never lost. What
    /// a crash between the steps does:
    ///
    /// - after the send, before the insert: a copy is queued with no key recorded; the
    ///   platform's resend (the webhook got no 200) queues a second copy, and the worker's
    ///   claim ([`crate::store::Store::claim`]) answers exactly one of them;
    /// - after the insert, before the 200: the resend finds the key and is dropped; the copy
    ///   already queued is answered.
    ///
    /// A resend that loses the insert race deletes the copy it sent; if a worker leased that
    /// copy first (or the delete fails), the claim drops it instead.
    async fn enqueue_once(&self, key: &str, body: &str) -> Result<Option<String>, QueueError> {
        check_size(body)?;
        let sent = self.send(&self.work, body).await?;
        crate::crash::point("enqueue_once.sent");
        let entity = dated_row(ACCEPTED_PARTITION, key);
        match self.tables.insert(&self.accepted, &entity).await {
            Ok(true) => Ok(Some(sent.id)),
            Ok(false) => {
                if let Err(e) = self.delete(&sent).await {
                    tracing::debug!(error = %e, %key, "a resent copy stays queued; the worker's claim drops it");
                }
                Ok(None)
            }
            Err(e) => {
                // The message is safely queued: acknowledge it. Without its key a resend may
                // queue a second copy, which the claim drops.
                tracing::warn!(error = %e, %key, "cannot record a webhook's dedupe key; a resend of it will be queued and dropped by the worker");
                Ok(Some(sent.id))
            }
        }
    }

    async fn forget_accepted(&self, age: Duration) -> Result<(), QueueError> {
        self.tables
            .delete_older(&self.accepted, ACCEPTED_PARTITION, now_ms() - millis(age))
            .await
            .map_err(|e| QueueError::Azure(e.to_string()))
    }

    async fn lease(&self, visibility: Duration) -> Result<Option<Leased>, QueueError> {
        let received = self
            .work
            .receive_messages(Some(QueueClientReceiveMessagesOptions {
                number_of_messages: Some(1),
                visibility_timeout: Some(seconds(visibility)),
                ..Default::default()
            }))
            .await
            .map_err(|e| storage(&format!("receiving from queue {}", self.name), &e))?
            .into_model()
            .map_err(|e| storage("reading a received message", &e))?;
        let Some(message) = received.items.and_then(|items| items.into_iter().next()) else {
            return Ok(None);
        };
        let (Some(id), Some(pop_receipt)) = (message.message_id, message.pop_receipt) else {
            return Err(QueueError::Azure(
                "a received message has no id or pop receipt".into(),
            ));
        };
        let text = message.message_text.unwrap_or_default();
        let mut leased = Leased {
            receipt: Receipt { id, pop_receipt },
            body: String::new(),
            dequeue_count: u32::try_from(message.dequeue_count.unwrap_or(1)).unwrap_or(u32::MAX),
        };
        match decode(&text) {
            Ok(body) => leased.body = body,
            Err(e) => {
                // Unreadable forever (not written by molten): set it aside as it came.
                leased.body = text;
                self.poison(&leased, &e.to_string()).await?;
                return Err(e);
            }
        }
        Ok(Some(leased))
    }

    async fn renew(&self, receipt: &Receipt, visibility: Duration) -> Result<Receipt, QueueError> {
        self.update(receipt, visibility).await
    }

    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.work
            .delete_message(&receipt.id, &receipt.pop_receipt, None)
            .await
            .map_err(|e| lease_error(receipt, &e))?;
        Ok(())
    }

    /// Copy aside, then delete. A crash between the two leaves the message in the queue, where
    /// it comes back after `POISON_HOLD` with a dequeue count past the limit and is poisoned
    /// again: the poison queue then holds two copies, which [`WorkQueue::poisoned`] shows once.
    async fn poison(&self, leased: &Leased, reason: &str) -> Result<(), QueueError> {
        // Prove the lease is current (and hold it long enough to copy) before copying it aside.
        let current = self.update(&leased.receipt, POISON_HOLD).await?;
        let reason = &reason[..reason.floor_char_boundary(MAX_REASON)];
        let header = json!({
            "id": leased.receipt.id,
            "reason": reason,
            "dequeue_count": leased.dequeue_count,
            "poisoned_ms": now_ms(),
        });
        self.send(&self.poison, &format!("{header}\n{}", leased.body))
            .await?;
        crate::crash::point("poison.copied");
        self.delete(&current).await
    }

    async fn poisoned(&self) -> Result<Vec<Poisoned>, QueueError> {
        let peeked = self
            .poison
            .peek_messages(Some(QueueClientPeekMessagesOptions {
                number_of_messages: Some(32),
                ..Default::default()
            }))
            .await
            .map_err(|e| storage(&format!("peeking at queue {}-poison", self.name), &e))?
            .into_model()
            .map_err(|e| storage("reading peeked messages", &e))?;
        let mut poisoned: Vec<Poisoned> = Vec::new();
        for message in peeked.items.unwrap_or_default() {
            let text = decode(&message.message_text.unwrap_or_default())?;
            let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
            let header: serde_json::Value = serde_json::from_str(header).unwrap_or_default();
            let id = header["id"].as_str().unwrap_or_default();
            // A poisoning cut short between copy and delete copies the message twice.
            if poisoned.iter().any(|p| p.id == id) {
                continue;
            }
            poisoned.push(Poisoned {
                id: id.to_owned(),
                body: body.to_owned(),
                reason: header["reason"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(poisoned)
    }

    /// Receives what the poison queue shows first (32 messages, as [`WorkQueue::poisoned`]
    /// lists), keeps the copies of `id` and lets the others go at once.
    async fn requeue(&self, id: &str, body: &str) -> Result<bool, QueueError> {
        let received = self
            .poison
            .receive_messages(Some(QueueClientReceiveMessagesOptions {
                number_of_messages: Some(32),
                visibility_timeout: Some(seconds(POISON_HOLD)),
                ..Default::default()
            }))
            .await
            .map_err(|e| storage(&format!("receiving from queue {}-poison", self.name), &e))?
            .into_model()
            .map_err(|e| storage("reading received messages", &e))?;
        let mut copies = Vec::new();
        for message in received.items.unwrap_or_default() {
            let (Some(message_id), Some(pop_receipt)) = (message.message_id, message.pop_receipt)
            else {
                continue;
            };
            let text = decode(&message.message_text.unwrap_or_default()).unwrap_or_default();
            let header = text.split_once('\n').map_or(text.as_str(), |(h, _)| h);
            let header: serde_json::Value = serde_json::from_str(header).unwrap_or_default();
            if header["id"].as_str() == Some(id) {
                copies.push((message_id, pop_receipt));
            } else if let Err(e) = self
                .poison
                .update_message(&message_id, &pop_receipt, 0, None)
                .await
            {
                // It comes back by itself after the hold.
                tracing::debug!(error = %describe(&e), "cannot release a poisoned message at once");
            }
        }
        if copies.is_empty() {
            return Ok(false);
        }
        check_size(body)?;
        self.send(&self.work, body).await?;
        for (message_id, pop_receipt) in copies {
            self.poison
                .delete_message(&message_id, &pop_receipt, None)
                .await
                .map_err(|e| storage("deleting a requeued poisoned message", &e))?;
        }
        Ok(true)
    }

    async fn oldest(&self) -> Result<Option<Duration>, QueueError> {
        let peeked = self
            .work
            .peek_messages(Some(QueueClientPeekMessagesOptions {
                number_of_messages: Some(1),
                ..Default::default()
            }))
            .await
            .map_err(|e| storage(&format!("peeking at queue {}", self.name), &e))?
            .into_model()
            .map_err(|e| storage("reading a peeked message", &e))?;
        let inserted = peeked
            .items
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|m| m.insertion_time);
        Ok(inserted.map(|at| {
            let age = time::OffsetDateTime::now_utc() - at;
            Duration::from_millis(u64::try_from(age.whole_milliseconds()).unwrap_or(0))
        }))
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let properties = self
            .work
            .get_properties(None)
            .await
            .map_err(|e| storage(&format!("reading queue {}", self.name), &e))?;
        let count = properties
            .approximate_messages_count()
            .map_err(|e| storage("reading the message count", &e))?;
        Ok(u64::try_from(count.unwrap_or(0)).unwrap_or(0))
    }
}
