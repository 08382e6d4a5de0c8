//! The runner: drives the stages from any queue consumers with a pool of workers.
//!
//! A [`Runner`] has *lanes*: a queue consumer, a [`JobHandler`] and a number of workers. The
//! default lanes run the built-in stages from the dialogue queue, the judge queue and the
//! run-events queue; a service embedding the library can replace a lane's handler (swap a stage)
//! or add lanes of its own. Concurrency per model is bounded by wrapping the model clients in
//! [`ConcurrencyLimitLlm`](crate::llm::ConcurrencyLimitLlm) (see [`Providers::map`](crate::pipeline::Providers::map)).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use socratic_core::pipeline::Ports;
//! # use socratic_core::queue::QueueConsumer;
//! # use socratic_core::runner::Runner;
//! # async fn demo(ports: Ports, dialogue: Arc<dyn QueueConsumer>, judge: Arc<dyn QueueConsumer>,
//! #               events: Arc<dyn QueueConsumer>, request: socratic_core::entity::ManifestRequest) {
//! let runner = Runner::builder(ports).stage_lanes(dialogue, judge, events, 8).build();
//! let summary = runner.run_manifest(&request).await.expect("benchmark");
//! println!("{} models ranked", summary.leaderboard.len());
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::entity::{ManifestRequest, ManifestSummary};
use crate::id::ManifestId;
use crate::keys;
use crate::pipeline::{
    Job, PlanError, Ports, StageError, curate, give_up, judge, plan, run_dialogue,
};
use crate::queue::{Delivery, QueueConsumer, ReceiveOptions};
use crate::repository::RepoError;

/// Handles one message body.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Does the work of one message. `Ok` acknowledges it.
    async fn handle(&self, ports: &Ports, body: &str) -> Result<(), StageError>;
}

/// The built-in stages, dispatched on the [`Job`] in the message.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageHandler;

#[async_trait]
impl JobHandler for StageHandler {
    async fn handle(&self, ports: &Ports, body: &str) -> Result<(), StageError> {
        match Job::parse(body)? {
            Job::Dialogue { run } => run_dialogue(ports, &run).await,
            Job::Judge { run } => judge(ports, &run).await,
            Job::Curate { run } => curate(ports, &run).await,
        }
    }
}

/// The name of the lane that curates ([`RunnerBuilder::stage_lanes`]). A runner waiting for
/// a manifest's summary looks again each time this lane has handled a message.
pub const CURATE_LANE: &str = "curate";

/// A queue, its handler and its workers.
#[derive(Clone)]
pub struct Lane {
    /// Name for logs and counters.
    pub name: String,
    /// Where messages come from.
    pub consumer: Arc<dyn QueueConsumer>,
    /// What handles them.
    pub handler: Arc<dyn JobHandler>,
    /// Concurrent workers, each handling one message at a time.
    pub workers: usize,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// How workers receive and back off.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Long-poll wait per receive; also how quickly workers notice a shutdown.
    pub receive_wait: Duration,
    /// Visibility timeout for received messages; `None` uses the queue's.
    pub visibility_timeout: Option<Duration>,
    /// First redelivery delay after a retryable failure; doubles per attempt.
    pub retry_base: Duration,
    /// Largest redelivery delay.
    pub retry_max: Duration,
    /// How often [`Runner::run_manifest`] checks whether the manifest is finished.
    pub poll_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            receive_wait: Duration::from_millis(200),
            visibility_timeout: None,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// Counts of what the workers did, per lane.
#[derive(Debug, Default)]
pub struct LaneCounters {
    /// Messages handled and acknowledged.
    pub done: AtomicU64,
    /// Messages returned for a retry.
    pub retried: AtomicU64,
    /// Messages rejected (headed for the dead-letter queue).
    pub rejected: AtomicU64,
    /// Handlers stopped before finishing; their messages come back after the visibility
    /// timeout.
    pub abandoned: AtomicU64,
    /// Messages that failed their last delivery: their runs were marked failed and the
    /// messages acknowledged.
    pub gave_up: AtomicU64,
}

/// A snapshot of [`LaneCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Messages handled and acknowledged.
    pub done: u64,
    /// Messages returned for a retry.
    pub retried: u64,
    /// Messages rejected.
    pub rejected: u64,
    /// Handlers stopped before finishing.
    pub abandoned: u64,
    /// Messages whose last delivery failed, their runs marked failed.
    pub gave_up: u64,
}

