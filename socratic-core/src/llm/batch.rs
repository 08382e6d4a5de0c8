//! Calls sent through a provider's batch interface, at its batch prices.
//!
//! A [`Batcher`] gathers the calls of each batched model: while the benchmark's dialogues
//! advance, every run's next call to a model arrives within moments of the others, so the
//! calls that arrive before a quiet spell ([`BatchOptions::gather`]) form one batch per model.
//! Runs then wait for their batch, and so advance turn-synchronously: all tutor turns, then
//! all student turns, then the judges, each a round of batches.
//!
//! Nothing is paid for twice and no batch is lost:
//!
//! - each batch is written to a [`BatchJournal`] with its requests and custom ids before it
//!   is submitted, and again with the provider's id once accepted; a batch whose acceptance
//!   was not recorded (a crash in between) is found again by its local id
//!   ([`BatchApi::find`]);
//! - a benchmark started again polls the batches it had submitted, and a call for a request
//!   in one of them waits for that batch instead of sending it again;
//! - the custom id of a request is its response-cache hash, and every answer is written to the
//!   response cache as soon as its batch is collected, so replay and re-judge work unchanged;
//! - requests that failed, expired or were cancelled go into the next round (up to
//!   [`MAX_ATTEMPTS`] batches), never the ones that succeeded;
//! - a batch is submitted only if its worst case fits what is left of the budget.
//!
//! A round with fewer requests than the provider takes ([`BatchApi::min_requests`]) runs
//! live, through the model's ordinary client.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OnceCell, oneshot};
use tokio::time::Instant;

use super::budget::Reservation;
use super::{
    Budget, ConverseRequest, ConverseResponse, LlmClient, LlmError, Prices, answer_key,
    request_hash, worst_case_cost,
};
use crate::blob::{BlobError, BlobPutMode, BlobStore};

/// Batches one request may go into before its last error is its answer.
pub const MAX_ATTEMPTS: u32 = 3;

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The id that matches the provider's output line to the request: its cache hash.
    pub custom_id: String,
    /// The request.
    pub request: ConverseRequest,
}

/// Where a batch stands in this benchmark's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Recorded, about to be submitted; whether the provider accepted it is not known yet.
    Submitting,
    /// Accepted by the provider; its results are not collected yet.
    Submitted,
    /// Its results are collected (the failed requests requeued).
    Collected,
    /// The provider never accepted it; its requests were not paid for.
    Abandoned,
}

impl BatchState {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Submitting => "submitting",
            BatchState::Submitted => "submitted",
            BatchState::Collected => "collected",
            BatchState::Abandoned => "abandoned",
        }
    }

    /// Whether the batch still needs the benchmark (to learn its fate or collect it).
    pub fn is_open(self) -> bool {
        matches!(self, BatchState::Submitting | BatchState::Submitted)
    }
}

/// One batch as the benchmark records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// This benchmark's id for it (a ULID), sent to the provider as metadata.
    pub local_id: String,
    /// The catalog model whose calls it holds.
    pub model: String,
    /// The provider (`openai`, …).
    pub provider: String,
    /// The provider's id, once it accepted the batch.
    pub provider_id: Option<String>,
    /// Its requests.
    pub requests: Vec<BatchRequest>,
    /// Where it stands here.
    pub state: BatchState,
    /// The provider's last word on it (`in_progress`, `completed`, `expired`, …) or what went
    /// wrong.
    pub status: String,
}

impl BatchRecord {
    /// The custom ids of its requests.
    pub fn custom_ids(&self) -> BTreeSet<String> {
        self.requests.iter().map(|r| r.custom_id.clone()).collect()
    }
}

/// What a poll of a batch found.
#[derive(Debug)]
pub enum BatchPoll {
    /// Still being worked on.
    Running {
        /// The provider's status.
        status: String,
    },
    /// Ended (completed, expired, cancelled or failed): every answer it has, by custom id.
    /// A request without an entry was not answered.
    Ended {
        /// The provider's status.
        status: String,
        /// Answers and per-request errors.
        results: BTreeMap<String, Result<ConverseResponse, LlmError>>,
    },
}

