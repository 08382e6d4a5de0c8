//! A benchmark in a results directory: its options, its estimate, its run and what came of it.
//!
//! [`Benchmark::open`] does everything before the first model call: it reads the manifest,
//! the models file and a catalog directory, takes the results directory's lock, assembles
//! every model's client stack (ledger, cache, limits, retries and the budget) and stores the
//! catalog. [`Benchmark::estimate`] prices the plan; [`Benchmark::run`] checks each real model
//! once, plans (or finds the manifest already planned, and resumes it), runs every stage until
//! the summary is written, and copies the report files to the top of the directory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socratic_core::assembly::Assembly;
use socratic_core::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt};
use socratic_core::clock::SteppingClock;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::{
    ManifestRequest, ManifestSummary, ModelConfig, Run, RunStatus, StudentConfig, from_json,
};
use socratic_core::estimate::{PlanEstimate, PlanPower, estimate, plan_power};
use socratic_core::id::{ManifestId, ModelId, PromptId, RubricId};
use socratic_core::keys;
use socratic_core::llm::{
    BatchJournal, BatchOptions, Batcher, Budget, CacheMode, CallRecorder, MemoryBatchJournal,
    RetryPolicy,
};
use socratic_core::pipeline::{
    PipelineConfig, PlanError, Ports, Providers, import_manifest, latest_dialogue_manifest, plan,
    rejudge_request,
};
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_core::stats::DesignVariance;
use socratic_memory::{MemoryBackend, MemoryBlobStore};
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::PROVIDER;
use socratic_sqlite::{CallLedger, LedgerTotals, ResultsDir};

use crate::bundle::Reproduction;
use crate::catalog;
use crate::error::{Context, Error};
use crate::given_cache::{CacheHits, Counting, GivenCache, Located, Source};
use crate::history::History;
use crate::models::{self, Batching, ClientOptions, ModelClients, ModelEntry, ModelsFile};

/// Judge calls of one run at once in batch mode: all of them, so that they join one round.
const BATCH_JUDGE_CALLS: usize = 256;

/// The files a finished benchmark leaves at the top of its results directory.
pub const REPORT_FILES: [&str; 3] = ["summary.json", "leaderboard.csv", "report.html"];

/// The note an interrupted benchmark leaves in its results directory.
pub const INTERRUPTED_FILE: &str = "interrupted.json";

/// Changes to the manifest's design.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// A named set of the built-in scenarios instead of the manifest's.
    pub scenario_set: Option<ScenarioSet>,
    /// Tutors instead of the manifest's.
    pub tutors: Vec<ModelId>,
    /// The student instead of the manifest's.
    pub student: Option<ModelId>,
    /// Judges instead of the manifest's.
    pub judges: Vec<ModelId>,
    /// Let a tutor also judge.
    pub allow_self_judging: bool,
    /// Repetitions per tutor × scenario.
    pub repetitions: Option<u32>,
    /// Turns per run.
    pub turns: Option<u32>,
}

/// Where the response cache lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheChoice {
    /// In the results directory (`cache/llm/`).
    #[default]
    InResults,
    /// Named with `--cache`: a results directory (its `cache/llm/`), that `cache/` folder, or
    /// a bundle (its answers are copied into the results directory's cache first). A path
    /// holding none of these is an error.
    At(PathBuf),
    /// No cache: real models are called for every request.
    Off,
}

/// What to re-judge: the dialogues of a finished manifest, scored again by the options'
/// judges, without calling a tutor or student.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rejudge {
    /// The results directory holding it; the options' own by default.
    pub from: Option<PathBuf>,
    /// The manifest; by default the newest that ran its own dialogues.
    pub manifest: Option<ManifestId>,
    /// Score against this rubric instead of the source's.
    pub rubric: Option<RubricId>,
    /// Use this judge prompt instead of the source's.
    pub judge_prompt: Option<PromptId>,
}

