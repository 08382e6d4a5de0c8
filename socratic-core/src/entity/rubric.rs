use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate, require_text};
use crate::id::RubricId;

/// The integer range of a dimension's scores, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Lowest score.
    pub min: u8,
    /// Highest score.
    pub max: u8,
}

impl Scale {
    /// Whether `score` lies on the scale.
    pub fn contains(&self, score: i64) -> bool {
        i64::from(self.min) <= score && score <= i64::from(self.max)
    }
}

/// What a given score on a dimension looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The score this anchor describes.
    pub score: u8,
    /// What a tutor turn at this score looks like.
    pub description: String,
}

/// One scored dimension of a rubric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Snake-case name used in judge output and summaries, e.g. `pedagogical_stance`.
    pub name: String,
    /// What the dimension measures.
    pub description: String,
    /// The score range.
    pub scale: Scale,
    /// Anchored levels, shown to the judge.
    pub anchors: Vec<Anchor>,
    /// Weight in the turn score; must be positive.
    pub weight: f64,
}

/// A boolean the judge reports on every turn, e.g. `ends_with_question`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagSpec {
    /// Snake-case name.
    pub name: String,
    /// What `true` means.
    pub description: String,
}

/// A violation a judge may report on a tutor turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// Explains instead of asking.
    Lecturing,
    /// A question that tells the student what to answer.
    LeadingQuestion,
    /// Several questions in one turn.
    MultipleQuestions,
    /// Tells the student what to do or conclude.
    AdviceLeak,
    /// A yes/no question where an open one was needed.
    ClosedQuestion,
    /// Leaves the scenario's topic.
    OffTopic,
    /// States the answer the student should reach.
    AnswerReveal,
}

impl Violation {
    /// Every violation.
    pub const ALL: [Violation; 7] = [
        Violation::Lecturing,
        Violation::LeadingQuestion,
        Violation::MultipleQuestions,
        Violation::AdviceLeak,
        Violation::ClosedQuestion,
        Violation::OffTopic,
        Violation::AnswerReveal,
    ];

    /// The snake-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::Lecturing => "lecturing",
            Violation::LeadingQuestion => "leading_question",
            Violation::MultipleQuestions => "multiple_questions",
            Violation::AdviceLeak => "advice_leak",
            Violation::ClosedQuestion => "closed_question",
            Violation::OffTopic => "off_topic",
            Violation::AnswerReveal => "answer_reveal",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scoring rubric (the RUBRIC entity): data, not code, so any rubric a user writes runs.
/// Immutable once stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    /// Stable id, e.g. `ase-v1`.
    pub id: RubricId,
    /// Short title.
    pub title: String,
    /// What the rubric is for, shown to the judge.
    pub description: String,
    /// The scored dimensions; at least one.
    pub dimensions: Vec<Dimension>,
    /// A turn whose weighted score reaches this passes.
    pub pass_threshold: f64,
    /// Per-turn booleans the judge reports.
    pub flags: Vec<FlagSpec>,
    /// The violations the judge may report.
    pub violations: Vec<Violation>,
}

/// The flag that marks a turn revealing the answer; the answer-leak turn is derived from it.
pub const REVEALS_ANSWER_FLAG: &str = "reveals_answer";

impl Rubric {
    /// The dimension called `name`.
    pub fn dimension(&self, name: &str) -> Option<&Dimension> {
        self.dimensions.iter().find(|d| d.name == name)
    }

    /// The weighted mean of `scores` (dimension name → score), or `None` when a dimension is
    /// missing.
    pub fn turn_score(&self, scores: &std::collections::BTreeMap<String, u8>) -> Option<f64> {
        let mut total = 0.0;
        let mut weights = 0.0;
        for dim in &self.dimensions {
            let score = *scores.get(&dim.name)?;
            total += dim.weight * f64::from(score);
            weights += dim.weight;
        }
        (weights > 0.0).then(|| total / weights)
    }
}

