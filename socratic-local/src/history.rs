//! The history of a results directory, read from its database without taking its lock (a
//! benchmark may be running there): every manifest, one run's record, and two manifests
//! compared.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use socratic_core::compare::{ManifestComparison, compare_manifests};
use socratic_core::entity::{Manifest, ManifestSummary};
use socratic_core::id::{ManifestId, RunId};
use socratic_core::keys;
use socratic_core::report;
use socratic_core::repository::{Repository, RunRecord};
use socratic_sqlite::ResultsDir;

use crate::error::{Context, Error};

/// One benchmark of a results directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestLine {
    /// The manifest.
    pub manifest: Manifest,
    /// Runs that reached a final status.
    pub finished: u64,
    /// Its summary, once curated.
    pub summary: Option<ManifestSummary>,
}

impl ManifestLine {
    /// `finished`, `unfinished (N/M)`, and for a finished manifest with stopped runs, how
    /// many failed or were skipped.
    pub fn status(&self) -> String {
        match &self.summary {
            Some(s) if s.failed_runs + s.skipped_runs > 0 => format!(
                "finished ({} failed, {} skipped)",
                s.failed_runs, s.skipped_runs
            ),
            Some(_) => "finished".to_owned(),
            None => format!("unfinished ({}/{})", self.finished, self.manifest.run_count),
        }
    }
}

/// Two manifests compared, and the page written for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The comparison.
    pub comparison: ManifestComparison,
    /// `comparisons/<B>-vs-<A>.html`.
    pub page: PathBuf,
}

/// The history of one results directory.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
    repository: Repository,
}

impl History {
    /// Opens the database of a results directory for reading, without its lock.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let db = ResultsDir::read(&dir)?;
        Ok(Self {
            dir,
            repository: Repository::new(Arc::new(db.store())),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its repository.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// Every manifest, newest first, with its progress and summary.
    pub async fn manifests(&self) -> Result<Vec<ManifestLine>, Error> {
        let reading = || format!("reading the benchmarks of {}", self.dir.display());
        let mut lines = Vec::new();
        for manifest in self
            .repository
            .all_manifests()
            .await
            .with_context(reading)?
        {
            let finished = self
                .repository
                .manifest_progress(&manifest.id)
                .await
                .with_context(reading)?
                .map_or(0, |p| p.finished);
            let summary = self
                .repository
                .get::<ManifestSummary>(&keys::manifest_summary(&manifest.id))
                .await
                .with_context(reading)?
                .map(|v| v.value);
            lines.push(ManifestLine {
                manifest,
                finished,
                summary,
            });
        }
        Ok(lines)
    }

    /// The manifest `id`, or the newest finished one.
    pub async fn finished_or(&self, id: Option<ManifestId>) -> Result<ManifestId, Error> {
        if let Some(id) = id {
            return Ok(id);
        }
        self.manifests()
            .await?
            .into_iter()
            .find(|line| line.summary.is_some())
            .map(|line| line.manifest.id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{} holds no finished benchmark",
                    self.dir.display()
                ))
            })
    }

    /// A curated run's document as the pipeline wrote it (`curated/runs/<run>.json`: the run,
    /// its turns, judgments and summary), kept in the database.
    pub async fn curated_run(&self, id: &RunId) -> Result<Vec<u8>, Error> {
        use socratic_core::blob::{BlobError, BlobKey, BlobStore};
        let key = BlobKey::new(format!("curated/runs/{id}.json")).context("naming a run")?;
        match socratic_sqlite::ResultsBlobs::read(&self.dir)?
            .get(&key)
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(BlobError::NotFound { .. }) => Err(Error::NotFound(format!(
                "run {id} is not curated in {} (it failed, was skipped, or is not there)",
                self.dir.display()
            ))),
            Err(e) => Err(e).with_context(|| format!("reading run {id}")),
        }
    }

    /// Everything stored about one run: its turns, judgments and summary.
    pub async fn run(&self, id: &RunId) -> Result<RunRecord, Error> {
        self.repository
            .run_record(id)
            .await
            .with_context(|| format!("reading run {id}"))?
            .ok_or_else(|| Error::NotFound(format!("run {id} is not in {}", self.dir.display())))
    }

    /// Manifest `b` compared with baseline `a` over their shared models and scenarios, with
    /// the page written as `comparisons/<b>-vs-<a>.html`.
    pub async fn compare(&self, a: ManifestId, b: ManifestId) -> Result<Comparison, Error> {
        for (name, id) in [("A", a), ("B", b)] {
            let stored = self
                .repository
                .manifest_progress(&id)
                .await
                .with_context(|| format!("reading manifest {id}"))?;
            if stored.is_none() {
                return Err(Error::NotFound(format!(
                    "manifest {name} ({id}) is not in {}",
                    self.dir.display()
                )));
            }
        }
        let comparison = compare_manifests(&self.repository, &a, &b)
            .await
            .with_context(|| format!("comparing {b} with {a}"))?;
        let dir = self.dir.join("comparisons");
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let page = dir.join(format!("{b}-vs-{a}.html"));
        let html = report::comparison_html(&comparison, socratic_core::pipeline::ALPHA);
        std::fs::write(&page, html).map_err(Error::io(&page))?;
        Ok(Comparison { comparison, page })
    }
}
