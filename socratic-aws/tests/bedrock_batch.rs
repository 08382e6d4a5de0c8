//! Bedrock batch inference through the SDK: the records in the emulator's S3, the jobs on a
//! stub of Bedrock's control plane (`CreateModelInvocationJob`, `GetModelInvocationJob`,
//! `ListModelInvocationJobs`, `StopModelInvocationJob`) that runs a job by reading its input
//! from S3 and writing the `.jsonl.out` file Bedrock writes, driven by the batcher.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use socratic_aws::{BedrockBatchApi, BedrockBatchConfig};
use socratic_core::llm::{
    BatchApi, BatchError, BatchJournal, BatchOptions, BatchPoll, BatchRecord, BatchRequest,
    BatchState, Batcher, Budget, ConverseRequest, ConverseResponse, LlmClient, LlmError,
    MemoryBatchJournal, Message, Prices, Role, request_hash,
};

/// A Claude model without prompt caching on Bedrock, so its records carry no cache marks.
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const NAMESPACE: &str = "bedrock us-east-1";
/// A Messages API response body from Anthropic's reference (the `modelOutput` of a Claude
/// record is the `InvokeModel` response body, which is this).
const MESSAGE: &str = include_str!("../../socratic-anthropic/tests/fixtures/message-text.json");

/// What a job does when it runs.
#[derive(Debug, Clone)]
struct Outcome {
    /// Its final status.
    status: &'static str,
    /// Records (by question number) answered with an `error` object of this code.
    errored: Vec<(usize, u64)>,
    /// Records (by question number) left without an output line.
    missing: Vec<usize>,
}

impl Outcome {
    fn completed() -> Self {
        Self {
            status: "Completed",
            errored: Vec::new(),
            missing: Vec::new(),
        }
    }
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
    polls: usize,
}

/// The control plane's state.
struct Plane {
    s3: aws_sdk_s3::Client,
    jobs: Mutex<Vec<Job>>,
    creates: Mutex<usize>,
    /// What each new job does, in order; `Completed` once they run out.
    outcomes: Mutex<VecDeque<Outcome>>,
    /// Polls a job answers `InProgress` before it runs.
    polls_before_end: usize,
    /// A refusal for every create.
    refuse: Option<&'static str>,
}

fn split_uri(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("s3://").unwrap();
    let (bucket, key) = rest.split_once('/').unwrap();
    (bucket.to_owned(), key.to_owned())
}

fn job_body(job: &Job) -> Value {
    json!({
        "jobArn": job.arn,
        "jobName": job.name,
        "modelId": job.model,
        "clientRequestToken": job.token,
        "roleArn": "arn:aws:iam::123456789012:role/socratic-batch",
        "status": job.status,
        "submitTime": "2026-12-05T21:00:00Z",
        "lastModifiedTime": "2026-12-05T21:00:05Z",
        "inputDataConfig": {"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": job.input}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output}},
        "timeoutDurationInHours": 24,
        "jobExpirationTime": "2026-12-06T21:00:00Z"
    })
}

fn service_error(status: StatusCode, kind: &str, message: &str) -> (StatusCode, HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert("x-amzn-errortype", kind.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    (status, headers, json!({"message": message}).to_string())
}

fn ok(body: Value) -> (StatusCode, HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::OK, headers, body.to_string())
}

/// The answer the stub gives a record, and the live fake a call: the reference body with
/// the question echoed.
fn answer_body(question: &str) -> Value {
    let mut message: Value = serde_json::from_str(MESSAGE).unwrap();
    message["content"][0]["text"] = json!(format!("answer to {question}"));
    message
}