/// Everything a benchmark is opened with.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkOptions {
    /// The results directory.
    pub out: PathBuf,
    /// A manifest request as JSON; by default the catalog directory's `manifest.json`, else
    /// the eight starter scenarios × three simulated tutors × three turns.
    pub manifest: Option<PathBuf>,
    /// The models file; by default the catalog directory's `models.toml`, if it has one.
    pub models: Option<PathBuf>,
    /// A benchmark directory of your own, whose rubrics, prompts and scenarios join the
    /// catalog.
    pub catalog: Option<PathBuf>,
    /// Changes to the manifest's design.
    pub overrides: Overrides,
    /// Concurrent calls per model, judge calls of a turn at once, and workers per stage.
    pub concurrency: usize,
    /// Manifests planning more runs are refused.
    pub max_runs: u64,
    /// How long each call of a simulated model takes.
    pub simulated_latency: Duration,
    /// A hard cap on spend in US dollars.
    pub max_cost: Option<f64>,
    /// Where the response cache lives.
    pub cache: CacheChoice,
    /// Answer real models only from the cache; a call it cannot answer fails.
    pub replay: bool,
    /// Send every real model one request before planning, so a wrong key fails in seconds.
    pub preflight: bool,
    /// Re-judge a finished manifest instead of running the manifest's dialogues.
    pub rejudge: Option<Rejudge>,
    /// Send the calls of every model that can take them through its provider's batch
    /// interface (models marked `batch = true` in the models file go there without it).
    pub batch: bool,
    /// In batch mode, stop once every submitted batch is running and nothing else can
    /// advance ([`Outcome::Detached`]); the same command later collects and goes on.
    pub detach: bool,
    /// In batch mode, the time between polls of a submitted batch.
    pub batch_poll: Duration,
    /// In batch mode, how long no new call must arrive before a round is submitted.
    pub batch_gather: Duration,
}

impl Default for BenchmarkOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("results"),
            manifest: None,
            models: None,
            catalog: None,
            overrides: Overrides::default(),
            concurrency: 8,
            max_runs: 10_000,
            simulated_latency: Duration::ZERO,
            max_cost: None,
            cache: CacheChoice::InResults,
            replay: false,
            preflight: true,
            rejudge: None,
            batch: false,
            detach: false,
            batch_poll: BatchOptions::default().poll,
            batch_gather: BatchOptions::default().gather,
        }
    }
}

/// Told as a benchmark goes.
pub trait Progress: Send + Sync {
    /// The manifest is planned, or was planned by an earlier process: once, before any run
    /// starts.
    fn planned(&self, _planned: &Planned) {}

    /// Runs finished so far, and dollars spent of the cap (infinite without one): about ten
    /// times a second.
    fn advanced(&self, _finished: u64, _total: u64, _spent_usd: f64, _cap_usd: f64) {}

    /// The cache `--cache` named has answered none of the first lookups: at most once, as
    /// soon as [`COLD_AFTER`](crate::given_cache::COLD_AFTER) lookups missed (or at the end,
    /// for a benchmark with fewer).
    fn cache_cold(&self, _given: &GivenCache, _hits: CacheHits) {}
}

/// Nothing to tell.
impl Progress for () {}

/// A planned benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The manifest.
    pub manifest: ManifestId,
    /// Its runs.
    pub runs: u64,
    /// What earlier processes did, when this one resumes or reuses it.
    pub resumed: Option<Resumed>,
}

/// What earlier processes of a benchmark did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resumed {
    /// Runs they finished: all of them when the benchmark is reused as it is.
    pub finished: u64,
    /// Their model calls and spend, from the call ledger.
    pub earlier: LedgerTotals,
}

/// Where a finished benchmark's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFiles {
    /// `report.html`.
    pub report: PathBuf,
    /// `leaderboard.csv`.
    pub leaderboard: PathBuf,
    /// `summary.json`.
    pub summary: PathBuf,
}

impl ResultFiles {
    fn of(out: &Path) -> Self {
        Self {
            report: out.join("report.html"),
            leaderboard: out.join("leaderboard.csv"),
            summary: out.join("summary.json"),
        }
    }
}

/// A benchmark that reached its summary.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The summary.
    pub summary: ManifestSummary,
    /// How long this process ran it.
    pub elapsed: Duration,
    /// Model answers behind the summary.
    pub answers: u64,
    /// Of those, answers this process paid a model for (the rest came from the cache or
    /// earlier processes).
    pub called_now: u64,
    /// Stage messages handled again after a transient error.
    pub retries: u64,
    /// Messages dead-lettered.
    pub dead_letters: usize,
    /// Dollars spent, earlier processes of this benchmark included.
    pub spent_usd: f64,
    /// The cap in dollars (infinite without one).
    pub cap_usd: f64,
    /// Runs the cap skipped, up to 100.
    pub skipped: Vec<Run>,
    /// The distinct reasons runs failed, at most five.
    pub failure_reasons: Vec<String>,
    /// Where its files are; `None` for a benchmark in memory.
    pub files: Option<ResultFiles>,
    /// The cache `--cache` named, and how often it answered.
    pub cache: Option<(GivenCache, CacheHits)>,
}

