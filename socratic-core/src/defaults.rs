//! The default catalog shipped with the library: the ASE v1 rubric, the tutor, student and
//! judge prompts, and the scenario bank (48 scenarios, 16 per vector, of which eight form the
//! quick starter set). They are data files embedded at compile time (`socratic-core/data/`),
//! parsed and validated like any user-supplied entity.

use crate::entity::{
    EntityError, Model, Prompt, PromptKind, Rubric, Scenario, from_json, list_from_json,
};
use crate::id::{PromptId, RubricId, ScenarioId};
use crate::repository::{PutOutcome, RepoError, Repository};

const RUBRIC_JSON: &str = include_str!("../data/rubric-ase-v1.json");
const SCENARIOS_JSON: &str = include_str!("../data/scenarios.json");
const TUTOR_PROMPT: &str = include_str!("../data/prompts/socratic-tutor-v1.md");
const STUDENT_PROMPT: &str = include_str!("../data/prompts/student-v1.md");
const JUDGE_PROMPT: &str = include_str!("../data/prompts/judge-v1.md");

/// Id of the default rubric.
pub const RUBRIC_ID: &str = "ase-v1";
/// Id of the default tutor prompt.
pub const TUTOR_PROMPT_ID: &str = "socratic-tutor-v1";
/// Id of the default student prompt.
pub const STUDENT_PROMPT_ID: &str = "student-v1";
/// Id of the default judge prompt.
pub const JUDGE_PROMPT_ID: &str = "judge-v1";

/// The scenarios of the starter set, the default offline benchmark: two per vector from the
/// first version of the bank, and four aporia scenarios.
pub const STARTER_SCENARIOS: [&str; 8] = [
    "EL-ETH-UTIL-DEON-01",
    "EL-CIV-FREE-HARM-01",
    "MAI-BIO-CRISPR-01",
    "MAI-ECO-INFL-01",
    "APO-PHY-HEAT-TEMP-01",
    "APO-BIO-GENE-DETERM-01",
    "APO-BIO-EVOL-LAM-01",
    "APO-PHY-QUANT-OBS-01",
];

/// A named set of the built-in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScenarioSet {
    /// The eight starter scenarios: quick, and enough to see the pipeline work, but too few
    /// to separate more than a few tutors (see docs/statistics.md).
    #[default]
    Starter,
    /// The whole bank: 48 scenarios, 16 per vector, over 15 subjects and three levels.
    Full,
}

impl ScenarioSet {
    /// Every set.
    pub const ALL: [ScenarioSet; 2] = [ScenarioSet::Starter, ScenarioSet::Full];

    /// The set's name: `starter` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioSet::Starter => "starter",
            ScenarioSet::Full => "full",
        }
    }
}

impl std::fmt::Display for ScenarioSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScenarioSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| format!("unknown scenario set {s:?}; the sets are starter and full"))
    }
}

/// The default catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The ASE v1 rubric.
    pub rubric: Rubric,
    /// The tutor prompt.
    pub tutor_prompt: Prompt,
    /// The student prompt.
    pub student_prompt: Prompt,
    /// The judge prompt.
    pub judge_prompt: Prompt,
    /// The whole scenario bank; [`Defaults::scenario_set`] picks a named subset.
    pub scenarios: Vec<Scenario>,
}

fn prompt(id: &str, kind: PromptKind, title: &str, body: &str) -> Result<Prompt, EntityError> {
    let id = PromptId::new(id).map_err(|e| EntityError::Invalid {
        entity: "prompt",
        problems: {
            let mut p = crate::entity::Problems::new();
            p.push("id", e.to_string());
            p
        },
    })?;
    Ok(Prompt {
        id,
        kind,
        title: title.to_owned(),
        body: body.trim().to_owned(),
    })
}