async fn create(
    State(plane): State<Arc<Plane>>,
    Json(body): Json<Value>,
) -> (StatusCode, HeaderMap, String) {
    *plane.creates.lock().unwrap() += 1;
    if let Some(message) = plane.refuse {
        return service_error(StatusCode::BAD_REQUEST, "ValidationException", message);
    }
    let token = body["clientRequestToken"].as_str().unwrap_or("").to_owned();
    let mut jobs = plane.jobs.lock().unwrap();
    // The idempotency token: the same create twice is the same job.
    if let Some(job) = jobs.iter().find(|j| !token.is_empty() && j.token == token) {
        return ok(json!({"jobArn": job.arn}));
    }
    let id = format!("{:012}", jobs.len() + 1);
    let job = Job {
        arn: format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{id}"),
        name: body["jobName"].as_str().unwrap().to_owned(),
        token,
        model: body["modelId"].as_str().unwrap().to_owned(),
        input: body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap()
            .to_owned(),
        output: body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            .as_str()
            .unwrap()
            .to_owned(),
        status: "Submitted".to_owned(),
        polls: 0,
    };
    assert_eq!(body["timeoutDurationInHours"], 24);
    assert!(
        body["roleArn"]
            .as_str()
            .unwrap()
            .ends_with("role/socratic-batch")
    );
    jobs.push(job.clone());
    ok(json!({"jobArn": job.arn}))
}

/// Runs `job`: reads its records and writes the output file Bedrock would.
async fn run(plane: &Plane, job: &Job, outcome: &Outcome) {
    let (bucket, key) = split_uri(&job.input);
    let input = plane
        .s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let input = input.body.collect().await.unwrap().into_bytes();
    let mut out = String::new();
    for line in std::str::from_utf8(&input).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let question = record["modelInput"]["messages"][0]["content"]
            .as_str()
            .unwrap();
        let number: usize = question.trim_start_matches("question ").parse().unwrap();
        if outcome.missing.contains(&number) {
            continue;
        }
        let mut line = json!({"recordId": record["recordId"], "modelInput": record["modelInput"]});
        if let Some((_, code)) = outcome.errored.iter().find(|(i, _)| *i == number) {
            line["error"] = json!({"errorCode": code, "errorMessage": "Internal server error"});
        } else {
            line["modelOutput"] = answer_body(question);
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let (bucket, prefix) = split_uri(&job.output);
    let id = job.arn.rsplit('/').next().unwrap();
    let file = key.rsplit('/').next().unwrap();
    for (name, body) in [
        (format!("{file}.out"), out),
        (
            "manifest.json.out".to_owned(),
            json!({"totalRecordCount": 0}).to_string(),
        ),
    ] {
        plane
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("{prefix}{id}/{name}"))
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .unwrap();
    }
}

async fn describe(
    State(plane): State<Arc<Plane>>,
    Path(id): Path<String>,
) -> (StatusCode, HeaderMap, String) {
    let job = {
        let mut jobs = plane.jobs.lock().unwrap();
        let Some(job) = jobs.iter_mut().find(|j| j.arn == id) else {
            return service_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no job");
        };
        job.polls += 1;
        if job.status == "Submitted" || job.status == "InProgress" {
            job.status = "InProgress".to_owned();
        }
        job.clone()
    };
    if job.status == "InProgress" && job.polls > plane.polls_before_end {
        let outcome = plane
            .outcomes
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(Outcome::completed);
        run(&plane, &job, &outcome).await;
        let mut jobs = plane.jobs.lock().unwrap();
        let stored = jobs.iter_mut().find(|j| j.arn == id).unwrap();
        stored.status = outcome.status.to_owned();
        return ok(job_body(stored));
    }
    ok(job_body(&job))
}

async fn stop(
    State(plane): State<Arc<Plane>>,
    Path(id): Path<String>,
) -> (StatusCode, HeaderMap, String) {
    let mut jobs = plane.jobs.lock().unwrap();
    match jobs.iter_mut().find(|j| j.arn == id) {
        Some(job) => {
            job.status = "Stopped".to_owned();
            ok(json!({}))
        }
        None => service_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", "no job"),
    }
}

