//! End-to-end throughput: runs of 3 turns through the whole pipeline with the simulated
//! models, on memory backends and on the SQLite store and queues, at 1,000 and 10,000 runs,
//! with instant models and with 100 ms per call at concurrency 64. Prints wall time, model
//! calls per second, peak RSS, the time to curate a finished manifest again (summary,
//! leaderboard and report), efficiency against the bounds that latency and concurrency set,
//! and each target of docs/performance.md beside its figure.
//!
//! Each case runs in a process of its own, so that its peak RSS is its own.
//! Run: `cargo bench -p socratic-benches --bench throughput`. With `SOCRATIC_BENCH_JUDGES=1`,
//! only the cases that compare curation with one judge and with two (memory backends, 1,000
//! and 10,000 runs).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socratic_benches::{
    Artifacts, CallTimes, manifest_judged, peak_rss_kib, pipeline, sqlite_pipeline,
};
use socratic_core::llm::Role;
use socratic_core::pipeline::{Ports, curate};
use socratic_core::repository::RunFilter;
use socratic_core::runner::{Runner, RunnerConfig};

const TURNS: u64 = 3;
/// Rounds of the two 1,000-run instant-model cases.
const ROUNDS: usize = 3;
/// Workers per lane and concurrent calls per model.
const CONCURRENCY: usize = 64;
/// The child process's case: `<backend>:<runs>:<latency ms>[:<judges>]`.
const CASE: &str = "SOCRATIC_BENCH_CASE";
/// Set: only the cases comparing curation with one judge and with two.
const JUDGES_ONLY: &str = "SOCRATIC_BENCH_JUDGES";
/// `N`: the in-memory 1,000-run case only, `N` times in this process, for a profiler.
const PROFILE: &str = "SOCRATIC_BENCH_PROFILE";

fn runner_config() -> RunnerConfig {
    RunnerConfig {
        receive_wait: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

/// What a case measured.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    wall: Duration,
    runs: u64,
    peak_rss_kib: u64,
    curation: Duration,
}

/// Runs one case in this process and prints its figures, then a `result` line for the parent.
async fn run_case(case: &str) {
    let mut parts = case.split(':');
    let (backend, runs, latency, judges) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u32>().unwrap(),
        Duration::from_millis(parts.next().unwrap().parse().unwrap()),
        parts.next().map_or(1, |j| j.parse::<usize>().unwrap()),
    );
    let dir = tempfile::tempdir().unwrap();
    let times = Arc::new(CallTimes::default());
    let (ports, runner, _results) = match backend {
        "memory" => {
            let local = pipeline(latency, CONCURRENCY, Arc::clone(&times)).await;
            let runner = local.runner(CONCURRENCY, runner_config());
            (local.ports, runner, None)
        }
        "sqlite" | "sqlite-files" => {
            let artifacts = if backend == "sqlite" {
                Artifacts::Memory
            } else {
                Artifacts::Files
            };
            let (results, ports, runner) = sqlite_pipeline(
                dir.path(),
                artifacts,
                latency,
                CONCURRENCY,
                CONCURRENCY,
                runner_config(),
                Arc::clone(&times),
            )
            .await;
            (ports, runner, Some(results))
        }
        other => panic!("unknown backend {other}"),
    };
    let outcome = measure(&ports, &runner, runs, judges, latency, &times).await;
    println!(
        "result {} {} {} {}",
        outcome.wall.as_secs_f64(),
        outcome.runs,
        outcome.peak_rss_kib,
        outcome.curation.as_secs_f64()
    );
}

