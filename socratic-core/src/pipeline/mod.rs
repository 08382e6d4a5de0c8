//! The pipeline: plan → dialogue → judge → curate.
//!
//! Each stage is a function of (job, [`Ports`]) and is safe under duplicate delivery and
//! crash-and-retry, because queues deliver at least once:
//!
//! - every write is create-only, versioned, or an idempotent overwrite of a recomputed value;
//! - run status changes are conditional on the run's version, so nothing moves backwards;
//! - counters move in the same transaction as the write they count;
//! - a stage resumes from what is stored, and re-sends follow-up jobs whose sending it cannot
//!   prove (a duplicate job is harmless, a lost one is not).
//!
//! See `docs/pipeline.md` for the messages, the status machine and the idempotency argument.

mod curate;
mod dialogue;
mod judge;
mod leaderboard;
mod plan;
mod prompts;
mod raw;
mod rejudge;
pub mod telling;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use curate::summarize_run;
pub use curate::{CuratedRun, curate, report_runs};
pub use dialogue::run_dialogue;
pub use judge::judge;
pub use leaderboard::{ALPHA, RunDigest, SummaryDigest, summarize_digests, summarize_manifest};
pub use plan::{Plan, PlanError, plan, run_id};
pub use prompts::{
    JUDGE_TURN_MARKER, JUDGMENT_TOOL, JudgeBrief, Sampling, judge_request, student_request,
    transcript, tutor_request,
};
pub use rejudge::{
    ImportError, Imported, import_manifest, latest_dialogue_manifest, rejudge_request,
};

use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt};
use crate::clock::{Clock, IdGenerator};
use crate::entity::{Model, Run, RunFailure, RunStatus, Stage};
use crate::id::{ModelId, RunId};
use crate::llm::{LlmClient, LlmError};
use crate::queue::{OutgoingMessage, QueueError, QueueProducer};
use crate::repository::{RepoError, Repository, Versioned};
use crate::store::StoreError;

pub use crate::repository::FINISHED_COUNTER;

/// A message between stages. Messages carry ids only; everything else is read from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Run (or resume) a run's dialogue. Sent by the planner to the dialogue queue.
    Dialogue {
        /// The run.
        run: RunId,
    },
    /// Judge every turn of a run with every judge. Sent by the dialogue stage to the judge
    /// queue when the dialogue is complete.
    Judge {
        /// The run.
        run: RunId,
    },
    /// A run is judged (or failed): summarise it. The `run-judged` event, sent to the curator.
    Curate {
        /// The run.
        run: RunId,
    },
}

/// Jobs in the shape of earlier releases, still in queues during an upgrade.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum LegacyJob {
    /// A judge job per turn: judging the whole run covers it.
    Judge {
        run: RunId,
        #[serde(rename = "turn")]
        _turn: u32,
    },
}

impl Job {
    /// Parses a message body.
    pub fn parse(body: &str) -> Result<Job, StageError> {
        serde_json::from_str(body)
            .or_else(|e| match serde_json::from_str(body) {
                Ok(LegacyJob::Judge { run, .. }) => Ok(Job::Judge { run }),
                Err(_) => Err(e),
            })
            .map_err(|e| StageError::Rejected {
                reason: format!("malformed job {body:?}: {e}"),
            })
    }

