//! Shared wiring of the Lambda functions: JSON logs, settings, and the pipeline's ports with
//! Bedrock behind the retry and concurrency-limit decorators. Built once per instance.

use std::sync::Arc;

use socratic_aws::lambda::ports_from_settings;
use socratic_aws::metrics::EmbeddedMetrics;
use socratic_aws::{AwsSettings, BedrockLlm, ConfigError, sdk_config};
use socratic_core::llm::{ConcurrencyLimitLlm, LlmClient, RetryLlm, RetryPolicy};
use socratic_core::pipeline::{PipelineConfig, Ports, Providers};

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
    let bedrock: Arc<dyn LlmClient> = Arc::new(ConcurrencyLimitLlm::new(
        RetryLlm::new(BedrockLlm::from_conf(&sdk), RetryPolicy::default()),
        PER_MODEL_CONCURRENCY,
    ));
    let providers = Providers::new().with(BEDROCK_PROVIDER, bedrock);
    ports_from_settings(&settings, &sdk, providers, PipelineConfig::default())
}
