//! `GET /manifests/{id}` on DynamoDB at 10,000 runs: answered from the manifest's counts in
//! at most two requests, and equal to counting the runs one by one.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{Method, Request};
use serde_json::Value;
use socratic_aws::DynamoStore;
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::blob::BlobStore;
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::defaults::Defaults;
use socratic_core::entity::{RunFailure, RunStatus, Stage};
use socratic_core::id::{ManifestId, RunId};
use socratic_core::keys;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers, plan};
use socratic_core::repository::{Repository, RunFilter};
use socratic_core::store::{PutMode, Store};
use socratic_memory::{LocalQueues, MemoryBlobStore, MemoryStore};
use socratic_sim::simulated::PROVIDER;
use socratic_sim::{SimulatedLlm, simulated_manifest};

const KEY: &str = "manifest-reads-key";

/// Moves a run along `path`, one conditional move per status, as the stages do.
async fn walk(repository: &Repository, id: RunId, path: &[RunStatus]) {
    for &status in path {
        let current = repository.get_run(&id).await.unwrap().unwrap();
        let mut next = current.value.clone();
        next.status = status;
        next.failure = status.is_stopped().then(|| RunFailure {
            stage: Stage::Judge,
            reason: format!("stopped {id}"),
        });
        repository
            .move_run(&current, next)
            .await
            .unwrap()
            .expect("no other writer");
    }
}

fn path(i: usize) -> &'static [RunStatus] {
    use RunStatus::{Curated, DialogueComplete, Failed, Running, Skipped};
    match i % 5 {
        0 => &[Running],
        1 => &[Running, DialogueComplete],
        2 => &[Running, DialogueComplete, Curated],
        3 => &[Failed],
        _ => &[Running, Skipped],
    }
}

/// Runs per status and the stopped runs' ids, counted from the runs themselves.
async fn counted_from_runs(
    repository: &Repository,
    id: &ManifestId,
) -> (BTreeMap<String, u64>, Vec<String>) {
    let (mut by_status, mut stopped) = (BTreeMap::new(), Vec::new());
    let mut cursor = None;
    loop {
        let page = repository
            .list_runs(&RunFilter::Manifest(*id), 1000, cursor)
            .await
            .unwrap();
        for run in page.items {
            *by_status.entry(run.status.as_str().to_owned()).or_insert(0) += 1;
            if run.status.is_stopped() {
                stopped.push(run.id.to_string());
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return (by_status, stopped);
        }
    }
}

/// The ports of a pipeline on `store` whose jobs go to memory queues nobody reads.
fn ports(store: Arc<dyn Store>, queues: &LocalQueues) -> Ports {
    Ports {
        repository: Repository::new(store),
        blobs: Arc::new(MemoryBlobStore::new()) as Arc<dyn BlobStore>,
        dialogue_jobs: Arc::new(queues.dialogue.clone()),
        judge_jobs: Arc::new(queues.judge.clone()),
        run_events: Arc::new(queues.events.clone()),
        providers: Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new())),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidGenerator::default()),
        config: PipelineConfig {
            max_runs_per_manifest: 20_000,
            ..PipelineConfig::default()
        },
    }
}