/// A benchmark stopped before its summary; every write so far is whole, and running it again
/// resumes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted {
    /// The manifest.
    pub manifest: ManifestId,
    /// Runs that finished.
    pub finished: u64,
    /// Its runs.
    pub runs: u64,
    /// Dollars spent.
    pub spent_usd: f64,
    /// The note left in the results directory; `None` for a benchmark in memory.
    pub note: Option<PathBuf>,
}

/// What came of a run.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It reached its summary (which says whether the cap stopped it, or runs failed).
    Finished(Box<Finished>),
    /// It was stopped first.
    Interrupted(Interrupted),
    /// It stopped to wait for its batches (`detach`): they are recorded and keep running at
    /// the providers; the same benchmark opened again collects them.
    Detached(Interrupted),
}

/// The source of a re-judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejudgeSource {
    /// Its manifest.
    pub manifest: ManifestId,
    /// Its runs with a finished dialogue.
    pub dialogues: usize,
    /// Its runs.
    pub runs: u64,
}

/// A benchmark opened in a results directory (or in memory), ready to estimate and run.
pub struct Benchmark {
    options: BenchmarkOptions,
    request: ManifestRequest,
    backend: Box<dyn Assembly>,
    ports: Ports,
    budget: Arc<Budget>,
    ledger: Option<CallLedger>,
    real_models: Vec<(ModelEntry, ModelClients)>,
    rejudging: Option<RejudgeSource>,
    /// Whether its results are files in the results directory (not only in memory).
    persist: bool,
    /// The cache `--cache` named, and its lookups.
    given_cache: Option<Given>,
    /// Batch mode's batcher, and which models it batches.
    batching: Option<Batching>,
}

/// The cache `--cache` named, and its store that counts lookups.
type Given = (GivenCache, Arc<Counting<Arc<dyn BlobStore>>>);