fn is_snake_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Validate for Rubric {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        require_text(&mut problems, "title", &self.title);
        problems.check(
            !self.dimensions.is_empty(),
            "dimensions",
            "a rubric needs at least one dimension",
        );
        let mut names = BTreeSet::new();
        let (mut lowest, mut highest) = (u8::MAX, u8::MIN);
        for (i, dim) in self.dimensions.iter().enumerate() {
            let at = |field: &str| format!("dimensions[{i}].{field}");
            problems.check(
                is_snake_name(&dim.name),
                at("name"),
                format!("{:?} must be a snake_case name", dim.name),
            );
            problems.check(
                names.insert(dim.name.as_str()),
                at("name"),
                format!("duplicate dimension {:?}", dim.name),
            );
            require_text(&mut problems, &at("description"), &dim.description);
            problems.check(
                dim.weight.is_finite() && dim.weight > 0.0,
                at("weight"),
                format!("must be a finite number > 0, got {}", dim.weight),
            );
            problems.check(
                dim.scale.min < dim.scale.max,
                at("scale"),
                format!("min {} must be below max {}", dim.scale.min, dim.scale.max),
            );
            lowest = lowest.min(dim.scale.min);
            highest = highest.max(dim.scale.max);
            problems.check(
                !dim.anchors.is_empty(),
                at("anchors"),
                "needs at least one anchor",
            );
            let mut scores = BTreeSet::new();
            for (j, anchor) in dim.anchors.iter().enumerate() {
                let field = format!("dimensions[{i}].anchors[{j}]");
                problems.check(
                    dim.scale.contains(i64::from(anchor.score)),
                    format!("{field}.score"),
                    format!(
                        "{} is outside the scale {}..={}",
                        anchor.score, dim.scale.min, dim.scale.max
                    ),
                );
                problems.check(
                    scores.insert(anchor.score),
                    format!("{field}.score"),
                    format!("duplicate anchor for score {}", anchor.score),
                );
                require_text(
                    &mut problems,
                    &format!("{field}.description"),
                    &anchor.description,
                );
            }
        }
        if !self.dimensions.is_empty() {
            problems.check(
                self.pass_threshold.is_finite()
                    && f64::from(lowest) <= self.pass_threshold
                    && self.pass_threshold <= f64::from(highest),
                "pass_threshold",
                format!(
                    "{} must lie within the scores {lowest}..={highest}",
                    self.pass_threshold
                ),
            );
        }
        let mut flags = BTreeSet::new();
        for (i, flag) in self.flags.iter().enumerate() {
            problems.check(
                is_snake_name(&flag.name),
                format!("flags[{i}].name"),
                format!("{:?} must be a snake_case name", flag.name),
            );
            problems.check(
                flags.insert(flag.name.as_str()),
                format!("flags[{i}].name"),
                format!("duplicate flag {:?}", flag.name),
            );
        }
        let unique: BTreeSet<_> = self.violations.iter().collect();
        problems.check(
            unique.len() == self.violations.len(),
            "violations",
            "lists a violation twice",
        );
        problems.into_result()
    }
}

impl Rubric {
    /// The JSON schema of a judge's output for this rubric: every dimension an integer on its
    /// scale, every flag a boolean, violations from the allowed list, and a rationale.
    pub fn output_schema(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut scores = Map::new();
        for dim in &self.dimensions {
            scores.insert(
                dim.name.clone(),
                json!({
                    "type": "integer",
                    "minimum": dim.scale.min,
                    "maximum": dim.scale.max,
                    "description": dim.description,
                }),
            );
        }
        let mut flags = Map::new();
        for flag in &self.flags {
            flags.insert(
                flag.name.clone(),
                json!({"type": "boolean", "description": flag.description}),
            );
        }
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|d| d.name.as_str()).collect();
        let flag_names: Vec<&str> = self.flags.iter().map(|f| f.name.as_str()).collect();
        let violations: Vec<&str> = self.violations.iter().map(|v| v.as_str()).collect();
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["scores", "flags", "violations", "rationale"],
            "properties": {
                "scores": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": dimension_names,
                    "properties": Value::Object(scores),
                },
                "flags": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": flag_names,
                    "properties": Value::Object(flags),
                },
                "violations": {
                    "type": "array",
                    "items": {"type": "string", "enum": violations},
                },
                "rationale": {
                    "type": "string",
                    "description": "Short reasoning that quotes the tutor's words as evidence.",
                },
            },
        })
    }

    /// The rubric as text for a judge's prompt.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "RUBRIC: {} ({})\n{}\n",
            self.title, self.id, self.description
        );
        for dim in &self.dimensions {
            let _ = write!(
                out,
                "\n## {} (integer {}..={}, weight {})\n{}\n",
                dim.name, dim.scale.min, dim.scale.max, dim.weight, dim.description
            );
            for anchor in &dim.anchors {
                let _ = writeln!(out, "- {}: {}", anchor.score, anchor.description);
            }
        }
        if !self.flags.is_empty() {
            out.push_str("\n## Flags (true or false)\n");
            for flag in &self.flags {
                let _ = writeln!(out, "- {}: {}", flag.name, flag.description);
            }
        }
        if !self.violations.is_empty() {
            let names: Vec<&str> = self.violations.iter().map(|v| v.as_str()).collect();
            let _ = write!(
                out,
                "\n## Violations you may report\n{}\n",
                names.join(", ")
            );
        }
        out
    }
}