/// Why a batch operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The provider refused the batch, or could not be reached to submit it.
    #[error("{provider} refused batch {local_id} of {model}: {message}")]
    Submit {
        /// The provider.
        provider: String,
        /// The batch.
        local_id: String,
        /// The model.
        model: String,
        /// The provider's message.
        message: String,
        /// Whether submitting again later may succeed.
        retryable: bool,
    },
    /// An output line names a custom id the batch did not send.
    #[error(
        "batch {batch}: output line {line} is for custom id {custom_id:?}, which the batch did not send"
    )]
    UnknownCustomId {
        /// The provider's batch id.
        batch: String,
        /// The line, from 1.
        line: usize,
        /// The custom id it names.
        custom_id: String,
    },
    /// An output line is not what the provider documents.
    #[error("batch {batch}: output line {line} is malformed: {reason}")]
    MalformedOutput {
        /// The provider's batch id.
        batch: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The output file is larger than its requests can explain.
    #[error(
        "batch {batch}: the output file is {bytes} bytes, more than the {limit} bytes its {requests} request(s) can take"
    )]
    OutputTooLarge {
        /// The provider's batch id.
        batch: String,
        /// Its size.
        bytes: u64,
        /// The most expected.
        limit: u64,
        /// Requests in the batch.
        requests: usize,
    },
    /// A call to the provider failed (polling, reading a file, cancelling).
    #[error("{provider}: {message}")]
    Provider {
        /// The provider.
        provider: String,
        /// What failed.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// The batch records could not be read or written.
    #[error("batch records: {0}")]
    Journal(String),
}

impl BatchError {
    /// Line `line` of `batch`'s output is not what the provider documents.
    pub fn malformed(batch: &str, line: usize, reason: impl Into<String>) -> Self {
        BatchError::MalformedOutput {
            batch: batch.to_owned(),
            line,
            reason: reason.into(),
        }
    }

    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            BatchError::Submit { retryable, .. } | BatchError::Provider { retryable, .. } => {
                *retryable
            }
            BatchError::Journal(_) => true,
            _ => false,
        }
    }

    /// The error the calls waiting on the batch get.
    pub fn to_llm(&self) -> LlmError {
        LlmError::Other {
            message: self.to_string(),
            retryable: self.is_retryable(),
        }
    }
}

/// Output bytes allowed per request: its reply at a generous 64 bytes a token (JSON escapes
/// included), plus the envelope of its line (ids, usage, fingerprints).
const OUTPUT_BYTES_PER_TOKEN: u64 = 64;
const OUTPUT_ENVELOPE_BYTES: u64 = 16 * 1024;

/// The most bytes a batch's output files can take for `requests`; a larger file is refused as
/// [`BatchError::OutputTooLarge`].
pub fn output_limit(requests: &[BatchRequest]) -> u64 {
    requests
        .iter()
        .map(|r| u64::from(r.request.max_tokens) * OUTPUT_BYTES_PER_TOKEN + OUTPUT_ENVELOPE_BYTES)
        .sum()
}

/// One line of a batch's output: its number (from 1), its JSON, and the request it answers.
#[derive(Debug)]
pub struct OutputLine<'a> {
    /// The line's number, from 1.
    pub line: usize,
    /// The line.
    pub value: serde_json::Value,
    /// The request its `custom_id` names.
    pub request: &'a BatchRequest,
}

/// The non-empty lines of the output file `text` of `batch`, each checked: JSON with a
/// `custom_id` that one of `requests` has.
pub fn output_lines<'a>(
    batch: &str,
    text: &str,
    requests: &'a [BatchRequest],
) -> Result<Vec<OutputLine<'a>>, BatchError> {
    output_lines_by(
        "custom_id",
        batch,
        text,
        requests.iter().map(|r| (r.custom_id.as_str(), r)),
    )
}

