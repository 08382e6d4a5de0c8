//! A typed repository over any [`Store`]: entities in, entities out.
//!
//! Items hold the entity's JSON in a `data` attribute and its kind in `entity`. Catalog entities
//! also carry the SHA-256 of their canonical JSON in `sha256`: they are immutable, so putting
//! identical content again is a no-op and different content under the same id is a
//! [`RepoError::Conflict`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use serde_json::Value;

use crate::canonical::{ContentHash, content_hash};
use crate::clock::Timestamp;
use crate::entity::{
    CatalogEntity, Entity, Judgment, Manifest, ManifestSummary, Problems, Run, RunStatus,
    RunSummary, Turn, Vector,
};
use crate::id::{ManifestId, ModelId, RunId};
use crate::keys::{self, EntityKind};
use crate::store::{
    Cursor, EntityJson, Item, Key, PutMode, Query, Store, StoreError, StoreExt, TxOp,
};

pub use crate::store::DATA_ATTRIBUTE;
/// Attribute holding the entity kind.
pub const ENTITY_ATTRIBUTE: &str = "entity";
/// Attribute holding a catalog entity's content hash.
pub const HASH_ATTRIBUTE: &str = "sha256";
/// Counter attribute of a manifest: runs that reached a final status.
pub const FINISHED_COUNTER: &str = "finished";
/// Attribute of a manifest's first count shard ([`keys::manifest_counts`]): how many shards
/// its runs are counted over. Written when the manifest is created, or its runs recounted
/// ([`Repository::recount_runs`]); a manifest without it was stored before runs were counted,
/// and its status is read from its runs.
pub const COUNT_SHARDS_ATTRIBUTE: &str = "shards";

/// Attribute of a manifest's summary claim: the run whose job claimed it.
const CLAIMANT_ATTRIBUTE: &str = "run";
/// Attribute of a manifest's summary claim: when it was claimed, in Unix milliseconds.
const CLAIMED_AT_ATTRIBUTE: &str = "claimed_at";

/// The counter attribute of a count shard that one status change adds to: `running>judged`.
pub fn status_change_counter(from: RunStatus, to: RunStatus) -> String {
    format!("{from}>{to}")
}

/// A run moved by [`Repository::move_run`].
#[derive(Debug, Clone)]
pub struct MovedRun {
    /// The run as stored now.
    pub run: Versioned<Run>,
    /// When this move finished the run: how many of its manifest's runs have finished, this
    /// one included.
    pub finished: Option<u64>,
}

/// A manifest with the number of its runs that reached a final status.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestProgress {
    /// The manifest.
    pub manifest: Manifest,
    /// Runs that reached a final status.
    pub finished: u64,
}

/// A manifest's runs counted by status, with its stopped (failed or skipped) runs: what an
/// operator looks at (`GET /manifests/{id}`, the admin tool's `status`).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestStatus {
    /// The manifest and its finished counter.
    pub progress: ManifestProgress,
    /// Runs per status.
    pub by_status: BTreeMap<RunStatus, u64>,
    /// Failed and skipped runs, up to the limit asked for, in run order.
    pub stopped: Vec<Run>,
    /// Failed and skipped runs in all.
    pub stopped_count: u64,
    /// The manifest's summary, once written.
    pub summary: Option<ManifestSummary>,
}

impl ManifestProgress {
    /// Whether every planned run reached a final status.
    pub fn is_complete(&self) -> bool {
        self.finished >= self.manifest.run_count
    }
}

/// What [`Repository::backfill`] did for a manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfilled {
    /// Runs written again with the index keys they lacked.
    pub reindexed: u64,
    /// Runs a worker moved while they were read (their move wrote every key).
    pub moved_meanwhile: u64,
    /// Runs counted, when every run had finished; `None` while some are still running.
    pub recounted: Option<u64>,
}

/// What went wrong in a repository operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No entity with this id.
    #[error("{entity} {id} not found")]
    NotFound {
        /// Its kind.
        entity: EntityKind,
        /// Its id.
        id: String,
    },
    /// Different content already exists under this id of an immutable entity.
    #[error(
        "{entity} {id} already exists with different content (stored sha256 {stored}, new {new})"
    )]
    Conflict {
        /// Its kind.
        entity: EntityKind,
        /// Its id.
        id: String,
        /// Hash of the stored content.
        stored: String,
        /// Hash of the rejected content.
        new: String,
    },
    /// The entity breaks an invariant; nothing was written.
    #[error("invalid {entity}: {problems}")]
    Invalid {
        /// Its kind.
        entity: EntityKind,
        /// Every problem.
        problems: Problems,
    },
    /// A stored item cannot be read as the entity it should hold.
    #[error("corrupt item {key}: {message}")]
    Corrupt {
        /// The item's key.
        key: Key,
        /// What is wrong.
        message: String,
    },
}

impl RepoError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RepoError::Store(e) if e.is_retryable())
    }
}

