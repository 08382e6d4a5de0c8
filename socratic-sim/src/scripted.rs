//! A model that answers from a script, for tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError, Usage};

/// One scripted answer.
#[derive(Debug, Clone)]
enum Scripted {
    Text(String),
    Structured(Value),
    Error(LlmError),
}

/// An [`LlmClient`] that answers from a script, then echoes: each call takes the next scripted
/// answer; once the script is empty, text requests get `"You said: <last user message>"` and
/// structured requests get an empty object. Every request is recorded.
///
/// Cloning shares the script and the record.
#[derive(Debug, Clone, Default)]
pub struct ScriptedLlm {
    inner: Arc<Mutex<ScriptState>>,
}

#[derive(Debug, Default)]
struct ScriptState {
    script: VecDeque<Scripted>,
    requests: Vec<ConverseRequest>,
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

impl ScriptedLlm {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a text answer.
    pub fn push_text(&self, text: impl Into<String>) -> &Self {
        self.lock().script.push_back(Scripted::Text(text.into()));
        self
    }

    /// Queues a structured answer.
    pub fn push_structured(&self, value: Value) -> &Self {
        self.lock().script.push_back(Scripted::Structured(value));
        self
    }

    /// Queues an error.
    pub fn push_error(&self, error: LlmError) -> &Self {
        self.lock().script.push_back(Scripted::Error(error));
        self
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<ConverseRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, ScriptState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl LlmClient for ScriptedLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        request.check()?;
        let next = {
            let mut state = self.lock();
            state.requests.push(request.clone());
            state.script.pop_front()
        };
        let input_tokens = request.system.iter().map(|p| words(&p.text)).sum::<u64>()
            + request.messages.iter().map(|m| words(&m.text)).sum::<u64>();
        let (text, structured) = match next {
            Some(Scripted::Error(e)) => return Err(e),
            Some(Scripted::Text(text)) => (text, None),
            Some(Scripted::Structured(value)) => (String::new(), Some(value)),
            None if request.structured_output.is_some() => {
                (String::new(), Some(Value::Object(Default::default())))
            }
            None => {
                let last = request
                    .messages
                    .last()
                    .map(|m| m.text.as_str())
                    .unwrap_or_default();
                (format!("You said: {last}"), None)
            }
        };
        let output_tokens = if structured.is_some() {
            16
        } else {
            words(&text).max(1)
        };
        let usage = Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        };
        Ok(crate::answer(text, structured, usage, Duration::ZERO))
    }
}
