//! Bundles: one finished benchmark as one file, to share, import elsewhere and replay byte
//! for byte (docs/storage.md).
//!
//! A bundle is a gzip-compressed tar archive. Its first member, `bundle.json`, is its
//! [`Index`]: the format name and version, the manifest, and every other member's size and
//! sha256. The members mirror the results directory:
//!
//! | member | what |
//! |---|---|
//! | `manifests/<id>.json` | the manifest as stored: its request, id, time and catalog hashes |
//! | `catalog/<kind>/<id>.json` | each catalog entity it uses, whose content hash the manifest records |
//! | `models.json` | the real models it called, as in the models file: names of key variables, never keys |
//! | `cache/llm/<sha256>.json` | every model answer the benchmark used |
//! | `curated/runs/<run>.json` | every curated run: turns, judgments, summary |
//! | `curated/manifests/<id>/…` | `summary.json`, `leaderboard.csv`, `report.html` |
//! | `labels.json` | the human labels of its turns, if any |
//!
//! - [`export()`] writes one from a results directory;
//! - [`import()`] unpacks one into a results directory, merging, after checking every byte;
//! - [`replay()`] runs a bundle's (or a results directory's) benchmark again in a new
//!   directory from its cached answers alone, and compares the outputs with the originals.

mod archive;
mod export;
mod import;
mod replay;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use socratic_core::canonical::ContentHash;
use socratic_core::entity::Manifest;
use socratic_core::id::ManifestId;

pub use archive::read;
pub use export::{Exported, MODELS_FOLDER, export};
pub use import::{Imported, import};
pub(crate) use replay::Reproduction;
pub use replay::{Replayed, replay};

/// The `format` of every bundle's index.
pub const FORMAT: &str = "socratic-bundle";

/// The bundle format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The index member, first in the archive.
pub const INDEX: &str = "bundle.json";

/// The models member.
pub const MODELS: &str = "models.json";

/// The labels member.
pub const LABELS: &str = "labels.json";

/// A bundle's index: what it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`] when written by this build).
    pub version: u32,
    /// The benchmark's manifest.
    pub manifest: ManifestId,
    /// The library and version that wrote it (`socratic-local 0.1.0`).
    pub written_by: String,
    /// Every other member, by path.
    pub members: BTreeMap<String, Member>,
}

/// One member of a bundle, as its index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its size in bytes.
    pub bytes: u64,
    /// The sha256 of its bytes, in hex.
    pub sha256: ContentHash,
}

