//! Export: one finished benchmark of a results directory as a bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions,
};
use socratic_core::entity::{HumanLabels, Manifest};
use socratic_core::id::ManifestId;
use socratic_core::keys;
use socratic_core::repository::RunFilter;

use super::replay::{Reproduction, catalog_path};
use super::{Bundle, BundleError, LABELS, MODELS, archive};
use crate::benchmark::{Benchmark, BenchmarkOptions, Outcome, REPORT_FILES};
use crate::error::{Context, Error};
use crate::history::History;
use crate::models::{self, ModelEntry};

/// A bundle written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The bundle file.
    pub file: PathBuf,
    /// The benchmark's manifest.
    pub manifest: ManifestId,
    /// Its curated runs.
    pub runs: usize,
    /// The cached model answers it holds.
    pub answers: usize,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The folder of the models each benchmark called, in a results directory
/// (`models/<manifest>.json`), written when it is planned.
pub const MODELS_FOLDER: &str = "models";

/// Writes the benchmark `manifest` of results directory `out` (by default its newest finished
/// one) to `file` as a bundle. `models` is the models file it ran with, needed only for a
/// benchmark of real models run before results directories recorded their models.
///
/// The cached answers are found by replaying the benchmark in memory from the directory's
/// cache: the bundle holds exactly the answers a replay reads.
pub async fn export(
    out: &Path,
    manifest: Option<ManifestId>,
    models: Option<&Path>,
    file: &Path,
) -> Result<Exported, Error> {
    let mut bundle = collect(out, manifest, models).await?;
    let recorder = Arc::new(Recording::new(socratic_sqlite::ResultsBlobs::read(out)?));
    let reproduction = Reproduction::of(&bundle, Arc::clone(&recorder) as Arc<dyn BlobStore>)?;
    let options = BenchmarkOptions {
        out: out.to_owned(),
        replay: true,
        preflight: false,
        ..BenchmarkOptions::default()
    };
    let benchmark = Benchmark::reproducing(options, reproduction, false).await?;
    let Outcome::Finished(_) = benchmark.run(&()).await? else {
        return Err(Error::Invalid(
            "the replay that finds the answers was interrupted".to_owned(),
        ));
    };
    let read = recorder.take();
    let answers = read.len();
    for (path, bytes) in read {
        bundle.members.insert(path, bytes);
    }
    let runs = bundle.under("curated/runs/").count();
    let bundle = Bundle::new(bundle.index.manifest, bundle.members);
    let bytes = archive::write(&bundle, file)?;
    Ok(Exported {
        file: file.to_owned(),
        manifest: bundle.index.manifest,
        runs,
        answers,
        bytes,
    })
}

