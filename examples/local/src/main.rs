//! `socratic`: the command line of the local deployment. The work is the `socratic-local`
//! library's; this binary holds the flags, the dispatch, the printing, the progress bar and
//! the exit codes.

// Printing is what this binary is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bundle;
mod catalog;
mod history;
mod output;
mod remote;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use socratic_core::defaults::ScenarioSet;
use socratic_core::id::{ManifestId, ModelId, PromptId, RubricId, RunId};

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
        manifest_id: Option<ManifestId>,
    },
    /// List the batches a results directory's benchmarks submitted to providers' batch
    /// interfaces (`run --batch`), with their states; `--cancel` cancels those still running.
    Batches {
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Only this benchmark's batches.
        #[arg(long = "manifest-id")]
        manifest_id: Option<ManifestId>,
        /// Ask the providers to cancel the open batches (what they answered by then is
        /// collected by the next `run`, which sends the rest again).
        #[arg(long, requires = "models")]
        cancel: bool,
        /// The models file the benchmark ran with (its keys and base URLs), for --cancel.
        #[arg(long)]
        models: Option<PathBuf>,
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
        /// The run id (as in the report or `list`'s benchmarks).
        run: RunId,
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Print the curated run as JSON (run, turns, judgments, summary) instead.
        #[arg(long)]
        json: bool,
    },
    /// Compare manifest B with baseline A over their shared models and scenarios: per-model
    /// paired differences with 95% intervals and Holm-adjusted p-values.
    Compare {
        /// The baseline manifest.
        a: ManifestId,
        /// The manifest compared with it.
        b: ManifestId,
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
        manifest_id: Option<ManifestId>,
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Serve a page on 127.0.0.1 where people score a sample of a finished benchmark's tutor
    /// turns, blind to tutors and judges; every score is saved at once for `calibrate`.
    Label(LabelArgs),
    /// Write one finished benchmark to one file (a bundle): its manifest, catalog, models
    /// (names of key variables only), cached answers, curated runs, report and labels.
    Export {
        /// The bundle to write (`.tar.gz`).
        file: PathBuf,
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// The benchmark; by default the newest finished one.
        #[arg(long = "manifest-id")]
        manifest_id: Option<ManifestId>,
        /// The models file the benchmark ran with, for results directories that did not
        /// record it.
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Unpack a bundle into a results directory, checking every byte; merges with what the
    /// directory holds, and importing twice changes nothing.
    Import {
        /// The bundle.
        file: PathBuf,
        /// The results directory (created if missing).
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Run a bundle's (or a results directory's) benchmark again in a new directory with no
    /// model call, and check that summary.json, leaderboard.csv and report.html come out byte
    /// for byte the same.
    Replay {
        /// A bundle, or a results directory.
        source: PathBuf,
        /// The new results directory.
        #[arg(long)]
        out: PathBuf,
        /// The benchmark of a results directory; by default its newest finished one.
        #[arg(long = "manifest-id")]
        manifest_id: Option<ManifestId>,
        /// The models file a results directory's benchmark ran with, for directories that did
        /// not record it.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Runs at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Upload the finished benchmarks of a results directory into a deployed stack's table
    /// and bucket (docs/deployment.md, "Push local results"): its admin API and report then
    /// serve them. Overwrites nothing; pushing again is a no-op.
    Push {
        /// The results directory.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// One benchmark; by default every finished one.
        #[arg(long = "manifest-id")]
        manifest_id: Option<ManifestId>,
        /// The stack's name: its outputs name the table and bucket.
        #[arg(long, conflicts_with_all = ["table", "bucket"], required_unless_present_all = ["table", "bucket"])]
        stack: Option<String>,
        /// The stack's DynamoDB table, instead of --stack.
        #[arg(long, requires = "bucket")]
        table: Option<String>,
        /// The stack's S3 bucket, instead of --stack.
        #[arg(long, requires = "table")]
        bucket: Option<String>,
        /// Compare only: print what a push would write, and any conflict, writing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy a finished benchmark from a deployed admin API into a results directory, where
    /// report, list, show and compare read it (the last step of `run --remote`).
    Pull {
        /// The benchmark's manifest id in the deployment.
        manifest_id: ManifestId,
        /// The admin API's URL; the key from `SOCRATIC_API_KEY`.
        #[arg(long, value_name = "API_URL")]
        remote: String,
        /// The results directory (created if missing).
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
pub(crate) struct RunArgs {
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
    tutors: Vec<ModelId>,
    /// The student model instead of the manifest's.
    #[arg(long)]
    student: Option<ModelId>,
    /// Judge models instead of the manifest's (repeat the flag).
    #[arg(long = "judge")]
    judges: Vec<ModelId>,
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
    /// Run on a deployed admin API instead of here (its URL, such as the stack's `ApiUrl`
    /// output; the key from `SOCRATIC_API_KEY`): the manifest and the catalog entities it uses
    /// are sent, progress is followed, and the finished results are pulled into --out.
    #[arg(long, value_name = "API_URL")]
    remote: Option<String>,
    /// With --remote: seconds between progress checks.
    #[arg(long, default_value_t = 5.0, requires = "remote")]
    poll_seconds: f64,
    /// Send the calls of models marked `batch = true`, or of every model that can take
    /// them, through the providers' batch interfaces at their batch prices, one round of
    /// batches per turn (see docs/models.md). With `estimate`: print the batch cost and
    /// wall time beside the live ones.
    #[arg(long, conflicts_with = "remote")]
    batch: bool,
    /// In batch mode, return once the submitted batches are running (exit status 75);
    /// the same command run again (by hand, a schedule or a cron line) collects them and
    /// submits the next round.
    #[arg(long, conflicts_with = "remote")]
    detach: bool,
    /// In batch mode, seconds between polls of a submitted batch.
    #[arg(long, default_value_t = 30.0)]
    batch_poll_seconds: f64,
    /// In batch mode, seconds without a new call after which a round's batches are
    /// submitted (longer for benchmarks of many runs on a slow disk).
    #[arg(long, default_value_t = 5.0)]
    batch_gather_seconds: f64,
}

#[derive(Debug, Clone, Args)]
struct LabelArgs {
    /// The results directory.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The benchmark to label; by default the newest finished one.
    #[arg(long = "manifest-id")]
    manifest_id: Option<ManifestId>,
    /// How many turns to sample: every tutor, vector, and early and late turns.
    #[arg(long, default_value_t = socratic_core::labelling::DEFAULT_SAMPLE)]
    turns: usize,
    /// The sample's seed; raters given the same seed label the same turns (by default one
    /// drawn from the manifest, printed at start).
    #[arg(long)]
    seed: Option<u64>,
    /// Who labels; without it the page asks.
    #[arg(long)]
    rater: Option<String>,
    /// The port to try first; if it is taken, or not given, a free one is used.
    #[arg(long)]
    port: Option<u16>,
    /// Write the stored labels to this CSV file (the format `calibrate --labels` reads) and
    /// exit, serving nothing.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct RejudgeArgs {
    /// The results directory holding the manifest to re-judge; by default `--out`.
    #[arg(long)]
    from: Option<PathBuf>,
    /// The manifest to re-judge; by default the newest that ran its own dialogues.
    #[arg(long = "manifest-id")]
    manifest_id: Option<ManifestId>,
    /// Score against this rubric instead of the source's.
    #[arg(long)]
    rubric: Option<RubricId>,
    /// Use this judge prompt instead of the source's.
    #[arg(long)]
    judge_prompt: Option<PromptId>,
    /// The judges (`--judge`, required), models file, cap, cache and output.
    #[command(flatten)]
    run: RunArgs,
}

/// Exit status when an input or an operation failed.
const EXIT_ERROR: u8 = 2;
/// Exit status when the spending cap stopped the benchmark.
const EXIT_BUDGET: u8 = 3;
/// Exit status when runs failed.
const EXIT_FAILED_RUNS: u8 = 4;
/// Exit status when Ctrl-C stopped the benchmark.
const EXIT_INTERRUPTED: u8 = 130;
/// Batch mode with --detach stopped to let its batches run (`EX_TEMPFAIL`: try again later).
const EXIT_DETACHED: u8 = 75;

/// `socratic run`: here, or on the deployed admin API `--remote` names.
async fn run_here_or_remote(args: RunArgs) -> Status {
    match args.remote.clone() {
        #[cfg(feature = "remote")]
        Some(url) => remote::run(args, &url).await,
        #[cfg(not(feature = "remote"))]
        Some(_) => Err(without("remote", "run --remote")),
        None => run::run(args, None).await,
    }
}

/// The error of a command this build left out.
#[allow(dead_code)]
fn without(feature: &str, command: &str) -> socratic_local::Error {
    socratic_local::Error::Invalid(format!(
        "this socratic was built without the {feature} feature, which {command} needs"
    ))
}

/// What a subcommand answers: its exit status, or why it failed.
type Status = Result<ExitCode, socratic_local::Error>;

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
        None => run_here_or_remote(cli.run).await,
        Some(Command::Run(args)) => run_here_or_remote(args).await,
        Some(Command::Estimate(args)) => run::estimate(args).await,
        Some(Command::Rejudge(args)) => {
            let rejudge = socratic_local::Rejudge {
                from: args.from,
                manifest: args.manifest_id,
                rubric: args.rubric,
                judge_prompt: args.judge_prompt,
            };
            run::run(args.run, Some(rejudge)).await
        }
        Some(Command::Report { out, manifest_id }) => history::report(&out, manifest_id).await,
        Some(Command::List { out }) => history::list(&out).await,
        Some(Command::Batches {
            out,
            manifest_id,
            cancel,
            models,
        }) => history::batches(&out, manifest_id, cancel, models.as_deref()).await,
        Some(Command::Show { run, out, json }) => history::show(&out, &run, json).await,
        Some(Command::Compare { a, b, out }) => history::compare(&out, a, b).await,
        Some(Command::Calibrate {
            labels,
            manifest_id,
            out,
        }) => history::calibrate(&out, labels.as_deref(), manifest_id).await,
        Some(Command::Label(args)) => history::label(args).await,
        Some(Command::Export {
            file,
            out,
            manifest_id,
            models,
        }) => bundle::export(&out, manifest_id, models.as_deref(), &file).await,
        Some(Command::Import { file, out }) => bundle::import(&file, &out).await,
        Some(Command::Replay {
            source,
            out,
            manifest_id,
            models,
            concurrency,
        }) => bundle::replay(&source, manifest_id, models.as_deref(), &out, concurrency).await,
        Some(Command::Push {
            out,
            manifest_id,
            stack,
            table,
            bucket,
            dry_run,
        }) => {
            #[cfg(feature = "aws")]
            {
                let data = match (stack, table, bucket) {
                    (Some(stack), ..) => socratic_local::push::StackData::Stack(stack),
                    (None, Some(table), Some(bucket)) => {
                        socratic_local::push::StackData::Named { table, bucket }
                    }
                    // clap requires --stack or both --table and --bucket.
                    _ => unreachable!("clap checks push's target"),
                };
                remote::push(&out, manifest_id, data, dry_run).await
            }
            #[cfg(not(feature = "aws"))]
            {
                let _ = (out, manifest_id, stack, table, bucket, dry_run);
                Err(without("aws", "push"))
            }
        }
        Some(Command::Pull {
            manifest_id,
            remote,
            out,
        }) => {
            #[cfg(feature = "remote")]
            {
                remote::pull(&manifest_id, &remote, &out).await
            }
            #[cfg(not(feature = "remote"))]
            {
                let _ = (manifest_id, remote, out);
                Err(without("remote", "pull"))
            }
        }
        Some(Command::Init { dir }) => catalog::init(&dir),
        Some(Command::Check { dir }) => catalog::check(&dir).await,
        Some(Command::Models { models, no_check }) => catalog::models(&models, no_check).await,
    };
    result.unwrap_or_else(|error| {
        if output::closed_pipe(&error) {
            // The reader stopped early, as `head` does: nothing went wrong.
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {error}");
        ExitCode::from(EXIT_ERROR)
    })
}
