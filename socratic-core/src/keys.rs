//! The key schema of the single table, as pure functions.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | prompt / rubric / scenario / model | `PROMPT#id` / `RUBRIC#id` / `SEED#id` / `MODEL#id` | `METADATA` |
//! | manifest | `MANIFEST#ulid` | `METADATA` |
//! | manifest hash lock | `MANIFEST_HASH#sha256` | `METADATA` |
//! | manifest summaries | `MANIFEST#ulid` | `SUMMARY`, `MODEL_SUMMARY#model`, `VECTOR_SUMMARY#vector` |
//! | human labels | `MANIFEST#ulid` | `HUMAN_LABELS` |
//! | run | `RUN#ulid` | `METADATA` |
//! | turn / judgment / run summary | `RUN#ulid` | `TURN#001`, `JUDGE#001#judge`, `SUMMARY` |
//!
//! Index keys: catalog entities, manifests and runs in [`BY_TYPE`] under `TYPE#<kind>`
//! (manifests and runs sorted by creation); runs also in [`BY_MODEL`] (`MODEL#id`,
//! `created#run`), [`BY_MANIFEST`] (`MANIFEST#ulid`, `RUN#ulid`), [`BY_VECTOR`]
//! (`VECTOR#name`, `created#run`) and [`BY_STATUS`] (`STATUS#name`, `updated#run`).
//! Timestamps are fixed-width RFC 3339, so sort keys order by time. [`INDEXES`] lists them
//! all: it is what a store backend is built with (and a DynamoDB table's global indexes).

use std::fmt;

use crate::canonical::ContentHash;
use crate::clock::Timestamp;
use crate::id::{ManifestId, ModelId, PromptId, RubricId, RunId, ScenarioId};
use crate::store::{Index, IndexKey, Key};

/// Catalog entities, manifests and runs by entity type.
pub const BY_TYPE: Index = Index::new("by_type", "by_type_pk", "by_type_sk");
/// Runs by tutor model and time.
pub const BY_MODEL: Index = Index::new("by_model", "by_model_pk", "by_model_sk");
/// Runs by manifest.
pub const BY_MANIFEST: Index = Index::new("by_manifest", "by_manifest_pk", "by_manifest_sk");
/// Runs by vector and time.
pub const BY_VECTOR: Index = Index::new("by_vector", "by_vector_pk", "by_vector_sk");
/// Runs by status and time of the last change.
pub const BY_STATUS: Index = Index::new("by_status", "by_status_pk", "by_status_sk");

/// Every index of the key schema: the list a store backend serves.
pub const INDEXES: [Index; 5] = [BY_TYPE, BY_MODEL, BY_MANIFEST, BY_VECTOR, BY_STATUS];

/// Sort key of an entity's main item.
pub const METADATA: &str = "METADATA";
/// Sort key of a run's or a manifest's summary.
pub const SUMMARY: &str = "SUMMARY";
/// Sort key of a manifest's human labels.
pub const HUMAN_LABELS: &str = "HUMAN_LABELS";
/// Sort-key prefix of turns.
pub const TURN_PREFIX: &str = "TURN#";
/// Sort-key prefix of judgments.
pub const JUDGE_PREFIX: &str = "JUDGE#";
/// Sort-key prefix of model summaries.
pub const MODEL_SUMMARY_PREFIX: &str = "MODEL_SUMMARY#";
/// Sort-key prefix of vector summaries.
pub const VECTOR_SUMMARY_PREFIX: &str = "VECTOR_SUMMARY#";
/// Sort-key prefix of a manifest's run-count shards.
pub const COUNTS_PREFIX: &str = "COUNTS#";
/// Sort-key prefix of a manifest's stopped (failed or skipped) runs.
pub const STOPPED_PREFIX: &str = "STOPPED#";
/// Sort key of the claim on writing a manifest's summary.
pub const SUMMARY_CLAIM: &str = "SUMMARY_CLAIM";
/// How many items a manifest's run counts are spread over. Every status change of a run adds
/// to one of them, in the transaction that moves the run: spread, the moves of many workers
/// seldom touch the same item at once (DynamoDB cancels transactions that do), and one batch
/// read still gets them all.
pub const COUNT_SHARDS: u32 = 16;

