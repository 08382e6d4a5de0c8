//! Replay: a finished benchmark run again from its cached answers alone, in a new directory,
//! and its outputs compared byte for byte with the originals.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use socratic_core::blob::{BlobError, BlobKey, BlobPutMode, BlobStore};
use socratic_core::canonical::content_hash;
use socratic_core::clock::Timestamp;
use socratic_core::entity::{
    CatalogEntity, Manifest, ManifestSummary, Model, Prompt, Rubric, Scenario,
};
use socratic_core::id::ManifestId;
use socratic_core::repository::{RepoError, Repository};

use super::{Bundle, BundleError, MODELS, export};
use crate::benchmark::{Benchmark, BenchmarkOptions, Outcome, REPORT_FILES};
use crate::error::{Context, Error};
use crate::models::ModelEntry;

/// A replay, and how its outputs compare with the originals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The manifest, with the id it had.
    pub manifest: ManifestId,
    /// The new results directory.
    pub out: PathBuf,
    /// Its runs.
    pub runs: u64,
    /// Model calls made: always 0, as every answer comes from the cache.
    pub calls: u64,
    /// Each report file (`summary.json`, `leaderboard.csv`, `report.html`) and whether it is
    /// byte for byte the original.
    pub compared: Vec<(String, bool)>,
}

impl Replayed {
    /// Whether every report file is byte for byte the original.
    pub fn identical(&self) -> bool {
        self.compared.iter().all(|(_, same)| *same)
    }
}

/// Runs the benchmark of `source` (a bundle file, or a results directory and its newest
/// finished benchmark) again in `out`, answering every model call (simulated ones too) from
/// the cache alone, then compares `out`'s report files with the originals. `models` is the
/// models file a results directory's benchmark of real models ran with, needed only when the
/// directory did not record it (as for [`export()`](super::export())).
///
/// The replay keeps the manifest's id and time and computes the summary at the original's
/// time, so a benchmark whose runs all finished replays byte for byte. A run that failed or
/// was skipped in the original has no cached answer for its missing call, and fails here:
/// then [`Replayed::compared`] names the files that differ. `out` may be new or hold other
/// benchmarks; a replay stopped part way resumes when run again.
pub async fn replay(
    source: &Path,
    manifest: Option<ManifestId>,
    models: Option<&Path>,
    out: &Path,
    concurrency: usize,
) -> Result<Replayed, Error> {
    if crate::same_dir(source, out) {
        return Err(Error::Invalid(format!(
            "replay needs a new results directory: --out {} is the source",
            out.display()
        )));
    }
    let (bundle, cache): (Bundle, Arc<dyn BlobStore>) = if source.is_file() {
        let bundle = super::read(source)?;
        if manifest.is_some_and(|m| m != bundle.index.manifest) {
            return Err(Error::NotFound(format!(
                "{} holds manifest {}, not {}",
                source.display(),
                bundle.index.manifest,
                manifest.map(|m| m.to_string()).unwrap_or_default()
            )));
        }
        // Answered from the bundle itself: a replay stopped part way reads it again.
        let answers = socratic_memory::MemoryBlobStore::new();
        crate::given_cache::unpack(&bundle, &answers).await?;
        (bundle, Arc::new(answers))
    } else if source.is_dir() {
        let bundle = export::collect(source, manifest, models).await?;
        (
            bundle,
            Arc::new(socratic_sqlite::ResultsBlobs::read(source)?),
        )
    } else {
        return Err(Error::NotFound(format!(
            "{} is neither a bundle nor a results directory",
            source.display()
        )));
    };
    let reproduction = Reproduction::of(&bundle, cache)?;
    let options = BenchmarkOptions {
        out: out.to_owned(),
        concurrency,
        replay: true,
        preflight: false,
        ..BenchmarkOptions::default()
    };
    let benchmark = Benchmark::reproducing(options, reproduction, true).await?;
    let Outcome::Finished(finished) = benchmark.run(&()).await? else {
        return Err(Error::Invalid("the replay was interrupted".to_owned()));
    };
    let mut compared = Vec::new();
    for name in REPORT_FILES {
        let path = out.join(name);
        let replayed = std::fs::read(&path).map_err(Error::io(&path))?;
        let original = bundle.member(&bundle.report_path(name))?;
        compared.push((name.to_owned(), replayed == original));
    }
    Ok(Replayed {
        manifest: bundle.index.manifest,
        out: out.to_owned(),
        runs: u64::from(finished.summary.runs),
        calls: finished.called_now,
        compared,
    })
}

