//! Emulator access for the AWS tests: moto server, started by `scripts/test`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The variable that lets an emulator test pass without the emulator (local runs only).
pub const ALLOW_SKIP: &str = "SOCRATIC_ALLOW_EMULATOR_SKIP";

/// The emulator endpoint. Without one, the test fails, unless `SOCRATIC_ALLOW_EMULATOR_SKIP=1`
/// allows the skip: then it prints a loud `SKIPPED` line straight to stdout (past the test
/// harness's capture, so every log shows it) and returns `None`. `.ci/run` fails on any
/// `SKIPPED` line, so CI cannot go green by skipping.
pub fn endpoint() -> Option<String> {
    use std::io::Write;
    if let Ok(url) = std::env::var("SOCRATIC_MOTO_ENDPOINT")
        && !url.is_empty()
    {
        return Some(url);
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("an emulator test")
        .to_owned();
    if std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1") {
        let _ = writeln!(
            std::io::stdout(),
            "SKIPPED: {test}: no emulator (SOCRATIC_MOTO_ENDPOINT is unset and {ALLOW_SKIP}=1)"
        );
        return None;
    }
    panic!(
        "{test} needs the AWS emulator: run the tests with scripts/test, set SOCRATIC_MOTO_ENDPOINT, or set {ALLOW_SKIP}=1 to skip the emulator tests"
    )
}

/// SDK configuration pointing at the emulator, with dummy credentials.
pub async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A unique, lowercase resource name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Counts the requests each client sends, by service.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    service: &'static str,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    pub fn for_service(&self, service: &'static str) -> Self {
        Self {
            service,
            counts: Arc::clone(&self.counts),
        }
    }

    /// Requests per service (`dynamodb`) and per operation (`dynamodb Query`).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name());
        let mut counts = self.counts.lock().unwrap();
        *counts.entry(self.service.to_owned()).or_default() += 1;
        *counts
            .entry(format!("{} {operation}", self.service))
            .or_default() += 1;
        Ok(())
    }
}

/// One AWS call a function made, as IAM sees it: the action, and for S3 the key's first path
/// segment (the grants are per prefix).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub function: &'static str,
    pub action: String,
    pub prefix: Option<String>,
}

/// Records every call of the clients it is given to, as IAM actions, per function.
#[derive(Debug, Clone, Default)]
pub struct CallRecorder {
    function: &'static str,
    calls: Arc<Mutex<std::collections::BTreeSet<Call>>>,
}

impl CallRecorder {
    pub fn for_function(&self, function: &'static str) -> Self {
        Self {
            function,
            calls: Arc::clone(&self.calls),
        }
    }

