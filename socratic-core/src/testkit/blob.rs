//! The [`BlobStore`] conformance suite.

use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt, ListOptions};
use crate::store::Cursor;

use super::unique_prefix;

/// Runs every check.
pub async fn run_all(blobs: &dyn BlobStore) {
    put_get_head_round_trip(blobs).await;
    create_only_conflicts(blobs).await;
    overwrite_replaces(blobs).await;
    missing_blobs_are_not_found(blobs).await;
    list_by_prefix_across_pages(blobs).await;
    delete_is_idempotent(blobs).await;
    written_in_parts(blobs).await;
}

fn key(prefix: &str, name: &str) -> BlobKey {
    BlobKey::new(format!("{prefix}/{name}")).expect("valid key")
}

/// What is put comes back byte for byte (empty, binary and 1 MiB bodies), with its size.
pub async fn put_get_head_round_trip(blobs: &dyn BlobStore) {
    let prefix = unique_prefix("roundtrip");
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for (name, body) in [
        ("empty", Vec::new()),
        ("binary", vec![0u8, 255, 10, 13, 0]),
        ("large", large),
    ] {
        let k = key(&prefix, name);
        let meta = blobs
            .put(&k, body.clone(), BlobPutMode::Create)
            .await
            .expect("put");
        assert_eq!(meta.key, k);
        assert_eq!(meta.size, body.len() as u64, "{name}: size");
        assert_eq!(blobs.get(&k).await.expect("get"), body, "{name}: content");
        assert_eq!(
            blobs.head(&k).await.expect("head").size,
            body.len() as u64,
            "{name}: head size"
        );
    }
}

/// A create-only put of an existing key fails with `AlreadyExists` and keeps the first body.
pub async fn create_only_conflicts(blobs: &dyn BlobStore) {
    let k = key(&unique_prefix("create"), "a.json");
    blobs
        .put(&k, b"first".to_vec(), BlobPutMode::Create)
        .await
        .expect("first put");
    match blobs.put(&k, b"second".to_vec(), BlobPutMode::Create).await {
        Err(BlobError::AlreadyExists { key }) => assert_eq!(key, k.as_str()),
        other => panic!("second create must fail with AlreadyExists, got {other:?}"),
    }
    assert_eq!(blobs.get(&k).await.expect("get"), b"first");
}

/// An overwrite replaces the body.
pub async fn overwrite_replaces(blobs: &dyn BlobStore) {
    let k = key(&unique_prefix("overwrite"), "a.json");
    blobs
        .put(&k, b"first".to_vec(), BlobPutMode::Overwrite)
        .await
        .expect("put");
    blobs
        .put(&k, b"second, longer".to_vec(), BlobPutMode::Overwrite)
        .await
        .expect("overwrite");
    assert_eq!(blobs.get(&k).await.expect("get"), b"second, longer");
    assert_eq!(blobs.head(&k).await.expect("head").size, 14);
}

