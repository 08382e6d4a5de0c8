//! The `BlobStore` port: immutable-by-default objects under `/`-separated keys.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::Cursor;

/// The longest blob key, in bytes (S3's limit).
pub const MAX_BLOB_KEY_BYTES: usize = 1024;

/// A validated blob key: relative, `/`-separated, with no empty, `.` or `..` segment, no
/// backslash and no control character, so it can never escape the store's root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

impl BlobKey {
    /// Parses and validates a key.
    pub fn new(key: impl Into<String>) -> Result<Self, BlobError> {
        let key = key.into();
        let invalid = |reason: &str| {
            Err(BlobError::InvalidKey {
                key: key.clone(),
                reason: reason.to_owned(),
            })
        };
        if key.is_empty() {
            return invalid("must not be empty");
        }
        if key.len() > MAX_BLOB_KEY_BYTES {
            return invalid("must be at most 1024 bytes");
        }
        if key.starts_with('/') {
            return invalid("must be relative");
        }
        if key.contains('\\') || key.chars().any(char::is_control) {
            return invalid("must not contain a backslash or control character");
        }
        if key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return invalid("must not contain an empty, '.' or '..' segment");
        }
        Ok(Self(key))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BlobKey {
    type Error = BlobError;
    fn try_from(value: String) -> Result<Self, BlobError> {
        Self::new(value)
    }
}

impl From<BlobKey> for String {
    fn from(key: BlobKey) -> String {
        key.0
    }
}

/// How a put treats an existing blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobPutMode {
    /// Fail with [`BlobError::AlreadyExists`] if the key exists.
    Create,
    /// Replace whatever is there.
    Overwrite,
}

/// What is known about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// Its key.
    pub key: BlobKey,
    /// Its size in bytes.
    pub size: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlobPage {
    /// Blobs in ascending key order.
    pub blobs: Vec<BlobMeta>,
    /// Where the next page starts; `None` when there are no more.
    pub cursor: Option<Cursor>,
}

/// A listing request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// Only keys starting with this (plain string prefix, not a path).
    pub prefix: String,
    /// Page size; `None` lets the backend choose.
    pub limit: Option<usize>,
    /// Continue after this cursor.
    pub cursor: Option<Cursor>,
}

/// What went wrong in a blob operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No blob at this key.
    #[error("blob {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A create-only put found a blob.
    #[error("blob {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The key is not acceptable.
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The request is invalid (e.g. a cursor from elsewhere).
    #[error("invalid blob request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// The backend is rate-limiting.
    #[error("blob store throttled: {message}")]
    Throttled {
        /// The backend's message.
        message: String,
    },
    /// The backend failed; the operation may or may not have happened.
    #[error("blob store unavailable: {message}")]
    Unavailable {
        /// The backend's message.
        message: String,
    },
}

impl BlobError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BlobError::Throttled { .. } | BlobError::Unavailable { .. }
        )
    }
}

/// Objects under string keys.
///
/// Implementers: pass `socratic_core::testkit::blob`. A create-only put must be atomic (two
/// concurrent creates: one wins, one gets [`BlobError::AlreadyExists`]); deleting a missing
/// blob succeeds.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes a blob.
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError>;

    /// Reads a blob.
    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;

    /// Reads a blob's metadata.
    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError>;

    /// Lists blobs by key prefix, one page at a time.
    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError>;

    /// Deletes a blob; succeeds if it is absent.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// Starts a blob written a part at a time. By default the parts are held in memory and
    /// stored by one [`put`](Self::put) at the end; a store that can write as it goes (a
    /// directory) overrides this, so that a large document is never held whole.
    async fn writer<'a>(
        &'a self,
        key: &BlobKey,
        mode: BlobPutMode,
    ) -> Result<Box<dyn BlobWriter + 'a>, BlobError> {
        Ok(Box::new(BufferedWriter {
            store: self,
            key: key.clone(),
            mode,
            bytes: Vec::new(),
        }))
    }
}

