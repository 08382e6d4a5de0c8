//! The `LlmClient` port: one `converse` call to a chat model.
//!
//! Requests are plain data (`Clone`, `Serialize`) so they can be retried, hashed into a response
//! cache and recorded. Cross-cutting behaviour — retries, concurrency limits, caching, metering,
//! fault injection — is written as decorators that implement the same trait.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod batch;
mod budget;
mod cache;
mod limit;
mod rate;
mod retry;
mod stack;
mod style;

pub use batch::{
    BatchApi, BatchError, BatchJournal, BatchOptions, BatchPoll, BatchRecord, BatchRequest,
    BatchState, Batcher, MAX_ATTEMPTS, MemoryBatchJournal, OutputLine, output_limit, output_lines,
    output_lines_by,
};
pub use budget::{Budget, BudgetLlm, input_size, worst_case_cost, worst_case_input_tokens};
pub use cache::{CacheMode, CachedLlm, answer_key, request_hash};
pub use limit::{ConcurrencyLimitLlm, SharedLimitLlm};
pub use rate::RateLimitLlm;
pub use retry::{RetryBudget, RetryLlm, RetryPolicy};
pub use stack::{CallRecorder, ClientStack, StackCache};
pub use style::{StructuredMode, TokenLimitField};

/// The role a call plays in a run; recorded with every call so cost is attributed per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The model under test.
    Tutor,
    /// The simulated student.
    Student,
    /// A judge.
    Judge,
}

impl Role {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tutor => "tutor",
            Role::Student => "student",
            Role::Judge => "judge",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A part of the system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemPart {
    /// The text.
    pub text: String,
    /// Place a prompt-cache point after this part (ignored by providers without caching).
    #[serde(default)]
    pub cache_point: bool,
}

impl SystemPart {
    /// A part without a cache point.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            cache_point: false,
        }
    }

    /// A part followed by a cache point.
    pub fn cached(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            cache_point: true,
        }
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The caller's side.
    User,
    /// The model's side.
    Assistant,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub speaker: Speaker,
    /// What was said.
    pub text: String,
}

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            speaker: Speaker::User,
            text: text.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            speaker: Speaker::Assistant,
            text: text.into(),
        }
    }
}

/// A request for output matching a JSON schema (tool use with a forced tool, or native JSON
/// schema output, depending on the provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructuredOutput {
    /// Name of the output, e.g. `record_judgment`; a tool name on tool-use providers.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The JSON schema the value must satisfy. Shared: every judge call of a run asks for the
    /// same one.
    pub schema: Arc<Value>,
}

/// One call to a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConverseRequest {
    /// The provider's model id.
    pub model: String,
    /// What the call is for.
    pub role: Role,
    /// System prompt parts, in order.
    pub system: Vec<SystemPart>,
    /// The conversation; the first message is the user's.
    pub messages: Vec<Message>,
    /// Ask for structured output instead of free text.
    pub structured_output: Option<StructuredOutput>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Output token limit.
    pub max_tokens: u32,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Which sample of otherwise identical requests this is (the run's repetition). Not sent
    /// to the model; it keeps repetitions distinct in the response cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ConverseRequest {
    /// A request with no system prompt, no structured output and default sampling.
    pub fn new(model: impl Into<String>, role: Role, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            role,
            system: Vec::new(),
            messages,
            structured_output: None,
            temperature: None,
            max_tokens: 512,
            stop: Vec::new(),
            sample: 0,
        }
    }

    /// Checks what every backend requires: a model, at least one message, the first from the
    /// user, alternating speakers, and a positive token limit.
    pub fn check(&self) -> Result<(), LlmError> {
        let invalid = |message: &str| {
            Err(LlmError::Validation {
                message: message.to_owned(),
            })
        };
        if self.model.trim().is_empty() {
            return invalid("model must not be empty");
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens must be at least 1");
        }
        match self.messages.first() {
            None => return invalid("messages must not be empty"),
            Some(first) if first.speaker != Speaker::User => {
                return invalid("the first message must be the user's");
            }
            Some(_) => {}
        }
        if self
            .messages
            .windows(2)
            .any(|w| w[0].speaker == w[1].speaker)
        {
            return invalid("speakers must alternate");
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return invalid("temperature must lie in [0, 1]");
        }
        Ok(())
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StopReason {
    /// The model finished its turn.
    EndTurn,
    /// The token limit was reached.
    MaxTokens,
    /// A stop sequence was produced.
    StopSequence,
    /// The model produced the requested structured output (tool use).
    ToolUse,
    /// The provider filtered the content.
    ContentFiltered,
    /// Anything else, as the provider named it.
    Other(String),
}

impl From<String> for StopReason {
    fn from(value: String) -> Self {
        match value.as_str() {
            "end_turn" => StopReason::EndTurn,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "tool_use" => StopReason::ToolUse,
            "content_filtered" => StopReason::ContentFiltered,
            _ => StopReason::Other(value),
        }
    }
}

impl From<StopReason> for String {
    fn from(value: StopReason) -> String {
        match value {
            StopReason::EndTurn => "end_turn".to_owned(),
            StopReason::MaxTokens => "max_tokens".to_owned(),
            StopReason::StopSequence => "stop_sequence".to_owned(),
            StopReason::ToolUse => "tool_use".to_owned(),
            StopReason::ContentFiltered => "content_filtered".to_owned(),
            StopReason::Other(other) => other,
        }
    }
}

/// Tokens used by a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Input tokens not read from the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            cache_read_tokens: self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens + other.cache_write_tokens,
        }
    }
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read: f64,
    /// Per million tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write: f64,
    /// Per million input tokens sent through the provider's batch interface; with
    /// `batch_output`, the model's batch price (see [`Prices::batch`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<f64>,
    /// Per million output tokens answered through the provider's batch interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_output: Option<f64>,
}

