//! Kill and resume: a benchmark killed (`SIGKILL`) at random points and started again each time ends
//! with the same summary as a clean run, and calls no model twice except the calls that were
//! in flight at a kill.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use socratic_sqlite::{CallLedger, LedgerTotals, ResultsDir};
use tokio::process::Command;

/// 5 scenarios × 2 tutors × 10 repetitions = 100 runs of 2 turns.
fn manifest(dir: &Path) -> std::path::PathBuf {
    let defaults = socratic_core::defaults::Defaults::load().unwrap();
    let scenarios: Vec<String> = defaults
        .scenarios
        .iter()
        .take(5)
        .map(|s| s.id.to_string())
        .collect();
    let request = json!({
        "tutor_prompt": defaults.tutor_prompt.id, "judge_prompt": defaults.judge_prompt.id,
        "rubric": defaults.rubric.id, "scenarios": scenarios,
        "tutors": [{"model": "sim-socratic"}, {"model": "sim-leaky"}],
        "student": {"model": "sim-student", "prompt": defaults.student_prompt.id},
        "judges": [{"model": "sim-judge", "temperature": 0.0}],
        "turns": 2, "repetitions": 10, "max_tokens": 256, "label": "kill and resume"
    });
    let path = dir.join("manifest.json");
    std::fs::write(&path, request.to_string()).unwrap();
    path
}

/// One worker per lane keeps the order of calls within a lane fixed, so two identical
/// requests are never in flight together and a clean run's call count is exact.
fn command(manifest: &Path, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
    command
        .args(["run", "--manifest"])
        .arg(manifest)
        .arg("--out")
        .arg(out)
        .args(["--latency-ms", "20", "--concurrency", "1", "--quiet"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn finish(manifest: &Path, out: &Path) -> Value {
    let output = command(manifest, out).output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

async fn ledger(out: &Path, summary: &Value) -> LedgerTotals {
    let db = ResultsDir::read(out).unwrap();
    CallLedger::new(&db)
        .totals(summary["manifest"].as_str().unwrap())
        .await
        .unwrap()
}

/// The summary without what differs between any two databases: the manifest's id, wherever
/// it is repeated, a run's id (where a turn is named by it), and when the summary was
/// computed.
fn comparable(mut summary: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(object) => {
                object.remove("manifest");
                object.remove("run");
                object.remove("computed_at");
                object.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut summary);
    summary
}

/// A small deterministic generator, seeded from the clock and printed, so a failure can be
/// replayed by fixing the seed.
fn delays(seed: u64, n: usize) -> Vec<Duration> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Duration::from_millis(100 + state % 2_400)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_killed_five_times_resumes_to_a_clean_runs_summary_without_repeating_paid_calls()
 {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest(dir.path());

    let clean_out = dir.path().join("clean");
    let clean = finish(&manifest, &clean_out).await;
    assert_eq!(clean["runs"], 100);
    let clean_calls = ledger(&clean_out, &clean).await;
    assert_eq!(clean_calls.cut_off, 0);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let out = dir.path().join("killed");
    let mut killed = 0;
    for delay in delays(seed, 5) {
        let mut child = command(&manifest, &out).spawn().unwrap();
        tokio::time::sleep(delay).await;
        if child.try_wait().unwrap().is_none() {
            child.start_kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().await.unwrap();
    }
    assert!(
        killed >= 1,
        "seed {seed}: no kill landed before the benchmark ended"
    );
    let resumed = finish(&manifest, &out).await;
    let calls = ledger(&out, &resumed).await;
    eprintln!("seed {seed}: {killed} kill(s); clean {clean_calls:?}; resumed {calls:?}");

    assert_eq!(
        comparable(resumed),
        comparable(clean),
        "seed {seed}: the resumed summary differs from the clean run's"
    );
    // Every call of the clean run was made; a call whose answer was recorded was never made
    // again, so recorded calls are at most the clean run's. They can be fewer: a kill between
    // an answer's caching and its ledger record leaves the call counted as cut off (charged at
    // its worst case) while the resumed run reuses its cached answer.
    assert!(
        calls.calls >= clean_calls.calls,
        "seed {seed}: {calls:?} vs clean {clean_calls:?}"
    );
    assert!(
        calls.calls - calls.cut_off <= clean_calls.calls,
        "seed {seed}: {calls:?} vs clean {clean_calls:?}"
    );
    // Only calls cut off by a kill were made twice.
    assert!(
        calls.calls <= clean_calls.calls + calls.cut_off,
        "seed {seed}: {calls:?}"
    );
    // Two lanes call models, one call at a time each.
    assert!(calls.cut_off <= 2 * killed, "seed {seed}: {calls:?}");
}