/// Why [`Runner::run_manifest`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The manifest could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Reading results failed.
    #[error(transparent)]
    Repository(#[from] RepoError),
    /// The manifest was not summarised before the deadline; its workers were stopped, and
    /// running the same manifest again resumes it.
    #[error(
        "manifest {manifest} did not finish within {deadline:?}: {finished} of {planned} run(s) finished"
    )]
    DeadlinePassed {
        /// The manifest.
        manifest: ManifestId,
        /// The deadline.
        deadline: Duration,
        /// Runs in a final status by then.
        finished: u64,
        /// Runs planned.
        planned: u64,
    },
}

/// Builds a [`Runner`].
#[derive(Debug)]
pub struct RunnerBuilder {
    ports: Ports,
    lanes: Vec<Lane>,
    config: RunnerConfig,
}

impl RunnerBuilder {
    /// Adds the three stage lanes (dialogue, judge, run events), `workers` workers each.
    pub fn stage_lanes(
        self,
        dialogue: Arc<dyn QueueConsumer>,
        judge: Arc<dyn QueueConsumer>,
        run_events: Arc<dyn QueueConsumer>,
        workers: usize,
    ) -> Self {
        let handler: Arc<dyn JobHandler> = Arc::new(StageHandler);
        self.lane("dialogue", dialogue, Arc::clone(&handler), workers)
            .lane("judge", judge, Arc::clone(&handler), workers)
            .lane(CURATE_LANE, run_events, handler, workers.clamp(1, 4))
    }

    /// Adds a lane, or replaces the lane with the same name.
    pub fn lane(
        mut self,
        name: &str,
        consumer: Arc<dyn QueueConsumer>,
        handler: Arc<dyn JobHandler>,
        workers: usize,
    ) -> Self {
        self.lanes.retain(|l| l.name != name);
        self.lanes.push(Lane {
            name: name.to_owned(),
            consumer,
            handler,
            workers: workers.max(1),
        });
        self
    }

    /// Replaces the handler of an existing lane (swap a stage).
    pub fn handler(mut self, name: &str, handler: Arc<dyn JobHandler>) -> Self {
        for lane in &mut self.lanes {
            if lane.name == name {
                lane.handler = Arc::clone(&handler);
            }
        }
        self
    }

    /// Sets the worker configuration.
    pub fn config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// The runner.
    pub fn build(self) -> Runner {
        let counters = self
            .lanes
            .iter()
            .map(|l| (l.name.clone(), Arc::new(LaneCounters::default())))
            .collect();
        Runner {
            ports: self.ports,
            lanes: self.lanes,
            config: self.config,
            counters,
            curated: Arc::new(Notify::new()),
        }
    }
}

/// Drives the pipeline from queues. See the module docs.
#[derive(Debug, Clone)]
pub struct Runner {
    ports: Ports,
    lanes: Vec<Lane>,
    config: RunnerConfig,
    counters: BTreeMap<String, Arc<LaneCounters>>,
    /// Woken when the curate lane has handled a message, which may have stored a summary.
    curated: Arc<Notify>,
}

impl Runner {
    /// Starts building a runner over `ports`.
    pub fn builder(ports: Ports) -> RunnerBuilder {
        RunnerBuilder {
            ports,
            lanes: Vec::new(),
            config: RunnerConfig::default(),
        }
    }

    /// The ports the stages use.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// What each lane's workers have done so far.
    pub fn stats(&self) -> BTreeMap<String, LaneStats> {
        self.counters
            .iter()
            .map(|(name, c)| {
                let stats = LaneStats {
                    done: c.done.load(Ordering::Relaxed),
                    retried: c.retried.load(Ordering::Relaxed),
                    rejected: c.rejected.load(Ordering::Relaxed),
                    abandoned: c.abandoned.load(Ordering::Relaxed),
                    gave_up: c.gave_up.load(Ordering::Relaxed),
                };
                (name.clone(), stats)
            })
            .collect()
    }

