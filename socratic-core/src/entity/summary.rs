use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rubric::Violation;
use super::scenario::Vector;
use super::validation::{Problems, Validate};
use crate::clock::Timestamp;
use crate::id::{ManifestId, ModelId, RubricId, RunId, ScenarioId};
use crate::llm::{Role, Usage};
use crate::stats::{DesignVariance, Estimate, Power};

/// The most disagreeing turns a summary lists.
pub const MAX_DISAGREEMENTS: usize = 100;

/// Calls, tokens and cost of one role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleUsage {
    /// Number of calls.
    pub calls: u64,
    /// Tokens used.
    pub usage: Usage,
    /// Cost in US dollars, priced from each model's own price table.
    pub cost_usd: f64,
}

/// Scores and costs of one run (the run's SUMMARY item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// Its manifest.
    pub manifest: ManifestId,
    /// The model under test.
    pub tutor: ModelId,
    /// The scenario.
    pub scenario: ScenarioId,
    /// The scenario's vector.
    pub vector: Vector,
    /// The rubric scored against.
    pub rubric: RubricId,
    /// Mean per dimension over scored turns (judges averaged per turn first).
    pub dimension_means: BTreeMap<String, f64>,
    /// Mean weighted turn score; `None` when no turn was scored.
    pub overall: Option<f64>,
    /// Lowest turn score.
    pub min: Option<f64>,
    /// Highest turn score.
    pub max: Option<f64>,
    /// Median turn score.
    pub median: Option<f64>,
    /// Sample standard deviation of turn scores.
    pub std_dev: Option<f64>,
    /// Share of scored turns at or above the pass threshold.
    pub compliance: Option<f64>,
    /// First turn below the pass threshold, if any.
    pub half_life: Option<u32>,
    /// The first turn a majority of judges flagged as revealing the answer, if any.
    pub answer_leak_turn: Option<u32>,
    /// The first turn whose student reply states one of the scenario's goals (success@k
    /// holds for k at or above it); see [`crate::answer_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_reached_turn: Option<u32>,
    /// The first turn whose tutor message tells the answer by the verbatim detector
    /// ([`crate::answer_key::AnswerKey`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_told_turn: Option<u32>,
    /// Per tutor turn, what each telling detector said of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telling: Vec<TurnTelling>,
    /// With two or more judges, per dimension, one list per turn that at least two judges
    /// scored: each judge's score, the judges in the order of their model ids. The judges'
    /// agreement is computed from these, so curating a manifest reads summaries, not every
    /// judgment. `None` with one judge, and in summaries written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_ratings: Option<BTreeMap<String, Vec<Vec<u8>>>>,
    /// Violations counted over every judgment.
    pub violations: BTreeMap<Violation, u32>,
    /// Turns with at least one scored judgment.
    pub scored_turns: u32,
    /// Judgments stored unscored; never averaged in.
    pub unscored_judgments: u32,
    /// Usage and cost per role.
    pub usage: BTreeMap<Role, RoleUsage>,
    /// Latency of every tutor call, in turn order, in milliseconds.
    pub tutor_latencies_ms: Vec<u64>,
    /// When it was computed.
    pub computed_at: Timestamp,
}

