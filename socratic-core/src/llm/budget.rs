//! A hard spending cap over model calls.
//!
//! Before a call starts, its worst-case cost (every input byte a token, every output token
//! up to `max_tokens`, at the dearest input price) is reserved against the cap; a call whose
//! reservation would pass the cap is not started and fails with
//! [`LlmError::BudgetExhausted`]. When the call returns, the reservation is replaced by the
//! cost of its real usage. Reservations of calls in flight count against the cap, so any
//! number of concurrent calls cannot together pass it.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::Prices;
use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};

/// Tokens a chat template may add around each message (role markers, separators).
const TOKENS_PER_MESSAGE: u64 = 8;
/// Tokens a chat template may add once per request.
const TOKENS_PER_REQUEST: u64 = 32;

/// The input of a request split for counting: the bytes of its text (every system part,
/// message and output schema) and the tokens a chat template may add around them.
pub fn input_size(request: &ConverseRequest) -> (u64, u64) {
    let bytes = |text: &str| text.len() as u64;
    let system: u64 = request.system.iter().map(|p| bytes(&p.text)).sum();
    let messages: u64 = request.messages.iter().map(|m| bytes(&m.text)).sum();
    let schema = request.structured_output.as_ref().map_or(0, |s| {
        bytes(&s.name) + bytes(&s.description) + bytes(&s.schema.to_string())
    });
    let parts = (request.system.len() + request.messages.len()) as u64;
    (
        system + messages + schema,
        parts * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST,
    )
}

/// An upper bound on the input tokens of `request`.
///
/// Byte-level tokenizers never produce more tokens than the text has bytes, so the bytes of
/// every system part, message and output schema, plus the template's overhead, bound the
/// count from above without knowing the model's tokenizer.
pub fn worst_case_input_tokens(request: &ConverseRequest) -> u64 {
    let (text_bytes, overhead) = input_size(request);
    text_bytes + overhead
}

/// The most `request` can cost at `prices`, in US dollars: [`worst_case_input_tokens`] at the
/// dearest of the input, cache-read and cache-write prices, plus `max_tokens` of output.
pub fn worst_case_cost(prices: &Prices, request: &ConverseRequest) -> f64 {
    let input_price = prices.input.max(prices.cache_read).max(prices.cache_write);
    (worst_case_input_tokens(request) as f64 * input_price
        + f64::from(request.max_tokens) * prices.output)
        / 1_000_000.0
}

#[derive(Debug, Default)]
struct Account {
    spent: f64,
    reserved: f64,
    refused: u64,
    answered: u64,
}

/// A spending cap in US dollars, shared by every [`BudgetLlm`] of a benchmark.
#[derive(Debug)]
pub struct Budget {
    cap: f64,
    account: Mutex<Account>,
}

impl Budget {
    /// A cap of `cap_usd` dollars (`f64::INFINITY` to only meter spend).
    pub fn new(cap_usd: f64) -> Self {
        Self {
            cap: cap_usd,
            account: Mutex::new(Account::default()),
        }
    }

    /// A budget that meters spend and never refuses a call.
    pub fn unlimited() -> Self {
        Self::new(f64::INFINITY)
    }

    /// The cap in dollars.
    pub fn cap(&self) -> f64 {
        self.cap
    }

    /// Dollars spent by finished calls.
    pub fn spent(&self) -> f64 {
        self.lock().spent
    }

    /// Counts `dollars` spent before this process started (by an earlier process of a resumed
    /// benchmark), so the cap covers the whole benchmark.
    pub fn add_spent(&self, dollars: f64) {
        if dollars.is_finite() && dollars > 0.0 {
            self.lock().spent += dollars;
        }
    }

