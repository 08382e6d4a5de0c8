//! The pipeline end to end on memory backends with the simulated models.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use socratic_core::blob::{BlobKey, BlobStore};
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::{
    JudgmentOutcome, Manifest, ManifestSummary, ModelConfig, Rubric, RunStatus, TellingDetector,
};
use socratic_core::id::{ManifestId, ScenarioId};
use socratic_core::keys;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError, Role};
use socratic_core::pipeline::{PlanError, Ports, RunDigest, plan, summarize_digests};
use socratic_core::repository::{RunFilter, RunRecord};
use socratic_core::stats::Caution;
use socratic_sim::SimulatedLlm;
use socratic_sim::chaos::{FaultRates, FaultyLlm};
use socratic_sim::simulated::{LEAKY_TUTOR, LECTURER_TUTOR, SOCRATIC_TUTOR};
use support::{Harness, Options, default_request, fast_config, leaderboard, model};

/// A finished manifest as stored: the manifest, its rubric and every run's record.
async fn stored(ports: &Ports, id: &ManifestId) -> (Manifest, Rubric, Vec<RunRecord>) {
    let repo = &ports.repository;
    let manifest = repo
        .get::<Manifest>(&keys::manifest(id))
        .await
        .unwrap()
        .unwrap()
        .value;
    let rubric: Rubric = repo
        .require_catalog(&manifest.request.rubric)
        .await
        .unwrap();
    let runs = repo
        .list_runs(&RunFilter::Manifest(*id), 1000, None)
        .await
        .unwrap();
    let mut records = Vec::new();
    for run in runs.items {
        records.push(repo.run_record(&run.id).await.unwrap().unwrap());
    }
    (manifest, rubric, records)
}

