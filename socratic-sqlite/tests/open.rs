//! Opening database files: persistence across reopen, and the errors for a locked, corrupt,
//! foreign or newer file, each naming the file.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use socratic_core::queue::{OutgoingMessage, QueueConsumer, QueueProducer, ReceiveOptions};
use socratic_core::store::{EntityJson, Item, Key, PutMode, Store};
use socratic_sqlite::{
    Database, OpenError, OpenOptions, SCHEMA_VERSION, SqliteQueue, SqliteQueueConfig,
};

fn receive(max: usize) -> ReceiveOptions {
    ReceiveOptions {
        max_messages: max,
        wait: Duration::from_millis(200),
        visibility_timeout: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_and_messages_survive_reopening_and_in_flight_messages_can_be_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    let config = SqliteQueueConfig {
        visibility_timeout: Duration::from_secs(300),
        ..SqliteQueueConfig::default()
    };
    {
        let db = Database::open(&path).unwrap();
        let item = Item::new(Key::new("RUN#1", "META"))
            .with_data(EntityJson::of(&json!({"a": 1})).unwrap());
        db.store().put(item, PutMode::Create).await.unwrap();
        let queue = SqliteQueue::new(&db, "jobs", config.clone());
        queue.send(OutgoingMessage::new("in flight")).await.unwrap();
        queue.send(OutgoingMessage::new("waiting")).await.unwrap();
        let got = queue.receive(&receive(1)).await.unwrap();
        assert_eq!(got[0].body, "in flight");
        // The process "dies" here, with one message received and not acknowledged.
    }
    let db = Database::open(&path).unwrap();
    let item = db
        .store()
        .get(&Key::new("RUN#1", "META"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.data.unwrap().to_value().unwrap(), json!({"a": 1}));
    let queue = SqliteQueue::new(&db, "jobs", config);
    let visible = queue.receive(&receive(10)).await.unwrap();
    assert_eq!(
        visible.iter().map(|d| d.body.as_str()).collect::<Vec<_>>(),
        ["waiting"],
        "the in-flight message stays hidden for its visibility timeout"
    );
    assert_eq!(queue.release_in_flight().await.unwrap(), 2);
    let mut again: Vec<_> = queue.receive(&receive(10)).await.unwrap();
    again.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(again.len(), 2);
    assert_eq!((again[0].body.as_str(), again[0].attempt), ("in flight", 2));
    assert_eq!((again[1].body.as_str(), again[1].attempt), ("waiting", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    drop(Database::open(&path).unwrap());
    // Another process (here another connection) holds the write lock.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = Database::open_with(
        &path,
        OpenOptions {
            busy_timeout: Duration::from_millis(100),
        },
    )
    .unwrap_err();
    assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("locked"), "{message}");
    holder.execute_batch("ROLLBACK").unwrap();
    Database::open(&path).expect("opens once the lock is released");
}

#[test]
fn a_corrupt_database_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let error = Database::open(&path).unwrap_err();
    assert!(matches!(error, OpenError::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("corrupt"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated_with_its_items() {
    use socratic_core::keys::BY_STATUS;
    use socratic_core::store::{Query, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    let run = Item::new(Key::new("RUN#1", "META"))
        .with_data(EntityJson::of(&json!({"a": 1})).unwrap())
        .with_index(BY_STATUS, "STATUS#running", "RUN#1");
    {
        let db = Database::open(&path).unwrap();
        db.store().put(run.clone(), PutMode::Create).await.unwrap();
    }
    // Put the items back into version 1's table, as that version left them, without the
    // tables of later versions.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items_v1 (pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, \
             index_keys TEXT NOT NULL, attributes TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;
             INSERT INTO items_v1 SELECT pk, sk, version, index_keys, attributes FROM items;
             DROP TABLE items;
             ALTER TABLE items_v1 RENAME TO items;
             DROP TABLE blobs;
             DROP TABLE parts;
             DROP TABLE batches;
             DROP TABLE batch_requests;
             PRAGMA user_version = 1;",
        )
        .unwrap();

    let db = Database::open(&path).unwrap();
    let store = db.store();
    let got = store.get(&run.key).await.unwrap().unwrap();
    assert_eq!(got.attributes, run.attributes);
    let page = store
        .query(&Query::index(BY_STATUS, "STATUS#running"))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "index entries still find the item");
    let second = Item::new(Key::new("RUN#1", "TURN#001")).with_attribute("n", json!(1));
    store.put(second.clone(), PutMode::Create).await.unwrap();
    assert!(matches!(
        store.put(second, PutMode::Create).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    drop(store);
    drop(db);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let sql: String = connection
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'items'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
}

#[test]
fn a_database_from_a_newer_socratic_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socratic.db");
    drop(Database::open(&path).unwrap());
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let error = Database::open(&path).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, OpenError::NewerSchema { found, supported, .. } if found == newer && supported == SCHEMA_VERSION),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("schema version {newer}"))
            && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    let error = Database::open(&path).unwrap_err();
    assert!(matches!(error, OpenError::Foreign { .. }), "{error:?}");
    assert!(error.to_string().contains("not a socratic database"));
}

#[test]
fn a_second_process_on_a_results_directory_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let first = socratic_sqlite::ResultsDir::acquire(dir.path()).unwrap();
    let error = socratic_sqlite::ResultsDir::acquire(dir.path()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, socratic_sqlite::ResultsError::InUse { pid: Some(p), .. } if p == std::process::id()),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    // Readers do not need the lock.
    socratic_sqlite::ResultsDir::read(dir.path()).expect("read while held");
    drop(first);
    socratic_sqlite::ResultsDir::acquire(dir.path()).expect("free again once released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_of_a_results_directory_leaves_the_whole_database_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(socratic_sqlite::DATABASE_FILE);
    let wal = dir
        .path()
        .join(format!("{}-wal", socratic_sqlite::DATABASE_FILE));
    {
        let results = socratic_sqlite::ResultsDir::acquire(dir.path()).unwrap();
        // A reader open meanwhile keeps the log from being removed when the writer closes.
        let reader = Database::open(&path).unwrap();
        let store = results.database().store();
        for i in 0..200 {
            let item = Item::new(Key::new(format!("RUN#{i}"), "META"))
                .with_data(EntityJson::of(&json!({"text": "x".repeat(2000)})).unwrap());
            store.put(item, PutMode::Create).await.unwrap();
        }
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 100_000,
            "written to the log"
        );
        drop(results);
        let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(left, 0, "the log was not truncated");
        drop(reader);
    }
    // Everything is in the file itself.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let reopened = Database::open(&copy).unwrap();
    let found = reopened
        .store()
        .get(&Key::new("RUN#199", "META"))
        .await
        .unwrap();
    assert!(found.is_some());
}
