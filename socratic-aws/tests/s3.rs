//! `S3BlobStore` against the emulator: the whole `BlobStore` suite.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use socratic_aws::S3BlobStore;
use socratic_core::blob::BlobStore;
use socratic_core::testkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_passes_the_blob_suite() {
    let Some(endpoint) = support::endpoint() else {
        return;
    };
    let client = support::s3(&endpoint, None).await;
    let bucket = support::bucket(&client).await;
    let store = S3BlobStore::new(client, bucket);
    testkit::blob::run_all(&store).await;
    let shared: Arc<dyn BlobStore> = Arc::new(store);
    testkit::blob::create_only_conflicts(&shared).await;
}