/// Writes a file that may exist already with the same bytes; other bytes are a conflict.
pub(super) async fn put_same(
    files: &dyn BlobStore,
    path: &str,
    bytes: Vec<u8>,
    target: &Path,
) -> Result<bool, Error> {
    let key = BlobKey::new(path).map_err(|e| BundleError::Malformed {
        member: path.to_owned(),
        message: e.to_string(),
    })?;
    match files.put(&key, bytes.clone(), BlobPutMode::Create).await {
        Ok(_) => Ok(true),
        Err(BlobError::AlreadyExists { .. }) => {
            let existing = files
                .get(&key)
                .await
                .with_context(|| format!("reading {path} in {}", target.display()))?;
            if existing == bytes {
                Ok(false)
            } else {
                Err(BundleError::Conflict {
                    target: target.to_owned(),
                    message: format!("{path} exists there with other bytes"),
                }
                .into())
            }
        }
        Err(e) => Err(e).with_context(|| format!("writing {path} in {}", target.display())),
    }
}

/// A finished benchmark to run again exactly: its manifest as stored, the catalog and models
/// it used, the time its summary was computed, and where its answers are.
pub(crate) struct Reproduction {
    /// The manifest, with its id and time.
    pub manifest: Manifest,
    /// The catalog entities it uses, each checked against the manifest's hash of it.
    pub catalog: Vec<CatalogItem>,
    /// The real models it called.
    pub models: Vec<ModelEntry>,
    /// When its summary was computed: the replay's clock stands still there.
    pub computed_at: Timestamp,
    /// The cached answers.
    pub cache: Arc<dyn BlobStore>,
}

impl Reproduction {
    /// The reproduction of a bundle's benchmark, answering from `cache`.
    pub(crate) fn of(bundle: &Bundle, cache: Arc<dyn BlobStore>) -> Result<Self, BundleError> {
        let manifest = bundle.manifest()?;
        let summary: ManifestSummary = bundle.json(&bundle.report_path("summary.json"))?;
        Ok(Self {
            catalog: catalog(bundle, &manifest)?,
            models: if bundle.members.contains_key(MODELS) {
                bundle.json(MODELS)?
            } else {
                Vec::new()
            },
            computed_at: summary.computed_at,
            manifest,
            cache,
        })
    }

    /// Stores the catalog and the manifest as they were; an entity or manifest stored with
    /// other content is a conflict.
    pub(crate) async fn install(
        &self,
        repository: &Repository,
        target: &Path,
    ) -> Result<(), Error> {
        for item in &self.catalog {
            item.put(repository, target).await?;
        }
        let stored = repository
            .create_manifest(&self.manifest)
            .await
            .context("storing the manifest")?;
        if stored.id != self.manifest.id {
            return Err(BundleError::Conflict {
                target: target.to_owned(),
                message: format!(
                    "it holds the same benchmark as manifest {}, not {}",
                    stored.id, self.manifest.id
                ),
            }
            .into());
        }
        Ok(())
    }
}

/// One catalog entity of a bundle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CatalogItem {
    Prompt(Prompt),
    Rubric(Rubric),
    Scenario(Scenario),
    Model(Model),
}