async fn measure(
    ports: &Ports,
    runner: &Runner,
    runs: u32,
    judges: usize,
    latency: Duration,
    times: &CallTimes,
) -> Outcome {
    let started = Instant::now();
    let summary = runner
        .run_manifest(&manifest_judged(runs, judges))
        .await
        .unwrap();
    let wall = started.elapsed();
    assert_eq!(summary.failed_runs, 0);
    let peak_rss_kib = peak_rss_kib().unwrap_or(0);
    let runs = u64::from(summary.runs);
    let (tutor, student, judge) = (
        runs * TURNS,
        runs * (TURNS - 1),
        runs * TURNS * judges as u64,
    );
    let calls = tutor + student + judge;
    println!(
        "  runs {runs}, turns {}, model calls {calls}: wall time {:.2} s, {:.0} model calls/s, {:.0} runs/s, peak RSS {:.1} MiB",
        runs * TURNS,
        wall.as_secs_f64(),
        calls as f64 / wall.as_secs_f64(),
        runs as f64 / wall.as_secs_f64(),
        peak_rss_kib as f64 / 1024.0
    );
    if !latency.is_zero() {
        bounds(runs, latency, wall, times);
    }
    // Curating the finished manifest again, as a redelivered event would: its summary,
    // leaderboard and report, from the stored runs. Not in the profile mode, whose workload
    // stays the pipeline's.
    if std::env::var_os(PROFILE).is_some() {
        return Outcome {
            wall,
            runs,
            peak_rss_kib,
            curation: Duration::ZERO,
        };
    }
    let first = ports
        .repository
        .list_runs(&RunFilter::Manifest(summary.manifest), 1, None)
        .await
        .unwrap();
    let started = Instant::now();
    curate(ports, &first.items[0].id).await.unwrap();
    let curation = started.elapsed();
    println!(
        "  curating the finished manifest again (summary, leaderboard, report): {:.0} ms",
        curation.as_secs_f64() * 1000.0
    );
    Outcome {
        wall,
        runs,
        peak_rss_kib,
        curation,
    }
}

/// Prints the efficiency against three bounds.
///
/// - Ideal: the dialogue lane's sequential calls divided evenly among its workers, at the
///   nominal latency.
/// - Schedule: a worker takes a whole run, so the lane needs as many rounds of runs as the
///   busiest worker gets; the last round's runs are judged after their dialogues, all their
///   turns at once, as many at a time as the judge model's concurrency allows. No schedule of
///   this configuration finishes sooner.
/// - The same schedule at the models' measured call times: what is left is the pipeline's own
///   time (planning, storing, queues, curation and the report).
fn bounds(runs: u64, latency: Duration, wall: Duration, times: &CallTimes) {
    let workers = CONCURRENCY as u64;
    let rounds = runs.div_ceil(workers);
    let last_round = runs - (rounds - 1) * workers;
    let judge_rounds = (last_round * TURNS).div_ceil(CONCURRENCY as u64);
    let schedule = |tutor: f64, student: f64, judge: f64| {
        rounds as f64 * (TURNS as f64 * tutor + (TURNS - 1) as f64 * student)
            + judge_rounds as f64 * judge
    };
    let nominal = latency.as_secs_f64();
    let ideal = (runs * (2 * TURNS - 1)) as f64 * nominal / workers as f64;
    let planned = schedule(nominal, nominal, nominal);
    let mean = |role| times.mean(role).unwrap_or(latency).as_secs_f64();
    let (tutor, student, judge) = (mean(Role::Tutor), mean(Role::Student), mean(Role::Judge));
    let measured = schedule(tutor, student, judge);
    let wall = wall.as_secs_f64();
    println!(
        "  ideal bound {ideal:.2} s ({} sequential dialogue calls × {latency:?} / {workers} workers): efficiency {:.1}%",
        runs * (2 * TURNS - 1),
        100.0 * ideal / wall
    );
    println!(
        "  schedule bound {planned:.2} s ({rounds} rounds of whole runs × {} calls, then {judge_rounds} rounds of the last runs' judge calls): efficiency {:.1}%; the ideal bound is {:.1}% of it",
        2 * TURNS - 1,
        100.0 * planned / wall,
        100.0 * ideal / planned
    );
    println!(
        "  schedule bound at the measured call times (tutor {:.1} ms, student {:.1} ms, judge {:.1} ms): {measured:.2} s, efficiency {:.1}% (target: at least 97%)",
        tutor * 1000.0,
        student * 1000.0,
        judge * 1000.0,
        100.0 * measured / wall
    );
}

