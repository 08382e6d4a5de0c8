//! The filesystem blob store keeps every key inside its root.

#![allow(clippy::unwrap_used)]

use socratic_core::blob::{BlobError, BlobKey, BlobPutMode, BlobStore};
use socratic_memory::FsBlobStore;

#[tokio::test]
async fn blobs_are_plain_files_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::new(dir.path()).unwrap();
    let key = BlobKey::new("curated/manifests/M/summary.json").unwrap();
    store
        .put(&key, b"{}".to_vec(), BlobPutMode::Create)
        .await
        .unwrap();
    let on_disk = std::fs::read(dir.path().join("curated/manifests/M/summary.json")).unwrap();
    assert_eq!(on_disk, b"{}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(".socratic-tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
}

#[tokio::test]
async fn the_temporary_area_is_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::new(dir.path()).unwrap();
    let key = BlobKey::new(".socratic-tmp/x").unwrap();
    assert!(matches!(
        store.put(&key, vec![1], BlobPutMode::Overwrite).await,
        Err(BlobError::InvalidKey { .. })
    ));
    assert!(matches!(
        store.get(&key).await,
        Err(BlobError::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn concurrent_creates_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::new(dir.path()).unwrap();
    let key = BlobKey::new("raw/runs/R/turn-001.json").unwrap();
    let attempts = (0..8u8).map(|i| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move { store.put(&key, vec![i], BlobPutMode::Create).await })
    });
    let results = futures_join(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(BlobError::AlreadyExists { .. })))
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