    /// The message for this job.
    pub fn message(&self) -> OutgoingMessage {
        // Serialising a plain enum of ids cannot fail.
        OutgoingMessage::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The model clients: one per catalog model where one was given (its own endpoint, prices
/// and limits), else the one for the `provider` named in each [`Model`].
#[derive(Clone, Default)]
pub struct Providers {
    clients: HashMap<String, Arc<dyn LlmClient>>,
    models: HashMap<ModelId, Arc<dyn LlmClient>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("providers", &self.clients.keys().collect::<Vec<_>>())
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Providers {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the client for `provider`.
    pub fn with(mut self, provider: impl Into<String>, client: Arc<dyn LlmClient>) -> Self {
        self.clients.insert(provider.into(), client);
        self
    }

    /// Adds (or replaces) the client for one catalog model; it takes precedence over the
    /// model's provider.
    pub fn with_model(mut self, model: ModelId, client: Arc<dyn LlmClient>) -> Self {
        self.models.insert(model, client);
        self
    }

    /// The client serving `model`.
    pub fn client(&self, model: &Model) -> Option<&Arc<dyn LlmClient>> {
        self.models
            .get(&model.id)
            .or_else(|| self.clients.get(&model.provider))
    }

    /// Whether a client serves `provider`.
    pub fn serves(&self, provider: &str) -> bool {
        self.clients.contains_key(provider)
    }

    /// Wraps every client, e.g. in retry and concurrency-limit decorators.
    pub fn map(self, mut wrap: impl FnMut(Arc<dyn LlmClient>) -> Arc<dyn LlmClient>) -> Self {
        Self {
            clients: self
                .clients
                .into_iter()
                .map(|(k, v)| (k, wrap(v)))
                .collect(),
            models: self.models.into_iter().map(|(k, v)| (k, wrap(v))).collect(),
        }
    }
}

/// Limits and policies of the stages.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The most runs one manifest may plan.
    pub max_runs_per_manifest: u64,
    /// Judge calls per judgment before it is stored unscored.
    pub judge_attempts: u32,
    /// Judgments one judge job makes at once (at least 1). A job judges a whole run, so on
    /// Lambda this keeps a long run within the function's timeout; locally, set it to the
    /// calls a model may take at once, so that no call waits for a slot.
    pub judge_calls_at_once: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_runs_per_manifest: 10_000,
            judge_attempts: 3,
            judge_calls_at_once: 4,
        }
    }
}

/// Everything a stage touches.
#[derive(Clone)]
pub struct Ports {
    /// Entities.
    pub repository: Repository,
    /// Raw and curated artifacts.
    pub blobs: Arc<dyn BlobStore>,
    /// Where dialogue jobs go.
    pub dialogue_jobs: Arc<dyn QueueProducer>,
    /// Where judge jobs go.
    pub judge_jobs: Arc<dyn QueueProducer>,
    /// Where `run-judged` events go (the curator's input).
    pub run_events: Arc<dyn QueueProducer>,
    /// Model clients.
    pub providers: Providers,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// New ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Limits and policies.
    pub config: PipelineConfig,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("providers", &self.providers)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a stage did not complete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// A transient failure: leave the message for redelivery, after `retry_after` if given.
    #[error("retryable: {message}")]
    Retryable {
        /// What failed.
        message: String,
        /// How long the failing service asked to wait.
        retry_after: Option<Duration>,
    },
    /// The job can never succeed (unknown run, malformed message, a model the provider
    /// rejects). The run, if there is one, is marked failed with this reason; the message
    /// should end in the dead-letter queue.
    #[error("rejected: {reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
    /// The handler was stopped before finishing (shutdown or crash): neither acknowledge nor
    /// return the message; it comes back after its visibility timeout.
    #[error("abandoned before completion")]
    Abandoned,
    /// The run cannot go on by decision, not error: a spending cap left no room for its next
    /// model call. The run is marked `skipped` with this reason and the job is done.
    #[error("skipped: {reason}")]
    Skipped {
        /// Why (`budget: …`).
        reason: String,
    },
}

impl StageError {
    /// Whether redelivery may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            StageError::Rejected { .. } | StageError::Skipped { .. }
        )
    }

    /// The outcome of a failed model call: a spent budget skips the run; anything else is
    /// retryable or rejected as the client classified it.
    pub(crate) fn from_call(error: &LlmError) -> Self {
        match error {
            LlmError::BudgetExhausted { .. } => StageError::Skipped {
                reason: error.to_string(),
            },
            other => other.clone().into(),
        }
    }

    pub(crate) fn rejected(reason: impl Into<String>) -> Self {
        StageError::Rejected {
            reason: reason.into(),
        }
    }
}

impl StageError {
    /// Retryable or rejected, as the failing port classified its error.
    fn classified(retryable: bool, message: String, retry_after: Option<Duration>) -> Self {
        if retryable {
            StageError::Retryable {
                message,
                retry_after,
            }
        } else {
            StageError::Rejected { reason: message }
        }
    }
}

impl From<RepoError> for StageError {
    fn from(error: RepoError) -> Self {
        Self::classified(error.is_retryable(), error.to_string(), None)
    }
}

impl From<StoreError> for StageError {
    fn from(error: StoreError) -> Self {
        RepoError::from(error).into()
    }
}

impl From<QueueError> for StageError {
    fn from(error: QueueError) -> Self {
        Self::classified(error.is_retryable(), error.to_string(), None)
    }
}

impl From<BlobError> for StageError {
    fn from(error: BlobError) -> Self {
        Self::classified(error.is_retryable(), error.to_string(), None)
    }
}

