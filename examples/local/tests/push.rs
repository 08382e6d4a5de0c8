//! `socratic push` against the AWS emulator (moto, started by `scripts/test`): a local
//! benchmark pushed into a table and bucket, read back through the admin API's handler as a
//! deployed stack serves it; pushed again (no change); killed part way and pushed again; and
//! refused, with nothing written, when the stack holds a conflicting catalog entity or lacks
//! its table or bucket.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use http::{Method, Request};
use serde_json::Value;
use socratic_aws::{DynamoStore, S3BlobStore};
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::blob::{BlobKey, BlobStore, BlobStoreExt};
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::entity::Rubric;
use socratic_core::keys;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::repository::Repository;
use socratic_memory::LocalQueues;
use socratic_sim::SimulatedLlm;
use socratic_sim::simulated::PROVIDER;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

mod support;

use support::{emulator as endpoint, path, socratic, stderr, stdout};

const KEY: &str = "push-test-key";

async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A new table and bucket in the emulator.
struct Stack {
    endpoint: String,
    table: String,
    bucket: String,
    store: Arc<DynamoStore>,
    blobs: Arc<S3BlobStore>,
}

impl Stack {
    async fn new(endpoint: &str) -> Self {
        let sdk = sdk(endpoint).await;
        let name = ulid::Ulid::new().to_string().to_lowercase();
        let (table, bucket) = (format!("push-{name}"), format!("push-{name}"));
        socratic_aws::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table, &keys::INDEXES)
            .await
            .unwrap();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        Self {
            endpoint: endpoint.to_owned(),
            store: Arc::new(DynamoStore::from_sdk(&sdk, &table)),
            blobs: Arc::new(S3BlobStore::from_sdk(&sdk, &bucket)),
            table,
            bucket,
        }
    }

    /// `socratic push ARGS --table T --bucket B` against the emulator.
    fn push(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
        command
            .arg("push")
            .args(args)
            .args(["--table", &self.table, "--bucket", &self.bucket]);
        environment(&mut command, &self.endpoint);
        command
    }

    async fn pushed(&self, args: &[&str]) -> Output {
        self.push(args).output().await.unwrap()
    }

    /// The admin API on the stack's table and bucket, as the deployed `api` function serves it.
    fn api(&self) -> AdminApi {
        let queues = LocalQueues::new(Duration::from_secs(60), 5);
        let ports = Ports {
            repository: Repository::new(
                Arc::clone(&self.store) as Arc<dyn socratic_core::store::Store>
            ),
            blobs: Arc::clone(&self.blobs) as Arc<dyn BlobStore>,
            dialogue_jobs: Arc::new(queues.dialogue.clone()),
            judge_jobs: Arc::new(queues.judge.clone()),
            run_events: Arc::new(queues.events.clone()),
            providers: Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new())),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGenerator::default()),
            config: PipelineConfig::default(),
        };
        AdminApi::new(ports, ApiConfig::new(KEY))
    }
}

fn environment(command: &mut Command, endpoint: &str) {
    command
        .env("RUST_LOG", "error")
        .env("SOCRATIC_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// `GET uri` on the admin API: status and JSON body.
async fn get(api: &AdminApi, uri: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("x-api-key", KEY)
        .body(Vec::new())
        .unwrap();
    let response = api.handle(request).await;
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), body)
}

/// A finished local benchmark (the default: 24 runs on the simulated models, or the full
/// scenario bank) and its manifest id.
async fn benchmark(out: &Path, full: bool) -> String {
    let mut args = vec!["run", "--out", path(out), "--quiet"];
    if full {
        args.extend(["--scenario-set", "full"]);
    }
    let run = socratic(&args).await;
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    summary["manifest"].as_str().unwrap().to_owned()
}

