//! `--cache PATH`: a response cache named on the command line, which must not miss silently.
//!
//! The path may be a results directory (holding `cache/llm/`), that `cache/` folder itself,
//! or a bundle, whose answers are unpacked into the results directory's own cache. A path that
//! holds no cache is an error naming what was expected. While the benchmark runs, lookups
//! are counted, so that a cache with no hit at all is reported as soon as the first calls miss.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions,
};

use crate::error::{Context, Error};

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

/// The root of the blob store that holds `path`'s cache (whose keys are `cache/llm/…`), and
/// what `path` is. A bundle's answers are first written into `out`'s cache.
pub(crate) async fn locate(path: &Path, out: &Path) -> Result<(PathBuf, GivenCache), Error> {
    let given = |kind, answers| GivenCache {
        path: path.to_owned(),
        kind,
        answers,
    };
    if path.is_file() {
        let bundle = crate::bundle::read(path)?;
        let files = crate::files(out)?;
        let mut answers = 0;
        for (member, bytes) in bundle.under("cache/llm/") {
            let key = BlobKey::new(member).context("naming a cached answer")?;
            match files.put(&key, bytes.to_vec(), BlobPutMode::Create).await {
                // An answer already in the results directory is the one it used: kept.
                Ok(_) | Err(BlobError::AlreadyExists { .. }) => answers += 1,
                Err(e) => return Err(e).with_context(|| format!("writing {member}")),
            }
        }
        return Ok((out.to_owned(), given("bundle", answers)));
    }
    if path.join("cache").join("llm").is_dir() {
        let answers = count(&path.join("cache").join("llm"));
        return Ok((path.to_owned(), given("results directory", answers)));
    }
    if path.join("llm").is_dir()
        && path.file_name().is_some_and(|n| n == "cache")
        && let Some(parent) = path.parent()
    {
        let answers = count(&path.join("llm"));
        let root = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_owned()
        };
        return Ok((root, given("cache folder", answers)));
    }
    Err(Error::Invalid(format!(
        "--cache {} holds no response cache: expected a results directory (holding \
         cache/llm/), its cache/ folder, or a bundle written by `socratic export`",
        path.display()
    )))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
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
        let put = self.inner.put(key, bytes, mode).await;
        if put.is_ok() {
            self.written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.as_str().to_owned());
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
