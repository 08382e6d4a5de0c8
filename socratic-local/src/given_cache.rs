//! `--cache PATH`: a response cache named on the command line, which must not miss silently.
//!
//! The path may be a results directory, its `cache/` folder, or a bundle, whose answers are
//! put into the results directory's own cache. A path that
//! holds no cache is an error naming what was expected. While the benchmark runs, lookups
//! are counted, so that a cache with no hit at all is reported as soon as the first calls miss.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, BlobStoreExt, ListOptions,
};

use crate::error::{Context, Error};
use socratic_sqlite::ResultsBlobs;

/// Lookups after which a cache with no hit is reported.
pub const COLD_AFTER: u64 = 8;

/// What `--cache` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenCache {
    /// The path as given.
    pub path: PathBuf,
    /// What it is: `results directory`, `cache folder` or `bundle`.
    pub kind: &'static str,
    /// The answers it holds.
    pub answers: usize,
}

/// Hits and lookups of a given cache so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheHits {
    /// Answers found that the cache held before this benchmark.
    pub hits: u64,
    /// Answers looked up.
    pub lookups: u64,
}

/// Where a given cache is.
pub(crate) struct Located {
    /// What `--cache` named.
    pub given: GivenCache,
    /// The results directory holding it, or the bundle.
    pub source: Source,
}

/// The holder of a given cache.
pub(crate) enum Source {
    /// A results directory (its database and files).
    Results(PathBuf),
    /// A bundle, whose answers go into the benchmark's own cache.
    Bundle(Box<crate::bundle::Bundle>),
}

/// What `path` is, and how many answers it holds; nothing is written.
pub(crate) async fn locate(path: &Path) -> Result<Located, Error> {
    let given = |kind, answers| GivenCache {
        path: path.to_owned(),
        kind,
        answers,
    };
    if path.is_file() {
        let bundle = crate::bundle::read(path)?;
        let answers = bundle.under("cache/llm/").count();
        return Ok(Located {
            given: given("bundle", answers),
            source: Source::Bundle(Box::new(bundle)),
        });
    }
    let is_results = |dir: &Path| {
        dir.join(socratic_sqlite::DATABASE_FILE).is_file() || dir.join("cache").join("llm").is_dir()
    };
    let (root, kind) = if is_results(path) {
        (path.to_owned(), "results directory")
    } else if path.file_name().is_some_and(|n| n == "cache")
        && let Some(parent) = path.parent()
        && (path.join("llm").is_dir() || is_results(parent))
    {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        (parent.to_owned(), "cache folder")
    } else {
        return Err(Error::Invalid(format!(
            "--cache {} holds no response cache: expected a results directory (holding \
             socratic.db or cache/llm/), its cache/ folder, or a bundle written by `socratic \
             export`",
            path.display()
        )));
    };
    let answers = ResultsBlobs::read(&root)?
        .list_all("cache/llm/")
        .await
        .with_context(|| format!("reading the cache of {}", root.display()))?
        .len();
    Ok(Located {
        given: given(kind, answers),
        source: Source::Results(root),
    })
}

/// Puts a bundle's answers into `cache`; an answer already there is kept, as the one this
/// directory used.
pub(crate) async fn unpack(
    bundle: &crate::bundle::Bundle,
    cache: &dyn BlobStore,
) -> Result<(), Error> {
    for (member, bytes) in bundle.under("cache/llm/") {
        let key = BlobKey::new(member).context("naming a cached answer")?;
        match cache.put(&key, bytes.to_vec(), BlobPutMode::Create).await {
            Ok(_) | Err(BlobError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("writing {member}")),
        }
    }
    Ok(())
}

/// A cache store that counts its lookups and its hits on answers it held before: an answer
/// this process wrote and read again is not the given cache's hit.
pub(crate) struct Counting<S> {
    inner: S,
    hits: AtomicU64,
    lookups: AtomicU64,
    written: Mutex<HashSet<String>>,
}

impl<S> Counting<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            hits: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            written: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn hits(&self) -> CacheHits {
        CacheHits {
            hits: self.hits.load(Ordering::Relaxed),
            lookups: self.lookups.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for Counting<S> {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        // Marked as this process's before it is written: a lookup racing the write must not
        // count it as the given cache's hit.
        let written = || self.written.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = written().insert(key.as_str().to_owned());
        let put = self.inner.put(key, bytes, mode).await;
        if fresh && matches!(&put, Err(e) if !matches!(e, BlobError::AlreadyExists { .. })) {
            written().remove(key.as_str());
        }
        put
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let found = self.inner.get(key).await;
        if !matches!(&found, Err(e) if e.is_retryable()) {
            self.lookups.fetch_add(1, Ordering::Relaxed);
        }
        let own = || {
            self.written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(key.as_str())
        };
        if found.is_ok() && !own() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        self.inner.head(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        self.inner.list(options).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.inner.delete(key).await
    }
}
