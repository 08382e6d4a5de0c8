//! Streamed chat completions (`stream: true`): server-sent `chat.completion.chunk` events
//! assembled into one completion. The call is timed in two parts: up to the first byte of the
//! answer (`first_token_timeout`: the server's queue and the prompt), and from it to the end
//! (`timeout`), so a call waiting its turn in a busy local server is not a failure.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmError};

use crate::client::OpenAiLlm;
use crate::error::{self, Context};
use crate::wire::{AssistantMessage, ChatResponse, Choice, FunctionCall, ToolCall, WireUsage};

/// A completion as its chunks arrive.
#[derive(Default)]
struct Assembly {
    content: Option<String>,
    refusal: Option<String>,
    /// Tool calls by index: name and arguments, concatenated.
    tools: BTreeMap<u64, (String, String)>,
    finish_reason: Option<String>,
    usage: Option<WireUsage>,
    done: bool,
}

impl Assembly {
    /// Takes in one `data:` payload.
    fn add(&mut self, data: &str, url: &str) -> Result<(), LlmError> {
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| LlmError::Other {
            message: format!(
                "{url} streamed an unreadable chunk ({e}): {}",
                excerpt(data)
            ),
            retryable: true,
        })?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(LlmError::Unavailable {
                message: format!("{url} failed mid-stream: {error}"),
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = serde_json::from_value(usage.clone()).ok();
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(());
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str() {
            self.content.get_or_insert_default().push_str(text);
        }
        if let Some(text) = delta["refusal"].as_str() {
            self.refusal.get_or_insert_default().push_str(text);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let entry = self
                .tools
                .entry(call["index"].as_u64().unwrap_or(0))
                .or_default();
            if let Some(name) = call["function"]["name"].as_str() {
                entry.0.push_str(name);
            }
            if let Some(arguments) = call["function"]["arguments"].as_str() {
                entry.1.push_str(arguments);
            }
        }
        Ok(())
    }

    /// Takes in every complete line of `buffer`, leaving a partial last line there.
    fn add_lines(&mut self, buffer: &mut Vec<u8>, url: &str) -> Result<(), LlmError> {
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(data) = line.trim().strip_prefix("data:") {
                self.add(data.trim(), url)?;
            }
        }
        Ok(())
    }

    fn into_response(self) -> ChatResponse {
        let tool_calls = (!self.tools.is_empty()).then(|| {
            self.tools
                .into_values()
                .map(|(name, arguments)| ToolCall {
                    function: FunctionCall {
                        name,
                        arguments: Value::String(arguments),
                    },
                })
                .collect()
        });
        ChatResponse {
            choices: vec![Choice {
                message: AssistantMessage {
                    content: self.content,
                    tool_calls,
                    refusal: self.refusal,
                },
                finish_reason: self.finish_reason,
            }],
            usage: self.usage,
        }
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

impl OpenAiLlm {
    /// One call with `stream: true`: the first byte within `first_token_timeout`, the rest
    /// within `timeout`.
    pub(crate) async fn converse_streamed(
        &self,
        request: &ConverseRequest,
    ) -> Result<ConverseResponse, LlmError> {
        let ctx = Context {
            url: self.url(),
            model: &request.model,
            api_key_env: self.config.api_key_env.as_deref(),
        };
        let mut wire = self.body(request);
        wire.stream = true;
        wire.stream_options = Some(json!({"include_usage": true}));
        let body = serde_json::to_vec(&wire).map_err(|e| LlmError::Validation {
            message: format!("cannot encode the request: {e}"),
        })?;
        let started = Instant::now();
        let mut http = self
            .http()
            .post(self.url())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let first_token = self.config.first_token_timeout;
        let waited = |what: &str| LlmError::Timeout {
            message: format!(
                "{} sent no {what} within the first-token timeout of {first_token:?}",
                self.url()
            ),
        };
        // Up to the first byte: the answer's headers and its first chunk.
        let (mut response, mut buffer) = tokio::time::timeout(first_token, async {
            let mut response = http
                .send()
                .await
                .map_err(|e| error::from_transport(&e, &ctx))?;
            let first = response
                .chunk()
                .await
                .map_err(|e| error::from_transport(&e, &ctx))?;
            Ok::<_, LlmError>((response, first.map(|b| b.to_vec()).unwrap_or_default()))
        })
        .await
        .map_err(|_| waited("answer"))??;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let timeout = self.config.timeout;
        let mut assembly = Assembly::default();
        let rest = tokio::time::timeout(timeout, async {
            if !(200..300).contains(&status) {
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| error::from_transport(&e, &ctx))?
                {
                    buffer.extend_from_slice(&chunk);
                }
                let text = String::from_utf8_lossy(&buffer);
                return Err(error::from_status(status, &headers, &text, &ctx));
            }
            assembly.add_lines(&mut buffer, self.url())?;
            while !assembly.done {
                match response
                    .chunk()
                    .await
                    .map_err(|e| error::from_transport(&e, &ctx))?
                {
                    Some(chunk) => {
                        buffer.extend_from_slice(&chunk);
                        assembly.add_lines(&mut buffer, self.url())?;
                    }
                    None => {
                        // Servers that end the stream without `[DONE]`: what came is the answer.
                        buffer.push(b'\n');
                        assembly.add_lines(&mut buffer, self.url())?;
                        break;
                    }
                }
            }
            Ok(())
        })
        .await;
        match rest {
            Ok(result) => result?,
            Err(_) => {
                return Err(LlmError::Timeout {
                    message: format!(
                        "{} did not finish streaming the answer within {timeout:?} of its first byte",
                        self.url()
                    ),
                });
            }
        }
        if assembly.finish_reason.is_none() && assembly.usage.is_none() {
            return Err(LlmError::Other {
                message: format!(
                    "{} ended the stream before the answer was complete",
                    self.url()
                ),
                retryable: true,
            });
        }
        self.answer(request, assembly.into_response(), started.elapsed())
    }
}