impl Prices {
    /// The cost in dollars of `usage` at these prices.
    pub fn cost(&self, usage: &Usage) -> f64 {
        const PER: f64 = 1_000_000.0;
        (usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_read_tokens as f64 * self.cache_read
            + usage.cache_write_tokens as f64 * self.cache_write)
            / PER
    }

    /// The prices a call was charged at: the batch prices for a call answered through the
    /// batch interface (the live ones for a model without), else these.
    pub fn for_call(&self, batched: bool) -> Prices {
        match batched {
            true => self.batch().unwrap_or(*self),
            false => *self,
        }
    }

    /// The prices of a call sent through the provider's batch interface, when the model has
    /// batch prices (both `batch_input` and `batch_output`). The cache prices get the input
    /// discount too, as Anthropic's and OpenAI's discounts stack.
    pub fn batch(&self) -> Option<Prices> {
        let (input, output) = (self.batch_input?, self.batch_output?);
        let ratio = if self.input > 0.0 {
            input / self.input
        } else {
            1.0
        };
        Some(Prices {
            input,
            output,
            cache_read: self.cache_read * ratio,
            cache_write: self.cache_write * ratio,
            batch_input: None,
            batch_output: None,
        })
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConverseResponse {
    /// Free text (empty when only structured output was returned).
    pub text: String,
    /// The structured value, when the request asked for one and the model produced it.
    pub structured: Option<Value>,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: Usage,
    /// Wall time of the call.
    pub latency: Duration,
    /// Answered from the response cache: no model was called and nothing was spent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Answered through the provider's batch interface, and so charged at its batch prices
    /// ([`Prices::for_call`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batched: bool,
}

/// What went wrong in a call. [`LlmError::is_retryable`] says whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The provider is rate-limiting; retry after the given delay if there is one.
    #[error("throttled{}: {message}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    Throttled {
        /// The provider's message.
        message: String,
        /// How long the provider asked to wait.
        retry_after: Option<Duration>,
    },
    /// The service or model is temporarily unavailable (or not ready yet).
    #[error("model unavailable: {message}")]
    Unavailable {
        /// The provider's message.
        message: String,
    },
    /// The call took too long.
    #[error("model call timed out: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// The caller may not use this model.
    #[error("access denied: {message}")]
    AccessDenied {
        /// The provider's message.
        message: String,
    },
    /// The request is malformed.
    #[error("invalid request: {message}")]
    Validation {
        /// What is wrong.
        message: String,
    },
    /// No such model.
    #[error("model not found: {model}")]
    ModelNotFound {
        /// The model id asked for.
        model: String,
    },
    /// The input does not fit the model's context window.
    #[error("context window exceeded: {message}")]
    ContextWindow {
        /// The provider's message.
        message: String,
    },
    /// The model answered, but not in the requested form; the raw text is kept.
    #[error("invalid model output: {message}")]
    InvalidOutput {
        /// What is wrong.
        message: String,
        /// The raw output.
        raw: String,
    },
    /// The call was not made: its worst-case cost would pass the spending cap.
    #[error("budget: {message}")]
    BudgetExhausted {
        /// The cap, what is spent and what the call could cost.
        message: String,
    },
    /// Any other provider failure.
    #[error("model call failed: {message}")]
    Other {
        /// The provider's message.
        message: String,
        /// Whether the provider marked it as transient.
        retryable: bool,
    },
}

