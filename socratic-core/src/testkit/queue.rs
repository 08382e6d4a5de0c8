//! The queue conformance suite.
//!
//! Checks take a [`QueueFixture`] that makes a fresh queue (with its dead-letter queue) per
//! check, since a queue's contents are shared by everyone who receives from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer,
    QueueProducerExt, ReceiveOptions,
};

/// A fresh queue for one check.
pub struct TestQueue {
    /// Sends to the queue.
    pub producer: Arc<dyn QueueProducer>,
    /// Receives from the queue.
    pub consumer: Arc<dyn QueueConsumer>,
    /// Receives from its dead-letter queue.
    pub dead_letters: Arc<dyn QueueConsumer>,
}

/// Makes fresh queues.
#[async_trait]
pub trait QueueFixture: Send + Sync {
    /// A new, empty queue that dead-letters a message on the receive after its
    /// `max_attempts`-th, with a default visibility timeout of at least 30 s.
    async fn queue(&self, max_attempts: u32) -> TestQueue;
}

/// What a queue backend promises, where backends legitimately differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCapabilities {
    /// Messages pushed through four concurrent consumers in the load check.
    pub load_messages: usize,
    /// Whether a message acknowledged within its visibility timeout is never delivered again.
    /// In-memory queues and the emulator promise it; SQS standard queues promise only
    /// at-least-once delivery, so against real SQS set it to `false`: the load check then
    /// allows duplicates and still requires that no message is lost.
    pub exactly_once: bool,
}

impl Default for QueueCapabilities {
    /// 10,000 messages, exactly once.
    fn default() -> Self {
        Self {
            load_messages: 10_000,
            exactly_once: true,
        }
    }
}

/// Runs every check, pushing 10,000 messages through four concurrent consumers, exactly once.
pub async fn run_all(fixture: &dyn QueueFixture) {
    run_with(fixture, QueueCapabilities::default()).await;
}

/// Runs every check with `messages` messages in the load check, exactly once. For emulators
/// whose receive is linear in the queue's length, where 10,000 would take hours.
pub async fn run_all_with_load(fixture: &dyn QueueFixture, messages: usize) {
    run_with(
        fixture,
        QueueCapabilities {
            load_messages: messages,
            exactly_once: true,
        },
    )
    .await;
}

/// Runs every check against a backend with these capabilities.
pub async fn run_with(fixture: &dyn QueueFixture, capabilities: QueueCapabilities) {
    send_receive_ack(fixture).await;
    batch_send_reports_each_entry(fixture).await;
    unacked_message_returns_after_visibility_timeout(fixture).await;
    nack_delay_is_respected(fixture).await;
    dead_letter_after_max_attempts(fixture).await;
    redrive_returns_dead_letters(fixture).await;
    messages_through_concurrent_consumers(fixture, capabilities, 4).await;
}

fn options(max: usize, wait_ms: u64, visibility: Option<Duration>) -> ReceiveOptions {
    ReceiveOptions {
        max_messages: max,
        wait: Duration::from_millis(wait_ms),
        visibility_timeout: visibility,
    }
}

/// Receives until `want` messages arrived or `patience` passes.
/// Fails with `what` if a receive waiting `wait_ms` gets anything.
async fn assert_nothing_delivered(consumer: &dyn QueueConsumer, wait_ms: u64, what: &str) {
    let got = consumer
        .receive(&options(10, wait_ms, None))
        .await
        .expect("receive");
    assert!(got.is_empty(), "{what}: {got:?}");
}

async fn receive_until(
    consumer: &dyn QueueConsumer,
    want: usize,
    patience: Duration,
    visibility: Option<Duration>,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        got.extend(
            consumer
                .receive(&options(10, 200, visibility))
                .await
                .expect("receive"),
        );
    }
    got
}