async fn list(
    State(plane): State<Arc<Plane>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, HeaderMap, String) {
    let contains = query.get("nameContains").cloned().unwrap_or_default();
    let jobs = plane.jobs.lock().unwrap();
    let found: Vec<Value> = jobs
        .iter()
        .filter(|j| j.name.contains(&contains))
        .map(job_body)
        .collect();
    ok(json!({"invocationJobSummaries": found}))
}

struct Setup {
    plane: Arc<Plane>,
    api: Arc<BedrockBatchApi>,
    bucket: String,
    journal: Arc<MemoryBatchJournal>,
    budget: Arc<Budget>,
    live: Arc<Live>,
}

async fn setup(
    min_records: usize,
    polls_before_end: usize,
    outcomes: Vec<Outcome>,
    refuse: Option<&'static str>,
    budget: Budget,
) -> Option<Setup> {
    let endpoint = support::endpoint()?;
    let sdk = support::sdk(&endpoint).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = support::unique("batch");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let plane = Arc::new(Plane {
        s3: s3.clone(),
        jobs: Mutex::default(),
        creates: Mutex::default(),
        outcomes: Mutex::new(outcomes.into()),
        polls_before_end,
        refuse,
    });
    let app = Router::new()
        .route("/model-invocation-job", post(create))
        .route("/model-invocation-job/{id}", get(describe))
        .route("/model-invocation-job/{id}/stop", post(stop))
        .route("/model-invocation-jobs", get(list))
        .with_state(Arc::clone(&plane));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let control = aws_sdk_bedrock::Client::from_conf(
        aws_sdk_bedrock::config::Builder::from(&sdk)
            .endpoint_url(url)
            .build(),
    );
    let mut config = BedrockBatchConfig::new(
        "arn:aws:iam::123456789012:role/socratic-batch",
        &format!("s3://{bucket}/benchmarks/b1"),
    )
    .unwrap();
    config.min_records = min_records;
    Some(Setup {
        plane,
        api: Arc::new(BedrockBatchApi::new(control, s3, config)),
        bucket,
        journal: Arc::new(MemoryBatchJournal::new()),
        budget: Arc::new(budget),
        live: Arc::new(Live::default()),
    })
}

/// The model called live: the same answers, counted.
#[derive(Default)]
struct Live {
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl LlmClient for Live {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let question = request.messages[0].text.clone();
        self.asked.lock().unwrap().push(question.clone());
        socratic_anthropic_answer(request, &answer_body(&question))
    }
}

/// A Messages API body read as the live Claude client reads it.
fn socratic_anthropic_answer(
    request: &ConverseRequest,
    body: &Value,
) -> Result<ConverseResponse, LlmError> {
    socratic_anthropic::messages::answer("live", request, body, Duration::ZERO)
}

fn prices() -> Prices {
    Prices {
        input: 0.25,
        output: 1.25,
        cache_read: 0.03,
        cache_write: 0.3,
        batch_input: Some(0.125),
        batch_output: Some(0.625),
    }
}

fn request(i: usize) -> ConverseRequest {
    let mut request = ConverseRequest::new(
        MODEL,
        Role::Judge,
        vec![Message::user(format!("question {i}"))],
    );
    request.max_tokens = 64;
    request.system = vec![socratic_core::llm::SystemPart {
        text: "You judge Socratic tutoring.".to_owned(),
        cache_point: true,
    }];
    request
}

impl Setup {
    fn client(&self) -> Arc<dyn LlmClient> {
        let batcher = Batcher::new(
            Arc::clone(&self.journal) as Arc<dyn BatchJournal>,
            Arc::clone(&self.budget),
            None,
            BatchOptions {
                gather: Duration::from_millis(200),
                poll: Duration::from_millis(20),
            },
        );
        batcher.lane(
            MODEL,
            NAMESPACE,
            Arc::clone(&self.api) as Arc<dyn BatchApi>,
            prices(),
            Arc::clone(&self.live) as Arc<dyn LlmClient>,
        )
    }

