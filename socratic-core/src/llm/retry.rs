//! Retries with exponential backoff, full jitter, the provider's retry-after, a per-attempt
//! timeout and a shared budget.
//!
//! This decorator is the one layer that owns retries of model calls. Backends must not retry
//! themselves (the Bedrock client is built with SDK retries off), so a throttled benchmark
//! backs off once, here, within a budget that stops a retry storm when a provider is down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};
use crate::stats::SplitMix64;

/// A budget shared by every call through one or more [`RetryLlm`]s: each retry spends one
/// token, each successful call earns `earn_per_success` tokens, up to `cap`.
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<f64>,
    earn_per_success: f64,
    cap: f64,
}

impl RetryBudget {
    /// A budget starting with `initial` tokens.
    pub fn new(initial: f64, earn_per_success: f64, cap: f64) -> Self {
        Self {
            tokens: Mutex::new(initial.min(cap)),
            earn_per_success,
            cap,
        }
    }

    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        Self::new(f64::INFINITY, 0.0, f64::INFINITY)
    }

    fn try_spend(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn earn(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        *tokens = (*tokens + self.earn_per_success).min(self.cap);
    }
}

impl Default for RetryBudget {
    /// 100 retries up front, one more for every five successes, at most 500 banked.
    fn default() -> Self {
        Self::new(100.0, 0.2, 500.0)
    }
}

/// How [`RetryLlm`] retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, including the first.
    pub max_attempts: u32,
    /// The first backoff ceiling; it doubles per attempt.
    pub base_delay: Duration,
    /// The largest backoff.
    pub max_delay: Duration,
    /// Each attempt is abandoned with [`LlmError::Timeout`] after this long.
    pub attempt_timeout: Option<Duration>,
    /// The longest wait a provider's retry-after may impose; a longer ask is cut to this, so
    /// one odd header cannot stall a benchmark for hours.
    pub max_retry_after: Duration,
    /// Shared retry budget.
    pub budget: Arc<RetryBudget>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            attempt_timeout: Some(Duration::from_secs(120)),
            max_retry_after: Duration::from_secs(60),
            budget: Arc::new(RetryBudget::default()),
        }
    }
}

/// A seed drawn afresh in every process (the standard library seeds `RandomState` from the
/// operating system), so workers throttled together do not back off in step.
fn process_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Retries retryable errors of the inner client.
#[derive(Debug)]
pub struct RetryLlm<C> {
    inner: C,
    policy: RetryPolicy,
    jitter_seed: AtomicU64,
}

