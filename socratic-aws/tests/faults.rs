//! Deployment faults on the emulator: a missing table or queue makes the admin API answer a
//! server error with a request id and no AWS text, and the stores call them retryable.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use http::{Method, Request};
use serde_json::Value;
use socratic_aws::lambda::ports_from_settings;
use socratic_aws::{AwsSettings, DynamoStore};
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::defaults::Defaults;
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::store::{Key, Store};
use socratic_sim::simulated::PROVIDER;
use socratic_sim::{SimulatedLlm, simulated_manifest};

const KEY: &str = "faults-test-key";

/// Words that would mean an AWS message reached the client.
const AWS_TEXT: [&str; 8] = [
    "Exception",
    "arn:",
    "Requested resource",
    "NonExistentQueue",
    "QueueDoesNotExist",
    "123456789012",
    "dynamodb",
    "deployment fault",
];

async fn call(api: &AdminApi, method: Method, uri: &str, body: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", KEY)
        .body(body.as_bytes().to_vec())
        .unwrap();
    let response = api.handle(request).await;
    let status = response.status().as_u16();
    (status, serde_json::from_slice(response.body()).unwrap())
}

fn assert_fault(status: u16, body: &Value) {
    assert!((500..600).contains(&status), "{status}: {body}");
    let text = body.to_string();
    for word in AWS_TEXT {
        assert!(!text.contains(word), "{word:?} reached the client: {text}");
    }
    let id = body["error"]["request_id"].as_str().expect("a request id");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(id),
        "{body}"
    );
}

/// The ports of a deployment on `table` and `bucket` whose job queues do not exist.
fn ports_without_queues(
    endpoint: &str,
    sdk: &aws_config::SdkConfig,
    table: String,
    bucket: String,
) -> Ports {
    let settings = AwsSettings {
        endpoint_url: Some(endpoint.to_owned()),
        table: Some(table),
        bucket: Some(bucket),
        dialogue_queue_url: Some(format!("{endpoint}/123456789012/no-such-queue")),
        judge_queue_url: Some(format!("{endpoint}/123456789012/no-such-queue")),
        event_bus: Some("default".to_owned()),
        ..AwsSettings::default()
    };
    let providers = Providers::new().with(PROVIDER, Arc::new(SimulatedLlm::new()));
    ports_from_settings(&settings, sdk, providers, PipelineConfig::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_server_fault_without_aws_text() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let sdk = support::sdk(&endpoint).await;
    let table = support::unique("no-such-table");
    let ports = ports_without_queues(
        &endpoint,
        &sdk,
        table.clone(),
        support::unique("no-such-bucket"),
    );
    let api = AdminApi::new(ports, ApiConfig::new(KEY));
    for uri in ["/manifests", "/scenarios", "/runs?status=running"] {
        let (status, body) = call(&api, Method::GET, uri, "").await;
        assert_fault(status, &body);
    }

    // The store calls it retryable: an operator can create the table while jobs wait.
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let error = store.get(&Key::new("RUN#x", "METADATA")).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_is_a_server_fault_without_aws_text() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let sdk = support::sdk(&endpoint).await;
    let table = support::table(&aws_sdk_dynamodb::Client::new(&sdk)).await;
    let s3 = support::s3(&endpoint, None).await;
    let bucket = support::bucket(&s3).await;
    let ports = ports_without_queues(&endpoint, &sdk, table, bucket);
    support::install_simulated_catalog(&ports.repository).await;
    let defaults = Defaults::load().unwrap();
    let api = AdminApi::new(ports, ApiConfig::new(KEY));
    let request = serde_json::to_string(&simulated_manifest(&defaults)).unwrap();
    let (status, body) = call(&api, Method::POST, "/manifests", &request).await;
    assert_fault(status, &body);
}