    /// Runs every lane's workers until `stop` completes, then lets each finish the message in
    /// hand and returns what `stop` gave.
    pub async fn run_until<T>(&self, stop: impl Future<Output = T>) -> T {
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for lane in &self.lanes {
            let counters = self.counters.get(&lane.name).cloned().unwrap_or_default();
            for _ in 0..lane.workers {
                let worker = Worker {
                    ports: self.ports.clone(),
                    lane: lane.clone(),
                    config: self.config.clone(),
                    counters: Arc::clone(&counters),
                    shutdown: Arc::clone(&shutdown),
                    curated: (lane.name == CURATE_LANE).then(|| Arc::clone(&self.curated)),
                };
                tasks.push(tokio::spawn(worker.run()));
            }
        }
        let stopped = stop.await;
        shutdown.store(true, Ordering::SeqCst);
        for task in tasks {
            // A worker that panicked has already left its message for redelivery.
            let _ = task.await;
        }
        stopped
    }

    /// Plans `request`, runs workers until its summary is stored, and returns the summary.
    /// Posting a manifest that was already run returns its stored summary. Waits as long as
    /// it takes; see [`Runner::complete`] for a deadline.
    pub async fn run_manifest(
        &self,
        request: &ManifestRequest,
    ) -> Result<ManifestSummary, RunError> {
        // The workers start with the planning and take its first jobs as they are sent.
        // A manifest posted before finds its summary at the first look.
        let planned_and_run = async {
            let planned = plan(&self.ports, request).await?;
            let id = planned.manifest.id;
            self.wait_for_summary(id).await?;
            Ok::<_, RunError>(id)
        };
        let id = self.run_until(planned_and_run).await?;
        self.stored_summary(&id).await
    }

    /// Runs workers until the summary of an already planned manifest is stored, and returns it.
    /// With a `deadline`, gives up after it with [`RunError::DeadlinePassed`] (the work done
    /// is kept). A store error that retrying cannot fix is returned at once; transient ones
    /// are retried at each poll.
    pub async fn complete(
        &self,
        id: &ManifestId,
        deadline: Option<Duration>,
    ) -> Result<ManifestSummary, RunError> {
        if let Some(summary) = self.summary(id).await? {
            return Ok(summary);
        }
        let waited = async {
            match deadline {
                Some(limit) => tokio::time::timeout(limit, self.wait_for_summary(*id))
                    .await
                    .unwrap_or(Ok(false)),
                None => self.wait_for_summary(*id).await,
            }
        };
        if !self.run_until(waited).await? {
            let (finished, planned) = self.progress(id).await?;
            return Err(RunError::DeadlinePassed {
                manifest: *id,
                deadline: deadline.unwrap_or_default(),
                finished,
                planned,
            });
        }
        self.stored_summary(id).await
    }

    /// The summary the workers waited for, which must now be stored.
    async fn stored_summary(&self, id: &ManifestId) -> Result<ManifestSummary, RunError> {
        self.summary(id).await?.ok_or_else(|| {
            RepoError::NotFound {
                entity: keys::EntityKind::ManifestSummary,
                id: id.to_string(),
            }
            .into()
        })
    }

    /// The stored summary of a manifest, once curated.
    pub async fn summary(&self, id: &ManifestId) -> Result<Option<ManifestSummary>, RepoError> {
        Ok(self
            .ports
            .repository
            .get::<ManifestSummary>(&keys::manifest_summary(id))
            .await?
            .map(|v| v.value))
    }

    /// Runs of a manifest that reached a final status, and the number planned.
    pub async fn progress(&self, id: &ManifestId) -> Result<(u64, u64), RepoError> {
        let progress = self
            .ports
            .repository
            .manifest_progress(id)
            .await?
            .ok_or_else(|| RepoError::NotFound {
                entity: keys::EntityKind::Manifest,
                id: id.to_string(),
            })?;
        Ok((progress.finished, progress.manifest.run_count))
    }

