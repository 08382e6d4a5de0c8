//! Human labels of a finished benchmark's dialogues are imported into the results directory
//! and each judge is measured against them; a bad file is refused whole.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use socratic_local::{Error, calibrate, text};

mod support;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../socratic-memory/tests/fixtures/human-labels.csv"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_imported_reported_stored_and_a_bad_file_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    support::run(support::options(&out)).await;

    let none = calibrate(&out, None, None).await.unwrap_err();
    assert!(matches!(none, Error::NotFound(_)), "{none}");
    assert!(none.to_string().contains("has no human labels"), "{none}");

    let imported = calibrate(&out, Some(Path::new(FIXTURE)), None)
        .await
        .unwrap();
    let c = &imported.calibration;
    assert_eq!((c.labels, c.turns, c.runs), (192, 36, 12));
    assert_eq!(c.raters, ["a", "b"]);
    let dimensions: Vec<&str> = c
        .agreement
        .iter()
        .filter(|a| a.judge.as_str() == "sim-judge")
        .map(|a| a.dimension.as_str())
        .collect();
    assert_eq!(dimensions.len(), 4, "{dimensions:?}");
    let table = text::calibration_table(c);
    assert!(
        table.contains("192 label(s) of 36 turn(s) in 12 run(s); raters: a, b"),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.starts_with("sim-judge")).count(),
        4,
        "{table}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&imported.file).unwrap()).unwrap();
    assert_eq!(written["turns"], 36);

    // The stored labels give the same calibration without the file.
    let stored = calibrate(&out, None, None).await.unwrap();
    assert_eq!(stored.calibration, imported.calibration);

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "run_id,turn,dimension,score\n\
         sim-socratic/EL-ETH-UTIL-DEON-01/1,7,pedagogical_stance,5\n\
         sim-socratic/EL-ETH-UTIL-DEON-01/1,1,kindness,5\n\
         sim-nobody/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,5\n",
    )
    .unwrap();
    let refused = calibrate(&out, Some(&bad), None).await.unwrap_err();
    let Error::Labels { path, problems } = &refused else {
        panic!("{refused}");
    };
    assert_eq!(path, &bad);
    assert_eq!(problems.0.len(), 3, "{refused}");
    let message = refused.to_string();
    for fragment in [
        "has 3 problem(s)",
        "line 2:",
        "has no turn 7",
        "line 3:",
        "kindness",
        "line 4:",
        "sim-nobody",
    ] {
        assert!(message.contains(fragment), "{fragment}: {message}");
    }
    // The stored labels are untouched.
    let after = calibrate(&out, None, None).await.unwrap();
    assert_eq!(after.calibration.labels, 192);
}
