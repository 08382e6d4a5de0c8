//! Re-judging: score the dialogues of a finished manifest with other judges or another
//! rubric, without calling a tutor or a student again.
//!
//! A re-judge is an ordinary manifest whose request names its source in
//! [`ManifestRequest::rejudge_of`]; the planner checks that it keeps everything that shaped
//! the dialogues, and the dialogue stage copies the source run's turns instead of calling
//! models. Results directories keep a finished manifest as blobs
//! (`manifests/<id>.json`, `curated/runs/<run>.json`); [`import_manifest`] loads them into a
//! store that does not hold them, such as a fresh in-memory one.

use serde::Deserialize;

use crate::blob::{BlobError, BlobKey, BlobStore, BlobStoreExt};
use crate::entity::{Manifest, ManifestRequest, ModelConfig, Run, Turn};
use crate::id::{ManifestId, PromptId, RubricId};
use crate::repository::{RepoError, Repository};

/// The request that re-judges `source` with `judges`, and optionally another rubric and
/// judge prompt.
pub fn rejudge_request(
    source: &Manifest,
    judges: Vec<ModelConfig>,
    rubric: Option<RubricId>,
    judge_prompt: Option<PromptId>,
) -> ManifestRequest {
    let original = &source.request;
    let names: Vec<String> = judges.iter().map(|j| j.model.to_string()).collect();
    ManifestRequest {
        rubric: rubric.unwrap_or_else(|| original.rubric.clone()),
        judge_prompt: judge_prompt.unwrap_or_else(|| original.judge_prompt.clone()),
        judges,
        label: Some(format!(
            "Re-judge of {} by {}",
            original
                .label
                .clone()
                .unwrap_or_else(|| format!("manifest {}", source.id)),
            names.join(", ")
        )),
        rejudge_of: Some(source.id),
        ..original.clone()
    }
}

/// Why a manifest could not be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Its manifest file is absent.
    #[error("no manifest {0} in these results (manifests/{0}.json)")]
    NotFound(ManifestId),
    /// A file is not what it should be.
    #[error("{key}: {message}")]
    Corrupt {
        /// The blob.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Reading failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Writing failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What [`import_manifest`] loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The manifest.
    pub manifest: Manifest,
    /// Runs with a finished dialogue.
    pub runs: usize,
}

#[derive(Deserialize)]
struct CuratedRun {
    run: Run,
    turns: Vec<Turn>,
}

fn parse<T: for<'de> Deserialize<'de>>(key: &BlobKey, bytes: &[u8]) -> Result<T, ImportError> {
    serde_json::from_slice(bytes).map_err(|e| ImportError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Loads a finished manifest and its curated runs and turns from `blobs` into `repository`.
/// Idempotent: what is already stored is kept.
pub async fn import_manifest(
    blobs: &dyn BlobStore,
    repository: &Repository,
    id: &ManifestId,
) -> Result<Imported, ImportError> {
    let key = BlobKey::new(format!("manifests/{id}.json"))?;
    let bytes = match blobs.get(&key).await {
        Ok(bytes) => bytes,
        Err(BlobError::NotFound { .. }) => return Err(ImportError::NotFound(*id)),
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = parse(&key, &bytes)?;
    repository.create_manifest(&manifest).await?;
    let mut runs = 0;
    for meta in blobs.list_all("curated/runs/").await? {
        let bytes = blobs.get(&meta.key).await?;
        let curated: CuratedRun = parse(&meta.key, &bytes)?;
        if curated.run.manifest != *id {
            continue;
        }
        repository.put_once(curated.run).await?;
        for turn in curated.turns {
            repository.put_once(turn).await?;
        }
        runs += 1;
    }
    // The runs were stored, not moved: count them for the manifest's status.
    repository.recount_runs(id).await?;
    Ok(Imported { manifest, runs })
}

/// The newest manifest in `blobs` that ran its own dialogues (not a re-judge).
pub async fn latest_dialogue_manifest(
    blobs: &dyn BlobStore,
) -> Result<Option<ManifestId>, ImportError> {
    let mut newest: Option<Manifest> = None;
    for meta in blobs.list_all("manifests/").await? {
        let manifest: Manifest = parse(&meta.key, &blobs.get(&meta.key).await?)?;
        if manifest.request.rejudge_of.is_none()
            && newest.as_ref().is_none_or(|n| manifest.id > n.id)
        {
            newest = Some(manifest);
        }
    }
    Ok(newest.map(|m| m.id))
}
