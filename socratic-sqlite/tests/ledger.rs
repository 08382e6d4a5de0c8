//! The call ledger: what it counts, what it forgets, and what a cut-off call costs.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_trait::async_trait;
use socratic_core::llm::Prices;
use socratic_core::llm::{
    ConverseRequest, ConverseResponse, LlmClient, LlmError, Message, Role, StopReason, Usage,
    worst_case_cost,
};
use socratic_sqlite::{CallLedger, Database, LedgerLlm};

/// Answers with fixed usage, from the "cache" when the prompt says so, after `delay`.
struct Model {
    delay: Duration,
}

#[async_trait]
impl LlmClient for Model {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        tokio::time::sleep(self.delay).await;
        Ok(ConverseResponse {
            text: "ok".into(),
            structured: None,
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                ..Usage::default()
            },
            latency: self.delay,
            cached: request.messages[0].text == "cached",
            batched: false,
        })
    }
}

const PRICES: Prices = Prices {
    input: 1.0,
    output: 10.0,
    cache_read: 0.1,
    cache_write: 1.25,
    batch_input: None,
    batch_output: None,
};

fn request(text: &str) -> ConverseRequest {
    let mut request = ConverseRequest::new("m", Role::Tutor, vec![Message::user(text)]);
    request.max_tokens = 100;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_counts_model_calls_forgets_cache_hits_and_charges_cut_off_calls_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("socratic.db")).unwrap();
    let ledger = CallLedger::new(&db);
    ledger.set_scope("M1");
    let fast = LedgerLlm::new(
        Model {
            delay: Duration::ZERO,
        },
        PRICES,
        ledger.clone(),
    );
    fast.converse(&request("hello")).await.unwrap();
    fast.converse(&request("cached")).await.unwrap();
    let slow = LedgerLlm::new(
        Model {
            delay: Duration::from_secs(60),
        },
        PRICES,
        ledger.clone(),
    );
    // A call cut off in flight, as by a kill: its row stays open.
    let cut = request("cut off");
    let _ = tokio::time::timeout(Duration::from_millis(200), slow.converse(&cut)).await;
    let totals = ledger.totals("M1").await.unwrap();
    assert_eq!(totals.calls, 2, "the cache hit left no row: {totals:?}");
    assert_eq!(totals.cut_off, 1);
    let answered = (1_000.0 * 1.0 + 100.0 * 10.0) / 1_000_000.0;
    let expected = answered + worst_case_cost(&PRICES, &cut);
    assert!(
        (totals.spent_usd - expected).abs() < 1e-12,
        "{totals:?} vs {expected}"
    );
    assert_eq!(
        ledger.totals("other").await.unwrap().calls,
        0,
        "scopes are apart"
    );
}