impl Defaults {
    /// Parses and validates the embedded data.
    pub fn load() -> Result<Self, EntityError> {
        Ok(Self {
            rubric: from_json("rubric", RUBRIC_JSON)?,
            tutor_prompt: prompt(
                TUTOR_PROMPT_ID,
                PromptKind::SocraticTutor,
                "Non-directive Socratic tutor",
                TUTOR_PROMPT,
            )?,
            student_prompt: prompt(
                STUDENT_PROMPT_ID,
                PromptKind::Student,
                "In-character student",
                STUDENT_PROMPT,
            )?,
            judge_prompt: prompt(
                JUDGE_PROMPT_ID,
                PromptKind::Judge,
                "Per-turn rubric judge",
                JUDGE_PROMPT,
            )?,
            scenarios: list_from_json("scenario", SCENARIOS_JSON)?,
        })
    }

    /// The scenarios of a named set, in bank order.
    pub fn scenario_set(&self, set: ScenarioSet) -> Vec<&Scenario> {
        self.scenarios
            .iter()
            .filter(|s| match set {
                ScenarioSet::Starter => STARTER_SCENARIOS.contains(&s.id.as_str()),
                ScenarioSet::Full => true,
            })
            .collect()
    }

    /// The ids of a named set's scenarios, in bank order.
    pub fn scenario_ids(&self, set: ScenarioSet) -> Vec<ScenarioId> {
        self.scenario_set(set)
            .into_iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// The default rubric's id.
    pub fn rubric_id(&self) -> &RubricId {
        &self.rubric.id
    }

    /// Stores every default entity. Idempotent: entities already stored with the same content
    /// are left alone; different content under a default id is a conflict.
    pub async fn install(&self, repository: &Repository) -> Result<usize, RepoError> {
        let mut created = 0;
        let mut count =
            |outcome: PutOutcome| created += usize::from(outcome == PutOutcome::Created);
        count(repository.put_catalog(&self.rubric).await?);
        for prompt in [&self.tutor_prompt, &self.student_prompt, &self.judge_prompt] {
            count(repository.put_catalog(prompt).await?);
        }
        for scenario in &self.scenarios {
            count(repository.put_catalog(scenario).await?);
        }
        Ok(created)
    }
}

/// Stores the embedded defaults and `models` in `repository`: what a local pipeline does
/// before its first manifest. Idempotent.
pub async fn install_catalog(repository: &Repository, models: &[Model]) -> Result<(), RepoError> {
    let defaults = Defaults::load().map_err(|e| RepoError::Corrupt {
        key: crate::store::Key::new("defaults", "embedded"),
        message: e.to_string(),
    })?;
    defaults.install(repository).await?;
    for model in models {
        repository.put_catalog(model).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Validate;

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let defaults = Defaults::load().expect("defaults load");
        assert_eq!(defaults.rubric.id.as_str(), RUBRIC_ID);
        let dims: Vec<_> = defaults
            .rubric
            .dimensions
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(
            dims,
            [
                "pedagogical_stance",
                "conceptual_fidelity",
                "persona_adaptation",
                "dialectical_progress"
            ]
        );
        for dim in &defaults.rubric.dimensions {
            let scores: Vec<u8> = dim.anchors.iter().map(|a| a.score).collect();
            assert_eq!(scores, [1, 3, 5], "{} has anchors for 1, 3 and 5", dim.name);
        }
        assert_eq!(defaults.rubric.pass_threshold, 3.5);
        assert_eq!(defaults.rubric.violations.len(), 7);
        assert!(
            defaults
                .rubric
                .flags
                .iter()
                .any(|f| f.name == crate::entity::REVEALS_ANSWER_FLAG)
        );
        for prompt in [
            &defaults.tutor_prompt,
            &defaults.student_prompt,
            &defaults.judge_prompt,
        ] {
            prompt.validate().expect("prompt validates");
        }
        // The scenario bank has its own schema test: tests/scenario_bank.rs.
        assert_eq!(defaults.scenario_set(ScenarioSet::Starter).len(), 8);
    }

    #[test]
    fn the_tutor_prompt_carries_no_answer_key() {
        let defaults = Defaults::load().expect("defaults load");
        for scenario in &defaults.scenarios {
            assert!(!defaults.tutor_prompt.body.contains(&scenario.key_conflict));
        }
    }
}