impl std::fmt::Debug for Benchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Benchmark")
            .field("options", &self.options)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl Benchmark {
    /// Opens the benchmark in its results directory, which this process then holds until the
    /// benchmark is dropped ([`ResultsDir`]): a killed benchmark opened again resumes.
    pub async fn open(options: BenchmarkOptions) -> Result<Self, Error> {
        Self::assemble(options, true, None).await
    }

    /// The same benchmark in memory: nothing is written and the results directory is left
    /// alone. For an estimate, or a benchmark whose results need not outlive the process.
    pub async fn in_memory(options: BenchmarkOptions) -> Result<Self, Error> {
        Self::assemble(options, false, None).await
    }

    /// A finished benchmark run again exactly, in `options.out` (or in memory): its manifest
    /// stored as it was (same id and time, so the same run ids), only its catalog, its clock
    /// stopped at the time its summary was computed, and every model (simulated ones too)
    /// answering from `reproduction.cache` alone, so that no model is called.
    pub(crate) async fn reproducing(
        options: BenchmarkOptions,
        reproduction: Reproduction,
        persist: bool,
    ) -> Result<Self, Error> {
        Self::assemble(options, persist, Some(reproduction)).await
    }

    async fn assemble(
        options: BenchmarkOptions,
        persist: bool,
        reproduction: Option<Reproduction>,
    ) -> Result<Self, Error> {
        let options = options.with_catalog_defaults();
        options.check()?;
        let defaults = Defaults::load().context("loading the embedded catalog")?;
        let own_catalog = options.catalog.as_deref().map(catalog::load).transpose()?;
        let models_file = match &reproduction {
            Some(r) => Some(ModelsFile {
                path: PathBuf::from(crate::bundle::MODELS),
                models: r.models.clone(),
                servers: Vec::new(),
            }),
            None => options
                .models
                .as_deref()
                .map(models::load_from_env)
                .transpose()?,
        };
        let request = match &reproduction {
            Some(r) => r.manifest.request.clone(),
            None => options.request(&defaults)?,
        };

        let budget = Arc::new(options.max_cost.map_or_else(Budget::unlimited, Budget::new));
        // Before the results directory is opened, so that a --cache naming nothing leaves no
        // trace.
        let located = match (&options.cache, persist, &reproduction) {
            (CacheChoice::At(path), true, None) => Some(crate::given_cache::locate(path).await?),
            _ => None,
        };
        let (backend, blobs, ledger) = backend(&options.out, persist)?;
        let mut given_cache = None;
        let cache = match &reproduction {
            Some(r) => Some((Arc::clone(&r.cache), CacheMode::ReplayOnly)),
            None => options
                .cache_store(persist, &blobs, located, &mut given_cache)
                .await?
                .map(|store| {
                    let mode = if options.replay {
                        CacheMode::ReplayOnly
                    } else {
                        CacheMode::ReadWrite
                    };
                    (store, mode)
                }),
        };
        let batching = (reproduction.is_none()
            && (options.batch || models_file.iter().any(|f| f.models.iter().any(|m| m.batch))))
        .then(|| {
            let journal: Arc<dyn BatchJournal> = match &ledger {
                Some(ledger) => Arc::new(socratic_sqlite::BatchRecords::new(ledger)),
                None => Arc::new(MemoryBatchJournal::new()),
            };
            Batching {
                batcher: Batcher::new(
                    journal,
                    Arc::clone(&budget),
                    cache.as_ref().map(|(store, _)| Arc::clone(store)),
                    BatchOptions {
                        poll: options.batch_poll,
                        gather: options.batch_gather,
                    },
                ),
                all: options.batch,
            }
        });
        let client_options = ClientOptions {
            budget: Arc::clone(&budget),
            cache,
            concurrency: options.concurrency,
            retry: RetryPolicy::default(),
            recorder: ledger.clone().map(|l| Arc::new(l) as Arc<dyn CallRecorder>),
            offline: reproduction.is_some(),
            batching: batching.clone(),
        };
        let mut providers = Providers::new().with(PROVIDER, simulated(&options, &client_options));
        let mut real_models = Vec::new();
        if let Some(file) = &models_file {
            let (with_models, built) = file.clients(&client_options, providers).await?;
            providers = with_models;
            real_models = built
                .into_iter()
                .filter(|(entry, _)| entry.provider != "simulated")
                .collect();
        }
        let config = PipelineConfig {
            max_runs_per_manifest: options.max_runs,
            // More would only wait for a model's slot, counted as started in the ledger. In
            // batch mode every judge call of a run joins the round at once.
            judge_calls_at_once: if batching.is_some() {
                BATCH_JUDGE_CALLS
            } else {
                options.concurrency.max(1)
            },
            ..PipelineConfig::default()
        };
        let mut ports = backend.ports(blobs, providers, config);
        if let Some(r) = &reproduction {
            r.install(&ports.repository, &options.out).await?;
            ports.clock = Arc::new(SteppingClock::new(r.computed_at, 0));
        } else {
            let mut catalog_models = SimulatedLlm::catalog();
            catalog_models.extend(models_file.iter().flat_map(ModelsFile::catalog));
            socratic_core::defaults::install_catalog(&ports.repository, &catalog_models)
                .await
                .context("installing the catalog")?;
        }
        if let Some(own) = &own_catalog {
            own.install(&ports.repository)
                .await
                .context("installing the catalog directory")?;
        }
        let mut benchmark = Self {
            options,
            request,
            backend,
            ports,
            budget,
            ledger,
            real_models,
            rejudging: None,
            persist,
            given_cache,
            batching,
        };
        benchmark.import_rejudged().await?;
        let used = benchmark.used_models();
        benchmark
            .real_models
            .retain(|(entry, _)| used.contains(&entry.id));
        Ok(benchmark)
    }

    /// For a re-judge, loads the source manifest's dialogues and turns the request into the
    /// re-judge of it.
    async fn import_rejudged(&mut self) -> Result<(), Error> {
        let Some(rejudge) = &self.options.rejudge else {
            return Ok(());
        };
        let from = rejudge.from.as_ref().unwrap_or(&self.options.out);
        let source_blobs = socratic_sqlite::ResultsBlobs::read(from)?;
        let source = match rejudge.manifest {
            Some(id) => id,
            None => latest_dialogue_manifest(&source_blobs)
                .await
                .with_context(|| format!("reading the manifests of {}", from.display()))?
                .ok_or_else(|| {
                    Error::NotFound(format!("{} holds no finished manifest", from.display()))
                })?,
        };
        let imported = import_manifest(&source_blobs, &self.ports.repository, &source)
            .await
            .with_context(|| format!("loading manifest {source} from {}", from.display()))?;
        let allow_self_judging = self.request.allow_self_judging;
        self.request = rejudge_request(
            &imported.manifest,
            self.request.judges.clone(),
            rejudge.rubric.clone(),
            rejudge.judge_prompt.clone(),
        );
        self.request.allow_self_judging |= allow_self_judging;
        self.rejudging = Some(RejudgeSource {
            manifest: source,
            dialogues: imported.runs,
            runs: imported.manifest.run_count,
        });
        Ok(())
    }

    /// The manifest request it runs.
    pub fn request(&self) -> &ManifestRequest {
        &self.request
    }

    /// The manifest a re-judge scores again.
    pub fn rejudging(&self) -> Option<&RejudgeSource> {
        self.rejudging.as_ref()
    }

    /// The options it was opened with, the catalog directory's defaults filled in.
    pub fn options(&self) -> &BenchmarkOptions {
        &self.options
    }

    /// The pipeline's ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The plan and its cost, with no model call.
    /// In batch mode, a model that batch mode leaves live ([`Benchmark::batch_split`]) is
    /// counted at its live prices, whatever batch prices it has.
    pub async fn estimate(&self) -> Result<PlanEstimate, Error> {
        let mut plan = estimate(&self.ports.repository, &self.request)
            .await
            .map_err(|e| Error::Invalid(format!("the manifest cannot be estimated: {e}")))?;
        for id in self.batch_split().1 {
            let Some(model) = ModelId::new(&id)
                .ok()
                .and_then(|id| plan.models.get_mut(&id))
            else {
                continue;
            };
            plan.batch_cost_usd += model.cost_usd - model.batch_cost_usd;
            plan.batch_worst_cost_usd += model.worst_cost_usd - model.batch_worst_cost_usd;
            model.batch_cost_usd = model.cost_usd;
            model.batch_worst_cost_usd = model.worst_cost_usd;
            model.batch_priced = false;
        }
        Ok(plan)
    }

    /// What the plan can detect: the smallest difference between two tutors at 80% power, and
    /// the scenarios that would detect 0.25 and 0.5 points, with the variance of the newest
    /// finished benchmark in the results directory (the default without one).
    pub async fn power(&self) -> Result<PlanPower, Error> {
        Ok(plan_power(&self.request, self.observed_variance().await?))
    }

    /// The real models whose calls go through their providers' batch interfaces, and those
    /// that batch mode leaves live (their providers have none); both empty outside batch mode.
    pub fn batch_split(&self) -> (Vec<String>, Vec<String>) {
        let Some(batching) = &self.batching else {
            return (Vec::new(), Vec::new());
        };
        let (batched, live): (Vec<&ModelEntry>, Vec<&ModelEntry>) = self
            .real_models
            .iter()
            .map(|(entry, _)| entry)
            .partition(|entry| batching.batches(entry));
        let ids = |entries: Vec<&ModelEntry>| entries.into_iter().map(|e| e.id.clone()).collect();
        (ids(batched), ids(live))
    }

    /// Whether the benchmark calls a model that is not simulated (and so costs money).
    pub fn calls_real_models(&self) -> bool {
        !self.real_models.is_empty()
    }

    /// The variance the newest finished benchmark of the results directory observed.
    async fn observed_variance(&self) -> Result<Option<(ManifestId, DesignVariance)>, Error> {
        let repository = if self.persist {
            self.ports.repository.clone()
        } else if self
            .options
            .out
            .join(socratic_sqlite::DATABASE_FILE)
            .is_file()
        {
            History::open(&self.options.out)?.repository().clone()
        } else {
            return Ok(None);
        };
        let reading = || "reading the finished benchmarks".to_owned();
        for manifest in repository.all_manifests().await.with_context(reading)? {
            let summary = repository
                .get::<ManifestSummary>(&keys::manifest_summary(&manifest.id))
                .await
                .with_context(reading)?;
            if let Some(variance) = summary.and_then(|s| s.value.design_variance) {
                return Ok(Some((manifest.id, variance)));
            }
        }
        Ok(None)
    }

    /// Runs the benchmark to its summary.
    pub async fn run(&self, progress: &dyn Progress) -> Result<Outcome, Error> {
        self.run_until(progress, std::future::pending()).await
    }

    /// Runs the benchmark until its summary, or until `stop` completes (Ctrl-C): then it
    /// leaves [`INTERRUPTED_FILE`] and answers [`Outcome::Interrupted`]. Every write is atomic
    /// (store transactions, blob renames), so stopping between them leaves nothing
    /// half-written.
    pub async fn run_until(
        &self,
        progress: &dyn Progress,
        stop: impl Future<Output = ()>,
    ) -> Result<Outcome, Error> {
        self.preflight().await?;
        let started = Instant::now();
        let recovered = self
            .backend
            .recover()
            .await
            .context("recovering the stage queues")?;
        let planned = match plan(&self.ports, &self.request).await {
            Ok(planned) => planned,
            Err(PlanError::Invalid(problems)) => return Err(Error::InvalidManifest(problems)),
            Err(e) => return Err(e).context("planning the manifest"),
        };
        let id = planned.manifest.id;
        tracing::info!(manifest = %id, runs = planned.runs.len(), recovered, "planned");
        let resumed = self.resume(&id, planned.created).await?;
        self.record_models(&id).await?;
        progress.planned(&Planned {
            manifest: id,
            runs: planned.manifest.run_count,
            resumed,
        });

        // In batch mode every run advances at once, so that each round holds them all. Twice
        // as many workers as runs: a resumed benchmark may hold two jobs of a run (the one
        // released from the stopped process and the one planning sends again for a run
        // still pending), and a worker idling on the duplicate must not keep a run waiting
        // for the next round.
        let workers = match &self.batching {
            Some(_) => usize::try_from(planned.manifest.run_count)
                .unwrap_or(usize::MAX / 2)
                .saturating_mul(2)
                .max(self.options.concurrency),
            None => self.options.concurrency,
        };
        let runner = self
            .backend
            .runner(self.ports.clone(), workers, RunnerConfig::default());
        let detached = async {
            match (&self.batching, self.options.detach) {
                (Some(batching), true) => batching.batcher.waiting_on_providers().await,
                _ => std::future::pending().await,
            }
        };
        let told_cold = std::sync::atomic::AtomicBool::new(false);
        let ticker = async {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Ok((finished, total)) = runner.progress(&id).await {
                    progress.advanced(finished, total, self.budget.spent(), self.budget.cap());
                }
                self.tell_cold(progress, &told_cold, crate::given_cache::COLD_AFTER);
            }
        };
        let summary = tokio::select! {
            summary = runner.complete(&id, None) => summary.context("running the benchmark")?,
            () = stop => return self.interrupted(&runner, id, false).await,
            () = detached => return self.interrupted(&runner, id, true).await,
            () = ticker => unreachable!("the ticker never ends"),
        };
        self.tell_cold(progress, &told_cold, 1);
        self.finished(&runner, summary, started).await
    }

    /// Writes the real models the benchmark calls to `models/<manifest>.json` (as the models
    /// file has them: names of key variables, never keys), so that an export can bundle them.
    async fn record_models(&self, id: &ManifestId) -> Result<(), Error> {
        if !self.persist || self.real_models.is_empty() {
            return Ok(());
        }
        let entries: Vec<&ModelEntry> = self.real_models.iter().map(|(entry, _)| entry).collect();
        let path = format!("{}/{id}.json", crate::bundle::MODELS_FOLDER);
        let key = BlobKey::new(&path).context("naming the models record")?;
        match self
            .ports
            .blobs
            .put_json(&key, &entries, BlobPutMode::Create)
            .await
        {
            Ok(_) | Err(BlobError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("writing {path}")),
        }
    }

    /// Tells `progress` once that the given cache answered none of at least `after` lookups.
    fn tell_cold(&self, progress: &dyn Progress, told: &std::sync::atomic::AtomicBool, after: u64) {
        use std::sync::atomic::Ordering;
        let Some((given, counting)) = &self.given_cache else {
            return;
        };
        let hits = counting.hits();
        if hits.hits == 0 && hits.lookups >= after && !told.swap(true, Ordering::Relaxed) {
            progress.cache_cold(given, hits);
        }
    }

    /// The cache `--cache` named: what it is and what it holds.
    pub fn given_cache(&self) -> Option<&GivenCache> {
        self.given_cache.as_ref().map(|(given, _)| given)
    }

    /// Sends every real model one request, unless the options or a replay say not to.
    async fn preflight(&self) -> Result<(), Error> {
        if !self.options.preflight || self.options.replay || self.real_models.is_empty() {
            return Ok(());
        }
        let failures = models::preflight(&self.real_models).await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::Preflight(failures))
        }
    }

    /// Files this process's calls under the manifest in the ledger, and counts what earlier
    /// processes of it spent against the cap.
    async fn resume(&self, id: &ManifestId, created: bool) -> Result<Option<Resumed>, Error> {
        let Some(ledger) = &self.ledger else {
            return Ok(None);
        };
        ledger.set_scope(id.to_string());
        let earlier = ledger
            .totals(&id.to_string())
            .await
            .map_err(|message| Error::Failed {
                context: "reading the call ledger".to_owned(),
                source: message.into(),
            })?;
        self.budget.add_spent(earlier.spent_usd);
        if created {
            return Ok(None);
        }
        let finished = self
            .ports
            .repository
            .manifest_progress(id)
            .await
            .context("reading the manifest's progress")?
            .map_or(0, |p| p.finished);
        Ok(Some(Resumed { finished, earlier }))
    }

    /// Writes [`INTERRUPTED_FILE`] for a benchmark stopped by Ctrl-C, or detached to let its
    /// batches run, and answers the outcome.
    async fn interrupted(
        &self,
        runner: &Runner,
        id: ManifestId,
        detached: bool,
    ) -> Result<Outcome, Error> {
        let (finished, runs) = runner.progress(&id).await.unwrap_or((0, 0));
        let spent_usd = self.budget.spent();
        let note = if self.persist {
            let note = serde_json::json!({
                "manifest": id,
                "interrupted": !detached,
                "detached": detached,
                "finished_runs": finished,
                "runs": runs,
                "spent_usd": spent_usd,
            });
            let path = self.options.out.join(INTERRUPTED_FILE);
            let text = serde_json::to_vec_pretty(&note).context("writing the interruption note")?;
            std::fs::write(&path, text).map_err(Error::io(&path))?;
            Some(path)
        } else {
            None
        };
        let stopped = Interrupted {
            manifest: id,
            finished,
            runs,
            spent_usd,
            note,
        };
        Ok(if detached {
            Outcome::Detached(stopped)
        } else {
            Outcome::Interrupted(stopped)
        })
    }

    async fn finished(
        &self,
        runner: &Runner,
        summary: ManifestSummary,
        started: Instant,
    ) -> Result<Outcome, Error> {
        let out = &self.options.out;
        if self.persist {
            // The report files are written under curated/; they appear at the top too.
            let curated = out
                .join("curated")
                .join("manifests")
                .join(summary.manifest.to_string());
            for name in REPORT_FILES {
                crate::publish(&curated.join(name), &out.join(name))?;
            }
        }
        let dead_letters = self
            .backend
            .dead_letters()
            .await
            .context("reading the dead-letter queues")?;
        if !dead_letters.is_empty() {
            tracing::warn!(count = dead_letters.len(), "messages were dead-lettered");
        }
        let status = self
            .ports
            .repository
            .manifest_status(&summary.manifest, 1000)
            .await
            .context("reading the manifest's runs")?;
        let stopped = status.map(|s| s.stopped).unwrap_or_default();
        let skipped: Vec<Run> = stopped
            .iter()
            .filter(|r| r.status == RunStatus::Skipped)
            .take(100)
            .cloned()
            .collect();
        let mut failure_reasons: Vec<String> = stopped
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .filter_map(|r| r.failure.as_ref().map(|f| f.reason.clone()))
            .collect();
        failure_reasons.sort();
        failure_reasons.dedup();
        failure_reasons.truncate(5);
        let answers = summary
            .leaderboard
            .iter()
            .flat_map(|r| r.usage.values())
            .map(|u| u.calls)
            .sum();
        Ok(Outcome::Finished(Box::new(Finished {
            elapsed: started.elapsed(),
            answers,
            called_now: self.budget.answered(),
            retries: runner.stats().values().map(|s| s.retried).sum(),
            dead_letters: dead_letters.len(),
            spent_usd: self.budget.spent(),
            cap_usd: self.budget.cap(),
            skipped,
            failure_reasons,
            files: self.persist.then(|| ResultFiles::of(out)),
            cache: self
                .given_cache
                .as_ref()
                .map(|(given, counting)| (given.clone(), counting.hits())),
            summary,
        })))
    }

    /// Every model id the manifest will call: a re-judge calls only its judges.
    fn used_models(&self) -> Vec<String> {
        let request = &self.request;
        let mut ids: Vec<String> = request.judges.iter().map(|m| m.model.to_string()).collect();
        if request.rejudge_of.is_none() {
            ids.extend(request.tutors.iter().map(|m| m.model.to_string()));
            if let Some(student) = &request.student {
                ids.push(student.model.to_string());
            }
        }
        ids
    }
}

