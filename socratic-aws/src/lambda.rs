//! Lambda adapters: conversions between Lambda events and the pipeline, so each Lambda `main`
//! only builds clients (once per instance) and calls one of these.
//!
//! | function | event | does |
//! |---|---|---|
//! | [`handle_sqs_event`] | SQS batch (dialogue or judge jobs) | runs each job; failed records go in `batchItemFailures`, so only they are redelivered (and dead-lettered after the queue's maximum receives) |
//! | [`handle_run_judged`] | EventBridge `run-judged` event | curates the run in `detail` |
//! | [`handle_rest_api_request`] | API Gateway REST API proxy (payload 1.0) | the admin API |
//! | [`handle_api_request`] | API Gateway HTTP API (payload 2.0) | the admin API |
//! | [`handle_plan`] | direct invocation with a manifest request | plans it |

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::Engine;
use serde_json::{Value, json};
use socratic_core::api::AdminApi;
use socratic_core::clock::{SystemClock, UlidGenerator};
use socratic_core::entity::ManifestRequest;
use socratic_core::pipeline::{
    Job, PipelineConfig, PlanError, Ports, Providers, StageError, curate, give_up, plan,
};
use socratic_core::queue::{QueueConsumer, QueueProducer};
use socratic_core::repository::Repository;
use socratic_core::runner::JobHandler;

use crate::{AwsSettings, ConfigError, DynamoStore, EventBridgePublisher, S3BlobStore, SqsQueue};

/// The pipeline's ports over AWS: the table, the bucket, the two job queues, and run-judged
/// events on the bus (or on the events queue when no bus is configured).
pub fn ports_from_settings(
    settings: &AwsSettings,
    sdk: &SdkConfig,
    providers: Providers,
    config: PipelineConfig,
) -> Result<Ports, ConfigError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let run_events: Arc<dyn QueueProducer> = match &settings.event_bus {
        Some(bus) => Arc::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(sdk),
            bus,
        )),
        None => Arc::new(SqsQueue::new(sqs.clone(), settings.events_queue_url()?)),
    };
    Ok(Ports {
        repository: Repository::new(Arc::new(DynamoStore::new(dynamo, settings.table()?))),
        blobs: Arc::new(S3BlobStore::new(s3, settings.bucket()?)),
        dialogue_jobs: Arc::new(SqsQueue::new(sqs.clone(), settings.dialogue_queue_url()?)),
        judge_jobs: Arc::new(SqsQueue::new(sqs, settings.judge_queue_url()?)),
        run_events,
        providers,
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidGenerator::default()),
        config,
    })
}

/// Consumers of the dialogue, judge and run-events queues, for a runner that polls SQS itself
/// (the local server on AWS resources) instead of Lambda event sources.
pub fn sqs_consumers(
    settings: &AwsSettings,
    sdk: &SdkConfig,
) -> Result<[Arc<dyn QueueConsumer>; 3], ConfigError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = |url: &str| -> Arc<dyn QueueConsumer> {
        let queue = SqsQueue::new(sqs.clone(), url);
        Arc::new(match settings.max_receive_count {
            Some(max) => queue.with_max_attempts(max),
            None => queue,
        })
    };
    Ok([
        queue(settings.dialogue_queue_url()?),
        queue(settings.judge_queue_url()?),
        queue(settings.events_queue_url()?),
    ])
}

