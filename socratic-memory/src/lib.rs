//! In-memory and filesystem backends for `socratic`.
//!
//! - [`MemoryStore`]: the [`Store`](socratic_core::store::Store) port on ordered maps, with one
//!   map per index and transactions applied under one lock.
//! - [`MemoryBlobStore`] and [`FsBlobStore`]: the [`BlobStore`](socratic_core::blob::BlobStore)
//!   port in memory and in a directory (atomic writes, keys confined to the root).
//! - [`MemoryQueue`]: the queue ports with visibility timeouts, attempt counts and a
//!   dead-letter queue.
//! - [`ScriptedLlm`]: an [`LlmClient`](socratic_core::llm::LlmClient) that answers from a
//!   script, for tests.
//! - [`simulated`]: deterministic offline tutors, student and judge, so a whole benchmark runs
//!   without credentials or network.
//! - [`LocalPipeline`]: the whole pipeline on memory backends, as the local benchmark runs it.
//! - [`chaos`]: fault injection — a flaky model, duplicate deliveries, shuffled receives.
//!
//! Every backend passes the conformance suites of `socratic_core::testkit`. Cloning any of
//! them shares its state.

mod blob;
pub mod chaos;
mod cursor;
mod fs_blob;
mod llm;
pub mod local;
mod queue;
pub mod simulated;
mod store;

pub use blob::MemoryBlobStore;
pub use fs_blob::FsBlobStore;
pub use llm::ScriptedLlm;
pub use local::{LocalPipeline, LocalQueues, simulated_manifest};
pub use queue::{MemoryQueue, QueueConfig};
pub use simulated::SimulatedLlm;
pub use store::MemoryStore;

/// The repository README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
