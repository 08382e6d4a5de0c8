//! Push: the benchmarks of a results directory copied into another data layer (a deployed
//! stack's table and bucket), so its admin API and report serve them as if they had run there.
//!
//! Every item is copied as it is stored (index keys, counters and versions included), and
//! every write is create-only: an item or blob the target already holds with the same
//! content is left alone, and one it holds with other content stops the push with
//! [`PushError::Conflict`] before anything of that benchmark is overwritten. A second push is
//! therefore a no-op, and a push stopped part way finishes when run again.
//!
//! Order: catalog entities, then each run's partition and artifacts, then the manifest's own
//! items with its `METADATA` last, so the manifest appears in the target only once everything
//! it refers to is there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt};
use socratic_core::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt};
use socratic_core::entity::Manifest;
use socratic_core::id::{ManifestId, RunId};
use socratic_core::keys;
use socratic_core::repository::{Repository, RunFilter};
use socratic_core::store::{Item, Key, PutMode, Query, Store, StoreError, StoreExt};
use socratic_sqlite::{ResultsBlobs, ResultsDir};

use crate::error::{Context, Error};

/// Runs copied at once.
const RUNS_AT_ONCE: usize = 8;

/// Where a push writes: a store and a blob store, such as a stack's DynamoDB table and S3
/// bucket.
#[derive(Clone)]
pub struct PushTarget {
    /// The target's store.
    pub store: Arc<dyn Store>,
    /// The target's blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// How the target is named in messages (`table T, bucket B`).
    pub name: String,
}

/// What to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// One benchmark; by default every benchmark of the directory whose runs all finished.
    pub manifest: Option<ManifestId>,
    /// Read and compare only: report what a push would write, and any conflict, writing
    /// nothing.
    pub dry_run: bool,
}

/// How far a push has come, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushProgress {
    /// A benchmark is starting: its id and run count.
    Manifest {
        /// The benchmark.
        id: ManifestId,
        /// Its runs.
        runs: usize,
    },
    /// Runs of the current benchmark copied so far.
    Runs {
        /// Copied (or found already there).
        done: usize,
        /// In all.
        of: usize,
    },
}

/// What a push did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    /// The benchmarks pushed.
    pub manifests: Vec<ManifestId>,
    /// Their runs.
    pub runs: usize,
    /// Items written (or to write).
    pub items_created: usize,
    /// Items the target already held, the same.
    pub items_unchanged: usize,
    /// Blobs written (or to write).
    pub blobs_created: usize,
    /// Blobs the target already held, the same.
    pub blobs_unchanged: usize,
}

impl Pushed {
    /// Whether the push wrote nothing (everything was there already).
    pub fn is_noop(&self) -> bool {
        self.items_created == 0 && self.blobs_created == 0
    }
}

/// Why a push stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The target holds something of the benchmark with other content; nothing was
    /// overwritten.
    #[error(
        "{target} already holds {what} with other content than {source_dir}; push overwrites nothing. Push to another stack, or remove it there first"
    )]
    Conflict {
        /// The target.
        target: String,
        /// The item or blob (`PROMPT#socratic-v1 / METADATA`, `blob raw/runs/…`).
        what: String,
        /// The results directory.
        source_dir: PathBuf,
    },
    /// The target lacks a resource (its table or bucket).
    #[error("{kind} {name} does not exist{hint}")]
    MissingResource {
        /// `table` or `bucket`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// What to check.
        hint: String,
    },
    /// Nothing to push.
    #[error("{0}")]
    Nothing(String),
}

/// Pushes the benchmarks of results directory `out` to `target`, calling `progress` as it
/// goes.
pub async fn push(
    out: &Path,
    target: &PushTarget,
    options: &PushOptions,
    progress: &(dyn Fn(PushProgress) + Send + Sync),
) -> Result<Pushed, Error> {
    let database = ResultsDir::read(out)?;
    let source = Source {
        store: Arc::new(database.store()),
        blobs: Arc::new(ResultsBlobs::read(out)?),
        repository: Repository::new(Arc::new(database.store())),
        dir: out.to_owned(),
    };
    let manifests = source.manifests(options.manifest).await?;
    let copier = Copier {
        source: &source,
        target,
        dry_run: options.dry_run,
        tally: Tally::default(),
    };
    let mut pushed = Pushed::default();
    for manifest in manifests {
        let runs = copier.manifest(&manifest, progress).await?;
        pushed.manifests.push(manifest.id);
        pushed.runs += runs;
    }
    copier.tally.add_to(&mut pushed);
    Ok(pushed)
}