/// A 10,000-run manifest, some of its runs moved, planned and moved on the memory store (the
/// emulator copies a whole table for every transaction, so 10,000 runs cannot be planned
/// there in a test's time) and copied item by item to DynamoDB, where its runs are recounted
/// (plain puts) as an upload does. A move on DynamoDB then adds to the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_of_ten_thousand_runs_is_read_in_two_requests() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let memory = MemoryStore::new();
    let queues = LocalQueues::new(Duration::from_secs(30), 3);
    let ports = |store: Arc<dyn Store>| ports(store, &queues);
    let local = ports(Arc::new(memory.clone()));
    support::install_simulated_catalog(&local.repository).await;
    let mut request = simulated_manifest(&Defaults::load().unwrap());
    request.repetitions = 10_000u32.div_ceil(request.run_count() as u32);
    let planned = plan(&local, &request).await.unwrap();
    let id = planned.manifest.id;
    assert!(planned.runs.len() >= 10_000, "{} runs", planned.runs.len());
    futures::stream::iter(planned.runs.iter().take(500).enumerate())
        .for_each_concurrent(8, |(i, run)| walk(&local.repository, *run, path(i)))
        .await;

    let counter = support::RequestCounter::default();
    let client = support::dynamo(&endpoint, Some(&counter)).await;
    let table = support::table(&client).await;
    let dynamo = Arc::new(DynamoStore::new(client.clone(), &table));
    let mut keys = vec![keys::manifest(&id)];
    keys.extend(planned.runs.iter().map(keys::run));
    futures::stream::iter(keys)
        .for_each_concurrent(16, |key| {
            let (memory, dynamo) = (memory.clone(), Arc::clone(&dynamo));
            async move {
                let item = memory.get(&key).await.unwrap().unwrap();
                dynamo.put(item, PutMode::Overwrite).await.unwrap();
            }
        })
        .await;
    let remote = ports(dynamo);
    let repository = &remote.repository;
    assert_eq!(
        repository.recount_runs(&id).await.unwrap(),
        planned.runs.len() as u64
    );
    // The emulator copies the table for each item a transaction touches: one move is enough.
    walk(repository, planned.runs[500], &[RunStatus::Running]).await;

    let api = AdminApi::new(remote.clone(), ApiConfig::new(KEY));
    let get = Request::builder()
        .method(Method::GET)
        .uri(format!("/manifests/{id}"))
        .header("x-api-key", KEY)
        .body(Vec::new())
        .unwrap();
    let before = counter.counts().get("dynamodb").copied().unwrap_or(0);
    let response = api.handle(get).await;
    let requests = counter.counts()["dynamodb"] - before;
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(response.status(), 200, "{body}");
    assert!(
        requests <= 2,
        "{requests} DynamoDB requests: {:?}",
        counter.counts()
    );

    let (by_status, stopped) = counted_from_runs(repository, &id).await;
    let served: BTreeMap<String, u64> =
        serde_json::from_value(body["progress"]["by_status"].clone()).unwrap();
    assert_eq!(served, by_status);
    assert_eq!(by_status["pending"], planned.runs.len() as u64 - 501);
    let listed: Vec<&str> = body["failed_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["run"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 100.min(stopped.len()));
    assert_eq!(listed, stopped[..listed.len()]);
    assert_eq!(body["failed_runs_truncated"], stopped.len() > 100);
    assert_eq!(
        body["failed_runs"][0]["reason"],
        format!("stopped {}", listed[0])
    );
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
}

/// Runs an earlier release wrote without the type index are missing from `GET /runs` until
/// the backfill writes them again with every index key; a second backfill finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_indexes_runs_written_before_the_type_index() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let client = support::dynamo(&endpoint, None).await;
    let table = support::table(&client).await;
    let store = Arc::new(DynamoStore::new(client, &table));
    let queues = LocalQueues::new(Duration::from_secs(30), 3);
    let ports = ports(Arc::clone(&store) as Arc<dyn Store>, &queues);
    support::install_simulated_catalog(&ports.repository).await;
    let planned = plan(&ports, &simulated_manifest(&Defaults::load().unwrap()))
        .await
        .unwrap();
    let repository = &ports.repository;
    let listed = |repository: &Repository| {
        let repository = repository.clone();
        async move {
            let page = repository
                .list_runs(&RunFilter::All, 1000, None)
                .await
                .unwrap();
            page.items.len()
        }
    };
    assert_eq!(listed(repository).await, planned.runs.len());
    for run in &planned.runs[..3] {
        let mut item = store.get(&keys::run(run)).await.unwrap().unwrap();
        item.index_keys.remove(&keys::BY_TYPE);
        store.put(item, PutMode::Overwrite).await.unwrap();
    }
    assert_eq!(listed(repository).await, planned.runs.len() - 3);

    let done = repository.backfill(&planned.manifest.id).await.unwrap();
    assert_eq!(done.reindexed, 3);
    assert_eq!(done.recounted, None, "its runs are still pending");
    assert_eq!(listed(repository).await, planned.runs.len());
    let again = repository.backfill(&planned.manifest.id).await.unwrap();
    assert_eq!(again.reindexed, 0);
}
