//! What a results directory costs on disk: at most 20 KB a 3-turn, single-judge run, with
//! nothing left beside the database when the benchmark ends (docs/performance.md measures it
//! at 1,008 runs).

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use socratic_local::Overrides;
use support::{options, run};

mod support;

/// Bytes of disk the files under `dir` take (blocks, not lengths), each hard-linked file once.
fn disk(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            } else if seen.insert(meta.ino()) {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_takes_at_most_20_kb_of_disk_and_no_log_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let finished = run(socratic_local::BenchmarkOptions {
        overrides: Overrides {
            repetitions: Some(20),
            ..Overrides::default()
        },
        ..options(&out)
    })
    .await;
    let runs = u64::from(finished.summary.runs);
    assert_eq!(runs, 480);
    let per_run = disk(&out) / runs;
    assert!(per_run <= 20_000, "{per_run} bytes of disk per run");
    for left in ["raw", "cache", "curated/runs"] {
        assert!(!out.join(left).exists(), "{left} is in the database now");
    }
    let log = out.join(format!("{}-wal", socratic_sqlite::DATABASE_FILE));
    assert_eq!(
        std::fs::metadata(&log).map_or(0, |m| m.len()),
        0,
        "the log was left"
    );
}
