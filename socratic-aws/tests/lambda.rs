//! The Lambda handlers, invoked in-process with real event JSON shapes (SQS, EventBridge,
//! API Gateway HTTP API) against the emulator, and a whole benchmark driven through them.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::{Value, json};
use socratic_aws::lambda::{
    handle_api_request, handle_plan, handle_run_judged, handle_sqs_event, ports_from_settings,
};
use socratic_aws::{
    AwsSettings, DynamoStore, EventBridgePublisher, RUN_JUDGED_DETAIL_TYPE, S3BlobStore, SOURCE,
    SqsQueue,
};
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::defaults::Defaults;
use socratic_core::entity::Stage;
use socratic_core::pipeline::{Job, PipelineConfig, Ports, Providers};
use socratic_core::queue::{QueueConsumer, ReceiveOptions};
use socratic_core::repository::Repository;
use socratic_core::repository::RunFilter;
use socratic_core::runner::StageHandler;
use socratic_sim::chaos::ThrottledModel;
use socratic_sim::simulated::{LEAKY_TUTOR, PROVIDER};
use socratic_sim::{SimulatedLlm, simulated_manifest};

const KEY: &str = "lambda-test-key";
/// The job queues' redrive `maxReceiveCount`, which the handlers are told as the deployment
/// tells them (`SOCRATIC_MAX_RECEIVE_COUNT`).
const MAX_RECEIVES: u32 = 3;

/// The functions of the deployment, as infrastructure/permissions.json names them.
const FUNCTIONS: [&str; 5] = ["api", "planner", "dialogue", "judge", "curator"];

struct Deployment {
    /// Ports for the test's own set-up and checks: not recorded.
    ports: Ports,
    /// Each function's ports, its clients recording what it calls.
    functions: BTreeMap<&'static str, Ports>,
    recorder: support::CallRecorder,
    api: AdminApi,
    dialogue: SqsQueue,
    dialogue_dead_letters: SqsQueue,
    judge: SqsQueue,
    curator: SqsQueue,
}

/// Creates a table, a bucket, the job queues, a bus with a rule sending run-judged events to a
/// curator queue, and the ports over them — what the infrastructure code creates on AWS.
async fn deploy(endpoint: &str) -> Deployment {
    let sdk = support::sdk(endpoint).await;
    let table = support::table(&aws_sdk_dynamodb::Client::new(&sdk)).await;
    let s3 = support::s3(endpoint, None).await;
    let bucket = support::bucket(&s3).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (dialogue, dialogue_dead_letters) = support::queue(&sqs, "dialogue", MAX_RECEIVES).await;
    let (judge, _) = support::queue(&sqs, "judge", MAX_RECEIVES).await;
    let (curator, _) = support::queue(&sqs, "curator", 5).await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = support::run_judged_bus(&events, &sqs, &curator).await;

    let settings = AwsSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        table: Some(table),
        bucket: Some(bucket),
        dialogue_queue_url: Some(dialogue.clone()),
        judge_queue_url: Some(judge.clone()),
        events_queue_url: None,
        event_bus: Some(bus),
        api_key_secret: None,
        cursor_secret: None,
        max_receive_count: Some(MAX_RECEIVES),
    };
    let providers = Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));
    let ports = ports_from_settings(&settings, &sdk, providers, PipelineConfig::default()).unwrap();
    support::install_simulated_catalog(&ports.repository).await;
    let recorder = support::CallRecorder::default();
    let functions: BTreeMap<&'static str, Ports> = FUNCTIONS
        .into_iter()
        .map(|name| {
            let ports = function_ports(&sdk, &settings, &recorder.for_function(name));
            (name, ports)
        })
        .collect();
    Deployment {
        api: AdminApi::new(functions["api"].clone(), ApiConfig::new(KEY)),
        functions,
        recorder,
        ports,
        dialogue: SqsQueue::new(sqs.clone(), dialogue),
        dialogue_dead_letters: SqsQueue::new(sqs.clone(), dialogue_dead_letters),
        judge: SqsQueue::new(sqs.clone(), judge),
        curator: SqsQueue::new(sqs, curator),
    }
}

