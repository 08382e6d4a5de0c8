//! The typed repository over the in-memory store, and over mocks for failure paths.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use socratic_core::canonical::content_hash;
use socratic_core::clock::Timestamp;
use socratic_core::defaults::Defaults;
use socratic_core::entity::{
    CallRecord, Judgment, JudgmentOutcome, Manifest, ManifestRequest, ModelConfig, Prompt, Run,
    RunStatus, Scenario, Turn, Vector,
};
use socratic_core::id::{ManifestId, ModelId, RunId};
use socratic_core::keys;
use socratic_core::llm::{Role, StopReason, Usage};
use socratic_core::mocks::MockStore;
use socratic_core::repository::{PutOutcome, RepoError, Repository, RunFilter};
use socratic_core::store::{EntityJson, Item, Store, StoreError};
use socratic_memory::MemoryStore;

fn repo() -> (MemoryStore, Repository) {
    let store = MemoryStore::new();
    (store.clone(), Repository::new(Arc::new(store)))
}

fn ulid(n: u64) -> ulid::Ulid {
    ulid::Ulid::from_parts(1_764_000_000_000 + n, u128::from(n))
}

fn request(defaults: &Defaults) -> ManifestRequest {
    ManifestRequest {
        tutor_prompt: defaults.tutor_prompt.id.clone(),
        judge_prompt: defaults.judge_prompt.id.clone(),
        rubric: defaults.rubric.id.clone(),
        scenarios: defaults.scenarios.iter().map(|s| s.id.clone()).collect(),
        tutors: vec![ModelConfig {
            model: ModelId::new("tutor-a").unwrap(),
            temperature: 0.7,
        }],
        student: None,
        judges: vec![ModelConfig {
            model: ModelId::new("judge-a").unwrap(),
            temperature: 0.0,
        }],
        turns: 3,
        repetitions: 1,
        max_tokens: 512,
        label: None,
        rejudge_of: None,
        allow_self_judging: false,
    }
}

fn manifest(n: u64, request: ManifestRequest) -> Manifest {
    Manifest {
        id: ManifestId::from_ulid(ulid(n)),
        hash: content_hash(&request).unwrap(),
        run_count: request.run_count(),
        request,
        catalog_hashes: BTreeMap::new(),
        created_at: Timestamp::from_millis(1_764_000_000_000 + n as i64),
    }
}

fn run(n: u64, manifest: ManifestId, model: &str, vector: Vector) -> Run {
    Run {
        id: RunId::from_ulid(ulid(n)),
        manifest,
        tutor: ModelConfig {
            model: ModelId::new(model).unwrap(),
            temperature: 0.7,
        },
        scenario: "EL-ETH-UTIL-DEON-01".parse().unwrap(),
        vector,
        repetition: 1,
        turns: 2,
        judges: 1,
        status: RunStatus::Pending,
        failure: None,
        created_at: Timestamp::from_millis(1_764_000_000_000 + n as i64),
        updated_at: Timestamp::from_millis(1_764_000_000_000 + n as i64),
    }
}

fn call(role: Role) -> CallRecord {
    CallRecord {
        role,
        model: ModelId::new("tutor-a").unwrap(),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        },
        latency_ms: 12,
        stop_reason: StopReason::EndTurn,
        cached: false,
        batched: false,
    }
}

