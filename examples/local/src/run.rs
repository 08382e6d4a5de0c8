//! `run`, `estimate` and `rejudge`: a benchmark with a progress bar.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use socratic_local::given_cache::{CacheHits, GivenCache};
use socratic_local::{
    Benchmark, BenchmarkOptions, CacheChoice, Outcome, Overrides, Planned, Progress, Rejudge, text,
};

use crate::output::{out, outln};
use crate::{EXIT_BUDGET, EXIT_DETACHED, EXIT_FAILED_RUNS, EXIT_INTERRUPTED, RunArgs, Status};

impl RunArgs {
    pub(crate) fn options(self, rejudge: Option<Rejudge>) -> BenchmarkOptions {
        let cache = match (self.no_cache, self.cache) {
            (true, _) => CacheChoice::Off,
            (false, Some(dir)) => CacheChoice::At(dir),
            (false, None) => CacheChoice::InResults,
        };
        BenchmarkOptions {
            out: self.out,
            manifest: self.manifest,
            models: self.models,
            catalog: self.catalog,
            overrides: Overrides {
                scenario_set: self.scenario_set,
                tutors: self.tutors,
                student: self.student,
                judges: self.judges,
                allow_self_judging: self.allow_self_judging,
                repetitions: self.repetitions,
                turns: self.turns,
            },
            concurrency: self.concurrency,
            max_runs: self.max_runs,
            simulated_latency: Duration::from_millis(self.latency_ms),
            max_cost: self.max_cost,
            cache,
            replay: self.replay,
            preflight: !self.no_preflight,
            rejudge,
            batch: self.batch,
            detach: self.detach,
            batch_poll: Duration::from_secs_f64(self.batch_poll_seconds.max(0.01)),
            batch_gather: Duration::from_secs_f64(self.batch_gather_seconds.max(0.01)),
        }
    }
}

/// `socratic estimate`: the plan and its cost, in memory, with no model call.
pub(crate) async fn estimate(args: RunArgs) -> Status {
    let (cap, batch) = (args.max_cost, args.batch);
    let benchmark = Benchmark::in_memory(args.options(None)).await?;
    out!(
        "{}",
        text::estimate_table(&benchmark.estimate().await?, cap, batch)
    );
    out!("{}", text::power(&benchmark.power().await?, true));
    Ok(ExitCode::SUCCESS)
}

/// `socratic run` and `socratic rejudge`: the estimate, then the benchmark to its summary or
/// to Ctrl-C.
pub(crate) async fn run(args: RunArgs, rejudge: Option<Rejudge>) -> Status {
    let quiet = args.quiet;
    let cap = args.max_cost;
    let benchmark = Benchmark::open(args.options(rejudge)).await?;
    if let Some(source) = benchmark.rejudging() {
        outln!(
            "re-judging manifest {}: {} of {} run(s) have a finished dialogue",
            source.manifest,
            source.dialogues,
            source.runs
        );
    }
    out!(
        "{}",
        text::estimate_table(&benchmark.estimate().await?, cap, benchmark.options().batch)
    );
    // Before paying for real models, say when the plan cannot tell tutors apart.
    out!(
        "{}",
        text::power(&benchmark.power().await?, benchmark.calls_real_models())
    );
    let (batched, live) = benchmark.batch_split();
    if !batched.is_empty() {
        outln!(
            "batch mode: {} through the providers' batch interfaces{}",
            batched.join(", "),
            if live.is_empty() {
                String::new()
            } else {
                format!("; live (no batch interface): {}", live.join(", "))
            }
        );
    }
    if let Some(given) = benchmark.given_cache() {
        outln!(
            "cache: {} ({}, {} answers)",
            given.path.display(),
            given.kind,
            given.answers
        );
    }
    let bar = Bar::new(quiet, benchmark.options().out.clone());
    let interrupt = async {
        // Without a handler, Ctrl-C ends the process as before: never stop on a failure here.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match benchmark.run_until(&bar, interrupt).await? {
        Outcome::Interrupted(stopped) => {
            bar.bar.abandon_with_message("interrupted");
            let note = stopped
                .note
                .map(|p| format!("; see {}", p.display()))
                .unwrap_or_default();
            eprintln!(
                "interrupted: {} of {} run(s) finished, ${:.4} spent{note}. Run the same command again to resume.",
                stopped.finished, stopped.runs, stopped.spent_usd
            );
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Outcome::Detached(stopped) => {
            bar.bar.abandon_with_message("detached");
            eprintln!(
                "detached: {} of {} run(s) finished, ${:.4} spent; its batches are running at the providers. Run the same command again to collect them and go on.",
                stopped.finished, stopped.runs, stopped.spent_usd
            );
            Ok(ExitCode::from(EXIT_DETACHED))
        }
        Outcome::Finished(finished) => {
            bar.bar.finish_with_message("done");
            out!("{}", text::finished(&finished));
            let summary = &finished.summary;
            if summary.stopped_by_budget {
                eprintln!(
                    "the spending cap of ${:.4} stopped the benchmark: {} run(s) skipped",
                    finished.cap_usd, summary.skipped_runs
                );
                return Ok(ExitCode::from(EXIT_BUDGET));
            }
            if summary.failed_runs > 0 {
                eprintln!(
                    "{} run(s) failed:\n  - {}",
                    summary.failed_runs,
                    finished.failure_reasons.join("\n  - ")
                );
                return Ok(ExitCode::from(EXIT_FAILED_RUNS));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The progress bar: runs finished, the time left, and the spend against the cap.
struct Bar {
    bar: ProgressBar,
    out: std::path::PathBuf,
}

impl Bar {
    fn new(quiet: bool, out: std::path::PathBuf) -> Self {
        let bar = ProgressBar::new(0);
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs, eta {eta} {msg}",
        ) {
            bar.set_style(style);
        }
        Self { bar, out }
    }
}

impl Progress for Bar {
    fn planned(&self, planned: &Planned) {
        if let Some(line) = text::resumption(planned, &self.out) {
            self.bar.suspend(|| {
                // A progress line lost to a closed pipe must not stop a paid run.
                let _ = crate::output::write(format_args!("{line}\n"));
            });
        }
        self.bar.set_length(planned.runs);
    }

    fn cache_cold(&self, given: &GivenCache, hits: CacheHits) {
        self.bar.suspend(|| {
            eprintln!(
                "warning: the cache at {} answered none of the first {} calls ({} hits): it holds \
                 answers to other requests (another manifest, endpoint or prompt?); every miss is \
                 paid for",
                given.path.display(),
                hits.lookups,
                hits.hits
            );
        });
    }

    fn advanced(&self, finished: u64, _total: u64, spent_usd: f64, cap_usd: f64) {
        self.bar.set_position(finished);
        self.bar.set_message(if cap_usd.is_finite() {
            format!("spent ${spent_usd:.4} of ${cap_usd:.4}")
        } else {
            format!("spent ${spent_usd:.4}")
        });
    }
}