/// A sent message is received once with attempt 1, and gone after an ack.
pub async fn send_receive_ack(fixture: &dyn QueueFixture) {
    let q = fixture.queue(5).await;
    let id = q
        .producer
        .send(OutgoingMessage::new(r#"{"run":"A"}"#))
        .await
        .expect("send");
    let got = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(5), None).await;
    assert_eq!(got.len(), 1, "the message arrives");
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].body, r#"{"run":"A"}"#);
    assert_eq!(got[0].attempt, 1);
    q.consumer.ack(&got[0].receipt).await.expect("ack");
    assert_nothing_delivered(q.consumer.as_ref(), 500, "an acked message is gone").await;
}

/// A batch send returns one result per entry, in order; an invalid entry fails alone.
pub async fn batch_send_reports_each_entry(fixture: &dyn QueueFixture) {
    let q = fixture.queue(5).await;
    let batch = vec![
        OutgoingMessage::new("one"),
        OutgoingMessage::new(""),
        OutgoingMessage::new("three"),
    ];
    let results = q.producer.send_batch(batch).await.expect("batch call");
    assert_eq!(results.len(), 3, "one result per entry");
    assert!(
        results[0].is_ok() && results[2].is_ok(),
        "valid entries are sent: {results:?}"
    );
    assert!(
        matches!(results[1], Err(QueueError::InvalidRequest { .. })),
        "the empty entry fails: {results:?}"
    );
    let got = receive_until(q.consumer.as_ref(), 2, Duration::from_secs(5), None).await;
    let mut bodies: Vec<_> = got.iter().map(|d| d.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["one", "three"]);
    let many: Vec<_> = (0..25)
        .map(|i| OutgoingMessage::new(format!("m{i}")))
        .collect();
    let ids = q
        .producer
        .send_all(many)
        .await
        .expect("a batch larger than one backend call");
    assert_eq!(ids.len(), 25);
}

/// A message received and not acked comes back after its visibility timeout, attempt + 1.
pub async fn unacked_message_returns_after_visibility_timeout(fixture: &dyn QueueFixture) {
    let q = fixture.queue(5).await;
    let id = q
        .producer
        .send(OutgoingMessage::new("lost worker"))
        .await
        .expect("send");
    let visibility = Some(Duration::from_secs(1));
    let first = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(5), visibility).await;
    assert_eq!(first.len(), 1);
    let hidden = q
        .consumer
        .receive(&options(10, 0, visibility))
        .await
        .expect("receive");
    assert!(hidden.is_empty(), "an in-flight message is invisible");
    let second = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(10), visibility).await;
    assert_eq!(second.len(), 1, "the message comes back after the timeout");
    assert_eq!(second[0].message_id, id);
    assert_eq!(second[0].attempt, 2);
    q.consumer
        .ack(&second[0].receipt)
        .await
        .expect("ack the redelivery");
}

/// A nacked message stays hidden for its delay, then comes back with attempt + 1.
pub async fn nack_delay_is_respected(fixture: &dyn QueueFixture) {
    let q = fixture.queue(5).await;
    q.producer
        .send(OutgoingMessage::new("retry me"))
        .await
        .expect("send");
    let first = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(5), None).await;
    assert_eq!(first.len(), 1);
    q.consumer
        .nack(&first[0].receipt, Duration::from_secs(2))
        .await
        .expect("nack");
    assert_nothing_delivered(
        q.consumer.as_ref(),
        500,
        "a nacked message stays hidden for its delay",
    )
    .await;
    let later = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(10), None).await;
    assert_eq!(later.len(), 1, "the nacked message comes back");
    assert_eq!(later[0].attempt, 2);
}

/// After `max_attempts` deliveries without an ack, the message moves to the dead-letter queue.
pub async fn dead_letter_after_max_attempts(fixture: &dyn QueueFixture) {
    let q = fixture.queue(3).await;
    let id = q
        .producer
        .send(OutgoingMessage::new("poison"))
        .await
        .expect("send");
    for attempt in 1..=3 {
        let got = receive_until(q.consumer.as_ref(), 1, Duration::from_secs(5), None).await;
        assert_eq!(got.len(), 1, "delivery {attempt} arrives");
        assert_eq!(got[0].attempt, attempt);
        q.consumer
            .nack(&got[0].receipt, Duration::ZERO)
            .await
            .expect("nack");
    }
    assert_nothing_delivered(
        q.consumer.as_ref(),
        1000,
        "no delivery after the last attempt",
    )
    .await;
    let dead = receive_until(q.dead_letters.as_ref(), 1, Duration::from_secs(5), None).await;
    assert_eq!(dead.len(), 1, "the message is in the dead-letter queue");
    assert_eq!(dead[0].body, "poison");
    let _ = id;
}