/// Like [`output_lines`], for a provider whose output lines name a request in the field
/// `id_field` by an id of its own (Bedrock's `recordId`): `requests` pairs each id with its
/// request.
pub fn output_lines_by<'a, K>(
    id_field: &str,
    batch: &str,
    text: &str,
    requests: impl IntoIterator<Item = (K, &'a BatchRequest)>,
) -> Result<Vec<OutputLine<'a>>, BatchError>
where
    K: std::borrow::Borrow<str> + std::hash::Hash + Eq,
{
    let by_id: HashMap<K, &BatchRequest> = requests.into_iter().collect();
    let mut lines = Vec::new();
    for (index, text) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line = index + 1;
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| BatchError::malformed(batch, line, format!("not JSON: {e}")))?;
        let custom_id = value[id_field]
            .as_str()
            .ok_or_else(|| BatchError::malformed(batch, line, format!("no {id_field}")))?;
        let Some(request) = by_id.get(custom_id).copied() else {
            return Err(BatchError::UnknownCustomId {
                batch: batch.to_owned(),
                line,
                custom_id: custom_id.to_owned(),
            });
        };
        lines.push(OutputLine {
            line,
            value,
            request,
        });
    }
    Ok(lines)
}

/// A provider's batch interface.
#[async_trait]
pub trait BatchApi: Send + Sync {
    /// The provider's name, as records show it.
    fn provider(&self) -> &str;

    /// The fewest requests a batch may hold; a smaller round runs live.
    fn min_requests(&self) -> usize {
        1
    }

    /// The most requests one batch may hold; a larger round is split.
    fn max_requests(&self) -> usize {
        usize::MAX
    }

    /// The most bytes of requests (as JSON) one batch may hold; a larger round is split.
    fn max_bytes(&self) -> usize {
        usize::MAX
    }

    /// Submits `requests` as one batch tagged with `local_id`; answers the provider's id.
    async fn submit(&self, local_id: &str, requests: &[BatchRequest])
    -> Result<String, BatchError>;

    /// The provider's id of the batch tagged `local_id`, if the provider accepted one.
    async fn find(&self, local_id: &str) -> Result<Option<String>, BatchError>;

    /// Where the batch stands; once ended, its answers to `requests` (the requests it holds),
    /// each output line checked against their custom ids.
    async fn poll(
        &self,
        provider_id: &str,
        requests: &[BatchRequest],
    ) -> Result<BatchPoll, BatchError>;

    /// Asks the provider to stop the batch; what it answered by then is still collected.
    async fn cancel(&self, provider_id: &str) -> Result<(), BatchError>;
}

/// Where a benchmark keeps its batches, so that a process started again finds them.
#[async_trait]
pub trait BatchJournal: Send + Sync {
    /// Writes `record` (a new batch, or a new state of one).
    async fn put(&self, record: &BatchRecord) -> Result<(), BatchError>;

    /// Marks `record` collected, with the cost of each answered request, in one write.
    async fn collected(&self, record: &BatchRecord, costs: &[f64]) -> Result<(), BatchError>;

    /// The open batches ([`BatchState::is_open`]) of `model`.
    async fn open(&self, model: &str) -> Result<Vec<BatchRecord>, BatchError>;

    /// Every batch, oldest first.
    async fn all(&self) -> Result<Vec<BatchRecord>, BatchError>;
}

/// Batch records in memory, for tests and benchmarks that need not outlive the process.
#[derive(Debug, Default)]
pub struct MemoryBatchJournal {
    records: Mutex<Vec<BatchRecord>>,
    costs: Mutex<Vec<f64>>,
}

impl MemoryBatchJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// The costs recorded for answered requests.
    pub fn costs(&self) -> Vec<f64> {
        lock(&self.costs).clone()
    }
}

#[async_trait]
impl BatchJournal for MemoryBatchJournal {
    async fn put(&self, record: &BatchRecord) -> Result<(), BatchError> {
        let mut records = lock(&self.records);
        match records.iter_mut().find(|r| r.local_id == record.local_id) {
            Some(existing) => *existing = record.clone(),
            None => records.push(record.clone()),
        }
        Ok(())
    }

