//! Deterministic offline models that go through the same [`LlmClient`] path as a real model,
//! structured output included.
//!
//! | provider model id | behaviour |
//! |---|---|
//! | [`SOCRATIC_TUTOR`] | asks one open question per turn built on the student's words |
//! | [`LEAKY_TUTOR`] | Socratic on turn 1, reveals the answer from turn 2 |
//! | [`LECTURER_TUTOR`] | explains at length, ends with "Does that make sense?" |
//! | [`STUDENT`] | holds the misconception until the tutor actually probes it |
//! | [`JUDGE`] | scores the tutor text it is shown (questions, reveals, length, words picked up) |
//! | [`STRICT_JUDGE`] | the same, but a point harsher on persona fit for any turn over 20 words |
//!
//! The judge never reads a model's name: it scores the text in front of it.

mod judge;
mod student;
mod text;
mod tutor;

use std::time::Duration;

use async_trait::async_trait;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::{ManifestRequest, Model, ModelConfig, StudentConfig};
use socratic_core::id::ModelId;
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError, Prices, Usage};

use tutor::TutorStyle;

/// Provider name of the simulated models.
pub const PROVIDER: &str = "simulated";
/// A strong Socratic questioner.
pub const SOCRATIC_TUTOR: &str = "sim-socratic";
/// A tutor that reveals the answer from turn 2.
pub const LEAKY_TUTOR: &str = "sim-leaky";
/// A tutor that lectures.
pub const LECTURER_TUTOR: &str = "sim-lecturer";
/// The simulated student.
pub const STUDENT: &str = "sim-student";
/// The heuristic judge.
pub const JUDGE: &str = "sim-judge";
/// A second, stricter heuristic judge, so inter-judge agreement has something to measure.
pub const STRICT_JUDGE: &str = "sim-judge-strict";

/// The offline models, answering by provider model id. Deterministic: the same request always
/// gets the same answer.
#[derive(Debug, Clone, Default)]
pub struct SimulatedLlm {
    latency: Duration,
}

impl SimulatedLlm {
    /// Models that answer at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Models that take `latency` per call (for throughput benchmarks).
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency }
    }

    /// Catalog entries for the simulated models, priced like a small hosted model so cost
    /// reporting is exercised.
    pub fn catalog() -> Vec<Model> {
        let entry = |id: &str, name: &str, tags: &[&str]| Model {
            id: ModelId::new(id).unwrap_or_else(|_| unreachable!("static ids are valid")),
            provider: PROVIDER.to_owned(),
            provider_model_id: id.to_owned(),
            name: name.to_owned(),
            prices: Prices {
                input: 0.25,
                output: 1.25,
                cache_read: 0.025,
                cache_write: 0.3,
                ..Prices::default()
            },
            active: true,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        };
        vec![
            entry(
                SOCRATIC_TUTOR,
                "Simulated Socratic tutor",
                &["simulated", "tutor"],
            ),
            entry(
                LEAKY_TUTOR,
                "Simulated leaky tutor",
                &["simulated", "tutor"],
            ),
            entry(
                LECTURER_TUTOR,
                "Simulated lecturer",
                &["simulated", "tutor"],
            ),
            entry(STUDENT, "Simulated student", &["simulated", "student"]),
            entry(JUDGE, "Simulated heuristic judge", &["simulated", "judge"]),
            entry(
                STRICT_JUDGE,
                "Simulated strict judge",
                &["simulated", "judge"],
            ),
        ]
    }
}

#[async_trait]
impl LlmClient for SimulatedLlm {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        request.check()?;
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let (text, structured) = match request.model.as_str() {
            SOCRATIC_TUTOR => (tutor::reply(TutorStyle::Socratic, request), None),
            LEAKY_TUTOR => (tutor::reply(TutorStyle::Leaky, request), None),
            LECTURER_TUTOR => (tutor::reply(TutorStyle::Lecturer, request), None),
            STUDENT => (student::reply(request), None),
            JUDGE => (String::new(), Some(judge::judge(request, false)?)),
            STRICT_JUDGE => (String::new(), Some(judge::judge(request, true)?)),
            other => {
                return Err(LlmError::ModelNotFound {
                    model: other.to_owned(),
                });
            }
        };
        let input: u64 = request
            .system
            .iter()
            .map(|p| text::tokens(&p.text))
            .sum::<u64>()
            + request
                .messages
                .iter()
                .map(|m| text::tokens(&m.text))
                .sum::<u64>();
        let cached: u64 = request
            .system
            .iter()
            .filter(|p| p.cache_point)
            .map(|p| text::tokens(&p.text))
            .sum();
        let output = structured
            .as_ref()
            .map_or_else(|| text::tokens(&text), |v| text::tokens(&v.to_string()));
        let usage = Usage {
            input_tokens: input - cached,
            output_tokens: output,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        };
        Ok(crate::answer(text, structured, usage, self.latency))
    }
}

fn model(id: &str) -> ModelId {
    ModelId::new(id).unwrap_or_else(|_| unreachable!("static ids are valid"))
}

/// The default offline benchmark: the eight starter scenarios × the three simulated tutors ×
/// three turns, with the simulated student and judge and the default prompts and rubric.
pub fn simulated_manifest(defaults: &Defaults) -> ManifestRequest {
    ManifestRequest {
        tutor_prompt: defaults.tutor_prompt.id.clone(),
        judge_prompt: defaults.judge_prompt.id.clone(),
        rubric: defaults.rubric.id.clone(),
        scenarios: defaults.scenario_ids(ScenarioSet::Starter),
        tutors: [SOCRATIC_TUTOR, LEAKY_TUTOR, LECTURER_TUTOR]
            .iter()
            .map(|m| ModelConfig {
                model: model(m),
                temperature: 0.7,
            })
            .collect(),
        student: Some(StudentConfig {
            model: model(STUDENT),
            temperature: 0.7,
            prompt: defaults.student_prompt.id.clone(),
        }),
        judges: vec![ModelConfig {
            model: model(JUDGE),
            temperature: 0.0,
        }],
        turns: 3,
        repetitions: 1,
        max_tokens: 512,
        label: Some("Offline benchmark of the simulated tutors".to_owned()),
        rejudge_of: None,
        allow_self_judging: false,
    }
}