/// The results directory read.
struct Source {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    repository: Repository,
    dir: PathBuf,
}

impl Source {
    /// The benchmarks to push: `id`, or every benchmark whose runs all finished. A
    /// benchmark still running is not pushed: nothing in the stack would finish it.
    async fn manifests(&self, id: Option<ManifestId>) -> Result<Vec<Manifest>, Error> {
        let reading = || format!("reading the benchmarks of {}", self.dir.display());
        let mut finished = Vec::new();
        for manifest in self
            .repository
            .all_manifests()
            .await
            .with_context(reading)?
        {
            if id.is_some_and(|id| id != manifest.id) {
                continue;
            }
            let done = self
                .repository
                .manifest_progress(&manifest.id)
                .await
                .with_context(reading)?
                .map_or(0, |p| p.finished);
            if done >= manifest.run_count {
                finished.push(manifest);
            } else if id.is_some() {
                return Err(PushError::Nothing(format!(
                    "benchmark {} has finished {done} of its {} runs; finish it (run it again with the same --out) before pushing it",
                    manifest.id, manifest.run_count
                ))
                .into());
            }
        }
        if let (Some(id), true) = (id, finished.is_empty()) {
            return Err(Error::NotFound(format!(
                "{} holds no benchmark {id}",
                self.dir.display()
            )));
        }
        if finished.is_empty() {
            return Err(PushError::Nothing(format!(
                "{} holds no finished benchmark to push",
                self.dir.display()
            ))
            .into());
        }
        // Oldest first, so a later benchmark never lands before an earlier one.
        finished.reverse();
        Ok(finished)
    }
}

/// Counts of what was copied, shared by the runs copied at once.
#[derive(Default)]
struct Tally {
    items_created: AtomicUsize,
    items_unchanged: AtomicUsize,
    blobs_created: AtomicUsize,
    blobs_unchanged: AtomicUsize,
}

impl Tally {
    fn add_to(&self, pushed: &mut Pushed) {
        pushed.items_created += self.items_created.load(Ordering::Relaxed);
        pushed.items_unchanged += self.items_unchanged.load(Ordering::Relaxed);
        pushed.blobs_created += self.blobs_created.load(Ordering::Relaxed);
        pushed.blobs_unchanged += self.blobs_unchanged.load(Ordering::Relaxed);
    }
}

/// Copies one item or blob at a time, create-only.
struct Copier<'a> {
    source: &'a Source,
    target: &'a PushTarget,
    dry_run: bool,
    tally: Tally,
}