/// The kind of entity an item holds; stored in its `entity` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    /// A prompt.
    Prompt,
    /// A rubric.
    Rubric,
    /// A scenario (SEED).
    Scenario,
    /// A model.
    Model,
    /// A manifest.
    Manifest,
    /// A manifest's hash lock.
    ManifestHash,
    /// A run.
    Run,
    /// A turn.
    Turn,
    /// A judgment.
    Judgment,
    /// A run summary.
    RunSummary,
    /// A manifest's leaderboard summary.
    ManifestSummary,
    /// A model summary.
    ModelSummary,
    /// A vector summary.
    VectorSummary,
    /// A manifest's human labels.
    HumanLabels,
}

impl EntityKind {
    /// The name stored in items and used in `TYPE#…` index keys.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Prompt => "prompt",
            EntityKind::Rubric => "rubric",
            EntityKind::Scenario => "seed",
            EntityKind::Model => "model",
            EntityKind::Manifest => "manifest",
            EntityKind::ManifestHash => "manifest_hash",
            EntityKind::Run => "run",
            EntityKind::Turn => "turn",
            EntityKind::Judgment => "judgment",
            EntityKind::RunSummary => "run_summary",
            EntityKind::ManifestSummary => "manifest_summary",
            EntityKind::ModelSummary => "model_summary",
            EntityKind::VectorSummary => "vector_summary",
            EntityKind::HumanLabels => "human_labels",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `PROMPT#id` / `METADATA`.
pub fn prompt(id: &PromptId) -> Key {
    Key::new(format!("PROMPT#{id}"), METADATA)
}

/// `RUBRIC#id` / `METADATA`.
pub fn rubric(id: &RubricId) -> Key {
    Key::new(format!("RUBRIC#{id}"), METADATA)
}

/// `SEED#id` / `METADATA`.
pub fn scenario(id: &ScenarioId) -> Key {
    Key::new(format!("SEED#{id}"), METADATA)
}

/// `MODEL#id` / `METADATA`.
pub fn model(id: &ModelId) -> Key {
    Key::new(format!("MODEL#{id}"), METADATA)
}

/// `MANIFEST#ulid` / `METADATA`.
pub fn manifest(id: &ManifestId) -> Key {
    Key::new(manifest_pk(id), METADATA)
}

/// `MANIFEST#ulid`.
pub fn manifest_pk(id: &ManifestId) -> String {
    format!("MANIFEST#{id}")
}

/// `MANIFEST_HASH#sha256` / `METADATA`: the lock that makes posting a manifest twice a no-op.
pub fn manifest_hash(hash: &ContentHash) -> Key {
    Key::new(format!("MANIFEST_HASH#{hash}"), METADATA)
}

/// `MANIFEST#ulid` / `SUMMARY`.
pub fn manifest_summary(id: &ManifestId) -> Key {
    Key::new(manifest_pk(id), SUMMARY)
}

/// `MANIFEST#ulid` / `MODEL_SUMMARY#model`.
pub fn model_summary(id: &ManifestId, model: &ModelId) -> Key {
    Key::new(manifest_pk(id), format!("{MODEL_SUMMARY_PREFIX}{model}"))
}

/// `MANIFEST#ulid` / `VECTOR_SUMMARY#vector`, by the vector's name.
pub fn vector_summary(id: &ManifestId, vector: &str) -> Key {
    Key::new(manifest_pk(id), format!("{VECTOR_SUMMARY_PREFIX}{vector}"))
}

/// `MANIFEST#ulid` / `HUMAN_LABELS`.
pub fn human_labels(id: &ManifestId) -> Key {
    Key::new(manifest_pk(id), HUMAN_LABELS)
}

/// `MANIFEST#ulid` / `COUNTS#07`: one of the [`COUNT_SHARDS`] items counting the manifest's
/// runs by status change.
pub fn manifest_counts(id: &ManifestId, shard: u32) -> Key {
    Key::new(manifest_pk(id), format!("{COUNTS_PREFIX}{shard:02}"))
}

/// The count shard a run's status changes add to: the low bits of its id (random, or a hash
/// of its coordinates), so runs spread evenly.
pub fn count_shard(run: &RunId) -> u32 {
    u32::try_from(u128::from(run.ulid()) % u128::from(COUNT_SHARDS)).unwrap_or(0)
}

/// `MANIFEST#ulid` / `STOPPED#RUN#ulid`: a copy of a run that stopped (failed or skipped),
/// written with its move, so a manifest's stopped runs are one query away.
pub fn stopped_run(manifest: &ManifestId, run: &RunId) -> Key {
    Key::new(
        manifest_pk(manifest),
        format!("{STOPPED_PREFIX}{}", run_pk(run)),
    )
}

/// `MANIFEST#ulid` / `SUMMARY_CLAIM`: who writes the manifest's summary.
pub fn summary_claim(id: &ManifestId) -> Key {
    Key::new(manifest_pk(id), SUMMARY_CLAIM)
}

/// `RUN#ulid`.
pub fn run_pk(id: &RunId) -> String {
    format!("RUN#{id}")
}

/// `RUN#ulid` / `METADATA`.
pub fn run(id: &RunId) -> Key {
    Key::new(run_pk(id), METADATA)
}

/// `TURN#001`: turn numbers are zero-padded to three digits so they sort numerically.
pub fn turn_sk(index: u32) -> String {
    format!("{TURN_PREFIX}{index:03}")
}

/// `RUN#ulid` / `TURN#001`.
pub fn turn(run: &RunId, index: u32) -> Key {
    Key::new(run_pk(run), turn_sk(index))
}

/// `JUDGE#001#`: the prefix of every judgment of one turn.
pub fn judgment_prefix(turn: u32) -> String {
    format!("{JUDGE_PREFIX}{turn:03}#")
}

/// `RUN#ulid` / `JUDGE#001#judge`.
pub fn judgment(run: &RunId, turn: u32, judge: &ModelId) -> Key {
    Key::new(run_pk(run), format!("{}{judge}", judgment_prefix(turn)))
}

/// `RUN#ulid` / `SUMMARY`.
pub fn run_summary(run: &RunId) -> Key {
    Key::new(run_pk(run), SUMMARY)
}

/// `TYPE#kind`: the [`BY_TYPE`] partition of a kind.
pub fn type_partition(kind: EntityKind) -> String {
    format!("TYPE#{kind}")
}

/// A catalog entity's key in [`BY_TYPE`], sorted by id.
pub fn catalog_type_index(kind: EntityKind, id: &str) -> (Index, IndexKey) {
    (
        BY_TYPE,
        IndexKey {
            pk: type_partition(kind),
            sk: id.to_owned(),
        },
    )
}

/// A manifest's key in [`BY_TYPE`], sorted by creation time.
pub fn manifest_type_index(id: &ManifestId, created_at: Timestamp) -> (Index, IndexKey) {
    (
        BY_TYPE,
        IndexKey {
            pk: type_partition(EntityKind::Manifest),
            sk: format!("{created_at}#{id}"),
        },
    )
}

/// `MODEL#id`: a model's partition in [`BY_MODEL`].
pub fn by_model_partition(model: &ModelId) -> String {
    format!("MODEL#{model}")
}

/// `MANIFEST#ulid`: a manifest's partition in [`BY_MANIFEST`].
pub fn by_manifest_partition(manifest: &ManifestId) -> String {
    manifest_pk(manifest)
}

/// `VECTOR#name`: a vector's partition in [`BY_VECTOR`], by the vector's name.
pub fn by_vector_partition(vector: &str) -> String {
    format!("VECTOR#{vector}")
}

/// `STATUS#name`: a status's partition in [`BY_STATUS`], by the status's name.
pub fn by_status_partition(status: &str) -> String {
    format!("STATUS#{status}")
}

/// The index keys of a run.
pub fn run_index_keys(
    id: &RunId,
    manifest: &ManifestId,
    model: &ModelId,
    vector: &str,
    status: &str,
    created_at: Timestamp,
    updated_at: Timestamp,
) -> Vec<(Index, IndexKey)> {
    vec![
        (
            BY_MODEL,
            IndexKey {
                pk: by_model_partition(model),
                sk: format!("{created_at}#{id}"),
            },
        ),
        (
            BY_MANIFEST,
            IndexKey {
                pk: by_manifest_partition(manifest),
                sk: run_pk(id),
            },
        ),
        (
            BY_VECTOR,
            IndexKey {
                pk: by_vector_partition(vector),
                sk: format!("{created_at}#{id}"),
            },
        ),
        (
            BY_STATUS,
            IndexKey {
                pk: by_status_partition(status),
                sk: format!("{updated_at}#{id}"),
            },
        ),
        // Every run, by creation: `GET /runs` without a filter, newest first.
        (
            BY_TYPE,
            IndexKey {
                pk: type_partition(EntityKind::Run),
                sk: format!("{created_at}#{id}"),
            },
        ),
    ]
}

/// Reads the run id back from `RUN#ulid`.
pub fn parse_run_pk(pk: &str) -> Option<RunId> {
    pk.strip_prefix("RUN#")?.parse().ok()
}

/// Reads the turn number back from `TURN#001`.
pub fn parse_turn_sk(sk: &str) -> Option<u32> {
    let digits = sk.strip_prefix(TURN_PREFIX)?;
    (digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Reads the turn number and judge back from `JUDGE#001#judge`.
pub fn parse_judgment_sk(sk: &str) -> Option<(u32, ModelId)> {
    let rest = sk.strip_prefix(JUDGE_PREFIX)?;
    let (digits, judge) = rest.split_once('#')?;
    if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, ModelId::new(judge).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run_id() -> RunId {
        "01JD8X4Z7Q3V9K2M5N6P7R8S9T".parse().unwrap()
    }

    #[test]
    fn every_pattern_is_pinned() {
        let r = run_id();
        let m: ManifestId = "01JD8X4Z7Q3V9K2M5N6P7R8S9V".parse().unwrap();
        let judge = ModelId::new("judge-a").unwrap();
        let k = |key: Key| format!("{} {}", key.pk, key.sk);
        assert_eq!(
            k(prompt(&PromptId::new("tutor-v1").unwrap())),
            "PROMPT#tutor-v1 METADATA"
        );
        assert_eq!(
            k(rubric(&RubricId::new("ase-v1").unwrap())),
            "RUBRIC#ase-v1 METADATA"
        );
        assert_eq!(
            k(scenario(&ScenarioId::new("EL-1").unwrap())),
            "SEED#EL-1 METADATA"
        );
        assert_eq!(k(model(&judge)), "MODEL#judge-a METADATA");
        assert_eq!(
            k(manifest(&m)),
            "MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9V METADATA"
        );
        let hash = ContentHash::of_bytes(b"");
        assert_eq!(
            k(manifest_hash(&hash)),
            "MANIFEST_HASH#e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 METADATA"
        );
        assert_eq!(
            k(manifest_summary(&m)),
            "MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9V SUMMARY"
        );
        assert_eq!(
            k(model_summary(&m, &judge)),
            "MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9V MODEL_SUMMARY#judge-a"
        );
        assert_eq!(
            k(vector_summary(&m, "aporia")),
            "MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9V VECTOR_SUMMARY#aporia"
        );
        assert_eq!(k(run(&r)), "RUN#01JD8X4Z7Q3V9K2M5N6P7R8S9T METADATA");
        assert_eq!(k(turn(&r, 1)), "RUN#01JD8X4Z7Q3V9K2M5N6P7R8S9T TURN#001");
        assert_eq!(
            k(judgment(&r, 12, &judge)),
            "RUN#01JD8X4Z7Q3V9K2M5N6P7R8S9T JUDGE#012#judge-a"
        );
        assert_eq!(k(run_summary(&r)), "RUN#01JD8X4Z7Q3V9K2M5N6P7R8S9T SUMMARY");
        assert_eq!(
            catalog_type_index(EntityKind::Scenario, "EL-1").1.pk,
            "TYPE#seed"
        );
        let created = Timestamp::from_millis(0);
        assert_eq!(
            manifest_type_index(&m, created).1.sk,
            "1970-01-01T00:00:00.000Z#01JD8X4Z7Q3V9K2M5N6P7R8S9V"
        );
        let indexes = run_index_keys(
            &r,
            &m,
            &judge,
            "elenchus",
            "dialogue_complete",
            created,
            created,
        );
        let shown: Vec<String> = indexes
            .iter()
            .map(|(i, key)| format!("{} {} {}", i.name(), key.pk, key.sk))
            .collect();
        assert_eq!(
            shown,
            [
                "by_model MODEL#judge-a 1970-01-01T00:00:00.000Z#01JD8X4Z7Q3V9K2M5N6P7R8S9T",
                "by_manifest MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9V RUN#01JD8X4Z7Q3V9K2M5N6P7R8S9T",
                "by_vector VECTOR#elenchus 1970-01-01T00:00:00.000Z#01JD8X4Z7Q3V9K2M5N6P7R8S9T",
                "by_status STATUS#dialogue_complete 1970-01-01T00:00:00.000Z#01JD8X4Z7Q3V9K2M5N6P7R8S9T",
                "by_type TYPE#run 1970-01-01T00:00:00.000Z#01JD8X4Z7Q3V9K2M5N6P7R8S9T",
            ]
        );
    }

    #[test]
    fn parsers_reject_foreign_keys() {
        assert_eq!(parse_turn_sk("TURN#01"), None);
        assert_eq!(parse_turn_sk("TURN#0a1"), None);
        assert_eq!(parse_turn_sk("JUDGE#001#x"), None);
        assert_eq!(parse_judgment_sk("JUDGE#001"), None);
        assert_eq!(parse_judgment_sk("JUDGE#001#bad judge"), None);
        assert_eq!(parse_run_pk("MANIFEST#01JD8X4Z7Q3V9K2M5N6P7R8S9T"), None);
        assert_eq!(parse_run_pk(&run_pk(&run_id())), Some(run_id()));
    }

    proptest! {
        #[test]
        fn turn_and_judgment_keys_round_trip_and_sort_numerically(
            a in 1u32..=999, b in 1u32..=999, judge in "[a-z0-9][a-z0-9._:-]{0,20}",
        ) {
            let judge = ModelId::new(judge).unwrap();
            prop_assert_eq!(parse_turn_sk(&turn_sk(a)), Some(a));
            let key = judgment(&run_id(), a, &judge);
            prop_assert_eq!(parse_judgment_sk(&key.sk), Some((a, judge.clone())));
            prop_assert_eq!(turn_sk(a).cmp(&turn_sk(b)), a.cmp(&b));
            prop_assert!(key.sk.starts_with(&judgment_prefix(a)));
        }

        #[test]
        fn time_sorted_index_keys_order_by_time(x in 0i64..4_102_444_800_000, y in 0i64..4_102_444_800_000) {
            let (tx, ty) = (Timestamp::from_millis(x), Timestamp::from_millis(y));
            prop_assert_eq!(tx.to_string().cmp(&ty.to_string()), x.cmp(&y));
        }
    }
}