/// Every run of `manifest` through `GET /runs?manifest=`, following the cursor.
async fn runs_of(api: &AdminApi, manifest: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut uri = format!("/runs?manifest={manifest}&limit=100");
    loop {
        let (status, body) = get(api, &uri).await;
        assert_eq!(status, 200, "{body}");
        runs.extend(body["runs"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/runs?manifest={manifest}&limit=100&cursor={cursor}"),
            None => return runs,
        }
    }
}

/// Asserts the stack serves `manifest` as the local directory `out` holds it: status,
/// summary, every run with its turns, and the report.
async fn assert_served(stack: &Stack, out: &Path, manifest: &str) {
    let api = stack.api();
    let local: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let (status, body) = get(&api, &format!("/manifests/{manifest}")).await;
    assert_eq!(status, 200, "{body}");
    let runs = local["runs"].as_u64().unwrap();
    let progress = &body["progress"];
    assert_eq!(progress["runs"], runs, "{progress}");
    assert_eq!(progress["finished_runs"], runs, "{progress}");
    assert_eq!(progress["by_status"]["curated"], runs, "{progress}");
    assert_eq!(body["summary"]["leaderboard"], local["leaderboard"]);
    assert_eq!(body["summary"]["cost_usd"], local["cost_usd"]);

    let listed = runs_of(&api, manifest).await;
    assert_eq!(listed.len() as u64, runs);
    let first = listed[0]["id"].as_str().unwrap();
    let (status, run) = get(&api, &format!("/runs/{first}")).await;
    assert_eq!(status, 200, "{run}");
    let show = socratic(&["show", first, "--out", path(out), "--json"]).await;
    let local_run: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        run["turns"].as_array().unwrap().len(),
        local_run["turns"].as_array().unwrap().len()
    );
    assert!(run["summary"].is_object(), "{run}");

    let report = BlobKey::new(format!("curated/manifests/{manifest}/report.html")).unwrap();
    let served = stack.blobs.get(&report).await.unwrap();
    assert_eq!(
        served,
        std::fs::read(out.join(format!("curated/manifests/{manifest}/report.html"))).unwrap()
    );
    // And a raw artifact of a turn, as the dialogue function stores it.
    let raw = stack
        .blobs
        .list_all(&format!("raw/runs/{first}/"))
        .await
        .unwrap();
    assert!(!raw.is_empty(), "raw artifacts of run {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_benchmark_is_served_as_if_it_ran_there_and_pushing_again_changes_nothing() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let manifest = benchmark(&out, false).await;
    let stack = Stack::new(&endpoint).await;

    // A dry run writes nothing.
    let dry = stack.pushed(&["--out", path(&out), "--dry-run"]).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains("dry run: 1 benchmark (24 runs) would write"),
        "{}",
        stdout(&dry)
    );
    let (status, _) = get(&stack.api(), &format!("/manifests/{manifest}")).await;
    assert_eq!(status, 404, "a dry run wrote the manifest");
    assert!(stack.blobs.list_all("").await.unwrap().is_empty());

    let pushed = stack.pushed(&["--out", path(&out)]).await;
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    assert!(
        stdout(&pushed).contains("pushed 1 benchmark (24 runs)"),
        "{}",
        stdout(&pushed)
    );
    assert!(stdout(&pushed).contains(&format!("manifest {manifest}")));
    assert_served(&stack, &out, &manifest).await;

    let again = stack.pushed(&["--out", path(&out)]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing to do"),
        "{}",
        stdout(&again)
    );
    let dry = stack.pushed(&["--out", path(&out), "--dry-run"]).await;
    assert!(
        stdout(&dry).contains("would write 0 items and 0 blobs"),
        "{}",
        stdout(&dry)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_killed_part_way_finishes_when_run_again() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let manifest = benchmark(&out, true).await;
    let stack = Stack::new(&endpoint).await;

    let mut pushing = stack
        .push(&["--out", path(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pushing.stderr.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(first.starts_with("pushing benchmark"), "{first}");
    // Kill it once some runs are in the stack.
    let api = stack.api();
    for _ in 0..200 {
        let (_, body) = get(&api, &format!("/runs?manifest={manifest}&limit=10")).await;
        if body["runs"].as_array().is_some_and(|r| r.len() >= 10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    pushing.start_kill().unwrap();
    let killed = pushing.wait().await.unwrap();
    assert!(!killed.success(), "the push finished before it was killed");
    let part = runs_of(&api, &manifest).await.len();
    assert!(
        (10..144).contains(&part),
        "{part} runs in the stack after the kill"
    );
    // The manifest itself is written last: a killed push never shows it half there.
    let (status, _) = get(&api, &format!("/manifests/{manifest}")).await;
    assert_eq!(status, 404);

    let finished = stack.pushed(&["--out", path(&out)]).await;
    assert!(finished.status.success(), "{}", stderr(&finished));
    let said = stdout(&finished);
    assert!(said.contains("pushed 1 benchmark (144 runs)"), "{said}");
    assert!(
        !said.contains(", 0 items and 0 blobs there already"),
        "nothing was kept: {said}"
    );
    assert_served(&stack, &out, &manifest).await;
    let again = stack.pushed(&["--out", path(&out)]).await;
    assert!(
        stdout(&again).contains("nothing to do"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_catalog_is_refused_with_nothing_written() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let manifest = benchmark(&out, false).await;
    let stack = Stack::new(&endpoint).await;

    // The stack holds the benchmark's rubric, edited.
    let local = socratic_sqlite::ResultsDir::read(&out).unwrap();
    let local = Repository::new(Arc::new(local.store()));
    let manifest_entity = local
        .get::<socratic_core::entity::Manifest>(&keys::manifest(&manifest.parse().unwrap()))
        .await
        .unwrap()
        .unwrap()
        .value;
    let rubric_pk = manifest_entity
        .catalog_hashes
        .keys()
        .find(|pk| pk.starts_with("RUBRIC#"))
        .unwrap()
        .clone();
    let mut rubric = local
        .get::<Rubric>(&socratic_core::store::Key::new(
            rubric_pk.clone(),
            keys::METADATA,
        ))
        .await
        .unwrap()
        .unwrap()
        .value;
    rubric.description = format!("{} (edited in the stack)", rubric.description);
    Repository::new(Arc::clone(&stack.store) as Arc<dyn socratic_core::store::Store>)
        .put_catalog(&rubric)
        .await
        .unwrap();

    let refused = stack.pushed(&["--out", path(&out)]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains(&format!(
            "already holds {rubric_pk}/METADATA with other content"
        )) && message.contains("overwrites nothing"),
        "{message}"
    );
    assert!(
        !message.contains("SdkError") && !message.contains("ServiceError"),
        "{message}"
    );
    let dry = stack.pushed(&["--out", path(&out), "--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(2));
    assert!(
        stderr(&dry).contains("with other content"),
        "{}",
        stderr(&dry)
    );
    // Nothing of the benchmark was written, and the stack's rubric is as it was.
    let api = stack.api();
    assert!(runs_of(&api, &manifest).await.is_empty());
    assert!(stack.blobs.list_all("").await.unwrap().is_empty());
    let kept = Repository::new(Arc::clone(&stack.store) as Arc<dyn socratic_core::store::Store>)
        .get::<Rubric>(&socratic_core::store::Key::new(rubric_pk, keys::METADATA))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(kept, rubric);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_or_bucket_is_named() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    benchmark(&out, false).await;
    let stack = Stack::new(&endpoint).await;
    let run = |table: &str, bucket: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
        command.args([
            "push",
            "--out",
            path(&out),
            "--table",
            table,
            "--bucket",
            bucket,
        ]);
        environment(&mut command, &endpoint);
        command
    };
    let no_table = run("no-such-table", &stack.bucket).output().await.unwrap();
    assert_eq!(no_table.status.code(), Some(2));
    assert!(
        stderr(&no_table).starts_with("error: table no-such-table does not exist"),
        "{}",
        stderr(&no_table)
    );
    let no_bucket = run(&stack.table, "no-such-bucket").output().await.unwrap();
    assert_eq!(no_bucket.status.code(), Some(2));
    assert!(
        stderr(&no_bucket).starts_with("error: bucket no-such-bucket does not exist"),
        "{}",
        stderr(&no_bucket)
    );
    // One error line each: no SDK error text.
    for output in [&no_table, &no_bucket] {
        assert_eq!(stderr(output).lines().count(), 1, "{}", stderr(output));
    }
}
