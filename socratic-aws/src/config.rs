//! One place that reads configuration from the environment and builds the SDK configuration.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// A required setting is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing configuration: set {variable} ({what})")]
pub struct ConfigError {
    /// The environment variable to set.
    pub variable: &'static str,
    /// What it names.
    pub what: &'static str,
}

/// Names of the AWS resources a deployment uses, read from the environment.
///
/// | variable | setting |
/// |---|---|
/// | `AWS_REGION` | region (the SDK's default chain applies when unset) |
/// | `SOCRATIC_ENDPOINT_URL` | endpoint override for every service, e.g. an emulator |
/// | `SOCRATIC_TABLE` | DynamoDB table |
/// | `SOCRATIC_BUCKET` | S3 bucket |
/// | `SOCRATIC_DIALOGUE_QUEUE_URL` | SQS queue of dialogue jobs |
/// | `SOCRATIC_JUDGE_QUEUE_URL` | SQS queue of judge jobs |
/// | `SOCRATIC_EVENTS_QUEUE_URL` | SQS queue of run-judged events (when not using EventBridge) |
/// | `SOCRATIC_EVENT_BUS` | EventBridge bus for run-judged events |
/// | `SOCRATIC_API_KEY_SECRET` | Secrets Manager secret (name or ARN) holding the admin API's key |
/// | `SOCRATIC_CURSOR_SECRET` | Secrets Manager secret (name or ARN) signing the admin API's pagination cursors; unset, they are signed with a key derived from the API key |
/// | `SOCRATIC_MAX_RECEIVE_COUNT` | the job queues' `maxReceiveCount`: on that delivery a failing job marks its run failed |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region.
    pub region: Option<String>,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Table name.
    pub table: Option<String>,
    /// Bucket name.
    pub bucket: Option<String>,
    /// Dialogue queue URL.
    pub dialogue_queue_url: Option<String>,
    /// Judge queue URL.
    pub judge_queue_url: Option<String>,
    /// Run-events queue URL.
    pub events_queue_url: Option<String>,
    /// Event bus name.
    pub event_bus: Option<String>,
    /// The Secrets Manager secret holding the admin API's key.
    pub api_key_secret: Option<String>,
    /// The Secrets Manager secret signing the admin API's pagination cursors.
    pub cursor_secret: Option<String>,
    /// The job queues' redrive `maxReceiveCount`; `None` when they have no dead-letter queue
    /// (or the deployment does not say), and a run whose job keeps failing is never failed.
    pub max_receive_count: Option<u32>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required<'a>(
    value: &'a Option<String>,
    variable: &'static str,
    what: &'static str,
) -> Result<&'a str, ConfigError> {
    value.as_deref().ok_or(ConfigError { variable, what })
}

impl AwsSettings {
    /// Reads every setting from the environment.
    pub fn from_env() -> Self {
        Self {
            region: env("AWS_REGION"),
            endpoint_url: env("SOCRATIC_ENDPOINT_URL"),
            table: env("SOCRATIC_TABLE"),
            bucket: env("SOCRATIC_BUCKET"),
            dialogue_queue_url: env("SOCRATIC_DIALOGUE_QUEUE_URL"),
            judge_queue_url: env("SOCRATIC_JUDGE_QUEUE_URL"),
            events_queue_url: env("SOCRATIC_EVENTS_QUEUE_URL"),
            event_bus: env("SOCRATIC_EVENT_BUS"),
            api_key_secret: env("SOCRATIC_API_KEY_SECRET"),
            cursor_secret: env("SOCRATIC_CURSOR_SECRET"),
            max_receive_count: env("SOCRATIC_MAX_RECEIVE_COUNT")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| *n >= 1),
        }
    }

    /// The table name, or which variable to set.
    pub fn table(&self) -> Result<&str, ConfigError> {
        required(&self.table, "SOCRATIC_TABLE", "the DynamoDB table")
    }

    /// The bucket name, or which variable to set.
    pub fn bucket(&self) -> Result<&str, ConfigError> {
        required(&self.bucket, "SOCRATIC_BUCKET", "the S3 bucket")
    }

    /// The dialogue queue URL, or which variable to set.
    pub fn dialogue_queue_url(&self) -> Result<&str, ConfigError> {
        required(
            &self.dialogue_queue_url,
            "SOCRATIC_DIALOGUE_QUEUE_URL",
            "the dialogue-jobs queue",
        )
    }

    /// The judge queue URL, or which variable to set.
    pub fn judge_queue_url(&self) -> Result<&str, ConfigError> {
        required(
            &self.judge_queue_url,
            "SOCRATIC_JUDGE_QUEUE_URL",
            "the judge-jobs queue",
        )
    }

    /// The run-events queue URL, or which variable to set.
    pub fn events_queue_url(&self) -> Result<&str, ConfigError> {
        required(
            &self.events_queue_url,
            "SOCRATIC_EVENTS_QUEUE_URL",
            "the run-events queue",
        )
    }

    /// The API key's secret, or which variable to set.
    pub fn api_key_secret(&self) -> Result<&str, ConfigError> {
        required(
            &self.api_key_secret,
            "SOCRATIC_API_KEY_SECRET",
            "the Secrets Manager secret holding the admin API's key",
        )
    }

    /// The event bus, or which variable to set.
    pub fn event_bus(&self) -> Result<&str, ConfigError> {
        required(&self.event_bus, "SOCRATIC_EVENT_BUS", "the EventBridge bus")
    }
}

/// The SDK configuration for these settings, with the behaviour version pinned so an SDK
/// upgrade cannot silently change defaults. Build each client from it once per process.
pub async fn sdk_config(settings: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::v2026_01_12());
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_settings_name_the_variable() {
        let settings = AwsSettings::default();
        let err = settings.table().unwrap_err();
        assert_eq!(err.variable, "SOCRATIC_TABLE");
        assert!(err.to_string().contains("SOCRATIC_TABLE"));
        assert_eq!(
            settings.event_bus().unwrap_err().variable,
            "SOCRATIC_EVENT_BUS"
        );
        let set = AwsSettings {
            bucket: Some("b".into()),
            ..AwsSettings::default()
        };
        assert_eq!(set.bucket(), Ok("b"));
    }
}
