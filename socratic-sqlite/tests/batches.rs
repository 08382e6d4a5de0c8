//! Batch records in a real database file: written with their requests, found open by model
//! after the database is opened again, and their answered requests counted in the ledger.

#![allow(clippy::unwrap_used)]

use socratic_core::llm::{
    BatchJournal, BatchRecord, BatchRequest, BatchState, ConverseRequest, Message, Role,
};
use socratic_sqlite::{BatchRecords, CallLedger, Database};

fn record(local_id: &str, model: &str, n: usize) -> BatchRecord {
    BatchRecord {
        local_id: local_id.to_owned(),
        model: model.to_owned(),
        provider: "openai".to_owned(),
        provider_id: None,
        requests: (0..n)
            .map(|i| BatchRequest {
                custom_id: format!("{local_id}-{i}"),
                request: ConverseRequest::new(
                    model,
                    Role::Judge,
                    vec![Message::user(format!("turn {i}"))],
                ),
            })
            .collect(),
        state: BatchState::Submitting,
        status: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_survive_a_reopen_and_collected_costs_reach_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    {
        let db = Database::open(&path).unwrap();
        let ledger = CallLedger::new(&db);
        ledger.set_scope("manifest-a");
        let records = BatchRecords::new(&ledger);
        let mut first = record("01A", "judge", 3);
        records.put(&first).await.unwrap();
        first.provider_id = Some("batch_abc123".to_owned());
        first.state = BatchState::Submitted;
        first.status = "in_progress".to_owned();
        records.put(&first).await.unwrap();
        let mut second = record("01B", "tutor", 2);
        records.put(&second).await.unwrap();
        second.state = BatchState::Collected;
        second.status = "completed".to_owned();
        records.collected(&second, &[0.25, 0.5]).await.unwrap();
    }

    let db = Database::open(&path).unwrap();
    let ledger = CallLedger::new(&db);
    let records = BatchRecords::new(&ledger);
    let open = records.open("judge").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].provider_id.as_deref(), Some("batch_abc123"));
    assert_eq!(open[0].state, BatchState::Submitted);
    assert_eq!(open[0], {
        let mut expected = record("01A", "judge", 3);
        expected.provider_id = Some("batch_abc123".to_owned());
        expected.state = BatchState::Submitted;
        expected.status = "in_progress".to_owned();
        expected
    });
    assert!(records.open("tutor").await.unwrap().is_empty(), "collected");
    let all = records.all().await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.local_id.as_str()).collect::<Vec<_>>(),
        ["01A", "01B"]
    );
    let filed = records.filed(None).await.unwrap();
    assert_eq!(
        filed
            .iter()
            .find(|(_, r)| r.local_id == "01B")
            .unwrap()
            .0
            .as_deref(),
        Some("manifest-a")
    );
    assert_eq!(records.filed(Some("manifest-a")).await.unwrap().len(), 2);
    let totals = ledger.totals("manifest-a").await.unwrap();
    assert_eq!(totals.calls, 2);
    assert_eq!(totals.cut_off, 0);
    assert!((totals.spent_usd - 0.75).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_takes_up_only_its_own_open_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("socratic.db")).unwrap();
    let ledger = CallLedger::new(&db);
    let records = BatchRecords::new(&ledger);
    ledger.set_scope("manifest-a");
    records.put(&record("01A", "judge", 2)).await.unwrap();
    ledger.set_scope("manifest-b");
    records.put(&record("01B", "judge", 3)).await.unwrap();

    // manifest-b resumes: manifest-a's batch is left for manifest-a.
    let open = records.open("judge").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].local_id, "01B");
    ledger.set_scope("manifest-a");
    let open = records.open("judge").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].local_id, "01A");
    // Without a scope (a tool reading the records), every open batch.
    let unscoped = BatchRecords::new(&CallLedger::new(&db));
    assert_eq!(unscoped.open("judge").await.unwrap().len(), 2);
}