    /// Calls that were not started because of the cap.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Calls a model answered (cached answers never reach the budget).
    pub fn answered(&self) -> u64 {
        self.lock().answered
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets aside `worst` dollars for a batch a provider already accepted (found again by a
    /// resumed benchmark): never refused, since the money is committed.
    pub(crate) fn commit(self: &Arc<Self>, worst: f64) -> Reservation {
        self.lock().reserved += worst;
        Reservation {
            budget: Arc::clone(self),
            amount: worst,
            settled: false,
        }
    }

    /// Reserves `worst` dollars for a call (or a whole batch), or refuses it when that would
    /// pass the cap.
    pub(crate) fn reserve(self: &Arc<Self>, worst: f64) -> Result<Reservation, LlmError> {
        let mut account = self.lock();
        if account.spent + account.reserved + worst > self.cap {
            account.refused += 1;
            return Err(LlmError::BudgetExhausted {
                message: format!(
                    "the spending cap of ${:.4} would be passed: ${:.4} spent, ${:.4} in calls under way, and this call could cost up to ${worst:.4}",
                    self.cap, account.spent, account.reserved
                ),
            });
        }
        account.reserved += worst;
        Ok(Reservation {
            budget: Arc::clone(self),
            amount: worst,
            settled: false,
        })
    }
}

/// Money set aside for one call. Dropped unsettled (the call was cut off), it is charged in
/// full: the provider may have billed a request whose answer never arrived.
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    amount: f64,
    settled: bool,
}

impl Reservation {
    fn settle(mut self, cost: f64) {
        self.charge(cost);
        self.settled = true;
    }

    fn settle_answered(self, cost: f64) {
        self.settle_batch(cost, 1);
    }

    /// Replaces the reservation by `cost`, for `answered` calls a model answered.
    pub(crate) fn settle_batch(self, cost: f64, answered: u64) {
        self.budget.lock().answered += answered;
        self.settle(cost);
    }

    fn charge(&self, cost: f64) {
        let mut account = self.budget.lock();
        account.reserved = (account.reserved - self.amount).max(0.0);
        account.spent += cost;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.charge(self.amount);
        }
    }
}

/// Charges every call of one model to a [`Budget`], at the model's prices.
///
/// Place it inside the response cache (a cached answer never reaches it) and inside the
/// concurrency limit (only calls about to start hold a reservation). The local benchmark puts
/// it under the retry layer, so each attempt is reserved and charged on its own.
pub struct BudgetLlm<C> {
    inner: C,
    prices: Prices,
    budget: Arc<Budget>,
}