/// Whether a catalog put wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entity was new and is now stored.
    Created,
    /// Identical content was already stored; nothing changed.
    Unchanged,
}

/// An entity with the version of the item it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<E> {
    /// The entity.
    pub value: E,
    /// The item's version, for [`Repository::update`].
    pub version: u64,
}

/// Everything stored about one run, read with one query.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run.
    pub run: Versioned<Run>,
    /// Its turns, in order.
    pub turns: Vec<Turn>,
    /// Its judgments, by turn then judge.
    pub judgments: Vec<Judgment>,
    /// Its summary, once curated.
    pub summary: Option<RunSummary>,
}

/// Which runs to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFilter {
    /// Runs of a manifest, by run id.
    Manifest(ManifestId),
    /// Runs of a tutor model, newest first.
    Model(ModelId),
    /// Runs in a status, most recently changed first.
    Status(RunStatus),
    /// Runs of a vector, newest first.
    Vector(Vector),
    /// Every run, newest first.
    All,
}

/// One page of entities.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityPage<E> {
    /// The entities.
    pub items: Vec<E>,
    /// Where the next page starts.
    pub cursor: Option<Cursor>,
}

/// Builds the item for an entity at `version`.
pub fn to_item<E: Entity>(entity: &E, version: u64) -> Result<Item, RepoError> {
    let key = entity.key();
    // Straight to text: no tree of values on the way to any store.
    let data = EntityJson::of(entity).map_err(|e| RepoError::Corrupt {
        key: key.clone(),
        message: format!("cannot serialise: {e}"),
    })?;
    let mut item = Item::new(key)
        .with_attribute(ENTITY_ATTRIBUTE, Value::from(E::KIND.as_str()))
        .with_data(data);
    item.version = version;
    item.index_keys.extend(entity.index_keys());
    Ok(item)
}

/// The first count shard of a fresh manifest, marking its runs as counted.
fn counts_marker(id: &ManifestId) -> Item {
    Item::new(keys::manifest_counts(id, 0))
        .with_attribute(COUNT_SHARDS_ATTRIBUTE, Value::from(keys::COUNT_SHARDS))
}

/// The copy of a stopped run kept under its manifest ([`keys::stopped_run`]): the run's
/// entity, in no index.
fn stopped_copy(run: &Run) -> Result<Item, RepoError> {
    let mut item = to_item(run, 1)?;
    item.key = keys::stopped_run(&run.manifest, &run.id);
    item.index_keys.clear();
    Ok(item)
}

/// A manifest's runs per status, from its count shards: every run starts pending, and each
/// status change counted moves one run from one status to another. Statuses without runs
/// are left out.
fn counts_by_status(run_count: u64, shards: &[Item]) -> BTreeMap<RunStatus, u64> {
    let mut net: BTreeMap<RunStatus, i64> = BTreeMap::new();
    net.insert(
        RunStatus::Pending,
        i64::try_from(run_count).unwrap_or(i64::MAX),
    );
    for shard in shards {
        for (name, value) in &shard.attributes {
            let Some((from, to)) = name.split_once('>') else {
                continue;
            };
            let (Some(from), Some(to), Some(n)) =
                (RunStatus::parse(from), RunStatus::parse(to), value.as_i64())
            else {
                continue;
            };
            *net.entry(from).or_default() -= n;
            *net.entry(to).or_default() += n;
        }
    }
    net.into_iter()
        .filter_map(|(status, n)| Some((status, u64::try_from(n).ok().filter(|&n| n > 0)?)))
        .collect()
}

/// Reads an entity back from its item, checking its kind and invariants.
pub fn from_item<E: Entity>(item: &Item) -> Result<E, RepoError> {
    let corrupt = |message: String| RepoError::Corrupt {
        key: item.key.clone(),
        message,
    };
    match item
        .attributes
        .get(ENTITY_ATTRIBUTE)
        .and_then(Value::as_str)
    {
        Some(kind) if kind == E::KIND.as_str() => {}
        other => {
            return Err(corrupt(format!(
                "expected a {} item, found {other:?}",
                E::KIND
            )));
        }
    }
    let data = item
        .data
        .as_ref()
        .ok_or_else(|| corrupt("no data attribute".to_owned()))?;
    let entity: E = data.read().map_err(|e| corrupt(e.to_string()))?;
    entity.validate().map_err(|p| corrupt(p.to_string()))?;
    Ok(entity)
}

/// A transaction operation creating `entity` (write-once), for
/// [`Repository::move_run_with`].
pub fn create_op<E: Entity>(entity: &E) -> Result<TxOp, RepoError> {
    validated(entity)?;
    Ok(TxOp::Put {
        item: to_item(entity, 1)?,
        mode: PutMode::Create,
    })
}

