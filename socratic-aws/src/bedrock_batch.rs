//! Bedrock batch inference: a batch's requests as a JSONL file in S3, run by
//! `CreateModelInvocationJob`, polled with `GetModelInvocationJob`, its answers read from the
//! `.jsonl.out` file the job writes beside the input.
//!
//! Records are `InvokeModel` bodies, so a job serves one model family's body format: Claude's
//! (the Messages API with `anthropic_version: bedrock-2023-05-31`). Other families run live.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus, S3InputFormat,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Value, json};
use socratic_anthropic::messages;
use socratic_core::llm::{
    BatchApi, BatchError, BatchPoll, BatchRequest, ConverseResponse, LlmError, output_limit,
    output_lines_by,
};

use crate::bedrock::{PromptCaching, foundation_model};
use crate::error::{Failure, classify};

/// Whether Bedrock batch inference can take `model`'s calls (a model id, inference profile id
/// or ARN): Claude models, whose `InvokeModel` body socratic writes.
pub fn batch_supported(model: &str) -> bool {
    foundation_model(model).is_some_and(|m| m.starts_with("anthropic.claude"))
}

/// Where and as whom Bedrock batch jobs run.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockBatchConfig {
    /// The service role Bedrock assumes to read the input and write the output.
    pub role_arn: String,
    /// The bucket the records go to.
    pub bucket: String,
    /// The key prefix under it (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The fewest records a job takes (Bedrock's per-model quota, 100 for most models); a
    /// smaller round runs live.
    pub min_records: usize,
    /// Hours a job may run before it expires (24 to 168).
    pub timeout_hours: i32,
}

impl BedrockBatchConfig {
    /// Jobs run as `role_arn` over `s3_uri` (`s3://bucket/prefix`), at least 100 records a
    /// job, expiring after 24 hours.
    pub fn new(role_arn: impl Into<String>, s3_uri: &str) -> Result<Self, String> {
        let rest = s3_uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s3_uri:?} is not an s3:// URI"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s3_uri:?} names no bucket"));
        }
        Ok(Self {
            role_arn: role_arn.into(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            min_records: 100,
            timeout_hours: 24,
        })
    }

    /// The key of `rest` under a batch's folder, named by its lowercased local id (as its
    /// job name carries it).
    fn key(&self, local_id: &str, rest: &str) -> String {
        let id = local_id.to_lowercase();
        if self.prefix.is_empty() {
            format!("{id}/{rest}")
        } else {
            format!("{}/{id}/{rest}", self.prefix)
        }
    }
}

/// [`BatchApi`] over Bedrock batch inference.
///
/// - Submit writes the records to `s3://{bucket}/{prefix}/{local_id}/input/records.jsonl`
///   (the local id lowercased)
///   (record ids `R0000000000`, `R0000000001`, … in request order: Bedrock wants short
///   alphanumeric ids) and creates the job named `socratic-{local_id}` with `local_id` as its
///   idempotency token, so a repeated create is the same job.
/// - [`BatchApi::find`] looks the job up by that name.
/// - A job that ended (completed, partly completed, stopped, expired or failed) is read from
///   the `.jsonl.out` files under `…/{local_id}/output/`; a record without an answer line
///   was not answered and goes into the next round.
#[derive(Debug, Clone)]
pub struct BedrockBatchApi {
    control: aws_sdk_bedrock::Client,
    s3: aws_sdk_s3::Client,
    config: BedrockBatchConfig,
}

impl BedrockBatchApi {
    /// Jobs through `control` (the Bedrock control plane) over records in `s3`.
    pub fn new(
        control: aws_sdk_bedrock::Client,
        s3: aws_sdk_s3::Client,
        config: BedrockBatchConfig,
    ) -> Self {
        Self {
            control,
            s3,
            config,
        }
    }