/// Runs `case` in a child process, echoing its figures.
fn child(title: &str, case: &str) -> Outcome {
    println!("{title}");
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .arg("--bench")
        .env(CASE, case)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "case {case} failed");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut outcome = None;
    for line in stdout.lines() {
        match line.strip_prefix("result ") {
            Some(result) => {
                let f: Vec<f64> = result.split(' ').map(|x| x.parse().unwrap()).collect();
                outcome = Some(Outcome {
                    wall: Duration::from_secs_f64(f[0]),
                    runs: f[1] as u64,
                    peak_rss_kib: f[2] as u64,
                    curation: Duration::from_secs_f64(f[3]),
                });
            }
            None => println!("{line}"),
        }
    }
    outcome.unwrap()
}

fn median(mut outcomes: Vec<Outcome>) -> Outcome {
    outcomes.sort_by_key(|o| o.wall);
    outcomes[outcomes.len() / 2]
}

/// Prints how a time per run grows from the 1,000-run case to the 10,000-run one.
fn scaling(
    what: &str,
    (small, large): (&Outcome, &Outcome),
    time: fn(&Outcome) -> Duration,
    target: &str,
) {
    let per_run = |o: &Outcome| time(o).as_secs_f64() * 1e6 / o.runs as f64;
    let (small, large) = (per_run(small), per_run(large));
    println!(
        "  {what}: {small:.0} µs at 1,000 runs, {large:.0} µs at 10,000 = {:.2}× ({target})",
        large / small
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent; stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    if let Ok(case) = std::env::var(CASE) {
        runtime().block_on(run_case(&case));
        return;
    }
    // `SOCRATIC_BENCH_PROFILE=N`: only the in-memory instant-model case, N times in this
    // process, for a profiler (docs/performance.md, "Where the time goes").
    if let Some(times) = std::env::var(PROFILE)
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        runtime().block_on(async {
            for round in 1..=times {
                println!("instant models, memory (profile round {round} of {times})");
                let times = Arc::new(CallTimes::default());
                let local = pipeline(Duration::ZERO, CONCURRENCY, Arc::clone(&times)).await;
                let runner = local.runner(CONCURRENCY, runner_config());
                measure(&local.ports, &runner, 1000, 1, Duration::ZERO, &times).await;
            }
        });
        return;
    }
    if std::env::var_os(JUDGES_ONLY).is_some() {
        judges();
        return;
    }
    // The two 1,000-run instant-model cases alternately, a few rounds: on a shared two-core
    // machine one run of either varies by ±15%, so their ratio is taken between medians.
    let (mut memory, mut sqlite) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        memory.push(child(
            &format!("1,000 runs, instant models, memory (round {round} of {ROUNDS})"),
            "memory:1000:0",
        ));
        sqlite.push(child(
            &format!(
                "1,000 runs, instant models, SQLite store and queues, artifacts in memory (round {round} of {ROUNDS})"
            ),
            "sqlite:1000:0",
        ));
    }
    let memory_10k = child("10,000 runs, instant models, memory", "memory:10000:0");
    let files_1k = child(
        "1,000 runs, instant models, SQLite store and queues, artifact files (the command line's defaults)",
        "sqlite-files:1000:0",
    );
    let files_10k = child(
        "10,000 runs, instant models, SQLite store and queues, artifact files",
        "sqlite-files:10000:0",
    );
    child(
        "1,000 runs, 100 ms per call, 64 workers per lane, 64 concurrent calls per model, memory",
        "memory:1000:100",
    );

    let peak = memory.iter().map(|o| o.peak_rss_kib).max().unwrap_or(0);
    let (memory, sqlite) = (median(memory), median(sqlite));
    println!("Targets");
    println!(
        "  1,000 runs, memory: median wall {:.3} s of {ROUNDS} (target: at most 0.3 s); highest peak RSS {:.1} MiB (target: at most 60 MiB)",
        memory.wall.as_secs_f64(),
        mib(peak)
    );
    println!(
        "  SQLite / memory wall time, medians: {:.2} s / {:.2} s = {:.2}× (target: within 3×)",
        sqlite.wall.as_secs_f64(),
        memory.wall.as_secs_f64(),
        sqlite.wall.as_secs_f64() / memory.wall.as_secs_f64()
    );
    scaling(
        "time per run, memory",
        (&memory, &memory_10k),
        |o| o.wall,
        "target: within 1.5×",
    );
    scaling(
        "curation, leaderboard and report per run, memory",
        (&memory, &memory_10k),
        |o| o.curation,
        "linear or better: at most about 1×",
    );
    scaling(
        "curation, leaderboard and report per run, SQLite and files",
        (&files_1k, &files_10k),
        |o| o.curation,
        "linear or better: at most about 1×",
    );
    println!(
        "  peak RSS, SQLite and files: {:.1} MiB at 1,000 runs, {:.1} MiB at 10,000 = {:.2}× (target: within 1.5×)",
        mib(files_1k.peak_rss_kib),
        mib(files_10k.peak_rss_kib),
        files_10k.peak_rss_kib as f64 / files_1k.peak_rss_kib as f64
    );
    judges();
}

