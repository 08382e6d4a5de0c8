//! A benchmark through the library, as a service embedding it runs one: open, estimate, run,
//! resume, re-judge, cap and interrupt, on the simulated models in a temporary results
//! directory.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use socratic_core::id::ModelId;
use socratic_core::repository::RunFilter;
use socratic_local::history::History;
use socratic_local::{Benchmark, Error, Outcome, Overrides, Planned, Progress, Rejudge};
use support::{finished, options};

mod support;

/// Every event a benchmark told.
#[derive(Default)]
struct Recorded {
    planned: Mutex<Vec<Planned>>,
    advanced: Mutex<Vec<(u64, u64)>>,
}

impl Progress for Recorded {
    fn planned(&self, planned: &Planned) {
        self.planned.lock().unwrap().push(planned.clone());
    }

    fn advanced(&self, finished: u64, total: u64, _spent: f64, _cap: f64) {
        self.advanced.lock().unwrap().push((finished, total));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_benchmark_ranks_the_tutors_writes_its_files_and_is_reused_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let benchmark = Benchmark::open(options(&out)).await.unwrap();
    let estimate = benchmark.estimate().await.unwrap();
    assert_eq!(estimate.runs, 24, "8 scenarios × 3 tutors");
    // Before any benchmark finished here, power assumes the stated default variance.
    let before = benchmark.power().await.unwrap();
    assert_eq!(before.variance_from, None);
    assert_eq!(before.power.pairs, 3);
    assert!(before.power.detectable.unwrap() > 0.5, "{before:?}");
    let progress = Recorded::default();
    let first = finished(benchmark.run(&progress).await.unwrap());
    let ranked: Vec<&str> = first
        .summary
        .leaderboard
        .iter()
        .map(|r| r.model.as_str())
        .collect();
    assert_eq!(ranked, ["sim-socratic", "sim-leaky", "sim-lecturer"]);
    assert_eq!((first.summary.runs, first.summary.failed_runs), (24, 0));
    // 24 runs × 3 turns of tutor and judge, and 2 student turns each. A request made twice
    // (the leaky tutor opens as the Socratic one does) is paid for once.
    assert_eq!(first.answers, 24 * (3 + 3 + 2));
    assert!(first.called_now > 0 && first.called_now < first.answers);
    let files = first.files.clone().unwrap();
    for file in [&files.report, &files.leaderboard, &files.summary] {
        assert!(file.is_file(), "{}", file.display());
    }
    let planned = progress.planned.lock().unwrap().clone();
    assert_eq!(planned.len(), 1);
    assert_eq!((planned[0].runs, planned[0].resumed), (24, None));
    drop(benchmark);

    // The same benchmark again: planned already, every run finished, nothing called.
    let again = Benchmark::open(options(&out)).await.unwrap();
    let progress = Recorded::default();
    let second = finished(again.run(&progress).await.unwrap());
    let resumed = progress.planned.lock().unwrap()[0].resumed.unwrap();
    assert_eq!(resumed.finished, 24);
    assert_eq!(
        resumed.earlier.calls, first.called_now,
        "the ledger has every paid call"
    );
    assert_eq!(second.summary.manifest, first.summary.manifest);
    assert_eq!(second.called_now, 0);
    // Now power takes the variance this benchmark observed.
    let after = again.power().await.unwrap();
    assert_eq!(after.variance_from, Some(first.summary.manifest));
    let observed = first.summary.design_variance.unwrap();
    assert_eq!(
        after.power.difference_sd,
        observed.difference_sd_at(after.power.repetitions)
    );
    assert_ne!(after.power.difference_sd, before.power.difference_sd);
}

#[tokio::test]
async fn an_estimate_in_memory_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut options = options(&out);
    options.overrides.repetitions = Some(3);
    let benchmark = Benchmark::in_memory(options).await.unwrap();
    let estimate = benchmark.estimate().await.unwrap();
    assert_eq!(estimate.runs, 72);
    assert!(estimate.worst_cost_usd >= estimate.cost_usd && estimate.cost_usd > 0.0);
    assert!(!out.exists(), "nothing is written");
}

