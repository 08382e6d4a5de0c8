//! How to reach one OpenAI-compatible server.

use std::time::Duration;

use socratic_core::llm::{StructuredMode, TokenLimitField};

/// The settings of one [`OpenAiLlm`](crate::OpenAiLlm).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// The API root, up to and including `/v1` (e.g. `https://api.openai.com/v1`);
    /// `/chat/completions` is appended.
    pub base_url: String,
    /// The environment variable holding the API key; `None` for servers without keys.
    pub api_key_env: Option<String>,
    /// How structured output is requested.
    pub structured: StructuredMode,
    /// Which field carries `max_tokens`.
    pub token_limit_field: TokenLimitField,
    /// Time allowed for a whole call; with `stream`, counted from the first streamed byte.
    pub timeout: Duration,
    /// Stream the answer (`stream: true`), so that the call's `timeout` starts at its first
    /// byte: time spent waiting in a busy server's queue is bounded by `first_token_timeout`
    /// instead, and is not a failure.
    pub stream: bool,
    /// With `stream`, time allowed until the first byte of the answer (the server's queue and
    /// the prompt's processing).
    pub first_token_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
}

impl OpenAiConfig {
    /// A server at `base_url` with no key, forced tool calls, no streaming, and timeouts of
    /// 120 s per call, 600 s to a streamed answer's first byte, and 10 s to connect.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key_env: None,
            structured: StructuredMode::default(),
            token_limit_field: TokenLimitField::default(),
            timeout: Duration::from_secs(120),
            stream: false,
            first_token_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The environment variable that should hold the API key is unset or empty.
    #[error("the API key variable {variable} is not set (export {variable}=… first)")]
    MissingKey {
        /// Its name.
        variable: String,
    },
    /// The base URL is not an http(s) URL.
    #[error("base_url {url:?} is not an http:// or https:// URL")]
    BadBaseUrl {
        /// What was given.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {message}")]
    Http {
        /// What failed.
        message: String,
    },
}
