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
    let table = support::unique("socratic");
    create_table(&client, &table).await.unwrap();
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
    let table = support::unique("socratic");
    create_table(&client, &table).await.unwrap();
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
        create_table(&client, &table).await.is_err(),
        "creating it twice is an error"
    );
}
