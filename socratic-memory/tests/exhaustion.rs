//! Retry exhaustion ends a run, not a manifest: a tutor throttled for good gets at most three
//! attempts per job, its runs end failed with the stage and reason, and the manifest still
//! finishes; a deadline bounds the wait.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use socratic_core::entity::{RunStatus, Stage};
use socratic_core::pipeline::plan;
use socratic_core::repository::RunFilter;
use socratic_core::runner::{RunError, Runner};
use socratic_sim::SimulatedLlm;
use socratic_sim::chaos::ThrottledModel;
use socratic_sim::simulated::LEAKY_TUTOR;
use support::{Harness, Options, default_request, fast_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tutor_throttled_for_good_fails_its_runs_and_the_manifest_finishes() {
    let llm = Arc::new(ThrottledModel::new(SimulatedLlm::new(), LEAKY_TUTOR));
    let harness = Harness::new(Options {
        llm: Arc::clone(&llm) as Arc<dyn socratic_core::llm::LlmClient>,
        max_attempts: 3,
        ..Options::default()
    })
    .await;
    let runner = harness.runner(4, fast_config());
    let planned = plan(&harness.ports, &default_request()).await.unwrap();
    let id = planned.manifest.id;
    let summary = runner
        .complete(&id, Some(Duration::from_secs(60)))
        .await
        .unwrap();

    // Eight runs of the throttled tutor, each one job of at most three deliveries.
    assert!(llm.refused() <= 8 * 3, "{} calls", llm.refused());
    assert_eq!(llm.refused(), 8 * 3, "every delivery tried the tutor once");
    let stats = runner.stats();
    assert_eq!(stats["dialogue"].gave_up, 8, "{stats:?}");
    assert!(
        harness.queues.dead_letters().is_empty(),
        "given-up jobs are acknowledged, not dead-lettered"
    );

    let runs = harness
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(id), 100, None)
        .await
        .unwrap()
        .items;
    for run in &runs {
        if run.tutor.model.as_str() == LEAKY_TUTOR {
            assert_eq!(run.status, RunStatus::Failed, "{run:?}");
            let failure = run.failure.as_ref().unwrap();
            assert_eq!(failure.stage, Stage::Dialogue);
            assert!(
                failure.reason.starts_with("gave up after 3 attempt(s)")
                    && failure.reason.contains("over its quota"),
                "{}",
                failure.reason
            );
        } else {
            assert_eq!(run.status, RunStatus::Curated, "{run:?}");
        }
    }
    assert_eq!(summary.failed_runs, 8);
    let leaky = summary
        .leaderboard
        .iter()
        .find(|row| row.model.as_str() == LEAKY_TUTOR)
        .unwrap();
    assert_eq!(leaky.failed_scenarios.len(), 8);
    assert_eq!(leaky.rank_group, None, "a model with no score is unranked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_gives_up_at_its_deadline_and_says_how_far_it_got() {
    let harness = Harness::new(Options::default()).await;
    // A runner without lanes: nothing can progress.
    let runner = Runner::builder(harness.ports.clone())
        .config(fast_config())
        .build();
    let planned = plan(&harness.ports, &default_request()).await.unwrap();
    let expected = planned.manifest.id;
    let error = runner
        .complete(&planned.manifest.id, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    match error {
        RunError::DeadlinePassed {
            manifest,
            finished,
            planned,
            ..
        } => {
            assert_eq!(manifest, expected);
            assert_eq!((finished, planned), (0, 24));
        }
        other => panic!("{other}"),
    }
}
