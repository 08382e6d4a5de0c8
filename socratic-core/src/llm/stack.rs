//! The one way a model's client is layered, used by every binary.

use std::sync::Arc;

use super::{
    Budget, BudgetLlm, CacheMode, CachedLlm, ConcurrencyLimitLlm, LlmClient, Prices, RateLimitLlm,
    RetryLlm, RetryPolicy, SharedLimitLlm,
};
use crate::blob::BlobStore;

/// An outermost layer that records each call of a model, such as the SQLite call ledger:
/// given the model's stack and prices, it answers the stack wrapped.
pub trait CallRecorder: Send + Sync {
    /// `inner`, every call to it recorded at `prices`.
    fn wrap(&self, inner: Arc<dyn LlmClient>, prices: Prices) -> Arc<dyn LlmClient>;
}

/// The response cache of a stack: where answers are kept, the namespace that tells one
/// endpoint's answers from another's, and what a miss does.
#[derive(Clone)]
pub struct StackCache {
    /// Where answers are kept (`cache/llm/<sha256>.json`).
    pub blobs: Arc<dyn BlobStore>,
    /// The endpoint, so the same model id on two servers never shares answers.
    pub namespace: String,
    /// What a miss does.
    pub mode: CacheMode,
}

/// How one model's (or one provider's) client is layered around the provider's own client,
/// in the one right order, from the caller in:
///
/// recorder → cache → concurrency limit → rate limit → retry → budget → provider
///
/// - The recorder is outermost, so a call is closed in a ledger only once its answer is
///   cached: a call made again after a crash was cut off in flight, never finished.
/// - The cache comes next: a hit takes no slot, no rate and no budget.
/// - The concurrency limit is outside the retries, so a call waiting out a backoff keeps its
///   slot, and a throttled model is not hammered by the other calls.
/// - The rate limit paces calls, not attempts.
/// - The budget is innermost: every attempt that reaches the provider is checked against the
///   cap before it is sent and charged after.
///
/// A layer that is not set is left out. The same builder makes the lean stack a preflight
/// check uses ([`ClientStack::build_preflight`]).
///
/// ```
/// use std::sync::Arc;
/// use socratic_core::llm::{Budget, ClientStack, LlmClient, Prices, RetryPolicy};
///
/// fn benchmark_client(provider: Arc<dyn LlmClient>, budget: Arc<Budget>) -> Arc<dyn LlmClient> {
///     ClientStack::new()
///         .prices(Prices { input: 0.15, output: 0.60, ..Prices::default() })
///         .budget(budget)
///         .retry(RetryPolicy::default())
///         .concurrency(8)
///         .build(provider)
/// }
/// ```
#[derive(Clone, Default)]
pub struct ClientStack {
    prices: Prices,
    budget: Option<Arc<Budget>>,
    retry: Option<RetryPolicy>,
    requests_per_minute: Option<u32>,
    concurrency: Option<usize>,
    server_slots: Option<Arc<tokio::sync::Semaphore>>,
    cache: Option<StackCache>,
    recorder: Option<Arc<dyn CallRecorder>>,
}

impl std::fmt::Debug for ClientStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStack")
            .field("prices", &self.prices)
            .field("budget", &self.budget.is_some())
            .field("retry", &self.retry)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("concurrency", &self.concurrency)
            .field(
                "server_slots",
                &self.server_slots.as_ref().map(|s| s.available_permits()),
            )
            .field(
                "cache",
                &self.cache.as_ref().map(|c| (&c.namespace, c.mode)),
            )
            .field("recorder", &self.recorder.is_some())
            .finish()
    }
}

impl ClientStack {
    /// A stack with no layer: the provider's client as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model's prices, which the budget charges and the recorder records (zero unless set).
    pub fn prices(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }

    /// Checks and charges every attempt against `budget`.
    pub fn budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Retries transient errors under `policy` (its attempt timeout included).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Starts at most `per_minute` calls a minute; unlimited without it.
    pub fn requests_per_minute(mut self, per_minute: Option<u32>) -> Self {
        self.requests_per_minute = per_minute;
        self
    }

    /// Lets at most `per_model` calls to one model run at once.
    pub fn concurrency(mut self, per_model: usize) -> Self {
        self.concurrency = Some(per_model);
        self
    }

    /// Shares `slots` with the other stacks given them: at most its permits calls at once
    /// across all of them (the models one server serves). Inside the per-model limit,
    /// outside the retries, so a call's timeout starts once the server can take it.
    pub fn server_slots(mut self, slots: Arc<tokio::sync::Semaphore>) -> Self {
        self.server_slots = Some(slots);
        self
    }

    /// Answers from, and stores answers in, `cache`.
    pub fn cache(mut self, cache: StackCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Leaves the cache out.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Records every call with `recorder`.
    pub fn recorder(mut self, recorder: Arc<dyn CallRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The full stack around `provider`.
    pub fn build(&self, provider: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        let mut stack = self.charged(provider);
        if let Some(policy) = &self.retry {
            stack = Arc::new(RetryLlm::new(stack, policy.clone()));
        }
        if let Some(per_minute) = self.requests_per_minute {
            stack = Arc::new(RateLimitLlm::new(stack, per_minute));
        }
        if let Some(slots) = &self.server_slots {
            stack = Arc::new(SharedLimitLlm::new(stack, Arc::clone(slots)));
        }
        if let Some(per_model) = self.concurrency {
            stack = Arc::new(ConcurrencyLimitLlm::new(stack, per_model));
        }
        self.outer(stack)
    }

    /// The stack of a batched model around its batch `lane`
    /// ([`Batcher::lane`](super::Batcher::lane)): the cache and nothing else. The batcher
    /// reserves, charges and records each batch itself; the recorder is left out, since a
    /// batched call is recorded when its batch is collected.
    pub fn build_batched(&self, lane: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        match &self.cache {
            Some(cache) => Arc::new(
                CachedLlm::new(lane, Arc::clone(&cache.blobs))
                    .with_namespace(cache.namespace.clone())
                    .with_mode(cache.mode),
            ),
            None => lane,
        }
    }

    /// The lean stack of a preflight check around `provider`: recorder → cache → budget →
    /// provider, without retries or limits, so a wrong key or model id shows at once.
    pub fn build_preflight(&self, provider: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        self.outer(self.charged(provider))
    }

    fn charged(&self, provider: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        match &self.budget {
            Some(budget) => Arc::new(BudgetLlm::new(provider, self.prices, Arc::clone(budget))),
            None => provider,
        }
    }

    fn outer(&self, mut stack: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        if let Some(cache) = &self.cache {
            stack = Arc::new(
                CachedLlm::new(stack, Arc::clone(&cache.blobs))
                    .with_namespace(cache.namespace.clone())
                    .with_mode(cache.mode),
            );
        }
        if let Some(recorder) = &self.recorder {
            stack = recorder.wrap(stack, self.prices);
        }
        stack
    }
}
