//! Shared wiring of the Lambda functions: JSON logs, settings, the pipeline's ports with
//! Bedrock behind the one client stack (retries, and a concurrency limit per model), and the
//! entry point of the SQS stage functions. Built once per instance.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use socratic_aws::lambda::{handle_sqs_event, ports_from_settings};
use socratic_aws::metrics::EmbeddedMetrics;
use socratic_aws::{AwsSettings, BedrockLlm, ConfigError, sdk_config};
use socratic_core::llm::{ClientStack, RetryPolicy};
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};
use socratic_core::runner::StageHandler;

/// The provider name of models served by Bedrock in the catalog.
pub const BEDROCK_PROVIDER: &str = "bedrock";

/// Calls to one model in flight at once per instance.
const PER_MODEL_CONCURRENCY: usize = 4;

/// JSON logs to stdout, which Lambda ships to CloudWatch (`RUST_LOG` sets the level), and the
/// pipeline's metric events as CloudWatch embedded metrics beside them, whatever the level.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .without_time()
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    tracing_subscriber::registry()
        .with(logs)
        .with(EmbeddedMetrics::new(std::io::stdout))
        .init();
}

/// The pipeline's ports from the environment (see `AwsSettings`).
pub async fn ports() -> Result<Ports, ConfigError> {
    let settings = AwsSettings::from_env();
    let sdk = sdk_config(&settings).await;
    let bedrock = ClientStack::new()
        .retry(RetryPolicy::default())
        .concurrency(PER_MODEL_CONCURRENCY)
        .build(Arc::new(BedrockLlm::from_conf(&sdk)));
    let providers = Providers::new().with(BEDROCK_PROVIDER, bedrock);
    ports_from_settings(&settings, &sdk, providers, PipelineConfig::default())
}

/// The whole of a stage function fed by an SQS queue (dialogue, judge): logs, ports, then
/// each batch through the stage handler, answering with the messages that failed (a partial
/// batch response), until the runtime stops.
pub async fn run_sqs_stage() -> Result<(), Error> {
    init_tracing();
    let ports = ports().await?;
    let max_receives = AwsSettings::from_env().max_receive_count;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let ports = ports.clone();
        async move {
            Ok::<SqsBatchResponse, Error>(
                handle_sqs_event(&ports, &StageHandler, event.payload, max_receives).await,
            )
        }
    }))
    .await
}
