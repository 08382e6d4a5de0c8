//! Anthropic's Message Batches: `POST /messages/batches` with every request's Messages API
//! body as its `params`, polled with `GET /messages/batches/{id}`, its results read as JSON
//! lines from `GET /messages/batches/{id}/results` once `processing_status` is `ended`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use socratic_core::llm::{
    BatchApi, BatchError, BatchPoll, BatchRequest, ConverseResponse, LlmError, OutputLine,
    output_limit, output_lines,
};

use crate::client::AnthropicLlm;
use crate::messages::{self, excerpt};

/// [`BatchApi`] over Anthropic's Message Batches, built from the model's [`AnthropicLlm`], so
/// that a batched request's `params` are the body the live call would send.
///
/// Message batches carry no metadata, so a batch whose acceptance was not recorded (a crash
/// in the moment between Anthropic's answer and the record) cannot be found again:
/// [`BatchApi::find`] answers `None`, and its requests are sent once more.
#[derive(Debug, Clone)]
pub struct AnthropicBatchApi {
    client: AnthropicLlm,
    http: reqwest::Client,
}

impl AnthropicBatchApi {
    /// The Message Batches of `client`'s API. Submits and reads get ten minutes each.
    pub fn new(client: AnthropicLlm) -> Self {
        Self {
            http: client.http().clone(),
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/messages/batches{path}", self.client.base_url())
    }

    fn provider(&self) -> String {
        format!("anthropic {}", self.client.base_url())
    }

    fn failed(&self, what: &str, status: Option<u16>, body: &str) -> BatchError {
        BatchError::Provider {
            provider: self.provider(),
            message: format!("{what}: {}", describe(status, body)),
            retryable: retryable(status),
        }
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<String, (Option<u16>, String)> {
        let response = self
            .client
            .authorized(builder)
            .timeout(Duration::from_secs(600))
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

    async fn batch(&self, id: &str) -> Result<Value, BatchError> {
        let body = self
            .send(self.http.get(self.url(&format!("/{id}"))))
            .await
            .map_err(|(status, body)| self.failed(&format!("reading batch {id}"), status, &body))?;
        serde_json::from_str(&body).map_err(|e| {
            self.failed(
                &format!("reading batch {id}"),
                None,
                &format!("unreadable batch object: {e}"),
            )
        })
    }

    /// The results file, refused past `limit` bytes.
    async fn results(
        &self,
        id: &str,
        url: &str,
        limit: u64,
        requests: usize,
    ) -> Result<String, BatchError> {
        let fail = |status: Option<u16>, body: &str| {
            self.failed(&format!("reading the results of batch {id}"), status, body)
        };
        let mut response = self
            .client
            .authorized(self.http.get(url))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| fail(None, &e.to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.text().await.unwrap_or_default();
            return Err(fail(Some(status), &body));
        }
        let too_large = |bytes: u64| BatchError::OutputTooLarge {
            batch: id.to_owned(),
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
            .map_err(|e| fail(None, &e.to_string()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(too_large(bytes.len() as u64));
            }
        }
        String::from_utf8(bytes).map_err(|e| BatchError::MalformedOutput {
            batch: id.to_owned(),
            line: 0,
            reason: format!("the results are not UTF-8: {e}"),
        })
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
        .unwrap_or_else(|| excerpt(body));
    match status {
        Some(status) => format!("{status}: {detail}"),
        None => detail,
    }
}

#[async_trait]
impl BatchApi for AnthropicBatchApi {
    fn provider(&self) -> &str {
        "anthropic"
    }

    /// Message Batches take at most 100,000 requests a batch.
    fn max_requests(&self) -> usize {
        100_000
    }

    /// …and 256 MB; requests measured as socratic encodes them, with room for the envelope.
    fn max_bytes(&self) -> usize {
        230_000_000
    }

    async fn submit(
        &self,
        local_id: &str,
        requests: &[BatchRequest],
    ) -> Result<String, BatchError> {
        let refused = |status: Option<u16>, message: String| BatchError::Submit {
            provider: self.provider(),
            local_id: local_id.to_owned(),
            model: requests
                .first()
                .map(|r| r.request.model.clone())
                .unwrap_or_default(),
            message,
            retryable: retryable(status),
        };
        let mut items = Vec::with_capacity(requests.len());
        for r in requests {
            r.request
                .check()
                .map_err(|e| refused(Some(400), e.to_string()))?;
            items.push(json!({"custom_id": r.custom_id, "params": messages::body(&r.request)}));
        }
        let created = self
            .send(
                self.http
                    .post(self.url(""))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(json!({"requests": items}).to_string()),
            )
            .await
            .map_err(|(status, body)| refused(status, describe(status, &body)))?;
        let batch: Value = serde_json::from_str(&created)
            .map_err(|e| refused(None, format!("unreadable batch object: {e}")))?;
        batch["id"].as_str().map(str::to_owned).ok_or_else(|| {
            refused(
                None,
                format!("a batch object without an id: {}", excerpt(&created)),
            )
        })
    }

    async fn find(&self, _local_id: &str) -> Result<Option<String>, BatchError> {
        Ok(None)
    }

    async fn poll(
        &self,
        provider_id: &str,
        requests: &[BatchRequest],
    ) -> Result<BatchPoll, BatchError> {
        let batch = self.batch(provider_id).await?;
        let status = batch["processing_status"].as_str().unwrap_or("").to_owned();
        if status != "ended" {
            return Ok(BatchPoll::Running { status });
        }
        let limit = output_limit(requests);
        let url = batch["results_url"].as_str().map_or_else(
            || self.url(&format!("/{provider_id}/results")),
            str::to_owned,
        );
        let text = self
            .results(provider_id, &url, limit, requests.len())
            .await?;
        let mut results: BTreeMap<String, Result<ConverseResponse, LlmError>> = BTreeMap::new();
        for OutputLine {
            line,
            value,
            request,
        } in output_lines(provider_id, &text, requests)?
        {
            let result = &value["result"];
            let answer = match result["type"].as_str() {
                Some("succeeded") => {
                    self.client
                        .answer(&request.request, &result["message"], Duration::ZERO)
                }
                Some("errored") => {
                    // The error response of a live call: `{"type": "error", "error": {…}}`.
                    let error = &result["error"];
                    let kind = error["error"]["type"].as_str().unwrap_or("");
                    let status = match kind {
                        "invalid_request_error" => 400,
                        "authentication_error" => 401,
                        "permission_error" => 403,
                        "not_found_error" => 404,
                        "rate_limit_error" => 429,
                        "overloaded_error" => 529,
                        _ => 500,
                    };
                    Err(self.client.error(
                        status,
                        &HeaderMap::new(),
                        &error.to_string(),
                        &request.request.model,
                    ))
                }
                // Not attempted: worth sending again.
                Some(kind @ ("canceled" | "expired")) => Err(LlmError::Unavailable {
                    message: format!("batch request {kind}"),
                }),
                _ => {
                    return Err(BatchError::malformed(
                        provider_id,
                        line,
                        format!("unknown result {}", excerpt(&result.to_string())),
                    ));
                }
            };
            results.insert(request.custom_id.clone(), answer);
        }
        Ok(BatchPoll::Ended { status, results })
    }

    async fn cancel(&self, provider_id: &str) -> Result<(), BatchError> {
        self.send(self.http.post(self.url(&format!("/{provider_id}/cancel"))))
            .await
            .map_err(|(status, body)| {
                self.failed(&format!("cancelling batch {provider_id}"), status, &body)
            })?;
        Ok(())
    }
}
