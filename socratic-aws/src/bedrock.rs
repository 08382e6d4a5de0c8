//! The `LlmClient` port over Amazon Bedrock's Converse API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseOutput,
    InferenceConfiguration, Message as BedrockMessage, SpecificToolChoice,
    StopReason as BedrockStopReason, SystemContentBlock, Tool, ToolChoice, ToolConfiguration,
    ToolInputSchema, ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;
use socratic_core::llm::{
    ConverseRequest, ConverseResponse, LlmClient, LlmError, Speaker, StopReason, Usage,
};

use crate::error::{Failure, classify};

/// An [`LlmClient`] over Bedrock's Converse API, so every model family Bedrock serves works
/// (Anthropic, Meta, Mistral, Amazon Nova, …) with one request shape.
///
/// - System parts become system blocks; a part marked `cache_point` is followed by a cache
///   point when the model supports prompt caching ([`CACHE_POINT_SUPPORT`]), since Bedrock rejects
///   cache points sent to models that do not.
/// - Structured output is a single tool whose input schema is the requested JSON schema, with
///   the tool choice forced, so the model must answer through it.
/// - Usage includes cache read and write tokens; stop reasons are mapped with a fallback.
/// - Errors are mapped for the retry layer: throttling, unavailability, a model not ready and
///   timeouts are retryable; access denied, validation, unknown models and context-window
///   overflows are not.
///
/// Build the client with SDK retries off ([`BedrockLlm::from_conf`] does): `RetryLlm` owns
/// retries and their budget, and two retry layers would multiply attempts.
#[derive(Debug, Clone)]
pub struct BedrockLlm {
    client: Client,
    caching: PromptCaching,
    /// The model family behind each application inference profile, whose ARN does not say.
    profile_models: HashMap<String, String>,
}

/// When to send cache points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptCaching {
    /// Only to models that support prompt caching on Bedrock, by [`CACHE_POINT_SUPPORT`];
    /// Bedrock rejects cache points sent to the others.
    #[default]
    Auto,
    /// Always send them.
    Always,
    /// Never send them.
    Never,
}

/// Which Bedrock model families accept cache points, by model-id prefix; the first matching
/// prefix decides, and a model no prefix matches gets none (a missing cache point costs
/// money, a wrong one fails the call).
pub const CACHE_POINT_SUPPORT: &[(&str, bool)] = &[
    ("anthropic.claude-3-5-haiku", true),
    ("anthropic.claude-3-7-sonnet", true),
    ("anthropic.claude-sonnet-4", true),
    ("anthropic.claude-opus-4", true),
    ("anthropic.claude-haiku-4", true),
    // Claude 3, 3.5 Sonnet and older Claude models.
    ("anthropic.claude", false),
    ("amazon.nova-micro", true),
    ("amazon.nova-lite", true),
    ("amazon.nova-pro", true),
    ("amazon.nova-premier", true),
    ("amazon.", false),
    ("meta.", false),
    ("mistral.", false),
    ("cohere.", false),
    ("ai21.", false),
    ("deepseek.", false),
    ("writer.", false),
    ("qwen.", false),
    ("openai.", false),
];

/// The foundation model id inside a model id, inference profile id or ARN:
/// `us.anthropic.claude-…` and `arn:…:inference-profile/eu.amazon.nova-…` name it after a
/// geography prefix; an application inference profile's ARN does not name it at all.
pub fn foundation_model(model: &str) -> Option<String> {
    let model = model.to_lowercase();
    if model.contains(":application-inference-profile/") {
        return None;
    }
    let id = model.rsplit('/').next().unwrap_or(&model);
    let known = |candidate: &str| {
        CACHE_POINT_SUPPORT
            .iter()
            .any(|(p, _)| candidate.starts_with(p))
    };
    if known(id) {
        return Some(id.to_owned());
    }
    // A cross-region profile: `us.`, `eu.`, `apac.`, `us-gov.`, `global.`, … before the id.
    id.split_once('.')
        .map(|(_, rest)| rest)
        .filter(|rest| known(rest))
        .map(str::to_owned)
}

/// Whether a foundation model id accepts cache points, by [`CACHE_POINT_SUPPORT`].
pub fn supports_cache_points(foundation_model: &str) -> bool {
    CACHE_POINT_SUPPORT
        .iter()
        .find(|(prefix, _)| foundation_model.starts_with(prefix))
        .is_some_and(|(_, supported)| *supported)
}

impl PromptCaching {
    /// Whether to send cache points to `model` (a model id, inference profile id or ARN).
    /// An application inference profile ARN says nothing of its model, so `Auto` sends it
    /// none; name its model with [`BedrockLlm::with_profile_model`].
    pub fn applies_to(self, model: &str) -> bool {
        match self {
            PromptCaching::Always => true,
            PromptCaching::Never => false,
            PromptCaching::Auto => {
                foundation_model(model).is_some_and(|m| supports_cache_points(&m))
            }
        }
    }
}

