//! A response cache keyed by the request's content hash.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use super::{ConverseRequest, ConverseResponse, LlmClient, LlmError};
use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStore};
use crate::canonical::content_hash;

/// What the cache does on a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Call the model and store its answer.
    #[default]
    ReadWrite,
    /// Fail the call: only stored answers may be used (a replay).
    ReplayOnly,
}

/// Answers a request seen before from the blob store (`cache/llm/<sha256>.json`), and stores
/// every new successful answer. Replays of a benchmark through it are free and reproducible.
///
/// The key is the hash of the whole request (model, role, prompts, sampling and the sample
/// index that keeps repetitions distinct) and of a namespace naming the endpoint, so the same
/// model id on two servers never shares answers. An answer from the cache is marked
/// [`ConverseResponse::cached`]. Errors are never cached; a cache that cannot be read or
/// written is skipped, not fatal.
pub struct CachedLlm<C> {
    inner: C,
    blobs: Arc<dyn BlobStore>,
    namespace: String,
    mode: CacheMode,
}

impl<C> std::fmt::Debug for CachedLlm<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedLlm")
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Keyed<'a> {
    namespace: &'a str,
    request: &'a ConverseRequest,
}

impl<C: LlmClient> CachedLlm<C> {
    /// Wraps `inner`, caching in `blobs`.
    pub fn new(inner: C, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            inner,
            blobs,
            namespace: String::new(),
            mode: CacheMode::ReadWrite,
        }
    }

    /// Keys answers under `namespace` too, e.g. the endpoint's URL and the catalog model.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets what a miss does.
    pub fn with_mode(mut self, mode: CacheMode) -> Self {
        self.mode = mode;
        self
    }

    /// The cache key of a request.
    pub fn key(&self, request: &ConverseRequest) -> Result<BlobKey, LlmError> {
        answer_key(&request_hash(&self.namespace, request)?)
    }
}

/// The hash that names `request`'s answer under `namespace`: its cache key's stem, and the
/// custom id of the request in a provider batch.
pub fn request_hash(namespace: &str, request: &ConverseRequest) -> Result<String, LlmError> {
    let hash = if namespace.is_empty() {
        content_hash(request)
    } else {
        content_hash(&Keyed { namespace, request })
    }
    .map_err(|e| LlmError::Validation {
        message: format!("cannot hash request: {e}"),
    })?;
    Ok(hash.to_string())
}

/// Where the answer of the request with hash `hash` is cached.
pub fn answer_key(hash: &str) -> Result<BlobKey, LlmError> {
    BlobKey::new(format!("cache/llm/{hash}.json")).map_err(|e| LlmError::Validation {
        message: e.to_string(),
    })
}

#[async_trait]
impl<C: LlmClient> LlmClient for CachedLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let key = self.key(request)?;
        if let Ok(bytes) = self.blobs.get(&key).await
            && let Ok(mut response) = serde_json::from_slice::<ConverseResponse>(&bytes)
        {
            response.cached = true;
            return Ok(response);
        }
        if self.mode == CacheMode::ReplayOnly {
            return Err(LlmError::Other {
                message: format!(
                    "replay: no cached answer for this {} request to {} ({key}); run without --replay to call the model",
                    request.role, request.model
                ),
                retryable: false,
            });
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