/// The folder of each kind of catalog entity in a bundle, by the prefix of its key.
pub(super) const CATALOG_FOLDERS: [(&str, &str); 4] = [
    ("PROMPT", "prompts"),
    ("RUBRIC", "rubrics"),
    ("SEED", "scenarios"),
    ("MODEL", "models"),
];

/// The bundle path of a catalog key (`PROMPT#id`).
pub(super) fn catalog_path(key: &str) -> Option<String> {
    let (kind, id) = key.split_once('#')?;
    let (_, folder) = CATALOG_FOLDERS.iter().find(|(k, _)| *k == kind)?;
    Some(format!("catalog/{folder}/{id}.json"))
}

impl CatalogItem {
    /// What differs from the entity of the same id stored in `repository`, if anything.
    pub(super) async fn conflict(&self, repository: &Repository) -> Result<Option<String>, Error> {
        match self {
            Self::Prompt(e) => differs(repository, e).await,
            Self::Rubric(e) => differs(repository, e).await,
            Self::Scenario(e) => differs(repository, e).await,
            Self::Model(e) => differs(repository, e).await,
        }
    }

    pub(super) async fn put(&self, repository: &Repository, target: &Path) -> Result<(), Error> {
        let stored = match self {
            Self::Prompt(e) => repository.put_catalog(e).await,
            Self::Rubric(e) => repository.put_catalog(e).await,
            Self::Scenario(e) => repository.put_catalog(e).await,
            Self::Model(e) => repository.put_catalog(e).await,
        };
        match stored {
            Ok(_) => Ok(()),
            Err(RepoError::Conflict { entity, id, .. }) => Err(BundleError::Conflict {
                target: target.to_owned(),
                message: format!(
                    "its {} {id} differs from the bundle's (same id, other content)",
                    entity.as_str()
                ),
            }
            .into()),
            Err(e) => Err(e).context("storing the catalog"),
        }
    }
}

async fn differs<E: CatalogEntity>(
    repository: &Repository,
    entity: &E,
) -> Result<Option<String>, Error> {
    let id = entity.id().to_string();
    let stored = repository
        .catalog_hash::<E>(entity.id())
        .await
        .with_context(|| format!("reading {} {id}", E::KIND.as_str()))?;
    let hash = content_hash(entity).context("hashing a catalog entity")?;
    Ok(stored.filter(|s| *s != hash).map(|_| {
        format!(
            "its {} {id} differs from the bundle's (same id, other content)",
            E::KIND.as_str()
        )
    }))
}

/// The catalog entities of a bundle, each present and matching the hash the manifest
/// recorded for it.
pub(super) fn catalog(
    bundle: &Bundle,
    manifest: &Manifest,
) -> Result<Vec<CatalogItem>, BundleError> {
    let mut items = Vec::new();
    for (key, hash) in &manifest.catalog_hashes {
        let path = catalog_path(key).ok_or_else(|| BundleError::Malformed {
            member: bundle.manifest_path(),
            message: format!("unknown catalog key {key}"),
        })?;
        let (item, found) = match key.split_once('#').map(|(kind, _)| kind) {
            Some("PROMPT") => parsed(bundle, &path, CatalogItem::Prompt)?,
            Some("RUBRIC") => parsed(bundle, &path, CatalogItem::Rubric)?,
            Some("SEED") => parsed(bundle, &path, CatalogItem::Scenario)?,
            _ => parsed(bundle, &path, CatalogItem::Model)?,
        };
        if found != *hash {
            return Err(BundleError::Malformed {
                member: path,
                message: format!("its content hash {found} is not the manifest's {hash}"),
            });
        }
        items.push(item);
    }
    Ok(items)
}

fn parsed<E: CatalogEntity>(
    bundle: &Bundle,
    path: &str,
    wrap: fn(E) -> CatalogItem,
) -> Result<(CatalogItem, socratic_core::canonical::ContentHash), BundleError> {
    let entity: E = bundle.json(path)?;
    let hash = content_hash(&entity).map_err(|e| BundleError::Malformed {
        member: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok((wrap(entity), hash))
}
