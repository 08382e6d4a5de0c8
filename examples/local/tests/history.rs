//! The results directory as a history: `list`, `show` and `compare` read what benchmarks
//! left in `socratic.db`; a second process on a busy directory, and a corrupt database, are
//! refused with messages that name them.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::process::Command;

mod support;

use support::{path, socratic, stderr, stdout};

/// The manifest ids `list` prints, newest first.
fn listed_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn list_show_and_compare_read_every_benchmark_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let first = socratic(&["run", "--out", path(&out), "--quiet"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    // A second benchmark in the same directory: the same design with two repetitions. The
    // simulated models are deterministic, so every per-scenario mean is the same: a known
    // difference of zero.
    let second = socratic(&["run", "--out", path(&out), "--quiet", "--repetitions", "2"]).await;
    assert!(second.status.success(), "{}", stderr(&second));

    let listing = socratic(&["list", "--out", path(&out)]).await;
    assert!(listing.status.success(), "{}", stderr(&listing));
    let text = stdout(&listing);
    let ids = listed_ids(&text);
    assert_eq!(ids.len(), 2, "{text}");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(
        rows[0].contains("finished") && rows[0].contains(" 48 "),
        "{text}"
    );
    assert!(
        rows[1].contains("finished") && rows[1].contains(" 24 "),
        "{text}"
    );
    assert!(rows.iter().all(|r| r.contains("sim-socratic")), "{text}");

    let comparison = socratic(&["compare", &ids[1], &ids[0], "--out", path(&out)]).await;
    assert!(comparison.status.success(), "{}", stderr(&comparison));
    let table = stdout(&comparison);
    for model in ["sim-socratic", "sim-leaky", "sim-lecturer"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(model))
            .unwrap_or_else(|| panic!("{model} missing:\n{table}"));
        assert!(row.contains("+0.000") && row.contains(" 8 "), "{row}");
        assert!(row.trim_end().ends_with("1.0000"), "{row}");
    }
    // The same comparison as a page, named B-vs-A: every model, no difference shown, the
    // scenarios listed.
    let page = out
        .join("comparisons")
        .join(format!("{}-vs-{}.html", ids[0], ids[1]));
    assert!(
        table.contains(&format!("comparison: {}", page.display())),
        "{table}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for model in ["sim-socratic", "sim-leaky", "sim-lecturer"] {
        assert!(
            html.contains(&format!("<td>no difference shown</td><td>{model}</td>")),
            "{model}"
        );
    }
    assert!(html.contains("Scenarios that changed most"));
    assert!(
        html.contains("of 24</caption>"),
        "3 models × 8 shared scenarios"
    );

    let run = std::fs::read_dir(out.join("curated").join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run_id = run.file_stem().unwrap().to_str().unwrap().to_owned();
    let shown = socratic(&["show", &run_id, "--out", path(&out)]).await;
    assert!(shown.status.success(), "{}", stderr(&shown));
    let transcript = stdout(&shown);
    assert!(
        transcript.starts_with(&format!("run {run_id}")),
        "{transcript}"
    );
    for expected in [
        "── turn 1 ──",
        "── turn 3 ──",
        "TUTOR:",
        "STUDENT:",
        "judge sim-judge:",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected} missing:\n{transcript}"
        );
    }

    let unknown = socratic(&["show", "01J00000000000000000000000", "--out", path(&out)]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("is not in"),
        "{}",
        stderr(&unknown)
    );
}

#[tokio::test]
async fn a_second_process_on_a_busy_directory_is_refused_and_readers_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let mut running = Command::new(env!("CARGO_BIN_EXE_socratic"))
        .args(["run", "--out", path(&out), "--quiet", "--latency-ms", "200"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lock = out.join("socratic.lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|pid| !pid.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = socratic(&["run", "--out", path(&out), "--quiet"]).await;
    assert_eq!(second.status.code(), Some(2));
    let message = stderr(&second);
    let pid = running.id().unwrap();
    assert!(
        message.contains("in use by another socratic process")
            && message.contains(&format!("pid {pid}"))
            && message.contains(path(&out)),
        "{message}"
    );
    // The running process holds the lock before it has planned its benchmark; wait until it
    // has, then the listing must show it unfinished.
    let mut listing = socratic(&["list", "--out", path(&out)]).await;
    for _ in 0..100 {
        if listing.status.success() && stdout(&listing).contains("unfinished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        listing = socratic(&["list", "--out", path(&out)]).await;
    }
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(
        stdout(&listing).contains("unfinished"),
        "{}",
        stdout(&listing)
    );
    running.start_kill().unwrap();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_database_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    std::fs::create_dir_all(&out).unwrap();
    let db = out.join("socratic.db");
    std::fs::write(&db, vec![0x42; 4096]).unwrap();
    for args in [
        vec!["run", "--out", path(&out), "--quiet"],
        vec!["list", "--out", path(&out)],
    ] {
        let output = socratic(&args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert!(
            message.contains(path(&db)) && message.contains("corrupt"),
            "{args:?}: {message}"
        );
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        vec![0x42; 4096],
        "the file is untouched"
    );
}
