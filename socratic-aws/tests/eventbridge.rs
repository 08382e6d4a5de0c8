//! `EventBridgePublisher` against the emulator: events reach a rule's SQS target.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use socratic_aws::{EventBridgePublisher, RUN_JUDGED_DETAIL_TYPE, SOURCE, SqsQueue};
use socratic_core::queue::{
    OutgoingMessage, QueueConsumer, QueueError, QueueProducer, ReceiveOptions,
};

#[tokio::test]
async fn eventbridge_publishes_run_judged_events() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let events = support::eventbridge(&endpoint).await;
    let sqs = support::sqs(&endpoint, None).await;
    let queue = sqs
        .create_queue()
        .queue_name(support::unique("curator"))
        .send()
        .await
        .unwrap();
    let url = queue.queue_url().unwrap().to_owned();
    let bus = support::run_judged_bus(&events, &sqs, &url).await;

    let publisher = EventBridgePublisher::new(events, &bus);
    let mut batch: Vec<OutgoingMessage> = (0..12)
        .map(|i| OutgoingMessage::new(json!({"type": "curate", "n": i}).to_string()))
        .collect();
    batch.insert(3, OutgoingMessage::new("not an object"));
    let results = publisher.send_batch(batch).await.unwrap();
    assert_eq!(results.len(), 13);
    assert!(
        matches!(results[3], Err(QueueError::InvalidRequest { .. })),
        "{:?}",
        results[3]
    );
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 12);

    let consumer = SqsQueue::new(sqs, url);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let options = ReceiveOptions {
            max_messages: 10,
            wait: Duration::from_secs(1),
            visibility_timeout: None,
        };
        for delivery in consumer.receive(&options).await.unwrap() {
            let event: Value = serde_json::from_str(&delivery.body).unwrap();
            assert_eq!(event["source"], SOURCE);
            assert_eq!(event["detail-type"], RUN_JUDGED_DETAIL_TYPE);
            seen.push(event["detail"]["n"].as_i64().unwrap());
            consumer.ack(&delivery.receipt).await.unwrap();
        }
        if seen.len() == 12 {
            break;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
}
