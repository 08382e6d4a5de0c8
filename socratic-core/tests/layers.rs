//! No import runs back up a layer of the core: each module uses only modules below it.

use std::path::Path;

use socratic_core::testkit::layers;

/// The core's modules, lowest layer first. A module may import only from layers before its
/// own.
const LAYERS: &[&[&str]] = &[
    // Pure values and numbers.
    &["canonical", "clock", "id", "stats"],
    // The ports: items and messages, then blobs (paged by the store's cursors), then models
    // (whose response cache is a blob).
    &["store", "queue"],
    &["blob"],
    &["llm"],
    // The single table's key schema, and the entities that know their keys in it.
    &["keys"],
    &["entity"],
    // Entities in and out of any store; what a dialogue reveals of the answer.
    &["repository", "answer_key"],
    // The catalog, manifest comparison, the report files, the stages.
    &["defaults", "compare"],
    &["report"],
    &["pipeline"],
    // What drives and measures the stages.
    &["estimate", "calibration", "runner"],
    &["assembly", "api", "labelling"],
    // Support for other crates' tests.
    &["testkit", "mocks"],
];

#[test]
fn every_import_of_the_core_runs_down_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = layers::violations(&src, LAYERS);
    assert!(violations.is_empty(), "{violations:#?}");
}
