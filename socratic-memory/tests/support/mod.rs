//! A whole benchmark on memory backends, for the pipeline tests.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::blob::BlobStore;
use socratic_core::clock::{SequentialIds, SteppingClock, SystemClock, Timestamp, UlidGenerator};
use socratic_core::defaults::Defaults;
use socratic_core::entity::{ManifestRequest, ManifestSummary};
use socratic_core::id::ModelId;
use socratic_core::llm::LlmClient;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::queue::{QueueConsumer, QueueProducer};
use socratic_core::repository::Repository;
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_core::store::Store;
use socratic_memory::{MemoryBlobStore, MemoryStore};
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::PROVIDER;

/// The three queues of a pipeline, each with its dead-letter queue.
pub type Queues = socratic_memory::LocalQueues;

/// Dialogue, judge and run-event producers.
pub type Producers = (
    Arc<dyn QueueProducer>,
    Arc<dyn QueueProducer>,
    Arc<dyn QueueProducer>,
);

pub struct Harness {
    pub store: MemoryStore,
    pub blobs: MemoryBlobStore,
    pub queues: Queues,
    pub ports: Ports,
}

pub struct Options {
    pub llm: Arc<dyn LlmClient>,
    pub store: Option<Arc<dyn Store>>,
    pub producers: Option<Producers>,
    pub visibility: Duration,
    pub max_attempts: u32,
    pub config: PipelineConfig,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            llm: Arc::new(SimulatedLlm::new()),
            store: None,
            producers: None,
            visibility: Duration::from_secs(30),
            max_attempts: 3,
            config: PipelineConfig::default(),
        }
    }
}

impl Harness {
    pub async fn new(options: Options) -> Self {
        let store = MemoryStore::new();
        let blobs = MemoryBlobStore::new();
        let queues = Queues::new(options.visibility, options.max_attempts);
        let shared_store: Arc<dyn Store> = options.store.unwrap_or_else(|| Arc::new(store.clone()));
        let (dialogue, judge, events) = options.producers.unwrap_or_else(|| {
            (
                Arc::new(queues.dialogue.clone()) as Arc<dyn QueueProducer>,
                Arc::new(queues.judge.clone()) as Arc<dyn QueueProducer>,
                Arc::new(queues.events.clone()) as Arc<dyn QueueProducer>,
            )
        });
        let ports = Ports {
            repository: Repository::new(shared_store),
            blobs: Arc::new(blobs.clone()) as Arc<dyn BlobStore>,
            dialogue_jobs: dialogue,
            judge_jobs: judge,
            run_events: events,
            providers: Providers::new().with(PROVIDER, options.llm),
            clock: Arc::new(SteppingClock::new(
                Timestamp::from_millis(1_764_000_000_000),
                1,
            )),
            ids: Arc::new(SequentialIds::default()),
            config: options.config,
        };
        let harness = Self {
            store,
            blobs,
            queues,
            ports,
        };
        harness.install_catalog().await;
        harness
    }

    pub async fn install_catalog(&self) {
        Defaults::load()
            .unwrap()
            .install(&self.ports.repository)
            .await
            .unwrap();
        for model in SimulatedLlm::catalog() {
            self.ports.repository.put_catalog(&model).await.unwrap();
        }
    }

    pub fn runner(&self, workers: usize, config: RunnerConfig) -> Runner {
        self.runner_with(
            workers,
            config,
            Arc::new(self.queues.dialogue.clone()),
            Arc::new(self.queues.judge.clone()),
            Arc::new(self.queues.events.clone()),
        )
    }

    pub fn runner_with(
        &self,
        workers: usize,
        config: RunnerConfig,
        dialogue: Arc<dyn QueueConsumer>,
        judge: Arc<dyn QueueConsumer>,
        events: Arc<dyn QueueConsumer>,
    ) -> Runner {
        Runner::builder(self.ports.clone())
            .stage_lanes(dialogue, judge, events, workers)
            .config(config)
            .build()
    }

    /// Runs workers until the queues stay empty, for tests that expect no summary.
    pub async fn drain(&self, runner: &Runner) {
        let queues = self.queues.clone();
        runner
            .run_until(async move {
                let mut quiet = 0;
                while quiet < 10 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let busy = !queues.dialogue.is_empty()
                        || !queues.judge.is_empty()
                        || !queues.events.is_empty();
                    quiet = if busy { 0 } else { quiet + 1 };
                }
            })
            .await;
    }
}

