//! `SqsQueue` against the emulator: the whole queue suite, dead-lettering by redrive policy.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use socratic_aws::{SqsQueue, create_queue_with_dead_letter};
use socratic_core::testkit::{
    self,
    queue::{QueueFixture, TestQueue},
};

struct SqsQueues {
    client: aws_sdk_sqs::Client,
}

#[async_trait]
impl QueueFixture for SqsQueues {
    async fn queue(&self, max_attempts: u32) -> TestQueue {
        let name = support::unique("socratic");
        let (url, dlq) = create_queue_with_dead_letter(
            &self.client,
            &name,
            max_attempts,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let queue = SqsQueue::new(self.client.clone(), url);
        TestQueue {
            producer: Arc::new(queue.clone()),
            consumer: Arc::new(queue),
            dead_letters: Arc::new(SqsQueue::new(self.client.clone(), dlq)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_passes_the_queue_suite() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let fixture = SqsQueues {
        client: support::sqs(&endpoint, None).await,
    };
    // moto's receive scans the whole queue, so 10,000 messages would take hours there; the
    // memory backend runs the full 10,000. moto delivers an acknowledged message only once;
    // pointed at a real SQS standard queue, which promises at-least-once delivery, this
    // would set `exactly_once: false`.
    testkit::queue::run_with(
        &fixture,
        testkit::queue::QueueCapabilities {
            load_messages: 1_000,
            exactly_once: true,
        },
    )
    .await;
}
