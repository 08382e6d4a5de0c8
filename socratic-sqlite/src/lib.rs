//! SQLite backends for `socratic`: the store and the queues of a whole pipeline in one
//! embedded database file, so a local benchmark survives a crash, resumes where it stopped,
//! and keeps its history for `list`, `show` and `compare`.
//!
//! - [`Database`]: one file in WAL mode, with a versioned schema checked on open. A file
//!   written by a newer socratic is refused with both versions named; a locked or corrupt
//!   file gives an [`OpenError`] that names it.
//! - [`SqliteStore`]: the [`Store`](socratic_core::store::Store) port. Transactions are SQLite
//!   transactions.
//! - [`SqliteQueue`]: the queue ports with visibility timeouts, attempt counts and a
//!   dead-letter queue, persisted with the store.
//! - [`SqliteBlobStore`]: the [`BlobStore`](socratic_core::blob::BlobStore) port, each body
//!   split into content-addressed parts so that what raw artifacts, cached answers and
//!   curated runs repeat is stored once.
//! - [`CallLedger`] and [`LedgerLlm`]: a row per model call, written before the call and
//!   closed once its answer is stored, so a resumed benchmark counts what earlier processes
//!   spent against its cap.
//! - [`ResultsDir`]: a results directory held by one process: its lock, its database, and
//!   the recovery of messages a killed process had in hand; [`ResultsBlobs`], its blobs:
//!   raw artifacts, cached answers and curated runs in the database, report files as files.
//!
//! Every blocking call runs on tokio's blocking pool. Both backends pass the conformance
//! suites of `socratic_core::testkit`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use socratic_sqlite::{Database, SqliteQueue, SqliteQueueConfig};
//! use socratic_core::repository::Repository;
//! use std::sync::Arc;
//!
//! let db = Database::open("results/socratic.db")?;
//! let repository = Repository::new(Arc::new(db.store()));
//! let jobs = SqliteQueue::new(&db, "dialogue", SqliteQueueConfig::default());
//! # let _ = (repository, jobs);
//! # Ok(())
//! # }
//! ```

mod activity;
mod batches;
mod blobs;
mod codec;
mod db;
mod ledger;
mod parts;
mod queue;
mod results;
mod results_blobs;
mod store;

pub use batches::BatchRecords;
pub use blobs::SqliteBlobStore;
pub use db::{APPLICATION_ID, Database, OpenError, OpenOptions, SCHEMA_VERSION};
pub use ledger::{CallLedger, LedgerLlm, LedgerTotals};
pub use queue::{SqliteQueue, SqliteQueueConfig};
pub use results::{
    DATABASE_FILE, LOCK_FILE, MAX_ATTEMPTS, ResultsDir, ResultsError, StageQueues,
    VISIBILITY_TIMEOUT,
};
pub use results_blobs::{IN_DATABASE, ResultsBlobs};
pub use store::{DEFAULT_PAGE, SqliteStore};
