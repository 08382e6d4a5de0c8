use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer, Receipt,
    ReceiveOptions,
};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How a [`MemoryQueue`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays hidden unless the receive says otherwise.
    pub visibility_timeout: Duration,
    /// Deliveries before a message moves to the dead-letter queue; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

#[derive(Debug)]
struct Message {
    id: MessageId,
    body: String,
    visible_at: Instant,
    attempts: u32,
    receipt: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Messages by arrival order, so receives are roughly FIFO like SQS standard queues.
    messages: BTreeMap<u64, Message>,
    receipts: HashMap<String, u64>,
    next_seq: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    arrived: Notify,
    config: QueueConfig,
    dead_letter: Option<MemoryQueue>,
}

/// An in-memory queue implementing both [`QueueProducer`] and [`QueueConsumer`], with
/// SQS semantics: at-least-once delivery, visibility timeouts, attempt counts and, when
/// configured, a dead-letter queue that receives a message on the receive after its last
/// allowed attempt. Timing uses tokio's clock, so tests can pause time.
///
/// Cloning shares the queue.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(QueueConfig::default())
    }
}

impl MemoryQueue {
    /// A queue without a dead-letter queue.
    pub fn new(config: QueueConfig) -> Self {
        Self::build(config, None)
    }

    /// A queue that moves a message to `dead_letter` after `max_attempts` deliveries.
    pub fn with_dead_letter(
        visibility_timeout: Duration,
        max_attempts: u32,
        dead_letter: MemoryQueue,
    ) -> Self {
        let config = QueueConfig {
            visibility_timeout,
            max_attempts: Some(max_attempts.max(1)),
        };
        Self::build(config, Some(dead_letter))
    }

    fn build(config: QueueConfig, dead_letter: Option<MemoryQueue>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                arrived: Notify::new(),
                config,
                dead_letter,
            }),
        }
    }

    /// The dead-letter queue, if any.
    pub fn dead_letter(&self) -> Option<&MemoryQueue> {
        self.shared.dead_letter.as_ref()
    }

    /// Messages in the queue, visible or in flight.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    /// Whether the queue holds no message at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every body in the queue, in arrival order (for tests and diagnostics).
    pub fn bodies(&self) -> Vec<String> {
        self.lock()
            .messages
            .values()
            .map(|m| m.body.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, body: String, delay: Duration) -> MessageId {
        let id = MessageId(ulid::Ulid::new().to_string());
        {
            let mut state = self.lock();
            let seq = state.next_seq;
            state.next_seq += 1;
            let message = Message {
                id: id.clone(),
                body,
                visible_at: Instant::now() + delay,
                attempts: 0,
                receipt: None,
            };
            state.messages.insert(seq, message);
        }
        self.shared.arrived.notify_waiters();
        id
    }

    /// Takes up to `max` visible messages, dead-lettering those out of attempts. Returns the
    /// deliveries and the next instant a hidden message becomes visible.
    fn take(&self, max: usize, visibility: Duration) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut dead = Vec::new();
        let mut deliveries = Vec::new();
        let mut next_visible: Option<Instant> = None;
        {
            let mut state = self.lock();
            let state = &mut *state;
            // Walked in place, stopping at `max`: copying every key first made each receive
            // as long as the queue (quadratic over a 10,000-run manifest's jobs).
            let mut exhausted_seqs = Vec::new();
            for (&seq, message) in &mut state.messages {
                if deliveries.len() == max {
                    break;
                }
                if message.visible_at > now {
                    next_visible = Some(
                        next_visible.map_or(message.visible_at, |n| n.min(message.visible_at)),
                    );
                    continue;
                }
                let exhausted = self
                    .shared
                    .config
                    .max_attempts
                    .is_some_and(|max| message.attempts >= max);
                if exhausted && self.shared.dead_letter.is_some() {
                    if let Some(old) = message.receipt.take() {
                        state.receipts.remove(&old);
                    }
                    exhausted_seqs.push(seq);
                    continue;
                }
                if let Some(old) = message.receipt.take() {
                    state.receipts.remove(&old);
                }
                message.attempts += 1;
                message.visible_at = now + visibility;
                let receipt = ulid::Ulid::new().to_string();
                message.receipt = Some(receipt.clone());
                deliveries.push(Delivery {
                    message_id: message.id.clone(),
                    receipt: Receipt(receipt.clone()),
                    body: message.body.clone(),
                    attempt: message.attempts,
                });
                state.receipts.insert(receipt, seq);
            }
            for seq in exhausted_seqs {
                if let Some(m) = state.messages.remove(&seq) {
                    dead.push(m.body);
                }
            }
        }
        if let Some(dlq) = &self.shared.dead_letter {
            for body in dead {
                dlq.enqueue(body, Duration::ZERO);
            }
        }
        (deliveries, next_visible)
    }

    fn settle(&self, receipt: &Receipt, requeue_after: Option<Duration>) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            let seq = state
                .receipts
                .remove(&receipt.0)
                .ok_or(QueueError::StaleReceipt)?;
            match requeue_after {
                None => {
                    state.messages.remove(&seq);
                }
                Some(delay) => {
                    if let Some(message) = state.messages.get_mut(&seq) {
                        message.receipt = None;
                        message.visible_at = Instant::now() + delay;
                    }
                }
            }
        }
        if requeue_after.is_some() {
            self.shared.arrived.notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl QueueProducer for MemoryQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
        message.check()?;
        Ok(self.enqueue(message.body, message.delay.unwrap_or_default()))
    }

    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
        Ok(messages
            .into_iter()
            .map(|m| {
                m.check()
                    .map(|()| self.enqueue(m.body, m.delay.unwrap_or_default()))
            })
            .collect())
    }
}

#[async_trait]
impl QueueConsumer for MemoryQueue {
    async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError> {
        options.check()?;
        let visibility = options
            .visibility_timeout
            .unwrap_or(self.shared.config.visibility_timeout);
        let deadline = Instant::now() + options.wait;
        loop {
            // Register for wake-ups before looking, so a send in between is not missed.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (deliveries, next_visible) = self.take(options.max_messages, visibility);
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_visible.map_or(deadline, |n| n.min(deadline));
            let _ = tokio::time::timeout_at(wake, arrived).await;
        }
    }

    async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.settle(receipt, None)
    }

    async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        socratic_core::queue::check_nack_delay(delay)?;
        self.settle(receipt, Some(delay))
    }

    fn max_attempts(&self) -> Option<u32> {
        // Without a dead-letter queue, messages are retried for ever.
        self.shared
            .config
            .max_attempts
            .filter(|_| self.shared.dead_letter.is_some())
    }
}
