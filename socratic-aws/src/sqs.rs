//! The queue ports over SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use socratic_core::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer, Receipt,
    ReceiveOptions,
};

use crate::batch::checked_batches;
use crate::error::{Failure, classify};

/// SQS's largest batch.
const BATCH: usize = 10;

/// A [`QueueProducer`] and [`QueueConsumer`] over one SQS queue. The attempt count is SQS's
/// `ApproximateReceiveCount`; dead-lettering is the queue's redrive policy (see
/// [`create_queue_with_dead_letter`]).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    max_attempts: Option<u32>,
}

impl SqsQueue {
    /// The queue at `url`. Build the client once per process.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            max_attempts: None,
        }
    }

    /// Declares the queue's redrive policy's `maxReceiveCount`, so a consumer knows a
    /// delivery is the last before the dead-letter queue
    /// ([`QueueConsumer::max_attempts`]).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn failure(failure: Failure) -> QueueError {
    match failure {
        Failure::Throttled(message) => QueueError::Throttled { message },
        Failure::Unavailable(message) => QueueError::Unavailable { message },
        Failure::Service { code, .. }
            if code.contains("ReceiptHandleIsInvalid") || code.contains("MessageNotInflight") =>
        {
            QueueError::StaleReceipt
        }
        Failure::Service { message, .. } | Failure::Invalid(message) => {
            QueueError::InvalidRequest { message }
        }
    }
}

/// Whole seconds, rounded up, capped at `max`.
fn seconds(duration: Duration, max: u64) -> i32 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(secs.min(max)).unwrap_or(i32::MAX)
}

/// Creates a queue and its dead-letter queue; a message moves to the dead-letter queue on the
/// receive after its `max_attempts`-th. Returns (queue URL, dead-letter queue URL).
pub async fn create_queue_with_dead_letter(
    client: &Client,
    name: &str,
    max_attempts: u32,
    visibility_timeout: Duration,
) -> Result<(String, String), QueueError> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| failure(classify(&e)))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failure(classify(&e)))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Unavailable {
            message: "dead-letter queue has no ARN".to_owned(),
        })?;
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_attempts.to_string()}).to_string();
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            seconds(visibility_timeout, 43_200).to_string(),
        )
        .send()
        .await
        .map_err(|e| failure(classify(&e)))?;
    Ok((queue.queue_url().unwrap_or_default().to_owned(), dlq_url))
}

#[async_trait]
impl QueueProducer for SqsQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
        message.check()?;
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_delay_seconds(message.delay.map(|d| seconds(d, 900)))
            .send()
            .await
            .map_err(|e| failure(classify(&e)))?;
        Ok(MessageId(
            output.message_id().unwrap_or_default().to_owned(),
        ))
    }

    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
        let (mut results, batches) = checked_batches(&messages, BATCH, OutgoingMessage::check);
        for chunk in &batches {
            let entries = chunk
                .iter()
                .map(|(i, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(m.body.clone())
                        .set_delay_seconds(m.delay.map(|d| seconds(d, 900)))
                        .build()
                        .map_err(|e| QueueError::InvalidRequest {
                            message: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failure(classify(&e)))?;
            // Batch calls report failed entries inside a successful response.
            for ok in output.successful() {
                if let Ok(i) = ok.id().parse::<usize>() {
                    results.set(i, Ok(MessageId(ok.message_id().to_owned())));
                }
            }
            for failed in output.failed() {
                if let Ok(i) = failed.id().parse::<usize>() {
                    let message = format!(
                        "{}: {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    );
                    results.set(
                        i,
                        Err(if failed.sender_fault() {
                            QueueError::InvalidRequest { message }
                        } else {
                            QueueError::Unavailable { message }
                        }),
                    );
                }
            }
        }
        Ok(results.finish())
    }
}

#[async_trait]
impl QueueConsumer for SqsQueue {
    async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError> {
        options.check()?;
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(options.max_messages).unwrap_or(10))
            .wait_time_seconds(seconds(options.wait, 20))
            .set_visibility_timeout(options.visibility_timeout.map(|v| seconds(v, 43_200)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| failure(classify(&e)))?;
        Ok(output
            .messages()
            .iter()
            .map(|m| Delivery {
                message_id: MessageId(m.message_id().unwrap_or_default().to_owned()),
                receipt: Receipt(m.receipt_handle().unwrap_or_default().to_owned()),
                body: m.body().unwrap_or_default().to_owned(),
                attempt: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .send()
            .await
            .map_err(|e| failure(classify(&e)))?;
        Ok(())
    }

    async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        socratic_core::queue::check_nack_delay(delay)?;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(seconds(delay, 43_200))
            .send()
            .await
            .map_err(|e| failure(classify(&e)))?;
        Ok(())
    }

    fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }
}
