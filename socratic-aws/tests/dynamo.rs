//! `DynamoStore` against the emulator: the whole `Store` suite.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use socratic_aws::{DynamoStore, create_table};
use socratic_core::store::Store;
use socratic_core::testkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_store_passes_the_store_suite() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let client = support::dynamo(&endpoint, None).await;
    let table = support::table(&client).await;
    let store = DynamoStore::new(client, &table);
    testkit::store::run_all(&store).await;
    // And through the forwarding impl.
    let shared: Arc<dyn Store> = Arc::new(store);
    testkit::store::get_missing_is_none(&shared).await;
    testkit::store::transaction_is_all_or_nothing(&shared).await;
}

#[tokio::test]
async fn create_table_makes_every_index() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let client = support::dynamo(&endpoint, None).await;
    let table = support::table(&client).await;
    let described = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let t = described.table().unwrap();
    let mut names: Vec<&str> = t
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "by_manifest",
            "by_model",
            "by_status",
            "by_type",
            "by_vector"
        ]
    );
    assert!(
        create_table(&client, &table, &socratic_core::keys::INDEXES)
            .await
            .is_err(),
        "creating it twice is an error"
    );
}

#[tokio::test]
async fn batch_reads_retry_unprocessed_keys() {
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use socratic_core::store::Key;
    use std::collections::HashMap;

    fn key(sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("PK".to_owned(), AttributeValue::S("P".into())),
            ("SK".to_owned(), AttributeValue::S(sk.into())),
        ])
    }
    fn item(sk: &str) -> HashMap<String, AttributeValue> {
        let mut item = key(sk);
        item.insert("version".into(), AttributeValue::N("1".into()));
        item
    }
    // First answer: one item, and the other key left unprocessed; second answer: the rest.
    let first = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("t", vec![item("a")])
            .unprocessed_keys(
                "t",
                KeysAndAttributes::builder().keys(key("b")).build().unwrap(),
            )
            .build()
    });
    let second = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(|| {
        BatchGetItemOutput::builder()
            .responses("t", vec![item("b")])
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &second]);
    let store = DynamoStore::new(client, "t");
    let got = store
        .get_many(&[
            Key::new("P", "b"),
            Key::new("P", "missing"),
            Key::new("P", "a"),
        ])
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|i| i.as_ref().map(|i| i.key.sk.clone()))
            .collect::<Vec<_>>(),
        [Some("b".into()), None, Some("a".into())]
    );
    assert_eq!(
        (first.num_calls(), second.num_calls()),
        (1, 1),
        "the unprocessed key was asked for again"
    );
}
