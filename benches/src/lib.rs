//! Shared set-up for the benchmarks: a local pipeline over the simulated models.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use socratic_core::assembly::Assembly;
use socratic_core::blob::BlobStore;
use socratic_core::defaults::{Defaults, install_catalog};
use socratic_core::entity::{ManifestRequest, ModelConfig};
use socratic_core::id::ModelId;
use socratic_core::llm::{
    ClientStack, ConverseRequest, ConverseResponse, LlmClient, LlmError, Role,
};
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_memory::{LocalPipeline, MemoryBlobStore};
use socratic_sim::simulated::{PROVIDER, SOCRATIC_TUTOR, STRICT_JUDGE};
use socratic_sim::{SimulatedLlm, simulated_manifest};
use socratic_sqlite::ResultsDir;

/// How long the simulated models' calls took, per role: the time a model itself takes (a
/// timer's sleep overshoots its 100 ms a little), against which the pipeline's own overhead is
/// measured.
#[derive(Debug, Default)]
pub struct CallTimes {
    /// Per role (tutor, student, judge): calls and their total nanoseconds.
    roles: [(AtomicU64, AtomicU64); 3],
}

impl CallTimes {
    fn slot(role: Role) -> usize {
        match role {
            Role::Tutor => 0,
            Role::Student => 1,
            Role::Judge => 2,
        }
    }

    /// The mean duration of `role`'s calls so far.
    pub fn mean(&self, role: Role) -> Option<Duration> {
        let (calls, nanos) = &self.roles[Self::slot(role)];
        let calls = calls.load(Ordering::Relaxed);
        (calls > 0).then(|| Duration::from_nanos(nanos.load(Ordering::Relaxed) / calls))
    }
}

/// The simulated models, timed inside the concurrency limit (so waiting for a slot is not
/// counted as the model's time).
struct Timed {
    llm: SimulatedLlm,
    times: Arc<CallTimes>,
}

#[async_trait]
impl LlmClient for Timed {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let started = Instant::now();
        let response = self.llm.converse(request).await;
        let (calls, nanos) = &self.times.roles[CallTimes::slot(request.role)];
        calls.fetch_add(1, Ordering::Relaxed);
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos.fetch_add(elapsed, Ordering::Relaxed);
        response
    }
}

fn providers(latency: Duration, per_model: usize, times: Arc<CallTimes>) -> Providers {
    let timed = Timed {
        llm: SimulatedLlm::with_latency(latency),
        times,
    };
    Providers::new().with(
        PROVIDER,
        ClientStack::new()
            .concurrency(per_model)
            .build(Arc::new(timed)),
    )
}

fn config() -> PipelineConfig {
    PipelineConfig {
        max_runs_per_manifest: 100_000,
        ..PipelineConfig::default()
    }
}

/// A local pipeline whose simulated models take `latency` per call, at most `per_model` at once,
/// timed into `times`.
pub async fn pipeline(latency: Duration, per_model: usize, times: Arc<CallTimes>) -> LocalPipeline {
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let local = LocalPipeline::new(blobs, providers(latency, per_model, times), config());
    local
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .unwrap_or_else(|e| panic!("catalog: {e}"));
    local
}

/// Where a SQLite pipeline keeps its artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifacts {
    /// In memory, so that only the database differs from the memory pipeline.
    Memory,
    /// In the results directory as the command line keeps them ([`socratic_sqlite::ResultsBlobs`]:
    /// raw artifacts, cached answers and curated runs in the database, reports as files).
    Files,
}

/// The same pipeline with its store and queues in the SQLite database of the results
/// directory `dir`, and a runner with `workers` workers. Also returns the ports, for a
/// benchmark that calls a stage itself.
pub async fn sqlite_pipeline(
    dir: &std::path::Path,
    artifacts: Artifacts,
    latency: Duration,
    per_model: usize,
    workers: usize,
    runner: RunnerConfig,
    times: Arc<CallTimes>,
) -> (ResultsDir, Ports, Runner) {
    let results = ResultsDir::acquire(dir).unwrap_or_else(|e| panic!("{e}"));
    let blobs: Arc<dyn BlobStore> = match artifacts {
        Artifacts::Memory => Arc::new(MemoryBlobStore::new()),
        Artifacts::Files => Arc::new(results.blobs().unwrap_or_else(|e| panic!("{e}"))),
    };
    let ports = results.ports(blobs, providers(latency, per_model, times), config());
    install_catalog(&ports.repository, &SimulatedLlm::catalog())
        .await
        .unwrap_or_else(|e| panic!("catalog: {e}"));
    let runner = results.runner(ports.clone(), workers, runner);
    (results, ports, runner)
}

/// `runs` runs of the Socratic simulated tutor: the eight scenarios × `runs / 8` repetitions,
/// three turns each (tutor, student and judge per turn; no student after the last).
pub fn manifest(runs: u32) -> ManifestRequest {
    manifest_judged(runs, 1)
}

/// [`manifest`] judged by `judges` simulated judges (1 or 2: the lenient one, then the strict
/// one), whose agreement the curator then computes.
pub fn manifest_judged(runs: u32, judges: usize) -> ManifestRequest {
    let defaults = Defaults::load().unwrap_or_else(|e| panic!("defaults: {e}"));
    let mut request = simulated_manifest(&defaults);
    if judges > 1 {
        request.judges.push(ModelConfig {
            model: ModelId::new(STRICT_JUDGE).unwrap_or_else(|e| panic!("{e}")),
            temperature: 0.0,
        });
    }
    request.tutors = vec![ModelConfig {
        model: ModelId::new(SOCRATIC_TUTOR).unwrap_or_else(|e| panic!("{e}")),
        temperature: 0.7,
    }];
    request.repetitions = (runs / 8).max(1);
    request.label = Some(format!("throughput benchmark, {runs} runs"));
    request
}

/// Peak resident set size of this process in KiB (`VmHWM`), where the OS reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
