//! In-memory and filesystem backends for `socratic`.
//!
//! - [`MemoryStore`]: the [`Store`](socratic_core::store::Store) port on ordered maps, with one
//!   map per index and transactions applied under one lock.
//! - [`MemoryBlobStore`] and [`FsBlobStore`]: the [`BlobStore`](socratic_core::blob::BlobStore)
//!   port in memory and in a directory (atomic writes, keys confined to the root).
//! - [`MemoryQueue`]: the queue ports with visibility timeouts, attempt counts and a
//!   dead-letter queue.
//! - [`MemoryBackend`]: a store and stage queues in memory, assembled into a pipeline's ports
//!   and runner as every backend is; [`LocalPipeline`]: the whole pipeline on it.
//!
//! Every backend passes the conformance suites of `socratic_core::testkit`. Cloning any of
//! them shares its state. The offline models, the scripted model and fault injection are in
//! `socratic-sim`.

mod blob;
mod cursor;
mod fs_blob;
pub mod local;
mod queue;
mod store;

pub use blob::MemoryBlobStore;
pub use fs_blob::FsBlobStore;
pub use local::{LocalPipeline, LocalQueues, MemoryBackend};
pub use queue::{MemoryQueue, QueueConfig};
pub use store::MemoryStore;

/// The repository README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
