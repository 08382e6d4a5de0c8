use std::fmt;

use serde::de::DeserializeOwned;

/// One thing wrong with an entity: the field (a dotted path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldProblem {
    /// Dotted path of the field, e.g. `dimensions[2].weight`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one entity, so a user can fix them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<FieldProblem>);

impl Problems {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records a problem when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.push(field, message);
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when empty, otherwise the problems as an error.
    pub fn into_result(self) -> Result<(), Problems> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Invariants of an entity that serde alone cannot check.
pub trait Validate {
    /// Every problem with this value, or `Ok`.
    fn validate(&self) -> Result<(), Problems>;
}

/// Why an entity could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntityError {
    /// The JSON is malformed, has a missing, unknown or ill-typed field.
    #[error("invalid {entity} JSON: {source}")]
    Json {
        /// The entity being read, e.g. `"rubric"`.
        entity: &'static str,
        /// The parser's error, which names the field and position.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON parsed but breaks an invariant.
    #[error("invalid {entity}: {problems}")]
    Invalid {
        /// The entity being read.
        entity: &'static str,
        /// Every problem found.
        problems: Problems,
    },
}

/// Parses and validates an entity from JSON text.
///
/// ```
/// use socratic_core::entity::{from_json, Rubric, EntityError};
/// let err = from_json::<Rubric>("rubric", r#"{"id":"r","title":"t","description":"d",
///   "dimensions":[],"pass_threshold":3.0,"flags":[],"violations":[]}"#).unwrap_err();
/// assert!(matches!(err, EntityError::Invalid { .. }));
/// assert!(err.to_string().contains("dimensions"));
/// ```
pub fn from_json<T: DeserializeOwned + Validate>(
    entity: &'static str,
    json: &str,
) -> Result<T, EntityError> {
    let value: T =
        serde_json::from_str(json).map_err(|source| EntityError::Json { entity, source })?;
    value
        .validate()
        .map_err(|problems| EntityError::Invalid { entity, problems })?;
    Ok(value)
}

/// Parses and validates a JSON array of entities; problems are named `[index].field`.
pub fn list_from_json<T: DeserializeOwned + Validate>(
    entity: &'static str,
    json: &str,
) -> Result<Vec<T>, EntityError> {
    let values: Vec<T> =
        serde_json::from_str(json).map_err(|source| EntityError::Json { entity, source })?;
    let mut problems = Problems::new();
    for (i, value) in values.iter().enumerate() {
        if let Err(found) = value.validate() {
            for p in found.0 {
                problems.push(format!("[{i}].{}", p.field), p.message);
            }
        }
    }
    problems
        .into_result()
        .map_err(|problems| EntityError::Invalid { entity, problems })?;
    Ok(values)
}

/// Checks that a free-text field is not blank.
pub(crate) fn require_text(problems: &mut Problems, field: &str, value: &str) {
    problems.check(!value.trim().is_empty(), field, "must not be empty");
}