    async fn ask(&self, range: std::ops::Range<usize>) -> Vec<Result<ConverseResponse, LlmError>> {
        let client = self.client();
        let calls = range.map(|i| {
            let client = Arc::clone(&client);
            async move { client.converse(&request(i)).await }
        });
        futures::future::join_all(calls).await
    }

    fn creates(&self) -> usize {
        *self.plane.creates.lock().unwrap()
    }

    fn live_calls(&self) -> BTreeSet<String> {
        self.live.asked.lock().unwrap().iter().cloned().collect()
    }

    async fn records_of(&self, job: usize) -> Vec<Value> {
        let input = self.plane.jobs.lock().unwrap()[job].input.clone();
        let (bucket, key) = split_uri(&input);
        assert_eq!(bucket, self.bucket);
        let object = self
            .plane
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_round_is_one_job_whose_answers_equal_live_ones_at_batch_prices() {
    let Some(setup) = setup(100, 2, Vec::new(), None, Budget::unlimited()).await else {
        return;
    };
    let answers = setup.ask(0..120).await;
    assert_eq!(setup.creates(), 1, "one job for the round");
    assert!(setup.live_calls().is_empty(), "nothing ran live");
    for (i, answer) in answers.iter().enumerate() {
        let answer = answer.as_ref().unwrap();
        let live =
            socratic_anthropic_answer(&request(i), &answer_body(&request(i).messages[0].text))
                .unwrap();
        assert_eq!(answer.text, live.text);
        assert_eq!(answer.usage, live.usage);
        assert_eq!(answer.stop_reason, live.stop_reason);
        assert!(answer.batched);
    }
    // The records: short ids in order, Claude's InvokeModel body on Bedrock, no cache marks
    // for a model without prompt caching.
    let records = setup.records_of(0).await;
    assert_eq!(records.len(), 120);
    assert_eq!(records[0]["recordId"], "R0000000000");
    assert_eq!(records[119]["recordId"], "R0000000119");
    let input = &records[7]["modelInput"];
    assert_eq!(input["anthropic_version"], "bedrock-2023-05-31");
    assert!(input.get("model").is_none());
    assert_eq!(input["max_tokens"], 64);
    assert_eq!(input["system"][0]["text"], "You judge Socratic tutoring.");
    assert!(input["system"][0].get("cache_control").is_none());
    // Batch prices (cache reads at half price too): the fixture's 95 input, 2051 cache-read
    // and 17 output tokens.
    let each = (95.0 * 0.125 + 2051.0 * 0.015 + 17.0 * 0.625) / 1e6;
    assert!(
        (setup.budget.spent() - 120.0 * each).abs() < 1e-9,
        "{} vs {}",
        setup.budget.spent(),
        120.0 * each
    );
    let journal = setup.journal.all().await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, BatchState::Collected);
    assert_eq!(journal[0].provider, "bedrock");
    assert!(
        journal[0].status.starts_with("Completed"),
        "{}",
        journal[0].status
    );
}

#[tokio::test]
async fn a_round_below_the_minimum_record_count_runs_live() {
    let Some(setup) = setup(100, 0, Vec::new(), None, Budget::unlimited()).await else {
        return;
    };
    let answers = setup.ask(0..12).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(setup.creates(), 0);
    assert_eq!(setup.live_calls().len(), 12);
    assert!(answers.iter().all(|a| !a.as_ref().unwrap().batched));
}

#[tokio::test]
async fn failed_and_unanswered_records_alone_go_into_the_next_job() {
    let partly = Outcome {
        status: "PartiallyCompleted",
        errored: vec![(3, 500), (40, 429)],
        missing: vec![77],
    };
    let Some(setup) = setup(1, 1, vec![partly], None, Budget::unlimited()).await else {
        return;
    };
    let answers = setup.ask(0..120).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(setup.creates(), 2);
    let second: BTreeSet<String> = setup
        .records_of(1)
        .await
        .iter()
        .map(|r| {
            r["modelInput"]["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        second,
        BTreeSet::from([
            "question 3".into(),
            "question 40".into(),
            "question 77".into()
        ])
    );
    let journal = setup.journal.all().await.unwrap();
    assert!(journal[0].status.starts_with("PartiallyCompleted"));
    assert!(journal.iter().all(|r| r.state == BatchState::Collected));
}

#[tokio::test]
async fn an_expired_job_sends_what_it_did_not_answer_live_when_too_few_remain() {
    let expired = Outcome {
        status: "Expired",
        errored: Vec::new(),
        missing: (60..120).filter(|i| i % 10 == 0).collect(),
    };
    let Some(setup) = setup(100, 1, vec![expired], None, Budget::unlimited()).await else {
        return;
    };
    let answers = setup.ask(0..120).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(setup.creates(), 1);
    // Six records were left unanswered: fewer than the job minimum, so they ran live.
    let expected: BTreeSet<String> = (60..120)
        .filter(|i| i % 10 == 0)
        .map(|i| format!("question {i}"))
        .collect();
    assert_eq!(setup.live_calls(), expected);
}

#[tokio::test]
async fn a_restart_finds_its_job_by_name_and_never_creates_it_again() {
    let Some(setup) = setup(100, 1, Vec::new(), None, Budget::unlimited()).await else {
        return;
    };
    let requests: Vec<BatchRequest> = (0..120)
        .map(|i| BatchRequest {
            custom_id: request_hash(NAMESPACE, &request(i)).unwrap(),
            request: request(i),
        })
        .collect();
    // An earlier process recorded the batch, submitted it, and was killed before it wrote
    // the job's ARN.
    let local_id = ulid::Ulid::new().to_string();
    let record = BatchRecord {
        local_id: local_id.clone(),
        model: MODEL.into(),
        provider: "bedrock".into(),
        provider_id: None,
        requests: requests.clone(),
        state: BatchState::Submitting,
        status: String::new(),
    };
    setup.journal.put(&record).await.unwrap();
    let arn = setup.api.submit(&local_id, &requests).await.unwrap();
    assert_eq!(setup.api.find(&local_id).await.unwrap(), Some(arn.clone()));
    assert_eq!(setup.creates(), 1);

    let answers = setup.ask(0..120).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(setup.creates(), 1, "the job was not created again");
    assert!(setup.live_calls().is_empty());
    let journal = setup.journal.all().await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].provider_id.as_deref(), Some(arn.as_str()));
    assert_eq!(journal[0].state, BatchState::Collected);
}

#[tokio::test]
async fn the_cap_stops_a_job_whose_worst_case_does_not_fit() {
    let one = socratic_core::llm::worst_case_cost(&prices().batch().unwrap(), &request(0));
    let Some(setup) = setup(100, 0, Vec::new(), None, Budget::new(one * 50.0)).await else {
        return;
    };
    let answers = setup.ask(0..120).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(LlmError::BudgetExhausted { .. }))),
        "{:?}",
        answers.first()
    );
    assert_eq!(setup.creates(), 0);
    assert!(setup.live_calls().is_empty());
    assert_eq!(setup.budget.spent(), 0.0);
}

