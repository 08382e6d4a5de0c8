//! The client.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};
use socratic_core::llm::{
    ConverseRequest, ConverseResponse, LlmClient, LlmError, Speaker, StopReason, StructuredMode,
    TokenLimitField, Usage,
};

use crate::config::{ConfigError, OpenAiConfig};
use crate::error::{self, Context};
use crate::wire::{ChatMessage, ChatRequest, ChatResponse, WireUsage};

/// An [`LlmClient`] over an OpenAI-compatible `POST {base_url}/chat/completions`.
///
/// The request's `model` is sent as is, so one client serves every model of a server.
#[derive(Clone)]
pub struct OpenAiLlm {
    http: reqwest::Client,
    url: String,
    pub(crate) api_key: Option<String>,
    pub(crate) config: OpenAiConfig,
}

impl std::fmt::Debug for OpenAiLlm {
    // The key is left out on purpose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiLlm")
            .field("url", &self.url)
            .field("api_key_env", &self.config.api_key_env)
            .field("structured", &self.config.structured)
            .finish_non_exhaustive()
    }
}

impl OpenAiLlm {
    /// A client for the server in `config`, reading the API key from its environment
    /// variable now.
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        Self::with_environment(config, |name| std::env::var(name).ok())
    }

    /// Like [`OpenAiLlm::new`], looking variables up with `lookup` instead of the process
    /// environment (an embedding service's secret store, or a test).
    pub fn with_environment(
        config: OpenAiConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let api_key = match &config.api_key_env {
            Some(variable) => match lookup(variable) {
                Some(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
                _ => {
                    return Err(ConfigError::MissingKey {
                        variable: variable.clone(),
                    });
                }
            },
            None => None,
        };
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::BadBaseUrl {
                url: config.base_url.clone(),
            });
        }
        let url = format!("{base}/chat/completions");
        let builder = reqwest::Client::builder();
        // A streamed call is timed in two parts, by the call itself.
        let builder = if config.stream {
            builder
        } else {
            builder.timeout(config.timeout)
        };
        let http = builder
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("socratic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Http {
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            url,
            api_key,
            config,
        })
    }

    /// The endpoint this client posts to.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn body<'a>(&self, request: &'a ConverseRequest) -> ChatRequest<'a> {
        let mut system: Vec<&str> = request.system.iter().map(|p| p.text.as_str()).collect();
        let mut tools = None;
        let mut tool_choice = None;
        let mut response_format = None;
        let instruction;
        if let Some(output) = &request.structured_output {
            match self.config.structured {
                StructuredMode::Tools => {
                    tools = Some(json!([{
                        "type": "function",
                        "function": {
                            "name": output.name,
                            "description": output.description,
                            "parameters": output.schema,
                        }
                    }]));
                    tool_choice =
                        Some(json!({"type": "function", "function": {"name": output.name}}));
                }
                StructuredMode::JsonSchema => {
                    response_format = Some(json!({
                        "type": "json_schema",
                        "json_schema": {
                            "name": output.name,
                            "description": output.description,
                            "schema": output.schema,
                            "strict": false,
                        }
                    }));
                }
                StructuredMode::Text => {
                    instruction = format!(
                        "{}. Answer with one JSON object and nothing else. It must satisfy this JSON schema:\n{}",
                        output.description, output.schema
                    );
                    system.push(&instruction);
                }
            }
        }
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !system.is_empty() {
            messages.push(ChatMessage {
                role: "system",
                content: system.join("\n\n"),
            });
        }
        messages.extend(request.messages.iter().map(|m| ChatMessage {
            role: match m.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            },
            content: m.text.clone(),
        }));
        let (max_tokens, max_completion_tokens) = match self.config.token_limit_field {
            TokenLimitField::MaxTokens => (Some(request.max_tokens), None),
            TokenLimitField::MaxCompletionTokens => (None, Some(request.max_tokens)),
        };
        ChatRequest {
            model: &request.model,
            messages,
            temperature: request.temperature,
            max_tokens,
            max_completion_tokens,
            stop: &request.stop,
            tools,
            tool_choice,
            response_format,
            stream: false,
            stream_options: None,
        }
    }
}

