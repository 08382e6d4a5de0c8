//! Import: a bundle unpacked into a results directory, merged with what it holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use socratic_core::blob::{BlobError, BlobKey, BlobStore};
use socratic_core::entity::{HumanLabels, Manifest, ManifestSummary};
use socratic_core::id::ManifestId;
use socratic_core::keys;
use socratic_core::pipeline::CuratedRun;
use socratic_core::repository::Repository;
use socratic_sqlite::ResultsDir;

use super::export::MODELS_FOLDER;
use super::replay::{CatalogItem, catalog};
use super::{Bundle, BundleError, LABELS, MODELS, read};
use crate::benchmark::REPORT_FILES;
use crate::error::{Context, Error};
use crate::models::ModelEntry;

/// A bundle imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The results directory.
    pub out: PathBuf,
    /// The benchmark's manifest.
    pub manifest: ManifestId,
    /// Its curated runs.
    pub runs: usize,
    /// Files written that were not there (0 when the bundle was imported before).
    pub new_files: usize,
}

/// Unpacks bundle `file` into results directory `out` (created if missing), merging with
/// the benchmarks it holds.
///
/// Everything is checked before anything is written: the archive (every member's sha256,
/// safe paths, format version), the manifest and its catalog hashes, every curated run, and
/// then that nothing in `out` contradicts the bundle (a catalog entity, the same benchmark
/// under another manifest id, a file with other bytes). Each write is then atomic and
/// idempotent, so importing again is a no-op, and an import stopped part way finishes when
/// run again.
pub async fn import(file: &Path, out: &Path) -> Result<Imported, Error> {
    let bundle = read(file)?;
    let checked = Checked::of(&bundle)?;

    let results = ResultsDir::acquire(out)?;
    let repository = Repository::new(Arc::new(results.database().store()));
    let files = results.blobs()?;
    checked.conflicts(&bundle, &repository, &files, out).await?;

    let mut new_files = 0;
    for (path, bytes) in &bundle.members {
        let target = match path.as_str() {
            MODELS => format!("{MODELS_FOLDER}/{}.json", checked.manifest.id),
            LABELS => continue,
            _ if path.starts_with("catalog/") => continue,
            _ => path.clone(),
        };
        if super::replay::put_same(&files, &target, bytes.clone(), out).await? {
            new_files += 1;
        }
    }
    checked.store(&repository, out).await?;
    // A directory without a report at its top shows this one there, as after a run.
    if !out.join(REPORT_FILES[0]).exists() {
        let curated = out.join(bundle.report_path(""));
        for name in REPORT_FILES {
            crate::publish(&curated.join(name), &out.join(name))?;
        }
    }
    Ok(Imported {
        out: out.to_owned(),
        manifest: checked.manifest.id,
        runs: checked.runs.len(),
        new_files,
    })
}

/// A bundle's entities, parsed and checked.
struct Checked {
    manifest: Manifest,
    catalog: Vec<CatalogItem>,
    runs: Vec<CuratedRun>,
    summary: ManifestSummary,
    labels: Option<HumanLabels>,
}

