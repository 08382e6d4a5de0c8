//! Conformance suites, one per port (feature `testkit`), and the check that a crate's modules
//! import only down its [`layers`].
//!
//! Each check is a plain `async fn` taking the port as a trait object and panicking with a
//! message that names the broken rule. Every backend runs every check: the in-memory ones in
//! unit tests, the AWS ones against an emulator. Checks use fresh random key prefixes, so they
//! can share one table, bucket or queue server and run in parallel.
//!
//! ```no_run
//! # async fn demo(store: &dyn socratic_core::store::Store) {
//! socratic_core::testkit::store::run_all(store).await;
//! # }
//! ```

pub mod blob;
pub mod layers;
pub mod llm;
pub mod queue;
pub mod store;

/// A fresh prefix for one check, so checks never see each other's data.
pub fn unique_prefix(name: &str) -> String {
    format!("{name}-{}", ulid::Ulid::new())
}
