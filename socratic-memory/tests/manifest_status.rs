//! A manifest's status from the counts its runs' moves keep: the same as counting the runs,
//! in at most two store requests however many runs there are; and its summary written once
//! when its last runs finish at the same moment.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use socratic_core::clock::Timestamp;
use socratic_core::entity::{Run, RunFailure, RunStatus, Stage};
use socratic_core::id::{ManifestId, RunId};
use socratic_core::keys;
use socratic_core::pipeline::{Ports, curate, plan};
use socratic_core::repository::RunFilter;
use socratic_core::store::{Item, Key, Page, PutMode, Query, Store, StoreError, StoreExt, TxOp};
use socratic_memory::MemoryStore;
use support::{Harness, Options, assert_counts_match_runs, default_request};

/// Counts the requests a store serves, and, once armed, holds what every read of one key
/// found until two readers have read it (or a second has passed): both read it before either
/// acts on it.
struct Watched {
    inner: MemoryStore,
    requests: AtomicU64,
    held: std::sync::Mutex<Option<Key>>,
    barrier: Arc<tokio::sync::Barrier>,
    writes_of_held: AtomicU64,
    armed: AtomicBool,
}

impl Watched {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            requests: AtomicU64::new(0),
            held: std::sync::Mutex::new(None),
            barrier: Arc::new(tokio::sync::Barrier::new(2)),
            writes_of_held: AtomicU64::new(0),
            armed: AtomicBool::new(false),
        }
    }

    fn hold(&self, key: Key) {
        *self.held.lock().unwrap() = Some(key);
        self.armed.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    fn watches(&self, key: &Key) -> bool {
        self.held.lock().unwrap().as_ref() == Some(key)
    }

    fn is_held(&self, key: &Key) -> bool {
        self.armed.load(Ordering::SeqCst) && self.watches(key)
    }

    fn count_write(&self, key: &Key) {
        if self.watches(key) {
            self.writes_of_held.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Store for Watched {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let found = self.inner.get(key).await;
        if self.is_held(key) {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.barrier.wait()).await;
        }
        found
    }
    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.count_write(&item.key);
        self.inner.put(item, mode).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.query(query).await
    }
    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        for op in &ops {
            self.count_write(op.key());
        }
        self.inner.transact(ops).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(keys).await
    }
}

async fn harness(store: &Arc<Watched>) -> Harness {
    let mut options = Options {
        store: Some(Arc::clone(store) as Arc<dyn Store>),
        ..Options::default()
    };
    options.config.max_runs_per_manifest = 20_000;
    Harness::new(options).await
}

async fn runs_of(ports: &Ports, id: &ManifestId) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut cursor = None;
    loop {
        let page = ports
            .repository
            .list_runs(&RunFilter::Manifest(*id), 1000, cursor)
            .await
            .unwrap();
        runs.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            return runs;
        }
    }
}

/// Moves a run along `path`, one conditional move per status, as the stages do.
async fn walk(ports: &Ports, id: RunId, path: &[RunStatus]) {
    for &status in path {
        let current = ports.repository.get_run(&id).await.unwrap().unwrap();
        let mut next = current.value.clone();
        next.status = status;
        next.failure = status.is_stopped().then(|| RunFailure {
            stage: Stage::Dialogue,
            reason: format!("stopped {id}"),
        });
        ports
            .repository
            .move_run(&current, next)
            .await
            .unwrap()
            .expect("no other writer");
    }
}

