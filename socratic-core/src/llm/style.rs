//! How a chat API is asked for structured output and told its output limit: settings of
//! OpenAI-compatible servers, kept here so configuration can name them without the client.

use serde::{Deserialize, Serialize};

/// How a request for structured output is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredMode {
    /// One function tool with the schema as its parameters, and `tool_choice` forcing it.
    /// OpenAI, vLLM (with a tool parser), Groq, Together, OpenRouter and Anthropic's endpoint
    /// support it.
    #[default]
    Tools,
    /// `response_format: {"type": "json_schema", …}`: the server constrains the output to the
    /// schema. OpenAI, Ollama, vLLM, the llama.cpp server and LM Studio support it.
    JsonSchema,
    /// The schema goes into the system prompt and the first JSON object in the answer is
    /// taken. Works with any server; the least reliable.
    Text,
}

/// Which request field carries the output token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenLimitField {
    /// `max_tokens`: understood by every compatible server.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models.
    MaxCompletionTokens,
}
