//! The local benchmark: plans a manifest, runs every dialogue, judges every turn and curates
//! the results in one process, offline, on memory backends and the simulated models. Results
//! land in a directory: per-run JSON, `summary.json`, `leaderboard.csv` and `report.html`.

// Printing the leaderboard is what this binary is for.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use socratic_core::blob::BlobStore;
use socratic_core::defaults::Defaults;
use socratic_core::entity::{ManifestRequest, from_json};
use socratic_core::llm::{ConcurrencyLimitLlm, LlmClient, RetryLlm, RetryPolicy};
use socratic_core::pipeline::{PipelineConfig, PlanError, Providers, plan};
use socratic_core::report;
use socratic_core::runner::RunnerConfig;
use socratic_memory::simulated::PROVIDER;
use socratic_memory::{FsBlobStore, LocalPipeline, SimulatedLlm, simulated_manifest};

/// Run a Socratic-tutoring benchmark locally, offline.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A manifest request as JSON; by default the eight starter scenarios × three simulated
    /// tutors × three turns.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Where to write results.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Concurrent calls per model (and workers per stage).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Override the manifest's repetitions per tutor × scenario.
    #[arg(long)]
    repetitions: Option<u32>,
    /// Override the manifest's turns per run.
    #[arg(long)]
    turns: Option<u32>,
    /// Refuse manifests planning more runs than this.
    #[arg(long, default_value_t = 10_000)]
    max_runs: u64,
    /// Simulated model latency in milliseconds (to see concurrency at work).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let defaults = Defaults::load().context("loading the embedded catalog")?;
    let mut request: ManifestRequest = match &args.manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            from_json("manifest", &text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => simulated_manifest(&defaults),
    };
    if let Some(repetitions) = args.repetitions {
        request.repetitions = repetitions;
    }
    if let Some(turns) = args.turns {
        request.turns = turns;
    }

    let blobs: Arc<dyn BlobStore> = Arc::new(
        FsBlobStore::new(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    // Limit concurrency outside, retry inside (with a budget): a call waiting out a backoff
    // keeps its slot, so a throttled model is not hammered.
    let simulated: Arc<dyn LlmClient> = Arc::new(ConcurrencyLimitLlm::new(
        RetryLlm::new(
            SimulatedLlm::with_latency(Duration::from_millis(args.latency_ms)),
            RetryPolicy::default(),
        ),
        args.concurrency,
    ));
    let providers = Providers::new().with(PROVIDER, simulated);
    let config = PipelineConfig {
        max_runs_per_manifest: args.max_runs,
        ..PipelineConfig::default()
    };
    let pipeline = LocalPipeline::new(blobs, providers, config);
    pipeline
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .context("installing the catalog")?;

    let started = Instant::now();
    let planned = match plan(&pipeline.ports, &request).await {
        Ok(planned) => planned,
        Err(PlanError::Invalid(problems)) => {
            let list: Vec<String> = problems.0.iter().map(|p| format!("  - {p}")).collect();
            bail!("the manifest is invalid:\n{}", list.join("\n"));
        }
        Err(e) => return Err(e.into()),
    };
    let id = planned.manifest.id;
    tracing::info!(manifest = %id, runs = planned.runs.len(), "planned");

    let runner = pipeline.runner(args.concurrency, RunnerConfig::default());
    let bar = ProgressBar::new(planned.manifest.run_count);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}",
    )?);
    let progress = {
        let runner = runner.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((finished, _)) = runner.progress(&id).await {
                    bar.set_position(finished);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let summary = runner.complete(&id).await?;
    progress.abort();
    bar.finish_with_message("done");

    // The report files are written under curated/; copy them to the top of the results.
    let curated = args
        .out
        .join("curated")
        .join("manifests")
        .join(id.to_string());
    for name in ["summary.json", "leaderboard.csv", "report.html"] {
        std::fs::copy(curated.join(name), args.out.join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    let dead = pipeline.queues.dead_letters();
    if !dead.is_empty() {
        tracing::warn!(count = dead.len(), "messages were dead-lettered");
    }

    let stats = runner.stats();
    let calls: u64 = summary
        .leaderboard
        .iter()
        .flat_map(|r| r.usage.values())
        .map(|u| u.calls)
        .sum();
    println!("\n{}", report::leaderboard_text(&summary));
    println!(
        "{} runs, {calls} model calls in {:.1?}; retries {}, dead-lettered {}",
        summary.runs,
        started.elapsed(),
        stats.values().map(|s| s.retried).sum::<u64>(),
        dead.len()
    );
    println!("results: {}", args.out.display());
    println!("  report:      {}", args.out.join("report.html").display());
    println!(
        "  leaderboard: {}",
        args.out.join("leaderboard.csv").display()
    );
    println!("  summary:     {}", args.out.join("summary.json").display());
    println!(
        "  runs:        {}",
        args.out.join("curated").join("runs").display()
    );
    Ok(())
}