    async fn collected(&self, record: &BatchRecord, costs: &[f64]) -> Result<(), BatchError> {
        self.put(record).await?;
        lock(&self.costs).extend_from_slice(costs);
        Ok(())
    }

    async fn open(&self, model: &str) -> Result<Vec<BatchRecord>, BatchError> {
        Ok(lock(&self.records)
            .iter()
            .filter(|r| r.model == model && r.state.is_open())
            .cloned()
            .collect())
    }

    async fn all(&self) -> Result<Vec<BatchRecord>, BatchError> {
        Ok(lock(&self.records).clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a [`Batcher`] gathers and polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchOptions {
    /// A round is submitted once no call has arrived for this long.
    pub gather: Duration,
    /// Time between polls of a submitted batch.
    pub poll: Duration,
}

impl Default for BatchOptions {
    /// Gather until five seconds pass without a call; poll every 30 seconds. A round takes
    /// minutes to hours at the provider, so waiting out stragglers costs nothing.
    fn default() -> Self {
        Self {
            gather: Duration::from_secs(5),
            poll: Duration::from_secs(30),
        }
    }
}

/// What the batcher is doing, for [`Batcher::waiting_on_providers`].
#[derive(Debug, Default)]
struct Activity {
    /// Calls gathered and not yet submitted, and live calls under way.
    busy: usize,
    /// Submitted batches not yet collected.
    open: usize,
    /// Open batches not yet polled since they were submitted or found again.
    unpolled: usize,
}

/// Gathers the calls of batched models into batches and delivers their answers. One per
/// benchmark; [`Batcher::lane`] gives each batched model its client.
pub struct Batcher {
    journal: Arc<dyn BatchJournal>,
    budget: Arc<Budget>,
    cache: Option<Arc<dyn BlobStore>>,
    options: BatchOptions,
    activity: Mutex<Activity>,
    changed: Notify,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("options", &self.options)
            .field("activity", &*lock(&self.activity))
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// A batcher recording batches in `journal`, charging `budget`, and writing answers to
    /// the response cache in `cache` (the blob store of `cache/llm/`) as they are collected.
    pub fn new(
        journal: Arc<dyn BatchJournal>,
        budget: Arc<Budget>,
        cache: Option<Arc<dyn BlobStore>>,
        options: BatchOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            journal,
            budget,
            cache,
            options,
            activity: Mutex::default(),
            changed: Notify::new(),
        })
    }

    /// The client of one batched model: calls to it go into batches of `api`, charged at the
    /// batch prices of `prices` ([`Prices::for_call`]), keyed under the response cache's
    /// `namespace`; a round too small for the provider goes to `live`, the model's ordinary
    /// client.
    pub fn lane(
        self: &Arc<Self>,
        model: impl Into<String>,
        namespace: impl Into<String>,
        api: Arc<dyn BatchApi>,
        prices: Prices,
        live: Arc<dyn LlmClient>,
    ) -> Arc<dyn LlmClient> {
        Arc::new(BatchLlm {
            lane: Arc::new(Lane {
                batcher: Arc::clone(self),
                model: model.into(),
                namespace: namespace.into(),
                api,
                prices: prices.for_call(true),
                live,
                state: Mutex::default(),
                arrived: Notify::new(),
                ready: OnceCell::new(),
            }),
        })
    }

    /// `client`, its calls counted as live work, so that a detached benchmark does not stop
    /// while one is under way.
    pub fn track(self: &Arc<Self>, client: Arc<dyn LlmClient>) -> Arc<dyn LlmClient> {
        Arc::new(Tracked {
            batcher: Arc::clone(self),
            inner: client,
        })
    }

    /// Completes once the benchmark can only wait for providers: at least one batch is
    /// submitted, every open batch was polled and is still running, and no call is being
    /// gathered or made live. A detached benchmark stops then.
    pub async fn waiting_on_providers(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let a = lock(&self.activity);
                if a.open > 0 && a.unpolled == 0 && a.busy == 0 {
                    return;
                }
            }
            changed.await;
        }
    }

    /// The batch records.
    pub fn journal(&self) -> &Arc<dyn BatchJournal> {
        &self.journal
    }

    fn update(&self, change: impl FnOnce(&mut Activity)) {
        change(&mut lock(&self.activity));
        self.changed.notify_waiters();
    }
}

