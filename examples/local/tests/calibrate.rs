//! `socratic calibrate`: human labels of the main job's dialogues are imported into the
//! results directory and each judge is measured against them; a bad file is refused whole.

#![allow(clippy::unwrap_used)]

mod support;

use support::{path, socratic, stderr, stdout};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../socratic-memory/tests/fixtures/human-labels.csv"
);

#[tokio::test]
async fn calibrate_imports_labels_reports_them_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let run = socratic(&["run", "--out", path(&out), "--quiet"]).await;
    assert!(run.status.success(), "{}", stderr(&run));

    let none = socratic(&["calibrate", "--out", path(&out)]).await;
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("has no human labels"),
        "{}",
        stderr(&none)
    );

    let imported = socratic(&["calibrate", "--labels", FIXTURE, "--out", path(&out)]).await;
    assert!(imported.status.success(), "{}", stderr(&imported));
    let table = stdout(&imported);
    assert!(
        table.contains("192 label(s) of 36 turn(s) in 12 run(s); raters: a, b"),
        "{table}"
    );
    for dimension in [
        "pedagogical_stance",
        "conceptual_fidelity",
        "persona_adaptation",
        "dialectical_progress",
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("sim-judge") && l.contains(dimension)),
            "{dimension}:\n{table}"
        );
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("calibration.json")).unwrap())
            .unwrap();
    assert_eq!(written["turns"], 36);

    // Reading the stored labels needs no file, and gives the same table.
    let stored = socratic(&["calibrate", "--out", path(&out)]).await;
    assert!(stored.status.success(), "{}", stderr(&stored));
    assert_eq!(
        stdout(&stored).lines().take(6).collect::<Vec<_>>(),
        table.lines().take(6).collect::<Vec<_>>()
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "run_id,turn,dimension,score\n\
         sim-socratic/EL-ETH-UTIL-DEON-01/1,7,pedagogical_stance,5\n\
         sim-socratic/EL-ETH-UTIL-DEON-01/1,1,kindness,5\n\
         sim-nobody/EL-ETH-UTIL-DEON-01/1,1,pedagogical_stance,5\n",
    )
    .unwrap();
    let refused = socratic(&["calibrate", "--labels", path(&bad), "--out", path(&out)]).await;
    assert_eq!(refused.status.code(), Some(2));
    let message = stderr(&refused);
    assert!(message.contains("has 3 problem(s)"), "{message}");
    for fragment in [
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
    let after = socratic(&["calibrate", "--out", path(&out)]).await;
    assert!(
        stdout(&after).contains("192 label(s)"),
        "{}",
        stdout(&after)
    );
}