/// What `ports_from_settings` builds for a function, with every client recording its calls.
fn function_ports(
    sdk: &SdkConfig,
    settings: &AwsSettings,
    recorder: &support::CallRecorder,
) -> Ports {
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .interceptor(recorder.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .interceptor(recorder.clone())
            .build(),
    );
    let queue =
        |url: &str| Arc::new(SqsQueue::new(sqs.clone(), url).with_max_attempts(MAX_RECEIVES));
    Ports {
        repository: Repository::new(Arc::new(DynamoStore::new(
            dynamo,
            settings.table().unwrap(),
        ))),
        blobs: Arc::new(S3BlobStore::new(s3, settings.bucket().unwrap())),
        dialogue_jobs: queue(settings.dialogue_queue_url().unwrap()),
        judge_jobs: queue(settings.judge_queue_url().unwrap()),
        run_events: Arc::new(EventBridgePublisher::new(
            events,
            settings.event_bus().unwrap(),
        )),
        providers: Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new())),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidGenerator::default()),
        config: PipelineConfig::default(),
    }
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it.
fn api_event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<Value>,
) -> ApiGatewayV2httpRequest {
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"accept": "*/*", "content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com", "x-api-key": KEY},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": "$default", "stage": "$default",
            "time": "29/Nov/2026:02:40:00 +0000", "timeEpoch": 1_795_920_000_000_i64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    });
    serde_json::from_value(event).unwrap()
}

/// Receives what is on a queue and wraps it in an SQS event, as the event source mapping does.
async fn sqs_event(queue: &SqsQueue) -> (SqsEvent, Vec<socratic_core::queue::Delivery>) {
    let options = ReceiveOptions {
        max_messages: 10,
        wait: Duration::from_millis(200),
        visibility_timeout: Some(Duration::from_secs(30)),
    };
    let deliveries = queue.receive(&options).await.unwrap();
    let records: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            json!({
                "messageId": d.message_id.0, "receiptHandle": d.receipt.0, "body": d.body,
                "attributes": {"ApproximateReceiveCount": d.attempt.to_string(), "SentTimestamp": "1795920000000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795920000001"},
                "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs", "awsRegion": "us-east-1"
            })
        })
        .collect();
    (
        serde_json::from_value(json!({"Records": records})).unwrap(),
        deliveries,
    )
}

/// Runs one batch through a handler like the event source: failed records stay on the queue.
async fn drain_once(ports: &Ports, queue: &SqsQueue) -> usize {
    let (event, deliveries) = sqs_event(queue).await;
    let response = handle_sqs_event(ports, &StageHandler, event, Some(MAX_RECEIVES)).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for delivery in &deliveries {
        if failed.contains(&delivery.message_id.0.as_str()) {
            queue.nack(&delivery.receipt, Duration::ZERO).await.unwrap();
        } else {
            queue.ack(&delivery.receipt).await.unwrap();
        }
    }
    deliveries.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_runs_through_the_lambda_handlers() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let deployment = deploy(&endpoint).await;

    let mut request = simulated_manifest(&Defaults::load().unwrap());
    request.scenarios.truncate(2);
    let posted = handle_api_request(
        &deployment.api,
        api_event(
            "POST",
            "/manifests",
            "",
            Some(serde_json::to_value(&request).unwrap()),
        ),
    )
    .await;
    assert_eq!(posted.status_code, 201);
    let body: Value = match posted.body.unwrap() {
        aws_lambda_events::encodings::Body::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    let id = body["manifest_id"].as_str().unwrap().to_owned();
    assert_eq!(body["jobs_queued"], 6);

    let summary = drive(&deployment, &id, None).await;
    let leaderboard = summary["leaderboard"]
        .as_array()
        .expect("the manifest was curated");
    let order: Vec<&str> = leaderboard
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["sim-socratic", "sim-leaky", "sim-lecturer"]);
    assert_eq!(summary["runs"], 6);

    // The planner function plans one by direct invocation, and the functions run it too.
    request.scenarios.truncate(1);
    let planned = handle_plan(
        &deployment.functions["planner"],
        serde_json::to_value(&request).unwrap(),
    )
    .await
    .unwrap();
    let id = planned["manifest_id"].as_str().unwrap().to_owned();
    let summary = drive(&deployment, &id, None).await;
    assert_eq!(summary["runs"], 3);
    // Reading results through the API function.
    for path in [format!("/manifests/{id}"), format!("/runs?manifest={id}")] {
        let got = handle_api_request(&deployment.api, api_event("GET", &path, "", None)).await;
        assert_eq!(got.status_code, 200, "{path}");
    }

    check_permissions(&deployment.recorder.calls());
}