impl LlmError {
    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Throttled { .. }
            | LlmError::Unavailable { .. }
            | LlmError::Timeout { .. } => true,
            LlmError::Other { retryable, .. } => *retryable,
            LlmError::AccessDenied { .. }
            | LlmError::Validation { .. }
            | LlmError::ModelNotFound { .. }
            | LlmError::ContextWindow { .. }
            | LlmError::InvalidOutput { .. }
            | LlmError::BudgetExhausted { .. } => false,
        }
    }

    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A chat model.
///
/// Implementers: check the request with [`ConverseRequest::check`], return structured output in
/// [`ConverseResponse::structured`] when asked, report usage and latency, and map every provider
/// error to the [`LlmError`] variant callers act on. Do not retry inside; the retry decorator
/// owns retries and their budget.
#[async_trait]
pub trait LlmClient: Send + Sync {
    /// Sends one request.
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError>;
}

#[async_trait]
impl<T: LlmClient + ?Sized> LlmClient for Arc<T> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        (**self).converse(request).await
    }
}

#[async_trait]
impl<T: LlmClient + ?Sized> LlmClient for Box<T> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        (**self).converse(request).await
    }
}

/// Conveniences over [`LlmClient`], implemented for every client.
#[async_trait]
pub trait LlmClientExt: LlmClient {
    /// Sends a single user message and returns the text.
    async fn ask(&self, model: &str, role: Role, text: &str) -> Result<String, LlmError> {
        let request = ConverseRequest::new(model, role, vec![Message::user(text)]);
        Ok(self.converse(&request).await?.text)
    }
}

impl<T: LlmClient + ?Sized> LlmClientExt for T {}

/// A plain "ok" answer with no usage, for the decorators' tests.
#[cfg(test)]
pub(crate) fn ok_answer() -> ConverseResponse {
    ConverseResponse {
        text: "ok".into(),
        structured: None,
        stop_reason: StopReason::EndTurn,
        usage: Usage::default(),
        latency: Duration::ZERO,
        cached: false,
        batched: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_as_retryable_or_not() {
        let retryable = [
            LlmError::Throttled {
                message: String::new(),
                retry_after: Some(Duration::from_secs(2)),
            },
            LlmError::Unavailable {
                message: String::new(),
            },
            LlmError::Timeout {
                message: String::new(),
            },
            LlmError::Other {
                message: String::new(),
                retryable: true,
            },
        ];
        let permanent = [
            LlmError::AccessDenied {
                message: String::new(),
            },
            LlmError::Validation {
                message: String::new(),
            },
            LlmError::ModelNotFound { model: "m".into() },
            LlmError::ContextWindow {
                message: String::new(),
            },
            LlmError::InvalidOutput {
                message: String::new(),
                raw: "x".into(),
            },
            LlmError::Other {
                message: String::new(),
                retryable: false,
            },
        ];
        assert!(retryable.iter().all(LlmError::is_retryable));
        assert!(!permanent.iter().any(LlmError::is_retryable));
        assert_eq!(retryable[0].retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn stop_reasons_round_trip_with_fallback() {
        for reason in [
            StopReason::EndTurn,
            StopReason::ToolUse,
            StopReason::Other("guardrail".into()),
        ] {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(serde_json::from_str::<StopReason>(&json).unwrap(), reason);
        }
        assert_eq!(
            serde_json::to_string(&StopReason::MaxTokens).unwrap(),
            "\"max_tokens\""
        );
    }

    #[test]
    fn request_check_names_the_problem() {
        let ok = ConverseRequest::new("m", Role::Tutor, vec![Message::user("hi")]);
        assert!(ok.check().is_ok());
        let mut bad = ok.clone();
        bad.messages.clear();
        assert!(
            matches!(bad.check(), Err(LlmError::Validation { message }) if message.contains("empty"))
        );
        let mut bad = ok.clone();
        bad.messages.insert(0, Message::assistant("x"));
        assert!(bad.check().is_err());
        let mut bad = ok;
        bad.temperature = Some(1.5);
        assert!(bad.check().is_err());
    }
}
