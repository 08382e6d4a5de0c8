//! Human calibration end to end: the labelled fixture of the offline benchmark is imported
//! through the library and the API, bad label files are refused whole, and the agreement
//! figures are exact where the answer is known.

#![allow(clippy::unwrap_used)]

mod support;

use http::{Method, Request, StatusCode};
use serde_json::Value;
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::calibration::{
    Calibration, CalibrationError, HumanAgreement, import_labels, stored_calibration,
};
use socratic_core::clock::Timestamp;
use socratic_core::id::ManifestId;
use socratic_core::repository::RunFilter;
use support::{Harness, Options, default_request, fast_config};

const FIXTURE: &str = include_str!("fixtures/human-labels.csv");
const KEY: &str = "test-key-0123456789";

/// The default offline benchmark, finished.
async fn benchmark() -> (Harness, ManifestId) {
    let harness = Harness::new(Options::default()).await;
    let runner = harness.runner(4, fast_config());
    let summary = runner.run_manifest(&default_request()).await.unwrap();
    (harness, summary.manifest)
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_764_000_000_000)
}

fn row<'a>(calibration: &'a Calibration, dimension: &str) -> &'a HumanAgreement {
    calibration
        .agreement
        .iter()
        .find(|a| a.judge.as_str() == "sim-judge" && a.dimension == dimension)
        .unwrap()
}