/// Every call a function made is granted to it by infrastructure/permissions.json, the table
/// the stack builds its roles from; for S3, on the key prefix it wrote or read.
fn check_permissions(calls: &std::collections::BTreeSet<support::Call>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infrastructure/permissions.json"
    );
    let table: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut denied = Vec::new();
    for function in FUNCTIONS {
        let made: Vec<&support::Call> = calls.iter().filter(|c| c.function == function).collect();
        assert!(
            !made.is_empty(),
            "{function} made no call: the check would be empty"
        );
        let statements = table["functions"][function].as_array().unwrap();
        for call in made {
            let granted = statements.iter().any(|statement| {
                let has = |field: &str, value: &str| {
                    statement[field]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|v| v.as_str() == Some(value))
                };
                has("actions", &call.action)
                    && call
                        .prefix
                        .as_ref()
                        .is_none_or(|prefix| has("resources", &format!("bucket/{prefix}*")))
            });
            if !granted {
                denied.push(format!(
                    "{function}: {}{}",
                    call.action,
                    call.prefix
                        .as_ref()
                        .map(|p| format!(" on {p}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    assert!(
        denied.is_empty(),
        "calls not granted in infrastructure/permissions.json:\n{}",
        denied.join("\n")
    );
}

/// Drives the functions' handlers as the event sources would until manifest `id` is
/// summarised, and returns its summary (`null` if it never is). `providers` replaces the
/// models the dialogue and judge functions call.
async fn drive(deployment: &Deployment, id: &str, providers: Option<Providers>) -> Value {
    let function = |name: &str| {
        let mut ports = deployment.functions[name].clone();
        if let Some(providers) = &providers {
            ports.providers = providers.clone();
        }
        ports
    };
    let (dialogue, judge, curator) = (function("dialogue"), function("judge"), function("curator"));
    let mut summary = Value::Null;
    for _ in 0..200 {
        let mut moved = drain_once(&dialogue, &deployment.dialogue).await;
        moved += drain_once(&judge, &deployment.judge).await;
        // The curator receives EventBridge events through its rule's target.
        let options = ReceiveOptions {
            max_messages: 10,
            wait: Duration::from_millis(200),
            visibility_timeout: None,
        };
        for delivery in deployment.curator.receive(&options).await.unwrap() {
            let event: EventBridgeEvent<Value> = serde_json::from_str(&delivery.body).unwrap();
            assert_eq!(event.detail_type, RUN_JUDGED_DETAIL_TYPE);
            handle_run_judged(&curator, event).await.unwrap();
            deployment.curator.ack(&delivery.receipt).await.unwrap();
            moved += 1;
        }
        let got = handle_api_request(
            &deployment.api,
            api_event("GET", &format!("/manifests/{id}"), "", None),
        )
        .await;
        assert_eq!(got.status_code, 200);
        let value: Value = match got.body.unwrap() {
            aws_lambda_events::encodings::Body::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("{other:?}"),
        };
        if !value["summary"].is_null() {
            summary = value["summary"].clone();
            break;
        }
        if moved == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tutor_throttled_for_good_fails_its_runs_through_the_lambda_handlers() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let deployment = deploy(&endpoint).await;
    let throttled = Arc::new(ThrottledModel::new(SimulatedLlm::new(), LEAKY_TUTOR));
    let providers = Providers::new().with(
        PROVIDER,
        Arc::clone(&throttled) as Arc<dyn socratic_core::llm::LlmClient>,
    );

    let mut request = simulated_manifest(&Defaults::load().unwrap());
    request.scenarios.truncate(2);
    let planned = socratic_core::pipeline::plan(&deployment.ports, &request)
        .await
        .unwrap();
    let id = planned.manifest.id.to_string();
    let summary = drive(&deployment, &id, Some(providers)).await;
    assert_eq!(summary["runs"], 6, "the manifest finished: {summary}");
    assert_eq!(summary["failed_runs"], 2);
    assert_eq!(
        throttled.refused(),
        2 * u64::from(MAX_RECEIVES),
        "each of the two jobs was delivered {MAX_RECEIVES} times, no more"
    );
    for run in deployment
        .ports
        .repository
        .list_runs(&RunFilter::Manifest(planned.manifest.id), 10, None)
        .await
        .unwrap()
        .items
    {
        if run.tutor.model.as_str() == LEAKY_TUTOR {
            let failure = run.failure.expect("a failed run keeps its reason");
            assert_eq!(failure.stage, Stage::Dialogue);
            assert!(
                failure
                    .reason
                    .starts_with(&format!("gave up after {MAX_RECEIVES} attempt(s)")),
                "{}",
                failure.reason
            );
        }
    }
    // Nothing reached the dead-letter queue: the failures are on the runs.
    let options = ReceiveOptions {
        max_messages: 10,
        wait: Duration::from_millis(200),
        visibility_timeout: None,
    };
    let dead = deployment.dialogue_dead_letters.receive(&options).await;
    assert!(dead.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_report_failures_precisely() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let deployment = deploy(&endpoint).await;
    // A batch with one job for an unknown run and one malformed message: both fail, by id.
    let unknown = Job::Dialogue {
        run: "01JD8X4Z7Q3V9K2M5N6P7R8S9T".parse().unwrap(),
    };
    let event: SqsEvent = serde_json::from_value(json!({"Records": [
        {"messageId": "a", "receiptHandle": "r1", "body": serde_json::to_string(&unknown).unwrap(), "attributes": {}, "messageAttributes": {},
         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dialogue", "awsRegion": "us-east-1"},
        {"messageId": "b", "receiptHandle": "r2", "body": "{not json", "attributes": {}, "messageAttributes": {},
         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dialogue", "awsRegion": "us-east-1"}
    ]}))
    .unwrap();
    let response = handle_sqs_event(&deployment.ports, &StageHandler, event, None).await;
    let ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let serialised = serde_json::to_value(&response).unwrap();
    assert_eq!(serialised["batchItemFailures"][0]["itemIdentifier"], "a");

    // A run-judged event whose detail is not a curate job is rejected.
    let event: EventBridgeEvent<Value> = serde_json::from_value(json!({
        "version": "0", "id": "e1", "detail-type": RUN_JUDGED_DETAIL_TYPE, "source": SOURCE, "account": "123456789012",
        "time": "2026-11-29T02:40:00Z", "region": "us-east-1", "resources": [], "detail": {"type": "judge", "run": "01JD8X4Z7Q3V9K2M5N6P7R8S9T", "turn": 1}
    }))
    .unwrap();
    assert!(handle_run_judged(&deployment.ports, event).await.is_err());

    // The REST API proxy shape (payload 1.0), which the deployment's API Gateway sends.
    let rest: aws_lambda_events::apigw::ApiGatewayProxyRequest = serde_json::from_value(json!({
        "resource": "/{proxy+}", "path": "/scenarios", "httpMethod": "GET",
        "headers": {"x-api-key": KEY, "Accept": "application/json"}, "multiValueHeaders": {"x-api-key": [KEY]},
        "queryStringParameters": {"limit": "3"}, "multiValueQueryStringParameters": {"limit": ["3"]},
        "pathParameters": {"proxy": "scenarios"}, "stageVariables": null,
        "requestContext": {"accountId": "123456789012", "resourceId": "abc", "stage": "v1", "requestId": "r1",
                           "identity": {"sourceIp": "203.0.113.7", "apiKey": KEY}, "resourcePath": "/{proxy+}",
                           "httpMethod": "GET", "apiId": "abc123", "path": "/v1/scenarios"},
        "body": null, "isBase64Encoded": false
    }))
    .unwrap();
    let answer = socratic_aws::lambda::handle_rest_api_request(&deployment.api, rest).await;
    assert_eq!(answer.status_code, 200);
    let aws_lambda_events::encodings::Body::Text(text) = answer.body.unwrap() else {
        panic!("text body")
    };
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        page["scenarios"].as_array().unwrap().len(),
        3,
        "the query string reached the API"
    );

    // The API without a key, and the planner with an invalid request.
    let mut no_key = api_event("GET", "/scenarios", "limit=2", None);
    no_key.headers.remove("x-api-key");
    assert_eq!(
        handle_api_request(&deployment.api, no_key)
            .await
            .status_code,
        401
    );
    let listed = handle_api_request(
        &deployment.api,
        api_event("GET", "/scenarios", "limit=2", None),
    )
    .await;
    assert_eq!(listed.status_code, 200);
    // A body marked base64 that does not decode is refused, not served as an empty body.
    let mut garbled = api_event("POST", "/manifests", "", None);
    garbled.body = Some("this is %% not base64".into());
    garbled.is_base64_encoded = true;
    let answer = handle_api_request(&deployment.api, garbled).await;
    assert_eq!(answer.status_code, 400);
    let aws_lambda_events::encodings::Body::Text(text) = answer.body.unwrap() else {
        panic!("text body")
    };
    assert!(text.contains("base64"), "{text}");
    let answer = handle_plan(&deployment.ports, json!({"tutor_prompt": "nope"}))
        .await
        .unwrap();
    assert_eq!(answer["error"]["code"], "invalid_manifest");
    let mut request = serde_json::to_value(simulated_manifest(&Defaults::load().unwrap())).unwrap();
    request["judges"] = json!([]);
    let answer = handle_plan(&deployment.ports, request).await.unwrap();
    assert_eq!(answer["error"]["problems"][0]["field"], "judges");
}
