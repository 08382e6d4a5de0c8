//! The one way a pipeline run by one process is assembled: a store and three stage queues the
//! process both sends to and receives from, made into the stages' [`Ports`] and a [`Runner`].
//!
//! The in-memory pipeline (`socratic_memory::LocalPipeline`) and a SQLite results directory
//! (`socratic_sqlite::ResultsDir`) implement [`Assembly`]; code that runs a benchmark takes
//! either as `&dyn Assembly`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use socratic_core::assembly::Assembly;
//! # use socratic_core::blob::BlobStore;
//! # use socratic_core::pipeline::{PipelineConfig, Providers};
//! # use socratic_core::runner::RunnerConfig;
//! # async fn demo(backend: &dyn Assembly, blobs: Arc<dyn BlobStore>, providers: Providers,
//! #               request: socratic_core::entity::ManifestRequest) {
//! let recovered = backend.recover().await.expect("recover");
//! let ports = backend.ports(blobs, providers, PipelineConfig::default());
//! let runner = backend.runner(ports, 8, RunnerConfig::default());
//! let summary = runner.run_manifest(&request).await.expect("benchmark");
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::blob::BlobStore;
use crate::clock::{SystemClock, UlidGenerator};
use crate::pipeline::{PipelineConfig, Ports, Providers};
use crate::queue::{QueueConsumer, QueueError, QueueProducer};
use crate::repository::Repository;
use crate::runner::{Runner, RunnerConfig};
use crate::store::Store;

/// A queue one process both sends to and receives from.
pub trait LocalQueue: QueueProducer + QueueConsumer {}

impl<T: QueueProducer + QueueConsumer> LocalQueue for T {}

/// The three stage queues of a pipeline run by one process.
#[derive(Clone)]
pub struct StageQueues {
    /// Dialogue jobs.
    pub dialogue: Arc<dyn LocalQueue>,
    /// Judge jobs.
    pub judge: Arc<dyn LocalQueue>,
    /// `run-judged` events (the curator's input).
    pub events: Arc<dyn LocalQueue>,
}

impl std::fmt::Debug for StageQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageQueues").finish_non_exhaustive()
    }
}

/// Where a pipeline run by one process keeps its state: a store and three stage queues.
/// Implementers provide those, how to recover what a killed process had in hand, and the
/// dead-lettered messages; the ports and the runner are assembled here, the same way for
/// every backend.
#[async_trait]
pub trait Assembly: Send + Sync {
    /// The store of every entity.
    fn store(&self) -> Arc<dyn Store>;

    /// The stage queues.
    fn stage_queues(&self) -> StageQueues;

    /// Makes every message an earlier process had received visible again, and answers how
    /// many. Nothing survives a process in memory, so the default recovers nothing.
    async fn recover(&self) -> Result<usize, QueueError> {
        Ok(0)
    }

    /// Every dead-lettered message body of the stage queues.
    async fn dead_letters(&self) -> Result<Vec<String>, QueueError>;

    /// The stages' ports: this store and these queues, artifacts in `blobs`, models through
    /// `providers`, with the system clock and ULIDs.
    fn ports(
        &self,
        blobs: Arc<dyn BlobStore>,
        providers: Providers,
        config: PipelineConfig,
    ) -> Ports {
        let queues = self.stage_queues();
        Ports {
            repository: Repository::new(self.store()),
            blobs,
            dialogue_jobs: queues.dialogue,
            judge_jobs: queues.judge,
            run_events: queues.events,
            providers,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator::default()),
            config,
        }
    }

    /// A runner over `ports` consuming the stage queues, `workers` workers on the dialogue and
    /// judge lanes.
    fn runner(&self, ports: Ports, workers: usize, config: RunnerConfig) -> Runner {
        let queues = self.stage_queues();
        Runner::builder(ports)
            .stage_lanes(queues.dialogue, queues.judge, queues.events, workers)
            .config(config)
            .build()
    }
}
