//! No import runs back up a layer of the SQLite backends.

use std::path::Path;

use socratic_core::testkit::layers;

/// Lowest first: what a process knows of its queues and how blob bodies split into parts, the
/// database thread, the ports on it, the call ledger, the batch records (whose costs go to the
/// ledger), and a results directory holding all of them.
const LAYERS: &[&[&str]] = &[
    &["activity", "codec"],
    &["parts"],
    &["db"],
    &["store", "queue", "blobs", "ledger"],
    &["batches", "results"],
    &["results_blobs"],
];

#[test]
fn every_import_of_the_sqlite_backends_runs_down_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = layers::violations(&src, LAYERS);
    assert!(violations.is_empty(), "{violations:#?}");
}