impl BedrockLlm {
    /// Wraps a client. Prefer [`BedrockLlm::from_conf`], which turns SDK retries off.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            caching: PromptCaching::Auto,
            profile_models: HashMap::new(),
        }
    }

    /// Names the foundation model behind an application inference profile ARN, so prompt
    /// caching is decided by that model's family.
    pub fn with_profile_model(
        mut self,
        profile_arn: impl Into<String>,
        foundation_model: impl Into<String>,
    ) -> Self {
        self.profile_models
            .insert(profile_arn.into(), foundation_model.into());
        self
    }

    /// Whether a request to `model` carries cache points.
    fn sends_cache_points(&self, model: &str) -> bool {
        match (self.caching, self.profile_models.get(model)) {
            (PromptCaching::Auto, Some(foundation)) => PromptCaching::Auto.applies_to(foundation),
            (caching, _) => caching.applies_to(model),
        }
    }

    /// Sets when cache points are sent (by default only to models that support them).
    pub fn with_prompt_caching(mut self, caching: PromptCaching) -> Self {
        self.caching = caching;
        self
    }

    /// A client from the shared SDK configuration, with SDK retries off.
    pub fn from_conf(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
            .build();
        Self::new(Client::from_conf(config))
    }
}

/// Converts JSON to a Smithy document (tool schemas).
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Converts a Smithy document (tool input) to JSON.
pub(crate) fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn stop_reason(reason: &BedrockStopReason) -> StopReason {
    match reason {
        BedrockStopReason::EndTurn => StopReason::EndTurn,
        BedrockStopReason::MaxTokens => StopReason::MaxTokens,
        BedrockStopReason::StopSequence => StopReason::StopSequence,
        BedrockStopReason::ToolUse => StopReason::ToolUse,
        BedrockStopReason::ContentFiltered => StopReason::ContentFiltered,
        other => StopReason::Other(other.as_str().to_owned()),
    }
}

fn invalid(message: impl Into<String>) -> LlmError {
    LlmError::Validation {
        message: message.into(),
    }
}

/// Maps a Converse failure to what the retry layer acts on.
pub(crate) fn map_error(
    error: &SdkError<ConverseError, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    model: &str,
) -> LlmError {
    if let Some(service) = error.as_service_error() {
        // Modeled errors carry their message in the error itself; fall back to the metadata.
        let modeled = match service {
            ConverseError::ThrottlingException(e) => e.message(),
            ConverseError::ServiceUnavailableException(e) => e.message(),
            ConverseError::ModelNotReadyException(e) => e.message(),
            ConverseError::ModelTimeoutException(e) => e.message(),
            ConverseError::InternalServerException(e) => e.message(),
            ConverseError::AccessDeniedException(e) => e.message(),
            ConverseError::ResourceNotFoundException(e) => e.message(),
            ConverseError::ValidationException(e) => e.message(),
            ConverseError::ModelErrorException(e) => e.message(),
            _ => None,
        };
        let message = modeled
            .or(service.meta().message())
            .unwrap_or_default()
            .to_owned();
        return match service {
            ConverseError::ThrottlingException(_) => LlmError::Throttled {
                message,
                retry_after: None,
            },
            ConverseError::ServiceUnavailableException(_)
            | ConverseError::ModelNotReadyException(_) => LlmError::Unavailable { message },
            ConverseError::ModelTimeoutException(_) => LlmError::Timeout { message },
            ConverseError::InternalServerException(_) => LlmError::Other {
                message,
                retryable: true,
            },
            // A missing grant or model access is the deployment's fault, which an operator can
            // fix while the job waits: retried, and logged for the alarms, never a permanent
            // rejection of the run.
            ConverseError::AccessDeniedException(_) => {
                tracing::error!(%model, %message, "deployment fault: Bedrock denied access to the model");
                LlmError::Unavailable {
                    message: format!(
                        "deployment fault: access denied to {model}: {message} (grant bedrock:InvokeModel on it, and model access in every region its inference profile routes to)"
                    ),
                }
            }
            ConverseError::ResourceNotFoundException(_) => LlmError::ModelNotFound {
                model: model.to_owned(),
            },
            ConverseError::ValidationException(_) => {
                let lower = message.to_lowercase();
                if lower.contains("too long")
                    || lower.contains("context")
                    || lower.contains("too many tokens")
                {
                    LlmError::ContextWindow { message }
                } else {
                    LlmError::Validation { message }
                }
            }
            ConverseError::ModelErrorException(_) => LlmError::Other {
                message,
                retryable: false,
            },
            _ => match classify(error) {
                Failure::Throttled(message) => LlmError::Throttled {
                    message,
                    retry_after: None,
                },
                Failure::Unavailable(message) => LlmError::Unavailable { message },
                Failure::Service { message, .. } | Failure::Invalid(message) => LlmError::Other {
                    message,
                    retryable: false,
                },
            },
        };
    }
    match classify(error) {
        Failure::Throttled(message) => LlmError::Throttled {
            message,
            retry_after: None,
        },
        Failure::Unavailable(message) if matches!(error, SdkError::TimeoutError(_)) => {
            LlmError::Timeout { message }
        }
        Failure::Unavailable(message) => LlmError::Unavailable { message },
        Failure::Service { message, .. } => LlmError::Other {
            message,
            retryable: false,
        },
        Failure::Invalid(message) => LlmError::Validation { message },
    }
}