impl<C> std::fmt::Debug for BudgetLlm<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetLlm")
            .field("prices", &self.prices)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<C: LlmClient> BudgetLlm<C> {
    /// Charges calls to `inner` at `prices` against `budget`.
    pub fn new(inner: C, prices: Prices, budget: Arc<Budget>) -> Self {
        Self {
            inner,
            prices,
            budget,
        }
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for BudgetLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let reservation = self
            .budget
            .reserve(worst_case_cost(&self.prices, request))?;
        match self.inner.converse(request).await {
            Ok(response) if response.cached => {
                reservation.settle(0.0);
                Ok(response)
            }
            Ok(response) => {
                reservation.settle_answered(self.prices.cost(&response.usage));
                Ok(response)
            }
            // The request may have run to completion on the server: charge the worst case.
            Err(error @ LlmError::Timeout { .. }) => Err(error),
            // An answered error is not billed.
            Err(error) => {
                reservation.settle(0.0);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::llm::{Message, Role, StopReason, Usage};

    struct Priced {
        usage: Usage,
        delay: Duration,
    }

    #[async_trait]
    impl LlmClient for Priced {
        async fn converse(&self, _: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
            tokio::time::sleep(self.delay).await;
            Ok(ConverseResponse {
                text: "ok".into(),
                structured: None,
                stop_reason: StopReason::EndTurn,
                usage: self.usage,
                latency: self.delay,
                cached: false,
                batched: false,
            })
        }
    }

    fn prices() -> Prices {
        Prices {
            input: 1.0,
            output: 10.0,
            cache_read: 0.1,
            cache_write: 1.25,
            ..Prices::default()
        }
    }

    fn request() -> ConverseRequest {
        let mut request = ConverseRequest::new("m", Role::Tutor, vec![Message::user("hello")]);
        request.max_tokens = 100;
        request
    }

    #[test]
    fn the_worst_case_bounds_bytes_and_output_at_the_dearest_input_price() {
        let r = request();
        // 5 bytes + 1 message × 8 + 32
        assert_eq!(worst_case_input_tokens(&r), 45);
        let expected = (45.0 * 1.25 + 100.0 * 10.0) / 1e6;
        assert!((worst_case_cost(&prices(), &r) - expected).abs() < 1e-15);
    }

    #[tokio::test]
    async fn real_usage_is_charged_and_a_call_past_the_cap_is_refused() {
        let worst = worst_case_cost(&prices(), &request());
        // Room for two worst cases, not three.
        let budget = Arc::new(Budget::new(worst * 2.5));
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 90,
            ..Usage::default()
        };
        let client = BudgetLlm::new(
            Priced {
                usage,
                delay: Duration::ZERO,
            },
            prices(),
            Arc::clone(&budget),
        );
        let mut answered: u32 = 0;
        loop {
            match client.converse(&request()).await {
                Ok(_) => answered += 1,
                Err(LlmError::BudgetExhausted { message }) => {
                    assert!(message.contains("spending cap"), "{message}");
                    break;
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
        let each = prices().cost(&usage);
        assert!((budget.spent() - each * f64::from(answered)).abs() < 1e-12);
        assert!(budget.spent() + worst > budget.cap());
        assert!(budget.spent() <= budget.cap());
        assert_eq!(budget.refused(), 1);
        assert_eq!(budget.answered(), u64::from(answered));
    }

    #[tokio::test]
    async fn money_spent_by_an_earlier_process_counts_against_the_cap() {
        let worst = worst_case_cost(&prices(), &request());
        let budget = Arc::new(Budget::new(worst * 1.5));
        budget.add_spent(worst);
        budget.add_spent(f64::NAN);
        let client = BudgetLlm::new(
            Priced {
                usage: Usage::default(),
                delay: Duration::ZERO,
            },
            prices(),
            Arc::clone(&budget),
        );
        assert!(matches!(
            client.converse(&request()).await,
            Err(LlmError::BudgetExhausted { .. })
        ));
        assert!((budget.spent() - worst).abs() < 1e-15);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_never_pass_the_cap_even_when_each_costs_its_worst_case() {
        let r = request();
        let worst = worst_case_cost(&prices(), &r);
        let usage = Usage {
            // Exactly the bound: every call costs its reservation.
            input_tokens: worst_case_input_tokens(&r),
            output_tokens: u64::from(r.max_tokens),
            ..Usage::default()
        };
        let budget = Arc::new(Budget::new(worst * 10.5));
        let client = Arc::new(BudgetLlm::new(
            Priced {
                usage: Usage {
                    cache_write_tokens: usage.input_tokens,
                    input_tokens: 0,
                    ..usage
                },
                delay: Duration::from_millis(100),
            },
            prices(),
            Arc::clone(&budget),
        ));
        let calls = (0..64).map(|_| {
            let client = Arc::clone(&client);
            async move { client.converse(&request()).await }
        });
        let results = futures::future::join_all(calls).await;
        let answered = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(answered, 10);
        assert_eq!(budget.refused(), 54);
        assert!(budget.spent() <= budget.cap(), "spent {}", budget.spent());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_cut_off_is_charged_its_worst_case() {
        let budget = Arc::new(Budget::new(1.0));
        let client = BudgetLlm::new(
            Priced {
                usage: Usage::default(),
                delay: Duration::from_secs(60),
            },
            prices(),
            Arc::clone(&budget),
        );
        let cut = tokio::time::timeout(Duration::from_secs(1), client.converse(&request())).await;
        assert!(cut.is_err());
        let worst = worst_case_cost(&prices(), &request());
        assert!((budget.spent() - worst).abs() < 1e-15);
    }
}