/// Counts a live call as busy work while it runs.
struct Tracked {
    batcher: Arc<Batcher>,
    inner: Arc<dyn LlmClient>,
}

struct Busy<'a>(&'a Batcher);

impl<'a> Busy<'a> {
    fn start(batcher: &'a Batcher) -> Self {
        batcher.update(|a| a.busy += 1);
        Self(batcher)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.update(|a| a.busy = a.busy.saturating_sub(1));
    }
}

#[async_trait]
impl LlmClient for Tracked {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let _busy = Busy::start(&self.batcher);
        self.inner.converse(request).await
    }
}

type Answer = Result<ConverseResponse, LlmError>;

/// A request waiting for its answer: the callers to tell, and the batches it went into.
struct Waiting {
    request: ConverseRequest,
    callers: Vec<oneshot::Sender<Answer>>,
    attempts: u32,
}

#[derive(Default)]
struct LaneState {
    /// Gathered for the next round, by custom id.
    pending: BTreeMap<String, Waiting>,
    /// In a submitted batch, by custom id.
    submitted: HashMap<String, Waiting>,
    /// Answers collected before anyone asked (a batch found again after a restart).
    answered: HashMap<String, ConverseResponse>,
    last_arrival: Option<Instant>,
}

/// One batched model.
struct Lane {
    batcher: Arc<Batcher>,
    model: String,
    namespace: String,
    api: Arc<dyn BatchApi>,
    prices: Prices,
    live: Arc<dyn LlmClient>,
    state: Mutex<LaneState>,
    arrived: Notify,
    ready: OnceCell<()>,
}

/// The client of one batched model ([`Batcher::lane`]).
struct BatchLlm {
    lane: Arc<Lane>,
}

#[async_trait]
impl LlmClient for BatchLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let lane = &self.lane;
        lane.ready
            .get_or_try_init(|| Lane::start(Arc::clone(lane)))
            .await?;
        let custom_id = request_hash(&lane.namespace, request)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&lane.state);
            if let Some(answer) = state.answered.remove(&custom_id) {
                return Ok(answer);
            }
            if let Some(waiting) = state.submitted.get_mut(&custom_id) {
                waiting.callers.push(tx);
            } else if let Some(waiting) = state.pending.get_mut(&custom_id) {
                waiting.callers.push(tx);
            } else {
                state.pending.insert(
                    custom_id,
                    Waiting {
                        request: request.clone(),
                        callers: vec![tx],
                        attempts: 0,
                    },
                );
                state.last_arrival = Some(Instant::now());
                lane.batcher.update(|a| a.busy += 1);
                lane.arrived.notify_one();
            }
        }
        rx.await.map_err(|_| LlmError::Unavailable {
            message: format!("the batch lane of {} stopped", lane.model),
        })?
    }
}