/// Everything of a finished benchmark but its cached answers, as bundle members: the
/// manifest as stored, its catalog, its models, its curated runs and report files, and its
/// human labels.
pub(super) async fn collect(
    out: &Path,
    manifest: Option<ManifestId>,
    models_file: Option<&Path>,
) -> Result<Bundle, Error> {
    let history = History::open(out)?;
    let id = history.finished_or(manifest).await?;
    let repository = history.repository();
    let files = socratic_sqlite::ResultsBlobs::read(out)?;
    let mut members = BTreeMap::new();

    let manifest_path = format!("manifests/{id}.json");
    let manifest_bytes = read(&files, &manifest_path, out).await?;
    let stored: Manifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("parsing {manifest_path} in {}", out.display()))?;
    if let Some(source) = stored.request.rejudge_of {
        return Err(Error::Invalid(format!(
            "manifest {id} is a re-judge of {source}; a bundle holds a benchmark that ran its \
             own dialogues: export {source}, then re-judge the imported bundle"
        )));
    }
    members.insert(manifest_path, manifest_bytes);
    for name in REPORT_FILES {
        let path = format!("curated/manifests/{id}/{name}");
        let bytes = read(&files, &path, out).await?;
        members.insert(path, bytes);
    }

    for key in stored.catalog_hashes.keys() {
        let (kind, entity_id) = key.split_once('#').unwrap_or((key, ""));
        let value = match kind {
            "PROMPT" => entity_json::<socratic_core::entity::Prompt>(repository, entity_id).await,
            "RUBRIC" => entity_json::<socratic_core::entity::Rubric>(repository, entity_id).await,
            "SEED" => entity_json::<socratic_core::entity::Scenario>(repository, entity_id).await,
            _ => entity_json::<socratic_core::entity::Model>(repository, entity_id).await,
        }
        .map_err(|source| Error::Failed {
            context: format!("reading {key} from {}", out.display()),
            source,
        })?;
        let path = catalog_path(key).ok_or_else(|| BundleError::Malformed {
            member: key.clone(),
            message: "not a catalog key".to_owned(),
        })?;
        members.insert(path, value);
    }

    let models = models_of(&stored, &files, models_file, out).await?;
    if !models.is_empty() {
        let bytes = serde_json::to_vec_pretty(&models).context("writing models.json")?;
        members.insert(MODELS.to_owned(), bytes);
    }

    let mut cursor = None;
    loop {
        let page = repository
            .list_runs(&RunFilter::Manifest(id), 1000, cursor)
            .await
            .with_context(|| format!("listing the runs of {id}"))?;
        for run in page.items {
            let path = format!("curated/runs/{}.json", run.id);
            match files
                .get(&BlobKey::new(&path).context("naming a curated run")?)
                .await
            {
                Ok(bytes) => {
                    members.insert(path, bytes);
                }
                // A run that failed or was skipped was never curated.
                Err(BlobError::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("reading {path}")),
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }

    let labels = repository
        .get::<HumanLabels>(&keys::human_labels(&id))
        .await
        .with_context(|| format!("reading the labels of {id}"))?;
    if let Some(labels) = labels {
        let bytes = serde_json::to_vec_pretty(&labels.value).context("writing labels.json")?;
        members.insert(LABELS.to_owned(), bytes);
    }
    Ok(Bundle::new(id, members))
}

async fn read(files: &dyn BlobStore, path: &str, out: &Path) -> Result<Vec<u8>, Error> {
    let key = BlobKey::new(path).context("naming a file")?;
    files
        .get(&key)
        .await
        .with_context(|| format!("reading {path} in {}", out.display()))
}

async fn entity_json<E: socratic_core::entity::CatalogEntity>(
    repository: &socratic_core::repository::Repository,
    id: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>
where
    E::Id: std::str::FromStr,
    <E::Id as std::str::FromStr>::Err: std::error::Error + Send + Sync + 'static,
{
    let id: E::Id = id.parse()?;
    let entity = repository.require_catalog::<E>(&id).await?;
    Ok(serde_json::to_vec_pretty(&entity)?)
}

/// The real models a benchmark called: as recorded in the results directory, else from the
/// models file given. Simulated models need no entry.
async fn models_of(
    manifest: &Manifest,
    files: &dyn BlobStore,
    models_file: Option<&Path>,
    out: &Path,
) -> Result<Vec<ModelEntry>, Error> {
    let path = format!("{MODELS_FOLDER}/{}.json", manifest.id);
    match files
        .get(&BlobKey::new(&path).context("naming a file")?)
        .await
    {
        Ok(bytes) => {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {path} in {}", out.display()));
        }
        Err(BlobError::NotFound { .. }) => {}
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    }
    let simulated: BTreeSet<String> = socratic_sim::SimulatedLlm::catalog()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    let request = &manifest.request;
    let used: BTreeSet<String> = request
        .tutors
        .iter()
        .chain(&request.judges)
        .map(|m| m.model.to_string())
        .chain(request.student.iter().map(|s| s.model.to_string()))
        .filter(|m| !simulated.contains(m))
        .collect();
    if used.is_empty() {
        return Ok(Vec::new());
    }
    let Some(models_file) = models_file else {
        return Err(Error::NotFound(format!(
            "{} does not record the models manifest {} called ({}); give the models file it ran \
             with: --models FILE",
            out.display(),
            manifest.id,
            used.into_iter().collect::<Vec<_>>().join(", ")
        )));
    };
    // Only the names of key variables are read; the keys need not be set.
    let file = models::load(models_file, |_| Some("unused".to_owned()))?;
    let entries: Vec<ModelEntry> = file
        .models
        .into_iter()
        .filter(|m| used.contains(&m.id))
        .collect();
    if let Some(missing) = used.iter().find(|id| !entries.iter().any(|e| &e.id == *id)) {
        return Err(Error::NotFound(format!(
            "{} has no model {missing}, which manifest {} called",
            models_file.display(),
            manifest.id
        )));
    }
    Ok(entries)
}

/// A read-only view of a directory's files that records every cached answer read.
struct Recording<S> {
    inner: S,
    read: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl<S> Recording<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            read: Mutex::new(BTreeMap::new()),
        }
    }

    fn take(&self) -> BTreeMap<String, Vec<u8>> {
        std::mem::take(&mut *self.read.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Recording<S> {
    async fn put(
        &self,
        key: &BlobKey,
        _bytes: Vec<u8>,
        _mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        Err(BlobError::InvalidRequest {
            message: format!("{key}: the source directory is read only during an export"),
        })
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let bytes = self.inner.get(key).await?;
        self.read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.as_str().to_owned(), bytes.clone());
        Ok(bytes)
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        self.inner.head(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        self.inner.list(options).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        Err(BlobError::InvalidRequest {
            message: format!("{key}: the source directory is read only during an export"),
        })
    }
}