/// A bundle in memory, every member checked against its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The index.
    pub index: Index,
    /// The members other than the index, by path.
    pub members: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// A bundle of `members` for `manifest`, indexed.
    pub fn new(manifest: ManifestId, members: BTreeMap<String, Vec<u8>>) -> Self {
        let index = Index {
            format: FORMAT.to_owned(),
            version: VERSION,
            manifest,
            written_by: format!("socratic-local {}", env!("CARGO_PKG_VERSION")),
            members: members
                .iter()
                .map(|(path, bytes)| {
                    let member = Member {
                        bytes: bytes.len() as u64,
                        sha256: ContentHash::of_bytes(bytes),
                    };
                    (path.clone(), member)
                })
                .collect(),
        };
        Self { index, members }
    }

    /// The path of the manifest member.
    pub fn manifest_path(&self) -> String {
        format!("manifests/{}.json", self.index.manifest)
    }

    /// The manifest, parsed.
    pub fn manifest(&self) -> Result<Manifest, BundleError> {
        self.json(&self.manifest_path())
    }

    /// The path of one of the benchmark's report files (`summary.json`, …).
    pub fn report_path(&self, name: &str) -> String {
        format!("curated/manifests/{}/{name}", self.index.manifest)
    }

    /// A member that must be there.
    pub fn member(&self, path: &str) -> Result<&[u8], BundleError> {
        self.members
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| BundleError::MissingMember(path.to_owned()))
    }

    /// A JSON member, parsed.
    pub fn json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, BundleError> {
        serde_json::from_slice(self.member(path)?).map_err(|e| BundleError::Malformed {
            member: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The members under `prefix`.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.members
            .range(prefix.to_owned()..)
            .take_while(move |(path, _)| path.starts_with(prefix))
            .map(|(path, bytes)| (path.as_str(), bytes.as_slice()))
    }
}

/// Why a bundle was refused. Nothing is written to the target before every check passes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file cannot be read as a gzip-compressed tar archive: truncated, or not a bundle.
    #[error("{path}: not a readable bundle (truncated or corrupt?): {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The archive has no index first, or the index is not a socratic bundle's.
    #[error("{path}: not a socratic bundle: {message}")]
    NotABundle {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The bundle was written in a format version this build does not read.
    #[error(
        "bundle format version {found} is not supported (this socratic reads version {supported}); use the socratic that wrote it, or a newer one"
    )]
    UnknownVersion {
        /// The version of the bundle.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A member the index lists is not in the archive.
    #[error("the bundle is missing the member {0}")]
    MissingMember(String),
    /// A member is in the archive but not in its index.
    #[error("the bundle holds {0}, which its index does not list (tampered?)")]
    UnlistedMember(String),
    /// A member's bytes do not match the index's sha256 or size.
    #[error("the member {member} does not match its sha256 in the index (changed or corrupt)")]
    Changed {
        /// The member.
        member: String,
    },
    /// A member's path could escape the target directory, or is not a plain file.
    #[error("the member {path:?} is refused: {reason}")]
    UnsafePath {
        /// The path as the archive gives it.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A member is not what its path says.
    #[error("the member {member} is malformed: {message}")]
    Malformed {
        /// The member.
        member: String,
        /// What is wrong.
        message: String,
    },
    /// The bundle disagrees with what the target directory already holds.
    #[error("the bundle conflicts with {target}: {message}")]
    Conflict {
        /// The results directory.
        target: PathBuf,
        /// What differs, naming the entity or file.
        message: String,
    },
}

/// Whether `path` is a member a bundle may hold: a relative path of plain names under one of
/// the known folders, so that no member can land outside the target directory.
fn check_path(path: &str) -> Result<(), BundleError> {
    let refuse = |reason| {
        Err(BundleError::UnsafePath {
            path: path.to_owned(),
            reason,
        })
    };
    let parts: Vec<&str> = path.split('/').collect();
    if path.starts_with('/') || path.contains('\\') || parts[0].ends_with(':') {
        return refuse("absolute paths are not allowed");
    }
    if parts
        .iter()
        .any(|p| *p == ".." || *p == "." || p.is_empty())
    {
        return refuse("paths may not contain '..', '.' or empty parts");
    }
    if !parts.iter().all(|p| {
        p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    }) {
        return refuse("names may hold only ASCII letters, digits, '-', '_', '.' and ':'");
    }
    let known = [MODELS, LABELS].contains(&path)
        || [
            "manifests/",
            "catalog/",
            "cache/llm/",
            "curated/runs/",
            "curated/manifests/",
        ]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    if !known {
        return refuse("not a member of a socratic bundle");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside_the_target() {
        for bad in [
            "../x.json",
            "/etc/passwd",
            "curated/../../x",
            "curated/runs/./a.json",
            "C:/x",
            "curated//runs",
            "elsewhere/a.json",
            "cache/llm/a b.json",
        ] {
            assert!(
                matches!(check_path(bad), Err(BundleError::UnsafePath { .. })),
                "{bad}"
            );
        }
        for good in [
            "models.json",
            "manifests/01M92EFV5SJJGKXQN0ZGW2H15P.json",
            "catalog/prompts/tutor-socratic-v1.json",
            "cache/llm/ab12.json",
            "curated/manifests/01M92EFV5SJJGKXQN0ZGW2H15P/report.html",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
