//! A response cache keyed by the request's content hash.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};
use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStore};
use crate::canonical::content_hash;

/// Answers a request seen before from the blob store (`cache/llm/<sha256>.json`), and stores
/// every new successful answer. Replays of a benchmark through it are free and reproducible.
/// Errors are never cached; a cache that cannot be read or written is skipped, not fatal.
pub struct CachedLlm<C> {
    inner: C,
    blobs: Arc<dyn BlobStore>,
}

impl<C> std::fmt::Debug for CachedLlm<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedLlm").finish_non_exhaustive()
    }
}

impl<C: LlmClient> CachedLlm<C> {
    /// Wraps `inner`, caching in `blobs`.
    pub fn new(inner: C, blobs: Arc<dyn BlobStore>) -> Self {
        Self { inner, blobs }
    }

    /// The cache key of a request.
    pub fn key(request: &ConverseRequest) -> Result<BlobKey, LlmError> {
        let hash = content_hash(request).map_err(|e| LlmError::Validation {
            message: format!("cannot hash request: {e}"),
        })?;
        BlobKey::new(format!("cache/llm/{hash}.json")).map_err(|e| LlmError::Validation {
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for CachedLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let key = Self::key(request)?;
        if let Ok(bytes) = self.blobs.get(&key).await
            && let Ok(response) = serde_json::from_slice::<ConverseResponse>(&bytes)
        {
            return Ok(response);
        }
        let response = self.inner.converse(request).await?;
        if let Ok(bytes) = serde_json::to_vec(&response) {
            match self.blobs.put(&key, bytes, BlobPutMode::Create).await {
                Ok(_) | Err(BlobError::AlreadyExists { .. }) => {}
                // A cache write failure must not fail the call it would have cached.
                Err(_) => {}
            }
        }
        Ok(response)
    }
}