impl Copier<'_> {
    /// Copies one benchmark; answers with its run count.
    async fn manifest(
        &self,
        manifest: &Manifest,
        progress: &(dyn Fn(PushProgress) + Send + Sync),
    ) -> Result<usize, Error> {
        let id = manifest.id;
        let reading = || format!("reading the runs of benchmark {id}");
        let pages: Vec<Vec<socratic_core::entity::Run>> = self
            .source
            .repository
            .run_pages(RunFilter::Manifest(id))
            .try_collect()
            .await
            .with_context(reading)?;
        let runs: Vec<RunId> = pages.into_iter().flatten().map(|r| r.id).collect();
        progress(PushProgress::Manifest {
            id,
            runs: runs.len(),
        });

        // What conflicts most often (the catalog, the manifest itself) is compared before
        // anything of the benchmark is written.
        let catalog: Vec<Key> = manifest
            .catalog_hashes
            .keys()
            .map(|pk| Key::new(pk.clone(), keys::METADATA))
            .collect();
        let mut firsts = catalog.clone();
        firsts.push(keys::manifest(&id));
        for key in &firsts {
            if let Some(item) = self.source_item(key).await? {
                self.compare_item(&item).await?;
            }
        }
        for key in &catalog {
            let item = self.source_item(key).await?.ok_or_else(|| {
                Error::NotFound(format!(
                    "benchmark {id} uses {key}, which {} does not hold",
                    self.source.dir.display()
                ))
            })?;
            self.copy_item(item).await?;
        }

        let done = AtomicUsize::new(0);
        futures::stream::iter(runs.iter())
            .map(|run| async {
                self.run(run).await?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(PushProgress::Runs {
                    done: n,
                    of: runs.len(),
                });
                Ok::<(), Error>(())
            })
            .buffer_unordered(RUNS_AT_ONCE)
            .try_collect::<()>()
            .await?;

        // The manifest's blobs, then its items: the hash lock, counts, stopped runs,
        // summaries, labels, and METADATA last.
        self.blobs_under(&format!("manifests/{id}.json")).await?;
        self.blobs_under(&format!("curated/manifests/{id}/"))
            .await?;
        let lock = keys::manifest_hash(&manifest.hash);
        if let Some(item) = self.source_item(&lock).await? {
            self.copy_item(item).await?;
        }
        let items = self
            .source
            .store
            .query_all(&Query::partition(keys::manifest_pk(&id)))
            .await
            .with_context(reading)?;
        let items = items
            .into_iter()
            .filter(|item| item.key.sk != keys::SUMMARY_CLAIM);
        for item in metadata_last(items) {
            self.copy_item(item).await?;
        }
        Ok(runs.len())
    }

    /// Copies a run's partition (run, turns, judgments, summary) and its artifacts.
    async fn run(&self, run: &RunId) -> Result<(), Error> {
        let items = self
            .source
            .store
            .query_all(&Query::partition(keys::run_pk(run)))
            .await
            .with_context(|| format!("reading run {run}"))?;
        let existing = self
            .target
            .store
            .query_all(&Query::partition(keys::run_pk(run)))
            .await
            .with_context(|| format!("reading run {run} in {}", self.target.name))?;
        // Artifacts first, the run's own item last: a run in the target has everything.
        self.blobs_under(&format!("raw/runs/{run}/")).await?;
        self.blobs_under(&format!("curated/runs/{run}.json"))
            .await?;
        for item in metadata_last(items) {
            match existing.iter().find(|e| e.key == item.key) {
                Some(there) => self.same_item(&item, there)?,
                None => self.create_item(item).await?,
            }
        }
        Ok(())
    }

    async fn source_item(&self, key: &Key) -> Result<Option<Item>, Error> {
        self.source
            .store
            .get(key)
            .await
            .with_context(|| format!("reading {key}"))
    }

    async fn target_item(&self, key: &Key) -> Result<Option<Item>, Error> {
        self.target
            .store
            .get(key)
            .await
            .with_context(|| format!("reading {key} in {}", self.target.name))
    }

    /// Fails if the target holds `item`'s key with other content.
    async fn compare_item(&self, item: &Item) -> Result<(), Error> {
        match self.target_item(&item.key).await? {
            Some(there) if !same(item, &there) => Err(self.conflict(item.key.to_string())),
            _ => Ok(()),
        }
    }

    async fn copy_item(&self, item: Item) -> Result<(), Error> {
        match self.target_item(&item.key).await? {
            Some(there) => self.same_item(&item, &there),
            None => self.create_item(item).await,
        }
    }

    fn same_item(&self, item: &Item, there: &Item) -> Result<(), Error> {
        if !same(item, there) {
            return Err(self.conflict(item.key.to_string()));
        }
        self.tally.items_unchanged.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn create_item(&self, item: Item) -> Result<(), Error> {
        if !self.dry_run {
            let key = item.key.clone();
            match self.target.store.put(item.clone(), PutMode::Create).await {
                Ok(()) => {}
                // Another push got there first: the same content is as good.
                Err(StoreError::AlreadyExists { .. }) => {
                    return match self.target_item(&key).await? {
                        Some(there) => self.same_item(&item, &there),
                        None => Err(self.conflict(key.to_string())),
                    };
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("writing {key} to {}", self.target.name));
                }
            }
        }
        self.tally.items_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Copies every blob whose key starts with `prefix`.
    async fn blobs_under(&self, prefix: &str) -> Result<(), Error> {
        let blobs = self
            .source
            .blobs
            .list_all(prefix)
            .await
            .with_context(|| format!("listing {prefix}"))?;
        for meta in blobs {
            let key = BlobKey::new(meta.key.as_str()).context("naming a blob")?;
            let bytes = self
                .source
                .blobs
                .get(&key)
                .await
                .with_context(|| format!("reading {key}"))?;
            self.copy_blob(&key, bytes).await?;
        }
        Ok(())
    }

    async fn copy_blob(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<(), Error> {
        match self.target.blobs.get(key).await {
            Ok(there) if there == bytes => {
                self.tally.blobs_unchanged.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Ok(_) => return Err(self.conflict(format!("blob {key}"))),
            Err(BlobError::NotFound { .. }) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading {key} in {}", self.target.name));
            }
        }
        if !self.dry_run {
            match self
                .target
                .blobs
                .put(key, bytes.clone(), BlobPutMode::Create)
                .await
            {
                Ok(_) => {}
                Err(BlobError::AlreadyExists { .. }) => {
                    return Box::pin(self.copy_blob(key, bytes)).await;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("writing {key} to {}", self.target.name));
                }
            }
        }
        self.tally.blobs_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn conflict(&self, what: String) -> Error {
        PushError::Conflict {
            target: self.target.name.clone(),
            what,
            source_dir: self.source.dir.clone(),
        }
        .into()
    }
}

/// A partition's items with its `METADATA` item last: the entity itself is written once
/// everything under it is there.
fn metadata_last(items: impl IntoIterator<Item = Item>) -> impl Iterator<Item = Item> {
    let (metadata, rest): (Vec<Item>, Vec<Item>) = items
        .into_iter()
        .partition(|item| item.key.sk == keys::METADATA);
    rest.into_iter().chain(metadata)
}

/// Whether the target's item holds what the source's does. Backends keep an entity's JSON in
/// their own form (DynamoDB as a map, with `3.0` read back as `3`), so entities and
/// attributes are compared as JSON values, numbers by value.
fn same(source: &Item, target: &Item) -> bool {
    let data = match (&source.data, &target.data) {
        (None, None) => true,
        (Some(a), Some(b)) => match (a.to_value(), b.to_value()) {
            (Ok(a), Ok(b)) => same_json(&a, &b),
            _ => false,
        },
        _ => false,
    };
    data && source.key == target.key
        && source.version == target.version
        && source.index_keys == target.index_keys
        && source.attributes.len() == target.attributes.len()
        && source
            .attributes
            .iter()
            .all(|(name, a)| target.attributes.get(name).is_some_and(|b| same_json(a, b)))
}

/// JSON equality with numbers compared by value (`3` equals `3.0`).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A deployed stack's data layer, named by the stack or by its table and bucket.
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackData {
    /// The stack's name: its `TableName` and `BucketName` outputs name them.
    Stack(String),
    /// The table and the bucket.
    Named {
        /// The DynamoDB table.
        table: String,
        /// The S3 bucket.
        bucket: String,
    },
}

/// The table and bucket of `data` as a push target, in the account and region of the
/// environment (`AWS_REGION`, `SOCRATIC_ENDPOINT_URL` for an emulator, the SDK's credential
/// chain). Both must exist: a missing one is [`PushError::MissingResource`], named.
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub async fn aws_target(data: &StackData) -> Result<PushTarget, Error> {
    use socratic_aws::{AwsSettings, DynamoStore, S3BlobStore, sdk_config, stack_output};

    let sdk = sdk_config(&AwsSettings::from_env()).await;
    let (table, bucket, hint) = match data {
        StackData::Stack(name) => {
            let outputs = socratic_aws::stack_outputs(&sdk, name)
                .await
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let table = stack_output(&outputs, name, "TableName")
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let bucket = stack_output(&outputs, name, "BucketName")
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let hint = format!(", though stack {name} names it: was it deleted by hand?");
            (table, bucket, hint)
        }
        StackData::Named { table, bucket } => (
            table.clone(),
            bucket.clone(),
            " in this account and region (check the name and AWS_REGION)".to_owned(),
        ),
    };
    let store = DynamoStore::from_sdk(&sdk, &table);
    let missing = |kind: &'static str, name: &str| PushError::MissingResource {
        kind,
        name: name.to_owned(),
        hint: hint.clone(),
    };
    if !store
        .table_exists()
        .await
        .with_context(|| format!("looking for table {table}"))?
    {
        return Err(missing("table", &table).into());
    }
    let blobs = S3BlobStore::from_sdk(&sdk, &bucket);
    if !blobs
        .bucket_exists()
        .await
        .with_context(|| format!("looking for bucket {bucket}"))?
    {
        return Err(missing("bucket", &bucket).into());
    }
    Ok(PushTarget {
        store: Arc::new(store),
        blobs: Arc::new(blobs),
        name: format!("table {table} and bucket {bucket}"),
    })
}
