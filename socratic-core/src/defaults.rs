//! The default catalog shipped with the library: the ASE v1 rubric, the tutor, student and
//! judge prompts, and the eight starter scenarios. They are data files embedded at compile time
//! (`socratic-core/data/`), parsed and validated like any user-supplied entity.

use crate::entity::{
    EntityError, Model, Prompt, PromptKind, Rubric, Scenario, from_json, list_from_json,
};
use crate::id::{PromptId, RubricId};
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
    /// The eight starter scenarios.
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
    use crate::entity::{Validate, Vector};

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
        assert_eq!(defaults.scenarios.len(), 8);
        let per_vector = |v: Vector| defaults.scenarios.iter().filter(|s| s.vector == v).count();
        assert_eq!(
            (
                per_vector(Vector::Elenchus),
                per_vector(Vector::Maieutics),
                per_vector(Vector::Aporia)
            ),
            (2, 2, 4)
        );
        for scenario in &defaults.scenarios {
            let prefix = match scenario.vector {
                Vector::Elenchus => "EL-",
                Vector::Maieutics => "MAI-",
                Vector::Aporia => "APO-",
            };
            assert!(
                scenario.id.as_str().starts_with(prefix),
                "{} matches its vector",
                scenario.id
            );
            assert!(
                scenario.student_replies.len() >= 3,
                "{} scripts three replies",
                scenario.id
            );
        }
    }

    #[test]
    fn the_tutor_prompt_carries_no_answer_key() {
        let defaults = Defaults::load().expect("defaults load");
        for scenario in &defaults.scenarios {
            assert!(!defaults.tutor_prompt.body.contains(&scenario.key_conflict));
        }
    }
}
