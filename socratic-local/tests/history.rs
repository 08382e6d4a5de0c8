//! The results directory as a history: every benchmark it holds, one run's record, two
//! benchmarks compared, and the report rendered again.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use socratic_core::blob::BlobStoreExt;
use socratic_core::id::RunId;
use socratic_local::history::History;
use socratic_local::{Error, text};

mod support;

async fn run(out: &Path, repetitions: u32) {
    let mut options = support::options(out);
    options.overrides.repetitions = Some(repetitions);
    support::run(options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_of_the_directory_is_listed_shown_and_compared() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    // The same design twice, the second with two repetitions. The simulated models are
    // deterministic, so every per-scenario mean is the same: a known difference of zero.
    run(&out, 1).await;
    run(&out, 2).await;

    let history = History::open(&out).unwrap();
    let lines = history.manifests().await.unwrap();
    let shown: Vec<(u64, String)> = lines
        .iter()
        .map(|l| (l.manifest.run_count, l.status()))
        .collect();
    assert_eq!(
        shown,
        [(48, "finished".to_owned()), (24, "finished".to_owned())],
        "newest first"
    );
    let table = text::list_table(&lines);
    assert_eq!(table.lines().count(), 3, "{table}");
    let (newest, oldest) = (lines[0].manifest.id, lines[1].manifest.id);
    assert_eq!(history.finished_or(None).await.unwrap(), newest);

    let compared = history.compare(oldest, newest).await.unwrap();
    assert_eq!(compared.comparison.models.len(), 3);
    for model in &compared.comparison.models {
        assert_eq!(model.difference.mean, 0.0, "{}", model.model);
        assert_eq!(model.difference.n, 8);
        assert!((model.p_adjusted - 1.0).abs() < 1e-12);
    }
    assert_eq!(
        compared.page,
        out.join("comparisons")
            .join(format!("{newest}-vs-{oldest}.html"))
    );
    let html = std::fs::read_to_string(&compared.page).unwrap();
    assert!(html.contains("Scenarios that changed most"));
    let table = text::comparison_table(&compared.comparison);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("sim-socratic") && l.contains("+0.000")),
        "{table}"
    );

    let runs = socratic_sqlite::ResultsBlobs::read(&out)
        .unwrap()
        .list_all("curated/runs/")
        .await
        .unwrap();
    let id: RunId = runs[0]
        .key
        .as_str()
        .trim_start_matches("curated/runs/")
        .trim_end_matches(".json")
        .parse()
        .unwrap();
    // The document `show --json` prints is the curated run.
    let document: serde_json::Value =
        serde_json::from_slice(&history.curated_run(&id).await.unwrap()).unwrap();
    assert_eq!(document["run"]["id"], id.to_string());
    let record = history.run(&id).await.unwrap();
    assert_eq!(record.turns.len(), 3);
    assert_eq!(record.judgments.len(), 3);
    let transcript = text::transcript(&record);
    for expected in [
        "── turn 1 ──",
        "── turn 3 ──",
        "TUTOR:",
        "STUDENT:",
        "judge sim-judge:",
    ] {
        assert!(transcript.contains(expected), "{expected}:\n{transcript}");
    }
    let unknown: RunId = "01J00000000000000000000000".parse().unwrap();
    let missing = history.run(&unknown).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing}");
    assert!(missing.to_string().contains("is not in"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_report_is_rendered_again_from_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    run(&out, 1).await;
    let written = std::fs::read_to_string(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::remove_file(out.join("leaderboard.csv")).unwrap();
    let rendered = socratic_local::rerender(&out, None).await.unwrap();
    assert_eq!(rendered.report, out.join("report.html"));
    let again = std::fs::read_to_string(&rendered.report).unwrap();
    assert_eq!(again.len(), written.len(), "the same report, runs and all");
    assert!(out.join("leaderboard.csv").is_file());
}

#[tokio::test]
async fn a_directory_without_a_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let error = History::open(dir.path()).unwrap_err();
    assert!(matches!(error, Error::Results(_)), "{error}");
    assert!(
        error.to_string().contains("holds no socratic database"),
        "{error}"
    );
}
