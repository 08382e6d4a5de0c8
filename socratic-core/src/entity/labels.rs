//! Human labels: people's scores of judged turns, against which judges are calibrated (see
//! [`crate::calibration`]).

use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate};
use crate::clock::Timestamp;
use crate::id::{ManifestId, RunId};

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

/// Every human label of a manifest (`MANIFEST#ulid` / `HUMAN_LABELS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanLabels {
    /// The manifest whose turns were labelled.
    pub manifest: ManifestId,
    /// The labels, by run, turn, dimension and rater.
    pub labels: Vec<HumanLabel>,
    /// When labels were last imported.
    pub updated_at: Timestamp,
}

impl Validate for HumanLabels {
    fn validate(&self) -> Result<(), Problems> {
        Ok(())
    }
}
