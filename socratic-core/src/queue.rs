//! The `Queue` port, split by capability into a producer and a consumer.
//!
//! Delivery is at least once: a received message that is not acknowledged before its visibility
//! timeout comes back with its attempt count raised, and after the queue's maximum attempts it
//! moves to a dead-letter queue. Handlers must therefore be idempotent. Messages carry ids only.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The largest body accepted, in bytes (SQS's limit is 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest delay a message may be sent or nacked with (SQS's limit).
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The body, usually a small JSON job.
    pub body: String,
    /// Hide the message for this long after sending.
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    /// A message with no delay.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: None,
        }
    }

    /// Checks size and delay limits.
    pub fn check(&self) -> Result<(), QueueError> {
        if self.body.is_empty() || self.body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::InvalidRequest {
                message: format!(
                    "message body must be 1 to {MAX_MESSAGE_BYTES} bytes, got {}",
                    self.body.len()
                ),
            });
        }
        if self.delay.is_some_and(|d| d > MAX_DELAY) {
            return Err(QueueError::InvalidRequest {
                message: "delay longer than 15 minutes".to_owned(),
            });
        }
        Ok(())
    }
}

/// The queue's id for a sent message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A handle to one delivery of a message, used to ack or nack it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(pub String);

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id; the same on every delivery.
    pub message_id: MessageId,
    /// This delivery's handle.
    pub receipt: Receipt,
    /// The body.
    pub body: String,
    /// Which delivery this is, from 1.
    pub attempt: u32,
}

/// How to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// At most this many messages (1 to 10).
    pub max_messages: usize,
    /// Wait up to this long for a message (long polling; at most 20 s).
    pub wait: Duration,
    /// Hide received messages for this long; `None` uses the queue's default.
    pub visibility_timeout: Option<Duration>,
}

/// The most messages one receive may ask for (SQS's limit).
pub const MAX_RECEIVE: usize = 10;

impl ReceiveOptions {
    /// Checks the limits every backend shares: 1 to [`MAX_RECEIVE`] messages.
    pub fn check(&self) -> Result<(), QueueError> {
        if (1..=MAX_RECEIVE).contains(&self.max_messages) {
            Ok(())
        } else {
            Err(QueueError::InvalidRequest {
                message: format!(
                    "max_messages must be 1 to {MAX_RECEIVE}, got {}",
                    self.max_messages
                ),
            })
        }
    }
}

/// Checks a nack's delay against [`MAX_DELAY`].
pub fn check_nack_delay(delay: Duration) -> Result<(), QueueError> {
    if delay > MAX_DELAY {
        Err(QueueError::InvalidRequest {
            message: "nack delay longer than 15 minutes".to_owned(),
        })
    } else {
        Ok(())
    }
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            max_messages: 10,
            wait: Duration::from_secs(1),
            visibility_timeout: None,
        }
    }
}

/// What went wrong in a queue operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The receipt is unknown or expired (the message was redelivered or deleted).
    #[error("stale or unknown receipt")]
    StaleReceipt,
    /// The request is invalid.
    #[error("invalid queue request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// The backend is rate-limiting.
    #[error("queue throttled: {message}")]
    Throttled {
        /// The backend's message.
        message: String,
    },
    /// The backend failed; the operation may or may not have happened.
    #[error("queue unavailable: {message}")]
    Unavailable {
        /// The backend's message.
        message: String,
    },
}

impl QueueError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Throttled { .. } | QueueError::Unavailable { .. }
        )
    }
}

/// Sends messages.
#[async_trait]
pub trait QueueProducer: Send + Sync {
    /// Sends one message.
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError>;

    /// Sends many; the result has one entry per message, in order. The outer error is for a
    /// failure of the whole call; entries fail individually.
    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError>;
}

/// Receives and settles messages.
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Receives up to `options.max_messages`, waiting up to `options.wait` for the first.
    async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes a delivered message: it is done.
    async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError>;

    /// Returns a delivered message to the queue, visible again after `delay`.
    async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError>;

    /// The deliveries a message gets before it is dead-lettered (SQS's `maxReceiveCount`);
    /// `None` when the queue retries forever or does not say. A consumer that fails a
    /// message on this attempt is its last chance to record why.
    fn max_attempts(&self) -> Option<u32> {
        None
    }
}

/// Whether delivery `attempt` is the last a queue allowing `max_attempts` gives.
pub fn is_last_attempt(attempt: u32, max_attempts: Option<u32>) -> bool {
    max_attempts.is_some_and(|max| attempt >= max)
}

macro_rules! forward_queue {
    ($ty:ty) => {
        #[async_trait]
        impl<T: QueueProducer + ?Sized> QueueProducer for $ty {
            async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
                (**self).send(message).await
            }
            async fn send_batch(
                &self,
                messages: Vec<OutgoingMessage>,
            ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
                (**self).send_batch(messages).await
            }
        }

        #[async_trait]
        impl<T: QueueConsumer + ?Sized> QueueConsumer for $ty {
            async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError> {
                (**self).receive(options).await
            }
            async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError> {
                (**self).ack(receipt).await
            }
            async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
                (**self).nack(receipt, delay).await
            }
            fn max_attempts(&self) -> Option<u32> {
                (**self).max_attempts()
            }
        }
    };
}

forward_queue!(Arc<T>);
forward_queue!(Box<T>);

/// Moves up to `max` messages from a dead-letter queue back to the queue it serves, once the
/// cause is fixed: each message is sent to `to`, then deleted from `from`. At least once: a
/// failure between the two leaves a copy in both, which idempotent handlers absorb. Stops when
/// `from` answers a receive with nothing. Returns how many moved.
pub async fn redrive(
    from: &dyn QueueConsumer,
    to: &dyn QueueProducer,
    max: usize,
) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < max {
        let options = ReceiveOptions {
            max_messages: (max - moved).min(MAX_RECEIVE),
            wait: Duration::from_secs(1),
            visibility_timeout: Some(Duration::from_secs(60)),
        };
        let deliveries = from.receive(&options).await?;
        if deliveries.is_empty() {
            break;
        }
        for delivery in deliveries {
            to.send(OutgoingMessage::new(delivery.body)).await?;
            from.ack(&delivery.receipt).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Conveniences over [`QueueProducer`], implemented for every producer.
#[async_trait]
pub trait QueueProducerExt: QueueProducer {
    /// Sends a value as a JSON message.
    async fn send_json<T: Serialize + Sync>(&self, value: &T) -> Result<MessageId, QueueError> {
        let body = serde_json::to_string(value).map_err(|e| QueueError::InvalidRequest {
            message: format!("cannot serialise message: {e}"),
        })?;
        self.send(OutgoingMessage::new(body)).await
    }

    /// Sends every message, failing if any entry fails (entries already sent stay sent).
    async fn send_all(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<MessageId>, QueueError> {
        self.send_batch(messages).await?.into_iter().collect()
    }
}

impl<T: QueueProducer + ?Sized> QueueProducerExt for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_messages_are_checked() {
        assert!(OutgoingMessage::new("{}").check().is_ok());
        assert!(OutgoingMessage::new("").check().is_err());
        assert!(
            OutgoingMessage::new("x".repeat(MAX_MESSAGE_BYTES + 1))
                .check()
                .is_err()
        );
        let late = OutgoingMessage {
            body: "x".into(),
            delay: Some(Duration::from_secs(901)),
        };
        assert!(late.check().is_err());
        assert!(
            QueueError::Throttled {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!QueueError::StaleReceipt.is_retryable());
    }
}
