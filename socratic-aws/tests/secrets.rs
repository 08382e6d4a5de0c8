//! The admin API's key in Secrets Manager, on the emulator: read at start, an empty secret
//! refused, and a rotated secret picked up after the TTL when a request's key does not match,
//! with no restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use http::HeaderMap;
use socratic_aws::{SecretApiKey, SecretError};
use socratic_core::api::{AdminApi, ApiConfig};
use socratic_core::pipeline::{PipelineConfig, Providers};
use socratic_memory::{LocalPipeline, MemoryBlobStore};

fn headers(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    headers
}

fn api(key: String) -> AdminApi {
    let pipeline = LocalPipeline::new(
        std::sync::Arc::new(MemoryBlobStore::new()),
        Providers::new(),
        PipelineConfig::default(),
    );
    AdminApi::new(pipeline.ports.clone(), ApiConfig::new(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_after_the_ttl_without_a_restart() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let sdk = support::sdk(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = support::unique("api-key");
    client
        .create_secret()
        .name(&name)
        .secret_string("first-key-0123456789")
        .send()
        .await
        .unwrap();

    let ttl = Duration::from_millis(300);
    let (secret, key) = SecretApiKey::load(&sdk, &name, ttl).await.unwrap();
    assert_eq!(key, "first-key-0123456789");
    let api = api(key);
    assert!(api.accepts(&headers("first-key-0123456789")));

    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string("second-key-0123456789")
        .send()
        .await
        .unwrap();
    // Within the TTL, a wrong key does not make the function read the secret again.
    assert!(
        !secret
            .refresh_if_rejected(&api, &headers("second-key-0123456789"))
            .await
    );
    assert!(api.accepts(&headers("first-key-0123456789")));

    tokio::time::sleep(ttl).await;
    assert!(
        secret
            .refresh_if_rejected(&api, &headers("second-key-0123456789"))
            .await
    );
    assert!(api.accepts(&headers("second-key-0123456789")));
    assert!(
        !api.accepts(&headers("first-key-0123456789")),
        "the old key is revoked"
    );

    // A wrong key after the TTL reads the secret once more, and changes nothing.
    tokio::time::sleep(ttl).await;
    assert!(!secret.refresh_if_rejected(&api, &headers("guess")).await);
    assert!(api.accepts(&headers("second-key-0123456789")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_missing_secret_refuses_to_start() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let sdk = support::sdk(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = support::unique("empty-key");
    client
        .create_secret()
        .name(&name)
        .secret_string("  ")
        .send()
        .await
        .unwrap();
    let empty = SecretApiKey::load(&sdk, &name, Duration::from_secs(60)).await;
    assert!(matches!(empty, Err(SecretError::Empty { .. })), "{empty:?}");

    let missing = SecretApiKey::load(&sdk, support::unique("no-such-secret"), Duration::ZERO).await;
    let Err(SecretError::Read { message, .. }) = missing else {
        panic!("a missing secret is an error");
    };
    assert!(!message.is_empty());

    // And an API given an empty key accepts nobody, not even an empty header.
    let open = api(String::new());
    assert!(!open.accepts(&headers("")));
    assert!(open.set_api_key(" ").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_secret_is_read_and_an_empty_one_refused() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let sdk = support::sdk(&endpoint).await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let (name, empty) = (support::unique("cursor"), support::unique("cursor-empty"));
    for (secret, value) in [(&name, "cursor-secret-0123456789"), (&empty, "  ")] {
        client
            .create_secret()
            .name(secret)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let value = socratic_aws::read_cursor_secret(&sdk, &name).await.unwrap();
    assert_eq!(value, "cursor-secret-0123456789");
    match socratic_aws::read_cursor_secret(&sdk, &empty).await {
        Err(SecretError::Empty { secret }) => assert_eq!(secret, empty),
        other => panic!("expected an empty-secret error, got {other:?}"),
    }
    match socratic_aws::read_cursor_secret(&sdk, support::unique("missing")).await {
        Err(SecretError::Read { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected a read error, got {other:?}"),
    }
}
