//! The admin API's key, kept in Secrets Manager rather than in the function's environment or
//! the template: read at cold start, cached, and read again after a TTL when a request
//! presents a key that does not match, so rotating the secret needs no redeploy.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use socratic_core::api::AdminApi;
use tokio::sync::Mutex;

use crate::error::classify;

/// How long a key read from Secrets Manager is trusted before a mismatch re-reads it.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(300);

/// Why the key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Secrets Manager failed or refused (the detail names the secret, not its value).
    #[error("reading secret {secret}: {message}")]
    Read {
        /// The secret's id or ARN.
        secret: String,
        /// What failed.
        message: String,
    },
    /// The secret holds no usable key.
    #[error("secret {secret} holds an empty API key; the API refuses to start without one")]
    Empty {
        /// The secret's id or ARN.
        secret: String,
    },
}

/// The API key in a Secrets Manager secret (its `SecretString`).
#[derive(Debug)]
pub struct SecretApiKey {
    client: Client,
    secret_id: String,
    ttl: Duration,
    /// When the key was last read.
    read_at: Mutex<Instant>,
}

impl SecretApiKey {
    /// Reads the key in `secret_id` (a name or ARN): the value to start the API with, and
    /// the handle that re-reads it. An empty secret is an error, so the API cannot start open.
    pub async fn load(
        sdk: &SdkConfig,
        secret_id: impl Into<String>,
        ttl: Duration,
    ) -> Result<(Self, String), SecretError> {
        let this = Self {
            client: Client::new(sdk),
            secret_id: secret_id.into(),
            ttl,
            read_at: Mutex::new(Instant::now()),
        };
        let key = this.read().await?;
        Ok((this, key))
    }

    async fn read(&self) -> Result<String, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Read {
                secret: self.secret_id.clone(),
                message: format!("{:?}", classify(&e)),
            })?;
        let key = output.secret_string().unwrap_or_default().trim().to_owned();
        AdminApi::check_api_key(&key).map_err(|_| SecretError::Empty {
            secret: self.secret_id.clone(),
        })?;
        Ok(key)
    }

    /// When `headers` carry a key `api` does not accept and the cached key is older than the
    /// TTL, reads the secret again and gives `api` the new key. Returns whether the request's
    /// key is accepted now. At most one read per TTL, however many wrong keys arrive, so a caller with a
    /// bad key cannot make the function hammer Secrets Manager.
    pub async fn refresh_if_rejected(&self, api: &AdminApi, headers: &http::HeaderMap) -> bool {
        if api.accepts(headers) {
            return false;
        }
        let mut read_at = self.read_at.lock().await;
        if read_at.elapsed() < self.ttl {
            return false;
        }
        *read_at = Instant::now();
        match self.read().await {
            Ok(key) => {
                let changed = api.set_api_key(key).is_ok() && api.accepts(headers);
                if changed {
                    tracing::info!(secret = %self.secret_id, "the API key was rotated; using the new one");
                }
                changed
            }
            Err(error) => {
                tracing::error!(%error, "could not re-read the API key; keeping the cached one");
                false
            }
        }
    }
}

/// Reads the pagination cursors' own secret (a name or ARN): the admin API signs its cursors
/// with it rather than with a key derived from the API key, so a leaked or rotated API key
/// neither forges nor voids cursors. Read once, at cold start; an empty secret is an error.
pub async fn read_cursor_secret(
    sdk: &SdkConfig,
    secret_id: impl Into<String>,
) -> Result<String, SecretError> {
    let secret_id = secret_id.into();
    let output = Client::new(sdk)
        .get_secret_value()
        .secret_id(&secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            secret: secret_id.clone(),
            message: format!("{:?}", classify(&e)),
        })?;
    let value = output.secret_string().unwrap_or_default().trim().to_owned();
    if value.is_empty() {
        return Err(SecretError::Empty { secret: secret_id });
    }
    Ok(value)
}
