//! Run-judged events on EventBridge.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use socratic_core::queue::{MessageId, OutgoingMessage, QueueError, QueueProducer};

use crate::batch::checked_batches;
use crate::error::{Failure, classify};

/// The `source` of every event this library publishes.
pub const SOURCE: &str = "socratic.pipeline";

/// The `detail-type` of run-judged events; a rule matching it targets the curator.
pub const RUN_JUDGED_DETAIL_TYPE: &str = "run-judged";

/// `PutEvents`' largest batch.
const BATCH: usize = 10;

/// A [`QueueProducer`] that publishes each message body (a JSON object) as the `detail` of an
/// event on a bus. Failed entries, which `PutEvents` reports inside a successful response, are
/// returned per entry.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    detail_type: String,
}

impl EventBridgePublisher {
    /// Publishes run-judged events to `bus`. Build the client once per process.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            detail_type: RUN_JUDGED_DETAIL_TYPE.to_owned(),
        }
    }

    fn entry(&self, message: &OutgoingMessage) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(&self.detail_type)
            .detail(&message.body)
            .build()
    }
}

fn failure(failure: Failure) -> QueueError {
    match failure {
        Failure::Throttled(message) => QueueError::Throttled { message },
        Failure::Unavailable(message) => QueueError::Unavailable { message },
        Failure::Service { message, .. } | Failure::Invalid(message) => {
            QueueError::InvalidRequest { message }
        }
    }
}

fn check(message: &OutgoingMessage) -> Result<(), QueueError> {
    message.check()?;
    if message.delay.is_some() {
        return Err(QueueError::InvalidRequest {
            message: "events cannot be delayed".to_owned(),
        });
    }
    match serde_json::from_str::<serde_json::Value>(&message.body) {
        Ok(value) if value.is_object() => Ok(()),
        _ => Err(QueueError::InvalidRequest {
            message: "an event detail must be a JSON object".to_owned(),
        }),
    }
}

#[async_trait]
impl QueueProducer for EventBridgePublisher {
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
        let mut results = self.send_batch(vec![message]).await?;
        results.pop().unwrap_or_else(|| {
            Err(QueueError::Unavailable {
                message: "no result".to_owned(),
            })
        })
    }

    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
        let (mut results, batches) = checked_batches(&messages, BATCH, check);
        for chunk in &batches {
            let entries: Vec<_> = chunk.iter().map(|(_, m)| self.entry(m)).collect();
            let output = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failure(classify(&e)))?;
            // Entries come back in request order.
            for ((i, _), entry) in chunk.iter().zip(output.entries()) {
                results.set(
                    *i,
                    match (entry.event_id(), entry.error_code()) {
                        (_, Some(code)) => Err(QueueError::Unavailable {
                            message: format!(
                                "{code}: {}",
                                entry.error_message().unwrap_or_default()
                            ),
                        }),
                        (Some(id), None) => Ok(MessageId(id.to_owned())),
                        (None, None) => Err(QueueError::Unavailable {
                            message: "no event id".to_owned(),
                        }),
                    },
                );
            }
        }
        Ok(results.finish())
    }
}