impl Lane {
    /// Takes up the model's open batches from the journal, then starts gathering.
    async fn start(lane: Arc<Lane>) -> Result<(), LlmError> {
        let open = lane
            .batcher
            .journal
            .open(&lane.model)
            .await
            .map_err(|e| e.to_llm())?;
        for mut record in open {
            if record.provider_id.is_none() {
                // Recorded but not known to be accepted: ask the provider.
                match lane.api.find(&record.local_id).await {
                    Ok(Some(id)) => record.provider_id = Some(id),
                    Ok(None) => {
                        record.state = BatchState::Abandoned;
                        record.status = "never accepted by the provider".to_owned();
                        lane.batcher
                            .journal
                            .put(&record)
                            .await
                            .map_err(|e| e.to_llm())?;
                        continue;
                    }
                    Err(e) => return Err(e.to_llm()),
                }
                record.state = BatchState::Submitted;
                lane.batcher
                    .journal
                    .put(&record)
                    .await
                    .map_err(|e| e.to_llm())?;
            }
            let worst: f64 = record
                .requests
                .iter()
                .map(|r| worst_case_cost(&lane.prices, &r.request))
                .sum();
            let reservation = lane.batcher.budget.commit(worst);
            {
                let mut state = lock(&lane.state);
                for r in &record.requests {
                    state.submitted.insert(
                        r.custom_id.clone(),
                        Waiting {
                            request: r.request.clone(),
                            callers: Vec::new(),
                            attempts: 1,
                        },
                    );
                }
            }
            tracing::info!(model = %lane.model, batch = %record.local_id, "resuming a submitted batch");
            lane.batcher.update(|a| {
                a.open += 1;
                a.unpolled += 1;
            });
            tokio::spawn(Arc::clone(&lane).follow(record, reservation, Duration::ZERO));
        }
        tokio::spawn(Arc::clone(&lane).gather());
        Ok(())
    }

    /// Forms rounds: whatever has arrived once arrivals pause for the gather window.
    async fn gather(self: Arc<Self>) {
        let window = self.batcher.options.gather;
        loop {
            let arrived = self.arrived.notified();
            let quiet_for = {
                let state = lock(&self.state);
                if state.pending.is_empty() {
                    None
                } else {
                    Some(state.last_arrival.map_or(window, |t| t.elapsed()))
                }
            };
            match quiet_for {
                None => arrived.await,
                Some(quiet) if quiet < window => tokio::time::sleep(window - quiet).await,
                Some(_) => {
                    let round = std::mem::take(&mut lock(&self.state).pending);
                    Arc::clone(&self).send_round(round).await;
                }
            }
        }
    }

    async fn send_round(self: Arc<Self>, round: BTreeMap<String, Waiting>) {
        if round.len() < self.api.min_requests() {
            for (_, waiting) in round {
                let lane = Arc::clone(&self);
                tokio::spawn(async move {
                    let answer = lane.live.converse(&waiting.request).await;
                    deliver(waiting.callers, &answer);
                    lane.batcher.update(|a| a.busy = a.busy.saturating_sub(1));
                });
            }
            return;
        }
        for part in self.split(round) {
            Arc::clone(&self).send_batch(part).await;
        }
    }

    /// A round in batches within the provider's limits on requests and bytes.
    fn split(&self, round: BTreeMap<String, Waiting>) -> Vec<BTreeMap<String, Waiting>> {
        let (most, most_bytes) = (self.api.max_requests().max(1), self.api.max_bytes());
        let mut parts = vec![BTreeMap::new()];
        let mut bytes = 0_usize;
        for (id, waiting) in round {
            let size = serde_json::to_vec(&waiting.request).map_or(0, |b| b.len()) + id.len();
            let current = parts.last().map_or(0, BTreeMap::len);
            if current > 0 && (current >= most || bytes.saturating_add(size) > most_bytes) {
                parts.push(BTreeMap::new());
                bytes = 0;
            }
            bytes = bytes.saturating_add(size);
            if let Some(part) = parts.last_mut() {
                part.insert(id, waiting);
            }
        }
        parts
    }