/// Runs every job of an SQS batch and reports the failed ones, so the event source deletes the
/// rest and redelivers only those (`ReportBatchItemFailures` must be on).
///
/// `max_receive_count` is the queue's redrive `maxReceiveCount`. A job that fails retryably on
/// that delivery (SQS's `ApproximateReceiveCount`) marks its run failed with the stage and
/// reason and is deleted, so its manifest still finishes. Rejected jobs (whose runs are already
/// failed) and jobs whose run cannot be marked go on to the dead-letter queue.
pub async fn handle_sqs_event(
    ports: &Ports,
    handler: &dyn JobHandler,
    event: SqsEvent,
    max_receive_count: Option<u32>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let attempt = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1);
        let body = record.body.unwrap_or_default();
        let mut result = handler.handle(ports, &body).await;
        if let Err(error) = &result
            && give_up(ports, &body, attempt, max_receive_count, error).await
        {
            result = Ok(());
        }
        if let Err(error) = result {
            tracing::warn!(message_id = %id, attempt, %error, retryable = error.is_retryable(), "job failed; returned to the queue");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Curates the run named in a `run-judged` event's detail.
pub async fn handle_run_judged(
    ports: &Ports,
    event: EventBridgeEvent<Value>,
) -> Result<(), StageError> {
    let job: Job =
        serde_json::from_value(event.detail.clone()).map_err(|e| StageError::Rejected {
            reason: format!("malformed run-judged detail {}: {e}", event.detail),
        })?;
    match job {
        Job::Curate { run } => curate(ports, &run).await,
        other => Err(StageError::Rejected {
            reason: format!("a run-judged event must carry a curate job, not {other:?}"),
        }),
    }
}

/// Plans a manifest request sent by direct invocation; the answer has the manifest id and runs,
/// or `{"error": …}` with every problem of an invalid request.
pub async fn handle_plan(ports: &Ports, request: Value) -> Result<Value, StageError> {
    let request: ManifestRequest = match serde_json::from_value(request) {
        Ok(request) => request,
        Err(e) => {
            return Ok(json!({"error": {"code": "invalid_manifest", "message": e.to_string()}}));
        }
    };
    match plan(ports, &request).await {
        Ok(planned) => Ok(json!({
            "manifest_id": planned.manifest.id,
            "created": planned.created,
            "runs": planned.runs,
            "jobs_queued": planned.jobs_sent,
        })),
        Err(PlanError::Invalid(problems)) => Ok(json!({
            "error": {"code": "invalid_manifest", "message": problems.to_string(), "problems": problems.0}
        })),
        Err(PlanError::Backend(e)) => Err(e),
        Err(other) => Err(StageError::Rejected {
            reason: other.to_string(),
        }),
    }
}

/// Builds the request the admin API sees from an API Gateway event's parts, or says why the
/// event is not a request: a body marked base64 that does not decode is refused, never served
/// as an empty body.
fn to_http(
    method: http::Method,
    path: String,
    query: String,
    headers: &http::HeaderMap,
    body: Option<String>,
    base64: bool,
) -> Result<http::Request<Vec<u8>>, String> {
    let body = match body {
        None => Vec::new(),
        Some(text) if base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("the body is marked base64 but does not decode: {e}"))?,
        Some(text) => text.into_bytes(),
    };
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(body).map_err(|e| e.to_string())
}

/// Serves a request, answering a request that cannot be built with a JSON 400.
async fn serve(
    api: &AdminApi,
    request: Result<http::Request<Vec<u8>>, String>,
) -> (http::StatusCode, http::HeaderMap, Body) {
    let response = match request {
        Ok(request) => api.handle(request).await,
        Err(message) => AdminApi::bad_request(message),
    };
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        Body::Text(String::from_utf8_lossy(&body).into_owned()),
    )
}

/// Serves one API Gateway REST API proxy request (payload format 1.0) — the deployment's API,
/// since REST APIs carry the API keys and usage plans.
pub async fn handle_rest_api_request(
    api: &AdminApi,
    event: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in event.query_string_parameters.iter() {
        query.append_pair(name, value);
    }
    let request = to_http(
        event.http_method,
        event.path.unwrap_or_else(|| "/".to_owned()),
        query.finish(),
        &event.headers,
        event.body,
        event.is_base64_encoded,
    );
    let (status, headers, body) = serve(api, request).await;
    let mut out = ApiGatewayProxyResponse::default();
    out.status_code = i64::from(status.as_u16());
    out.headers = headers;
    out.body = Some(body);
    out.is_base64_encoded = false;
    out
}

/// Serves one API Gateway HTTP API request (payload format 2.0).
pub async fn handle_api_request(
    api: &AdminApi,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let request = to_http(
        event.request_context.http.method.clone(),
        event.raw_path.unwrap_or_else(|| "/".to_owned()),
        event.raw_query_string.unwrap_or_default(),
        &event.headers,
        event.body,
        event.is_base64_encoded,
    );
    let (status, headers, body) = serve(api, request).await;
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(status.as_u16());
    out.headers = headers;
    out.body = Some(body);
    out.is_base64_encoded = false;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_marked_base64_must_decode() {
        let headers = http::HeaderMap::new();
        let build = |body: &str| {
            to_http(
                http::Method::POST,
                "/manifests".into(),
                String::new(),
                &headers,
                Some(body.into()),
                true,
            )
        };
        let error = build("this is %% not base64").unwrap_err();
        assert!(error.contains("base64"), "{error}");
        let request = build("eyJhIjogMX0=").unwrap();
        assert_eq!(request.body(), br#"{"a": 1}"#);
    }
}