/// A blob being written a part at a time (see [`BlobStore::writer`]). It is stored by
/// [`finish`](Self::finish), as a put with the writer's mode would store it; dropped
/// unfinished, it stores nothing.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends `bytes`.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError>;

    /// Stores the blob.
    async fn finish(self: Box<Self>) -> Result<BlobMeta, BlobError>;
}

/// The default writer: the parts in memory, one put at the end.
struct BufferedWriter<'a, S: ?Sized> {
    store: &'a S,
    key: BlobKey,
    mode: BlobPutMode,
    bytes: Vec<u8>,
}

#[async_trait]
impl<S: BlobStore + ?Sized> BlobWriter for BufferedWriter<'_, S> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<BlobMeta, BlobError> {
        self.store.put(&self.key, self.bytes, self.mode).await
    }
}

macro_rules! forward_blob {
    ($ty:ty) => {
        #[async_trait]
        impl<T: BlobStore + ?Sized> BlobStore for $ty {
            async fn put(
                &self,
                key: &BlobKey,
                bytes: Vec<u8>,
                mode: BlobPutMode,
            ) -> Result<BlobMeta, BlobError> {
                (**self).put(key, bytes, mode).await
            }
            async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
                (**self).get(key).await
            }
            async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
                (**self).head(key).await
            }
            async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
                (**self).list(options).await
            }
            async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
                (**self).delete(key).await
            }
            async fn writer<'a>(
                &'a self,
                key: &BlobKey,
                mode: BlobPutMode,
            ) -> Result<Box<dyn BlobWriter + 'a>, BlobError> {
                (**self).writer(key, mode).await
            }
        }
    };
}

forward_blob!(Arc<T>);
forward_blob!(Box<T>);

/// Conveniences over [`BlobStore`], implemented for every blob store.
#[async_trait]
pub trait BlobStoreExt: BlobStore {
    /// Lists every blob under `prefix`, across pages.
    async fn list_all(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let mut options = ListOptions {
            prefix: prefix.to_owned(),
            ..ListOptions::default()
        };
        let mut blobs = Vec::new();
        loop {
            let page = self.list(&options).await?;
            blobs.extend(page.blobs);
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => return Ok(blobs),
            }
        }
    }

    /// Writes `value` as pretty JSON.
    async fn put_json<T: Serialize + Sync>(
        &self,
        key: &BlobKey,
        value: &T,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| unserialisable(key, &e))?;
        self.put(key, bytes, mode).await
    }

    /// Writes `value` as compact JSON: for documents written in numbers, where indentation
    /// would add a quarter (`jq .` shows one indented).
    async fn put_compact_json<T: Serialize + Sync>(
        &self,
        key: &BlobKey,
        value: &T,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        let bytes = serde_json::to_vec(value).map_err(|e| unserialisable(key, &e))?;
        self.put(key, bytes, mode).await
    }

    /// Whether a blob exists.
    async fn exists(&self, key: &BlobKey) -> Result<bool, BlobError> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<T: BlobStore + ?Sized> BlobStoreExt for T {}

fn unserialisable(key: &BlobKey, error: &serde_json::Error) -> BlobError {
    BlobError::InvalidRequest {
        message: format!("{key}: cannot serialise: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_root_are_rejected() {
        for bad in [
            "",
            "/abs",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a\\b",
            "a/\0",
            "trailing/",
        ] {
            let err = BlobKey::new(bad).unwrap_err();
            assert!(
                matches!(&err, BlobError::InvalidKey { key, .. } if key == bad),
                "{bad:?}"
            );
        }
        assert!(BlobKey::new("raw/runs/01J/turn-001.json").is_ok());
        assert!(BlobKey::new("a..b/c").is_ok());
        assert!(serde_json::from_str::<BlobKey>("\"../etc/passwd\"").is_err());
    }
}