/// A transaction operation writing `entity` whatever is there (a recomputed summary), for
/// [`Repository::move_run_with`].
pub fn overwrite_op<E: Entity>(entity: &E) -> Result<TxOp, RepoError> {
    validated(entity)?;
    Ok(TxOp::Put {
        item: to_item(entity, 1)?,
        mode: PutMode::Overwrite,
    })
}

fn validated<E: Entity>(entity: &E) -> Result<(), RepoError> {
    entity.validate().map_err(|problems| RepoError::Invalid {
        entity: E::KIND,
        problems,
    })
}

fn hash_of<E: Entity>(entity: &E) -> Result<ContentHash, RepoError> {
    content_hash(entity).map_err(|e| RepoError::Corrupt {
        key: entity.key(),
        message: format!("cannot hash: {e}"),
    })
}

/// The most immutable items the repository keeps in memory before starting afresh.
const IMMUTABLE_CACHE_LIMIT: usize = 10_000;

/// The typed repository. Cloning shares the store and the cache.
///
/// Catalog entities and manifests never change once stored, so the repository keeps the items
/// it has read in memory, and the entities parsed from them, and serves later reads of them
/// without a store request or parsing them again. Everything mutable (runs, counters, turns,
/// judgments, summaries) is always read from the store.
#[derive(Clone)]
pub struct Repository {
    store: Arc<dyn Store>,
    immutable: ImmutableCache<Item>,
    parsed: ImmutableCache<Parsed>,
}

/// An immutable entity as parsed and validated from its item, shared by every later read.
type Parsed = Arc<dyn std::any::Any + Send + Sync>;

/// Values of immutable items by key, shared by the repository's clones. It holds at most
/// [`IMMUTABLE_CACHE_LIMIT`] values, and starts afresh when full.
struct ImmutableCache<V>(Arc<std::sync::RwLock<std::collections::HashMap<Key, V>>>);

impl<V> Clone for ImmutableCache<V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<V: Clone> ImmutableCache<V> {
    fn new() -> Self {
        Self(Arc::default())
    }

    fn get(&self, key: &Key) -> Option<V> {
        let map = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).cloned()
    }

    fn contains(&self, key: &Key) -> bool {
        let map = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.contains_key(key)
    }

    /// Adds values; when they would fill it, the cache is emptied first, so every value just
    /// added stays.
    fn insert_all(&self, entries: Vec<(Key, V)>) {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() + entries.len() >= IMMUTABLE_CACHE_LIMIT {
            map.clear();
        }
        map.extend(entries);
    }
}

fn is_immutable(key: &Key) -> bool {
    key.sk == keys::METADATA
        && ["PROMPT#", "RUBRIC#", "SEED#", "MODEL#", "MANIFEST#"]
            .iter()
            .any(|p| key.pk.starts_with(p))
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository").finish_non_exhaustive()
    }
}

