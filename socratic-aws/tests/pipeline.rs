//! The whole pipeline on DynamoDB, S3 and SQS (the emulator) with the simulated models: the
//! same summaries as on the memory backends, and the requests each service received per run,
//! held to the budget of docs/performance.md.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use socratic_aws::{DynamoStore, S3BlobStore, SqsQueue};
use socratic_core::blob::{BlobKey, BlobStore};
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::defaults::Defaults;
use socratic_core::entity::ManifestSummary;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers, StageError, plan};
use socratic_core::queue::{QueueConsumer, ReceiveOptions};
use socratic_core::repository::Repository;
use socratic_core::runner::{JobHandler, Runner, RunnerConfig, StageHandler};
use socratic_memory::{LocalPipeline, MemoryBlobStore};
use socratic_sim::simulated::PROVIDER;
use socratic_sim::{SimulatedLlm, simulated_manifest};

/// The summary without what legitimately differs between two runs: ids and times.
fn comparable(summary: &ManifestSummary) -> Value {
    let mut value = serde_json::to_value(summary).unwrap();
    let obj = value.as_object_mut().unwrap();
    obj.remove("computed_at");
    obj.remove("manifest");
    for list in ["leaderboard", "vectors"] {
        for row in obj.get_mut(list).unwrap().as_array_mut().unwrap() {
            row.as_object_mut().unwrap().remove("manifest");
        }
    }
    // Run ids differ between two runs of one manifest; a disagreement's coordinates do not.
    if let Some(Value::Array(rows)) = obj.get_mut("telling_disagreements") {
        for row in rows {
            row.as_object_mut().unwrap().remove("run");
        }
    }
    value
}

/// The most DynamoDB requests a 3-turn, single-judge run may take, planning and the
/// manifest's summary included (docs/performance.md).
const DYNAMODB_REQUESTS_PER_RUN: f64 = 12.0;

/// Handles stage jobs with its own ports, those of the counted clients: the count then holds
/// what the pipeline asks of AWS, not the local runner polling for the summary, which a
/// deployment does not do.
struct CountedStages(Ports);

#[async_trait]
impl JobHandler for CountedStages {
    async fn handle(&self, _: &Ports, body: &str) -> Result<(), StageError> {
        StageHandler.handle(&self.0, body).await
    }
}

fn config() -> RunnerConfig {
    RunnerConfig {
        receive_wait: Duration::from_millis(200),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        ..RunnerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_on_aws_backends_matches_the_memory_run() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let request = simulated_manifest(&Defaults::load().unwrap());
    let providers = || Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));

    let memory = LocalPipeline::new(
        Arc::new(MemoryBlobStore::new()),
        providers(),
        PipelineConfig::default(),
    );
    memory
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .unwrap();
    let expected = memory
        .runner(4, config())
        .run_manifest(&request)
        .await
        .unwrap();

    let counter = support::RequestCounter::default();
    // The same table, bucket and queues through counted clients (the pipeline's) and
    // uncounted ones (the runner's).
    let plain = support::dynamo(&endpoint, None).await;
    let table = support::table(&plain).await;
    let plain_s3 = support::s3(&endpoint, None).await;
    let bucket = support::bucket(&plain_s3).await;
    let plain_sqs = support::sqs(&endpoint, None).await;
    let mut urls = Vec::new();
    for name in ["dialogue", "judge", "events"] {
        urls.push(support::queue(&plain_sqs, name, 5).await);
    }
    let ports = |dynamo, s3, sqs: aws_sdk_sqs::Client| {
        let queue = |i: usize| Arc::new(SqsQueue::new(sqs.clone(), urls[i].0.clone()));
        Ports {
            repository: Repository::new(Arc::new(DynamoStore::new(dynamo, &table))),
            blobs: Arc::new(S3BlobStore::new(s3, &bucket)) as Arc<dyn BlobStore>,
            dialogue_jobs: queue(0),
            judge_jobs: queue(1),
            run_events: queue(2),
            providers: providers(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator::default()),
            config: PipelineConfig::default(),
        }
    };
    let counted_sqs = support::sqs(&endpoint, Some(&counter)).await;
    let counted = ports(
        support::dynamo(&endpoint, Some(&counter)).await,
        support::s3(&endpoint, Some(&counter)).await,
        counted_sqs.clone(),
    );
    let uncounted = ports(plain.clone(), plain_s3.clone(), plain_sqs.clone());
    support::install_simulated_catalog(&counted.repository).await;
    let blobs = Arc::clone(&counted.blobs);
    let before = counter.counts();
    let stages: Arc<dyn JobHandler> = Arc::new(CountedStages(counted.clone()));
    let consumer = |i: usize| Arc::new(SqsQueue::new(counted_sqs.clone(), urls[i].0.clone()));
    let runner = Runner::builder(uncounted)
        .lane("dialogue", consumer(0), Arc::clone(&stages), 4)
        .lane("judge", consumer(1), Arc::clone(&stages), 4)
        .lane("curate", consumer(2), stages, 4)
        .config(config())
        .build();
    let planned = plan(&counted, &request).await.unwrap();
    let summary = tokio::time::timeout(
        Duration::from_secs(600),
        runner.complete(&planned.manifest.id, None),
    )
    .await
    .expect("finishes")
    .unwrap();
    let after = counter.counts();

    assert_eq!(
        comparable(&summary),
        comparable(&expected),
        "the same summaries as on the memory backends"
    );
    let report = BlobKey::new(format!(
        "curated/manifests/{}/report.html",
        summary.manifest
    ))
    .unwrap();
    assert!(
        String::from_utf8(blobs.get(&report).await.unwrap())
            .unwrap()
            .contains("<svg")
    );
    for (queue, dlq) in &urls {
        let empty = ReceiveOptions {
            max_messages: 10,
            wait: Duration::ZERO,
            visibility_timeout: None,
        };
        let dlq = SqsQueue::new(plain_sqs.clone(), dlq.clone());
        assert!(
            dlq.receive(&empty).await.unwrap().is_empty(),
            "nothing dead-lettered from {queue}"
        );
    }

    let runs = f64::from(summary.runs);
    let per_run = |service: &str| {
        let used =
            after.get(service).copied().unwrap_or(0) - before.get(service).copied().unwrap_or(0);
        used as f64 / runs
    };
    for service in after.keys() {
        eprintln!("requests per run: {service} {:.1}", per_run(service));
    }
    assert!(
        per_run("dynamodb") <= DYNAMODB_REQUESTS_PER_RUN,
        "{:.1} DynamoDB requests per run; the budget is {DYNAMODB_REQUESTS_PER_RUN}",
        per_run("dynamodb")
    );
}