/// The first JSON object in `text`: the whole text when it is one, else the first balanced
/// `{…}` that parses (models like to wrap JSON in prose or code fences).
pub(crate) fn extract_object(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(trimmed) {
        return Some(value);
    }
    for (start, _) in trimmed.match_indices('{') {
        let mut depth = 0_i32;
        let mut in_string = false;
        let mut escaped = false;
        for (offset, c) in trimmed[start..].char_indices() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        let candidate = &trimmed[start..=start + offset];
                        if let Ok(value @ Value::Object(_)) = serde_json::from_str(candidate) {
                            return Some(value);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    None
}

fn usage(wire: Option<WireUsage>) -> Usage {
    let wire = wire.unwrap_or_default();
    let cached = wire
        .prompt_tokens_details
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0)
        .min(wire.prompt_tokens);
    Usage {
        input_tokens: wire.prompt_tokens - cached,
        output_tokens: wire.completion_tokens,
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    }
}

fn stop_reason(finish: Option<&str>) -> StopReason {
    match finish {
        Some("stop") | None => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFiltered,
        Some(other) => StopReason::Other(other.to_owned()),
    }
}

#[async_trait]
impl LlmClient for OpenAiLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        request.check()?;
        if self.config.stream {
            return self.converse_streamed(request).await;
        }
        let ctx = Context {
            url: &self.url,
            model: &request.model,
            api_key_env: self.config.api_key_env.as_deref(),
        };
        let body = serde_json::to_vec(&self.body(request)).map_err(|e| LlmError::Validation {
            message: format!("cannot encode the request: {e}"),
        })?;
        let started = Instant::now();
        let mut http = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            http = http.bearer_auth(key);
        }
        let response = http
            .send()
            .await
            .map_err(|e| error::from_transport(&e, &ctx))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| error::from_transport(&e, &ctx))?;
        let latency = started.elapsed();
        if !(200..300).contains(&status) {
            return Err(error::from_status(status, &headers, &text, &ctx));
        }
        let parsed: ChatResponse = serde_json::from_str(&text).map_err(|e| LlmError::Other {
            message: format!(
                "{} answered 200 with an unreadable body ({e}): {}",
                self.url,
                text.chars().take(300).collect::<String>()
            ),
            retryable: true,
        })?;
        self.answer(request, parsed, latency)
    }
}

impl OpenAiLlm {
    /// The answer to `request` in a chat completion (a live one, or a line of a batch's
    /// output file).
    pub(crate) fn answer(
        &self,
        request: &ConverseRequest,
        parsed: ChatResponse,
        latency: std::time::Duration,
    ) -> Result<ConverseResponse, LlmError> {
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Other {
                message: format!("{} answered without a choice", self.url),
                retryable: true,
            })?;
        let message = choice.message;
        let mut text = message.content.or(message.refusal).unwrap_or_default();
        let mut structured = None;
        if request.structured_output.is_some() {
            let call = message
                .tool_calls
                .and_then(|calls| calls.into_iter().next());
            structured = match call.map(|c| c.function) {
                Some(function) => {
                    let arguments = match function.arguments {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let value = extract_object(&arguments);
                    if value.is_none() {
                        // Keep what the model produced for the judge's unscored reason.
                        text = format!("{}: {arguments}", function.name);
                    }
                    value
                }
                None => extract_object(&text),
            };
        }
        Ok(ConverseResponse {
            text,
            structured,
            stop_reason: stop_reason(choice.finish_reason.as_deref()),
            usage: usage(parsed.usage),
            latency,
            cached: false,
            batched: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_in_prose_and_fences() {
        let fenced = "Here you go:\n```json\n{\"a\": {\"b\": \"}\"}, \"c\": [1]}\n```";
        assert_eq!(
            extract_object(fenced),
            Some(json!({"a": {"b": "}"}, "c": [1]}))
        );
        assert_eq!(extract_object(" {\"x\": 1} "), Some(json!({"x": 1})));
        assert_eq!(
            extract_object("{not json} then {\"y\": 2}"),
            Some(json!({"y": 2}))
        );
        assert_eq!(extract_object("[1, 2]"), None);
        assert_eq!(extract_object("no braces"), None);
    }

    #[test]
    fn cached_prompt_tokens_become_cache_reads() {
        let u = usage(Some(WireUsage {
            prompt_tokens: 808,
            completion_tokens: 665,
            prompt_tokens_details: Some(crate::wire::PromptTokensDetails {
                cached_tokens: Some(804),
            }),
        }));
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (4, 804, 665)
        );
    }
}
