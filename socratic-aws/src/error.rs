//! How SDK errors map onto what callers act on.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What an SDK failure means for a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Rate-limited: retry later.
    Throttled(String),
    /// Transient: the request may or may not have happened; retry.
    Unavailable(String),
    /// A modeled service error, with its code.
    Service { code: String, message: String },
    /// The request could not be built or was rejected as malformed.
    Invalid(String),
}

const THROTTLING_CODES: [&str; 8] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
];

/// Codes that mean the deployment is wrong, not the request: a missing grant, table, bucket or
/// queue. They are server faults, retried (an operator can fix them while the messages wait)
/// and logged at error level for the alarms, never a permanent rejection of a run.
const FAULT_CODES: [&str; 8] = [
    "AccessDenied",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "NoSuchBucket",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
];

/// Classifies an SDK error: throttling and 5xx are transient, deployment faults (see
/// [`FAULT_CODES`]) are transient too, and other modeled errors keep their code.
pub(crate) fn classify<E: ProvideErrorMetadata + std::error::Error>(
    error: &SdkError<E, HttpResponse>,
) -> Failure {
    match error {
        SdkError::ConstructionFailure(_) => Failure::Invalid(format!("{error:?}")),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Unavailable(format!("{error:?}"))
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = context.err().code().unwrap_or_default().to_owned();
            let message = context.err().message().unwrap_or_default().to_owned();
            let text = if message.is_empty() {
                format!("{code} (HTTP {status})")
            } else {
                format!("{code}: {message}")
            };
            if THROTTLING_CODES.contains(&code.as_str()) || status == 429 {
                Failure::Throttled(text)
            } else if FAULT_CODES.contains(&code.as_str()) {
                tracing::error!(%code, status, message = %text, "deployment fault: check the function's grants and that its table, bucket and queues exist");
                Failure::Unavailable(format!("deployment fault: {text}"))
            } else if status >= 500 {
                Failure::Unavailable(text)
            } else {
                Failure::Service {
                    code,
                    message: text,
                }
            }
        }
        _ => Failure::Unavailable(format!("{error:?}")),
    }
}