/// A label file that gives every scored (turn, dimension) of the manifest the score `f` makes
/// of the judge's.
async fn labels_from_judge(harness: &Harness, id: &ManifestId, f: impl Fn(u8) -> u8) -> String {
    let repo = &harness.ports.repository;
    let runs = repo
        .list_runs(&RunFilter::Manifest(*id), 100, None)
        .await
        .unwrap()
        .items;
    let mut csv = String::from("run_id,turn,dimension,score\n");
    for run in runs {
        let record = repo.run_record(&run.id).await.unwrap().unwrap();
        for judgment in &record.judgments {
            for (dimension, score) in &judgment.verdict().unwrap().scores {
                csv.push_str(&format!(
                    "{},{},{dimension},{}\n",
                    run.id,
                    judgment.turn,
                    f(*score)
                ));
            }
        }
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_imports_once_and_reports_every_dimension() {
    let (harness, id) = benchmark().await;
    let repo = &harness.ports.repository;
    let calibration = import_labels(repo, &id, FIXTURE, now()).await.unwrap();
    assert!(calibration.turns >= 30, "{} turns", calibration.turns);
    assert_eq!(calibration.labels, 192);
    assert_eq!(calibration.runs, 12);
    assert_eq!(calibration.raters, ["a", "b"]);
    // One judge × four dimensions, in rubric order.
    let dimensions: Vec<&str> = calibration
        .agreement
        .iter()
        .map(|a| a.dimension.as_str())
        .collect();
    assert_eq!(
        dimensions,
        [
            "pedagogical_stance",
            "conceptual_fidelity",
            "persona_adaptation",
            "dialectical_progress"
        ]
    );
    for a in &calibration.agreement {
        assert_eq!(a.turns, 36, "{}", a.dimension);
        assert_eq!(a.pairs, 48, "36 turns by rater a, 12 of them by b too");
        assert_eq!(a.unscored_turns, 0);
        let (low, high) = a.kappa_ci.unwrap();
        let kappa = a.weighted_kappa.unwrap();
        assert!(low <= kappa && kappa <= high, "{a:?}");
        assert!(a.alpha_ci.is_some() && a.bias_ci.is_some(), "{a:?}");
    }
    // The heuristic judge reads a question's form, not its sense: it agrees with people on
    // the stance, and scores the garbled questions of later turns far above them.
    assert!(
        row(&calibration, "pedagogical_stance")
            .weighted_kappa
            .unwrap()
            > 0.9
    );
    let fidelity = row(&calibration, "conceptual_fidelity");
    assert!(fidelity.bias_ci.unwrap().0 > 1.0, "{fidelity:?}");

    // Importing the same file again changes nothing.
    let again = import_labels(repo, &id, FIXTURE, now()).await.unwrap();
    assert_eq!(again, calibration);
    assert_eq!(
        stored_calibration(repo, &id).await.unwrap(),
        Some(calibration)
    );

    // A corrected label replaces the one it names, and only that one.
    let correction = "run_id,turn,dimension,score,rater\n\
                      sim-lecturer/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,2,a\n";
    let corrected = import_labels(repo, &id, correction, now()).await.unwrap();
    assert_eq!(corrected.labels, 192);
    let stance = row(&corrected, "pedagogical_stance");
    let before = row(&again, "pedagogical_stance");
    assert!(
        (stance.mean_bias.unwrap() - (before.mean_bias.unwrap() - 1.0 / 48.0)).abs() < 1e-12,
        "one human score rose by 1 of 48 pairs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_equal_to_the_judge_agree_perfectly_and_a_shift_is_its_bias() {
    let (harness, id) = benchmark().await;
    let repo = &harness.ports.repository;
    let same = labels_from_judge(&harness, &id, |s| s).await;
    let calibration = import_labels(repo, &id, &same, now()).await.unwrap();
    assert_eq!(calibration.turns, 72, "every turn of the 24 runs");
    let mut defined = 0;
    for a in &calibration.agreement {
        assert_eq!(a.mean_bias, Some(0.0), "{a:?}");
        assert_eq!(a.bias_ci, Some((0.0, 0.0)), "{a:?}");
        // Undefined only where the judge never varied (chance agreement is then perfect).
        if let (Some(kappa), Some(alpha)) = (a.weighted_kappa, a.krippendorff_alpha) {
            assert!((kappa - 1.0).abs() < 1e-12, "{a:?}");
            assert!((alpha - 1.0).abs() < 1e-12, "{a:?}");
            defined += 1;
        }
    }
    assert_eq!(defined, 4, "the judge's scores vary on every dimension");

    // People one point stricter wherever the judge gave more than 1 (these labels replace the
    // ones above, slot for slot): the bias is the share of pairs that were shifted.
    let stricter = labels_from_judge(&harness, &id, |s| s.saturating_sub(1).max(1)).await;
    let calibration = import_labels(repo, &id, &stricter, now()).await.unwrap();
    for a in &calibration.agreement {
        let above_one = stricter
            .lines()
            .skip(1)
            .filter(|l| l.contains(&format!(",{},", a.dimension)))
            .count();
        let judge_scores: Vec<u8> = same
            .lines()
            .skip(1)
            .filter(|l| l.contains(&format!(",{},", a.dimension)))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(judge_scores.len(), above_one);
        let shifted = judge_scores.iter().filter(|s| **s > 1).count();
        let expected = shifted as f64 / judge_scores.len() as f64;
        assert!(
            (a.mean_bias.unwrap() - expected).abs() < 1e-12,
            "{}: bias {:?}, expected {expected}",
            a.dimension,
            a.mean_bias
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_label_file_is_refused_whole_with_every_problem_listed() {
    let (harness, id) = benchmark().await;
    let repo = &harness.ports.repository;
    let bad = "run_id,turn,dimension,score\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,4\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,4,pedagogical_stance,5\n\
               sim-nobody/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,5\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,1,kindness,5\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,2,pedagogical_stance,9\n\
               01ARZ3NDEKTSV4RRFFQ69G5FAV,1,pedagogical_stance,3\n\
               not-a-run,1,pedagogical_stance,3\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,5\n";
    let Err(CalibrationError::Labels(problems)) = import_labels(repo, &id, bad, now()).await else {
        panic!("the file is refused");
    };
    let lines: Vec<(&str, &str)> = problems
        .0
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    let expect = [
        ("line 3", "has no turn 4"),
        ("line 4", "has no run sim-nobody/EL-ETH-UTIL-DEON-01/1"),
        ("line 5", "dimension \"kindness\" is not in rubric ase-v1"),
        (
            "line 6",
            "score 9 is outside pedagogical_stance's scale 1–5",
        ),
        ("line 7", "is not a run of manifest"),
        ("line 8", "neither a run id nor tutor/scenario/repetition"),
        ("line 9", "repeats line 2"),
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for ((field, message), (line, fragment)) in lines.iter().zip(expect) {
        assert_eq!(*field, line);
        assert!(message.contains(fragment), "{field}: {message}");
    }
    // Nothing was written, not even the good first row.
    assert_eq!(stored_calibration(repo, &id).await.unwrap(), None);

    let Err(CalibrationError::Labels(problems)) =
        import_labels(repo, &id, "run,turn,score\n", now()).await
    else {
        panic!("a file without the columns is refused");
    };
    assert!(
        problems.0[0].message.contains("lacks run_id, dimension"),
        "{problems}"
    );
}

async fn call(api: &AdminApi, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", KEY)
        .header("content-type", "text/csv")
        .body(body.as_bytes().to_vec())
        .unwrap();
    let response = api.handle(request).await;
    let status = response.status();
    (status, serde_json::from_slice(response.body()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_imports_labels_and_serves_the_calibration() {
    let (harness, id) = benchmark().await;
    let api = AdminApi::new(harness.ports.clone(), ApiConfig::new(KEY));
    let calibration_uri = format!("/manifests/{id}/calibration");
    let (status, body) = call(&api, Method::GET, &calibration_uri, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let labels_uri = format!("/manifests/{id}/labels");
    let (status, body) = call(&api, Method::POST, &labels_uri, FIXTURE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["turns"], 36);
    assert_eq!(body["agreement"].as_array().unwrap().len(), 4);
    let (status, served) = call(&api, Method::GET, &calibration_uri, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, body);

    let bad = "run_id,turn,dimension,score\nnot-a-run,1,pedagogical_stance,3\n\
               sim-socratic/EL-ETH-UTIL-DEON-01/1,1,kindness,4\n";
    let (status, body) = call(&api, Method::POST, &labels_uri, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_labels");
    assert_eq!(
        body["error"]["problems"].as_array().unwrap().len(),
        2,
        "{body}"
    );

    let unknown = "/manifests/01ARZ3NDEKTSV4RRFFQ69G5FAV/labels";
    let (status, _) = call(&api, Method::POST, unknown, FIXTURE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&api, Method::DELETE, &labels_uri, "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