    /// Polls until the manifest's summary is stored: `Ok(true)`. Transient store errors are
    /// logged and polled through; any other is returned.
    async fn wait_for_summary(&self, id: ManifestId) -> Result<bool, RepoError> {
        loop {
            // Registered before the read, so a summary stored during it is not missed; the
            // poll covers a summary stored by another process.
            let mut curated = std::pin::pin!(self.curated.notified());
            curated.as_mut().enable();
            match self.summary(&id).await {
                Ok(Some(_)) => return Ok(true),
                Ok(None) => {}
                Err(error) if error.is_retryable() => {
                    tracing::warn!(manifest = %id, %error, "reading the summary failed; retrying");
                }
                Err(error) => return Err(error),
            }
            let poll = std::pin::pin!(tokio::time::sleep(self.config.poll_interval));
            futures::future::select(curated, poll).await;
        }
    }
}

struct Worker {
    ports: Ports,
    lane: Lane,
    config: RunnerConfig,
    counters: Arc<LaneCounters>,
    shutdown: Arc<AtomicBool>,
    /// For the curate lane: whom to wake after each message.
    curated: Option<Arc<Notify>>,
}

impl Worker {
    async fn run(self) {
        let options = ReceiveOptions {
            max_messages: 1,
            wait: self.config.receive_wait,
            visibility_timeout: self.config.visibility_timeout,
        };
        while !self.shutdown.load(Ordering::SeqCst) {
            let deliveries = match self.lane.consumer.receive(&options).await {
                Ok(deliveries) => deliveries,
                Err(error) => {
                    tracing::warn!(lane = %self.lane.name, %error, "receive failed");
                    tokio::time::sleep(self.config.receive_wait).await;
                    continue;
                }
            };
            for delivery in deliveries {
                self.handle(delivery).await;
                if let Some(curated) = &self.curated {
                    curated.notify_waiters();
                }
            }
        }
    }

    fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let exponential = self
            .config
            .retry_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
        let delay = exponential.min(self.config.retry_max);
        asked
            .map_or(delay, |a| a.max(delay))
            .min(crate::queue::MAX_DELAY)
    }

    async fn handle(&self, delivery: Delivery) {
        let lane = &self.lane.name;
        let result = self.lane.handler.handle(&self.ports, &delivery.body).await;
        // The last delivery failed: record the failure on the run, or the manifest would wait
        // for ever on a message the dead-letter queue holds.
        if let Err(error) = &result
            && give_up(
                &self.ports,
                &delivery.body,
                delivery.attempt,
                self.lane.consumer.max_attempts(),
                error,
            )
            .await
        {
            self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = self.lane.consumer.ack(&delivery.receipt).await {
                // Redelivered past its last attempt, it goes to the dead-letter queue; the run
                // is already failed, so nothing waits for it.
                tracing::debug!(%lane, %error, "could not acknowledge a given-up message");
            }
            return;
        }
        let settled = match result {
            Ok(()) => {
                self.counters.done.fetch_add(1, Ordering::Relaxed);
                self.lane.consumer.ack(&delivery.receipt).await
            }
            Err(StageError::Retryable {
                message,
                retry_after,
            }) => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                let delay = self.backoff(delivery.attempt, retry_after);
                tracing::debug!(%lane, attempt = delivery.attempt, ?delay, %message, "retrying");
                self.lane.consumer.nack(&delivery.receipt, delay).await
            }
            Err(StageError::Rejected { reason }) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%lane, attempt = delivery.attempt, body = %delivery.body, %reason, "rejected; headed for the dead-letter queue");
                self.lane
                    .consumer
                    .nack(&delivery.receipt, Duration::ZERO)
                    .await
            }
            // A stage turns a skip into a skipped run; a handler returning one is done too.
            Err(StageError::Skipped { reason }) => {
                self.counters.done.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%lane, %reason, "run skipped");
                self.lane.consumer.ack(&delivery.receipt).await
            }
            Err(StageError::Abandoned) => {
                self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        };
        if let Err(error) = settled {
            // The message comes back after its visibility timeout; handlers are idempotent.
            tracing::debug!(%lane, %error, "could not settle message");
        }
    }
}
