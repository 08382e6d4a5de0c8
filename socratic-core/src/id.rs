//! Typed identifiers.
//!
//! Catalog entities (prompts, rubrics, scenarios, models) have human-readable slugs such as
//! `EL-ETH-UTIL-DEON-01`; manifests and runs have ULIDs. Every id is checked when it is built or
//! deserialised, so a `#` (the key separator of the single-table design), whitespace or a `/`
//! (the path separator of the admin API) can never reach a key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest slug accepted, in bytes.
pub const MAX_SLUG_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    /// Which id was being parsed, e.g. `"scenario id"`.
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a slug: 1 to [`MAX_SLUG_LEN`] bytes of ASCII letters, digits, `-`, `_`, `.` or `:`.
pub fn validate_slug(kind: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason| {
        Err(IdError {
            kind,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_SLUG_LEN {
        return fail("must be at most 128 bytes");
    }
    if value.contains('#') {
        return fail("must not contain '#'");
    }
    if value.chars().any(char::is_whitespace) {
        return fail("must not contain whitespace");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return fail("may contain only ASCII letters, digits, '-', '_', '.' and ':'");
    }
    Ok(())
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_slug($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ulid::Ulid);

        impl $name {
            /// Wraps a ULID.
            pub const fn from_ulid(ulid: ulid::Ulid) -> Self {
                Self(ulid)
            }

            /// The underlying ULID.
            pub const fn ulid(&self) -> ulid::Ulid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                // Crockford base32 accepts lowercase; keys must be canonical, so require uppercase.
                if s.len() != 26 || s.chars().any(|c| c.is_ascii_lowercase()) {
                    return Err(IdError {
                        kind: $kind,
                        value: s.to_owned(),
                        reason: "must be a 26-character uppercase ULID",
                    });
                }
                ulid::Ulid::from_string(s).map(Self).map_err(|_| IdError {
                    kind: $kind,
                    value: s.to_owned(),
                    reason: "must be a 26-character uppercase ULID",
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// Id of a [`Prompt`](crate::entity::Prompt), e.g. `socratic-tutor-v1`.
    PromptId,
    "prompt id"
);
slug_id!(
    /// Id of a [`Rubric`](crate::entity::Rubric), e.g. `ase-v1`.
    RubricId,
    "rubric id"
);
slug_id!(
    /// Id of a [`Scenario`](crate::entity::Scenario) (the SEED entity), e.g. `EL-ETH-UTIL-DEON-01`.
    ScenarioId,
    "scenario id"
);
slug_id!(
    /// Id of a [`Model`](crate::entity::Model) in the catalog, e.g. `claude-sonnet-4`.
    ModelId,
    "model id"
);
ulid_id!(
    /// Id of a [`Manifest`](crate::entity::Manifest).
    ManifestId,
    "manifest id"
);
ulid_id!(
    /// Id of a [`Run`](crate::entity::Run).
    RunId,
    "run id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_reject_separators_and_whitespace() {
        assert!(ScenarioId::new("EL-ETH-UTIL-DEON-01").is_ok());
        assert!(ModelId::new("anthropic.claude-3:0").is_ok());
        for bad in ["", "a#b", "a b", "a\tb", "a/b", "é"] {
            let err = ScenarioId::new(bad).unwrap_err();
            assert_eq!(err.kind, "scenario id");
            assert_eq!(err.value, bad);
        }
        assert!(ModelId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn slug_deserialisation_names_the_id() {
        let err = serde_json::from_str::<PromptId>("\"has#hash\"").unwrap_err();
        assert!(err.to_string().contains("prompt id"), "{err}");
    }

    #[test]
    fn ulid_ids_round_trip_and_reject_garbage() {
        let id = RunId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 42));
        let text = id.to_string();
        assert_eq!(text.parse::<RunId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!("RUN#01H".parse::<RunId>().is_err());
        assert!(text.to_lowercase().parse::<RunId>().is_err());
        assert!(serde_json::from_str::<ManifestId>("\"not a ulid\"").is_err());
    }
}
