//! End-to-end throughput: 1,000 runs × 3 turns through the whole pipeline, on memory backends
//! with instant simulated models and with 100 ms per call at concurrency 64, and on the SQLite
//! store and queues with instant models. Prints wall time, model calls per second, peak RSS
//! and efficiency against the bound set by latency and concurrency, and the SQLite case's time
//! against the in-memory case's (medians of three alternating rounds).
//! Run: `cargo bench -p socratic-benches --bench throughput`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use socratic_benches::{manifest, peak_rss_kib, pipeline, sqlite_pipeline};
use socratic_core::runner::{Runner, RunnerConfig};

const RUNS: u32 = 1000;
const TURNS: u64 = 3;
/// Rounds of the two instant-model cases.
const ROUNDS: usize = 3;

fn runner_config() -> RunnerConfig {
    RunnerConfig {
        receive_wait: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

async fn scenario(name: &str, latency: Duration, concurrency: usize) -> Duration {
    let local = pipeline(latency, concurrency).await;
    let runner = local.runner(concurrency, runner_config());
    measure(name, &runner, latency, concurrency).await
}

async fn sqlite_scenario(name: &str, latency: Duration, concurrency: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (_results, runner) = sqlite_pipeline(
        dir.path(),
        latency,
        concurrency,
        concurrency,
        runner_config(),
    )
    .await;
    measure(name, &runner, latency, concurrency).await
}

async fn measure(name: &str, runner: &Runner, latency: Duration, concurrency: usize) -> Duration {
    let started = Instant::now();
    let summary = runner.run_manifest(&manifest(RUNS)).await.unwrap();
    let wall = started.elapsed();
    let runs = u64::from(summary.runs);
    let tutor = runs * TURNS;
    let student = runs * (TURNS - 1);
    let judge = runs * TURNS;
    let calls = tutor + student + judge;
    println!("{name}");
    println!("  runs {runs}, turns {}, model calls {calls}", runs * TURNS);
    println!(
        "  wall time {:.2} s, {:.0} model calls/s, {:.0} runs/s",
        wall.as_secs_f64(),
        calls as f64 / wall.as_secs_f64(),
        runs as f64 / wall.as_secs_f64()
    );
    if !latency.is_zero() {
        // Each dialogue worker makes its run's tutor and student calls one after another, so
        // the dialogue lane needs at least (tutor + student calls) × latency / workers; the
        // judge lane works alongside it.
        let bound = (tutor + student) as f64 * latency.as_secs_f64() / concurrency as f64;
        println!(
            "  bound {bound:.2} s (dialogue lane: {} sequential calls × {latency:?} / {concurrency} workers), efficiency {:.0}%",
            tutor + student,
            100.0 * bound / wall.as_secs_f64()
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!(
            "  peak RSS {:.1} MiB (whole process so far)",
            kib as f64 / 1024.0
        );
    }
    assert_eq!(summary.failed_runs, 0);
    wall
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `SOCRATIC_BENCH_PROFILE=N`: only the in-memory instant-model case, N times, for a
    // profiler (docs/performance.md, "Where the time goes").
    if let Some(times) = std::env::var("SOCRATIC_BENCH_PROFILE")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        runtime.block_on(async {
            for round in 1..=times {
                scenario(
                    &format!("instant models, 64 workers (profile round {round} of {times})"),
                    Duration::ZERO,
                    64,
                )
                .await;
            }
        });
        return;
    }
    runtime.block_on(async {
        // Both instant-model cases, alternately, a few rounds: on a shared two-core machine one
        // run of either varies by ±15%, so the ratio is taken between medians.
        let (mut memory, mut sqlite) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            memory.push(
                scenario(
                    &format!("instant models, 64 workers (round {round} of {ROUNDS})"),
                    Duration::ZERO,
                    64,
                )
                .await,
            );
            sqlite.push(
                sqlite_scenario(
                    &format!(
                        "instant models, 64 workers, SQLite store and queues (round {round} of {ROUNDS})"
                    ),
                    Duration::ZERO,
                    64,
                )
                .await,
            );
        }
        scenario(
            "100 ms per call, concurrency 64",
            Duration::from_millis(100),
            64,
        )
        .await;
        let (memory, sqlite) = (median(memory), median(sqlite));
        println!(
            "SQLite / memory wall time, medians of {ROUNDS} rounds: {:.2} s / {:.2} s = {:.2}× (target: within 3×)",
            sqlite.as_secs_f64(),
            memory.as_secs_f64(),
            sqlite.as_secs_f64() / memory.as_secs_f64()
        );
    });
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
