use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate};
use crate::canonical::ContentHash;
use crate::clock::Timestamp;
use crate::id::{ManifestId, ModelId, PromptId, RubricId, ScenarioId};

/// A model and the sampling settings it runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The catalog model.
    pub model: ModelId,
    /// Sampling temperature in `[0, 1]`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn default_temperature() -> f64 {
    0.7
}

/// Who answers the tutor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentConfig {
    /// The student model; by default it should not be one of the tutors, since a model answering
    /// its own questions flatters itself.
    pub model: ModelId,
    /// Sampling temperature in `[0, 1]`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// The student prompt.
    pub prompt: PromptId,
}

/// What a user posts to plan a batch of runs. Its canonical JSON hash makes posting it twice a
/// no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRequest {
    /// The tutor prompt (kind `socratic_tutor`).
    pub tutor_prompt: PromptId,
    /// The judge prompt (kind `judge`).
    pub judge_prompt: PromptId,
    /// The rubric the judges score against.
    pub rubric: RubricId,
    /// The scenarios every tutor runs.
    pub scenarios: Vec<ScenarioId>,
    /// The models under test.
    pub tutors: Vec<ModelConfig>,
    /// The simulated student; `None` uses each scenario's scripted replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<StudentConfig>,
    /// One or more judges.
    pub judges: Vec<ModelConfig>,
    /// Tutor turns per run.
    #[serde(default = "default_turns")]
    pub turns: u32,
    /// Runs per tutor × scenario.
    #[serde(default = "default_repetitions")]
    pub repetitions: u32,
    /// Output token limit per call.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Free-form label shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Judge the dialogues of this earlier manifest again instead of running new ones: no
    /// tutor or student is called, and the tutors, scenarios, student, turns and repetitions
    /// must be the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejudge_of: Option<ManifestId>,
    /// Let a tutor also be a judge. Refused by default: a model scoring its own dialogues
    /// favours them. When allowed, the reports flag it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_self_judging: bool,
}

fn default_turns() -> u32 {
    3
}
fn default_repetitions() -> u32 {
    1
}
fn default_max_tokens() -> u32 {
    512
}

/// The most turns a run may have; turn numbers are zero-padded to three digits in keys.
pub const MAX_TURNS: u32 = 999;

impl ManifestRequest {
    /// How many runs this plans: tutors × scenarios × repetitions.
    pub fn run_count(&self) -> u64 {
        self.tutors.len() as u64 * self.scenarios.len() as u64 * u64::from(self.repetitions)
    }
}

impl Validate for ManifestRequest {
    /// Checks the request's own shape. References to the catalog are checked by the planner,
    /// which reports them in the same list.
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        problems.check(
            !self.scenarios.is_empty(),
            "scenarios",
            "must list at least one scenario",
        );
        problems.check(
            !self.tutors.is_empty(),
            "tutors",
            "must list at least one tutor model",
        );
        problems.check(
            !self.judges.is_empty(),
            "judges",
            "must list at least one judge model",
        );
        problems.check(
            (1..=MAX_TURNS).contains(&self.turns),
            "turns",
            format!("must be between 1 and {MAX_TURNS}, got {}", self.turns),
        );
        problems.check(self.repetitions >= 1, "repetitions", "must be at least 1");
        problems.check(self.max_tokens >= 1, "max_tokens", "must be at least 1");
        let temperature_ok = |t: f64| (0.0..=1.0).contains(&t);
        for (i, tutor) in self.tutors.iter().enumerate() {
            problems.check(
                temperature_ok(tutor.temperature),
                format!("tutors[{i}].temperature"),
                format!("must lie in [0, 1], got {}", tutor.temperature),
            );
        }
        for (i, judge) in self.judges.iter().enumerate() {
            problems.check(
                temperature_ok(judge.temperature),
                format!("judges[{i}].temperature"),
                format!("must lie in [0, 1], got {}", judge.temperature),
            );
            problems.check(
                self.allow_self_judging || !self.tutors.iter().any(|t| t.model == judge.model),
                format!("judges[{i}]"),
                format!(
                    "{} is also a tutor, and a model judging its own tutoring favours it: use another judge, or set allow_self_judging",
                    judge.model
                ),
            );
        }
        if let Some(student) = &self.student {
            problems.check(
                temperature_ok(student.temperature),
                "student.temperature",
                format!("must lie in [0, 1], got {}", student.temperature),
            );
        }
        for (field, ids) in [
            (
                "scenarios",
                self.scenarios
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
            (
                "tutors",
                self.tutors.iter().map(|t| t.model.to_string()).collect(),
            ),
            (
                "judges",
                self.judges.iter().map(|j| j.model.to_string()).collect(),
            ),
        ] {
            let mut seen = BTreeSet::new();
            for id in ids {
                if !seen.insert(id.clone()) {
                    problems.push(field, format!("lists {id} twice"));
                }
            }
        }
        problems.into_result()
    }
}

/// A planned batch of runs (the MANIFEST entity). Immutable once stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Its id.
    pub id: ManifestId,
    /// SHA-256 of the request's canonical JSON.
    pub hash: ContentHash,
    /// What was asked for.
    pub request: ManifestRequest,
    /// Content hashes of every catalog entity the runs use, by key (`PROMPT#…`, `SEED#…`, …),
    /// so results can be traced to exactly what produced them.
    pub catalog_hashes: std::collections::BTreeMap<String, ContentHash>,
    /// Number of runs planned.
    pub run_count: u64,
    /// When it was planned.
    pub created_at: Timestamp,
}

impl Validate for Manifest {
    fn validate(&self) -> Result<(), Problems> {
        self.request.validate()
    }
}
