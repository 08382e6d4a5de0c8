//! A whole pipeline in one process: memory store, memory queues with dead-letter queues, and
//! any blob store and model clients. The local benchmark, the local server, the tests and the
//! benchmarks all assemble it the same way.

use std::sync::Arc;
use std::time::Duration;

use socratic_core::blob::BlobStore;
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::defaults::install_catalog;
use socratic_core::entity::Model;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::repository::{RepoError, Repository};
use socratic_core::runner::{Runner, RunnerConfig};

use crate::{MemoryQueue, MemoryStore};

/// Deliveries of a message before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a received message stays hidden before it is delivered again.
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);

/// The three queues of a pipeline, each with its own dead-letter queue.
#[derive(Debug, Clone)]
pub struct LocalQueues {
    /// Dialogue jobs.
    pub dialogue: MemoryQueue,
    /// Judge jobs.
    pub judge: MemoryQueue,
    /// `run-judged` events.
    pub events: MemoryQueue,
}

impl LocalQueues {
    /// Fresh queues.
    pub fn new(visibility: Duration, max_attempts: u32) -> Self {
        let queue =
            || MemoryQueue::with_dead_letter(visibility, max_attempts, MemoryQueue::default());
        Self {
            dialogue: queue(),
            judge: queue(),
            events: queue(),
        }
    }

    /// Every dead-lettered message body.
    pub fn dead_letters(&self) -> Vec<String> {
        [&self.dialogue, &self.judge, &self.events]
            .iter()
            .filter_map(|q| q.dead_letter())
            .flat_map(MemoryQueue::bodies)
            .collect()
    }
}

/// A pipeline on memory backends.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    /// The store behind the repository.
    pub store: MemoryStore,
    /// The queues.
    pub queues: LocalQueues,
    /// What the stages use.
    pub ports: Ports,
}

impl LocalPipeline {
    /// A pipeline writing artifacts to `blobs` and calling models through `providers`, with the
    /// system clock and ULIDs.
    pub fn new(blobs: Arc<dyn BlobStore>, providers: Providers, config: PipelineConfig) -> Self {
        let store = MemoryStore::new();
        let queues = LocalQueues::new(VISIBILITY_TIMEOUT, MAX_ATTEMPTS);
        let ports = Ports {
            repository: Repository::new(Arc::new(store.clone())),
            blobs,
            dialogue_jobs: Arc::new(queues.dialogue.clone()),
            judge_jobs: Arc::new(queues.judge.clone()),
            run_events: Arc::new(queues.events.clone()),
            providers,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator::default()),
            config,
        };
        Self {
            store,
            queues,
            ports,
        }
    }

    /// Stores the default catalog and `models`. Idempotent.
    pub async fn install_catalog(&self, models: &[Model]) -> Result<(), RepoError> {
        install_catalog(&self.ports.repository, models).await
    }

    /// A runner with `workers` workers on the dialogue and judge lanes.
    pub fn runner(&self, workers: usize, config: RunnerConfig) -> Runner {
        Runner::builder(self.ports.clone())
            .stage_lanes(
                Arc::new(self.queues.dialogue.clone()),
                Arc::new(self.queues.judge.clone()),
                Arc::new(self.queues.events.clone()),
                workers,
            )
            .config(config)
            .build()
    }
}