/// One model's results over a manifest (a `MODEL_SUMMARY#…` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSummary {
    /// The manifest.
    pub manifest: ManifestId,
    /// The model under test.
    pub model: ModelId,
    /// Overall score with its interval (`stats::scale_interval`), over the scenarios every ranked model scored (so a
    /// model that failed the hard ones is not averaged over the easy ones only); `None` when
    /// it scored none of them.
    pub overall: Option<Estimate>,
    /// Per-dimension scores over the same scenarios, with their intervals.
    pub dimensions: BTreeMap<String, Estimate>,
    /// Overall score per vector, over the same scenarios.
    pub by_vector: BTreeMap<Vector, Estimate>,
    /// Rank group: the place of the model's first tie group (1 is best). `None`: unranked,
    /// because the model has no score to rank.
    pub rank_group: Option<u32>,
    /// Tie groups as a compact letter display: two models sharing a letter are not told apart
    /// by any comparison (`a` holds the leader). Empty when unranked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub letters: String,
    /// Scenarios the manifest planned for each model.
    #[serde(default)]
    pub scenarios_planned: u32,
    /// Scenarios on which the model has a score.
    #[serde(default)]
    pub scenarios_scored: u32,
    /// Planned scenarios without a score where a run failed or was skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_scenarios: Vec<ScenarioId>,
    /// Planned scenarios without a score although their runs finished: every judgment of
    /// every turn unscored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unscored_scenarios: Vec<ScenarioId>,
    /// Runs that finished with a summary.
    pub runs: u32,
    /// Runs that failed.
    pub failed_runs: u32,
    /// Runs skipped because the spending cap was reached.
    #[serde(default)]
    pub skipped_runs: u32,
    /// Share of scored turns at or above the pass threshold.
    pub compliance: Option<f64>,
    /// Judgments stored unscored.
    pub unscored_judgments: u32,
    /// Runs in which a judge flagged the tutor revealing the answer.
    pub runs_with_answer_leak: u32,
    /// success@k, k the manifest's turns: the share of its runs in which the student stated a
    /// goal of the scenario; `None` without runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    /// telling@k: the share of its runs in which the tutor told the answer before the student
    /// stated a goal, or without the student ever stating one, by the manifest's telling
    /// detector ([`ManifestSummary::telling_detector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telling_rate: Option<f64>,
    /// How far the two telling detectors agree over its turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telling_agreement: Option<DetectorAgreement>,
    /// Violations counted over all its judgments.
    pub violations: BTreeMap<Violation, u32>,
    /// Total cost of its runs in US dollars, every role included.
    pub cost_usd: f64,
    /// Usage and cost per role, over all its runs.
    pub usage: BTreeMap<Role, RoleUsage>,
    /// Median tutor latency in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile tutor latency in milliseconds.
    pub latency_p95_ms: Option<f64>,
}

/// Every model's score on one vector (a `VECTOR_SUMMARY#…` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorSummary {
    /// The manifest.
    pub manifest: ManifestId,
    /// The vector.
    pub vector: Vector,
    /// Overall score per model on this vector's scenarios.
    pub models: BTreeMap<ModelId, Estimate>,
}

/// A paired comparison of two models on the scenarios both ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairwiseComparison {
    /// First model.
    pub a: ModelId,
    /// Second model.
    pub b: ModelId,
    /// Mean of per-scenario differences, `a − b`, with its interval.
    pub difference: Estimate,
    /// Unadjusted two-sided p-value.
    pub p_value: f64,
    /// Holm-adjusted p-value.
    pub p_adjusted: f64,
}

/// Inter-judge agreement on one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeAgreement {
    /// Krippendorff's alpha with the interval metric; `None` when undefined (no variation).
    pub krippendorff_alpha: Option<f64>,
    /// A 95% interval of alpha, resampling scenarios (the independent units); `None` with
    /// fewer than two scenarios or too little variation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_ci: Option<(f64, f64)>,
    /// With exactly two judges: Cohen's kappa with quadratic weights between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_kappa: Option<f64>,
    /// A 95% interval of that kappa, resampling scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa_ci: Option<(f64, f64)>,
    /// Turns rated by at least two judges.
    pub units: u32,
}

/// What the telling detectors said of one tutor turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnTelling {
    /// The turn.
    pub turn: u32,
    /// The judges' majority `reveals_answer` flag; `None` when no judge scored the turn, or
    /// the rubric has no such flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judges: Option<bool>,
    /// The verbatim answer-key detector ([`crate::answer_key::AnswerKey`]).
    pub verbatim: bool,
}

/// Which detector a manifest's telling figures use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TellingDetector {
    /// The judges' majority `reveals_answer` flag, when the rubric has it and judges scored.
    Judges,
    /// The verbatim answer-key detector, when no judge can flag telling.
    #[default]
    Verbatim,
}

