//! An [`LlmClient`](socratic_core::llm::LlmClient) for Anthropic's Messages API, and a
//! [`BatchApi`](socratic_core::llm::BatchApi) for its Message Batches, which answer the same
//! requests at half price within 24 hours.
//!
//! ```no_run
//! # fn demo() -> Result<(), socratic_anthropic::ConfigError> {
//! use socratic_anthropic::{AnthropicBatchApi, AnthropicConfig, AnthropicLlm};
//!
//! // The key is read from ANTHROPIC_API_KEY.
//! let claude = AnthropicLlm::new(AnthropicConfig::new())?;
//! let batches = AnthropicBatchApi::new(claude.clone());
//! # Ok(()) }
//! ```
//!
//! The key is read from the environment variable the configuration names, once, and is
//! never written anywhere.
//!
//! The Messages API's JSON alone ([`messages`]) needs no HTTP client: build without the
//! default `http` feature to use it elsewhere (Claude's batch records on Amazon Bedrock).

#[cfg(feature = "http")]
mod batch;
#[cfg(feature = "http")]
mod client;
pub mod messages;

#[cfg(feature = "http")]
pub use batch::AnthropicBatchApi;
#[cfg(feature = "http")]
pub use client::{API_VERSION, AnthropicConfig, AnthropicLlm, ConfigError};
