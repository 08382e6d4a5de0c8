use std::fmt;

use serde::{Deserialize, Serialize};

use super::manifest::ModelConfig;
use super::scenario::Vector;
use super::validation::{Problems, Validate};
use crate::clock::Timestamp;
use crate::id::{ManifestId, RunId, ScenarioId};

/// Where a run is in the pipeline.
///
/// `pending → running → dialogue_complete → curated` (a one-turn dialogue skips `running`), or
/// `failed` or `skipped` from any non-final state. `judged` is where earlier releases left a
/// run for the curator, which still finishes such runs. Transitions are checked by [`RunStatus::can_become`], and stores apply them
/// conditionally on the run's version so a duplicate delivery never moves a run backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Planned, no turn stored yet.
    Pending,
    /// The dialogue is under way: its first turn is stored.
    Running,
    /// Every turn is stored; judging is under way.
    DialogueComplete,
    /// Every turn is judged (or stored unscored).
    Judged,
    /// The run summary is stored.
    Curated,
    /// Stopped for good; see [`Run::failure`].
    Failed,
    /// Not finished, by decision rather than error: a spending cap left no room for its next
    /// call. [`Run::failure`] names the stage and the reason (`budget`).
    Skipped,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::DialogueComplete,
        RunStatus::Judged,
        RunStatus::Curated,
        RunStatus::Failed,
        RunStatus::Skipped,
    ];

    /// The snake-case name used in keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::DialogueComplete => "dialogue_complete",
            RunStatus::Judged => "judged",
            RunStatus::Curated => "curated",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    /// Parses the snake-case name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether no further transition is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Curated | RunStatus::Failed | RunStatus::Skipped
        )
    }

    /// Whether the run stopped without a result (failed or skipped).
    pub fn is_stopped(self) -> bool {
        matches!(self, RunStatus::Failed | RunStatus::Skipped)
    }

    /// Whether a run in this status may move to `next`. Staying put is not a transition.
    pub fn can_become(self, next: RunStatus) -> bool {
        use RunStatus as S;
        match (self, next) {
            (S::Pending, S::Running | S::DialogueComplete)
            | (S::Running, S::DialogueComplete)
            | (S::DialogueComplete, S::Judged)
            | (S::Judged, S::Curated) => true,
            (from, S::Failed | S::Skipped) => !from.is_final(),
            _ => false,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pipeline stage, named in failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Planning a manifest.
    Plan,
    /// Running the dialogue.
    Dialogue,
    /// Judging turns.
    Judge,
    /// Computing summaries.
    Curate,
}

impl Stage {
    /// The snake-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Plan => "plan",
            Stage::Dialogue => "dialogue",
            Stage::Judge => "judge",
            Stage::Curate => "curate",
        }
    }
}

/// Why a run failed or was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFailure {
    /// The stage that failed.
    pub stage: Stage,
    /// The error, as text.
    pub reason: String,
}

/// One tutor model × one scenario × one repetition (the RUN entity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// The manifest that planned it.
    pub manifest: ManifestId,
    /// The model under test and its settings.
    pub tutor: ModelConfig,
    /// The scenario.
    pub scenario: ScenarioId,
    /// The scenario's vector, copied for the by-vector index.
    pub vector: Vector,
    /// Which repetition of tutor × scenario, from 1.
    pub repetition: u32,
    /// Tutor turns to run.
    pub turns: u32,
    /// Number of judges; the run is judged when `turns × judges` judgments are stored.
    pub judges: u32,
    /// Where it is in the pipeline.
    pub status: RunStatus,
    /// Set when `status` is `failed` or `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    /// When it was planned.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
}

impl Run {
    /// How many judgments complete the run.
    pub fn expected_judgments(&self) -> u64 {
        u64::from(self.turns) * u64::from(self.judges)
    }
}

impl Validate for Run {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        problems.check(self.turns >= 1, "turns", "must be at least 1");
        problems.check(self.judges >= 1, "judges", "must be at least 1");
        problems.check(
            self.status.is_stopped() == self.failure.is_some(),
            "failure",
            "must be set exactly when status is failed or skipped",
        );
        problems.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_machine_only_moves_forward() {
        use RunStatus as S;
        let forward = [
            S::Pending,
            S::Running,
            S::DialogueComplete,
            S::Judged,
            S::Curated,
        ];
        for pair in forward.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
            assert!(!pair[1].can_become(pair[0]), "{} -> {}", pair[1], pair[0]);
        }
        for s in S::ALL {
            assert!(!s.can_become(s), "{s} -> itself");
            assert_eq!(s.can_become(S::Failed), !s.is_final());
            assert!(!S::Failed.can_become(s));
            assert!(!S::Skipped.can_become(s));
            assert_eq!(s.can_become(S::Skipped), !s.is_final());
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert!(!S::Pending.can_become(S::Judged));
        assert!(
            S::Pending.can_become(S::DialogueComplete),
            "a one-turn dialogue"
        );
    }
}