impl Checked {
    fn of(bundle: &Bundle) -> Result<Self, BundleError> {
        let manifest = bundle.manifest()?;
        let malformed = |member: &str, message: String| BundleError::Malformed {
            member: member.to_owned(),
            message,
        };
        if manifest.id != bundle.index.manifest {
            return Err(malformed(
                &bundle.manifest_path(),
                format!("holds manifest {}", manifest.id),
            ));
        }
        let catalog = catalog(bundle, &manifest)?;
        if bundle.members.contains_key(MODELS) {
            bundle.json::<Vec<ModelEntry>>(MODELS)?;
        }
        let mut runs = Vec::new();
        for (path, _) in bundle.under("curated/runs/") {
            let run: CuratedRun = bundle.json(path)?;
            if run.run.manifest != manifest.id
                || path != format!("curated/runs/{}.json", run.run.id)
            {
                return Err(malformed(
                    path,
                    "is not a run of the bundle's manifest".to_owned(),
                ));
            }
            runs.push(run);
        }
        let summary_path = bundle.report_path(REPORT_FILES[0]);
        let summary: ManifestSummary = bundle.json(&summary_path)?;
        if summary.manifest != manifest.id {
            return Err(malformed(
                &summary_path,
                "summarises another manifest".to_owned(),
            ));
        }
        for name in REPORT_FILES {
            bundle.member(&bundle.report_path(name))?;
        }
        let labels: Option<HumanLabels> = if bundle.members.contains_key(LABELS) {
            Some(bundle.json(LABELS)?)
        } else {
            None
        };
        if labels.as_ref().is_some_and(|l| l.manifest != manifest.id) {
            return Err(malformed(LABELS, "labels another manifest".to_owned()));
        }
        Ok(Self {
            manifest,
            catalog,
            runs,
            summary,
            labels,
        })
    }

    /// What in `out` contradicts the bundle, found before anything is written.
    async fn conflicts(
        &self,
        bundle: &Bundle,
        repository: &Repository,
        files: &dyn BlobStore,
        out: &Path,
    ) -> Result<(), Error> {
        let conflict = |message: String| -> Error {
            BundleError::Conflict {
                target: out.to_owned(),
                message,
            }
            .into()
        };
        for item in &self.catalog {
            if let Some(message) = item.conflict(repository).await? {
                return Err(conflict(message));
            }
        }
        let same = repository
            .manifest_by_hash(&self.manifest.hash)
            .await
            .context("reading the manifests")?;
        if let Some(same) = same.filter(|m| m.id != self.manifest.id) {
            return Err(conflict(format!(
                "it holds the same benchmark as manifest {}, not {}",
                same.id, self.manifest.id
            )));
        }
        for (path, bytes) in &bundle.members {
            if path == MODELS || path == LABELS || path.starts_with("catalog/") {
                continue;
            }
            let key = BlobKey::new(path.as_str()).context("naming a file")?;
            match files.get(&key).await {
                Ok(existing) if existing != *bytes => {
                    return Err(conflict(format!("{path} exists there with other bytes")));
                }
                Ok(_) | Err(BlobError::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("reading {path}")),
            }
        }
        Ok(())
    }

    /// Stores the entities; those already stored are kept.
    async fn store(&self, repository: &Repository, out: &Path) -> Result<(), Error> {
        for item in &self.catalog {
            item.put(repository, out).await?;
        }
        repository
            .create_manifest(&self.manifest)
            .await
            .context("storing the manifest")?;
        let storing = || format!("storing the runs of manifest {}", self.manifest.id);
        for curated in &self.runs {
            repository
                .put_once(curated.run.clone())
                .await
                .with_context(storing)?;
            for turn in &curated.turns {
                repository
                    .put_once(turn.clone())
                    .await
                    .with_context(storing)?;
            }
            for judgment in &curated.judgments {
                repository
                    .put_once(judgment.clone())
                    .await
                    .with_context(storing)?;
            }
            if let Some(summary) = &curated.summary {
                repository
                    .put_once(summary.clone())
                    .await
                    .with_context(storing)?;
            }
        }
        repository
            .put_once(self.summary.clone())
            .await
            .with_context(storing)?;
        // The runs were stored, not moved: count them for the manifest's status.
        repository
            .recount_runs(&self.manifest.id)
            .await
            .with_context(storing)?;
        if let Some(labels) = &self.labels {
            // Labels already there are the directory's own, and kept.
            let stored = repository
                .get::<HumanLabels>(&keys::human_labels(&self.manifest.id))
                .await
                .with_context(storing)?;
            if stored.is_none() {
                repository
                    .put_once(labels.clone())
                    .await
                    .with_context(storing)?;
            }
        }
        Ok(())
    }
}
