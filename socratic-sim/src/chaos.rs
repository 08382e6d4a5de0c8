//! Fault injection for chaos tests: a flaky model, a model that is always throttled, a queue
//! that delivers duplicates, and a consumer that shuffles what it receives.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError};
use socratic_core::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer, Receipt,
    ReceiveOptions,
};
use socratic_core::stats::SplitMix64;

/// An [`LlmClient`] decorator under which one model is always throttled and the others
/// answer: a provider outage that outlasts every retry. It counts the calls it refused.
#[derive(Debug)]
pub struct ThrottledModel<C> {
    inner: C,
    model: String,
    refused: std::sync::atomic::AtomicU64,
}

impl<C: LlmClient> ThrottledModel<C> {
    /// Wraps `inner`, refusing every call to the provider model id `model`.
    pub fn new(inner: C, model: impl Into<String>) -> Self {
        Self {
            inner,
            model: model.into(),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Calls refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for ThrottledModel<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        if request.model == self.model {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(LlmError::Throttled {
                message: format!("{} is over its quota", self.model),
                retry_after: None,
            });
        }
        self.inner.converse(request).await
    }
}

/// Shares of calls that fail, each in its own way.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Throttled (retryable, with a short retry-after).
    pub throttle: f64,
    /// Timed out (retryable).
    pub timeout: f64,
    /// Structured-output calls answered with output that fails validation.
    pub invalid_output: f64,
}

/// An [`LlmClient`] decorator that fails a seeded share of calls.
#[derive(Debug)]
pub struct FaultyLlm<C> {
    inner: C,
    rates: FaultRates,
    rng: Mutex<SplitMix64>,
}

impl<C: LlmClient> FaultyLlm<C> {
    /// Wraps `inner`; the same seed gives the same sequence of faults.
    pub fn new(inner: C, rates: FaultRates, seed: u64) -> Self {
        Self {
            inner,
            rates,
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }

    fn draw(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_f64()
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for FaultyLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let roll = self.draw();
        let FaultRates {
            throttle,
            timeout,
            invalid_output,
        } = self.rates;
        if roll < throttle {
            return Err(LlmError::Throttled {
                message: "injected throttle".to_owned(),
                retry_after: Some(Duration::from_millis(1)),
            });
        }
        if roll < throttle + timeout {
            return Err(LlmError::Timeout {
                message: "injected timeout".to_owned(),
            });
        }
        let mut response = self.inner.converse(request).await?;
        if request.structured_output.is_some() && roll < throttle + timeout + invalid_output {
            response.structured = Some(json!({"scores": {}, "note": "injected invalid output"}));
        }
        Ok(response)
    }
}

/// A producer that sends each message one to three times (seeded), as an at-least-once queue
/// may deliver it.
#[derive(Debug)]
pub struct DuplicatingProducer<P> {
    inner: P,
    rng: Mutex<SplitMix64>,
}

impl<P: QueueProducer> DuplicatingProducer<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, seed: u64) -> Self {
        Self {
            inner,
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }

    fn copies(&self) -> usize {
        1 + self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .below(3)
    }
}

#[async_trait]
impl<P: QueueProducer> QueueProducer for DuplicatingProducer<P> {
    async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError> {
        let copies = self.copies();
        let id = self.inner.send(message.clone()).await?;
        for _ in 1..copies {
            self.inner.send(message.clone()).await?;
        }
        Ok(id)
    }

    async fn send_batch(
        &self,
        messages: Vec<OutgoingMessage>,
    ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError> {
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(self.send(message).await);
        }
        Ok(results)
    }
}

/// A consumer that receives up to ten messages and hands them out in a seeded random order.
#[derive(Debug)]
pub struct ShufflingConsumer<Q> {
    inner: Q,
    rng: Mutex<SplitMix64>,
}

impl<Q: QueueConsumer> ShufflingConsumer<Q> {
    /// Wraps `inner`.
    pub fn new(inner: Q, seed: u64) -> Self {
        Self {
            inner,
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }
}

#[async_trait]
impl<Q: QueueConsumer> QueueConsumer for ShufflingConsumer<Q> {
    async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError> {
        let wide = ReceiveOptions {
            max_messages: 10,
            ..*options
        };
        let mut deliveries = self.inner.receive(&wide).await?;
        {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            for i in (1..deliveries.len()).rev() {
                deliveries.swap(i, rng.below(i + 1));
            }
        }
        // Hand back what the caller did not ask for, visible again at once.
        while deliveries.len() > options.max_messages {
            if let Some(extra) = deliveries.pop() {
                self.inner.nack(&extra.receipt, Duration::ZERO).await?;
            }
        }
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError> {
        self.inner.ack(receipt).await
    }

    fn max_attempts(&self) -> Option<u32> {
        self.inner.max_attempts()
    }

    async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError> {
        self.inner.nack(receipt, delay).await
    }
}
