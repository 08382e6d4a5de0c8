//! Where a benchmark keeps its state: the results directory's SQLite database, which survives
//! a crash and accumulates every benchmark, or memory, for an estimate that leaves no trace.

use std::sync::Arc;

use socratic_core::blob::BlobStore;
use socratic_core::defaults::install_catalog;
use socratic_core::entity::Model;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::repository::{RepoError, Repository};
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_memory::LocalPipeline;
use socratic_sqlite::ResultsDir;

enum Queues {
    Memory(LocalPipeline),
    Sqlite(ResultsDir),
}

/// A pipeline's ports and the queues its runner consumes.
pub struct Backend {
    /// What the stages use.
    pub ports: Ports,
    queues: Queues,
}

impl Backend {
    /// A pipeline in memory.
    pub fn memory(blobs: Arc<dyn BlobStore>, providers: Providers, config: PipelineConfig) -> Self {
        let pipeline = LocalPipeline::new(blobs, providers, config);
        Self {
            ports: pipeline.ports.clone(),
            queues: Queues::Memory(pipeline),
        }
    }

    /// A pipeline in the database of a results directory this process holds.
    pub fn sqlite(
        results: ResultsDir,
        blobs: Arc<dyn BlobStore>,
        providers: Providers,
        config: PipelineConfig,
    ) -> Self {
        let ports = results.ports(blobs, providers, config);
        Self {
            ports,
            queues: Queues::Sqlite(results),
        }
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.ports.repository
    }

    /// Stores the default catalog and `models`. Idempotent.
    pub async fn install_catalog(&self, models: &[Model]) -> Result<(), RepoError> {
        install_catalog(self.repository(), models).await
    }

    /// A runner with `workers` workers on the dialogue and judge lanes.
    pub fn runner(&self, workers: usize) -> Runner {
        match &self.queues {
            Queues::Memory(p) => p.runner(workers, RunnerConfig::default()),
            Queues::Sqlite(r) => r.runner(self.ports.clone(), workers, RunnerConfig::default()),
        }
    }

    /// Messages a killed process had in hand, made visible again; 0 in memory.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        Ok(match &self.queues {
            Queues::Memory(_) => 0,
            Queues::Sqlite(r) => r.recover().await?,
        })
    }

    /// Every dead-lettered message body.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<String>> {
        Ok(match &self.queues {
            Queues::Memory(p) => p.queues.dead_letters(),
            Queues::Sqlite(r) => r.queues().dead_letters().await?,
        })
    }
}