    /// Submits one batch: reserved against the cap, recorded, submitted, recorded again,
    /// then followed.
    async fn send_batch(self: Arc<Self>, round: BTreeMap<String, Waiting>) {
        let count = round.len();
        let done = |lane: &Lane| {
            lane.batcher
                .update(|a| a.busy = a.busy.saturating_sub(count))
        };
        let worst: f64 = round
            .values()
            .map(|w| worst_case_cost(&self.prices, &w.request))
            .sum();
        let reservation = match self.batcher.budget.reserve(worst) {
            Ok(reservation) => reservation,
            Err(error) => {
                // The cap refuses the whole batch: none of it is sent.
                for (_, waiting) in round {
                    deliver(waiting.callers, &Err(error.clone()));
                }
                done(&self);
                return;
            }
        };
        let mut record = BatchRecord {
            local_id: ulid::Ulid::new().to_string(),
            model: self.model.clone(),
            provider: self.api.provider().to_owned(),
            provider_id: None,
            requests: round
                .iter()
                .map(|(id, w)| BatchRequest {
                    custom_id: id.clone(),
                    request: w.request.clone(),
                })
                .collect(),
            state: BatchState::Submitting,
            status: String::new(),
        };
        if let Err(error) = self.batcher.journal.put(&record).await {
            reservation.settle_batch(0.0, 0);
            fail_all(round, &error.to_llm());
            done(&self);
            return;
        }
        match self.api.submit(&record.local_id, &record.requests).await {
            Ok(id) => {
                record.provider_id = Some(id);
                record.state = BatchState::Submitted;
                record.status = "submitted".to_owned();
                if let Err(error) = self.batcher.journal.put(&record).await {
                    // The provider has it; a restart finds it again by its local id.
                    tracing::warn!(batch = %record.local_id, %error, "the accepted batch's id was not recorded");
                }
            }
            Err(error) => {
                tracing::warn!(model = %self.model, %error, "batch not submitted");
                record.state = BatchState::Abandoned;
                record.status = error.to_string();
                if let Err(e) = self.batcher.journal.put(&record).await {
                    tracing::warn!(batch = %record.local_id, error = %e, "cannot record an abandoned batch");
                }
                reservation.settle_batch(0.0, 0);
                fail_all(round, &error.to_llm());
                done(&self);
                return;
            }
        }
        tracing::info!(model = %self.model, batch = %record.local_id, requests = count, "batch submitted");
        {
            let mut state = lock(&self.state);
            for (id, mut waiting) in round {
                waiting.attempts += 1;
                state.submitted.insert(id, waiting);
            }
        }
        self.batcher.update(|a| {
            a.busy = a.busy.saturating_sub(count);
            a.open += 1;
            a.unpolled += 1;
        });
        let poll = self.batcher.options.poll;
        tokio::spawn(Arc::clone(&self).follow(record, reservation, poll));
    }

    /// Polls a submitted batch until it ends, then collects it.
    async fn follow(
        self: Arc<Self>,
        mut record: BatchRecord,
        reservation: Reservation,
        first: Duration,
    ) {
        let Some(provider_id) = record.provider_id.clone() else {
            return;
        };
        let expected = record.custom_ids();
        let mut wait = first;
        let mut polled = false;
        let results = loop {
            tokio::time::sleep(wait).await;
            wait = self.batcher.options.poll;
            match self.api.poll(&provider_id, &record.requests).await {
                Ok(BatchPoll::Running { status }) => {
                    record.status = status;
                    if !polled {
                        polled = true;
                        self.batcher
                            .update(|a| a.unpolled = a.unpolled.saturating_sub(1));
                    }
                }
                Ok(BatchPoll::Ended { status, results }) => {
                    record.status = status;
                    break results;
                }
                Err(error) if error.is_retryable() => {
                    tracing::warn!(batch = %provider_id, %error, "polling a batch failed; trying again");
                }
                Err(error) => {
                    // The output cannot be read: the batch stays open in the records (it
                    // was paid for), and its callers learn why.
                    tracing::error!(batch = %provider_id, %error, "cannot collect a batch");
                    record.status = error.to_string();
                    if let Err(e) = self.batcher.journal.put(&record).await {
                        tracing::warn!(batch = %record.local_id, error = %e, "cannot record a batch's failure");
                    }
                    let waiting: Vec<Waiting> = {
                        let mut state = lock(&self.state);
                        expected
                            .iter()
                            .filter_map(|id| state.submitted.remove(id))
                            .collect()
                    };
                    for w in waiting {
                        deliver(w.callers, &Err(error.to_llm()));
                    }
                    self.batcher.update(|a| {
                        a.open = a.open.saturating_sub(1);
                        if !polled {
                            a.unpolled = a.unpolled.saturating_sub(1);
                        }
                    });
                    drop(reservation);
                    return;
                }
            }
        };
        self.collect(record, reservation, results, polled).await;
    }