/// Where a benchmark keeps its state, its files, and its call ledger.
type Backend = (Box<dyn Assembly>, Arc<dyn BlobStore>, Option<CallLedger>);

/// The results directory (its lock taken), or memory.
fn backend(out: &Path, persist: bool) -> Result<Backend, Error> {
    if !persist {
        return Ok((
            Box::new(MemoryBackend::new()),
            Arc::new(MemoryBlobStore::new()),
            None,
        ));
    }
    let results = ResultsDir::acquire(out)?;
    let ledger = CallLedger::new(results.database());
    let blobs = results.blobs()?;
    Ok((Box::new(results), Arc::new(blobs), Some(ledger)))
}

/// The simulated models behind the one client stack: charged at their catalog prices, so the
/// cap means the same offline, and cached like any other, so a resumed benchmark never calls
/// one twice. They cost nothing, so a replay does not restrict them.
fn simulated(
    options: &BenchmarkOptions,
    client_options: &ClientOptions,
) -> Arc<dyn socratic_core::llm::LlmClient> {
    // A reproduction answers simulated models from the cache too: it calls nothing.
    let read_write = ClientOptions {
        cache: client_options.cache.clone().map(|(store, mode)| {
            let mode = if client_options.offline {
                mode
            } else {
                CacheMode::ReadWrite
            };
            (store, mode)
        }),
        ..client_options.clone()
    };
    let prices = SimulatedLlm::catalog()
        .first()
        .map(|m| m.prices)
        .unwrap_or_default();
    read_write
        .stack(prices, Some(PROVIDER.to_owned()), None)
        .build(Arc::new(SimulatedLlm::with_latency(
            options.simulated_latency,
        )))
}

