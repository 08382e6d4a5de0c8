//! OpenAI's Batch API: a JSONL file of chat completion requests uploaded to `POST /files`,
//! a batch created from it with `POST /batches`, polled with `GET /batches/{id}`, and its
//! output and error files read from `GET /files/{id}/content`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use socratic_core::llm::{
    BatchApi, BatchError, BatchPoll, BatchRequest, ConverseResponse, LlmError, OutputLine,
    output_limit, output_lines,
};

use crate::client::OpenAiLlm;
use crate::error::{self, Context};
use crate::wire::ChatResponse;

/// The metadata key that tags a batch with the benchmark's own id for it.
pub const METADATA_KEY: &str = "socratic_batch";

/// Pages of `GET /batches` searched for a batch whose acceptance was not recorded.
const FIND_PAGES: usize = 10;

/// [`BatchApi`] over OpenAI's Batch API, built from the model's [`OpenAiLlm`] (its base URL,
/// key and structured-output mode), so a batched request's body is the one the live call
/// would send.
#[derive(Debug, Clone)]
pub struct OpenAiBatchApi {
    client: OpenAiLlm,
    http: reqwest::Client,
    base: String,
}

#[derive(Debug, Deserialize)]
struct Batch {
    id: String,
    status: String,
    #[serde(default)]
    output_file_id: Option<String>,
    #[serde(default)]
    error_file_id: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    errors: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BatchList {
    data: Vec<Batch>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FileObject {
    id: String,
}

impl OpenAiBatchApi {
    /// The Batch API of `client`'s server. Uploads and downloads get ten minutes each.
    pub fn new(client: OpenAiLlm) -> Result<Self, crate::ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .connect_timeout(client.config.connect_timeout)
            .user_agent(concat!("socratic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::ConfigError::Http {
                message: e.to_string(),
            })?;
        let base = client.config.base_url.trim_end_matches('/').to_owned();
        Ok(Self { client, http, base })
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.client.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    fn provider_error(
        &self,
        what: &str,
        message: impl std::fmt::Display,
        retryable: bool,
    ) -> BatchError {
        BatchError::Provider {
            provider: format!("openai {}", self.base),
            message: format!("{what}: {message}"),
            retryable,
        }
    }

    /// Sends `builder` and answers the body of a 2xx response, or the status and body.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<String, (Option<u16>, String)> {
        let response = self
            .authorized(builder)
            .send()
            .await
            .map_err(|e| (None, e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| (Some(status), e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err((Some(status), body))
        }
    }

    async fn get_batch(&self, id: &str) -> Result<Batch, BatchError> {
        let body = self
            .send(self.http.get(format!("{}/batches/{id}", self.base)))
            .await
            .map_err(|(status, body)| {
                self.provider_error(
                    &format!("reading batch {id}"),
                    describe(status, &body),
                    retryable(status),
                )
            })?;
        serde_json::from_str(&body).map_err(|e| {
            self.provider_error(
                &format!("reading batch {id}"),
                format!("unreadable batch object: {e}"),
                true,
            )
        })
    }

    /// A file's content, refused past `limit` bytes.
    async fn file(
        &self,
        batch: &str,
        file: &str,
        limit: u64,
        requests: usize,
    ) -> Result<String, BatchError> {
        let url = format!("{}/files/{file}/content", self.base);
        let fail = |status: Option<u16>, message: String| {
            self.provider_error(
                &format!("reading file {file} of batch {batch}"),
                message,
                retryable(status),
            )
        };
        let mut response = self
            .authorized(self.http.get(&url))
            .send()
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.text().await.unwrap_or_default();
            return Err(fail(Some(status), describe(Some(status), &body)));
        }
        let too_large = |bytes: u64| BatchError::OutputTooLarge {
            batch: batch.to_owned(),
            bytes,
            limit,
            requests,
        };
        if let Some(length) = response.content_length().filter(|l| *l > limit) {
            return Err(too_large(length));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(None, e.to_string()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(too_large(bytes.len() as u64));
            }
        }
        String::from_utf8(bytes).map_err(|e| BatchError::MalformedOutput {
            batch: batch.to_owned(),
            line: 0,
            reason: format!("file {file} is not UTF-8: {e}"),
        })
    }

    /// The answers in one output or error file.
    fn parse_lines(
        &self,
        batch: &str,
        text: &str,
        requests: &[BatchRequest],
        results: &mut BTreeMap<String, Result<ConverseResponse, LlmError>>,
    ) -> Result<(), BatchError> {
        for OutputLine {
            line,
            value,
            request,
        } in output_lines(batch, text, requests)?
        {
            let malformed = |reason: &str| BatchError::malformed(batch, line, reason);
            let result = match (
                value.get("response").filter(|r| !r.is_null()),
                value.get("error").filter(|e| !e.is_null()),
            ) {
                (Some(response), _) => {
                    let status = response
                        .get("status_code")
                        .and_then(Value::as_u64)
                        .and_then(|s| u16::try_from(s).ok())
                        .ok_or_else(|| malformed("response without a status_code"))?;
                    let body = response.get("body").cloned().unwrap_or(Value::Null);
                    let ctx = Context {
                        url: &self.base,
                        model: &request.request.model,
                        api_key_env: self.client.config.api_key_env.as_deref(),
                    };
                    if (200..300).contains(&status) {
                        let parsed: ChatResponse = serde_json::from_value(body).map_err(|e| {
                            malformed(&format!("response body is not a chat completion: {e}"))
                        })?;
                        self.client.answer(&request.request, parsed, Duration::ZERO)
                    } else {
                        Err(error::from_status(
                            status,
                            &HeaderMap::new(),
                            &body.to_string(),
                            &ctx,
                        ))
                    }
                }
                (None, Some(error)) => {
                    let code = error.get("code").and_then(Value::as_str).unwrap_or("error");
                    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
                    // batch_expired, batch_cancelled and the like: worth sending again.
                    Err(LlmError::Unavailable {
                        message: format!("{code}: {message}"),
                    })
                }
                (None, None) => return Err(malformed("neither response nor error")),
            };
            results.insert(request.custom_id.clone(), result);
        }
        Ok(())
    }
}

fn retryable(status: Option<u16>) -> bool {
    status.is_none_or(|s| s == 408 || s == 429 || s >= 500)
}

fn describe(status: Option<u16>, body: &str) -> String {
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    match status {
        Some(status) => format!("{status}: {detail}"),
        None => detail,
    }
}

/// A `multipart/form-data` body with the `purpose` field and the file.
fn multipart(boundary: &str, filename: &str, file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/jsonl\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[async_trait]
impl BatchApi for OpenAiBatchApi {
    fn provider(&self) -> &str {
        "openai"
    }

    /// The Batch API takes at most 50,000 requests a batch.
    fn max_requests(&self) -> usize {
        50_000
    }

    /// Its input files are at most 200 MB; requests measured as socratic encodes them, with
    /// room for the envelope of each line.
    fn max_bytes(&self) -> usize {
        180_000_000
    }

    async fn submit(
        &self,
        local_id: &str,
        requests: &[BatchRequest],
    ) -> Result<String, BatchError> {
        let refused = |status: Option<u16>, message: String| BatchError::Submit {
            provider: format!("openai {}", self.base),
            local_id: local_id.to_owned(),
            model: requests
                .first()
                .map(|r| r.request.model.clone())
                .unwrap_or_default(),
            message,
            retryable: retryable(status),
        };
        let mut jsonl = Vec::new();
        for r in requests {
            r.request
                .check()
                .map_err(|e| refused(Some(400), e.to_string()))?;
            let line = json!({
                "custom_id": r.custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": self.client.body(&r.request),
            });
            serde_json::to_writer(&mut jsonl, &line)
                .map_err(|e| refused(Some(400), e.to_string()))?;
            jsonl.push(b'\n');
        }
        let boundary = format!("socratic-{local_id}");
        let upload = self
            .send(
                self.http
                    .post(format!("{}/files", self.base))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(multipart(
                        &boundary,
                        &format!("socratic-{local_id}.jsonl"),
                        &jsonl,
                    )),
            )
            .await
            .map_err(|(status, body)| {
                refused(
                    status,
                    format!("uploading the requests: {}", describe(status, &body)),
                )
            })?;
        let file: FileObject = serde_json::from_str(&upload)
            .map_err(|e| refused(None, format!("unreadable file object: {e}")))?;
        let created = self
            .send(
                self.http
                    .post(format!("{}/batches", self.base))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(
                        json!({
                            "input_file_id": file.id,
                            "endpoint": "/v1/chat/completions",
                            "completion_window": "24h",
                            "metadata": {METADATA_KEY: local_id},
                        })
                        .to_string(),
                    ),
            )
            .await
            .map_err(|(status, body)| {
                refused(
                    status,
                    format!("creating the batch: {}", describe(status, &body)),
                )
            })?;
        let batch: Batch = serde_json::from_str(&created)
            .map_err(|e| refused(None, format!("unreadable batch object: {e}")))?;
        Ok(batch.id)
    }

    async fn find(&self, local_id: &str) -> Result<Option<String>, BatchError> {
        let mut after: Option<String> = None;
        for _ in 0..FIND_PAGES {
            let mut url = format!("{}/batches?limit=100", self.base);
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let body = self
                .send(self.http.get(url))
                .await
                .map_err(|(status, body)| {
                    self.provider_error(
                        "listing batches",
                        describe(status, &body),
                        retryable(status),
                    )
                })?;
            let page: BatchList = serde_json::from_str(&body).map_err(|e| {
                self.provider_error("listing batches", format!("unreadable list: {e}"), true)
            })?;
            let tagged = |b: &&Batch| {
                b.metadata
                    .as_ref()
                    .and_then(|m| m.get(METADATA_KEY))
                    .and_then(Value::as_str)
                    == Some(local_id)
            };
            if let Some(batch) = page.data.iter().find(tagged) {
                return Ok(Some(batch.id.clone()));
            }
            match (page.has_more, page.last_id) {
                (true, Some(last)) => after = Some(last),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn poll(
        &self,
        provider_id: &str,
        requests: &[BatchRequest],
    ) -> Result<BatchPoll, BatchError> {
        let batch = self.get_batch(provider_id).await?;
        if matches!(
            batch.status.as_str(),
            "validating" | "in_progress" | "finalizing" | "cancelling"
        ) {
            return Ok(BatchPoll::Running {
                status: batch.status,
            });
        }
        let limit = output_limit(requests);
        let mut results = BTreeMap::new();
        for file in [&batch.output_file_id, &batch.error_file_id]
            .into_iter()
            .flatten()
        {
            let text = self.file(&batch.id, file, limit, requests.len()).await?;
            self.parse_lines(&batch.id, &text, requests, &mut results)?;
        }
        let mut status = batch.status;
        if let Some(errors) = batch.errors.filter(|e| !e.is_null()) {
            status = format!("{status} ({errors})");
        }
        Ok(BatchPoll::Ended { status, results })
    }

    async fn cancel(&self, provider_id: &str) -> Result<(), BatchError> {
        self.send(
            self.http
                .post(format!("{}/batches/{provider_id}/cancel", self.base)),
        )
        .await
        .map_err(|(status, body)| {
            self.provider_error(
                &format!("cancelling batch {provider_id}"),
                describe(status, &body),
                retryable(status),
            )
        })?;
        Ok(())
    }
}
