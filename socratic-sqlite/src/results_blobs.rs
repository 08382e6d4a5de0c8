//! The blobs of a results directory: what is many and small in the database, what people
//! open as files.
//!
//! Raw artifacts (`raw/`), cached answers (`cache/`) and curated runs (`curated/runs/`) are a
//! dozen blobs a run that mostly repeat each other: in the database ([`SqliteBlobStore`])
//! their repeated parts are stored once, and none costs a file's four kilobytes of disk. The
//! manifests, the report files and the models record stay files. Blobs that an older
//! socratic wrote as files are still read from there.

use std::path::Path;

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, BlobStoreExt, BlobWriter,
    ListOptions,
};
use socratic_core::store::Cursor;
use socratic_memory::FsBlobStore;

use crate::blobs::SqliteBlobStore;
use crate::db::Database;
use crate::results::{DATABASE_FILE, ResultsDir, ResultsError};

/// The key prefixes kept in the database.
pub const IN_DATABASE: [&str; 3] = ["raw/", "cache/", "curated/runs/"];

/// The blob store of a results directory.
#[derive(Debug, Clone)]
pub struct ResultsBlobs {
    files: FsBlobStore,
    database: Option<SqliteBlobStore>,
}

impl ResultsBlobs {
    /// The blobs of `dir`, those in the database in `database`'s.
    pub fn new(dir: &Path, database: &Database) -> Result<Self, ResultsError> {
        Ok(Self {
            files: files(dir)?,
            database: Some(database.blobs()),
        })
    }

    /// The blobs of `dir` for reading: its database's, if it has one, opened without the
    /// directory's lock, and its files.
    pub fn read(dir: &Path) -> Result<Self, ResultsError> {
        let database = if dir.join(DATABASE_FILE).is_file() {
            Some(ResultsDir::read(dir)?.blobs())
        } else {
            None
        };
        Ok(Self {
            files: files(dir)?,
            database,
        })
    }

    /// The blobs of `dir` for writing without its lock (answers put into a cache): its
    /// database is created if missing. Writes there are create-only, so they are safe beside
    /// a process holding the directory.
    pub fn unlocked(dir: &Path) -> Result<Self, ResultsError> {
        std::fs::create_dir_all(dir).map_err(|source| ResultsError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let database = Database::open(dir.join(DATABASE_FILE))?;
        Self::new(dir, &database)
    }

    /// The database's store, for a key kept there.
    fn database_for(&self, key: &str) -> Option<&SqliteBlobStore> {
        self.database
            .as_ref()
            .filter(|_| IN_DATABASE.iter().any(|prefix| key.starts_with(prefix)))
    }

    /// Whether a listing of `prefix` may find blobs in the database.
    fn lists_database(prefix: &str) -> bool {
        IN_DATABASE
            .iter()
            .any(|kept| kept.starts_with(prefix) || prefix.starts_with(kept))
    }
}

impl ResultsDir {
    /// The directory's blobs, those kept in the database in this holder's.
    pub fn blobs(&self) -> Result<ResultsBlobs, ResultsError> {
        ResultsBlobs::new(self.path(), self.database())
    }
}

fn files(dir: &Path) -> Result<FsBlobStore, ResultsError> {
    FsBlobStore::new(dir).map_err(|e| ResultsError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[async_trait]
impl BlobStore for ResultsBlobs {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        match self.database_for(key.as_str()) {
            Some(database) => {
                // A write-once blob an older socratic wrote as a file is there already.
                if mode == BlobPutMode::Create && self.files.head(key).await.is_ok() {
                    return Err(BlobError::AlreadyExists {
                        key: key.as_str().to_owned(),
                    });
                }
                database.put(key, bytes, mode).await
            }
            None => self.files.put(key, bytes, mode).await,
        }
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        if let Some(database) = self.database_for(key.as_str()) {
            match database.get(key).await {
                Err(BlobError::NotFound { .. }) => {}
                found => return found,
            }
        }
        self.files.get(key).await
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        if let Some(database) = self.database_for(key.as_str()) {
            match database.head(key).await {
                Err(BlobError::NotFound { .. }) => {}
                found => return found,
            }
        }
        self.files.head(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        let (Some(database), true) = (&self.database, Self::lists_database(&options.prefix)) else {
            return self.files.list(options).await;
        };
        // Both stores, merged in key order; a page starts after the cursor's key.
        let after = match &options.cursor {
            None => None,
            Some(cursor) => Some(cursor.0.strip_prefix("results:").ok_or_else(|| {
                BlobError::InvalidRequest {
                    message: "cursor was not issued by this store".to_owned(),
                }
            })?),
        };
        let mut blobs = database.list_all(&options.prefix).await?;
        blobs.extend(self.files.list_all(&options.prefix).await?);
        blobs.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        blobs.dedup_by(|a, b| a.key == b.key);
        let start = after.map_or(0, |after| {
            blobs.partition_point(|b| b.key.as_str() <= after)
        });
        let limit = options.limit.unwrap_or(1000).max(1);
        let page: Vec<BlobMeta> = blobs.iter().skip(start).take(limit).cloned().collect();
        let cursor = (start + page.len() < blobs.len())
            .then(|| {
                page.last()
                    .map(|b| Cursor(format!("results:{}", b.key.as_str())))
            })
            .flatten();
        Ok(BlobPage {
            blobs: page,
            cursor,
        })
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        if let Some(database) = self.database_for(key.as_str()) {
            database.delete(key).await?;
        }
        self.files.delete(key).await
    }

    async fn writer<'a>(
        &'a self,
        key: &BlobKey,
        mode: BlobPutMode,
    ) -> Result<Box<dyn BlobWriter + 'a>, BlobError> {
        match self.database_for(key.as_str()) {
            Some(database) => database.writer(key, mode).await,
            // Files are written as they go: a large report is never held whole.
            None => self.files.writer(key, mode).await,
        }
    }
}
