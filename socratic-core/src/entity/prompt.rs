use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate, require_text};
use crate::id::PromptId;

/// What a prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    /// The system prompt of the model under test.
    #[serde(alias = "tutor")]
    SocraticTutor,
    /// The system prompt of a simulated student.
    Student,
    /// The system prompt of a judge.
    Judge,
}

/// A versioned system prompt (the PROMPT entity). Immutable once stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// Stable id; a new version of a prompt gets a new id.
    pub id: PromptId,
    /// Which role the prompt is for.
    pub kind: PromptKind,
    /// Short human-readable title.
    pub title: String,
    /// The prompt text.
    pub body: String,
}

impl Validate for Prompt {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        require_text(&mut problems, "title", &self.title);
        require_text(&mut problems, "body", &self.body);
        problems.into_result()
    }
}
