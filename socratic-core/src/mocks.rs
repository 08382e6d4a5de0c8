//! mockall mocks of every port (feature `mocks`), so code built on the ports can be unit-tested
//! with expectations instead of a backend.
//!
//! ```
//! # use socratic_core::mocks::MockStore;
//! # use socratic_core::store::{Key, Store};
//! # tokio_test_block(async {
//! let mut store = MockStore::new();
//! store.expect_get().returning(|_| Ok(None));
//! assert_eq!(store.get(&Key::new("RUN#x", "METADATA")).await.unwrap(), None);
//! # });
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     futures::executor::block_on(f)
//! # }
//! ```
#![allow(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;

use crate::blob::{BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions};
use crate::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError};
use crate::queue::{
    Delivery, MessageId, OutgoingMessage, QueueConsumer, QueueError, QueueProducer, Receipt,
    ReceiveOptions,
};
use crate::store::{Item, Key, Page, PutMode, Query, Store, StoreError, TxOp};

mockall::mock! {
    /// A mock [`Store`].
    pub Store {}
    #[async_trait]
    impl Store for Store {
        async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
        async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError>;
        async fn query(&self, query: &Query) -> Result<Page, StoreError>;
        async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError>;
        async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError>;
    }
}

mockall::mock! {
    /// A mock [`BlobStore`].
    pub BlobStore {}
    #[async_trait]
    impl BlobStore for BlobStore {
        async fn put(&self, key: &BlobKey, bytes: Vec<u8>, mode: BlobPutMode) -> Result<BlobMeta, BlobError>;
        async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError>;
        async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError>;
        async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError>;
        async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
    }
}

mockall::mock! {
    /// A mock [`QueueProducer`].
    pub QueueProducer {}
    #[async_trait]
    impl QueueProducer for QueueProducer {
        async fn send(&self, message: OutgoingMessage) -> Result<MessageId, QueueError>;
        async fn send_batch(
            &self,
            messages: Vec<OutgoingMessage>,
        ) -> Result<Vec<Result<MessageId, QueueError>>, QueueError>;
    }
}

mockall::mock! {
    /// A mock [`QueueConsumer`].
    pub QueueConsumer {}
    #[async_trait]
    impl QueueConsumer for QueueConsumer {
        async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<Delivery>, QueueError>;
        async fn ack(&self, receipt: &Receipt) -> Result<(), QueueError>;
        async fn nack(&self, receipt: &Receipt, delay: Duration) -> Result<(), QueueError>;
    }
}

mockall::mock! {
    /// A mock [`LlmClient`].
    pub LlmClient {}
    #[async_trait]
    impl LlmClient for LlmClient {
        async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError>;
    }
}
