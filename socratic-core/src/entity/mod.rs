//! The entity model: what is stored, planned, run, judged and summarised.
//!
//! Catalog entities ([`Prompt`], [`Rubric`], [`Scenario`], [`Model`]) and [`Manifest`]s are
//! immutable and content-addressed; [`Run`]s move through a status machine; [`Turn`]s and
//! [`Judgment`]s are written once; summaries are recomputed idempotently.
//!
//! Every entity rejects unknown fields when deserialised. Invariants that span fields (a rubric
//! needs dimensions, a weight must be positive, …) are checked by [`Validate`]; [`from_json`]
//! does both, and the repository and admin API only ever read entities through it.

mod judgment;
mod labels;
mod manifest;
mod model;
mod prompt;
mod rubric;
mod run;
mod scenario;
mod stored;
mod summary;
mod turn;
mod validation;

pub use judgment::{Judgment, JudgmentOutcome, Verdict};
pub use labels::{Calibration, HumanAgreement, HumanLabel, HumanLabels, SkippedTurn};
pub use manifest::{MAX_TURNS, Manifest, ManifestRequest, ModelConfig, StudentConfig};
pub use model::Model;
pub use prompt::{Prompt, PromptKind};
pub use rubric::{Anchor, Dimension, FlagSpec, REVEALS_ANSWER_FLAG, Rubric, Scale, Violation};
pub use run::{Run, RunFailure, RunStatus, Stage};
pub use scenario::{Level, Scenario, Vector};
pub use stored::{CatalogEntity, Entity};
pub use summary::{
    DetectorAgreement, JudgeAgreement, MAX_DISAGREEMENTS, ManifestSummary, ModelSummary,
    PairwiseComparison, RoleUsage, RunSummary, TellingDetector, TellingDisagreement, TurnTelling,
    VectorSummary,
};
pub use turn::{CallRecord, Turn};
pub use validation::{EntityError, FieldProblem, Problems, Validate, from_json, list_from_json};