/// Get and head of a missing key fail with `NotFound` naming it.
pub async fn missing_blobs_are_not_found(blobs: &dyn BlobStore) {
    let k = key(&unique_prefix("missing"), "nothing");
    assert!(matches!(blobs.get(&k).await, Err(BlobError::NotFound { key }) if key == k.as_str()));
    assert!(matches!(
        blobs.head(&k).await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(!blobs.exists(&k).await.expect("exists"));
}

/// Listing by prefix returns every key under it exactly once, in order, across pages, and
/// nothing outside it.
pub async fn list_by_prefix_across_pages(blobs: &dyn BlobStore) {
    let prefix = unique_prefix("list");
    let mut expected = Vec::new();
    for i in 0..10 {
        let k = key(&prefix, &format!("runs/{i:02}.json"));
        blobs
            .put(&k, vec![b'x'; i], BlobPutMode::Create)
            .await
            .expect("put");
        expected.push(k.to_string());
    }
    blobs
        .put(
            &key(&prefix, "other/x.json"),
            b"x".to_vec(),
            BlobPutMode::Create,
        )
        .await
        .expect("put");
    blobs
        .put(
            &key(&format!("{prefix}-sibling"), "runs/00.json"),
            b"x".to_vec(),
            BlobPutMode::Create,
        )
        .await
        .expect("put");

    let mut options = ListOptions {
        prefix: format!("{prefix}/runs/"),
        limit: Some(3),
        cursor: None,
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for _ in 0..100 {
        let page = blobs.list(&options).await.expect("list");
        assert!(page.blobs.len() <= 3, "a page holds at most `limit` blobs");
        seen.extend(page.blobs.iter().map(|b| b.key.to_string()));
        sizes.extend(page.blobs.iter().map(|b| b.size));
        match page.cursor {
            Some(cursor) => options.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every key once, in order");
    assert_eq!(sizes, (0..10).collect::<Vec<u64>>());
    assert_eq!(
        blobs
            .list_all(&format!("{prefix}/"))
            .await
            .expect("list all")
            .len(),
        11
    );
    let bogus = ListOptions {
        prefix,
        limit: None,
        cursor: Some(Cursor("\u{1}bogus".into())),
    };
    assert!(
        blobs.list(&bogus).await.is_err(),
        "a cursor the backend did not issue is rejected"
    );
}

/// Delete removes a blob; deleting again, or deleting a missing blob, succeeds.
pub async fn delete_is_idempotent(blobs: &dyn BlobStore) {
    let k = key(&unique_prefix("delete"), "a");
    blobs
        .put(&k, b"x".to_vec(), BlobPutMode::Create)
        .await
        .expect("put");
    blobs.delete(&k).await.expect("delete");
    assert!(matches!(
        blobs.get(&k).await,
        Err(BlobError::NotFound { .. })
    ));
    blobs.delete(&k).await.expect("second delete");
    blobs
        .put(&k, b"again".to_vec(), BlobPutMode::Create)
        .await
        .expect("create after delete");
}

/// A blob written in parts is stored whole by `finish` (3 MiB in uneven parts), with the
/// writer's mode: a create-only writer finds an existing blob and leaves it, an overwriting one
/// replaces it. Nothing is visible before `finish`, and a writer dropped unfinished stores
/// nothing.
pub async fn written_in_parts(blobs: &dyn BlobStore) {
    let prefix = unique_prefix("parts");
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let k = key(&prefix, "report.html");
    let mut writer = blobs.writer(&k, BlobPutMode::Create).await.expect("writer");
    for part in body.chunks(300_001) {
        writer.write(part).await.expect("write");
    }
    assert!(
        !blobs.exists(&k).await.expect("exists"),
        "visible before finish"
    );
    let meta = writer.finish().await.expect("finish");
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(blobs.get(&k).await.expect("get"), body);

    let mut again = blobs.writer(&k, BlobPutMode::Create).await.expect("writer");
    again.write(b"second").await.expect("write");
    match again.finish().await {
        Err(BlobError::AlreadyExists { key }) => assert_eq!(key, k.as_str()),
        other => panic!("a create-only writer must fail with AlreadyExists, got {other:?}"),
    }
    let mut over = blobs
        .writer(&k, BlobPutMode::Overwrite)
        .await
        .expect("writer");
    over.write(b"sec").await.expect("write");
    over.write(b"ond").await.expect("write");
    over.finish().await.expect("finish");
    assert_eq!(blobs.get(&k).await.expect("get"), b"second");

    let dropped = key(&prefix, "dropped.html");
    let mut writer = blobs
        .writer(&dropped, BlobPutMode::Create)
        .await
        .expect("writer");
    writer.write(b"partial").await.expect("write");
    drop(writer);
    assert!(!blobs.exists(&dropped).await.expect("exists"));
    let listed = blobs.list_all(&prefix).await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(keys, [k.as_str()], "only the finished blob is listed");
}
