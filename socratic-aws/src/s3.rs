//! The `BlobStore` port over an S3 bucket.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions,
};
use socratic_core::store::Cursor;

use crate::error::{Failure, classify};

/// A [`BlobStore`] over an S3 bucket. Create-only puts use `If-None-Match: *`, so two
/// concurrent creates cannot both win; listing pages with continuation tokens.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    /// A store over `bucket`. Build the client once per process.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// A store over `bucket` with a client built from `sdk`. With an endpoint override (an
    /// emulator), requests use path-style addressing, which emulators serve.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self::new(Client::from_conf(config), bucket)
    }

    /// Whether the bucket exists (`HeadBucket`): a tool writing into a deployed bucket asks
    /// first, to name a missing bucket rather than fail on its first write.
    pub async fn bucket_exists(&self) -> Result<bool, BlobError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(|e| e.is_not_found())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure(classify(&e), &self.bucket)),
        }
    }
}

fn failure(failure: Failure, key: &str) -> BlobError {
    match failure {
        Failure::Throttled(message) => BlobError::Throttled { message },
        Failure::Unavailable(message) => BlobError::Unavailable { message },
        Failure::Service { code, .. } if code == "NoSuchKey" || code == "NotFound" => {
            BlobError::NotFound {
                key: key.to_owned(),
            }
        }
        Failure::Service { code, .. }
            if code == "PreconditionFailed" || code == "ConditionalRequestConflict" =>
        {
            BlobError::AlreadyExists {
                key: key.to_owned(),
            }
        }
        Failure::Service { message, .. } | Failure::Invalid(message) => BlobError::InvalidRequest {
            message: format!("{key}: {message}"),
        },
    }
}

const CURSOR_PREFIX: &str = "s3:";

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        let size = bytes.len() as u64;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(bytes));
        if mode == BlobPutMode::Create {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(BlobMeta {
                key: key.clone(),
                size,
            }),
            Err(error) => {
                // S3 answers a failed If-None-Match with 412, which is a service error without
                // a modeled variant.
                if mode == BlobPutMode::Create
                    && error
                        .raw_response()
                        .is_some_and(|r| r.status().as_u16() == 412)
                {
                    return Err(BlobError::AlreadyExists {
                        key: key.to_string(),
                    });
                }
                Err(failure(classify(&error), key.as_str()))
            }
        }
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| failure(classify(&e), key.as_str()))?;
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable {
                message: format!("{key}: reading the body: {e}"),
            })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(output) => Ok(BlobMeta {
                key: key.clone(),
                size: u64::try_from(output.content_length.unwrap_or(0)).unwrap_or(0),
            }),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                Err(BlobError::NotFound {
                    key: key.to_string(),
                })
            }
            Err(error)
                if error
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Err(BlobError::NotFound {
                    key: key.to_string(),
                })
            }
            Err(error) => Err(failure(classify(&error), key.as_str())),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        let token = match &options.cursor {
            None => None,
            Some(Cursor(text)) => {
                let bad = || BlobError::InvalidRequest {
                    message: "cursor was not issued by this store".to_owned(),
                };
                let hex_token = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
                let bytes = hex::decode(hex_token).map_err(|_| bad())?;
                Some(String::from_utf8(bytes).map_err(|_| bad())?)
            }
        };
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&options.prefix)
            .set_max_keys(options.limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| failure(classify(&e), &options.prefix))?;
        let mut blobs = Vec::new();
        for object in output.contents() {
            let Some(name) = object.key() else { continue };
            // Objects written by others may not be valid keys; they are not ours to list.
            if let Ok(key) = BlobKey::new(name) {
                blobs.push(BlobMeta {
                    key,
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                });
            }
        }
        let cursor = match output.next_continuation_token() {
            Some(next) if output.is_truncated().unwrap_or(false) => {
                Some(Cursor(format!("{CURSOR_PREFIX}{}", hex::encode(next))))
            }
            _ => None,
        };
        Ok(BlobPage { blobs, cursor })
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| failure(classify(&e), key.as_str()))?;
        Ok(())
    }
}