    /// Caches and delivers the answers of an ended batch, requeues what it did not answer,
    /// and records it collected.
    async fn collect(
        self: Arc<Self>,
        mut record: BatchRecord,
        reservation: Reservation,
        mut results: BTreeMap<String, Answer>,
        polled: bool,
    ) {
        let mut costs = Vec::new();
        let mut answers = Vec::new();
        let mut requeue = Vec::new();
        for r in &record.requests {
            match results.remove(&r.custom_id) {
                Some(Ok(mut response)) => {
                    response.batched = true;
                    costs.push(self.prices.cost(&response.usage));
                    self.cache_answer(&r.custom_id, &response).await;
                    answers.push((r.custom_id.clone(), Ok(response)));
                }
                Some(Err(error)) if !error.is_retryable() => {
                    answers.push((r.custom_id.clone(), Err(error)));
                }
                Some(Err(error)) => requeue.push((r.custom_id.clone(), Some(error))),
                None => requeue.push((r.custom_id.clone(), None)),
            }
        }
        let spent: f64 = costs.iter().sum();
        record.state = BatchState::Collected;
        if !requeue.is_empty() {
            record.status = format!("{}; {} request(s) requeued", record.status, requeue.len());
        }
        if let Err(error) = self.batcher.journal.collected(&record, &costs).await {
            tracing::warn!(batch = %record.local_id, %error, "cannot record a collected batch");
        }
        reservation.settle_batch(spent, costs.len() as u64);
        tracing::info!(
            model = %self.model, batch = %record.local_id, status = %record.status,
            answered = costs.len(), requeued = requeue.len(), "batch collected"
        );
        let mut again = 0;
        {
            let mut state = lock(&self.state);
            for (id, answer) in answers {
                match state.submitted.remove(&id) {
                    Some(w) if !w.callers.is_empty() => deliver(w.callers, &answer),
                    _ => {
                        if let Ok(response) = answer {
                            state.answered.insert(id, response);
                        }
                    }
                }
            }
            for (id, error) in requeue {
                let Some(w) = state.submitted.remove(&id) else {
                    continue;
                };
                if w.callers.is_empty() {
                    // Nobody asks for it in this process yet: whoever does sends it again.
                    continue;
                }
                if w.attempts >= MAX_ATTEMPTS {
                    let error = error.unwrap_or_else(|| LlmError::Unavailable {
                        message: format!(
                            "{} batches in a row left the request unanswered",
                            w.attempts
                        ),
                    });
                    deliver(w.callers, &Err(error));
                    continue;
                }
                state.pending.insert(id, w);
                again += 1;
            }
            if again > 0 {
                state.last_arrival = Some(Instant::now());
            }
        }
        self.batcher.update(|a| {
            a.busy += again;
            a.open = a.open.saturating_sub(1);
            if !polled {
                a.unpolled = a.unpolled.saturating_sub(1);
            }
        });
        if again > 0 {
            self.arrived.notify_one();
        }
    }

    async fn cache_answer(&self, custom_id: &str, response: &ConverseResponse) {
        let Some(cache) = &self.batcher.cache else {
            return;
        };
        let (Ok(key), Ok(bytes)) = (answer_key(custom_id), serde_json::to_vec(response)) else {
            return;
        };
        match cache.put(&key, bytes, BlobPutMode::Create).await {
            Ok(_) | Err(BlobError::AlreadyExists { .. }) => {}
            Err(error) => tracing::warn!(%key, %error, "cannot cache a batch answer"),
        }
    }
}

fn deliver(callers: Vec<oneshot::Sender<Answer>>, answer: &Answer) {
    for caller in callers {
        // A caller that gave up (its run stopped) needs nothing.
        let _ = caller.send(answer.clone());
    }
}

fn fail_all(round: BTreeMap<String, Waiting>, error: &LlmError) {
    for (_, waiting) in round {
        deliver(waiting.callers, &Err(error.clone()));
    }
}
