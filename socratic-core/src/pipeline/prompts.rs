//! What each role is shown. The tutor never sees the scenario's answer key (its key conflict
//! and goals); the student simulator and the judge do.

use std::fmt::Write;
use std::sync::Arc;

use crate::entity::{Model, Prompt, Rubric, Scenario, Turn};
use crate::llm::{ConverseRequest, Message, Role, StructuredOutput, SystemPart};

/// The heading before the tutor turn a judge scores.
pub const JUDGE_TURN_MARKER: &str = "TUTOR TURN TO SCORE";

/// Sampling settings of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Temperature in `[0, 1]`.
    pub temperature: f64,
    /// Output token limit.
    pub max_tokens: u32,
}

/// Name of the judge's structured output (a tool name on tool-use providers).
pub const JUDGMENT_TOOL: &str = "record_judgment";

/// The tutor's request for turn `turns.len() + 1`: the tutor prompt, the vector's objective and
/// the persona — never the key conflict or the goals — and the dialogue so far.
pub fn tutor_request(
    model: &Model,
    sampling: Sampling,
    prompt: &Prompt,
    scenario: &Scenario,
    turns: &[Turn],
) -> ConverseRequest {
    let briefing = format!(
        "Objective ({}): {}\n\nThe student: {}",
        scenario.vector,
        scenario.vector.objective(),
        scenario.persona
    );
    let mut messages = vec![Message::user(&scenario.opening_statement)];
    for turn in turns {
        messages.push(Message::assistant(&turn.tutor_text));
        if let Some(reply) = &turn.student_text {
            messages.push(Message::user(reply));
        }
    }
    ConverseRequest {
        model: model.provider_model_id.clone(),
        role: Role::Tutor,
        system: vec![SystemPart::cached(&prompt.body), SystemPart::text(briefing)],
        messages,
        structured_output: None,
        temperature: Some(sampling.temperature),
        max_tokens: sampling.max_tokens,
        stop: Vec::new(),
        sample: 0,
    }
}

/// The simulated student's request to answer `tutor_text`: the student prompt, who they are,
/// what they said first and the belief they hold, and the dialogue from their side.
pub fn student_request(
    model: &Model,
    sampling: Sampling,
    prompt: &Prompt,
    scenario: &Scenario,
    previous: &[Turn],
    tutor_text: &str,
) -> ConverseRequest {
    let mut character = format!(
        "Who you are: {}\nWhat you said first: {}\nWhat you believe, without seeing the problem: {}\n",
        scenario.persona, scenario.opening_statement, scenario.key_conflict
    );
    character.push_str("Where a good tutor could lead you, step by step, and only if led:\n");
    for goal in &scenario.goals {
        let _ = writeln!(character, "- {goal}");
    }
    let mut messages = Vec::new();
    for turn in previous {
        messages.push(Message::user(&turn.tutor_text));
        if let Some(reply) = &turn.student_text {
            messages.push(Message::assistant(reply));
        }
    }
    messages.push(Message::user(tutor_text));
    ConverseRequest {
        model: model.provider_model_id.clone(),
        role: Role::Student,
        system: vec![
            SystemPart::cached(&prompt.body),
            SystemPart::text(character),
        ],
        messages,
        structured_output: None,
        temperature: Some(sampling.temperature),
        max_tokens: sampling.max_tokens,
        stop: Vec::new(),
        sample: 0,
    }
}

/// The transcript up to and including tutor turn `turn`, with that turn set apart under
/// [`JUDGE_TURN_MARKER`].
pub fn transcript(scenario: &Scenario, turns: &[Turn], turn: u32) -> String {
    let mut out = format!("TRANSCRIPT\nStudent: {}\n", scenario.opening_statement);
    for t in turns.iter().filter(|t| t.index < turn) {
        let _ = writeln!(out, "Tutor (turn {}): {}", t.index, t.tutor_text);
        if let Some(reply) = &t.student_text {
            let _ = writeln!(out, "Student: {reply}");
        }
    }
    if let Some(scored) = turns.iter().find(|t| t.index == turn) {
        let _ = write!(
            out,
            "\n{JUDGE_TURN_MARKER} (turn {turn}):\n{}\n",
            scored.tutor_text
        );
    }
    out
}

/// A judge's request for turn `turn`: the judge prompt and the rubric (both cached), the
/// scenario with its answer key, and the transcript; the output must match the rubric's schema.
pub fn judge_request(
    model: &Model,
    sampling: Sampling,
    prompt: &Prompt,
    rubric: &Rubric,
    scenario: &Scenario,
    turns: &[Turn],
    turn: u32,
) -> ConverseRequest {
    JudgeBrief::new(prompt, rubric, scenario).into_request(model, sampling, scenario, turns, turn)
}

/// What every judge request of a run shares: the system parts and the output schema. The
/// judge stage builds it once per run rather than once per call.
#[derive(Debug, Clone)]
pub struct JudgeBrief {
    system: Vec<SystemPart>,
    output: StructuredOutput,
}

impl JudgeBrief {
    /// The judge prompt and the rubric (both cached), the scenario with its answer key, and
    /// the rubric's output schema.
    pub fn new(prompt: &Prompt, rubric: &Rubric, scenario: &Scenario) -> Self {
        let mut answer_key = format!(
            "SCENARIO {} ({}): {}\nVector: {} — {}\nStudent: {}\nKey conflict: {}\nGoals:\n",
            scenario.id,
            scenario.vector,
            scenario.title,
            scenario.vector,
            scenario.vector.objective(),
            scenario.persona,
            scenario.key_conflict
        );
        for goal in &scenario.goals {
            let _ = writeln!(answer_key, "- {goal}");
        }
        Self {
            system: vec![
                SystemPart::cached(&prompt.body),
                SystemPart::cached(rubric.render()),
                SystemPart::text(answer_key),
            ],
            output: StructuredOutput {
                name: JUDGMENT_TOOL.to_owned(),
                description: "Record the judgment of one tutor turn.".to_owned(),
                schema: Arc::new(rubric.output_schema()),
            },
        }
    }

    /// The request for turn `turn` of `turns`, a dialogue of `scenario`.
    pub fn request(
        &self,
        model: &Model,
        sampling: Sampling,
        scenario: &Scenario,
        turns: &[Turn],
        turn: u32,
    ) -> ConverseRequest {
        self.clone()
            .into_request(model, sampling, scenario, turns, turn)
    }

    /// [`request`](Self::request), for a brief used once.
    fn into_request(
        self,
        model: &Model,
        sampling: Sampling,
        scenario: &Scenario,
        turns: &[Turn],
        turn: u32,
    ) -> ConverseRequest {
        let task = format!(
            "{}\nScore tutor turn {turn} against the rubric and record your judgment.",
            transcript(scenario, turns, turn)
        );
        ConverseRequest {
            model: model.provider_model_id.clone(),
            role: Role::Judge,
            system: self.system,
            messages: vec![Message::user(task)],
            structured_output: Some(self.output),
            temperature: Some(sampling.temperature),
            max_tokens: sampling.max_tokens,
            stop: Vec::new(),
            sample: 0,
        }
    }
}