/// The paths runs take, with stops at every stage.
fn path(i: usize) -> &'static [RunStatus] {
    use RunStatus::{Curated, DialogueComplete, Failed, Judged, Running, Skipped};
    match i % 9 {
        0 => &[],
        1 => &[Running],
        2 => &[Running, DialogueComplete],
        3 => &[Running, DialogueComplete, Judged],
        4 | 5 => &[Running, DialogueComplete, Curated],
        6 => &[Failed],
        7 => &[Running, DialogueComplete, Skipped],
        _ => &[DialogueComplete, Judged, Curated],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_of_ten_thousand_runs_comes_from_their_counts_in_two_requests() {
    let store = Arc::new(Watched::new());
    let harness = harness(&store).await;
    let ports = &harness.ports;
    let mut request = default_request();
    request.repetitions = 417;
    let planned = plan(ports, &request).await.unwrap();
    let id = planned.manifest.id;
    let runs = runs_of(ports, &id).await;
    assert!(runs.len() >= 10_000, "{} runs", runs.len());

    // Many moves at once, as many workers make them.
    futures::stream::iter(runs.iter().enumerate())
        .for_each_concurrent(32, |(i, run)| walk(ports, run.id, path(i)))
        .await;
    assert_counts_match_runs(ports, &id).await;

    let before = store.requests.load(Ordering::SeqCst);
    let status = ports
        .repository
        .manifest_status(&id, 100)
        .await
        .unwrap()
        .unwrap();
    let requests = store.requests.load(Ordering::SeqCst) - before;
    assert!(requests <= 2, "{requests} requests");
    let expected_stopped = (0..runs.len()).filter(|i| matches!(i % 9, 6 | 7)).count();
    assert_eq!(status.stopped_count, expected_stopped as u64);
    assert_eq!(status.stopped.len(), 100);
    assert_eq!(
        status.by_status[&RunStatus::Curated],
        (0..runs.len())
            .filter(|i| matches!(i % 9, 4 | 5 | 8))
            .count() as u64
    );
    assert_eq!(
        status.progress.finished,
        (0..runs.len()).filter(|i| matches!(i % 9, 4..=8)).count() as u64
    );
    assert!(status.summary.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_stored_before_runs_were_counted_is_read_from_its_runs_until_recounted() {
    let store = Arc::new(Watched::new());
    let harness = harness(&store).await;
    let ports = &harness.ports;
    let planned = plan(ports, &default_request()).await.unwrap();
    let id = planned.manifest.id;
    for (i, run) in runs_of(ports, &id).await.iter().enumerate() {
        walk(ports, run.id, path(i)).await;
    }
    // As an earlier release left it: no count shards, no copies of stopped runs.
    for shard in 0..keys::COUNT_SHARDS {
        store
            .delete(&keys::manifest_counts(&id, shard))
            .await
            .unwrap();
    }
    let copies = store
        .query_all(&Query::partition(keys::manifest_pk(&id)).prefix(keys::STOPPED_PREFIX))
        .await
        .unwrap();
    assert!(!copies.is_empty());
    for copy in copies {
        store.delete(&copy.key).await.unwrap();
    }
    assert_counts_match_runs(ports, &id).await;

    // Recounted, it answers from the counts again: the same status in two requests.
    let counted = ports.repository.recount_runs(&id).await.unwrap();
    assert_eq!(counted, planned.runs.len() as u64);
    assert_counts_match_runs(ports, &id).await;
    let before = store.requests.load(Ordering::SeqCst);
    ports
        .repository
        .manifest_status(&id, 5)
        .await
        .unwrap()
        .unwrap();
    assert!(store.requests.load(Ordering::SeqCst) - before <= 2);
    // A recount of counted runs changes nothing, and later moves add to it.
    ports.repository.recount_runs(&id).await.unwrap();
    let pending = runs_of(ports, &id)
        .await
        .into_iter()
        .find(|r| r.status == RunStatus::Pending)
        .unwrap();
    walk(ports, pending.id, &[RunStatus::Running, RunStatus::Failed]).await;
    assert_counts_match_runs(ports, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_runs_finishing_together_write_the_summary_once() {
    let store = Arc::new(Watched::new());
    let harness = harness(&store).await;
    let ports = &harness.ports;
    let mut request = default_request();
    request.tutors.truncate(1);
    request.scenarios.truncate(2);
    let planned = plan(ports, &request).await.unwrap();
    let id = planned.manifest.id;
    let [a, b] = planned.runs[..] else {
        panic!("two runs: {:?}", planned.runs)
    };
    for run in [a, b] {
        walk(ports, run, &[RunStatus::Running, RunStatus::Failed]).await;
    }

    // Both curators find the manifest complete and its summary missing before either writes.
    store.hold(keys::manifest_summary(&id));
    let (first, second) = tokio::join!(curate(ports, &a), curate(ports, &b));
    store.release();
    first.unwrap();
    second.unwrap();
    assert_eq!(
        store.writes_of_held.load(Ordering::SeqCst),
        1,
        "summary writes"
    );
    let summary = ports
        .repository
        .get::<socratic_core::entity::ManifestSummary>(&keys::manifest_summary(&id))
        .await
        .unwrap()
        .expect("a summary")
        .value;
    assert_eq!(summary.failed_runs, 2);

    // A redelivered job, of the claimant or the other run, leaves it as it is.
    for run in [a, b] {
        curate(ports, &run).await.unwrap();
    }
    assert_eq!(
        store.writes_of_held.load(Ordering::SeqCst),
        1,
        "summary writes"
    );
}

#[tokio::test]
async fn a_summary_claim_is_kept_by_its_claimant_and_taken_over_only_after_its_lease() {
    let harness = Harness::new(Options::default()).await;
    let repo = &harness.ports.repository;
    let id: ManifestId = "01JD8X4Z7Q3V9K2M5N6P7R8S9T".parse().unwrap();
    let (a, b): (RunId, RunId) = (
        "01JD8X4Z7Q3V9K2M5N6P7R8S9A".parse().unwrap(),
        "01JD8X4Z7Q3V9K2M5N6P7R8S9B".parse().unwrap(),
    );
    let lease = Duration::from_secs(600);
    let at = |minutes: i64| Timestamp::from_millis(1_764_000_000_000 + minutes * 60_000);
    assert!(repo.claim_summary(&id, &a, at(0), lease).await.unwrap());
    assert!(!repo.claim_summary(&id, &b, at(1), lease).await.unwrap());
    assert!(
        repo.claim_summary(&id, &a, at(2), lease).await.unwrap(),
        "redelivered"
    );
    assert!(!repo.claim_summary(&id, &b, at(9), lease).await.unwrap());
    assert!(
        repo.claim_summary(&id, &b, at(11), lease).await.unwrap(),
        "taken over"
    );
    assert!(!repo.claim_summary(&id, &a, at(12), lease).await.unwrap());
}
