//! An [`LlmClient`](socratic_core::llm::LlmClient) for any server that speaks OpenAI's Chat
//! Completions API: OpenAI itself, Ollama, vLLM, the llama.cpp server, LM Studio, OpenRouter,
//! Together, Groq and Anthropic's OpenAI-compatible endpoint. One client, a base URL apart.
//!
//! ```no_run
//! # fn demo() -> Result<(), socratic_openai::ConfigError> {
//! use socratic_openai::{OpenAiConfig, OpenAiLlm, StructuredMode};
//!
//! // A model served by Ollama on this machine: no key, JSON schema output for judges.
//! let ollama = OpenAiLlm::new(OpenAiConfig {
//!     structured: StructuredMode::JsonSchema,
//!     ..OpenAiConfig::new("http://localhost:11434/v1")
//! })?;
//! // OpenAI, with the key read from OPENAI_API_KEY.
//! let openai = OpenAiLlm::new(OpenAiConfig {
//!     api_key_env: Some("OPENAI_API_KEY".into()),
//!     ..OpenAiConfig::new("https://api.openai.com/v1")
//! })?;
//! # Ok(()) }
//! ```
//!
//! - **Structured output** (judges) in one of three [`StructuredMode`]s: a forced tool call,
//!   `response_format` with a JSON schema, or a JSON object found in plain text. Whatever
//!   the mode, the pipeline validates the value against the rubric.
//! - **Usage**: prompt tokens served from the provider's prompt cache are reported as cache
//!   reads, the rest as input.
//! - **Errors** map onto [`LlmError`](socratic_core::llm::LlmError): 429 is throttled, with
//!   the delay from `retry-after`, `retry-after-ms` or the rate-limit reset headers; 408, 5xx
//!   and connection failures are transient; 401 and 403 are access denied and name the
//!   environment variable of the key; context-length errors are their own kind; an unknown
//!   model is not-found. The client never retries: the retry decorator owns that.
//! - **The API key** is read from the environment variable the configuration names, once,
//!   and is never written anywhere: not to the catalog, the results or a log.

mod batch;
mod client;
mod config;
mod error;
mod stream;
mod wire;

pub use batch::{METADATA_KEY, OpenAiBatchApi};
pub use client::OpenAiLlm;
pub use config::{ConfigError, OpenAiConfig};
pub use error::parse_duration;
pub use socratic_core::llm::{StructuredMode, TokenLimitField};