pub fn fast_config() -> RunnerConfig {
    RunnerConfig {
        receive_wait: Duration::from_millis(20),
        visibility_timeout: None,
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        poll_interval: Duration::from_millis(10),
    }
}

pub fn model(id: &str) -> ModelId {
    ModelId::new(id).unwrap()
}

/// The default local benchmark: eight scenarios × three simulated tutors × three turns.
pub fn default_request() -> ManifestRequest {
    let mut request = socratic_sim::simulated_manifest(&Defaults::load().unwrap());
    request.label = Some("test".into());
    request
}

/// What a run produced, without ids and timestamps, keyed by (tutor, scenario, repetition).
pub type Outcome = BTreeMap<(String, String, u32), serde_json::Value>;

pub async fn outcome(ports: &Ports, summary: &ManifestSummary) -> Outcome {
    use socratic_core::repository::RunFilter;
    let runs = ports
        .repository
        .list_runs(&RunFilter::Manifest(summary.manifest), 1000, None)
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for run in runs.items {
        let record = ports.repository.run_record(&run.id).await.unwrap().unwrap();
        let turns: Vec<_> = record
            .turns
            .iter()
            .map(|t| (t.index, t.tutor_text.clone(), t.student_text.clone()))
            .collect();
        let judgments: Vec<_> = record
            .judgments
            .iter()
            .map(|j| {
                (
                    j.turn,
                    j.judge.to_string(),
                    serde_json::to_value(&j.outcome).unwrap(),
                )
            })
            .collect();
        let mut summary_json = serde_json::to_value(record.summary.as_ref()).unwrap();
        if let Some(obj) = summary_json.as_object_mut() {
            obj.remove("computed_at");
            obj.remove("run");
            obj.remove("manifest");
        }
        out.insert(
            (run.tutor.model.to_string(), run.scenario.to_string(), run.repetition),
            serde_json::json!({
                "status": run.status, "turns": turns, "judgments": judgments, "summary": summary_json,
            }),
        );
    }
    out
}

/// The leaderboard without timestamps and ids.
pub fn leaderboard(summary: &ManifestSummary) -> serde_json::Value {
    let mut value = serde_json::to_value(summary).unwrap();
    let obj = value.as_object_mut().unwrap();
    obj.remove("computed_at");
    obj.remove("manifest");
    for row in obj.get_mut("leaderboard").unwrap().as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("manifest");
    }
    for row in obj.get_mut("vectors").unwrap().as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("manifest");
    }
    value
}

/// A store wrapper whose every operation yields first, so every store call is a point where
/// a handler can be interrupted.
pub struct YieldingStore<S>(pub S);

#[async_trait]
impl<S: Store> Store for YieldingStore<S> {
    async fn get(
        &self,
        key: &socratic_core::store::Key,
    ) -> Result<Option<socratic_core::store::Item>, socratic_core::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn put(
        &self,
        item: socratic_core::store::Item,
        mode: socratic_core::store::PutMode,
    ) -> Result<(), socratic_core::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.put(item, mode).await
    }
    async fn query(
        &self,
        query: &socratic_core::store::Query,
    ) -> Result<socratic_core::store::Page, socratic_core::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.query(query).await
    }
    async fn transact(
        &self,
        ops: Vec<socratic_core::store::TxOp>,
    ) -> Result<(), socratic_core::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.transact(ops).await
    }
}

pub fn unused() {
    let _ = (SystemClock, UlidGenerator::default());
}

/// The manifest's status as its counts give it (runs per status, stopped runs in run order)
/// equals the status counted from its runs one by one.
pub async fn assert_counts_match_runs(ports: &Ports, id: &socratic_core::id::ManifestId) {
    use socratic_core::repository::RunFilter;
    let repo = &ports.repository;
    let status = repo.manifest_status(id, usize::MAX).await.unwrap().unwrap();
    let (mut by_status, mut stopped) = (BTreeMap::new(), Vec::new());
    let mut cursor = None;
    loop {
        let page = repo
            .list_runs(&RunFilter::Manifest(*id), 1000, cursor)
            .await
            .unwrap();
        for run in page.items {
            *by_status.entry(run.status).or_insert(0u64) += 1;
            if run.status.is_stopped() {
                stopped.push(run);
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(status.by_status, by_status, "runs per status");
    assert_eq!(status.stopped_count, stopped.len() as u64);
    assert_eq!(status.stopped, stopped, "the stopped runs, in run order");
}