#[tokio::test]
async fn a_refused_create_is_a_typed_submit_error() {
    let refusal = "The provided role cannot be assumed by Bedrock";
    let Some(setup) = setup(1, 0, Vec::new(), Some(refusal), Budget::unlimited()).await else {
        return;
    };
    let requests = vec![BatchRequest {
        custom_id: "c0".into(),
        request: request(0),
    }];
    match setup.api.submit("01REFUSED", &requests).await {
        Err(BatchError::Submit {
            provider,
            model,
            message,
            retryable,
            ..
        }) => {
            assert_eq!(provider, "bedrock");
            assert_eq!(model, MODEL);
            assert!(message.contains(refusal), "{message}");
            assert!(!retryable);
        }
        other => panic!("{other:?}"),
    }
    // A model whose body socratic does not write is refused before anything is sent.
    let mut nova = request(0);
    nova.model = "amazon.nova-lite-v1:0".into();
    let refused = setup
        .api
        .submit(
            "01NOVA",
            &[BatchRequest {
                custom_id: "c0".into(),
                request: nova,
            }],
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("Claude"), "{refused}");
    assert_eq!(setup.creates(), 1);
}

/// Submits two records and replaces the output the job will write with `output`.
async fn poll_with_output(setup: &Setup, output: &str) -> Result<BatchPoll, BatchError> {
    let requests: Vec<BatchRequest> = (0..2)
        .map(|i| BatchRequest {
            custom_id: format!("c{i}"),
            request: request(i),
        })
        .collect();
    let local_id = ulid::Ulid::new().to_string();
    let arn = setup.api.submit(&local_id, &requests).await.unwrap();
    // Let the stub run the job, then overwrite its output file.
    assert!(matches!(
        setup.api.poll(&arn, &requests).await.unwrap(),
        BatchPoll::Ended { .. }
    ));
    let job = setup.plane.jobs.lock().unwrap().last().cloned().unwrap();
    let (bucket, prefix) = split_uri(&job.output);
    let id = job.arn.rsplit('/').next().unwrap();
    setup
        .plane
        .s3
        .put_object()
        .bucket(bucket)
        .key(format!("{prefix}{id}/records.jsonl.out"))
        .body(ByteStream::from(output.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
    setup.api.poll(&arn, &requests).await
}

#[tokio::test]
async fn bad_output_files_are_typed_errors() {
    let Some(setup) = setup(1, 0, Vec::new(), None, Budget::unlimited()).await else {
        return;
    };
    let answer = answer_body("question 0");
    let unknown = json!({"recordId": "R0000000009", "modelInput": {}, "modelOutput": answer});
    match poll_with_output(&setup, &format!("{unknown}\n")).await {
        Err(BatchError::UnknownCustomId {
            custom_id, line, ..
        }) => {
            assert_eq!((custom_id.as_str(), line), ("R0000000009", 1));
        }
        other => panic!("{other:?}"),
    }
    let good = json!({"recordId": "R0000000000", "modelInput": {}, "modelOutput": answer});
    match poll_with_output(&setup, &format!("{good}\n{{\"recordId\": \"R00")).await {
        Err(BatchError::MalformedOutput { line, .. }) => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    let neither = json!({"recordId": "R0000000001", "modelInput": {}});
    match poll_with_output(&setup, &format!("{neither}\n")).await {
        Err(BatchError::MalformedOutput { reason, .. }) => {
            assert!(reason.contains("modelOutput"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let huge = format!("{}\n", "x".repeat(200_000));
    match poll_with_output(&setup, &huge).await {
        Err(BatchError::OutputTooLarge { requests, .. }) => assert_eq!(requests, 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stopped_job_gives_what_it_answered() {
    let Some(setup) = setup(1, 5, Vec::new(), None, Budget::unlimited()).await else {
        return;
    };
    let requests: Vec<BatchRequest> = (0..3)
        .map(|i| BatchRequest {
            custom_id: format!("c{i}"),
            request: request(i),
        })
        .collect();
    let arn = setup.api.submit("01STOPPED", &requests).await.unwrap();
    assert!(matches!(
        setup.api.poll(&arn, &requests).await.unwrap(),
        BatchPoll::Running { status } if status == "InProgress"
    ));
    setup.api.cancel(&arn).await.unwrap();
    match setup.api.poll(&arn, &requests).await.unwrap() {
        BatchPoll::Ended { status, results } => {
            assert_eq!(status, "Stopped");
            assert!(results.is_empty(), "nothing was written before the stop");
        }
        other @ BatchPoll::Running { .. } => panic!("{other:?}"),
    }
}