#[async_trait]
impl LlmClient for BedrockLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        request.check()?;
        let cache_point = || {
            CachePointBlock::builder()
                .r#type(CachePointType::Default)
                .build()
                .map_err(|e| invalid(e.to_string()))
        };
        let caching = self.sends_cache_points(&request.model);
        let mut system = Vec::new();
        for part in &request.system {
            system.push(SystemContentBlock::Text(part.text.clone()));
            if part.cache_point && caching {
                system.push(SystemContentBlock::CachePoint(cache_point()?));
            }
        }
        let messages = request
            .messages
            .iter()
            .map(|m| {
                let role = match m.speaker {
                    Speaker::User => ConversationRole::User,
                    Speaker::Assistant => ConversationRole::Assistant,
                };
                BedrockMessage::builder()
                    .role(role)
                    .content(ContentBlock::Text(m.text.clone()))
                    .build()
                    .map_err(|e| invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
            .set_temperature(request.temperature.map(|t| t as f32))
            .set_stop_sequences((!request.stop.is_empty()).then(|| request.stop.clone()))
            .build();
        let tools = match &request.structured_output {
            None => None,
            Some(output) => {
                let spec = ToolSpecification::builder()
                    .name(&output.name)
                    .description(&output.description)
                    .input_schema(ToolInputSchema::Json(to_document(&output.schema)))
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                let choice = SpecificToolChoice::builder()
                    .name(&output.name)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                Some(
                    ToolConfiguration::builder()
                        .tools(Tool::ToolSpec(spec))
                        .tool_choice(ToolChoice::Tool(choice))
                        .build()
                        .map_err(|e| invalid(e.to_string()))?,
                )
            }
        };
        let started = Instant::now();
        let output = self
            .client
            .converse()
            .model_id(&request.model)
            .set_system((!system.is_empty()).then_some(system))
            .set_messages(Some(messages))
            .inference_config(inference)
            .set_tool_config(tools)
            .send()
            .await
            .map_err(|e| map_error(&e, &request.model))?;
        let latency = started.elapsed();

        let mut text = String::new();
        let mut structured = None;
        if let Some(ConverseOutput::Message(message)) = output.output() {
            for block in message.content() {
                match block {
                    ContentBlock::Text(t) => text.push_str(t),
                    ContentBlock::ToolUse(tool) => structured = Some(to_json(tool.input())),
                    _ => {}
                }
            }
        }
        if request.structured_output.is_some() && structured.is_none() {
            // Some models answer in text despite the forced tool; accept JSON text, else report
            // the raw output so the judge stage can record why.
            structured = serde_json::from_str::<Value>(text.trim())
                .ok()
                .filter(Value::is_object);
            if structured.is_none() {
                return Err(LlmError::InvalidOutput {
                    message: "no structured output in the response".to_owned(),
                    raw: text,
                });
            }
        }
        let usage = output.usage().map_or_else(Usage::default, |u| Usage {
            input_tokens: u64::try_from(u.input_tokens()).unwrap_or(0),
            output_tokens: u64::try_from(u.output_tokens()).unwrap_or(0),
            cache_read_tokens: u
                .cache_read_input_tokens()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            cache_write_tokens: u
                .cache_write_input_tokens()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        });
        Ok(ConverseResponse {
            text,
            structured,
            stop_reason: stop_reason(output.stop_reason()),
            usage,
            latency: Duration::from_millis(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            cached: false,
            batched: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_documents_convert_both_ways() {
        let value = json!({"a": [1, -2, 2.5, "x", true, null], "b": {"c": {}}});
        assert_eq!(to_json(&to_document(&value)), value);
    }

    #[test]
    fn unknown_stop_reasons_fall_back_to_their_name() {
        assert_eq!(
            stop_reason(&BedrockStopReason::ToolUse),
            StopReason::ToolUse
        );
        assert_eq!(
            stop_reason(&BedrockStopReason::GuardrailIntervened),
            StopReason::Other("guardrail_intervened".into())
        );
        assert_eq!(
            stop_reason(&BedrockStopReason::from("brand_new")),
            StopReason::Other("brand_new".into())
        );
    }
}
