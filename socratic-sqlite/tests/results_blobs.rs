//! The blobs of a results directory: the many small ones in the database, the report files
//! as files, and what an older socratic wrote as files still read.

#![allow(clippy::unwrap_used)]

use socratic_core::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt, ListOptions};
use socratic_core::testkit;
use socratic_sqlite::{ResultsBlobs, ResultsDir};

fn key(text: &str) -> BlobKey {
    BlobKey::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_artifacts_answers_and_runs_go_to_the_database_and_reports_stay_files() {
    let dir = tempfile::tempdir().unwrap();
    let results = ResultsDir::acquire(dir.path()).unwrap();
    let blobs = results.blobs().unwrap();
    testkit::blob::run_all(&blobs).await;

    for (name, in_database) in [
        ("raw/runs/R1/turn-001.json", true),
        ("cache/llm/ab.json", true),
        ("curated/runs/R1.json", true),
        ("curated/manifests/M/report.html", false),
        ("manifests/M.json", false),
    ] {
        let body = format!("{{\"name\":\"{name}\"}}").into_bytes();
        blobs
            .put(&key(name), body.clone(), BlobPutMode::Create)
            .await
            .unwrap();
        assert_eq!(blobs.get(&key(name)).await.unwrap(), body);
        assert_eq!(
            dir.path().join(name).exists(),
            !in_database,
            "{name}: a file only for what people open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_an_older_socratic_wrote_as_files_are_read_listed_and_never_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    // As an older socratic left them: files.
    let old = dir.path().join("curated/runs");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("R1.json"), b"old run").unwrap();
    std::fs::create_dir_all(dir.path().join("cache/llm")).unwrap();
    std::fs::write(dir.path().join("cache/llm/aa.json"), b"old answer").unwrap();

    let results = ResultsDir::acquire(dir.path()).unwrap();
    let blobs = results.blobs().unwrap();
    blobs
        .put(
            &key("curated/runs/R2.json"),
            b"new run".to_vec(),
            BlobPutMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(
        blobs.get(&key("curated/runs/R1.json")).await.unwrap(),
        b"old run"
    );
    assert_eq!(
        blobs.get(&key("cache/llm/aa.json")).await.unwrap(),
        b"old answer"
    );
    assert!(matches!(
        blobs
            .put(
                &key("cache/llm/aa.json"),
                b"again".to_vec(),
                BlobPutMode::Create
            )
            .await,
        Err(BlobError::AlreadyExists { .. })
    ));

    // Both stores in one listing, in key order, a page at a time.
    for i in 3..=9 {
        blobs
            .put(
                &key(&format!("curated/runs/R{i}.json")),
                b"new".to_vec(),
                BlobPutMode::Create,
            )
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut options = ListOptions {
        prefix: "curated/runs/".to_owned(),
        limit: Some(4),
        cursor: None,
    };
    loop {
        let page = blobs.list(&options).await.unwrap();
        keys.extend(page.blobs.iter().map(|b| b.key.as_str().to_owned()));
        match page.cursor {
            Some(cursor) => options.cursor = Some(cursor),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=9).map(|i| format!("curated/runs/R{i}.json")).collect();
    assert_eq!(keys, expected);
    // Every answer and run, from both stores.
    assert_eq!(blobs.list_all("c").await.unwrap().len(), 10);

    // A reader without the lock sees the same.
    let reader = ResultsBlobs::read(dir.path()).unwrap();
    assert_eq!(
        reader.get(&key("curated/runs/R2.json")).await.unwrap(),
        b"new run"
    );
}
