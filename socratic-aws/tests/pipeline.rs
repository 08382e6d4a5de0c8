//! The whole pipeline on DynamoDB, S3 and SQS (the emulator) with the simulated models: the
//! same summaries as on the memory backends, and the requests each service received per run.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use socratic_aws::{DynamoStore, S3BlobStore, SqsQueue};
use socratic_core::blob::{BlobKey, BlobStore};
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::defaults::Defaults;
use socratic_core::entity::ManifestSummary;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::queue::{QueueConsumer, ReceiveOptions};
use socratic_core::repository::Repository;
use socratic_core::runner::{Runner, RunnerConfig};
use socratic_memory::simulated::PROVIDER;
use socratic_memory::{LocalPipeline, MemoryBlobStore, SimulatedLlm, simulated_manifest};

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
    value
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
    let dynamo = support::dynamo(&endpoint, Some(&counter)).await;
    let table = support::table(&dynamo).await;
    let s3 = support::s3(&endpoint, Some(&counter)).await;
    let bucket = support::bucket(&s3).await;
    let sqs = support::sqs(&endpoint, Some(&counter)).await;
    let mut queues = Vec::new();
    for name in ["dialogue", "judge", "events"] {
        let (url, dlq) = support::queue(&sqs, name, 5).await;
        queues.push((
            SqsQueue::new(sqs.clone(), url),
            SqsQueue::new(sqs.clone(), dlq),
        ));
    }
    let blobs: Arc<dyn BlobStore> = Arc::new(S3BlobStore::new(s3, &bucket));
    let ports = Ports {
        repository: Repository::new(Arc::new(DynamoStore::new(dynamo, &table))),
        blobs: Arc::clone(&blobs),
        dialogue_jobs: Arc::new(queues[0].0.clone()),
        judge_jobs: Arc::new(queues[1].0.clone()),
        run_events: Arc::new(queues[2].0.clone()),
        providers: providers(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidGenerator::default()),
        config: PipelineConfig::default(),
    };
    support::install_simulated_catalog(&ports.repository).await;
    let before = counter.counts();
    let runner = Runner::builder(ports)
        .stage_lanes(
            Arc::new(queues[0].0.clone()),
            Arc::new(queues[1].0.clone()),
            Arc::new(queues[2].0.clone()),
            4,
        )
        .config(config())
        .build();
    let summary = tokio::time::timeout(Duration::from_secs(600), runner.run_manifest(&request))
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
    for (queue, dlq) in &queues {
        let empty = ReceiveOptions {
            max_messages: 10,
            wait: Duration::ZERO,
            visibility_timeout: None,
        };
        assert!(
            dlq.receive(&empty).await.unwrap().is_empty(),
            "nothing dead-lettered from {}",
            queue.url()
        );
    }

    let runs = f64::from(summary.runs);
    for (service, total) in &after {
        let used = total - before.get(service).copied().unwrap_or(0);
        eprintln!(
            "requests per run: {service} {:.1} ({used} for {runs} runs)",
            used as f64 / runs
        );
    }
}
