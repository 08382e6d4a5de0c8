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