    /// The control plane's client from `bedrock`, and S3's from `s3`: a Bedrock endpoint
    /// override is not S3's. With an endpoint override on `s3` (an emulator), S3 requests use
    /// path-style addressing, which emulators serve.
    pub fn from_conf(
        bedrock: &aws_config::SdkConfig,
        s3: &aws_config::SdkConfig,
        config: BedrockBatchConfig,
    ) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(s3)
            .force_path_style(s3.endpoint_url().is_some())
            .build();
        Self::new(
            aws_sdk_bedrock::Client::new(bedrock),
            aws_sdk_s3::Client::from_conf(s3_config),
            config,
        )
    }

    fn job_name(local_id: &str) -> String {
        format!("socratic-{}", local_id.to_lowercase())
    }

    fn failed<E: ProvideErrorMetadata + std::error::Error>(
        what: &str,
        error: &SdkError<E, HttpResponse>,
    ) -> BatchError {
        let (message, retryable) = describe(error);
        BatchError::Provider {
            provider: "bedrock".to_owned(),
            message: format!("{what}: {message}"),
            retryable,
        }
    }

    /// The answers in the job's output files, refused past `limit` bytes in all.
    async fn output(
        &self,
        job: &str,
        local_id: &str,
        limit: u64,
        requests: usize,
    ) -> Result<String, BatchError> {
        let prefix = self.config.key(local_id, "output/");
        let mut keys = Vec::new();
        let mut bytes = 0_u64;
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| Self::failed(&format!("listing the output of job {job}"), &e))?;
            for object in page.contents() {
                if let Some(key) = object.key().filter(|k| k.ends_with(".jsonl.out")) {
                    bytes += u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
                    keys.push(key.to_owned());
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        if bytes > limit {
            return Err(BatchError::OutputTooLarge {
                batch: job.to_owned(),
                bytes,
                limit,
                requests,
            });
        }
        let mut text = String::new();
        for key in keys {
            let object = self
                .s3
                .get_object()
                .bucket(&self.config.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| Self::failed(&format!("reading {key}"), &e))?;
            let body = object
                .body
                .collect()
                .await
                .map_err(|e| BatchError::Provider {
                    provider: "bedrock".to_owned(),
                    message: format!("reading {key}: {e}"),
                    retryable: true,
                })?
                .into_bytes();
            // The listing may be older than the object: check the size read too.
            if (text.len() + body.len()) as u64 > limit {
                return Err(BatchError::OutputTooLarge {
                    batch: job.to_owned(),
                    bytes: (text.len() + body.len()) as u64,
                    limit,
                    requests,
                });
            }
            let part = std::str::from_utf8(&body)
                .map_err(|e| BatchError::malformed(job, 0, format!("{key} is not UTF-8: {e}")))?;
            text.push_str(part);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        Ok(text)
    }
}

/// A record's id: its position in the batch.
fn record_id(index: usize) -> String {
    format!("R{index:010}")
}

/// The local id a job name carries.
fn local_id_of(job_name: &str) -> Option<&str> {
    job_name.strip_prefix("socratic-")
}

fn describe<E: ProvideErrorMetadata + std::error::Error>(
    error: &SdkError<E, HttpResponse>,
) -> (String, bool) {
    match classify(error) {
        Failure::Throttled(m) | Failure::Unavailable(m) => (m, true),
        Failure::Service { message, .. } => (message, false),
        Failure::Invalid(m) => (m, false),
    }
}

/// The error a record's `error` object stands for (`{"errorCode": 400, "errorMessage": …}`).
fn record_error(error: &Value) -> LlmError {
    let code = error["errorCode"].as_u64().unwrap_or(500);
    let message = format!(
        "bedrock batch record failed ({code}): {}",
        error["errorMessage"].as_str().unwrap_or("no message")
    );
    match code {
        400 if message.contains("too long") => LlmError::ContextWindow { message },
        400 => LlmError::Validation { message },
        408 => LlmError::Timeout { message },
        429 => LlmError::Throttled {
            message,
            retry_after: None,
        },
        500..=599 => LlmError::Unavailable { message },
        _ => LlmError::Other {
            message,
            retryable: false,
        },
    }
}

#[async_trait]
impl BatchApi for BedrockBatchApi {
    fn provider(&self) -> &str {
        "bedrock"
    }

    fn min_requests(&self) -> usize {
        self.config.min_records.max(1)
    }

    /// Bedrock's default quota of records per job.
    fn max_requests(&self) -> usize {
        50_000
    }

    /// …and of 1 GB per input file, with room for the record envelope.
    fn max_bytes(&self) -> usize {
        900_000_000
    }

    async fn submit(
        &self,
        local_id: &str,
        requests: &[BatchRequest],
    ) -> Result<String, BatchError> {
        let model = requests
            .first()
            .map(|r| r.request.model.clone())
            .unwrap_or_default();
        let refused = |message: String, retryable: bool| BatchError::Submit {
            provider: "bedrock".to_owned(),
            local_id: local_id.to_owned(),
            model: model.clone(),
            message,
            retryable,
        };
        if !batch_supported(&model) {
            return Err(refused(
                format!(
                    "Bedrock batch inference in socratic takes Claude models; {model} is not one"
                ),
                false,
            ));
        }
        let caching = PromptCaching::Auto.applies_to(&model);
        let mut jsonl = String::new();
        for (index, r) in requests.iter().enumerate() {
            r.request
                .check()
                .map_err(|e| refused(e.to_string(), false))?;
            let mut body = messages::bedrock_body(&r.request);
            if !caching && let Some(system) = body["system"].as_array_mut() {
                // Bedrock refuses cache marks on models without prompt caching.
                for block in system {
                    if let Some(block) = block.as_object_mut() {
                        block.remove("cache_control");
                    }
                }
            }
            jsonl.push_str(&json!({"recordId": record_id(index), "modelInput": body}).to_string());
            jsonl.push('\n');
        }
        let input = self.config.key(local_id, "input/records.jsonl");
        self.s3
            .put_object()
            .bucket(&self.config.bucket)
            .key(&input)
            .content_type("application/jsonl")
            .body(ByteStream::from(jsonl.into_bytes()))
            .send()
            .await
            .map_err(|e| {
                let (message, retryable) = describe(&e);
                refused(
                    format!("writing s3://{}/{input}: {message}", self.config.bucket),
                    retryable,
                )
            })?;
        let output = self.config.key(local_id, "output/");
        let s3_uri = |key: &str| format!("s3://{}/{key}", self.config.bucket);
        let input_config = ModelInvocationJobS3InputDataConfig::builder()
            .s3_uri(s3_uri(&input))
            .s3_input_format(S3InputFormat::Jsonl)
            .build()
            .map_err(|e| refused(e.to_string(), false))?;
        let output_config = ModelInvocationJobS3OutputDataConfig::builder()
            .s3_uri(s3_uri(&output))
            .build()
            .map_err(|e| refused(e.to_string(), false))?;
        let created = self
            .control
            .create_model_invocation_job()
            .job_name(Self::job_name(local_id))
            .client_request_token(local_id)
            .role_arn(&self.config.role_arn)
            .model_id(&model)
            .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
                input_config,
            ))
            .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
                output_config,
            ))
            .timeout_duration_in_hours(self.config.timeout_hours)
            .send()
            .await
            .map_err(|e| {
                let (message, retryable) = describe(&e);
                refused(message, retryable)
            })?;
        Ok(created.job_arn().to_owned())
    }

    async fn find(&self, local_id: &str) -> Result<Option<String>, BatchError> {
        let name = Self::job_name(local_id);
        let mut pages = self
            .control
            .list_model_invocation_jobs()
            .name_contains(&name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Self::failed(&format!("looking for job {name}"), &e))?;
            if let Some(job) = page
                .invocation_job_summaries()
                .iter()
                .find(|j| j.job_name() == name)
            {
                return Ok(Some(job.job_arn().to_owned()));
            }
        }
        Ok(None)
    }

    async fn poll(
        &self,
        provider_id: &str,
        requests: &[BatchRequest],
    ) -> Result<BatchPoll, BatchError> {
        let job = self
            .control
            .get_model_invocation_job()
            .job_identifier(provider_id)
            .send()
            .await
            .map_err(|e| Self::failed(&format!("reading job {provider_id}"), &e))?;
        let state = job.status().cloned();
        let mut status = state
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned());
        match state {
            Some(
                ModelInvocationJobStatus::Completed
                | ModelInvocationJobStatus::PartiallyCompleted
                | ModelInvocationJobStatus::Stopped
                | ModelInvocationJobStatus::Expired
                | ModelInvocationJobStatus::Failed,
            ) => {}
            _ => return Ok(BatchPoll::Running { status }),
        }
        if let Some(message) = job.message().filter(|m| !m.is_empty()) {
            status = format!("{status}: {message}");
        }
        let local_id = job
            .job_name()
            .and_then(local_id_of)
            .ok_or_else(|| BatchError::Provider {
                provider: "bedrock".to_owned(),
                message: format!(
                    "job {provider_id} is named {:?}, not socratic-<local id>",
                    job.job_name()
                ),
                retryable: false,
            })?
            .to_owned();
        // Each output line repeats its record's input beside the answer.
        let input_bytes: u64 = requests
            .iter()
            .map(|r| messages::bedrock_body(&r.request).to_string().len() as u64 + 64)
            .sum();
        let limit = output_limit(requests) + input_bytes;
        let text = self
            .output(provider_id, &local_id, limit, requests.len())
            .await?;
        let mut results: BTreeMap<String, Result<ConverseResponse, LlmError>> = BTreeMap::new();
        let records = requests
            .iter()
            .enumerate()
            .map(|(index, r)| (record_id(index), r));
        for line in output_lines_by("recordId", provider_id, &text, records)? {
            let answer = if let Some(error) = line.value.get("error") {
                Err(record_error(error))
            } else if let Some(output) = line.value.get("modelOutput") {
                messages::answer(
                    "bedrock batch",
                    &line.request.request,
                    output,
                    Duration::ZERO,
                )
            } else {
                return Err(BatchError::malformed(
                    provider_id,
                    line.line,
                    "neither modelOutput nor error",
                ));
            };
            results.insert(line.request.custom_id.clone(), answer);
        }
        Ok(BatchPoll::Ended { status, results })
    }

    async fn cancel(&self, provider_id: &str) -> Result<(), BatchError> {
        self.control
            .stop_model_invocation_job()
            .job_identifier(provider_id)
            .send()
            .await
            .map_err(|e| Self::failed(&format!("stopping job {provider_id}"), &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_models_and_profiles_are_supported_others_not() {
        assert!(batch_supported("anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(batch_supported(
            "us.anthropic.claude-sonnet-4-20250514-v1:0"
        ));
        assert!(!batch_supported("amazon.nova-lite-v1:0"));
        assert!(!batch_supported("meta.llama3-70b-instruct-v1:0"));
    }

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        let c = BedrockBatchConfig::new("arn:role", "s3://bucket/a/b/").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("bucket", "a/b"));
        assert_eq!(c.key("01J", "output/"), "a/b/01j/output/");
        let bare = BedrockBatchConfig::new("arn:role", "s3://bucket").unwrap();
        assert_eq!(bare.key("01J", "x"), "01j/x");
        assert!(BedrockBatchConfig::new("arn:role", "bucket/a").is_err());
        assert!(BedrockBatchConfig::new("arn:role", "s3:///a").is_err());
    }

    #[test]
    fn record_errors_map_to_what_the_retry_layer_acts_on() {
        let error = |code: u64, message: &str| {
            record_error(&json!({"errorCode": code, "errorMessage": message}))
        };
        assert!(matches!(
            error(400, "bad request"),
            LlmError::Validation { .. }
        ));
        assert!(matches!(
            error(400, "prompt is too long"),
            LlmError::ContextWindow { .. }
        ));
        assert!(matches!(
            error(429, "slow down"),
            LlmError::Throttled { .. }
        ));
        assert!(matches!(error(503, "busy"), LlmError::Unavailable { .. }));
    }
}
