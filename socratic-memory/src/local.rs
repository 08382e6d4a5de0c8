//! A whole pipeline in one process: memory store, memory queues with dead-letter queues, and
//! any blob store and model clients, assembled as every backend is
//! ([`Assembly`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::assembly::{Assembly, StageQueues};
use socratic_core::blob::BlobStore;
use socratic_core::defaults::install_catalog;
use socratic_core::entity::Model;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::queue::QueueError;
use socratic_core::repository::RepoError;
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_core::store::Store;

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

/// A pipeline's state in memory: a store and three stage queues with dead-letter queues.
/// Nothing survives the process. Cloning shares the state.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    /// The store.
    pub store: MemoryStore,
    /// The queues.
    pub queues: LocalQueues,
}

impl MemoryBackend {
    /// An empty store and queues that dead-letter after [`MAX_ATTEMPTS`] deliveries.
    pub fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            queues: LocalQueues::new(VISIBILITY_TIMEOUT, MAX_ATTEMPTS),
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Assembly for MemoryBackend {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    fn stage_queues(&self) -> StageQueues {
        StageQueues {
            dialogue: Arc::new(self.queues.dialogue.clone()),
            judge: Arc::new(self.queues.judge.clone()),
            events: Arc::new(self.queues.events.clone()),
        }
    }

    async fn dead_letters(&self) -> Result<Vec<String>, QueueError> {
        Ok(self.queues.dead_letters())
    }
}

/// A pipeline on memory backends: a [`MemoryBackend`] and the ports assembled over it.
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
        let backend = MemoryBackend::new();
        let ports = backend.ports(blobs, providers, config);
        Self {
            store: backend.store,
            queues: backend.queues,
            ports,
        }
    }

    /// Its store and queues.
    pub fn backend(&self) -> MemoryBackend {
        MemoryBackend {
            store: self.store.clone(),
            queues: self.queues.clone(),
        }
    }

    /// Stores the default catalog and `models`. Idempotent.
    pub async fn install_catalog(&self, models: &[Model]) -> Result<(), RepoError> {
        install_catalog(&self.ports.repository, models).await
    }

    /// A runner with `workers` workers on the dialogue and judge lanes.
    pub fn runner(&self, workers: usize, config: RunnerConfig) -> Runner {
        self.backend().runner(self.ports.clone(), workers, config)
    }
}
