//! Every in-memory backend against the whole conformance suite of its port, directly and
//! through `Arc<dyn …>` so the forwarding impls are covered too.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::blob::BlobStore;
use socratic_core::queue::{QueueConsumer, QueueProducer};
use socratic_core::store::Store;
use socratic_core::testkit::{
    self,
    queue::{QueueFixture, TestQueue},
};
use socratic_memory::{FsBlobStore, MemoryBlobStore, MemoryQueue, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_store_suite() {
    testkit::store::run_all(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_through_arc_dyn() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    testkit::store::run_all(&store).await;
    let boxed: Box<dyn Store> = Box::new(MemoryStore::new());
    testkit::store::run_all(&boxed).await;
}

#[tokio::test]
async fn memory_blob_store_passes_the_blob_suite() {
    testkit::blob::run_all(&MemoryBlobStore::new()).await;
    let shared: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    testkit::blob::run_all(&shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blob_store_passes_the_blob_suite() {
    let dir = tempfile::tempdir().unwrap();
    testkit::blob::run_all(&FsBlobStore::new(dir.path()).unwrap()).await;
    let shared: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path().join("nested")).unwrap());
    testkit::blob::run_all(&shared).await;
}

struct MemoryQueues {
    through_dyn: bool,
}

#[async_trait]
impl QueueFixture for MemoryQueues {
    async fn queue(&self, max_attempts: u32) -> TestQueue {
        let dead_letters = MemoryQueue::default();
        let queue = MemoryQueue::with_dead_letter(
            Duration::from_secs(30),
            max_attempts,
            dead_letters.clone(),
        );
        if self.through_dyn {
            let producer: Arc<dyn QueueProducer> =
                Arc::new(Arc::new(queue.clone()) as Arc<dyn QueueProducer>);
            let consumer: Arc<dyn QueueConsumer> =
                Arc::new(Box::new(queue) as Box<dyn QueueConsumer>);
            TestQueue {
                producer,
                consumer,
                dead_letters: Arc::new(dead_letters),
            }
        } else {
            TestQueue {
                producer: Arc::new(queue.clone()),
                consumer: Arc::new(queue),
                dead_letters: Arc::new(dead_letters),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_queue_passes_the_queue_suite() {
    testkit::queue::run_all(&MemoryQueues { through_dyn: false }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_queue_passes_through_arc_and_box_dyn() {
    testkit::queue::run_all(&MemoryQueues { through_dyn: true }).await;
}

/// A queue that, like an SQS standard queue, now and then delivers a message again after it
/// was acknowledged: every fifth receive repeats one message of the receive before.
struct AtLeastOnce {
    inner: MemoryQueue,
    receives: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<Option<socratic_core::queue::Delivery>>,
}

const REPEAT: &str = "#repeat";

#[async_trait]
impl QueueConsumer for AtLeastOnce {
    async fn receive(
        &self,
        options: &socratic_core::queue::ReceiveOptions,
    ) -> Result<Vec<socratic_core::queue::Delivery>, socratic_core::queue::QueueError> {
        let mut batch = self.inner.receive(options).await?;
        let n = self
            .receives
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut last = self.last.lock().unwrap();
        if n % 5 == 4
            && let Some(mut again) = last.take()
        {
            again.receipt.0.push_str(REPEAT);
            batch.push(again);
        } else if let Some(first) = batch.first() {
            *last = Some(first.clone());
        }
        Ok(batch)
    }

    async fn ack(
        &self,
        receipt: &socratic_core::queue::Receipt,
    ) -> Result<(), socratic_core::queue::QueueError> {
        if receipt.0.ends_with(REPEAT) {
            // Deleting a message twice succeeds on SQS.
            return Ok(());
        }
        self.inner.ack(receipt).await
    }

    async fn nack(
        &self,
        receipt: &socratic_core::queue::Receipt,
        delay: Duration,
    ) -> Result<(), socratic_core::queue::QueueError> {
        self.inner.nack(receipt, delay).await
    }
}

struct AtLeastOnceQueues;

#[async_trait]
impl QueueFixture for AtLeastOnceQueues {
    async fn queue(&self, max_attempts: u32) -> TestQueue {
        let dead_letters = MemoryQueue::default();
        let inner = MemoryQueue::with_dead_letter(
            Duration::from_secs(30),
            max_attempts,
            dead_letters.clone(),
        );
        TestQueue {
            producer: Arc::new(inner.clone()),
            consumer: Arc::new(AtLeastOnce {
                inner,
                receives: std::sync::atomic::AtomicU64::new(0),
                last: std::sync::Mutex::new(None),
            }),
            dead_letters: Arc::new(dead_letters),
        }
    }
}

fn at_least_once(load_messages: usize) -> testkit::queue::QueueCapabilities {
    testkit::queue::QueueCapabilities {
        load_messages,
        exactly_once: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_at_least_once_queue_passes_when_the_suite_is_told_so() {
    testkit::queue::messages_through_concurrent_consumers(
        &AtLeastOnceQueues,
        at_least_once(2_000),
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "handled more than once")]
async fn an_at_least_once_queue_fails_the_exactly_once_check() {
    let exactly_once = testkit::queue::QueueCapabilities {
        exactly_once: true,
        ..at_least_once(2_000)
    };
    testkit::queue::messages_through_concurrent_consumers(&AtLeastOnceQueues, exactly_once, 4)
        .await;
}
