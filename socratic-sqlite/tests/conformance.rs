//! The SQLite backends against the whole conformance suites of their ports, on real database
//! files.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::store::Store;
use socratic_core::testkit::{
    self,
    queue::{QueueFixture, TestQueue},
};
use socratic_sqlite::{Database, SqliteQueue, SqliteQueueConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("socratic.db")).unwrap();
    testkit::store::run_all(&db.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_through_arc_dyn() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("socratic.db")).unwrap();
    let store: Arc<dyn Store> = Arc::new(db.store());
    testkit::store::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_blob_store_passes_the_blob_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("socratic.db")).unwrap();
    testkit::blob::run_all(&db.blobs()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_that_repeat_each_other_store_the_repeats_once_and_read_back_exactly() {
    use socratic_core::blob::{BlobKey, BlobPutMode, BlobStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    let db = Database::open(&path).unwrap();
    let blobs = db.blobs();
    let prompt = "You are an expert judge of Socratic tutoring; score the last turn. ".repeat(30);
    let mut bodies = Vec::new();
    for i in 0..200 {
        let body = format!(
            r#"{{"request":{{"system":"{prompt}","turn":{i}}},"response":{{"text":"answer {i}: {}"}}}}"#,
            "a question back to the student ".repeat(3)
        );
        let key = BlobKey::new(format!("raw/runs/r/{i:03}.json")).unwrap();
        blobs
            .put(&key, body.clone().into_bytes(), BlobPutMode::Create)
            .await
            .unwrap();
        bodies.push((key, body));
    }
    for (key, body) in &bodies {
        assert_eq!(blobs.get(key).await.unwrap(), body.as_bytes());
    }
    db.checkpoint().unwrap();
    drop((blobs, db));
    // 200 bodies of about 2 KB each: with the prompt stored once, far less than their sum.
    let total: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    let file = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(total > 400_000, "{total}");
    assert!(
        file < total / 2,
        "{file} bytes on disk for {total} bytes of bodies"
    );
    // What was stored reads back after reopening.
    let reopened = Database::open(&path).unwrap().blobs();
    assert_eq!(
        reopened.get(&bodies[7].0).await.unwrap(),
        bodies[7].1.as_bytes()
    );
}

/// Fresh queues in one database file, each with its own dead-letter queue.
struct SqliteQueues {
    db: Database,
    next: AtomicU32,
}

#[async_trait]
impl QueueFixture for SqliteQueues {
    async fn queue(&self, max_attempts: u32) -> TestQueue {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let config = SqliteQueueConfig {
            visibility_timeout: Duration::from_secs(30),
            max_attempts: Some(max_attempts),
            dead_letter: Some(format!("q{n}-dead")),
        };
        let queue = SqliteQueue::new(&self.db, format!("q{n}"), config);
        let dead_letters = queue.dead_letter().unwrap();
        TestQueue {
            producer: Arc::new(queue.clone()),
            consumer: Arc::new(queue),
            dead_letters: Arc::new(dead_letters),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_passes_the_queue_suite_with_ten_thousand_messages() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = SqliteQueues {
        db: Database::open(dir.path().join("socratic.db")).unwrap(),
        next: AtomicU32::new(0),
    };
    testkit::queue::run_all(&fixture).await;
}