impl BenchmarkOptions {
    /// The catalog directory's manifest and models file, where none was named.
    fn with_catalog_defaults(mut self) -> Self {
        if let Some(dir) = &self.catalog {
            let existing = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
            self.manifest = self.manifest.or_else(|| existing("manifest.json"));
            self.models = self.models.or_else(|| existing("models.toml"));
        }
        self
    }

    /// Options that contradict each other, or a cap that is not an amount.
    fn check(&self) -> Result<(), Error> {
        if self.rejudge.is_some() && self.overrides.judges.is_empty() {
            return Err(Error::Invalid(
                "rejudge needs at least one --judge".to_owned(),
            ));
        }
        if let (Some(_), Some(set)) = (&self.rejudge, self.overrides.scenario_set) {
            return Err(Error::Invalid(format!(
                "rejudge judges the source manifest's scenarios; --scenario-set {set} cannot apply"
            )));
        }
        if let Some(cap) = self.max_cost
            && !(cap.is_finite() && cap >= 0.0)
        {
            return Err(Error::Invalid(format!(
                "--max-cost must be a number of dollars >= 0, got {cap}"
            )));
        }
        Ok(())
    }

    /// The manifest request: the file's, or the default offline benchmark, with the
    /// overrides applied.
    fn request(&self, defaults: &Defaults) -> Result<ManifestRequest, Error> {
        let mut request: ManifestRequest = match &self.manifest {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
                from_json("manifest", &text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => socratic_sim::simulated_manifest(defaults),
        };
        let o = &self.overrides;
        let configs = |ids: &[ModelId], temperature: f64| -> Vec<ModelConfig> {
            ids.iter()
                .map(|model| ModelConfig {
                    model: model.clone(),
                    temperature,
                })
                .collect()
        };
        if let Some(set) = o.scenario_set {
            request.scenarios = defaults.scenario_ids(set);
        }
        if !o.tutors.is_empty() {
            request.tutors = configs(&o.tutors, 0.7);
        }
        if !o.judges.is_empty() {
            request.judges = configs(&o.judges, 0.0);
        }
        request.allow_self_judging |= o.allow_self_judging;
        if let Some(student) = &o.student {
            request.student = Some(StudentConfig {
                model: student.clone(),
                temperature: 0.7,
                prompt: defaults.student_prompt.id.clone(),
            });
        }
        if let Some(repetitions) = o.repetitions {
            request.repetitions = repetitions;
        }
        if let Some(turns) = o.turns {
            request.turns = turns;
        }
        Ok(request)
    }

    /// The blob store of the response cache: none without one, or in memory; the results
    /// directory's `blobs` by default; the cache `--cache` named ([`crate::given_cache`]),
    /// located beforehand, counted in `given`.
    async fn cache_store(
        &self,
        persist: bool,
        blobs: &Arc<dyn BlobStore>,
        located: Option<Located>,
        given: &mut Option<Given>,
    ) -> Result<Option<Arc<dyn BlobStore>>, Error> {
        let store = match (&self.cache, persist, located) {
            (CacheChoice::Off, _, _) | (_, false, _) => return Ok(None),
            (CacheChoice::InResults, true, _) | (CacheChoice::At(_), true, None) => {
                return Ok(Some(Arc::clone(blobs)));
            }
            (CacheChoice::At(_), true, Some(located)) => {
                let store: Arc<dyn BlobStore> = match &located.source {
                    Source::Bundle(bundle) => {
                        crate::given_cache::unpack(bundle, blobs.as_ref()).await?;
                        Arc::clone(blobs)
                    }
                    Source::Results(dir) if crate::same_dir(dir, &self.out) => Arc::clone(blobs),
                    Source::Results(dir) => Arc::new(socratic_sqlite::ResultsBlobs::unlocked(dir)?),
                };
                let counting = Arc::new(Counting::new(store));
                *given = Some((located.given, Arc::clone(&counting)));
                counting
            }
        };
        Ok(Some(store))
    }
}