impl Repository {
    /// A repository over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            immutable: ImmutableCache::new(),
            parsed: ImmutableCache::new(),
        }
    }

    /// Reads an item, from memory when it is immutable and was read before.
    async fn read(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let cacheable = is_immutable(key);
        if cacheable && let Some(item) = self.immutable.get(key) {
            return Ok(Some(item));
        }
        let item = self.store.get(key).await?;
        if cacheable && let Some(item) = &item {
            self.immutable.insert_all(vec![(key.clone(), item.clone())]);
        }
        Ok(item)
    }

    /// Stores a catalog entity. Identical content already stored is a no-op; different
    /// content under the same id is [`RepoError::Conflict`].
    pub async fn put_catalog<E: CatalogEntity>(&self, entity: &E) -> Result<PutOutcome, RepoError> {
        validated(entity)?;
        let hash = hash_of(entity)?;
        let item = to_item(entity, 1)?.with_attribute(HASH_ATTRIBUTE, Value::from(hash.as_str()));
        match self.store.put(item, PutMode::Create).await {
            Ok(()) => Ok(PutOutcome::Created),
            Err(StoreError::AlreadyExists { key }) => {
                let stored = self.catalog_hash::<E>(entity.id()).await?.ok_or_else(|| {
                    RepoError::Corrupt {
                        key,
                        message: "item vanished after a create conflict".to_owned(),
                    }
                })?;
                if stored == hash {
                    Ok(PutOutcome::Unchanged)
                } else {
                    Err(RepoError::Conflict {
                        entity: E::KIND,
                        id: entity.id().to_string(),
                        stored: stored.to_string(),
                        new: hash.to_string(),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a catalog entity.
    pub async fn get_catalog<E: CatalogEntity>(&self, id: &E::Id) -> Result<Option<E>, RepoError> {
        Ok(self.get::<E>(&E::key_of(id)).await?.map(|v| v.value))
    }

    /// Reads many catalog entities with one batch read (those read before come from memory).
    pub async fn get_catalog_many<E: CatalogEntity>(
        &self,
        ids: &[E::Id],
    ) -> Result<Vec<Option<E>>, RepoError> {
        let keys: Vec<Key> = ids.iter().map(E::key_of).collect();
        let missing: Vec<Key> = keys
            .iter()
            .filter(|k| !self.immutable.contains(k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let fetched = self.store.get_many(&missing).await?;
            self.immutable.insert_all(
                fetched
                    .into_iter()
                    .flatten()
                    .map(|item| (item.key.clone(), item))
                    .collect(),
            );
        }
        let mut entities = Vec::with_capacity(keys.len());
        for key in &keys {
            entities.push(self.get::<E>(key).await?.map(|v| v.value));
        }
        Ok(entities)
    }

    /// Reads a catalog entity that must exist.
    pub async fn require_catalog<E: CatalogEntity>(&self, id: &E::Id) -> Result<E, RepoError> {
        self.get_catalog::<E>(id)
            .await?
            .ok_or_else(|| RepoError::NotFound {
                entity: E::KIND,
                id: id.to_string(),
            })
    }

    /// The stored content hash of a catalog entity.
    pub async fn catalog_hash<E: CatalogEntity>(
        &self,
        id: &E::Id,
    ) -> Result<Option<ContentHash>, RepoError> {
        let key = E::key_of(id);
        let Some(item) = self.read(&key).await? else {
            return Ok(None);
        };
        let hash = item
            .attributes
            .get(HASH_ATTRIBUTE)
            .and_then(Value::as_str)
            .and_then(|h| ContentHash::try_from(h.to_owned()).ok())
            .ok_or_else(|| RepoError::Corrupt {
                key,
                message: "missing or invalid sha256".to_owned(),
            })?;
        Ok(Some(hash))
    }

    /// Lists catalog entities of one kind by id, a page at a time.
    pub async fn list_catalog<E: CatalogEntity>(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<EntityPage<E>, RepoError> {
        let query = Query::index(keys::BY_TYPE, keys::type_partition(E::KIND))
            .limit(limit)
            .after(cursor);
        self.page(&query).await
    }

    /// Reads any entity by key.
    pub async fn get<E: Entity>(&self, key: &Key) -> Result<Option<Versioned<E>>, RepoError> {
        let immutable = is_immutable(key);
        if immutable
            && let Some(parsed) = self.parsed.get(key)
            && let Some(entity) = parsed.downcast_ref::<Versioned<E>>()
        {
            return Ok(Some(entity.clone()));
        }
        let Some(item) = self.read(key).await? else {
            return Ok(None);
        };
        let entity = Versioned {
            value: from_item::<E>(&item)?,
            version: item.version,
        };
        if immutable {
            let parsed: Parsed = Arc::new(entity.clone());
            self.parsed.insert_all(vec![(key.clone(), parsed)]);
        }
        Ok(Some(entity))
    }

    /// Creates an entity; fails with [`StoreError::AlreadyExists`] if its key exists.
    pub async fn create<E: Entity>(&self, entity: &E) -> Result<(), RepoError> {
        validated(entity)?;
        Ok(self.store.put(to_item(entity, 1)?, PutMode::Create).await?)
    }

    /// Writes an entity once. If it already exists, the stored one wins and is returned, so a
    /// retried handler converges on the first write.
    pub async fn put_once<E: Entity>(&self, entity: E) -> Result<E, RepoError> {
        match self.create(&entity).await {
            Ok(()) => Ok(entity),
            Err(RepoError::Store(StoreError::AlreadyExists { key })) => self
                .get::<E>(&key)
                .await?
                .map(|v| v.value)
                .ok_or_else(|| RepoError::Corrupt {
                    key,
                    message: "item vanished after a create conflict".to_owned(),
                }),
            Err(e) => Err(e),
        }
    }

    /// Replaces an entity if its item is still at `expected_version`; returns the new version.
    /// A concurrent change gives [`StoreError::ConditionFailed`].
    pub async fn update<E: Entity>(
        &self,
        entity: &E,
        expected_version: u64,
    ) -> Result<u64, RepoError> {
        validated(entity)?;
        let version = expected_version + 1;
        let item = to_item(entity, version)?;
        self.store
            .put(item, PutMode::UpdateVersion(expected_version))
            .await?;
        Ok(version)
    }

    /// Writes an entity whatever is there (summaries, which are recomputed idempotently).
    ///
    /// Such items are never updated conditionally, so they stay at version 1 and the write
    /// needs no read first.
    pub async fn overwrite<E: Entity>(&self, entity: &E) -> Result<(), RepoError> {
        validated(entity)?;
        Ok(self
            .store
            .put(to_item(entity, 1)?, PutMode::Overwrite)
            .await?)
    }

    /// Stores a manifest and its hash lock in one transaction. If a manifest with the same hash
    /// exists, nothing is written and the existing manifest is returned.
    pub async fn create_manifest(&self, manifest: &Manifest) -> Result<Manifest, RepoError> {
        validated(manifest)?;
        let lock = Item::new(keys::manifest_hash(&manifest.hash))
            .with_attribute(
                ENTITY_ATTRIBUTE,
                Value::from(EntityKind::ManifestHash.as_str()),
            )
            .with_attribute("manifest", Value::from(manifest.id.to_string()));
        let ops = vec![
            TxOp::Put {
                item: lock,
                mode: PutMode::Create,
            },
            TxOp::Put {
                item: to_item(manifest, 1)?,
                mode: PutMode::Create,
            },
            // Its runs are counted from now on, by the moves that change their status.
            TxOp::Put {
                item: counts_marker(&manifest.id),
                mode: PutMode::Create,
            },
        ];
        match self.store.transact(ops).await {
            Ok(()) => Ok(manifest.clone()),
            Err(StoreError::TransactionCancelled { index: 0, .. }) => {
                let existing = self.manifest_by_hash(&manifest.hash).await?;
                existing.ok_or_else(|| RepoError::Corrupt {
                    key: keys::manifest_hash(&manifest.hash),
                    message: "hash lock points at a missing manifest".to_owned(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The manifest with this content hash, if one was stored.
    pub async fn manifest_by_hash(
        &self,
        hash: &ContentHash,
    ) -> Result<Option<Manifest>, RepoError> {
        let key = keys::manifest_hash(hash);
        let Some(lock) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let id: ManifestId = lock
            .attributes
            .get("manifest")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RepoError::Corrupt {
                key,
                message: "hash lock without a manifest id".to_owned(),
            })?;
        Ok(self
            .get::<Manifest>(&keys::manifest(&id))
            .await?
            .map(|v| v.value))
    }

    /// Reads a manifest with its finished counter. The counter lives on the manifest's item,
    /// so this reads the store and never the cache of immutable items.
    pub async fn manifest_progress(
        &self,
        id: &ManifestId,
    ) -> Result<Option<ManifestProgress>, RepoError> {
        let Some(item) = self.store.get(&keys::manifest(id)).await? else {
            return Ok(None);
        };
        Ok(Some(ManifestProgress {
            manifest: from_item::<Manifest>(&item)?,
            finished: u64::try_from(item.counter(FINISHED_COUNTER)).unwrap_or(0),
        }))
    }

    /// The manifest's runs counted by status, with up to `max_stopped` failed or skipped runs
    /// and its summary.
    ///
    /// At most two requests however many runs it has: one batch read of the manifest, its
    /// summary and its count shards, and, when runs stopped, one query of their copies (more
    /// pages only when more stopped runs are asked for than a page holds). A
    /// manifest stored before runs were counted has its runs read instead, a page at a time.
    pub async fn manifest_status(
        &self,
        id: &ManifestId,
        max_stopped: usize,
    ) -> Result<Option<ManifestStatus>, RepoError> {
        let mut wanted = vec![keys::manifest(id), keys::manifest_summary(id)];
        wanted.extend((0..keys::COUNT_SHARDS).map(|shard| keys::manifest_counts(id, shard)));
        let mut items = self.store.get_many(&wanted).await?.into_iter();
        let (Some(Some(item)), Some(summary)) = (items.next(), items.next()) else {
            return Ok(None);
        };
        let progress = ManifestProgress {
            manifest: from_item::<Manifest>(&item)?,
            finished: u64::try_from(item.counter(FINISHED_COUNTER)).unwrap_or(0),
        };
        let summary = summary
            .map(|item| from_item::<ManifestSummary>(&item))
            .transpose()?;
        let shards: Vec<Item> = items.flatten().collect();
        let counted = shards.iter().any(|shard| {
            shard.key == keys::manifest_counts(id, 0)
                && shard.counter(COUNT_SHARDS_ATTRIBUTE) == i64::from(keys::COUNT_SHARDS)
        });
        if !counted {
            return self
                .status_from_runs(progress, summary, max_stopped)
                .await
                .map(Some);
        }
        let by_status = counts_by_status(progress.manifest.run_count, &shards);
        let stopped_count = by_status
            .iter()
            .filter(|(status, _)| status.is_stopped())
            .map(|(_, n)| n)
            .sum();
        let mut stopped = Vec::new();
        let mut query = Query::partition(keys::manifest_pk(id)).prefix(keys::STOPPED_PREFIX);
        while stopped_count > 0 && stopped.len() < max_stopped {
            query.limit = Some(max_stopped - stopped.len());
            let page = self.store.query(&query).await?;
            for item in &page.items {
                stopped.push(from_item::<Run>(item)?);
            }
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        Ok(Some(ManifestStatus {
            progress,
            by_status,
            stopped,
            stopped_count,
            summary,
        }))
    }

    /// [`Repository::manifest_status`] of a manifest whose runs were not counted: every run
    /// read through its index, a page at a time.
    async fn status_from_runs(
        &self,
        progress: ManifestProgress,
        summary: Option<ManifestSummary>,
        max_stopped: usize,
    ) -> Result<ManifestStatus, RepoError> {
        let id = progress.manifest.id;
        let mut status = ManifestStatus {
            progress,
            by_status: BTreeMap::new(),
            stopped: Vec::new(),
            stopped_count: 0,
            summary,
        };
        let mut pages = std::pin::pin!(self.run_pages(RunFilter::Manifest(id)));
        while let Some(runs) = pages.try_next().await? {
            for run in runs {
                *status.by_status.entry(run.status).or_default() += 1;
                if run.status.is_stopped() {
                    status.stopped_count += 1;
                    if status.stopped.len() < max_stopped {
                        status.stopped.push(run);
                    }
                }
            }
        }
        Ok(status)
    }

    /// Counts a manifest's stored runs again, from the runs themselves: rewrites its count
    /// shards, the copies of its stopped runs and its finished counter, so
    /// [`Repository::manifest_status`] and [`Repository::manifest_progress`] answer from them. For runs that were stored rather than moved (an import, an upload) and for
    /// manifests stored before runs were counted. Run it while no worker moves the
    /// manifest's runs: a move made during the recount may be counted twice or not at all.
    /// Returns how many runs it counted.
    pub async fn recount_runs(&self, id: &ManifestId) -> Result<u64, RepoError> {
        let mut tallies: Vec<BTreeMap<String, i64>> =
            vec![BTreeMap::new(); keys::COUNT_SHARDS as usize];
        let (mut counted, mut finished) = (0, 0);
        let mut pages = std::pin::pin!(self.run_pages(RunFilter::Manifest(*id)));
        while let Some(runs) = pages.try_next().await? {
            for run in runs {
                counted += 1;
                if run.status.is_final() {
                    finished += 1;
                }
                if run.status.is_stopped() {
                    self.store
                        .put(stopped_copy(&run)?, PutMode::Overwrite)
                        .await?;
                }
                if run.status != RunStatus::Pending {
                    let shard = keys::count_shard(&run.id) as usize;
                    let name = status_change_counter(RunStatus::Pending, run.status);
                    *tallies[shard].entry(name).or_default() += 1;
                }
            }
        }
        // Shard 0, which marks the manifest as counted, is written last.
        for (shard, tally) in tallies.into_iter().enumerate().rev() {
            let shard = u32::try_from(shard).unwrap_or(0);
            let mut item = if shard == 0 {
                counts_marker(id)
            } else {
                Item::new(keys::manifest_counts(id, shard))
            };
            for (name, n) in tally {
                item.attributes.insert(name, Value::from(n));
            }
            self.store.put(item, PutMode::Overwrite).await?;
        }
        // The finished counter, moved by the difference so the manifest's item is kept.
        if let Some(item) = self.store.get(&keys::manifest(id)).await? {
            let delta = finished - item.counter(FINISHED_COUNTER);
            if delta != 0 {
                self.store
                    .increment(&keys::manifest(id), FINISHED_COUNTER, delta)
                    .await?;
            }
        }
        Ok(counted)
    }

    /// Replaces `run` with `next`, conditional on the stored version. A change of status is
    /// counted on the manifest (in one of its count shards; reaching a final status also in its
    /// finished counter), and a run that stops leaves a copy under the manifest, in the same
    /// transaction, so each is counted exactly once. `None` when another writer changed the
    /// run first.
    pub async fn move_run(
        &self,
        run: &Versioned<Run>,
        next: Run,
    ) -> Result<Option<MovedRun>, RepoError> {
        self.move_run_with(run, next, Vec::new()).await
    }

    /// [`Repository::move_run`] together with other writes (from [`create_op`] or
    /// [`overwrite_op`]: the turn or judgment that completes a stage, a run's summary), all
    /// or nothing. `None` when any of them failed its condition: another writer changed the
    /// run or stored the item first, and the caller reads again to see what it did.
    ///
    /// A move that keeps the status and has nothing else to write is one conditional put.
    pub async fn move_run_with(
        &self,
        run: &Versioned<Run>,
        next: Run,
        also: Vec<TxOp>,
    ) -> Result<Option<MovedRun>, RepoError> {
        let version = run.version + 1;
        let item = to_item(&next, version)?;
        let mode = PutMode::UpdateVersion(run.version);
        let from = run.value.status;
        let changes = next.status != from;
        let finishes = next.status.is_final() && !from.is_final();
        let moved = |finished| MovedRun {
            run: Versioned {
                value: next.clone(),
                version,
            },
            finished,
        };
        let stopped = (changes && next.status.is_stopped())
            .then(|| stopped_copy(&next))
            .transpose()?;
        if !changes && also.is_empty() {
            return match self.store.put(item, mode).await {
                Ok(()) => Ok(Some(moved(None))),
                Err(StoreError::ConditionFailed { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        let manifest = &run.value.manifest;
        let mut ops = vec![TxOp::Put { item, mode }];
        ops.extend(also);
        // The finished counter first: its value after the move is the first count.
        if finishes {
            ops.push(TxOp::Increment {
                key: keys::manifest(manifest),
                attribute: FINISHED_COUNTER.to_owned(),
                by: 1,
            });
        }
        if changes {
            ops.push(TxOp::Increment {
                key: keys::manifest_counts(manifest, keys::count_shard(&run.value.id)),
                attribute: status_change_counter(from, next.status),
                by: 1,
            });
        }
        if let Some(copy) = stopped {
            ops.push(TxOp::Put {
                item: copy,
                mode: PutMode::Overwrite,
            });
        }
        // Only a finishing move needs a count back (it may be the manifest's last run); the
        // others skip the read that counting may take.
        let result = if finishes {
            self.store.transact_and_count(ops).await
        } else {
            self.store.transact(ops).await.map(|()| Vec::new())
        };
        match result {
            Ok(counts) => Ok(Some(moved(
                counts.first().map(|&n| u64::try_from(n).unwrap_or(0)),
            ))),
            Err(StoreError::TransactionCancelled { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings a manifest stored by an earlier release up to date, and answers with what it
    /// did: runs written before an index existed (the type index that lists every run) are
    /// written again with every index key, conditional on their version, so a run a worker
    /// moves meanwhile is left to that move (which writes its keys too); and a manifest whose
    /// runs have all finished has them counted ([`Repository::recount_runs`]). Run it again
    /// at will: a second pass finds nothing to index.
    pub async fn backfill(&self, id: &ManifestId) -> Result<Backfilled, RepoError> {
        let mut done = Backfilled::default();
        let mut pages = std::pin::pin!(self.run_pages(RunFilter::Manifest(*id)));
        while let Some(runs) = pages.try_next().await? {
            for run in runs {
                let key = keys::run(&run.id);
                let Some(item) = self.store.get(&key).await? else {
                    continue;
                };
                let current = to_item(&run, item.version + 1)?;
                if current.index_keys == item.index_keys {
                    continue;
                }
                match self
                    .store
                    .put(current, PutMode::UpdateVersion(item.version))
                    .await
                {
                    Ok(()) => done.reindexed += 1,
                    Err(StoreError::ConditionFailed { .. }) => done.moved_meanwhile += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if let Some(progress) = self.manifest_progress(id).await?
            && progress.is_complete()
        {
            done.recounted = Some(self.recount_runs(id).await?);
        }
        Ok(done)
    }

    /// Claims the writing of a manifest's summary for the job of run `claimant`: `true` when
    /// that job is to write it. The first claim wins; the claimant's own job, delivered again
    /// after a crash, keeps it; another job takes it over only once `lease` has passed since
    /// it was claimed (the claimant died with its message dead-lettered), by a conditional
    /// write, so two takers never both win. With it, runs that finish at the same moment do
    /// not both write the summary.
    pub async fn claim_summary(
        &self,
        id: &ManifestId,
        claimant: &RunId,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<bool, RepoError> {
        let key = keys::summary_claim(id);
        let claim = |version: u64| {
            let mut item = Item::new(key.clone())
                .with_attribute(CLAIMANT_ATTRIBUTE, Value::from(claimant.to_string()))
                .with_attribute(CLAIMED_AT_ATTRIBUTE, Value::from(now.as_millis()));
            item.version = version;
            item
        };
        match self.store.put(claim(1), PutMode::Create).await {
            Ok(()) => return Ok(true),
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(held) = self.store.get(&key).await? else {
            return Ok(false);
        };
        if held
            .attributes
            .get(CLAIMANT_ATTRIBUTE)
            .and_then(Value::as_str)
            == Some(claimant.to_string().as_str())
        {
            return Ok(true);
        }
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let claimed_at = held.counter(CLAIMED_AT_ATTRIBUTE);
        if now.as_millis().saturating_sub(claimed_at) < lease_ms {
            return Ok(false);
        }
        let taken = claim(held.version + 1);
        match self
            .store
            .put(taken, PutMode::UpdateVersion(held.version))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a judgment once: `false` when it was already stored (by a racing or
    /// redelivered worker), which then wins.
    pub async fn store_judgment(&self, judgment: &Judgment) -> Result<bool, RepoError> {
        match self.create(judgment).await {
            Ok(()) => Ok(true),
            Err(RepoError::Store(StoreError::AlreadyExists { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates runs that do not exist yet, in transactions of up to 100. A chunk that collides
    /// with runs created by an earlier attempt is retried one run at a time.
    pub async fn create_runs(&self, runs: &[&Run]) -> Result<(), RepoError> {
        for chunk in runs.chunks(crate::store::MAX_TRANSACTION_ITEMS) {
            let ops = chunk
                .iter()
                .map(|run| {
                    Ok(TxOp::Put {
                        item: to_item(*run, 1)?,
                        mode: PutMode::Create,
                    })
                })
                .collect::<Result<Vec<_>, RepoError>>()?;
            match self.store.transact(ops).await {
                Ok(()) => {}
                Err(StoreError::TransactionCancelled { .. }) => {
                    for run in chunk {
                        match self.store.put(to_item(*run, 1)?, PutMode::Create).await {
                            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Lists manifests, newest first.
    pub async fn list_manifests(
        &self,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<EntityPage<Manifest>, RepoError> {
        let query = Query::index(keys::BY_TYPE, keys::type_partition(EntityKind::Manifest))
            .order(crate::store::Order::Descending)
            .limit(limit)
            .after(cursor);
        self.page(&query).await
    }

    /// Every manifest, newest first, read a page at a time.
    pub async fn all_manifests(&self) -> Result<Vec<Manifest>, RepoError> {
        let mut manifests = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_manifests(100, cursor).await?;
            manifests.extend(page.items);
            cursor = page.cursor;
            if cursor.is_none() {
                return Ok(manifests);
            }
        }
    }

    /// Reads a run.
    pub async fn get_run(&self, id: &RunId) -> Result<Option<Versioned<Run>>, RepoError> {
        self.get::<Run>(&keys::run(id)).await
    }

    /// Reads the run, its turns, judgments and summary with one query of its partition.
    pub async fn run_record(&self, id: &RunId) -> Result<Option<RunRecord>, RepoError> {
        let items = self
            .store
            .query_all(&Query::partition(keys::run_pk(id)))
            .await?;
        let mut run = None;
        let (mut turns, mut judgments, mut summary) = (Vec::new(), Vec::new(), None);
        for item in &items {
            let sk = item.key.sk.as_str();
            if sk == keys::METADATA {
                run = Some(Versioned {
                    value: from_item::<Run>(item)?,
                    version: item.version,
                });
            } else if sk == keys::SUMMARY {
                summary = Some(from_item::<RunSummary>(item)?);
            } else if sk.starts_with(keys::TURN_PREFIX) {
                turns.push(from_item::<Turn>(item)?);
            } else if sk.starts_with(keys::JUDGE_PREFIX) {
                judgments.push(from_item::<Judgment>(item)?);
            }
        }
        Ok(run.map(|run| RunRecord {
            run,
            turns,
            judgments,
            summary,
        }))
    }

    /// Reads the summaries of many runs with one batch read; `None` for a run not curated.
    pub async fn run_summaries(&self, ids: &[RunId]) -> Result<Vec<Option<RunSummary>>, RepoError> {
        let keys: Vec<Key> = ids.iter().map(keys::run_summary).collect();
        self.store
            .get_many(&keys)
            .await?
            .iter()
            .map(|item| item.as_ref().map(from_item::<RunSummary>).transpose())
            .collect()
    }

    /// Lists runs through an index, a page at a time. Never scans.
    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<EntityPage<Run>, RepoError> {
        use crate::store::Order::{Ascending, Descending};
        let (index, partition, order) = match filter {
            RunFilter::Manifest(id) => (
                keys::BY_MANIFEST,
                keys::by_manifest_partition(id),
                Ascending,
            ),
            RunFilter::Model(id) => (keys::BY_MODEL, keys::by_model_partition(id), Descending),
            RunFilter::Status(status) => (
                keys::BY_STATUS,
                keys::by_status_partition(status.as_str()),
                Descending,
            ),
            RunFilter::Vector(vector) => (
                keys::BY_VECTOR,
                keys::by_vector_partition(vector.as_str()),
                Descending,
            ),
            RunFilter::All => (
                keys::BY_TYPE,
                keys::type_partition(EntityKind::Run),
                Descending,
            ),
        };
        let query = Query::index(index, partition)
            .order(order)
            .limit(limit)
            .after(cursor);
        self.page(&query).await
    }

    /// The runs `filter` selects, a page of up to 1,000 at a time, in [`Repository::list_runs`]
    /// order: memory holds one page however many runs there are.
    pub fn run_pages(
        &self,
        filter: RunFilter,
    ) -> impl futures::Stream<Item = Result<Vec<Run>, RepoError>> + Send + '_ {
        // The state is the cursor of the next page to read; `None` once the last was read.
        futures::stream::try_unfold(Some(None), move |next: Option<Option<Cursor>>| {
            let filter = filter.clone();
            async move {
                let Some(cursor) = next else {
                    return Ok(None);
                };
                let page = self.list_runs(&filter, 1000, cursor).await?;
                Ok(Some((page.items, page.cursor.map(Some))))
            }
        })
    }

    async fn page<E: Entity>(&self, query: &Query) -> Result<EntityPage<E>, RepoError> {
        let page = self.store.query(query).await?;
        let items = page
            .items
            .iter()
            .map(from_item::<E>)
            .collect::<Result<_, _>>()?;
        Ok(EntityPage {
            items,
            cursor: page.cursor,
        })
    }
}