impl TellingDetector {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            TellingDetector::Judges => "the judges' majority reveals_answer flag",
            TellingDetector::Verbatim => {
                "the verbatim answer-key detector (no judge flagged reveals_answer: the rubric has no such flag)"
            }
        }
    }
}

/// How far the two telling detectors agree over the tutor turns both judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorAgreement {
    /// Turns both detectors judged.
    pub turns: u32,
    /// Turns both call telling.
    pub both: u32,
    /// Turns only the judges call telling.
    pub judges_only: u32,
    /// Turns only the verbatim detector calls telling.
    pub verbatim_only: u32,
    /// Cohen's kappa between the two; `None` when chance agreement is perfect (one of them
    /// never, or always, calls telling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa: Option<f64>,
    /// A 95% interval of kappa, resampling scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kappa_ci: Option<(f64, f64)>,
}

/// A tutor turn the two telling detectors disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TellingDisagreement {
    /// The run.
    pub run: RunId,
    /// Its tutor.
    pub tutor: ModelId,
    /// Its scenario.
    pub scenario: ScenarioId,
    /// The turn.
    pub turn: u32,
    /// Whether the judges call it telling.
    pub judges: bool,
    /// Whether the verbatim detector does.
    pub verbatim: bool,
}

/// A manifest's results: the leaderboard and everything behind it (the manifest's `SUMMARY`
/// item, and `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSummary {
    /// The manifest.
    pub manifest: ManifestId,
    /// Its label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The rubric scored against.
    pub rubric: RubricId,
    /// Dimension names, in rubric order.
    pub dimensions: Vec<String>,
    /// The pass threshold of the rubric.
    pub pass_threshold: f64,
    /// Runs planned.
    pub runs: u32,
    /// Runs that failed.
    pub failed_runs: u32,
    /// Runs skipped because the spending cap was reached.
    #[serde(default)]
    pub skipped_runs: u32,
    /// Whether a spending cap stopped the benchmark before every run finished: the scores
    /// then cover only the runs that did.
    #[serde(default)]
    pub stopped_by_budget: bool,
    /// The manifest whose dialogues this one re-judged; its tutors and students were not
    /// called again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejudge_of: Option<ManifestId>,
    /// When no two models can be told apart by this design (the smallest p-value it can
    /// produce, Holm-adjusted, is at least alpha): roughly how many shared scenarios would
    /// make a separation possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios_needed: Option<u32>,
    /// Tutors that also judged (the manifest allowed it): their scores may favour them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_judging: Vec<ModelId>,
    /// One row per tutor model, best first; `rank_group` marks statistically tied models.
    pub leaderboard: Vec<ModelSummary>,
    /// Per-vector scores.
    pub vectors: Vec<VectorSummary>,
    /// Every pairwise comparison, Holm-adjusted together.
    pub comparisons: Vec<PairwiseComparison>,
    /// Inter-judge agreement per dimension; empty with a single judge.
    pub judge_agreement: BTreeMap<String, JudgeAgreement>,
    /// The detector behind every telling figure.
    #[serde(default)]
    pub telling_detector: TellingDetector,
    /// How far the two telling detectors agree over every tutor turn both judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telling_agreement: Option<DetectorAgreement>,
    /// Turns the two telling detectors disagree on, at most [`MAX_DISAGREEMENTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telling_disagreements: Vec<TellingDisagreement>,
    /// How the scores varied, for planning the next benchmark's power; `None` when no two
    /// models share two scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design_variance: Option<DesignVariance>,
    /// What this design could detect, at the variance it observed (the default without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// Judgments stored unscored, over all runs.
    pub unscored_judgments: u32,
    /// Total cost in US dollars.
    pub cost_usd: f64,
    /// When it was computed.
    pub computed_at: Timestamp,
}

impl Validate for RunSummary {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}

impl Validate for ManifestSummary {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}

impl Validate for ModelSummary {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}

impl Validate for VectorSummary {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}