#[tokio::test]
async fn catalog_puts_are_immutable_and_idempotent() {
    let (_, repo) = repo();
    let defaults = Defaults::load().unwrap();
    assert_eq!(
        repo.put_catalog(&defaults.rubric).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(
        repo.put_catalog(&defaults.rubric).await.unwrap(),
        PutOutcome::Unchanged
    );
    let mut changed = defaults.rubric.clone();
    changed.pass_threshold = 4.0;
    match repo.put_catalog(&changed).await {
        Err(RepoError::Conflict {
            id, stored, new, ..
        }) => {
            assert_eq!(id, "ase-v1");
            assert_ne!(stored, new);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let stored: socratic_core::entity::Rubric =
        repo.require_catalog(&defaults.rubric.id).await.unwrap();
    assert_eq!(stored, defaults.rubric, "the first content stays");
    assert_eq!(
        repo.catalog_hash::<socratic_core::entity::Rubric>(&defaults.rubric.id)
            .await
            .unwrap(),
        Some(content_hash(&defaults.rubric).unwrap())
    );
}

#[tokio::test]
async fn invalid_entities_are_not_written() {
    let (store, repo) = repo();
    let mut prompt: Prompt = Defaults::load().unwrap().tutor_prompt;
    prompt.body = "   ".into();
    assert!(matches!(
        repo.put_catalog(&prompt).await,
        Err(RepoError::Invalid { .. })
    ));
    assert!(store.is_empty());
}

#[tokio::test]
async fn defaults_install_once_and_list_by_type_across_pages() {
    let (_, repo) = repo();
    let defaults = Defaults::load().unwrap();
    // The rubric, three prompts and the scenario bank.
    assert_eq!(
        defaults.install(&repo).await.unwrap(),
        4 + defaults.scenarios.len()
    );
    assert_eq!(
        defaults.install(&repo).await.unwrap(),
        0,
        "installing again writes nothing"
    );
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo.list_catalog::<Scenario>(3, cursor).await.unwrap();
        assert!(page.items.len() <= 3);
        ids.extend(page.items.into_iter().map(|s| s.id.to_string()));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut expected: Vec<_> = defaults
        .scenarios
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    let prompts = repo.list_catalog::<Prompt>(10, None).await.unwrap();
    assert_eq!(prompts.items.len(), 3);
}

#[tokio::test]
async fn posting_the_same_manifest_twice_returns_the_first() {
    let (_, repo) = repo();
    let defaults = Defaults::load().unwrap();
    let first = manifest(1, request(&defaults));
    let again = manifest(2, request(&defaults));
    assert_eq!(repo.create_manifest(&first).await.unwrap(), first);
    assert_eq!(
        repo.create_manifest(&again).await.unwrap(),
        first,
        "same hash, same manifest"
    );
    let listed = repo.list_manifests(10, None).await.unwrap();
    assert_eq!(listed.items, vec![first.clone()]);
    let mut other = request(&defaults);
    other.turns = 4;
    let second = manifest(3, other);
    assert_eq!(repo.create_manifest(&second).await.unwrap(), second);
    let listed = repo.list_manifests(10, None).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "newest first"
    );
}

#[tokio::test]
async fn all_manifests_reads_every_page_newest_first() {
    let (_, repo) = repo();
    let defaults = Defaults::load().unwrap();
    let mut created = Vec::new();
    for n in 1..=230 {
        let mut request = request(&defaults);
        request.label = Some(format!("manifest {n}"));
        let manifest = manifest(n, request);
        repo.create_manifest(&manifest).await.unwrap();
        created.push(manifest.id);
    }
    created.reverse();
    let all: Vec<_> = repo
        .all_manifests()
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        all, created,
        "three pages, every manifest once, newest first"
    );
}

#[tokio::test]
async fn run_status_changes_are_versioned_and_move_the_status_index() {
    let (_, repo) = repo();
    let m = ManifestId::from_ulid(ulid(100));
    let mut r = run(1, m, "tutor-a", Vector::Aporia);
    repo.create(&r).await.unwrap();
    repo.create(&run(2, m, "tutor-b", Vector::Elenchus))
        .await
        .unwrap();
    r.status = RunStatus::Running;
    r.updated_at = Timestamp::from_millis(1_764_000_100_000);
    assert_eq!(repo.update(&r, 1).await.unwrap(), 2);
    let mut stale = r.clone();
    stale.status = RunStatus::DialogueComplete;
    assert!(matches!(
        repo.update(&stale, 1).await,
        Err(RepoError::Store(StoreError::ConditionFailed { .. }))
    ));

    let running = repo
        .list_runs(&RunFilter::Status(RunStatus::Running), 10, None)
        .await
        .unwrap();
    assert_eq!(running.items, vec![r.clone()]);
    let pending = repo
        .list_runs(&RunFilter::Status(RunStatus::Pending), 10, None)
        .await
        .unwrap();
    assert_eq!(
        pending.items.len(),
        1,
        "only the other run is still pending"
    );
    assert_eq!(
        repo.list_runs(&RunFilter::Manifest(m), 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let by_model = repo
        .list_runs(
            &RunFilter::Model(ModelId::new("tutor-a").unwrap()),
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_model.items, vec![r.clone()]);
    let by_vector = repo
        .list_runs(&RunFilter::Vector(Vector::Elenchus), 10, None)
        .await
        .unwrap();
    assert_eq!(by_vector.items.len(), 1);
}

#[tokio::test]
async fn turns_are_written_once_and_a_run_reads_in_one_query() {
    let (_, repo) = repo();
    let m = ManifestId::from_ulid(ulid(100));
    let r = run(1, m, "tutor-a", Vector::Aporia);
    repo.create(&r).await.unwrap();
    let turn = |text: &str| Turn {
        run: r.id,
        index: 1,
        tutor_text: text.into(),
        tutor_call: call(Role::Tutor),
        student_text: Some("Because.".into()),
        student_call: None,
        created_at: Timestamp::from_millis(1),
    };
    let first = repo
        .put_once(turn("What makes you say that?"))
        .await
        .unwrap();
    let retried = repo
        .put_once(turn("A different answer on retry"))
        .await
        .unwrap();
    assert_eq!(retried, first, "a retried write returns the first turn");
    let judgment = Judgment {
        run: r.id,
        turn: 1,
        judge: ModelId::new("judge-a").unwrap(),
        outcome: JudgmentOutcome::Unscored {
            reason: "scores.pedagogical_stance: missing".into(),
        },
        attempts: 3,
        calls: vec![call(Role::Judge)],
        created_at: Timestamp::from_millis(2),
    };
    repo.put_once(judgment.clone()).await.unwrap();

    let record = repo.run_record(&r.id).await.unwrap().unwrap();
    assert_eq!(record.run.value, r);
    assert_eq!(record.turns, vec![first]);
    assert_eq!(record.judgments, vec![judgment]);
    assert_eq!(record.summary, None);
    assert!(
        repo.run_record(&RunId::from_ulid(ulid(999)))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn corrupt_items_are_reported_with_their_key() {
    let (store, repo) = repo();
    let key = keys::run(&RunId::from_ulid(ulid(5)));
    let item = Item::new(key.clone())
        .with_attribute("entity", json!("turn"))
        .with_data(EntityJson::of(&json!({})).unwrap());
    store
        .put(item, socratic_core::store::PutMode::Create)
        .await
        .unwrap();
    match repo.get_run(&RunId::from_ulid(ulid(5))).await {
        Err(RepoError::Corrupt { key: k, message }) => {
            assert_eq!(k, key);
            assert!(message.contains("expected a run item"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn store_failures_surface_as_retryable_repository_errors() {
    let mut store = MockStore::new();
    store.expect_put().times(1).returning(|_, _| {
        Err(StoreError::Throttled {
            message: "slow down".into(),
        })
    });
    let repo = Repository::new(Arc::new(store));
    let err = repo
        .put_catalog(&Defaults::load().unwrap().judge_prompt)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_create_conflict_compares_the_stored_hash() {
    let prompt = Defaults::load().unwrap().student_prompt;
    let mut store = MockStore::new();
    store
        .expect_put()
        .returning(|item, _| Err(StoreError::AlreadyExists { key: item.key }));
    store.expect_get().returning(|key| {
        Ok(Some(
            Item::new(key.clone()).with_attribute("sha256", json!("0".repeat(64))),
        ))
    });
    let repo = Repository::new(Arc::new(store));
    assert!(matches!(
        repo.put_catalog(&prompt).await,
        Err(RepoError::Conflict { .. })
    ));
}
