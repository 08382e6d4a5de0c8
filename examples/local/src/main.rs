//! `socratic`: runs a Socratic-tutoring benchmark in one process. Offline by default, on the
//! simulated models; with `--models FILE`, on Bedrock or any OpenAI-compatible server, after
//! an estimate, under a hard spending cap, through a response cache. Results land in a
//! directory: per-run JSON, `summary.json`, `leaderboard.csv` and `report.html`.

// Printing the plan and the leaderboard is what this binary is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use socratic_core::blob::BlobStore;
use socratic_core::calibration::{CalibrationError, import_labels, stored_calibration};
use socratic_core::clock::{Clock, SystemClock};
use socratic_core::compare::compare_manifests;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::{
    Manifest, ManifestRequest, ModelConfig, Run, RunStatus, StudentConfig, from_json,
};
use socratic_core::estimate::{PlanEstimate, estimate};
use socratic_core::id::{ManifestId, ModelId, PromptId, RubricId, RunId};
use socratic_core::llm::{Budget, CacheMode, RetryPolicy};
use socratic_core::pipeline::{
    PipelineConfig, PlanError, Providers, import_manifest, latest_dialogue_manifest, plan,
    rejudge_request,
};
use socratic_core::report;
use socratic_core::repository::{Repository, RunFilter};
use socratic_local::backend::Backend;
use socratic_local::models::{self, ClientOptions, Layers, ModelsFile};
use socratic_local::{catalog, history};
use socratic_memory::{FsBlobStore, LocalPipeline};
use socratic_sim::simulated::PROVIDER;
use socratic_sim::{SimulatedLlm, simulated_manifest};
use socratic_sqlite::{CallLedger, ResultsDir};

