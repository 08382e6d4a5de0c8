//! `socratic run --batch` on Bedrock Claude models, end to end as a child process: the
//! records and answers in the emulator's S3 (moto, started by `scripts/test`), the jobs on a
//! stub of Bedrock's control plane that runs a job by reading its records from S3 and writing
//! the `.jsonl.out` file Bedrock documents, and live calls on a stub of the Converse endpoint.
//! Both stubs answer a request by its content, so the benchmark run live and batched must agree
//! run for run. The binary reaches each service through the SDK's per-service endpoint
//! variables (`AWS_ENDPOINT_URL_BEDROCK`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`,
//! `AWS_ENDPOINT_URL_S3`).

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use support::{digest, emulator, outcomes, satisfy, text};
use tokio::process::Command;

const MODELS: [(&str, &str); 3] = [
    ("tutor", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("student", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("judge", "anthropic.claude-3-sonnet-20240229-v1:0"),
];

/// The answer to a conversation, whichever API carried it: its text or tool input, and its
/// usage, from the conversation's texts alone.
struct Answer {
    text: Option<String>,
    tool: Option<(Value, Value)>,
    input_tokens: u64,
    output_tokens: u64,
}

fn answer(texts: &[String], tool: Option<(&Value, &Value)>) -> Answer {
    let seed = digest(&texts.join("\n"));
    Answer {
        text: tool
            .is_none()
            .then(|| format!("What do you notice about case {}?", seed % 997)),
        tool: tool.map(|(name, schema)| (name.clone(), satisfy(schema, seed))),
        input_tokens: 1000 + seed % 50,
        output_tokens: 100 + seed % 20,
    }
}

/// Bedrock's Converse response to a Converse request body.
fn converse_answer(request: &Value) -> Value {
    let texts: Vec<String> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    let spec = &request["toolConfig"]["tools"][0]["toolSpec"];
    let a = answer(
        &texts,
        spec.is_object()
            .then(|| (&spec["name"], &spec["inputSchema"]["json"])),
    );
    let (content, stop) = match (&a.text, &a.tool) {
        (_, Some((name, input))) => (
            json!([{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": input}}]),
            "tool_use",
        ),
        (Some(text), None) => (json!([{"text": text}]), "end_turn"),
        (None, None) => unreachable!(),
    };
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": a.input_tokens, "outputTokens": a.output_tokens,
                  "totalTokens": a.input_tokens + a.output_tokens},
        "metrics": {"latencyMs": 4}
    })
}

/// Claude's `InvokeModel` response (the Messages API's) to a batch record's `modelInput`.
fn invoke_answer(model_input: &Value) -> Value {
    let texts: Vec<String> = model_input["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    let tool = &model_input["tools"][0];
    let a = answer(
        &texts,
        tool.is_object()
            .then(|| (&tool["name"], &tool["input_schema"])),
    );
    let (content, stop) = match (&a.text, &a.tool) {
        (_, Some((name, input))) => (
            json!([{"type": "tool_use", "id": "toolu_01", "name": name, "input": input}]),
            "tool_use",
        ),
        (Some(text), None) => (json!([{"type": "text", "text": text}]), "end_turn"),
        (None, None) => unreachable!(),
    };
    json!({
        "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens}
    })
}

#[derive(Debug, Clone)]
struct Job {
    arn: String,
    name: String,
    token: String,
    model: String,
    input: String,
    output: String,
    status: String,
    records: usize,
}

struct Stub {
    s3: aws_sdk_s3::Client,
    jobs: Mutex<Vec<Job>>,
    converse_calls: AtomicU64,
    /// New jobs stay `InProgress` while set.
    hold: AtomicBool,
}

impl Stub {
    fn created(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// Records per job, in creation order.
    fn sizes(&self) -> Vec<usize> {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .map(|j| j.records)
            .collect()
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn split_uri(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("s3://").unwrap();
    let (bucket, key) = rest.split_once('/').unwrap();
    (bucket.to_owned(), key.to_owned())
}

fn job_body(job: &Job) -> Value {
    json!({
        "jobArn": job.arn, "jobName": job.name, "modelId": job.model,
        "clientRequestToken": job.token,
        "roleArn": "arn:aws:iam::123456789012:role/socratic-batch",
        "status": job.status, "submitTime": "2026-12-05T21:00:00Z",
        "inputDataConfig": {"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": job.input}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output}},
        "timeoutDurationInHours": 24
    })
}

async fn converse(State(stub): State<Arc<Stub>>, body: String) -> Response {
    stub.converse_calls.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_str(&body).unwrap();
    json_response(StatusCode::OK, &converse_answer(&request))
}

async fn create(State(stub): State<Arc<Stub>>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap();
    let token = body["clientRequestToken"].as_str().unwrap().to_owned();
    let input = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        .as_str()
        .unwrap()
        .to_owned();
    if let Some(job) = stub.jobs.lock().unwrap().iter().find(|j| j.token == token) {
        return json_response(StatusCode::OK, &json!({"jobArn": job.arn}));
    }
    // The records must be in S3 before the job is created.
    let (bucket, key) = split_uri(&input);
    let object = stub
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let records = std::str::from_utf8(&bytes).unwrap().lines().count();
    let mut jobs = stub.jobs.lock().unwrap();
    let job = Job {
        arn: format!(
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{:012}",
            jobs.len() + 1
        ),
        name: body["jobName"].as_str().unwrap().to_owned(),
        token,
        model: body["modelId"].as_str().unwrap().to_owned(),
        input,
        output: body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap()
            .to_owned(),
        status: "Submitted".to_owned(),
        records,
    };
    jobs.push(job.clone());
    json_response(StatusCode::OK, &json!({"jobArn": job.arn}))
}

/// Runs `job`: the answer of every record, written where Bedrock writes it.
async fn run(stub: &Stub, job: &Job) {
    let (bucket, key) = split_uri(&job.input);
    let object = stub
        .s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let mut out = String::new();
    for line in std::str::from_utf8(&bytes).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let line = json!({"recordId": record["recordId"], "modelInput": record["modelInput"],
                          "modelOutput": invoke_answer(&record["modelInput"])});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let (bucket, prefix) = split_uri(&job.output);
    let id = job.arn.rsplit('/').next().unwrap();
    let file = key.rsplit('/').next().unwrap();
    stub.s3
        .put_object()
        .bucket(bucket)
        .key(format!("{prefix}{id}/{file}.out"))
        .body(ByteStream::from(out.into_bytes()))
        .send()
        .await
        .unwrap();
}

async fn describe(State(stub): State<Arc<Stub>>, UrlPath(arn): UrlPath<String>) -> Response {
    let job = stub
        .jobs
        .lock()
        .unwrap()
        .iter()
        .find(|j| j.arn == arn)
        .cloned();
    let Some(mut job) = job else {
        return json_response(StatusCode::NOT_FOUND, &json!({"message": "no such job"}));
    };
    if job.status != "Completed" {
        if stub.hold.load(Ordering::SeqCst) {
            job.status = "InProgress".to_owned();
        } else {
            run(&stub, &job).await;
            job.status = "Completed".to_owned();
        }
        let mut jobs = stub.jobs.lock().unwrap();
        if let Some(stored) = jobs.iter_mut().find(|j| j.arn == arn) {
            stored.status = job.status.clone();
        }
    }
    json_response(StatusCode::OK, &job_body(&job))
}

async fn list(
    State(stub): State<Arc<Stub>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let contains = query.get("nameContains").cloned().unwrap_or_default();
    let jobs: Vec<Value> = stub
        .jobs
        .lock()
        .unwrap()
        .iter()
        .filter(|j| j.name.contains(&contains))
        .map(job_body)
        .collect();
    json_response(StatusCode::OK, &json!({"invocationJobSummaries": jobs}))
}

/// The stub, and a new bucket in the emulator for the records.
async fn serve(endpoint: &str) -> (String, String, Arc<Stub>) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("batches-{}", ulid::Ulid::new().to_string().to_lowercase());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let stub = Arc::new(Stub {
        s3,
        jobs: Mutex::default(),
        converse_calls: AtomicU64::new(0),
        hold: AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/model/{model}/converse", post(converse))
        .route("/model-invocation-job", post(create))
        .route("/model-invocation-job/{arn}", get(describe))
        .route("/model-invocation-jobs", get(list))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bucket, stub)
}

struct Bench {
    _dir: tempfile::TempDir,
    root: PathBuf,
    models: PathBuf,
    manifest: PathBuf,
    stub_url: String,
    emulator: String,
}

impl Bench {
    fn new(stub_url: &str, emulator: &str, bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let models = root.join("models.toml");
        let mut file = String::new();
        for (id, model) in MODELS {
            // One record is enough for a job here; Bedrock's minimum is tested in socratic-aws.
            file.push_str(&format!(
                "[[models]]\nid = \"{id}\"\nprovider = \"bedrock\"\nmodel = \"{model}\"\nregion = \"us-east-1\"\n\
                 prices = {{ input = 1.0, output = 4.0, batch_input = 0.5, batch_output = 2.0 }}\n\
                 batch_role_arn = \"arn:aws:iam::123456789012:role/socratic-batch\"\n\
                 batch_s3_uri = \"s3://{bucket}/benchmarks\"\nbatch_min_records = 1\n\n"
            ));
        }
        std::fs::write(&models, file).unwrap();
        let manifest = support::manifest(
            &root,
            3,
            2,
            ["tutor", "student", "judge"],
            "bedrock batch benchmark",
        );
        Self {
            _dir: dir,
            root,
            models,
            manifest,
            stub_url: stub_url.to_owned(),
            emulator: emulator.to_owned(),
        }
    }

    fn command(&self, out: &Path, batch: bool) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_socratic"));
        command
            .args(["run", "--quiet", "--no-preflight"])
            .arg("--models")
            .arg(&self.models)
            .arg("--manifest")
            .arg(&self.manifest)
            .arg("--out")
            .arg(out)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_BEDROCK", &self.stub_url)
            .env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &self.stub_url)
            .env("AWS_ENDPOINT_URL_S3", &self.emulator)
            .env("RUST_LOG", "error")
            .kill_on_drop(true);
        if batch {
            command.args([
                "--batch",
                "--batch-poll-seconds",
                "0.05",
                "--batch-gather-seconds",
                "2",
            ]);
        }
        command
    }

    async fn run(&self, out: &Path, batch: bool) -> Output {
        self.command(out, batch).output().await.unwrap()
    }
}

fn cost(out: &Path) -> f64 {
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    summary["cost_usd"].as_f64().unwrap()
}

/// Rounds of 6 tutor, 6 student and 6 tutor records, then the 12 judge calls (in one job, or
/// two when a run's judge calls came after the gather window).
fn assert_rounds(sizes: &[usize]) {
    assert_eq!(sizes[..3], [6, 6, 6], "{sizes:?}");
    assert!(matches!(sizes.len(), 4 | 5), "{sizes:?}");
    assert_eq!(sizes[3..].iter().sum::<usize>(), 12, "{sizes:?}");
}

#[tokio::test]
async fn a_bedrock_batch_benchmark_equals_the_live_one_at_half_the_price() {
    let Some(endpoint) = emulator() else { return };
    let (url, bucket, stub) = serve(&endpoint).await;
    let bench = Bench::new(&url, &endpoint, &bucket);

    let live = bench.root.join("live");
    let output = bench.run(&live, false).await;
    assert!(output.status.success(), "{}", text(&output));
    // 6 runs: 12 tutor, 6 student and 12 judge calls.
    assert_eq!(stub.converse_calls.load(Ordering::SeqCst), 30);
    assert_eq!(stub.created(), 0);

    let batched = bench.root.join("batched");
    let output = bench.run(&batched, true).await;
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        stub.converse_calls.load(Ordering::SeqCst),
        30,
        "no live call"
    );
    assert_rounds(&stub.sizes());
    assert_eq!(outcomes(&batched).await, outcomes(&live).await);
    assert!(
        (cost(&batched) - cost(&live) / 2.0).abs() < 1e-9,
        "batch ${} vs live ${}",
        cost(&batched),
        cost(&live)
    );
}

#[tokio::test]
async fn a_bedrock_batch_benchmark_killed_after_a_job_was_created_finds_it_again() {
    let Some(endpoint) = emulator() else { return };
    let (url, bucket, stub) = serve(&endpoint).await;
    let bench = Bench::new(&url, &endpoint, &bucket);
    let live = bench.root.join("live");
    assert!(bench.run(&live, false).await.status.success());

    stub.hold.store(true, Ordering::SeqCst);
    let out = bench.root.join("batched");
    let mut child = bench.command(&out, true).spawn().unwrap();
    while stub.created() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(stub.created(), 1);

    stub.hold.store(false, Ordering::SeqCst);
    let output = bench.run(&out, true).await;
    assert!(output.status.success(), "{}", text(&output));
    // The first job was collected, not created again: the same rounds as an uninterrupted
    // benchmark, and the same runs as the live one.
    assert_rounds(&stub.sizes());
    assert_eq!(outcomes(&out).await, outcomes(&live).await);
}