async fn run_default(harness: &Harness) -> ManifestSummary {
    let runner = harness.runner(4, fast_config());
    runner.run_manifest(&default_request()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_beats_leaky_beats_lecturer_and_the_leak_is_at_turn_two() {
    let harness = Harness::new(Options::default()).await;
    let summary = run_default(&harness).await;
    let order: Vec<&str> = summary
        .leaderboard
        .iter()
        .map(|r| r.model.as_str())
        .collect();
    assert_eq!(order, [SOCRATIC_TUTOR, LEAKY_TUTOR, LECTURER_TUTOR]);
    let letters: Vec<&str> = summary
        .leaderboard
        .iter()
        .map(|r| r.letters.as_str())
        .collect();
    assert_eq!(letters, ["a", "b", "c"]);
    let groups: Vec<Option<u32>> = summary.leaderboard.iter().map(|r| r.rank_group).collect();
    assert_eq!(
        groups,
        [Some(1), Some(2), Some(3)],
        "eight consistent scenarios separate all three"
    );
    for row in &summary.leaderboard {
        let overall = row.overall.unwrap();
        assert_eq!(
            overall.n, 8,
            "{}: intervals resample the eight scenarios",
            row.model
        );
        let (low, high) = overall
            .interval()
            .expect("eight scenarios give an interval");
        assert!(low < overall.mean && overall.mean < high);
        assert_eq!(
            overall.caution,
            Some(Caution::FewScenarios),
            "eight scenarios are fewer than the interval's table vouches for"
        );
        assert_eq!(row.runs, 8);
        assert_eq!(row.unscored_judgments, 0);
        assert!(row.cost_usd > 0.0, "cost is priced from the model catalog");
    }
    assert_eq!(summary.runs, 24);
    assert_eq!(summary.failed_runs, 0);
    assert_eq!(summary.comparisons.len(), 3);

    // One telling measure, the judges' flag: the leaking tutor tells first in at least 7 of
    // the 8 scenarios (one run each), the Socratic tutor in none. The verbatim detector is
    // measured against it over every judged turn, and each disagreement is listed.
    assert_eq!(summary.telling_detector, TellingDetector::Judges);
    let told_first = |id: &str| {
        let row = summary
            .leaderboard
            .iter()
            .find(|r| r.model.as_str() == id)
            .unwrap();
        (row.telling_rate.unwrap() * f64::from(row.runs)).round() as u32
    };
    assert!(told_first(LEAKY_TUTOR) >= 7, "{}", told_first(LEAKY_TUTOR));
    assert_eq!(told_first(SOCRATIC_TUTOR), 0);
    let agreement = summary.telling_agreement.unwrap();
    assert_eq!(agreement.turns, 24 * 3, "every judged tutor turn");
    assert_eq!(
        summary.telling_disagreements.len(),
        (agreement.judges_only + agreement.verbatim_only) as usize
    );
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(
        text.contains("told: the share of runs") && text.contains("reveals_answer flag"),
        "{text}"
    );
    assert!(!text.contains("leaks"), "one telling figure: {text}");
    assert!(
        text.contains("]*") && text.contains("* fewer than 16 scenarios"),
        "{text}"
    );
    // The report's settings say what this design could detect, at the variance it saw.
    let power = summary.power.unwrap();
    assert_eq!((power.pairs, power.scenarios, power.repetitions), (3, 8, 1));
    assert!(power.detectable.is_some());
    assert_eq!(
        power.difference_sd,
        summary.design_variance.unwrap().difference_sd_at(1)
    );
    assert!(
        summary
            .comparisons
            .iter()
            .all(|c| c.p_adjusted < 0.05 && c.difference.mean > 0.0)
    );

    let runs = harness
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(summary.manifest), 100, None)
        .await
        .unwrap();
    for run in runs.items {
        assert_eq!(run.status, RunStatus::Curated);
        let record = harness
            .ports
            .repository
            .run_record(&run.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.turns.len(), 3);
        assert_eq!(record.judgments.len(), 3, "each turn judged exactly once");
        let s = record.summary.unwrap();
        let expected_leak = if run.tutor.model.as_str() == LEAKY_TUTOR {
            Some(2)
        } else if run.tutor.model.as_str() == SOCRATIC_TUTOR {
            None
        } else {
            s.answer_leak_turn
        };
        assert_eq!(
            s.answer_leak_turn, expected_leak,
            "{} on {}",
            run.tutor.model, run.scenario
        );
        assert_eq!(s.usage.get(&Role::Tutor).unwrap().calls, 3);
        assert_eq!(
            s.usage.get(&Role::Student).unwrap().calls,
            2,
            "no student reply after the last turn"
        );
        assert_eq!(s.usage.get(&Role::Judge).unwrap().calls, 3);
    }

    // The report files exist and parse.
    let dir = format!("curated/manifests/{}", summary.manifest);
    let json = harness
        .blobs
        .get(&BlobKey::new(format!("{dir}/summary.json")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<ManifestSummary>(&json).unwrap(),
        summary
    );
    let csv = String::from_utf8(
        harness
            .blobs
            .get(&BlobKey::new(format!("{dir}/leaderboard.csv")).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().nth(1).unwrap().starts_with("1,sim-socratic,"));
    let html = String::from_utf8(
        harness
            .blobs
            .get(&BlobKey::new(format!("{dir}/report.html")).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    // Self-contained: charts inline, scripts embedded, nothing loaded from elsewhere.
    assert!(html.contains("<svg") && html.contains("sim-lecturer"));
    for external in [
        "<script src",
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(html.contains(r#"<script type="application/json" id="socratic-data">"#));
}

/// Records every request, then answers with the simulated models.
#[derive(Default)]
struct Recording {
    requests: Mutex<Vec<ConverseRequest>>,
    inner: SimulatedLlm,
}

impl Recording {
    /// A harness whose models are recorded.
    async fn harness() -> (Arc<Self>, Harness) {
        let recording = Arc::new(Self::default());
        let harness = Harness::new(Options {
            llm: Arc::clone(&recording) as Arc<dyn LlmClient>,
            ..Options::default()
        })
        .await;
        (recording, harness)
    }
}

#[async_trait]
impl LlmClient for Recording {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        self.inner.converse(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tutor_request_contains_the_answer_key() {
    let (recording, harness) = Recording::harness().await;
    run_default(&harness).await;
    let requests = recording.requests.lock().unwrap();
    let tutor_requests: Vec<_> = requests.iter().filter(|r| r.role == Role::Tutor).collect();
    assert_eq!(tutor_requests.len(), 72);
    let defaults = Defaults::load().unwrap();
    for scenario in defaults.scenario_set(ScenarioSet::Starter) {
        let mut secrets = scenario.goals.clone();
        secrets.push(scenario.key_conflict.clone());
        for request in &tutor_requests {
            let text = serde_json::to_string(request).unwrap();
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "a tutor request leaks {secret:?}"
                );
            }
        }
        // The judge does see the answer key.
        assert!(requests.iter().any(|r| {
            r.role == Role::Judge
                && serde_json::to_string(r)
                    .unwrap()
                    .contains(&scenario.key_conflict)
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_the_same_manifest_twice_plans_nothing_new() {
    let harness = Harness::new(Options::default()).await;
    let first = run_default(&harness).await;
    let again = plan(&harness.ports, &default_request()).await.unwrap();
    assert_eq!(again.manifest.id, first.manifest);
    assert!(!again.created);
    assert_eq!(again.jobs_sent, 0, "finished runs get no new jobs");
    assert!(harness.queues.dialogue.is_empty());
    let runs = harness
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(first.manifest), 100, None)
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_judge_output_is_stored_unscored_with_its_reason() {
    let always_invalid = FaultyLlm::new(
        SimulatedLlm::new(),
        FaultRates {
            invalid_output: 1.0,
            ..FaultRates::default()
        },
        1,
    );
    let harness = Harness::new(Options {
        llm: Arc::new(always_invalid),
        ..Options::default()
    })
    .await;
    let mut request = default_request();
    request.scenarios.truncate(2);
    let summary = harness
        .runner(2, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    assert_eq!(summary.unscored_judgments, 18);
    for row in &summary.leaderboard {
        assert_eq!(
            row.overall, None,
            "unscored judgments are never averaged in"
        );
        assert_eq!(row.unscored_judgments, 6);
    }
    let run = harness
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(summary.manifest), 1, None)
        .await
        .unwrap()
        .items
        .remove(0);
    let record = harness
        .ports
        .repository
        .run_record(&run.id)
        .await
        .unwrap()
        .unwrap();
    for judgment in record.judgments {
        assert_eq!(judgment.attempts, 3);
        match judgment.outcome {
            JudgmentOutcome::Unscored { reason } => {
                assert!(
                    reason.contains("invalid judge output after 3 attempts"),
                    "{reason}"
                );
                assert!(
                    reason.contains("scores.pedagogical_stance"),
                    "the reason names the field: {reason}"
                );
            }
            JudgmentOutcome::Scored(_) => panic!("invalid output must not be scored"),
        }
    }
}

#[tokio::test]
async fn a_bad_manifest_lists_every_problem() {
    let harness = Harness::new(Options {
        config: socratic_core::pipeline::PipelineConfig {
            max_runs_per_manifest: 10,
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let mut request = default_request();
    request.scenarios.push("NO-SUCH-SCENARIO".parse().unwrap());
    request.tutors.push(ModelConfig {
        model: model("no-such-model"),
        temperature: 1.5,
    });
    request.judges.clear();
    let err = plan(&harness.ports, &request).await.unwrap_err();
    let PlanError::Invalid(problems) = err else {
        panic!("expected Invalid, got {err:?}")
    };
    let text = problems.to_string();
    for expected in [
        "judges: must list at least one judge model",
        "tutors[3].temperature: must lie in [0, 1], got 1.5",
        "tutors[3].model: unknown model no-such-model",
        "scenarios[8]: unknown seed NO-SUCH-SCENARIO",
        "repetitions: plans 36 runs, more than the limit of 10",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    assert!(
        harness
            .store
            .snapshot()
            .iter()
            .all(|i| !i.key.pk.starts_with("MANIFEST") && !i.key.pk.starts_with("RUN")),
        "nothing was planned"
    );
    let mut empty = default_request();
    empty.scenarios.clear();
    empty.tutors.clear();
    let PlanError::Invalid(problems) = plan(&harness.ports, &empty).await.unwrap_err() else {
        panic!()
    };
    assert!(
        problems.0.iter().any(|p| p.field == "scenarios")
            && problems.0.iter().any(|p| p.field == "tutors")
    );
}

#[tokio::test]
async fn a_student_model_that_is_also_a_tutor_is_refused() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.student.as_mut().unwrap().model = model(SOCRATIC_TUTOR);
    let PlanError::Invalid(problems) = plan(&harness.ports, &request).await.unwrap_err() else {
        panic!()
    };
    assert!(
        problems.0.iter().any(|p| p.field == "student.model"),
        "{problems}"
    );
}

#[tokio::test]
async fn a_judge_that_is_also_a_tutor_is_refused_unless_allowed() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.judges.push(ModelConfig {
        model: model(LEAKY_TUTOR),
        temperature: 0.0,
    });
    let PlanError::Invalid(problems) = plan(&harness.ports, &request).await.unwrap_err() else {
        panic!()
    };
    let problem = problems
        .0
        .iter()
        .find(|p| p.field == "judges[1]")
        .unwrap_or_else(|| panic!("{problems}"));
    assert!(
        problem.message.contains(LEAKY_TUTOR) && problem.message.contains("allow_self_judging"),
        "{problem:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_self_judging_tutor_is_flagged_and_no_judge_sees_a_tutors_name() {
    let (recording, harness) = Recording::harness().await;
    let mut request = default_request();
    request.scenarios.truncate(2);
    request.judges.push(ModelConfig {
        model: model(LEAKY_TUTOR),
        temperature: 0.0,
    });
    request.allow_self_judging = true;
    let runner = harness.runner(4, fast_config());
    let summary = runner.run_manifest(&request).await.unwrap();
    assert_eq!(summary.self_judging, [model(LEAKY_TUTOR)]);
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(
        text.contains("SELF-JUDGED") && text.contains(LEAKY_TUTOR),
        "{text}"
    );

    let requests = recording.requests.lock().unwrap();
    let judge_requests: Vec<_> = requests.iter().filter(|r| r.role == Role::Judge).collect();
    assert!(!judge_requests.is_empty());
    for request in judge_requests {
        let text = serde_json::to_string(&(&request.system, &request.messages)).unwrap();
        for tutor in [SOCRATIC_TUTOR, LEAKY_TUTOR, LECTURER_TUTOR] {
            assert!(
                !text.contains(tutor),
                "a judge's transcript names the tutor {tutor}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_students_need_no_student_model() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.student = None;
    request.scenarios.truncate(3);
    let summary = harness
        .runner(2, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    assert_eq!(summary.leaderboard[0].model.as_str(), SOCRATIC_TUTOR);
    let row = &summary.leaderboard[0];
    assert!(
        !row.usage.contains_key(&Role::Student),
        "scripted replies cost nothing"
    );
    let _ = leaderboard(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_judges_are_averaged_and_their_agreement_reported() {
    use socratic_sim::simulated::{JUDGE, STRICT_JUDGE};
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.judges = vec![
        ModelConfig {
            model: model(JUDGE),
            temperature: 0.0,
        },
        ModelConfig {
            model: model(STRICT_JUDGE),
            temperature: 0.0,
        },
    ];
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    let order: Vec<&str> = summary
        .leaderboard
        .iter()
        .map(|r| r.model.as_str())
        .collect();
    assert_eq!(order, [SOCRATIC_TUTOR, LEAKY_TUTOR, LECTURER_TUTOR]);
    assert_eq!(summary.judge_agreement.len(), 4, "one entry per dimension");
    for (dimension, agreement) in &summary.judge_agreement {
        assert_eq!(agreement.units, 72, "{dimension}: every turn rated twice");
        let alpha = agreement.krippendorff_alpha.unwrap();
        let kappa = agreement.weighted_kappa.expect("two judges give a kappa");
        let (low, high) = agreement
            .alpha_ci
            .expect("eight scenarios give an interval");
        assert!(low <= alpha && alpha <= high, "{dimension}: {agreement:?}");
        let (low, high) = agreement
            .kappa_ci
            .expect("eight scenarios give an interval");
        assert!(low <= kappa && kappa <= high, "{dimension}: {agreement:?}");
        if dimension == "persona_adaptation" {
            assert!(
                alpha < 1.0 && kappa < 1.0,
                "the strict judge disagrees on persona fit: {agreement:?}"
            );
        } else {
            assert!(
                (alpha - 1.0).abs() < 1e-9,
                "{dimension}: identical scores agree perfectly: {alpha}"
            );
        }
    }
    let run = harness
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(summary.manifest), 1, None)
        .await
        .unwrap()
        .items
        .remove(0);
    let record = harness
        .ports
        .repository
        .run_record(&run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.judgments.len(), 6, "three turns × two judges");
    assert!(summary.comparisons.iter().all(|c| c.p_adjusted < 0.05));

    // Curation read only the runs' summaries, whose judges' ratings give the same agreement
    // as every judgment read afresh.
    let repo = &harness.ports.repository;
    let (manifest, rubric, records) = stored(&harness.ports, &summary.manifest).await;
    let mut digests = Vec::new();
    for record in &records {
        let ratings = record.summary.as_ref().unwrap().judge_ratings.as_ref();
        assert_eq!(ratings.unwrap().len(), 4, "every dimension rated twice");
        digests.push(RunDigest::of(record, &rubric));
    }
    let afresh = summarize_digests(&manifest, &rubric, digests, summary.computed_at);
    assert_eq!(afresh.judge_agreement, summary.judge_agreement);

    // Summaries written before the ratings were recorded have their judgments read instead.
    for record in &records {
        let mut older = record.summary.clone().unwrap();
        older.judge_ratings = None;
        repo.overwrite(&older).await.unwrap();
    }
    socratic_core::pipeline::curate(&harness.ports, &records[0].run.value.id)
        .await
        .unwrap();
    let again: ManifestSummary = repo
        .get(&keys::manifest_summary(&manifest.id))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(again.judge_agreement, summary.judge_agreement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_failed_the_hardest_scenarios_does_not_rank_above_an_equal_one_that_finished_them()
 {
    let harness = Harness::new(Options::default()).await;
    let finished = run_default(&harness).await;
    let (mut manifest, rubric, records) = stored(&harness.ports, &finished.manifest).await;
    let mut digests: Vec<RunDigest> = records
        .iter()
        .map(|record| RunDigest::of(record, &rubric))
        .collect();

    // A twin of the best tutor, with the same scores, except that its runs on the three
    // scenarios where that tutor scored lowest failed; and a model whose runs all failed.
    let best = model(SOCRATIC_TUTOR);
    let twin = model("sim-twin");
    let blank = model("sim-blank");
    let originals: Vec<RunDigest> = digests
        .iter()
        .filter(|d| d.tutor == best)
        .cloned()
        .collect();
    let mut by_score: Vec<(f64, ScenarioId)> = originals
        .iter()
        .map(|d| {
            (
                d.summary.as_ref().unwrap().overall.unwrap(),
                d.scenario.clone(),
            )
        })
        .collect();
    by_score.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut hardest: Vec<ScenarioId> = by_score.iter().take(3).map(|(_, s)| s.clone()).collect();
    hardest.sort();
    for original in &originals {
        let mut copy = original.clone();
        copy.tutor = twin.clone();
        if let Some(summary) = copy.summary.as_mut() {
            summary.tutor = twin.clone();
        }
        if hardest.contains(&copy.scenario) {
            copy.status = RunStatus::Failed;
            copy.summary = None;
        }
        digests.push(copy);
        let mut failed = original.clone();
        failed.tutor = blank.clone();
        failed.status = RunStatus::Failed;
        failed.summary = None;
        digests.push(failed);
    }
    for id in [&twin, &blank] {
        manifest.request.tutors.push(ModelConfig {
            model: id.clone(),
            temperature: 0.7,
        });
    }
    let summary = summarize_digests(&manifest, &rubric, digests, finished.computed_at);

    let row = |id: &socratic_core::id::ModelId| {
        summary
            .leaderboard
            .iter()
            .position(|r| &r.model == id)
            .map(|i| (i, &summary.leaderboard[i]))
            .unwrap()
    };
    let (best_at, best_row) = row(&best);
    let (twin_at, twin_row) = row(&twin);
    assert!(
        best_at < twin_at,
        "{}",
        socratic_core::report::leaderboard_text(&summary)
    );
    assert!(twin_row.rank_group >= best_row.rank_group);
    // Both are scored on the five scenarios every ranked model scored, where they are equal.
    let (best_overall, twin_overall) = (best_row.overall.unwrap(), twin_row.overall.unwrap());
    assert_eq!((best_overall.n, twin_overall.n), (5, 5));
    assert_eq!(best_overall.mean, twin_overall.mean);
    assert_eq!(
        (twin_row.scenarios_scored, twin_row.scenarios_planned),
        (5, 8)
    );
    assert_eq!(twin_row.failed_scenarios, hardest);
    assert!(twin_row.unscored_scenarios.is_empty());

    let (blank_at, blank_row) = row(&blank);
    assert_eq!(
        blank_at,
        summary.leaderboard.len() - 1,
        "unscored models come last"
    );
    assert_eq!(
        blank_row.rank_group, None,
        "a model with no scores is unranked"
    );
    assert_eq!(blank_row.failed_scenarios.len(), 8);
    assert!(
        summary
            .comparisons
            .iter()
            .all(|c| c.a != blank && c.b != blank),
        "an unranked model is compared with nothing"
    );
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(
        text.contains("unranked")
            && text.contains("COVERAGE")
            && text.contains("sim-twin scored 5/8"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_design_that_cannot_separate_models_says_so_and_how_many_scenarios_it_needs() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.scenarios.truncate(2);
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    // Three pairs over two scenarios: the smallest p is 2/4, 1.5 after Holm. Seven scenarios
    // make 3 × 2/128 = 0.047 < 0.05.
    assert_eq!(summary.scenarios_needed, Some(7));
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(text.contains("CANNOT SEPARATE"), "{text}");
    assert!(text.contains("about 7 scenarios"), "{text}");
    // Two scenarios still give intervals and a power figure, each interval marked (few
    // scenarios, or no spread where a tutor scored both alike).
    assert!(summary.power.unwrap().detectable.is_some());
    for row in &summary.leaderboard {
        let overall = row.overall.unwrap();
        assert!(
            overall.interval().is_some() && overall.caution.is_some(),
            "{overall:?}"
        );
    }
    // The default eight scenarios can separate three models.
    let full = harness
        .runner(4, fast_config())
        .run_manifest(&default_request())
        .await
        .unwrap();
    assert_eq!(full.scenarios_needed, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_five_turns_no_tutor_is_given_the_answer_key_and_success_and_telling_are_measured() {
    use socratic_core::answer_key::states_answer_key;
    let (recording, harness) = Recording::harness().await;
    let mut request = default_request();
    request.turns = 5;
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();

    // System-side leaks: none. Nothing the pipeline gives a tutor besides the dialogue itself
    // states a goal or the key conflict, by six-word sequences of normalised text.
    let scenarios = Defaults::load().unwrap().scenarios;
    let requests = recording.requests.lock().unwrap();
    let tutor_requests: Vec<_> = requests.iter().filter(|r| r.role == Role::Tutor).collect();
    assert_eq!(tutor_requests.len(), 3 * 8 * 5);
    for request in &tutor_requests {
        let system: String = request.system.iter().map(|p| p.text.as_str()).collect();
        let first = request.messages.first().map_or("", |m| m.text.as_str());
        for scenario in &scenarios {
            assert!(
                !states_answer_key(&system, scenario) && !states_answer_key(first, scenario),
                "a tutor request carries the answer key of {}",
                scenario.id
            );
        }
    }

    // Goals stated in the dialogue: measured. The simulated student states a goal on its
    // second probe, which only the Socratic tutor gives it. Telling is the judges' flag: the
    // leaky tutor and the lecturer tell, in their own words, before the student gets there.
    let rate = |id: &str| {
        let row = summary
            .leaderboard
            .iter()
            .find(|r| r.model.as_str() == id)
            .unwrap();
        (row.success_rate, row.telling_rate)
    };
    assert_eq!(rate(SOCRATIC_TUTOR), (Some(1.0), Some(0.0)));
    assert_eq!(rate(LEAKY_TUTOR), (Some(0.0), Some(1.0)));
    assert_eq!(rate(LECTURER_TUTOR), (Some(0.0), Some(1.0)));
    let csv = socratic_core::report::leaderboard_csv(&summary);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("success_rate,telling_rate,telling_detector,detectors_kappa"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|row| row.contains(",judges,")),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_an_earlier_release_left_judged_is_curated_by_the_curator() {
    use socratic_core::store::StoreExt;
    let harness = Harness::new(Options::default()).await;
    let summary = run_default(&harness).await;
    let repo = &harness.ports.repository;
    let run = repo
        .list_runs(&RunFilter::Manifest(summary.manifest), 1, None)
        .await
        .unwrap()
        .items
        .remove(0);
    let curated = repo.run_record(&run.id).await.unwrap().unwrap();
    let expected = curated.summary.clone().unwrap();
    // As an earlier release left it: judged, without a summary.
    let mut judged = curated.run.value.clone();
    judged.status = RunStatus::Judged;
    repo.update(&judged, curated.run.version).await.unwrap();
    harness
        .store
        .delete(&keys::run_summary(&run.id))
        .await
        .unwrap();

    socratic_core::pipeline::curate(&harness.ports, &run.id)
        .await
        .unwrap();
    let record = repo.run_record(&run.id).await.unwrap().unwrap();
    assert_eq!(record.run.value.status, RunStatus::Curated);
    let mut again = record.summary.unwrap();
    again.computed_at = expected.computed_at;
    assert_eq!(again, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rubric_without_the_reveals_flag_measures_telling_verbatim_and_says_so() {
    let harness = Harness::new(Options::default()).await;
    let mut rubric = Defaults::load().unwrap().rubric;
    rubric.id = socratic_core::id::RubricId::new("no-reveals-v1").unwrap();
    rubric.flags.clear();
    harness.ports.repository.put_catalog(&rubric).await.unwrap();
    let mut request = default_request();
    request.rubric = rubric.id.clone();
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    assert_eq!(summary.telling_detector, TellingDetector::Verbatim);
    assert_eq!(summary.telling_agreement, None, "no judge flags a turn");
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(
        text.contains("by the verbatim answer-key detector"),
        "{text}"
    );
    let csv = socratic_core::report::leaderboard_csv(&summary);
    assert!(
        csv.lines().skip(1).all(|row| row.contains(",verbatim,")),
        "{csv}"
    );
    // The simulated tutors tell in their own words: the verbatim detector sees none of it.
    assert!(
        summary
            .leaderboard
            .iter()
            .all(|r| r.telling_rate == Some(0.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_gives_no_interval_and_no_power_figure_and_says_why() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.scenarios.truncate(1);
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    for row in &summary.leaderboard {
        assert_eq!(row.overall.unwrap().interval(), None, "{}", row.model);
    }
    let power = summary.power.unwrap();
    assert_eq!(power.detectable, None);
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(
        text.contains("n/a: a single scenario gives no interval"),
        "{text}"
    );
    let said = socratic_core::report::power_text(&power, "observed");
    assert!(
        said.contains("no figure: 1 scenario(s) give no interval"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_scenarios_give_intervals_without_a_caution() {
    let harness = Harness::new(Options::default()).await;
    let mut request = default_request();
    request.scenarios = Defaults::load()
        .unwrap()
        .scenarios
        .iter()
        .take(16)
        .map(|s| s.id.clone())
        .collect();
    let summary = harness
        .runner(4, fast_config())
        .run_manifest(&request)
        .await
        .unwrap();
    for row in &summary.leaderboard {
        let overall = row.overall.unwrap();
        assert_eq!(overall.n, 16);
        assert!(overall.interval().is_some());
        // The simulated tutors score the same on many scenarios, but not on all of them.
        assert_eq!(overall.caution, None, "{}: {overall:?}", row.model);
    }
    let text = socratic_core::report::leaderboard_text(&summary);
    assert!(!text.contains("fewer than 16 scenarios"), "{text}");
}
