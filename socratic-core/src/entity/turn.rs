use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::id::{ModelId, RunId};
use crate::llm::{Role, StopReason, Usage};

use super::validation::{Problems, Validate, require_text};

/// What one model call cost and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// The role the call played.
    pub role: Role,
    /// The catalog model called.
    pub model: ModelId,
    /// Tokens used.
    pub usage: Usage,
    /// Wall time of the call in milliseconds.
    pub latency_ms: u64,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Answered from the response cache: no model was called and nothing was spent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Answered through the provider's batch interface, at its batch prices.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batched: bool,
}

/// One tutor turn and the student's reply to it (the TURN entity). Written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The run.
    pub run: RunId,
    /// Turn number, from 1.
    pub index: u32,
    /// What the tutor said.
    pub tutor_text: String,
    /// The tutor call.
    pub tutor_call: CallRecord,
    /// The student's reply; `None` after the last turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_text: Option<String>,
    /// The student call; `None` when scripted or after the last turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_call: Option<CallRecord>,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl Validate for Turn {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        problems.check(self.index >= 1, "index", "turns are numbered from 1");
        require_text(&mut problems, "tutor_text", &self.tutor_text);
        problems.into_result()
    }
}