/// Benchmark LLMs as Socratic tutors.
#[derive(Debug, Parser)]
#[command(
    name = "socratic",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `run`'s options, when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark (the default).
    Run(RunArgs),
    /// Print the plan and its estimated cost, and stop before any model call.
    Estimate(RunArgs),
    /// Score the dialogues of a finished manifest again, with other judges or another
    /// rubric, without calling a tutor or student.
    Rejudge(RejudgeArgs),
    /// Render the report of a finished manifest again.
    Report {
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// The manifest; by default the newest in the results.
        #[arg(long = "manifest-id")]
        manifest_id: Option<String>,
    },
    /// List the benchmarks of a results directory, newest first: date, label, tutors,
    /// status, runs and cost.
    List {
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Print a run's transcript with every judgment of each turn.
    Show {
        /// The run id (as in `curated/runs/` or the report).
        run: String,
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Compare manifest B with baseline A over their shared models and scenarios: per-model
    /// paired differences with 95% intervals and Holm-adjusted p-values.
    Compare {
        /// The baseline manifest.
        a: String,
        /// The manifest compared with it.
        b: String,
        /// The results directory holding both.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Import human scores of judged turns and measure each judge against them, per
    /// dimension: weighted kappa, alpha and mean bias with 95% intervals (docs/statistics.md).
    Calibrate {
        /// Labels as CSV with the columns `run_id` (a run id or `tutor/scenario/repetition`),
        /// turn, dimension, score and optionally rater. Without it, the stored labels are
        /// reported.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The manifest the labels belong to; by default the newest finished one.
        #[arg(long = "manifest-id")]
        manifest_id: Option<String>,
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Write a starter benchmark to edit: rubric, prompts, scenarios, manifest, models file.
    Init {
        /// A new or empty directory.
        dir: PathBuf,
    },
    /// Check a benchmark directory (catalog, manifest and models file) without running it;
    /// every problem is listed with its file and field.
    Check {
        /// The directory, as `socratic init` made it.
        dir: PathBuf,
    },
    /// List the models of a models file and check that each answers.
    Models {
        /// The models file.
        #[arg(long)]
        models: PathBuf,
        /// Only list them; send nothing.
        #[arg(long)]
        no_check: bool,
    },
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// A manifest request as JSON; by default the eight starter scenarios × three simulated
    /// tutors × three turns.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The models the benchmark may call (TOML or JSON; see docs/models.md).
    #[arg(long)]
    models: Option<PathBuf>,
    /// A benchmark directory of your own (see `socratic init`): its rubrics, prompts and
    /// scenarios join the catalog, and its manifest.json and models.toml are used unless
    /// --manifest or --models says otherwise.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Run a named set of the built-in scenarios instead of the manifest's: `starter` (eight
    /// scenarios, the default benchmark) or `full` (the whole bank of 48, 16 per vector).
    #[arg(long, value_name = "SET")]
    scenario_set: Option<ScenarioSet>,
    /// Tutor models to benchmark instead of the manifest's (repeat the flag).
    #[arg(long = "tutor")]
    tutors: Vec<String>,
    /// The student model instead of the manifest's.
    #[arg(long)]
    student: Option<String>,
    /// Judge models instead of the manifest's (repeat the flag).
    #[arg(long = "judge")]
    judges: Vec<String>,
    /// Let a tutor also judge (refused by default: a model scoring its own dialogues favours
    /// them); the report flags it.
    #[arg(long)]
    allow_self_judging: bool,
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
    /// A hard cap on spend in US dollars: a call that could pass it is not made, and the
    /// runs it would have served end as skipped.
    #[arg(long)]
    max_cost: Option<f64>,
    /// Where the response cache lives; by default in the results directory.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Call real models without the response cache.
    #[arg(long, conflicts_with = "replay")]
    no_cache: bool,
    /// Answer only from the response cache; a call it cannot answer fails.
    #[arg(long)]
    replay: bool,
    /// Skip the one-request check of every real model before planning.
    #[arg(long)]
    no_preflight: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Args)]
struct RejudgeArgs {
    /// The results directory holding the manifest to re-judge; by default `--out`.
    #[arg(long)]
    from: Option<PathBuf>,
    /// The manifest to re-judge; by default the newest that ran its own dialogues.
    #[arg(long = "manifest-id")]
    manifest_id: Option<String>,
    /// Score against this rubric instead of the source's.
    #[arg(long)]
    rubric: Option<String>,
    /// Use this judge prompt instead of the source's.
    #[arg(long)]
    judge_prompt: Option<String>,
    /// The judges (`--judge`, required), models file, cap, cache and output.
    #[command(flatten)]
    run: RunArgs,
}

/// What `run` does.
enum Mode {
    Run,
    Estimate,
    Rejudge {
        from: PathBuf,
        manifest_id: Option<String>,
        rubric: Option<String>,
        judge_prompt: Option<String>,
    },
}

/// Exit status when the spending cap stopped the benchmark.
const EXIT_BUDGET: u8 = 3;
/// Exit status when runs failed.
const EXIT_FAILED_RUNS: u8 = 4;
/// Exit status when Ctrl-C stopped the benchmark.
const EXIT_INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run, Mode::Run).await,
        Some(Command::Run(args)) => run(args, Mode::Run).await,
        Some(Command::Estimate(args)) => run(args, Mode::Estimate).await,
        Some(Command::Rejudge(args)) => {
            let mode = Mode::Rejudge {
                from: args.from.clone().unwrap_or_else(|| args.run.out.clone()),
                manifest_id: args.manifest_id,
                rubric: args.rubric,
                judge_prompt: args.judge_prompt,
            };
            run(args.run, mode).await
        }
        Some(Command::Report { out, manifest_id }) => rerender(&out, manifest_id.as_deref()).await,
        Some(Command::List { out }) => list(&out).await,
        Some(Command::Show { run, out }) => show(&out, &run).await,
        Some(Command::Compare { a, b, out }) => compare(&out, &a, &b).await,
        Some(Command::Calibrate {
            labels,
            manifest_id,
            out,
        }) => calibrate(&out, labels.as_deref(), manifest_id.as_deref()).await,
        Some(Command::Init { dir }) => init(&dir),
        Some(Command::Check { dir }) => check(&dir).await,
        Some(Command::Models { models, no_check }) => list_models(&models, no_check).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The repository of a results directory, read without taking its lock.
fn history(out: &Path) -> anyhow::Result<Repository> {
    let db = ResultsDir::read(out)?;
    Ok(Repository::new(Arc::new(db.store())))
}

async fn list(out: &Path) -> anyhow::Result<ExitCode> {
    let lines = history::manifests(&history(out)?).await?;
    if lines.is_empty() {
        println!("{} holds no benchmark yet", out.display());
    } else {
        print!("{}", history::list_table(&lines));
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(out: &Path, run: &str) -> anyhow::Result<ExitCode> {
    let id: RunId = run
        .parse()
        .map_err(|e| anyhow::anyhow!("run id {run:?}: {e}"))?;
    let record = history(out)?
        .run_record(&id)
        .await?
        .with_context(|| format!("run {id} is not in {}", out.display()))?;
    print!("{}", history::transcript(&record));
    Ok(ExitCode::SUCCESS)
}

async fn calibrate(
    out: &Path,
    labels: Option<&Path>,
    manifest: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // Importing writes, so it takes the directory's lock; reporting only reads.
    let results = labels.map(|_| ResultsDir::acquire(out)).transpose()?;
    let repository = match &results {
        Some(results) => Repository::new(Arc::new(results.database().store())),
        None => history(out)?,
    };
    let id: ManifestId = match manifest {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--manifest-id {text:?}: {e}"))?,
        None => history::manifests(&repository)
            .await?
            .into_iter()
            .find(|line| line.summary.is_some())
            .map(|line| line.manifest.id)
            .with_context(|| format!("{} holds no finished benchmark", out.display()))?,
    };
    let calibration = match labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match import_labels(&repository, &id, &text, SystemClock.now()).await {
                Ok(c) => c,
                Err(CalibrationError::Labels(problems)) => bail!(
                    "{}",
                    socratic_local::problem_list(
                        &path.display().to_string(),
                        &problems
                            .0
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                    )
                ),
                Err(e) => return Err(e.into()),
            }
        }
        None => stored_calibration(&repository, &id)
            .await?
            .with_context(|| {
                format!("manifest {id} has no human labels; import some with --labels")
            })?,
    };
    print!("{}", history::calibration_table(&calibration));
    let file = out.join("calibration.json");
    std::fs::write(&file, serde_json::to_string_pretty(&calibration)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("written: {}", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn compare(out: &Path, a: &str, b: &str) -> anyhow::Result<ExitCode> {
    let repository = history(out)?;
    let mut ids = Vec::new();
    for (name, text) in [("A", a), ("B", b)] {
        let id: ManifestId = text
            .parse()
            .map_err(|e| anyhow::anyhow!("manifest {name} {text:?}: {e}"))?;
        if repository.manifest_progress(&id).await?.is_none() {
            bail!("manifest {name} ({id}) is not in {}", out.display());
        }
        ids.push(id);
    }
    let comparison = compare_manifests(&repository, &ids[0], &ids[1]).await?;
    print!("{}", history::comparison_table(&comparison));
    let dir = out.join("comparisons");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}-vs-{}.html", ids[1], ids[0]));
    let html = report::comparison_html(&comparison, socratic_core::pipeline::ALPHA);
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    println!("comparison: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn read_models(path: &Path) -> anyhow::Result<ModelsFile> {
    Ok(models::load(path, |name| std::env::var(name).ok())?)
}

async fn list_models(path: &Path, no_check: bool) -> anyhow::Result<ExitCode> {
    let file = read_models(path)?;
    print!("{}", models::table(&file));
    if no_check {
        return Ok(ExitCode::SUCCESS);
    }
    let (_, clients) = file
        .clients(&ClientOptions::check_only(), Providers::new())
        .await?;
    let failures = models::preflight(&clients).await;
    if failures.is_empty() {
        println!("every model answered");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("preflight failed:\n  - {}", failures.join("\n  - "))
    }
}

fn manifest_request(args: &RunArgs, defaults: &Defaults) -> anyhow::Result<ManifestRequest> {
    let mut request: ManifestRequest = match &args.manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            from_json("manifest", &text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => simulated_manifest(defaults),
    };
    let id = |text: &String| ModelId::new(text).with_context(|| format!("model id {text:?}"));
    let configs = |ids: &[String], temperature: f64| -> anyhow::Result<Vec<ModelConfig>> {
        ids.iter()
            .map(|text| {
                Ok(ModelConfig {
                    model: id(text)?,
                    temperature,
                })
            })
            .collect()
    };
    if let Some(set) = args.scenario_set {
        request.scenarios = defaults.scenario_ids(set);
    }
    if !args.tutors.is_empty() {
        request.tutors = configs(&args.tutors, 0.7)?;
    }
    if !args.judges.is_empty() {
        request.judges = configs(&args.judges, 0.0)?;
    }
    if args.allow_self_judging {
        request.allow_self_judging = true;
    }
    if let Some(student) = &args.student {
        request.student = Some(StudentConfig {
            model: id(student)?,
            temperature: 0.7,
            prompt: defaults.student_prompt.id.clone(),
        });
    }
    if let Some(repetitions) = args.repetitions {
        request.repetitions = repetitions;
    }
    if let Some(turns) = args.turns {
        request.turns = turns;
    }
    Ok(request)
}

fn print_estimate(estimate: &PlanEstimate, cap: Option<f64>) {
    println!(
        "plan: {} run(s); estimated cost ${:.4}, at most ${:.4}",
        estimate.runs, estimate.cost_usd, estimate.worst_cost_usd
    );
    println!(
        "  {:<8} {:>7} {:>12} {:>12} {:>14} {:>14}",
        "role", "calls", "input tok", "output tok", "max input tok", "max output tok"
    );
    for (role, e) in &estimate.roles {
        println!(
            "  {:<8} {:>7} {:>12} {:>12} {:>14} {:>14}",
            role.as_str(),
            e.calls,
            e.input_tokens,
            e.output_tokens,
            e.worst_input_tokens,
            e.worst_output_tokens
        );
    }
    println!("  {:<24} {:>12} {:>12}", "model", "estimate $", "at most $");
    for (model, e) in &estimate.models {
        println!(
            "  {:<24} {:>12.4} {:>12.4}",
            model.as_str(),
            e.cost_usd,
            e.worst_cost_usd
        );
    }
    if let Some(cap) = cap {
        if cap < estimate.worst_cost_usd {
            println!(
                "  the cap of ${cap:.4} is below the worst case: the benchmark may stop before every run finishes"
            );
        } else {
            println!("  the cap of ${cap:.4} covers the worst case");
        }
    }
}

impl RunArgs {
    /// The manifest and models file of `--catalog DIR`, where none was named.
    fn with_catalog_defaults(mut self) -> Self {
        if let Some(dir) = &self.catalog {
            let existing = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
            self.manifest = self.manifest.or_else(|| existing("manifest.json"));
            self.models = self.models.or_else(|| existing("models.toml"));
        }
        self
    }
}

fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    let written = catalog::init(dir)?;
    println!("wrote a starter benchmark in {}:", dir.display());
    for path in written {
        println!("  {}", path.display());
    }
    println!(
        "next: socratic check {0} && socratic run --catalog {0}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks a benchmark directory without calling a model: every problem of its catalog,
/// models file and manifest, then the manifest planned against them in memory.
async fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    let loaded = catalog::load(dir)
        .map_err(|e| problems.extend(e.problems))
        .ok();
    let models_path = dir.join("models.toml");
    let models_file = if models_path.is_file() {
        models::load(&models_path, |name| std::env::var(name).ok())
            .map_err(|e| problems.extend(e.problems.iter().map(|p| format!("models.toml: {p}"))))
            .ok()
    } else {
        None
    };
    let request = match std::fs::read_to_string(dir.join("manifest.json")) {
        Err(e) => {
            problems.push(format!("manifest.json: cannot read it: {e}"));
            None
        }
        Ok(text) => from_json::<ManifestRequest>("manifest", &text)
            .map_err(|e| problems.extend(catalog::describe("manifest.json", e)))
            .ok(),
    };
    if let (Some(loaded), Some(request), true) = (&loaded, &request, problems.is_empty()) {
        let mut providers = Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));
        let mut catalog_models = SimulatedLlm::catalog();
        if let Some(file) = &models_file {
            providers = file
                .clients(&ClientOptions::check_only(), providers)
                .await?
                .0;
            catalog_models.extend(file.catalog());
        }
        let blobs: Arc<dyn BlobStore> = Arc::new(socratic_memory::MemoryBlobStore::new());
        let pipeline = LocalPipeline::new(blobs, providers, PipelineConfig::default());
        pipeline.install_catalog(&catalog_models).await?;
        loaded.install(&pipeline.ports.repository).await?;
        match plan(&pipeline.ports, request).await {
            Ok(planned) => {
                println!(
                    "{}: ok: {} rubric(s), {} prompt(s), {} scenario(s); the manifest plans {} run(s)",
                    dir.display(),
                    loaded.rubrics.len(),
                    loaded.prompts.len(),
                    loaded.scenarios.len(),
                    planned.runs.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(PlanError::Invalid(found)) => problems.extend(
                found
                    .0
                    .iter()
                    .map(|p| format!("manifest.json: {}: {}", p.field, p.message)),
            ),
            Err(e) => return Err(e.into()),
        }
    }
    bail!(
        "{}",
        socratic_local::problem_list(&dir.display().to_string(), &problems)
    )
}

async fn run(args: RunArgs, mode: Mode) -> anyhow::Result<ExitCode> {
    let args = args.with_catalog_defaults();
    let defaults = Defaults::load().context("loading the embedded catalog")?;
    let own_catalog = args.catalog.as_deref().map(catalog::load).transpose()?;
    let models_file = args.models.as_deref().map(read_models).transpose()?;
    let mut request = manifest_request(&args, &defaults)?;
    if let Mode::Rejudge { .. } = mode
        && args.judges.is_empty()
    {
        bail!("rejudge needs at least one --judge");
    }
    if let (Mode::Rejudge { .. }, Some(set)) = (&mode, args.scenario_set) {
        bail!("rejudge judges the source manifest's scenarios; --scenario-set {set} cannot apply");
    }
    if let Some(cap) = args.max_cost
        && !(cap.is_finite() && cap >= 0.0)
    {
        bail!("--max-cost must be a number of dollars >= 0, got {cap}");
    }

    let blobs: Arc<dyn BlobStore> = Arc::new(
        FsBlobStore::new(&args.out).with_context(|| format!("creating {}", args.out.display()))?,
    );
    // A benchmark lives in the results directory's database, so a killed one resumes; an
    // estimate leaves no trace.
    let results = match mode {
        Mode::Estimate => None,
        _ => Some(ResultsDir::acquire(&args.out)?),
    };
    let ledger = results.as_ref().map(|r| CallLedger::new(r.database()));
    let budget = Arc::new(args.max_cost.map_or_else(Budget::unlimited, Budget::new));
    let cache_store: Option<Arc<dyn BlobStore>> = if args.no_cache {
        None
    } else {
        let dir = args.cache.clone().unwrap_or_else(|| args.out.clone());
        Some(Arc::new(
            FsBlobStore::new(&dir).with_context(|| format!("creating {}", dir.display()))?,
        ))
    };
    let options = ClientOptions {
        budget: Arc::clone(&budget),
        cache: cache_store.clone().map(|store| {
            let mode = if args.replay {
                CacheMode::ReplayOnly
            } else {
                CacheMode::ReadWrite
            };
            (store, mode)
        }),
        concurrency: args.concurrency,
        retry: RetryPolicy::default(),
        ledger: ledger.clone(),
    };
    // Simulated models are charged at their catalog prices, so the cap means the same
    // offline, and cached like any other, so a resumed benchmark never calls one twice.
    // They cost nothing, so --replay does not restrict them.
    let simulated_options = ClientOptions {
        cache: cache_store.map(|store| (store, CacheMode::ReadWrite)),
        ..options.clone()
    };
    let simulated = Layers {
        prices: SimulatedLlm::catalog()
            .first()
            .map(|m| m.prices)
            .unwrap_or_default(),
        cache_namespace: Some(PROVIDER.to_owned()),
        concurrency: args.concurrency,
        requests_per_minute: None,
        attempt_timeout: None,
    }
    .build(
        Arc::new(SimulatedLlm::with_latency(Duration::from_millis(
            args.latency_ms,
        ))),
        &simulated_options,
    );
    let mut providers = Providers::new().with(PROVIDER, simulated.benchmark);
    let mut real_models = Vec::new();
    if let Some(file) = &models_file {
        let (with_models, built) = file.clients(&options, providers).await?;
        providers = with_models;
        real_models = built
            .into_iter()
            .filter(|(entry, _)| entry.provider != "simulated")
            .collect();
    }
    let config = PipelineConfig {
        max_runs_per_manifest: args.max_runs,
        // More would only wait for a model's slot, counted as started in the ledger.
        judge_calls_at_once: args.concurrency.max(1),
        ..PipelineConfig::default()
    };
    let pipeline = match results {
        Some(results) => Backend::sqlite(results, Arc::clone(&blobs), providers, config),
        None => Backend::memory(Arc::clone(&blobs), providers, config),
    };
    let mut catalog = SimulatedLlm::catalog();
    if let Some(file) = &models_file {
        catalog.extend(file.catalog());
    }
    pipeline
        .install_catalog(&catalog)
        .await
        .context("installing the catalog")?;
    if let Some(own) = &own_catalog {
        own.install(pipeline.repository())
            .await
            .context("installing the catalog directory")?;
    }

    if let Mode::Rejudge {
        from,
        manifest_id,
        rubric,
        judge_prompt,
    } = &mode
    {
        let source_blobs =
            FsBlobStore::new(from).with_context(|| format!("opening {}", from.display()))?;
        let source = match manifest_id {
            Some(id) => id
                .parse::<ManifestId>()
                .map_err(|e| anyhow::anyhow!("--manifest-id {id:?}: {e}"))?,
            None => latest_dialogue_manifest(&source_blobs)
                .await?
                .with_context(|| format!("{} holds no finished manifest", from.display()))?,
        };
        let imported = import_manifest(&source_blobs, pipeline.repository(), &source)
            .await
            .with_context(|| format!("loading manifest {source} from {}", from.display()))?;
        println!(
            "re-judging manifest {source}: {} of {} run(s) have a finished dialogue",
            imported.runs, imported.manifest.run_count
        );
        let allow_self_judging = request.allow_self_judging;
        request = rejudge_request(
            &imported.manifest,
            request.judges.clone(),
            rubric.as_deref().map(RubricId::new).transpose()?,
            judge_prompt.as_deref().map(PromptId::new).transpose()?,
        );
        request.allow_self_judging |= allow_self_judging;
    }
    let used = used_models(&request);
    real_models.retain(|(entry, _)| used.contains(&entry.id));

    let planned_estimate = match estimate(pipeline.repository(), &request).await {
        Ok(e) => e,
        Err(error) => bail!("the manifest cannot be estimated: {error}"),
    };
    print_estimate(&planned_estimate, args.max_cost);
    if let Mode::Estimate = mode {
        return Ok(ExitCode::SUCCESS);
    }

    if !args.no_preflight && !args.replay && !real_models.is_empty() {
        let failures = models::preflight(&real_models).await;
        if !failures.is_empty() {
            bail!(
                "preflight failed before anything was planned (skip it with --no-preflight):\n  - {}",
                failures.join("\n  - ")
            );
        }
    }

    let started = Instant::now();
    let recovered = pipeline.recover().await?;
    let planned = match plan(&pipeline.ports, &request).await {
        Ok(planned) => planned,
        Err(PlanError::Invalid(problems)) => {
            let list: Vec<String> = problems.0.iter().map(|p| format!("  - {p}")).collect();
            bail!("the manifest is invalid:\n{}", list.join("\n"));
        }
        Err(e) => return Err(e.into()),
    };
    let id = planned.manifest.id;
    tracing::info!(manifest = %id, runs = planned.runs.len(), recovered, "planned");
    if let Some(ledger) = &ledger {
        ledger.set_scope(id.to_string());
        let earlier = ledger
            .totals(&id.to_string())
            .await
            .map_err(anyhow::Error::msg)?;
        // What earlier processes of this benchmark spent counts against the cap.
        budget.add_spent(earlier.spent_usd);
        if !planned.created {
            let finished = pipeline
                .repository()
                .manifest_progress(&id)
                .await?
                .map_or(0, |p| p.finished);
            let total = planned.manifest.run_count;
            if finished >= total {
                println!(
                    "manifest {id} already ran in {}: reusing its {total} run(s); {} model call(s), ${:.4}",
                    args.out.display(),
                    earlier.calls,
                    earlier.spent_usd
                );
            } else {
                println!(
                    "resuming manifest {id}: {finished} of {total} run(s) already finished; {} model call(s), ${:.4}, spent before ({} cut off in flight)",
                    earlier.calls, earlier.spent_usd, earlier.cut_off
                );
            }
        }
    }

    let runner = pipeline.runner(args.concurrency);
    let bar = ProgressBar::new(planned.manifest.run_count);
    if args.quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs, eta {eta} {msg}",
    )?);
    let progress = {
        let runner = runner.clone();
        let bar = bar.clone();
        let budget = Arc::clone(&budget);
        tokio::spawn(async move {
            loop {
                if let Ok((finished, _)) = runner.progress(&id).await {
                    bar.set_position(finished);
                }
                let cap = budget.cap();
                bar.set_message(if cap.is_finite() {
                    format!("spent ${:.4} of ${cap:.4}", budget.spent())
                } else {
                    format!("spent ${:.4}", budget.spent())
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let outcome = tokio::select! {
        summary = runner.complete(&id, None) => Some(summary),
        _ = tokio::signal::ctrl_c() => None,
    };
    progress.abort();
    let Some(summary) = outcome else {
        bar.abandon_with_message("interrupted");
        // Every write is atomic (store transactions, blob renames), so stopping between
        // them leaves nothing half-written.
        let (finished, total) = runner.progress(&id).await.unwrap_or((0, 0));
        let note = serde_json::json!({
            "manifest": id,
            "interrupted": true,
            "finished_runs": finished,
            "runs": total,
            "spent_usd": budget.spent(),
        });
        let path = args.out.join("interrupted.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&note)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "interrupted: {finished} of {total} run(s) finished, ${:.4} spent; see {}. Run the same command again to resume.",
            budget.spent(),
            path.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    };
    let summary = summary?;
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
    let dead = pipeline.dead_letters().await?;
    if !dead.is_empty() {
        tracing::warn!(count = dead.len(), "messages were dead-lettered");
    }

    let stats = runner.stats();
    let recorded: u64 = summary
        .leaderboard
        .iter()
        .flat_map(|r| r.usage.values())
        .map(|u| u.calls)
        .sum();
    let called = budget.answered();
    println!("\n{}", report::leaderboard_text(&summary));
    println!(
        "{} runs, {recorded} model answers ({called} called now, {} from the cache or reused) in {:.1?}; retries {}, dead-lettered {}; spent ${:.4}",
        summary.runs,
        recorded.saturating_sub(called),
        started.elapsed(),
        stats.values().map(|s| s.retried).sum::<u64>(),
        dead.len(),
        budget.spent(),
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
    if summary.stopped_by_budget {
        let skipped = runs_in(pipeline.repository(), &id, RunStatus::Skipped).await;
        println!("skipped: budget — {} run(s):", skipped.len());
        for run in skipped.iter().take(20) {
            println!(
                "  {} {} × {} (repetition {})",
                run.id, run.tutor.model, run.scenario, run.repetition
            );
        }
        if skipped.len() > 20 {
            println!("  … and {} more", skipped.len() - 20);
        }
        eprintln!(
            "the spending cap of ${:.4} stopped the benchmark: {} run(s) skipped",
            budget.cap(),
            summary.skipped_runs
        );
        return Ok(ExitCode::from(EXIT_BUDGET));
    }
    if summary.failed_runs > 0 {
        let reasons = failure_reasons(pipeline.repository(), &id).await;
        eprintln!(
            "{} run(s) failed:\n  - {}",
            summary.failed_runs,
            reasons.join("\n  - ")
        );
        return Ok(ExitCode::from(EXIT_FAILED_RUNS));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every model id the manifest will call: a re-judge calls only its judges.
fn used_models(request: &ManifestRequest) -> Vec<String> {
    let mut ids: Vec<String> = request.judges.iter().map(|m| m.model.to_string()).collect();
    if request.rejudge_of.is_none() {
        ids.extend(request.tutors.iter().map(|m| m.model.to_string()));
        if let Some(student) = &request.student {
            ids.push(student.model.to_string());
        }
    }
    ids
}

/// Renders `report.html` and `leaderboard.csv` of a finished manifest again from its
/// `summary.json`, with its settings and runs from the results directory's database when it
/// has them, and prints the leaderboard.
async fn rerender(out: &Path, manifest_id: Option<&str>) -> anyhow::Result<ExitCode> {
    let manifests = out.join("curated").join("manifests");
    let id = match manifest_id {
        Some(id) => id.to_owned(),
        None => {
            let mut ids: Vec<String> = std::fs::read_dir(&manifests)
                .with_context(|| format!("reading {}", manifests.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("summary.json").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            ids.sort();
            ids.pop()
                .with_context(|| format!("{} holds no finished manifest", out.display()))?
        }
    };
    let dir = manifests.join(&id);
    let path = dir.join("summary.json");
    let summary: socratic_core::entity::ManifestSummary = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let defaults = Defaults::load().context("loading the embedded catalog")?;
    if defaults.rubric.id != summary.rubric {
        bail!(
            "manifest {id} was scored against rubric {}, which is not in the built-in catalog",
            summary.rubric
        );
    }
    let html = match rerender_details(out, &summary).await? {
        Some((manifest, runs)) => report::HtmlReport::new(&summary, &defaults.rubric)
            .manifest(&manifest)
            .runs(&runs)
            .render(),
        None => report::report_html(&summary, &defaults.rubric),
    };
    let csv = report::leaderboard_csv(&summary);
    for target in [&dir, &out.to_path_buf()] {
        std::fs::write(target.join("report.html"), &html)
            .with_context(|| format!("writing {}", target.join("report.html").display()))?;
        std::fs::write(target.join("leaderboard.csv"), &csv)
            .with_context(|| format!("writing {}", target.join("leaderboard.csv").display()))?;
    }
    std::fs::copy(&path, out.join("summary.json"))?;
    println!("{}", report::leaderboard_text(&summary));
    println!("report: {}", out.join("report.html").display());
    Ok(ExitCode::SUCCESS)
}

/// The manifest and its runs, for the report, from the results directory's database and
/// files; `None` when the directory has no database (the report then shows the summary only).
async fn rerender_details(
    out: &Path,
    summary: &socratic_core::entity::ManifestSummary,
) -> anyhow::Result<Option<(Manifest, report::ReportRuns)>> {
    if !out.join(socratic_sqlite::DATABASE_FILE).is_file() {
        return Ok(None);
    }
    let repository = history(out)?;
    let manifest = repository
        .get::<Manifest>(&socratic_core::keys::manifest(&summary.manifest))
        .await?
        .with_context(|| format!("manifest {} is not in {}", summary.manifest, out.display()))?
        .value;
    let blobs = FsBlobStore::new(out).with_context(|| format!("opening {}", out.display()))?;
    let runs = socratic_core::pipeline::report_runs(&repository, &blobs, &manifest).await?;
    Ok(Some((manifest, runs)))
}

/// A manifest's runs in `status`.
async fn runs_in(repository: &Repository, manifest: &ManifestId, status: RunStatus) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut cursor = None;
    loop {
        let Ok(page) = repository
            .list_runs(&RunFilter::Manifest(*manifest), 1000, cursor)
            .await
        else {
            break;
        };
        runs.extend(page.items.into_iter().filter(|r| r.status == status));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    runs
}

/// The distinct failure reasons of a manifest's failed runs, at most five.
async fn failure_reasons(repository: &Repository, manifest: &ManifestId) -> Vec<String> {
    let mut reasons: Vec<String> = runs_in(repository, manifest, RunStatus::Failed)
        .await
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| f.reason.clone()))
        .collect();
    reasons.sort();
    reasons.dedup();
    reasons.truncate(5);
    reasons
}
