use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions,
};

use crate::cursor;

/// The page size when a listing does not set one (S3's default).
pub(crate) const DEFAULT_LIST_LIMIT: usize = 1000;

/// An in-memory [`BlobStore`]. Cloning shares the blobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key stored, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Pages sorted keys: those under `prefix`, after the cursor, at most `limit`.
pub(crate) fn page_keys<'a>(
    keys: impl Iterator<Item = (&'a str, u64)>,
    options: &ListOptions,
) -> Result<BlobPage, BlobError> {
    let after = match &options.cursor {
        Some(c) => Some(
            cursor::decode(c, 1)
                .map(|mut p| p.remove(0))
                .ok_or_else(|| BlobError::InvalidRequest {
                    message: "cursor was not issued by this store".to_owned(),
                })?,
        ),
        None => None,
    };
    let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT).max(1);
    let mut blobs = Vec::new();
    let mut more = false;
    for (key, size) in keys {
        if !key.starts_with(options.prefix.as_str()) || after.as_deref().is_some_and(|a| key <= a) {
            continue;
        }
        if blobs.len() == limit {
            more = true;
            break;
        }
        blobs.push(BlobMeta {
            key: BlobKey::new(key)?,
            size,
        });
    }
    let cursor = match blobs.last() {
        Some(last) if more => Some(cursor::encode(&[last.key.as_str()])),
        _ => None,
    };
    Ok(BlobPage { blobs, cursor })
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        // A serialiser's buffer grows by doubling: keep only what was written.
        let mut bytes = bytes;
        bytes.shrink_to_fit();
        let mut blobs = self.lock();
        if mode == BlobPutMode::Create && blobs.contains_key(key.as_str()) {
            return Err(BlobError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let size = bytes.len() as u64;
        blobs.insert(key.to_string(), bytes);
        Ok(BlobMeta {
            key: key.clone(),
            size,
        })
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        self.lock()
            .get(key.as_str())
            .cloned()
            .ok_or_else(|| BlobError::NotFound {
                key: key.to_string(),
            })
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        let size = self.lock().get(key.as_str()).map(|b| b.len() as u64);
        size.map(|size| BlobMeta {
            key: key.clone(),
            size,
        })
        .ok_or_else(|| BlobError::NotFound {
            key: key.to_string(),
        })
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        let blobs = self.lock();
        let from = options.prefix.as_str();
        page_keys(
            blobs
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
                .map(|(k, v)| (k.as_str(), v.len() as u64)),
            options,
        )
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.lock().remove(key.as_str());
        Ok(())
    }
}
