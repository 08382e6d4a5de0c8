//! The one client stack: its layers in their order, each observable from outside. A cache
//! hit is recorded but takes no slot and no budget; every attempt under the retries is
//! charged; the preflight stack does not retry.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::llm::{
    Budget, CacheMode, CallRecorder, ClientStack, ConverseRequest, ConverseResponse, LlmClient,
    LlmError, Message, Prices, RetryBudget, RetryPolicy, Role, StackCache,
};
use socratic_memory::MemoryBlobStore;
use socratic_sim::ScriptedLlm;
use tokio::sync::Semaphore;

/// Counts the calls that reach it, and how many of them the cache answered.
#[derive(Default)]
struct Counter {
    calls: AtomicU64,
    cached: AtomicU64,
}

struct Counted {
    inner: Arc<dyn LlmClient>,
    counter: Arc<Counter>,
}

#[async_trait]
impl LlmClient for Counted {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        self.counter.calls.fetch_add(1, Ordering::SeqCst);
        let response = self.inner.converse(request).await?;
        if response.cached {
            self.counter.cached.fetch_add(1, Ordering::SeqCst);
        }
        Ok(response)
    }
}

/// Records into a shared counter.
struct Recorder(Arc<Counter>);

impl CallRecorder for Recorder {
    fn wrap(&self, inner: Arc<dyn LlmClient>, _prices: Prices) -> Arc<dyn LlmClient> {
        Arc::new(Counted {
            inner,
            counter: Arc::clone(&self.0),
        })
    }
}

/// A provider that holds each call until a permit is added: a call in flight at the
/// provider is one that took the stack's slot.
struct Gated {
    gate: Arc<Semaphore>,
    arrived: Arc<AtomicU64>,
    inner: ScriptedLlm,
}

#[async_trait]
impl LlmClient for Gated {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.gate.acquire().await.unwrap().forget();
        self.inner.converse(request).await
    }
}

fn request(text: &str) -> ConverseRequest {
    ConverseRequest::new("model-a", Role::Tutor, vec![Message::user(text)])
}

fn prices() -> Prices {
    Prices {
        input: 1.0,
        output: 1.0,
        ..Prices::default()
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        budget: Arc::new(RetryBudget::unlimited()),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn a_cache_hit_is_recorded_but_takes_no_slot_and_no_budget() {
    let gate = Arc::new(Semaphore::new(1));
    let arrived = Arc::new(AtomicU64::new(0));
    let provider = ScriptedLlm::new();
    let budget = Arc::new(Budget::new(1.0));
    let recorded = Arc::new(Counter::default());
    let stack = ClientStack::new()
        .prices(prices())
        .budget(Arc::clone(&budget))
        .retry(quick_retries())
        .concurrency(1)
        .cache(StackCache {
            blobs: Arc::new(MemoryBlobStore::new()),
            namespace: "test".to_owned(),
            mode: CacheMode::ReadWrite,
        })
        .recorder(Arc::new(Recorder(Arc::clone(&recorded))));
    let client = stack.build(Arc::new(Gated {
        gate: Arc::clone(&gate),
        arrived: Arc::clone(&arrived),
        inner: provider.clone(),
    }));

    let first = client.converse(&request("one")).await.unwrap();
    assert!(!first.cached);
    let spent = budget.spent();
    assert!(spent > 0.0);

    // The only slot is taken by a call held at the provider...
    let held = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.converse(&request("two")).await })
    };
    while arrived.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // ...and the cached request is answered all the same, free.
    let again = tokio::time::timeout(Duration::from_secs(10), client.converse(&request("one")))
        .await
        .expect("a cache hit waits for no slot")
        .unwrap();
    assert!(again.cached);
    assert_eq!(budget.spent(), spent, "a cache hit is not charged");
    assert_eq!(budget.answered(), 1);
    gate.add_permits(1);
    held.await.unwrap().unwrap();
    assert_eq!(
        provider.requests().len(),
        2,
        "\"one\" reached the provider once"
    );
    assert_eq!(
        recorded.calls.load(Ordering::SeqCst),
        3,
        "every call is recorded"
    );
    assert_eq!(recorded.cached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_attempt_is_charged_under_the_retries_and_the_preflight_does_not_retry() {
    let provider = ScriptedLlm::new();
    provider
        .push_error(LlmError::Timeout {
            message: "the first attempt timed out".to_owned(),
        })
        .push_text("an answer");
    let budget = Arc::new(Budget::unlimited());
    let stack = ClientStack::new()
        .prices(prices())
        .budget(Arc::clone(&budget))
        .retry(quick_retries())
        .concurrency(4);
    let answered = stack
        .build(Arc::new(provider.clone()))
        .converse(&request("one"))
        .await
        .unwrap();
    assert_eq!(answered.text, "an answer");
    assert_eq!(provider.requests().len(), 2, "retried once");
    // The timed-out attempt is charged its worst case, beside the answered one's cost.
    let answer_cost = prices().cost(&answered.usage);
    assert!(
        budget.spent() > answer_cost,
        "{} <= {answer_cost}",
        budget.spent()
    );

    provider.push_error(LlmError::Throttled {
        message: "slow down".to_owned(),
        retry_after: None,
    });
    let error = stack
        .build_preflight(Arc::new(provider.clone()))
        .converse(&request("two"))
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Throttled { .. }), "{error}");
    assert_eq!(
        provider.requests().len(),
        3,
        "the preflight sent one request"
    );
}

#[tokio::test]
async fn a_stack_without_layers_is_the_provider_itself() {
    let provider = ScriptedLlm::new();
    provider.push_error(LlmError::Throttled {
        message: "slow down".to_owned(),
        retry_after: None,
    });
    let client = ClientStack::new().build(Arc::new(provider.clone()));
    assert!(client.converse(&request("one")).await.is_err());
    assert_eq!(provider.requests().len(), 1, "no retry unless asked for");
}