    pub fn calls(&self) -> std::collections::BTreeSet<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// The IAM actions an SDK operation needs. A DynamoDB transaction needs the action of each
/// operation inside it, read from the request body.
fn iam_actions(service: &str, operation: &str, body: &[u8]) -> Vec<String> {
    let service = service.to_lowercase().replace(' ', "");
    let prefix = match service.as_str() {
        "dynamodb" => "dynamodb",
        "s3" => "s3",
        "sqs" => "sqs",
        "eventbridge" => "events",
        "secretsmanager" => "secretsmanager",
        "bedrockruntime" => "bedrock",
        other => return vec![format!("{other}:{operation}")],
    };
    let actions: Vec<&str> = match (prefix, operation) {
        ("dynamodb", "TransactWriteItems") => {
            let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let mut actions: Vec<&str> = request["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| item.as_object()?.keys().next().cloned())
                .map(|kind| match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    _ => "ConditionCheckItem",
                })
                .collect();
            actions.sort_unstable();
            actions.dedup();
            actions
        }
        ("dynamodb", "TransactGetItems") => vec!["GetItem"],
        ("s3", "HeadObject") => vec!["GetObject"],
        ("s3", "ListObjectsV2") => vec!["ListBucket"],
        ("sqs", "SendMessageBatch") => vec!["SendMessage"],
        ("sqs", "DeleteMessageBatch") => vec!["DeleteMessage"],
        ("sqs", "ChangeMessageVisibilityBatch") => vec!["ChangeMessageVisibility"],
        ("bedrock", "Converse") => vec!["InvokeModel"],
        ("bedrock", "ConverseStream") => vec!["InvokeModelWithResponseStream"],
        (_, operation) => vec![operation],
    };
    actions
        .into_iter()
        .map(|a| format!("{prefix}:{a}"))
        .collect()
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .expect("every operation has metadata");
        let request = context.request();
        let body = request.body().bytes().unwrap_or_default();
        // Path-style S3: /bucket/key…; the key's first segment is the grant's prefix.
        let prefix = (metadata.service().eq_ignore_ascii_case("s3"))
            .then(|| {
                let path = request
                    .uri()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let path = path.split("://").last().unwrap_or_default().to_owned();
                path.split('/').nth(2).map(|p| format!("{p}/"))
            })
            .flatten();
        let mut calls = self.calls.lock().unwrap();
        for action in iam_actions(metadata.service(), metadata.name(), body) {
            calls.insert(Call {
                function: self.function,
                action,
                prefix: prefix.clone(),
            });
        }
        Ok(())
    }
}

pub async fn dynamo(endpoint: &str, counter: Option<&RequestCounter>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk(endpoint).await);
    if let Some(c) = counter {
        config = config.interceptor(c.for_service("dynamodb"));
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

pub async fn s3(endpoint: &str, counter: Option<&RequestCounter>) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(&sdk(endpoint).await).force_path_style(true);
    if let Some(c) = counter {
        config = config.interceptor(c.for_service("s3"));
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

pub async fn sqs(endpoint: &str, counter: Option<&RequestCounter>) -> aws_sdk_sqs::Client {
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk(endpoint).await);
    if let Some(c) = counter {
        config = config.interceptor(c.for_service("sqs"));
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

pub async fn eventbridge(endpoint: &str) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&sdk(endpoint).await)
}

/// A fresh event bus whose rule sends run-judged events to the queue at `queue_url`, as the
/// stack routes them to the curator: the bus's name.
pub async fn run_judged_bus(
    events: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    use socratic_aws::{RUN_JUDGED_DETAIL_TYPE, SOURCE};

    let arn = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()
        .get(&QueueAttributeName::QueueArn)
        .unwrap()
        .clone();
    let bus = unique("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let pattern = serde_json::json!({"source": [SOURCE], "detail-type": [RUN_JUDGED_DETAIL_TYPE]})
        .to_string();
    events
        .put_rule()
        .name("run-judged")
        .event_bus_name(&bus)
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("run-judged")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("curator")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    bus
}

/// A fresh table with every index.
pub async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("socratic");
    socratic_aws::create_table(client, &name, &socratic_core::keys::INDEXES)
        .await
        .unwrap();
    name
}

/// A fresh queue and its dead-letter queue, dead-lettering after `max_attempts` deliveries:
/// their URLs.
pub async fn queue(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    max_attempts: u32,
) -> (String, String) {
    socratic_aws::create_queue_with_dead_letter(
        client,
        &unique(prefix),
        max_attempts,
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap()
}

/// The default catalog and the simulated models, as every pipeline test starts.
pub async fn install_simulated_catalog(repository: &socratic_core::repository::Repository) {
    socratic_core::defaults::Defaults::load()
        .unwrap()
        .install(repository)
        .await
        .unwrap();
    for model in socratic_sim::SimulatedLlm::catalog() {
        repository.put_catalog(&model).await.unwrap();
    }
}

/// A fresh bucket.
pub async fn bucket(client: &aws_sdk_s3::Client) -> String {
    let name = unique("socratic");
    client.create_bucket().bucket(&name).send().await.unwrap();
    name
}