/// Curation with one judge against two, on the memory backends and on the command line's
/// (SQLite store and queues, artifact files): the second judge adds the judges' agreement
/// (alpha and kappa, each with a bootstrap over scenarios) and twice the judgments to read
/// and render into the report.
fn judges() {
    for (backend, label) in [
        ("memory", "memory"),
        ("sqlite-files", "SQLite store and queues, artifact files"),
    ] {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            one.push(child(
                &format!(
                    "1,000 runs, instant models, {label}, one judge (round {round} of {ROUNDS})"
                ),
                &format!("{backend}:1000:0:1"),
            ));
            two.push(child(
                &format!(
                    "1,000 runs, instant models, {label}, two judges (round {round} of {ROUNDS})"
                ),
                &format!("{backend}:1000:0:2"),
            ));
        }
        let one_10k = child(
            &format!("10,000 runs, instant models, {label}, one judge"),
            &format!("{backend}:10000:0:1"),
        );
        let two_10k = child(
            &format!("10,000 runs, instant models, {label}, two judges"),
            &format!("{backend}:10000:0:2"),
        );
        let curation = |outcomes: &[Outcome]| {
            let mut times: Vec<Duration> = outcomes.iter().map(|o| o.curation).collect();
            times.sort();
            times[times.len() / 2]
        };
        let (one, two) = (curation(&one), curation(&two));
        println!("Targets, {label}");
        for (runs, one, two) in [
            ("1,000 runs (medians)", one, two),
            ("10,000 runs", one_10k.curation, two_10k.curation),
        ] {
            println!(
                "  curation at {runs}, two judges / one: {:.0} ms / {:.0} ms = {:.2}× (target: at most 1.5×)",
                two.as_secs_f64() * 1000.0,
                one.as_secs_f64() * 1000.0,
                two.as_secs_f64() / one.as_secs_f64()
            );
        }
        let per_run_10k = two_10k.curation.as_secs_f64() / two_10k.runs as f64;
        println!(
            "  curation per run with two judges: {:.0} µs at 1,000 runs, {:.0} µs at 10,000 = {:.2}× (linear: about 1×)",
            two.as_secs_f64() * 1e6 / 1000.0,
            per_run_10k * 1e6,
            per_run_10k / (two.as_secs_f64() / 1000.0)
        );
    }
}