/// [`redrive`](crate::queue::redrive) moves dead letters back: each arrives again as a new
/// message, and the dead-letter queue is left empty.
pub async fn redrive_returns_dead_letters(fixture: &dyn QueueFixture) {
    let q = fixture.queue(1).await;
    for body in ["first", "second"] {
        q.producer
            .send(OutgoingMessage::new(body))
            .await
            .expect("send");
    }
    for got in receive_until(q.consumer.as_ref(), 2, Duration::from_secs(5), None).await {
        q.consumer
            .nack(&got.receipt, Duration::ZERO)
            .await
            .expect("nack");
    }
    // The receive after the last attempt moves them to the dead-letter queue.
    assert_nothing_delivered(
        q.consumer.as_ref(),
        1000,
        "no delivery after the last attempt",
    )
    .await;

    let moved = crate::queue::redrive(q.dead_letters.as_ref(), q.producer.as_ref(), 10)
        .await
        .expect("redrive");
    assert_eq!(moved, 2);
    let mut back: Vec<String> = receive_until(q.consumer.as_ref(), 2, Duration::from_secs(5), None)
        .await
        .into_iter()
        .map(|d| d.body)
        .collect();
    back.sort();
    assert_eq!(back, ["first", "second"]);
    assert_nothing_delivered(q.dead_letters.as_ref(), 500, "nothing left behind").await;
}

/// `messages` messages through `consumers` concurrent consumers: none lost, none handled twice.
pub async fn many_messages_through_concurrent_consumers(
    fixture: &dyn QueueFixture,
    messages: usize,
    consumers: usize,
) {
    let capabilities = QueueCapabilities {
        load_messages: messages,
        exactly_once: true,
    };
    messages_through_concurrent_consumers(fixture, capabilities, consumers).await;
}

/// The load check: none lost, and none handled twice where the backend promises exactly once.
pub async fn messages_through_concurrent_consumers(
    fixture: &dyn QueueFixture,
    capabilities: QueueCapabilities,
    consumers: usize,
) {
    let messages = capabilities.load_messages;
    let q = fixture.queue(5).await;
    let mut sent: Vec<MessageId> = Vec::with_capacity(messages);
    for chunk in (0..messages).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|i| OutgoingMessage::new(format!("m{i}")))
            .collect();
        sent.extend(q.producer.send_all(batch).await.expect("send batch"));
    }
    let handled: Mutex<HashMap<MessageId, u32>> = Mutex::new(HashMap::new());
    let workers = (0..consumers).map(|_| {
        let consumer = Arc::clone(&q.consumer);
        let handled = &handled;
        async move {
            let mut idle = 0;
            while idle < 3 {
                let batch = consumer
                    .receive(&options(10, 200, Some(Duration::from_secs(120))))
                    .await
                    .expect("receive");
                if batch.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                for delivery in batch {
                    consumer.ack(&delivery.receipt).await.expect("ack");
                    *handled
                        .lock()
                        .expect("lock")
                        .entry(delivery.message_id)
                        .or_default() += 1;
                }
            }
        }
    });
    futures::future::join_all(workers).await;
    let handled = handled.into_inner().expect("lock");
    if capabilities.exactly_once {
        let twice: Vec<_> = handled.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "messages handled more than once: {twice:?}"
        );
    }
    let lost: Vec<_> = sent
        .iter()
        .filter(|id| !handled.contains_key(id))
        .take(10)
        .collect();
    assert!(lost.is_empty(), "messages lost (first 10): {lost:?}");
    assert_eq!(handled.len(), messages);
}
