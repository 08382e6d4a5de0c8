//! The response cache and the spending cap, through the whole pipeline.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use socratic_core::blob::BlobStore;
use socratic_core::entity::RunStatus;
use socratic_core::llm::{
    Budget, BudgetLlm, CacheMode, CachedLlm, ConverseRequest, ConverseResponse, LlmClient,
    LlmError, Message, Prices, Role,
};
use socratic_core::pipeline::plan;
use socratic_core::repository::RunFilter;
use socratic_memory::MemoryBlobStore;
use socratic_sim::SimulatedLlm;
use support::{Harness, Options, default_request, fast_config};

/// Counts the calls that reach the model.
struct Counting<C> {
    inner: C,
    calls: AtomicU32,
}

#[async_trait]
impl<C: LlmClient> LlmClient for Counting<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.converse(request).await
    }
}

fn counting() -> Arc<Counting<SimulatedLlm>> {
    Arc::new(Counting {
        inner: SimulatedLlm::new(),
        calls: AtomicU32::new(0),
    })
}

fn request(sample: u32) -> ConverseRequest {
    let mut request = ConverseRequest::new(
        "sim-socratic",
        Role::Tutor,
        vec![Message::user("I think heavier things fall faster.")],
    );
    request.sample = sample;
    request
}

#[tokio::test]
async fn a_cached_answer_is_marked_and_repetitions_stay_distinct() {
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let model = counting();
    let cache = CachedLlm::new(Arc::clone(&model), Arc::clone(&blobs)).with_namespace("sim");
    let first = cache.converse(&request(1)).await.unwrap();
    assert!(!first.cached);
    let again = cache.converse(&request(1)).await.unwrap();
    assert!(again.cached);
    assert_eq!(again.text, first.text);
    assert_eq!(model.calls.load(Ordering::SeqCst), 1);
    // Another repetition of the same request is another sample.
    assert!(!cache.converse(&request(2)).await.unwrap().cached);
    assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    // Another endpoint does not share answers.
    let other = CachedLlm::new(Arc::clone(&model), Arc::clone(&blobs)).with_namespace("elsewhere");
    assert!(!other.converse(&request(1)).await.unwrap().cached);
    assert_eq!(model.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn errors_are_never_cached_and_a_replay_miss_fails_clearly() {
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let failing = socratic_sim::ScriptedLlm::new();
    failing.push_error(LlmError::Unavailable {
        message: "down".into(),
    });
    failing.push_text("back");
    let cache = CachedLlm::new(failing, Arc::clone(&blobs));
    assert!(cache.converse(&request(1)).await.is_err());
    let answer = cache.converse(&request(1)).await.unwrap();
    assert_eq!(answer.text, "back");
    assert!(!answer.cached);

    let replay = CachedLlm::new(counting(), Arc::clone(&blobs)).with_mode(CacheMode::ReplayOnly);
    assert!(replay.converse(&request(1)).await.unwrap().cached);
    match replay.converse(&request(9)).await {
        Err(error @ LlmError::Other { .. }) => {
            assert!(!error.is_retryable());
            let message = error.to_string();
            assert!(message.contains("no cached answer"), "{message}");
            assert!(message.contains("--replay"), "{message}");
        }
        other => panic!("a replay miss must fail, got {other:?}"),
    }
}

#[tokio::test]
async fn a_spent_budget_skips_runs_and_says_so_without_failing_any() {
    let prices = Prices {
        input: 1.0,
        output: 4.0,
        ..Prices::default()
    };
    // Enough for a few calls of the 24 runs' ~200, not for all.
    let budget = Arc::new(Budget::new(0.02));
    let llm: Arc<dyn LlmClient> = Arc::new(BudgetLlm::new(
        SimulatedLlm::new(),
        prices,
        Arc::clone(&budget),
    ));
    let harness = Harness::new(Options {
        llm,
        ..Options::default()
    })
    .await;
    let planned = plan(&harness.ports, &default_request()).await.unwrap();
    let runner = harness.runner(4, fast_config());
    let summary = runner
        .complete(&planned.manifest.id, Some(Duration::from_secs(60)))
        .await
        .unwrap();

    assert!(summary.stopped_by_budget);
    assert!(summary.skipped_runs > 0, "{summary:?}");
    assert_eq!(summary.failed_runs, 0);
    assert_eq!(
        summary
            .leaderboard
            .iter()
            .map(|r| r.skipped_runs)
            .sum::<u32>(),
        summary.skipped_runs
    );
    assert!(budget.spent() <= budget.cap(), "spent {}", budget.spent());
    assert!(budget.refused() > 0);
    let skipped = harness
        .ports
        .repository
        .list_runs(&RunFilter::Status(RunStatus::Skipped), 100, None)
        .await
        .unwrap()
        .items;
    assert_eq!(skipped.len() as u32, summary.skipped_runs);
    for run in skipped {
        let failure = run.failure.expect("a skipped run says why");
        assert!(failure.reason.starts_with("budget:"), "{}", failure.reason);
    }
    assert!(harness.queues.dead_letters().is_empty());
}

#[tokio::test]
async fn the_estimate_counts_every_call_and_its_worst_case_bounds_the_real_spend() {
    let budget = Arc::new(Budget::unlimited());
    let harness = Harness::new(Options::default()).await;
    let request = default_request();
    let estimate = socratic_core::estimate::estimate(&harness.ports.repository, &request)
        .await
        .unwrap();
    // 8 scenarios × 3 tutors × 3 turns; the student answers all but the last turn.
    assert_eq!(estimate.runs, 24);
    assert_eq!(estimate.roles[&Role::Tutor].calls, 72);
    assert_eq!(estimate.roles[&Role::Student].calls, 48);
    assert_eq!(estimate.roles[&Role::Judge].calls, 72);
    assert_eq!(
        estimate.models.len(),
        5,
        "3 tutors, the student and the judge"
    );
    for role in estimate.roles.values() {
        assert!(role.worst_input_tokens > role.input_tokens);
        assert!(role.worst_output_tokens > role.output_tokens);
    }
    assert!(estimate.worst_cost_usd > estimate.cost_usd);
    assert!(estimate.cost_usd > 0.0);
    // Turn-synchronous batches: 3 tutor rounds, 2 student rounds, 1 judge round. The
    // simulated models have no batch prices, so batches cost what live calls do.
    assert_eq!(estimate.batch_rounds, 6);
    assert_eq!(estimate.batch_cost_usd, estimate.cost_usd);
    assert_eq!(estimate.batch_worst_cost_usd, estimate.worst_cost_usd);

    // Run it, charging every call at each model's own prices: the real spend stays under
    // the worst case.
    let catalog = SimulatedLlm::catalog();
    let mut providers = socratic_core::pipeline::Providers::new();
    for model in &catalog {
        providers = providers.with_model(
            model.id.clone(),
            Arc::new(BudgetLlm::new(
                SimulatedLlm::new(),
                model.prices,
                Arc::clone(&budget),
            )),
        );
    }
    let mut ports = harness.ports.clone();
    ports.providers = providers;
    let runner = socratic_core::runner::Runner::builder(ports)
        .stage_lanes(
            Arc::new(harness.queues.dialogue.clone()),
            Arc::new(harness.queues.judge.clone()),
            Arc::new(harness.queues.events.clone()),
            4,
        )
        .config(fast_config())
        .build();
    let summary = runner.run_manifest(&request).await.unwrap();
    assert_eq!(summary.failed_runs + summary.skipped_runs, 0);
    assert!(budget.spent() > 0.0);
    assert!(
        budget.spent() <= estimate.worst_cost_usd,
        "spent {} > worst case {}",
        budget.spent(),
        estimate.worst_cost_usd
    );
    assert!((summary.cost_usd - budget.spent()).abs() < 1e-9);
}
