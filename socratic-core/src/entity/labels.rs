//! Human labels: people's scores of judged turns, and the calibration of judges measured
//! against them (see [`crate::calibration`]).

use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate};
use crate::clock::Timestamp;
use crate::id::{ManifestId, ModelId, RubricId, RunId};

/// One person's score of one dimension of one judged turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanLabel {
    /// The run.
    pub run: RunId,
    /// The turn, from 1.
    pub turn: u32,
    /// The rubric dimension.
    pub dimension: String,
    /// The score, on the dimension's scale.
    pub score: u8,
    /// Who scored it, when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rater: Option<String>,
}

/// A turn one rater skipped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedTurn {
    /// The run.
    pub run: RunId,
    /// The turn, from 1.
    pub turn: u32,
    /// Who skipped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rater: Option<String>,
}

/// Every human label of a manifest (`MANIFEST#ulid` / `HUMAN_LABELS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanLabels {
    /// The manifest whose turns were labelled.
    pub manifest: ManifestId,
    /// The labels, by run, turn, dimension and rater.
    pub labels: Vec<HumanLabel>,
    /// Turns a rater chose to skip on the labelling page, so that reopening it does not offer
    /// them again. Not labels: calibration ignores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedTurn>,
    /// When labels were last imported or saved.
    pub updated_at: Timestamp,
}

impl Validate for HumanLabels {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}

/// Agreement between one judge and the humans on one dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanAgreement {
    /// The judge model.
    pub judge: ModelId,
    /// The rubric dimension.
    pub dimension: String,
    /// Labelled turns this judge scored.
    pub turns: u32,
    /// (judge, human) score pairs: one per label of those turns.
    pub pairs: u32,
    /// Labelled turns this judge left unscored (or never judged); not compared.
    pub unscored_turns: u32,
    /// Cohen's kappa with quadratic weights over the pairs.
    pub weighted_kappa: Option<f64>,
    /// Its 95% interval, resampling runs.
    pub kappa_ci: Option<(f64, f64)>,
    /// Krippendorff's α (interval metric), each turn a unit rated by the judge and every human.
    pub krippendorff_alpha: Option<f64>,
    /// Its 95% interval, resampling runs.
    pub alpha_ci: Option<(f64, f64)>,
    /// Mean of judge − human over the pairs: above 0, the judge is more lenient.
    pub mean_bias: Option<f64>,
    /// Its 95% interval, resampling runs.
    pub bias_ci: Option<(f64, f64)>,
}

/// A manifest's judges measured against its human labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The manifest.
    pub manifest: ManifestId,
    /// Its rubric.
    pub rubric: RubricId,
    /// Labels stored.
    pub labels: u32,
    /// Runs with at least one label.
    pub runs: u32,
    /// Distinct labelled turns.
    pub turns: u32,
    /// The raters named in the labels.
    pub raters: Vec<String>,
    /// Per judge, then per dimension in rubric order.
    pub agreement: Vec<HumanAgreement>,
}