impl From<LlmError> for StageError {
    fn from(error: LlmError) -> Self {
        Self::classified(error.is_retryable(), error.to_string(), error.retry_after())
    }
}

/// A run's record (run, turns, judgments, summary); a job for a run that does not exist is
/// rejected.
pub(crate) async fn run_record(
    ports: &Ports,
    id: &RunId,
) -> Result<crate::repository::RunRecord, StageError> {
    ports
        .repository
        .run_record(id)
        .await?
        .ok_or_else(|| StageError::rejected(format!("run {id} does not exist")))
}

/// The rejection of a job for a run that has failed, naming the run's reason.
pub(crate) fn failed_run(run: &Run) -> StageError {
    let reason = run.failure.as_ref().map_or("", |f| f.reason.as_str());
    StageError::rejected(format!("run {} has failed: {reason}", run.id))
}

/// Writes a raw artifact once: a retried stage finds the first write and keeps it. Raw
/// artifacts are compact JSON: they are most of what a benchmark stores.
pub(crate) async fn put_raw(
    ports: &Ports,
    key: String,
    document: &(impl Serialize + Sync),
) -> Result<(), StageError> {
    let key = BlobKey::new(key)?;
    match ports
        .blobs
        .put_compact_json(&key, document, BlobPutMode::Create)
        .await
    {
        Ok(_) | Err(BlobError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The target of the pipeline's metric events: a tracing event per model call (`model`,
/// `role`, tokens, `cost_usd`, `latency_ms`), per run reaching a final status (`status`) and
/// per manifest summarised. A deployment turns them into metrics (on Lambda, CloudWatch
/// embedded metrics: `socratic_aws::lambda::EmbeddedMetrics`).
pub const METRICS_TARGET: &str = "socratic::metrics";

/// The record of one model call, which is also reported as a metric event.
pub(crate) fn call_record(
    model: &Model,
    request: &crate::llm::ConverseRequest,
    response: &crate::llm::ConverseResponse,
) -> crate::entity::CallRecord {
    let latency_ms = u64::try_from(response.latency.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        target: METRICS_TARGET,
        metric = "model_call",
        model = %model.id,
        role = request.role.as_str(),
        input_tokens = response.usage.input_tokens,
        output_tokens = response.usage.output_tokens,
        cost_usd = model.prices.for_call(response.batched).cost(&response.usage),
        latency_ms,
        cached = response.cached,
    );
    crate::entity::CallRecord {
        role: request.role,
        model: model.id.clone(),
        usage: response.usage,
        latency_ms,
        stop_reason: response.stop_reason.clone(),
        cached: response.cached,
        batched: response.batched,
    }
}

/// What a transition attempt found.
pub(crate) enum Transition {
    /// The run moved; here is its new state and, when the move finished it, how many of its
    /// manifest's runs have finished.
    Moved {
        run: Versioned<Run>,
        finished: Option<u64>,
    },
    /// Someone else changed the run first; reload and decide again.
    Raced,
}

/// Moves a run to `to`, conditional on its version. Reaching a final status also counts the
/// run as finished on its manifest, in the same transaction, so it is counted exactly once.
pub(crate) async fn transition(
    ports: &Ports,
    run: &Versioned<Run>,
    to: RunStatus,
    failure: Option<RunFailure>,
) -> Result<Transition, StageError> {
    transition_with(ports, run, to, failure, Vec::new()).await
}

/// [`transition`] together with other writes, all or nothing (see
/// [`Repository::move_run_with`]).
pub(crate) async fn transition_with(
    ports: &Ports,
    run: &Versioned<Run>,
    to: RunStatus,
    failure: Option<RunFailure>,
    also: Vec<crate::store::TxOp>,
) -> Result<Transition, StageError> {
    let mut next = run.value.clone();
    next.status = to;
    next.failure = failure;
    next.updated_at = ports.clock.now();
    Ok(
        match ports.repository.move_run_with(run, next, also).await? {
            Some(moved) => {
                if to.is_final() {
                    tracing::info!(target: METRICS_TARGET, metric = "run_finished", status = to.as_str());
                }
                Transition::Moved {
                    run: moved.run,
                    finished: moved.finished,
                }
            }
            None => Transition::Raced,
        },
    )
}

/// Stops a run for good (`failed` or `skipped`) with the stage and reason, unless it is
/// already final, then tells the curator so the manifest can finish.
pub(crate) async fn stop_run(
    ports: &Ports,
    run: &RunId,
    status: RunStatus,
    stage: Stage,
    reason: &str,
) -> Result<(), StageError> {
    loop {
        let Some(current) = ports.repository.get_run(run).await? else {
            return Ok(());
        };
        if current.value.status.is_final() {
            return Ok(());
        }
        let failure = RunFailure {
            stage,
            reason: reason.to_owned(),
        };
        if let Transition::Moved { .. } = transition(ports, &current, status, Some(failure)).await?
        {
            ports
                .run_events
                .send(Job::Curate { run: *run }.message())
                .await?;
            return Ok(());
        }
    }
}

/// A job failed with `error` on delivery `attempt` of a queue allowing `max_attempts`. When
/// that was the last delivery and the error retryable (a rejection has already failed its
/// run), marks the run failed with the job's stage and the reason, so the manifest still
/// finishes, curates and reports it, instead of waiting for a run the dead-letter queue holds.
/// Returns whether it did: the message can then be acknowledged. Otherwise (not the last
/// delivery, a malformed job, an unknown run, a store that is down too) the message is left
/// to its queue and, in the end, the dead-letter queue. Idempotent: a run already final is
/// left as it is.
pub async fn give_up(
    ports: &Ports,
    body: &str,
    attempt: u32,
    max_attempts: Option<u32>,
    error: &StageError,
) -> bool {
    if !matches!(error, StageError::Retryable { .. })
        || !crate::queue::is_last_attempt(attempt, max_attempts)
    {
        return false;
    }
    match fail_exhausted(ports, body, attempt, error).await {
        Ok(()) => {
            tracing::warn!(attempt, %body, %error, "last attempt failed; run marked failed");
            true
        }
        Err(marking) => {
            tracing::error!(%body, %error, %marking, "last attempt failed and the run could not be marked failed");
            false
        }
    }
}

async fn fail_exhausted(
    ports: &Ports,
    body: &str,
    attempts: u32,
    error: &StageError,
) -> Result<(), StageError> {
    let (run, stage) = match Job::parse(body)? {
        Job::Dialogue { run } => (run, Stage::Dialogue),
        Job::Judge { run, .. } => (run, Stage::Judge),
        Job::Curate { run } => (run, Stage::Curate),
    };
    if ports.repository.get_run(&run).await?.is_none() {
        return Err(StageError::rejected(format!("run {run} does not exist")));
    }
    let reason = match error {
        StageError::Retryable { message, .. } => {
            format!("gave up after {attempts} attempt(s): {message}")
        }
        other => format!("gave up after {attempts} attempt(s): {other}"),
    };
    stop_run(ports, &run, RunStatus::Failed, stage, &reason).await
}

/// Runs `work`. A rejection marks the run failed with its reason before being returned; a
/// skip marks the run skipped and completes the job.
pub(crate) async fn failing_run_on_rejection(
    ports: &Ports,
    run: &RunId,
    stage: Stage,
    work: impl Future<Output = Result<(), StageError>>,
) -> Result<(), StageError> {
    match work.await {
        Err(StageError::Rejected { reason }) => {
            stop_run(ports, run, RunStatus::Failed, stage, &reason).await?;
            Err(StageError::rejected(reason))
        }
        Err(StageError::Skipped { reason }) => {
            stop_run(ports, run, RunStatus::Skipped, stage, &reason).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "01JD8X4Z7Q3V9K2M5N6P7R8S9T";

    #[test]
    fn jobs_round_trip_and_judge_jobs_of_earlier_releases_judge_the_run() {
        let run: RunId = RUN.parse().expect("id");
        for job in [
            Job::Dialogue { run },
            Job::Judge { run },
            Job::Curate { run },
        ] {
            let body = job.message().body;
            assert_eq!(Job::parse(&body).expect("parses"), job, "{body}");
        }
        let legacy = format!(r#"{{"type":"judge","run":"{RUN}","turn":2}}"#);
        assert_eq!(Job::parse(&legacy).expect("parses"), Job::Judge { run });
    }

    #[test]
    fn malformed_jobs_are_rejected_with_the_body() {
        for body in [
            format!(r#"{{"type":"dialogue","run":"{RUN}","turn":2}}"#),
            format!(r#"{{"type":"judge","run":"{RUN}","turn":"two"}}"#),
            format!(r#"{{"type":"judge","run":"{RUN}","extra":1}}"#),
            r#"{"type":"judge"}"#.to_owned(),
            "not json".to_owned(),
        ] {
            match Job::parse(&body) {
                Err(StageError::Rejected { reason }) => {
                    assert!(reason.contains(&format!("{body:?}")), "{reason}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
