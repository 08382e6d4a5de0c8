//! The binary as a process: what it prints and the status it exits with. A second process on
//! a busy directory and a corrupt database are refused with messages that name them; every
//! subcommand reading or writing files prints its results, or its problems with status 2.
//! (What the subcommands do is tested on the library, in socratic-local/tests.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::process::Command;

mod support;

use support::{path, socratic, stderr, stdout, text};

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

#[tokio::test]
async fn each_subcommand_prints_its_result_or_its_problems_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let run = socratic(&["run", "--out", path(&out), "--quiet"]).await;
    assert!(run.status.success(), "{}", stderr(&run));
    let printed = stdout(&run);
    for expected in [
        "plan: 24 run(s)",
        "sim-socratic",
        "report:",
        "24 runs, 192 model answers",
    ] {
        assert!(
            printed.contains(expected),
            "{expected}:
{printed}"
        );
    }

    let listing = socratic(&["list", "--out", path(&out)]).await;
    assert!(listing.status.success(), "{}", stderr(&listing));
    let id = newest_manifest(&listing);
    assert!(
        stdout(&listing).contains("finished"),
        "{}",
        stdout(&listing)
    );
    let compared = socratic(&["compare", &id, &id, "--out", path(&out)]).await;
    assert!(compared.status.success(), "{}", stderr(&compared));
    assert!(
        stdout(&compared).contains("comparison: "),
        "{}",
        stdout(&compared)
    );
    let report = socratic(&["report", "--out", path(&out)]).await;
    assert!(stdout(&report).contains("report: "), "{}", text(&report));

    let bench = dir.path().join("bench");
    let init = socratic(&["init", path(&bench)]).await;
    assert!(
        stdout(&init).contains("next: socratic check"),
        "{}",
        text(&init)
    );
    let again = socratic(&["init", path(&bench)]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("not empty"), "{}", text(&again));
    let checked = socratic(&["check", path(&bench)]).await;
    assert!(
        stdout(&checked).contains("plans 6 run(s)"),
        "{}",
        text(&checked)
    );
    std::fs::write(bench.join("manifest.json"), "{").unwrap();
    let broken = socratic(&["check", path(&bench)]).await;
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        stderr(&broken).contains("has 1 problem(s)"),
        "{}",
        text(&broken)
    );
    assert!(
        stderr(&broken).contains("manifest.json"),
        "{}",
        text(&broken)
    );

    let nothing = socratic(&["label", "--out", path(&dir.path().join("none"))]).await;
    assert_eq!(nothing.status.code(), Some(2));
    assert!(stderr(&nothing).contains("none"), "{}", text(&nothing));
    let export = dir.path().join("export.csv");
    let unlabelled = socratic(&["label", "--out", path(&out), "--export", path(&export)]).await;
    assert_eq!(unlabelled.status.code(), Some(2));
    assert!(
        stderr(&unlabelled).contains("has no human labels to export"),
        "{}",
        text(&unlabelled)
    );
    assert!(!export.exists());

    let labels = dir.path().join("labels.csv");
    std::fs::write(
        &labels,
        "run_id,turn,dimension,score
sim-nobody/X/1,1,kindness,9
",
    )
    .unwrap();
    let refused = socratic(&["calibrate", "--labels", path(&labels), "--out", path(&out)]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("line 2:"), "{}", text(&refused));
    let unknown = socratic(&["show", "01J00000000000000000000000", "--out", path(&out)]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("is not in"), "{}", text(&unknown));
    let malformed = socratic(&["show", "not-a-run", "--out", path(&out)]).await;
    assert_eq!(malformed.status.code(), Some(2));
    assert!(stderr(&malformed).contains("ULID"), "{}", text(&malformed));
}

/// `list`, `show` and `compare` into a reader that has already gone away, as `| head -1`
/// leaves them: each ends quietly with status 0 instead of panicking on the broken pipe.
#[tokio::test]
async fn a_closed_output_pipe_ends_quietly_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let run = socratic(&["run", "--out", path(&out), "--quiet"]).await;
    assert!(run.status.success(), "{}", stderr(&run));
    let listing = socratic(&["list", "--out", path(&out)]).await;
    let id = newest_manifest(&listing);
    let run_id = first_run(&out).await;

    for args in [
        vec!["list", "--out", path(&out)],
        vec!["show", &run_id, "--out", path(&out)],
        vec!["compare", &id, &id, "--out", path(&out)],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_socratic"))
            .args(&args)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the first line is written.
        drop(child.stdout.take());
        let ended = child.wait_with_output().unwrap();
        assert!(
            ended.status.success(),
            "{args:?}: {:?} {}",
            ended.status,
            stderr(&ended)
        );
        assert_eq!(stderr(&ended), "", "{args:?}");
    }
}

/// The newest manifest's id in `list`'s output: the first word of its first line after the
/// header.
fn newest_manifest(listing: &std::process::Output) -> String {
    stdout(listing)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned()
}

/// The id of a curated run of the results directory `out`.
async fn first_run(out: &std::path::Path) -> String {
    use socratic_core::blob::BlobStoreExt;
    let runs = socratic_sqlite::ResultsBlobs::read(out)
        .unwrap()
        .list_all("curated/runs/")
        .await
        .unwrap();
    let key = runs[0].key.as_str();
    key.trim_start_matches("curated/runs/")
        .trim_end_matches(".json")
        .to_owned()
}