#[tokio::test]
async fn contradicting_options_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut rejudge = options(&out);
    rejudge.rejudge = Some(Rejudge::default());
    let mut negative = options(&out);
    negative.max_cost = Some(-1.0);
    let mut no_manifest = options(&out);
    no_manifest.manifest = Some(dir.path().join("missing.json"));
    for (options, expected) in [
        (rejudge, "needs at least one --judge"),
        (negative, "--max-cost must be a number of dollars >= 0"),
        (no_manifest, "missing.json"),
    ] {
        let error = Benchmark::open(options).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_stops_the_benchmark_and_is_never_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&dir.path().join("results"));
    options.max_cost = Some(0.002);
    options.concurrency = 4;
    let benchmark = Benchmark::open(options).await.unwrap();
    let outcome = finished(benchmark.run(&()).await.unwrap());
    let summary = &outcome.summary;
    assert!(summary.stopped_by_budget);
    assert!(summary.skipped_runs > 0 && summary.failed_runs == 0);
    assert_eq!(
        outcome.skipped.len(),
        summary.skipped_runs.min(100) as usize
    );
    assert!(outcome.spent_usd <= 0.002 + 1e-12, "{}", outcome.spent_usd);
    assert_eq!(outcome.cap_usd, 0.002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejudge_scores_the_same_dialogues_with_only_the_new_judge() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let source = support::run(options(&out)).await;
    let mut rejudge = options(&out);
    rejudge.overrides = Overrides {
        judges: vec![ModelId::new("sim-judge-strict").unwrap()],
        ..Overrides::default()
    };
    rejudge.rejudge = Some(Rejudge::default());
    let benchmark = Benchmark::open(rejudge).await.unwrap();
    let from = benchmark.rejudging().unwrap().clone();
    assert_eq!(from.manifest, source.summary.manifest);
    assert_eq!((from.dialogues, from.runs), (24, 24));
    let rejudged = finished(benchmark.run(&()).await.unwrap());
    assert_eq!(rejudged.summary.rejudge_of, Some(source.summary.manifest));
    // At most one strict judgment per tutor turn is paid for.
    assert!(rejudged.called_now > 0 && rejudged.called_now <= 24 * 3);
    assert_eq!(rejudged.summary.runs, 24);
    let history = History::open(&out).unwrap();
    assert_eq!(history.manifests().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_benchmark_leaves_a_note_and_resumes_to_the_same_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut slow = options(&out);
    slow.simulated_latency = std::time::Duration::from_millis(20);
    slow.concurrency = 2;
    let benchmark = Benchmark::open(slow.clone()).await.unwrap();
    let stop = tokio::time::sleep(std::time::Duration::from_millis(300));
    let Outcome::Interrupted(stopped) = benchmark.run_until(&(), stop).await.unwrap() else {
        panic!("finished before the stop");
    };
    assert_eq!(stopped.runs, 24);
    assert!(stopped.finished < 24);
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stopped.note.unwrap()).unwrap()).unwrap();
    assert_eq!(note["interrupted"], true);
    drop(benchmark);

    let resumed = finished(Benchmark::open(slow).await.unwrap().run(&()).await.unwrap());
    assert_eq!(resumed.summary.manifest, stopped.manifest);
    assert_eq!((resumed.summary.runs, resumed.summary.failed_runs), (24, 0));
    let repository = History::open(&out).unwrap().repository().clone();
    let runs = repository
        .list_runs(&RunFilter::Manifest(stopped.manifest), 100, None)
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 24, "no run planned twice");
}

#[tokio::test]
async fn a_second_benchmark_in_a_held_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let _held = Benchmark::open(options(&out)).await.unwrap();
    let refused = Benchmark::open(options(&out)).await.unwrap_err();
    assert!(matches!(refused, Error::Results(_)), "{refused}");
    assert!(refused.to_string().contains("in use"), "{refused}");
}
