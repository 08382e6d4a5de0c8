//! The Messages API's JSON, without HTTP: a request's body and the answer in a response.
//!
//! The same JSON serves Anthropic's own API, its Message Batches (a request's `params`) and
//! Claude on Amazon Bedrock (an `InvokeModel` body, as a Bedrock batch record's
//! `modelInput`), so it lives apart from the HTTP client.

use std::time::Duration;

use serde_json::{Value, json};
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmError, Speaker, StopReason, Usage};

/// The `anthropic_version` a Claude `InvokeModel` body on Amazon Bedrock names.
pub const BEDROCK_VERSION: &str = "bedrock-2023-05-31";

/// The Messages API body of `request`.
///
/// - System parts become system blocks; a part marked `cache_point` gets
///   `cache_control: {"type": "ephemeral"}`, so the repeated prefix (the prompt, the rubric)
///   is read from the prompt cache at the cache-read price.
/// - Structured output is a forced tool call whose input is the value.
pub fn body(request: &ConverseRequest) -> Value {
    let system: Vec<Value> = request
        .system
        .iter()
        .map(|part| {
            let mut block = json!({"type": "text", "text": part.text});
            if part.cache_point {
                block["cache_control"] = json!({"type": "ephemeral"});
            }
            block
        })
        .collect();
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.speaker {
                Speaker::User => "user",
                Speaker::Assistant => "assistant",
            };
            json!({"role": role, "content": m.text})
        })
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.stop.is_empty() {
        body["stop_sequences"] = json!(request.stop);
    }
    if let Some(output) = &request.structured_output {
        body["tools"] = json!([{
            "name": output.name,
            "description": output.description,
            "input_schema": output.schema,
        }]);
        body["tool_choice"] = json!({"type": "tool", "name": output.name});
    }
    body
}

/// The `InvokeModel` body of `request` for Claude on Amazon Bedrock: the Messages API body
/// with [`BEDROCK_VERSION`] in place of the model, which Bedrock takes from the call.
pub fn bedrock_body(request: &ConverseRequest) -> Value {
    let mut body = body(request);
    if let Some(fields) = body.as_object_mut() {
        fields.remove("model");
        fields.insert("anthropic_version".to_owned(), json!(BEDROCK_VERSION));
    }
    body
}

/// The answer in a Messages API response body `message` (a live answer, a Message Batch's
/// succeeded result, or a Bedrock batch record's `modelOutput`); `source` names who answered,
/// for the error of a body without content.
///
/// Usage: `input_tokens` (uncached), `cache_read_input_tokens` and
/// `cache_creation_input_tokens` become input, cache-read and cache-write tokens.
pub fn answer(
    source: &str,
    request: &ConverseRequest,
    message: &Value,
    latency: Duration,
) -> Result<ConverseResponse, LlmError> {
    let Some(content) = message["content"].as_array() else {
        return Err(LlmError::Other {
            message: format!(
                "{source} answered without content: {}",
                excerpt(&message.to_string())
            ),
            retryable: true,
        });
    };
    let mut text = String::new();
    let mut structured = None;
    for block in content {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") if request.structured_output.is_some() => {
                structured = block.get("input").filter(|v| v.is_object()).cloned();
            }
            _ => {}
        }
    }
    let usage = &message["usage"];
    let count = |field: &str| usage[field].as_u64().unwrap_or(0);
    Ok(ConverseResponse {
        text,
        structured,
        stop_reason: match message["stop_reason"].as_str() {
            Some("end_turn") | None => StopReason::EndTurn,
            Some("max_tokens") => StopReason::MaxTokens,
            Some("stop_sequence") => StopReason::StopSequence,
            Some("tool_use") => StopReason::ToolUse,
            Some("refusal") => StopReason::ContentFiltered,
            Some(other) => StopReason::Other(other.to_owned()),
        },
        usage: Usage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_read_tokens: count("cache_read_input_tokens"),
            cache_write_tokens: count("cache_creation_input_tokens"),
        },
        latency,
        cached: false,
        batched: false,
    })
}

/// The first 300 characters of `text`, for messages.
pub fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}
