use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rubric::{Rubric, Violation};
use super::turn::CallRecord;
use super::validation::{Problems, Validate};
use crate::clock::Timestamp;
use crate::id::{ModelId, RunId};

/// A judge's validated scores for one tutor turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Score per rubric dimension.
    pub scores: BTreeMap<String, u8>,
    /// Value per rubric flag.
    pub flags: BTreeMap<String, bool>,
    /// Violations observed.
    pub violations: Vec<Violation>,
    /// Short reasoning with quoted evidence.
    pub rationale: String,
}

impl Verdict {
    /// Reads a judge's structured output and checks it against `rubric`: every dimension
    /// present with an integer on its scale, every flag present as a boolean, violations from
    /// the rubric's list, a rationale, and nothing else. Every problem is reported.
    pub fn from_output(output: &Value, rubric: &Rubric) -> Result<Verdict, Problems> {
        let mut problems = Problems::new();
        let Some(object) = output.as_object() else {
            problems.push("$", "judge output must be a JSON object");
            return Err(problems);
        };
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "scores" | "flags" | "violations" | "rationale"
            ) {
                problems.push(key.as_str(), "unknown field");
            }
        }
        let mut scores = BTreeMap::new();
        match object.get("scores").and_then(Value::as_object) {
            None => problems.push("scores", "missing or not an object"),
            Some(given) => {
                for dim in &rubric.dimensions {
                    let field = format!("scores.{}", dim.name);
                    match given.get(&dim.name).and_then(Value::as_i64) {
                        None => problems.push(field, "missing or not an integer"),
                        Some(n) if !dim.scale.contains(n) => problems.push(
                            field,
                            format!(
                                "{n} is outside the scale {}..={}",
                                dim.scale.min, dim.scale.max
                            ),
                        ),
                        Some(n) => {
                            scores.insert(dim.name.clone(), u8::try_from(n).unwrap_or(u8::MAX));
                        }
                    }
                }
                for name in given.keys() {
                    if rubric.dimension(name).is_none() {
                        problems.push(format!("scores.{name}"), "not a dimension of the rubric");
                    }
                }
            }
        }
        let mut flags = BTreeMap::new();
        match object.get("flags").and_then(Value::as_object) {
            None if rubric.flags.is_empty() => {}
            None => problems.push("flags", "missing or not an object"),
            Some(given) => {
                for flag in &rubric.flags {
                    match given.get(&flag.name).and_then(Value::as_bool) {
                        None => problems
                            .push(format!("flags.{}", flag.name), "missing or not a boolean"),
                        Some(b) => {
                            flags.insert(flag.name.clone(), b);
                        }
                    }
                }
                for name in given.keys() {
                    if !rubric.flags.iter().any(|f| &f.name == name) {
                        problems.push(format!("flags.{name}"), "not a flag of the rubric");
                    }
                }
            }
        }
        let mut violations = Vec::new();
        match object.get("violations").and_then(Value::as_array) {
            None => problems.push("violations", "missing or not an array"),
            Some(given) => {
                for (i, item) in given.iter().enumerate() {
                    match serde_json::from_value::<Violation>(item.clone()) {
                        Ok(v) if rubric.violations.contains(&v) => {
                            if !violations.contains(&v) {
                                violations.push(v);
                            }
                        }
                        _ => problems.push(
                            format!("violations[{i}]"),
                            format!("{item} is not a violation the rubric allows"),
                        ),
                    }
                }
            }
        }
        let rationale = match object.get("rationale").and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => text.to_owned(),
            _ => {
                problems.push("rationale", "missing or empty");
                String::new()
            }
        };
        problems.into_result()?;
        violations.sort();
        Ok(Verdict {
            scores,
            flags,
            violations,
            rationale,
        })
    }
}

/// The result of judging a turn: scores, or the reason there are none. Never a silent zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JudgmentOutcome {
    /// The judge's output passed validation.
    Scored(Verdict),
    /// Validation failed on every attempt; excluded from means, counted and shown.
    Unscored {
        /// Why, e.g. the validation problems of the last attempt.
        reason: String,
    },
}

/// One judge's judgment of one tutor turn (the JUDGE entity). Written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judgment {
    /// The run.
    pub run: RunId,
    /// The turn judged, from 1.
    pub turn: u32,
    /// The judge model.
    pub judge: ModelId,
    /// Scores or the reason there are none.
    pub outcome: JudgmentOutcome,
    /// Judge calls made, including invalid ones.
    pub attempts: u32,
    /// Every judge call made for this judgment.
    pub calls: Vec<CallRecord>,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl Judgment {
    /// The verdict, when scored.
    pub fn verdict(&self) -> Option<&Verdict> {
        match &self.outcome {
            JudgmentOutcome::Scored(v) => Some(v),
            JudgmentOutcome::Unscored { .. } => None,
        }
    }
}

impl Validate for Judgment {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        problems.check(self.turn >= 1, "turn", "turns are numbered from 1");
        problems.check(self.attempts >= 1, "attempts", "at least one call is made");
        if let JudgmentOutcome::Unscored { reason } = &self.outcome {
            problems.check(!reason.trim().is_empty(), "outcome.reason", "must say why");
        }
        problems.into_result()
    }
}
