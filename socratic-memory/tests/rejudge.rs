//! Re-judging a finished manifest: other judges, the same dialogues, no tutor or student call.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use socratic_core::entity::{Manifest, ModelConfig, RunStatus};
use socratic_core::keys;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError, Role};
use socratic_core::pipeline::{
    PlanError, import_manifest, latest_dialogue_manifest, plan, rejudge_request,
};
use socratic_core::repository::RunFilter;
use socratic_memory::MemoryStore;
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::STRICT_JUDGE;
use support::{Harness, Options, default_request, fast_config, model};

/// Counts calls per role.
#[derive(Default)]
struct ByRole {
    calls: Mutex<BTreeMap<Role, u32>>,
}

#[async_trait]
impl LlmClient for ByRole {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        *self.calls.lock().unwrap().entry(request.role).or_default() += 1;
        SimulatedLlm::new().converse(request).await
    }
}

#[tokio::test]
async fn a_rejudge_reuses_every_dialogue_and_calls_only_the_new_judge() {
    let counter = Arc::new(ByRole::default());
    let harness = Harness::new(Options {
        llm: Arc::clone(&counter) as Arc<dyn LlmClient>,
        ..Options::default()
    })
    .await;
    let runner = harness.runner(4, fast_config());
    let source = runner.run_manifest(&default_request()).await.unwrap();
    let source_manifest: Manifest = harness
        .ports
        .repository
        .get(&keys::manifest(&source.manifest))
        .await
        .unwrap()
        .unwrap()
        .value;
    counter.calls.lock().unwrap().clear();

    // Re-judge in a fresh store, from the results' files only, as the command line does.
    assert_eq!(
        latest_dialogue_manifest(&harness.blobs).await.unwrap(),
        Some(source.manifest)
    );
    let mut fresh = Harness::new(Options {
        llm: Arc::clone(&counter) as Arc<dyn LlmClient>,
        store: Some(Arc::new(MemoryStore::new())),
        ..Options::default()
    })
    .await;
    // Both harnesses count ids from the same start; a later process draws new ULIDs.
    fresh.ports.ids = Arc::new(socratic_core::clock::UlidGenerator::default());
    let imported = import_manifest(&harness.blobs, &fresh.ports.repository, &source.manifest)
        .await
        .unwrap();
    assert_eq!(imported.runs, 24);
    let request = rejudge_request(
        &source_manifest,
        vec![ModelConfig {
            model: model(STRICT_JUDGE),
            temperature: 0.0,
        }],
        None,
        None,
    );
    let runner = fresh.runner(4, fast_config());
    let rejudged = runner.run_manifest(&request).await.unwrap();

    let calls = counter.calls.lock().unwrap().clone();
    assert_eq!(calls.get(&Role::Tutor), None, "no tutor call");
    assert_eq!(calls.get(&Role::Student), None, "no student call");
    assert_eq!(calls[&Role::Judge], 72, "one judgment per turn");
    assert_eq!(rejudged.rejudge_of, Some(source.manifest));
    assert_eq!(rejudged.runs, 24);
    assert_eq!(rejudged.failed_runs, 0);
    assert!(rejudged.label.as_deref().unwrap().contains(STRICT_JUDGE));
    // The strict judge scores the same dialogues differently, and the ranking holds.
    assert_ne!(
        rejudged.leaderboard[0].overall,
        source.leaderboard[0].overall
    );
    assert_eq!(rejudged.leaderboard[0].model, source.leaderboard[0].model);

    // Every turn is the source's, marked as reused.
    let runs = fresh
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(rejudged.manifest), 100, None)
        .await
        .unwrap()
        .items;
    for run in runs {
        assert_eq!(run.status, RunStatus::Curated);
        let copy = fresh
            .ports
            .repository
            .run_record(&run.id)
            .await
            .unwrap()
            .unwrap();
        let original_id = socratic_core::pipeline::run_id(
            &source.manifest,
            &run.tutor.model,
            &run.scenario,
            run.repetition,
        );
        let original = fresh
            .ports
            .repository
            .run_record(&original_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copy.turns.len(), original.turns.len());
        for (a, b) in copy.turns.iter().zip(&original.turns) {
            assert_eq!(a.tutor_text, b.tutor_text);
            assert_eq!(a.student_text, b.student_text);
            assert!(a.tutor_call.cached);
        }
        assert!(
            copy.judgments
                .iter()
                .all(|j| j.judge.as_str() == STRICT_JUDGE)
        );
    }
}

#[tokio::test]
async fn a_rejudge_that_changes_the_dialogues_is_refused() {
    let harness = Harness::new(Options::default()).await;
    let runner = harness.runner(4, fast_config());
    let source = runner.run_manifest(&default_request()).await.unwrap();
    let stored: Manifest = harness
        .ports
        .repository
        .get(&keys::manifest(&source.manifest))
        .await
        .unwrap()
        .unwrap()
        .value;
    let mut request = rejudge_request(&stored, stored.request.judges.clone(), None, None);
    request.turns = 2;
    request.scenarios.pop();
    match plan(&harness.ports, &request).await {
        Err(PlanError::Invalid(problems)) => {
            let text = problems.to_string();
            assert!(text.contains("turns"), "{text}");
            assert!(text.contains("scenarios"), "{text}");
        }
        other => panic!("expected the plan to be refused, got {other:?}"),
    }
    let mut unknown = rejudge_request(&stored, stored.request.judges.clone(), None, None);
    unknown.rejudge_of = Some(socratic_core::id::ManifestId::from_ulid(ulid::Ulid::nil()));
    let problems = match plan(&harness.ports, &unknown).await {
        Err(PlanError::Invalid(problems)) => problems.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(problems.contains("unknown manifest"), "{problems}");
}