impl<C: LlmClient> RetryLlm<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            jitter_seed: AtomicU64::new(process_seed()),
        }
    }

    /// The delay before retry number `retry` (from 1): full jitter under an exponential
    /// ceiling, but never less than what the provider asked for.
    fn backoff(&self, retry: u32, error: &LlmError) -> Duration {
        let ceiling = self
            .policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.policy.max_delay);
        let mut rng = SplitMix64::new(self.jitter_seed.fetch_add(1, Ordering::Relaxed));
        let jittered = ceiling.mul_f64(rng.next_f64());
        error.retry_after().map_or(jittered, |asked| {
            asked.min(self.policy.max_retry_after).max(jittered)
        })
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for RetryLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let mut attempt = 1;
        loop {
            let result = match self.policy.attempt_timeout {
                Some(limit) => tokio::time::timeout(limit, self.inner.converse(request))
                    .await
                    .unwrap_or_else(|_| {
                        Err(LlmError::Timeout {
                            message: format!("no answer within {limit:?}"),
                        })
                    }),
                None => self.inner.converse(request).await,
            };
            match result {
                Ok(response) => {
                    self.policy.budget.earn();
                    return Ok(response);
                }
                Err(error)
                    if error.is_retryable()
                        && attempt < self.policy.max_attempts
                        && self.policy.budget.try_spend() =>
                {
                    tokio::time::sleep(self.backoff(attempt, &error)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::llm::{Message, Role};

    struct Flaky {
        failures: u32,
        calls: AtomicU32,
        error: LlmError,
    }

    #[async_trait]
    impl LlmClient for Flaky {
        async fn converse(&self, _: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                return Err(self.error.clone());
            }
            Ok(crate::llm::ok_answer())
        }
    }

    fn policy(budget: RetryBudget) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            attempt_timeout: None,
            max_retry_after: Duration::from_secs(30),
            budget: Arc::new(budget),
        }
    }

    fn request() -> ConverseRequest {
        ConverseRequest::new("m", Role::Tutor, vec![Message::user("hi")])
    }

    fn throttled(after: Option<Duration>) -> LlmError {
        LlmError::Throttled {
            message: "slow down".into(),
            retry_after: after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_until_success() {
        let client = RetryLlm::new(
            Flaky {
                failures: 3,
                calls: AtomicU32::new(0),
                error: throttled(None),
            },
            policy(RetryBudget::unlimited()),
        );
        assert!(client.converse(&request()).await.is_ok());
        assert_eq!(client.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_and_never_retries_permanent_errors() {
        let client = RetryLlm::new(
            Flaky {
                failures: 10,
                calls: AtomicU32::new(0),
                error: throttled(None),
            },
            policy(RetryBudget::unlimited()),
        );
        assert!(matches!(
            client.converse(&request()).await,
            Err(LlmError::Throttled { .. })
        ));
        assert_eq!(client.inner.calls.load(Ordering::SeqCst), 4);
        let denied = LlmError::AccessDenied {
            message: "no".into(),
        };
        let client = RetryLlm::new(
            Flaky {
                failures: 10,
                calls: AtomicU32::new(0),
                error: denied,
            },
            policy(RetryBudget::unlimited()),
        );
        assert!(matches!(
            client.converse(&request()).await,
            Err(LlmError::AccessDenied { .. })
        ));
        assert_eq!(client.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn respects_retry_after() {
        let asked = Duration::from_secs(7);
        let client = RetryLlm::new(
            Flaky {
                failures: 1,
                calls: AtomicU32::new(0),
                error: throttled(Some(asked)),
            },
            policy(RetryBudget::unlimited()),
        );
        let start = tokio::time::Instant::now();
        client.converse(&request()).await.unwrap();
        assert!(start.elapsed() >= asked, "waited {:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_longer_than_the_maximum_is_cut_to_it() {
        let client = RetryLlm::new(
            Flaky {
                failures: 1,
                calls: AtomicU32::new(0),
                error: throttled(Some(Duration::from_secs(3600))),
            },
            policy(RetryBudget::unlimited()),
        );
        let start = tokio::time::Instant::now();
        client.converse(&request()).await.unwrap();
        // The policy allows 30 s; the jitter ceiling of the first retry is 10 ms.
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(
            start.elapsed() < Duration::from_secs(31),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn jitter_is_seeded_afresh_not_from_a_constant() {
        let make = || {
            RetryLlm::new(
                Flaky {
                    failures: 0,
                    calls: AtomicU32::new(0),
                    error: throttled(None),
                },
                policy(RetryBudget::unlimited()),
            )
        };
        let error = throttled(None);
        // Two clients (two workers, or two processes) draw different backoffs: equal draws
        // from independent 64-bit seeds would take a 1-in-2^53 coincidence.
        let (a, b) = (make(), make());
        let draws = |c: &RetryLlm<Flaky>| (1..=4).map(|n| c.backoff(n, &error)).collect::<Vec<_>>();
        assert_ne!(draws(&a), draws(&b));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_stops_retrying() {
        let client = RetryLlm::new(
            Flaky {
                failures: 10,
                calls: AtomicU32::new(0),
                error: throttled(None),
            },
            policy(RetryBudget::new(1.0, 0.0, 1.0)),
        );
        assert!(client.converse(&request()).await.is_err());
        assert_eq!(
            client.inner.calls.load(Ordering::SeqCst),
            2,
            "one retry, then the budget is spent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_attempts_time_out_and_are_retried() {
        struct Slow;
        #[async_trait]
        impl LlmClient for Slow {
            async fn converse(&self, _: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(LlmError::Unavailable {
                    message: "never".into(),
                })
            }
        }
        let mut p = policy(RetryBudget::unlimited());
        p.attempt_timeout = Some(Duration::from_secs(1));
        let client = RetryLlm::new(Slow, p);
        assert!(matches!(
            client.converse(&request()).await,
            Err(LlmError::Timeout { .. })
        ));
    }
}
