//! The Messages API client: `POST {base_url}/messages`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde_json::Value;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError};

use crate::messages::{self, excerpt};

/// The API version every request names (`anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";

/// How to reach Anthropic's API.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicConfig {
    /// The API root, up to and including `/v1`.
    pub base_url: String,
    /// The environment variable holding the API key.
    pub api_key_env: String,
    /// Time allowed for a whole call.
    pub timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
}

impl AnthropicConfig {
    /// `https://api.anthropic.com/v1` with the key in `ANTHROPIC_API_KEY`, 120 s a call and
    /// 10 s to connect.
    pub fn new() -> Self {
        Self {
            base_url: "https://api.anthropic.com/v1".to_owned(),
            api_key_env: "ANTHROPIC_API_KEY".to_owned(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key variable is unset or empty.
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

/// An [`LlmClient`] over Anthropic's Messages API.
///
/// - System parts become system blocks; a part marked `cache_point` gets
///   `cache_control: {"type": "ephemeral"}`, so the repeated prefix (the prompt, the rubric)
///   is read from Anthropic's prompt cache at the cache-read price.
/// - Structured output is a forced tool call whose input is the value.
/// - Usage: `input_tokens` (uncached), `cache_read_input_tokens` and
///   `cache_creation_input_tokens` become input, cache-read and cache-write tokens.
/// - Errors: 429 is throttled (with `retry-after`), 529 (overloaded) and 5xx are transient,
///   401/403 name the key variable, "prompt is too long" is a context-window error.
#[derive(Clone)]
pub struct AnthropicLlm {
    http: reqwest::Client,
    base: String,
    api_key: String,
    config: AnthropicConfig,
}

impl std::fmt::Debug for AnthropicLlm {
    // The key is left out on purpose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicLlm")
            .field("base", &self.base)
            .field("api_key_env", &self.config.api_key_env)
            .finish_non_exhaustive()
    }
}

impl AnthropicLlm {
    /// A client reading its key from the environment now.
    pub fn new(config: AnthropicConfig) -> Result<Self, ConfigError> {
        Self::with_environment(config, |name| std::env::var(name).ok())
    }

    /// Like [`AnthropicLlm::new`], looking variables up with `lookup`.
    pub fn with_environment(
        config: AnthropicConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let api_key = lookup(&config.api_key_env)
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ConfigError::MissingKey {
                variable: config.api_key_env.clone(),
            })?;
        let base = config.base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::BadBaseUrl {
                url: config.base_url.clone(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("socratic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Http {
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            base,
            api_key,
            config,
        })
    }

    /// The API root.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `builder` with the key and version headers.
    pub(crate) fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The answer in a Messages API response body (a live one, or a batch's succeeded
    /// result).
    pub(crate) fn answer(
        &self,
        request: &ConverseRequest,
        message: &Value,
        latency: Duration,
    ) -> Result<ConverseResponse, LlmError> {
        messages::answer(&self.base, request, message, latency)
    }

    /// The error of a non-success answer: its status, headers and body.
    pub(crate) fn error(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &str,
        model: &str,
    ) -> LlmError {
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let kind = parsed["error"]["type"].as_str().unwrap_or("");
        let detail = parsed["error"]["message"]
            .as_str()
            .map_or_else(|| excerpt(body), str::to_owned);
        let described = format!("{} answered {status} {kind}: {detail}", self.base);
        match status {
            401 | 403 => LlmError::AccessDenied {
                message: format!(
                    "{} refused the API key from ${} ({status}): {detail}",
                    self.base, self.config.api_key_env
                ),
            },
            404 => LlmError::ModelNotFound {
                model: format!("{model} ({described})"),
            },
            429 => LlmError::Throttled {
                message: described,
                retry_after: headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64),
            },
            400 | 413 if detail.contains("prompt is too long") || status == 413 => {
                LlmError::ContextWindow { message: described }
            }
            400 => LlmError::Validation { message: described },
            408 => LlmError::Timeout { message: described },
            500..=599 => LlmError::Unavailable { message: described },
            _ => LlmError::Other {
                message: described,
                retryable: false,
            },
        }
    }

    fn transport(&self, error: &reqwest::Error) -> LlmError {
        if error.is_timeout() {
            LlmError::Timeout {
                message: format!("{} did not answer in time: {error}", self.base),
            }
        } else {
            LlmError::Unavailable {
                message: format!("{} could not be reached: {error}", self.base),
            }
        }
    }
}

#[async_trait]
impl LlmClient for AnthropicLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        request.check()?;
        let started = Instant::now();
        let response = self
            .authorized(self.http.post(format!("{}/messages", self.base)))
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(messages::body(request).to_string())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| self.transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(self.error(status, &headers, &text, &request.model));
        }
        let message: Value = serde_json::from_str(&text).map_err(|e| LlmError::Other {
            message: format!(
                "{} answered 200 with an unreadable body ({e}): {}",
                self.base,
                excerpt(&text)
            ),
            retryable: true,
        })?;
        self.answer(request, &message, started.elapsed())
    }
}
