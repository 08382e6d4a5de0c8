//! The [`Store`] conformance suite.

use std::collections::BTreeSet;

use serde_json::json;

use crate::store::{
    Condition, Cursor, EntityJson, Index, Item, Key, Order, PutMode, Query, SortKeyRange, Store,
    StoreError, StoreExt, TxOp,
};

use super::unique_prefix;
use crate::keys;

/// Runs every check.
pub async fn run_all(store: &dyn Store) {
    get_missing_is_none(store).await;
    create_only_conflicts(store).await;
    overwrite_replaces(store).await;
    update_if_version(store).await;
    prefix_and_range_queries(store).await;
    pagination_returns_each_item_once(store).await;
    indexes_are_sparse_and_follow_updates(store).await;
    index_pagination(store).await;
    transaction_is_all_or_nothing(store).await;
    transaction_applies_every_operation(store).await;
    concurrent_increments_add_up(store).await;
    increments_follow_puts(store).await;
    transactions_answer_with_counts(store).await;
    get_many_answers_every_key_in_order(store).await;
    invalid_requests_are_rejected(store).await;
}

fn item(pk: &str, sk: &str) -> Item {
    Item::new(Key::new(pk, sk)).with_data(EntityJson::of(&json!({"sk": sk})).expect("json"))
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| i.key.sk.clone()).collect()
}

/// Reading a missing key gives `None`, not an error.
pub async fn get_missing_is_none(store: &dyn Store) {
    let pk = unique_prefix("missing");
    assert_eq!(
        store.get(&Key::new(pk, "METADATA")).await.expect("get"),
        None
    );
}

/// A create-only put of an existing key fails with `AlreadyExists` and changes nothing.
pub async fn create_only_conflicts(store: &dyn Store) {
    let pk = unique_prefix("create");
    let first = item(&pk, "A").with_attribute("n", json!(1));
    store
        .put(first.clone(), PutMode::Create)
        .await
        .expect("first create");
    let second = item(&pk, "A").with_attribute("n", json!(2));
    match store.put(second, PutMode::Create).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, first.key),
        other => panic!("second create must fail with AlreadyExists, got {other:?}"),
    }
    let stored = store
        .get(&first.key)
        .await
        .expect("get")
        .expect("item exists");
    assert_eq!(stored, first, "a failed create must not change the item");
}

/// An overwrite replaces the item, including removing attributes and index keys.
pub async fn overwrite_replaces(store: &dyn Store) {
    let pk = unique_prefix("overwrite");
    let first = item(&pk, "A")
        .with_attribute("old", json!(true))
        .with_index(keys::BY_TYPE, format!("{pk}-T"), "x");
    store
        .put(first, PutMode::Overwrite)
        .await
        .expect("overwrite of nothing creates");
    let mut second = item(&pk, "A").with_attribute("new", json!("yes"));
    second.version = 7;
    store
        .put(second.clone(), PutMode::Overwrite)
        .await
        .expect("overwrite");
    assert_eq!(store.get(&second.key).await.expect("get"), Some(second));
    let indexed = store
        .query(&Query::index(keys::BY_TYPE, format!("{pk}-T")))
        .await
        .expect("query");
    assert!(
        indexed.items.is_empty(),
        "an overwrite without an index key removes the item from the index"
    );
}

/// Update-if-version succeeds only on the expected version, and never on a missing item.
pub async fn update_if_version(store: &dyn Store) {
    let pk = unique_prefix("version");
    let v1 = item(&pk, "A");
    store
        .put(v1.clone(), PutMode::Create)
        .await
        .expect("create");
    let mut v2 = v1.clone().with_attribute("step", json!(2));
    v2.version = 2;
    store
        .put(v2.clone(), PutMode::UpdateVersion(1))
        .await
        .expect("update from version 1");
    let mut stale = v1.clone().with_attribute("step", json!("stale"));
    stale.version = 2;
    match store.put(stale, PutMode::UpdateVersion(1)).await {
        Err(StoreError::ConditionFailed { key }) => assert_eq!(key, v1.key),
        other => {
            panic!("an update from a stale version must fail with ConditionFailed, got {other:?}")
        }
    }
    assert_eq!(
        store.get(&v1.key).await.expect("get"),
        Some(v2),
        "a failed update changes nothing"
    );
    let missing = item(&pk, "missing");
    assert!(
        matches!(
            store.put(missing, PutMode::UpdateVersion(1)).await,
            Err(StoreError::ConditionFailed { .. })
        ),
        "an update of a missing item must fail with ConditionFailed"
    );
}

/// Prefix and range conditions select the right sort keys, in both orders, and never leak
/// other partitions.
pub async fn prefix_and_range_queries(store: &dyn Store) {
    let pk = unique_prefix("range");
    let other = unique_prefix("range-other");
    for sk in [
        "A#01", "A#02", "A#03", "A#04", "A#05", "B#01", "B#02", "B#03", "C",
    ] {
        store
            .put(item(&pk, sk), PutMode::Create)
            .await
            .expect("put");
    }
    store
        .put(item(&other, "A#01"), PutMode::Create)
        .await
        .expect("put other");

    let run = |range: SortKeyRange, order: Order| {
        let query = Query::partition(pk.clone()).range(range).order(order);
        async move { sks(&store.query_all(&query).await.expect("query")) }
    };
    assert_eq!(run(SortKeyRange::All, Order::Ascending).await.len(), 9);
    assert_eq!(
        run(SortKeyRange::Prefix("A#".into()), Order::Ascending).await,
        ["A#01", "A#02", "A#03", "A#04", "A#05"]
    );
    assert_eq!(
        run(SortKeyRange::Prefix("A#".into()), Order::Descending).await,
        ["A#05", "A#04", "A#03", "A#02", "A#01"]
    );
    assert_eq!(
        run(
            SortKeyRange::Between {
                from: "A#02".into(),
                to: "A#04".into()
            },
            Order::Ascending
        )
        .await,
        ["A#02", "A#03", "A#04"]
    );
    assert_eq!(
        run(
            SortKeyRange::Between {
                from: "A#04".into(),
                to: "B#01".into()
            },
            Order::Descending
        )
        .await,
        ["B#01", "A#05", "A#04"]
    );
    assert_eq!(
        run(SortKeyRange::AtLeast("B#02".into()), Order::Ascending).await,
        ["B#02", "B#03", "C"]
    );
    assert_eq!(
        run(SortKeyRange::AtMost("A#02".into()), Order::Descending).await,
        ["A#02", "A#01"]
    );
    assert!(
        run(SortKeyRange::Prefix("Z".into()), Order::Ascending)
            .await
            .is_empty()
    );
}

async fn collect_pages(store: &dyn Store, mut query: Query, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.query(&query).await.expect("query page");
        assert!(
            page.items.len() <= limit,
            "a page holds at most `limit` items"
        );
        seen.extend(sks(&page.items));
        pages += 1;
        assert!(pages < 1000, "pagination does not terminate");
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return seen,
        }
    }
}

/// Paging with a limit and cursor returns every item exactly once, in order, both ways.
pub async fn pagination_returns_each_item_once(store: &dyn Store) {
    let pk = unique_prefix("pages");
    let expected: Vec<String> = (0..25).map(|i| format!("S#{i:03}")).collect();
    for sk in &expected {
        store
            .put(item(&pk, sk), PutMode::Create)
            .await
            .expect("put");
    }
    let query = Query::partition(pk.clone()).limit(7);
    assert_eq!(collect_pages(store, query.clone(), 7).await, expected);
    let reversed: Vec<String> = expected.iter().rev().cloned().collect();
    assert_eq!(
        collect_pages(store, query.order(Order::Descending), 7).await,
        reversed
    );
    let exact = Query::partition(pk).limit(5);
    assert_eq!(
        collect_pages(store, exact, 5).await,
        expected,
        "a limit dividing the count evenly"
    );
}

/// Every index returns exactly the items holding a key for it; changing or dropping an
/// item's index key moves it.
pub async fn indexes_are_sparse_and_follow_updates(store: &dyn Store) {
    let base = unique_prefix("index");
    for index in keys::INDEXES {
        let partition = format!("{base}-{}", index.name());
        let a = item(&base, &format!("{}-a", index.name())).with_index(index, &partition, "2");
        let b = item(&base, &format!("{}-b", index.name())).with_index(index, &partition, "1");
        let not_indexed = item(&base, &format!("{}-c", index.name()));
        for it in [&a, &b, &not_indexed] {
            store.put(it.clone(), PutMode::Create).await.expect("put");
        }
        let found = store
            .query_all(&Query::index(index, &partition))
            .await
            .expect("index query");
        assert_eq!(
            found.iter().map(|i| i.key.clone()).collect::<Vec<_>>(),
            vec![b.key.clone(), a.key.clone()],
            "index {} returns its items in index sort-key order and nothing else",
            index.name()
        );
        assert_eq!(found[0], b, "index {} returns whole items", index.name());

        let moved_to = format!("{partition}-moved");
        let mut moved = a.clone().with_index(index, &moved_to, "9");
        moved.version = 2;
        store
            .put(moved, PutMode::UpdateVersion(1))
            .await
            .expect("update");
        let mut dropped = b.clone();
        dropped.index_keys.clear();
        dropped.version = 2;
        store
            .put(dropped, PutMode::UpdateVersion(1))
            .await
            .expect("update");
        let left = store
            .query_all(&Query::index(index, &partition))
            .await
            .expect("index query");
        assert!(
            left.is_empty(),
            "index {} still lists moved or dropped items: {left:?}",
            index.name()
        );
        let now = store
            .query_all(&Query::index(index, &moved_to))
            .await
            .expect("index query");
        assert_eq!(
            now.len(),
            1,
            "index {} lists the moved item under its new key",
            index.name()
        );
    }
}

/// Index queries page and order like base-table queries, also when sort keys repeat.
pub async fn index_pagination(store: &dyn Store) {
    let base = unique_prefix("index-pages");
    let partition = format!("{base}-P");
    let mut expected = Vec::new();
    for i in 0..12 {
        let sk = format!("{:02}", i / 2); // pairs share an index sort key
        let it = item(&base, &format!("item-{i:02}")).with_index(keys::BY_STATUS, &partition, &sk);
        store.put(it, PutMode::Create).await.expect("put");
        expected.push(format!("item-{i:02}"));
    }
    let query = Query::index(keys::BY_STATUS, &partition).limit(5);
    let mut seen = collect_pages(store, query.clone(), 5).await;
    assert_eq!(seen.len(), 12, "every indexed item once: {seen:?}");
    seen.sort();
    assert_eq!(seen, expected);
    let desc = collect_pages(
        store,
        query
            .range(SortKeyRange::AtLeast("03".into()))
            .order(Order::Descending),
        5,
    )
    .await;
    assert_eq!(
        desc.len(),
        6,
        "range and order apply to the index sort key: {desc:?}"
    );
    assert!(
        desc[..2].iter().all(|s| s == "item-10" || s == "item-11"),
        "descending starts at the top: {desc:?}"
    );
}

/// A transaction with one failing operation writes nothing and names that operation.
pub async fn transaction_is_all_or_nothing(store: &dyn Store) {
    let pk = unique_prefix("tx-fail");
    let existing = item(&pk, "existing").with_attribute("count", json!(5));
    store
        .put(existing.clone(), PutMode::Create)
        .await
        .expect("seed");
    store
        .put(item(&pk, "guard"), PutMode::Create)
        .await
        .expect("seed");

    let cases: Vec<(Vec<TxOp>, usize)> = vec![
        (
            vec![
                TxOp::Put {
                    item: item(&pk, "new"),
                    mode: PutMode::Create,
                },
                TxOp::Increment {
                    key: existing.key.clone(),
                    attribute: "count".into(),
                    by: 1,
                },
                TxOp::Put {
                    item: item(&pk, "existing2"),
                    mode: PutMode::Create,
                },
                TxOp::Check {
                    key: Key::new(&pk, "absent"),
                    condition: Condition::Exists,
                },
            ],
            3,
        ),
        (
            vec![
                TxOp::Put {
                    item: item(&pk, "new"),
                    mode: PutMode::Create,
                },
                TxOp::Put {
                    item: existing.clone(),
                    mode: PutMode::Create,
                },
            ],
            1,
        ),
        (
            vec![
                TxOp::Increment {
                    key: existing.key.clone(),
                    attribute: "count".into(),
                    by: 1,
                },
                TxOp::Increment {
                    key: Key::new(&pk, "counter"),
                    attribute: "count".into(),
                    by: 1,
                },
                TxOp::Check {
                    key: Key::new(&pk, "guard"),
                    condition: Condition::VersionIs(2),
                },
            ],
            2,
        ),
        (
            vec![
                TxOp::Put {
                    item: item(&pk, "new"),
                    mode: PutMode::Create,
                },
                TxOp::Delete {
                    key: existing.key.clone(),
                    condition: Some(Condition::VersionIs(9)),
                },
            ],
            1,
        ),
    ];
    for (n, (ops, failing)) in cases.into_iter().enumerate() {
        let failing_key = ops[failing].key().clone();
        let expect_exists = matches!(
            &ops[failing],
            TxOp::Put {
                mode: PutMode::Create,
                ..
            }
        );
        match store.transact(ops).await {
            Err(StoreError::TransactionCancelled { index, key, reason }) => {
                assert_eq!(
                    index, failing,
                    "case {n}: the failing operation is reported"
                );
                assert_eq!(key, failing_key, "case {n}: its key is reported");
                if expect_exists {
                    assert!(
                        matches!(*reason, StoreError::AlreadyExists { .. }),
                        "case {n}: {reason:?}"
                    );
                } else {
                    assert!(
                        matches!(*reason, StoreError::ConditionFailed { .. }),
                        "case {n}: {reason:?}"
                    );
                }
            }
            other => panic!("case {n}: expected TransactionCancelled, got {other:?}"),
        }
        assert_eq!(
            store.get(&Key::new(&pk, "new")).await.expect("get"),
            None,
            "case {n}: nothing written"
        );
        assert_eq!(
            store.get(&Key::new(&pk, "counter")).await.expect("get"),
            None,
            "case {n}: no counter item created"
        );
        assert_eq!(
            store.get(&existing.key).await.expect("get").as_ref(),
            Some(&existing),
            "case {n}: existing item unchanged"
        );
    }
}

/// A transaction whose conditions hold applies puts, deletes, checks and increments together.
pub async fn transaction_applies_every_operation(store: &dyn Store) {
    let pk = unique_prefix("tx-ok");
    let counter = item(&pk, "counter");
    let doomed = item(&pk, "doomed");
    let guard = item(&pk, "guard");
    for it in [&counter, &doomed, &guard] {
        store.put(it.clone(), PutMode::Create).await.expect("seed");
    }
    let ops = vec![
        TxOp::Put {
            item: item(&pk, "fresh"),
            mode: PutMode::Create,
        },
        TxOp::Increment {
            key: counter.key.clone(),
            attribute: "judged".into(),
            by: 3,
        },
        TxOp::Delete {
            key: doomed.key.clone(),
            condition: Some(Condition::Exists),
        },
        TxOp::Check {
            key: guard.key.clone(),
            condition: Condition::VersionIs(1),
        },
        TxOp::Check {
            key: Key::new(&pk, "nobody"),
            condition: Condition::NotExists,
        },
        TxOp::Delete {
            key: Key::new(&pk, "never-was"),
            condition: None,
        },
    ];
    store.transact(ops).await.expect("transaction");
    assert!(
        store
            .get(&Key::new(&pk, "fresh"))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(store.get(&doomed.key).await.expect("get"), None);
    let stored = store
        .get(&counter.key)
        .await
        .expect("get")
        .expect("counter");
    assert_eq!(stored.counter("judged"), 3, "a missing counter starts at 0");
    assert_eq!(
        stored.data, counter.data,
        "an increment keeps other attributes"
    );
    store
        .increment(&counter.key, "judged", -1)
        .await
        .expect("increment");
    assert_eq!(
        store
            .get(&counter.key)
            .await
            .expect("get")
            .expect("counter")
            .counter("judged"),
        2
    );
    let fresh = Key::new(&pk, "fresh-counter");
    store
        .increment(&fresh, "n", 5)
        .await
        .expect("an increment creates a missing item");
    let created = store.get(&fresh).await.expect("get").expect("created");
    assert_eq!(created.counter("n"), 5);
    assert!(
        created.index_keys.is_empty(),
        "a created counter item is in no index"
    );
}

/// 16 concurrent writers × 100 increments end at exactly 1600.
pub async fn concurrent_increments_add_up(store: &dyn Store) {
    let pk = unique_prefix("counter");
    let key = Key::new(&pk, "METADATA");
    store
        .put(item(&pk, "METADATA"), PutMode::Create)
        .await
        .expect("seed");
    let writers = (0..16).map(|_| {
        let key = key.clone();
        async move {
            for _ in 0..100 {
                store.increment(&key, "n", 1).await.expect("increment");
            }
        }
    });
    futures::future::join_all(writers).await;
    assert_eq!(counter(store, &key, "n").await, 1600);
}

/// A stored item's counter.
async fn counter(store: &dyn Store, key: &Key, name: &str) -> i64 {
    store
        .get(key)
        .await
        .expect("get")
        .expect("item")
        .counter(name)
}

/// An increment counts from the value the item was put with, shows in reads and queries, and
/// a later put replaces the counter with its own value.
pub async fn increments_follow_puts(store: &dyn Store) {
    let pk = unique_prefix("put-counter");
    let key = Key::new(&pk, "METADATA");
    let indexed = |n: i64| {
        item(&pk, "METADATA")
            .with_attribute("n", json!(n))
            .with_index(keys::BY_TYPE, format!("{pk}-type"), "METADATA")
    };
    let add = |by: i64| {
        store.transact_and_count(vec![TxOp::Increment {
            key: key.clone(),
            attribute: "n".into(),
            by,
        }])
    };
    store.put(indexed(7), PutMode::Create).await.expect("seed");
    assert_eq!(add(2).await.expect("increment"), [9]);
    let stored = store.get(&key).await.expect("get").expect("item");
    assert_eq!(stored.counter("n"), 9);
    assert_eq!(
        stored.data.map(|d| d.to_value().expect("json")),
        Some(json!({"sk": "METADATA"}))
    );
    let listed = store
        .query(&Query::index(keys::BY_TYPE, format!("{pk}-type")))
        .await
        .expect("query");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].counter("n"), 9, "queries show increments");
    let mut replaced = indexed(1);
    replaced.version = 2;
    store
        .put(replaced, PutMode::UpdateVersion(1))
        .await
        .expect("put over the counted item");
    assert_eq!(
        counter(store, &key, "n").await,
        1,
        "a put replaces the counter"
    );
    assert_eq!(add(1).await.expect("increment"), [2]);
}

/// `transact_and_count` answers with each incremented counter's value after the
/// transaction, in order (a missing item counts from 0); under concurrent increments the
/// writer of the last one sees the total.
pub async fn transactions_answer_with_counts(store: &dyn Store) {
    let pk = unique_prefix("counted");
    let a = Key::new(&pk, "A");
    let b = Key::new(&pk, "B");
    store.increment(&a, "n", 10).await.expect("seed");
    let counts = store
        .transact_and_count(vec![
            TxOp::Increment {
                key: a.clone(),
                attribute: "n".to_owned(),
                by: 2,
            },
            TxOp::Put {
                item: item(&pk, "C"),
                mode: PutMode::Create,
            },
            TxOp::Increment {
                key: b.clone(),
                attribute: "m".to_owned(),
                by: 5,
            },
        ])
        .await
        .expect("transact");
    assert_eq!(counts, [12, 5]);
    let none = store
        .transact_and_count(vec![TxOp::Put {
            item: item(&pk, "D"),
            mode: PutMode::Create,
        }])
        .await
        .expect("transact without counters");
    assert!(none.is_empty());
    let failed = store
        .transact_and_count(vec![
            TxOp::Increment {
                key: a.clone(),
                attribute: "n".to_owned(),
                by: 1,
            },
            TxOp::Put {
                item: item(&pk, "C"),
                mode: PutMode::Create,
            },
        ])
        .await;
    assert!(
        matches!(
            failed,
            Err(StoreError::TransactionCancelled { index: 1, .. })
        ),
        "{failed:?}"
    );
    assert_eq!(
        store
            .get(&a)
            .await
            .expect("get")
            .expect("item")
            .counter("n"),
        12,
        "a cancelled transaction counts nothing"
    );

    let shared = Key::new(&pk, "SHARED");
    let writers = (0..8).map(|_| {
        let key = shared.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..10 {
                let op = TxOp::Increment {
                    key: key.clone(),
                    attribute: "n".to_owned(),
                    by: 1,
                };
                let counts = store.transact_and_count(vec![op]).await.expect("count");
                seen.extend(counts);
            }
            seen
        }
    });
    let seen: Vec<i64> = futures::future::join_all(writers)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(seen.len(), 80);
    assert!(seen.iter().all(|n| (1..=80).contains(n)), "{seen:?}");
    assert_eq!(
        seen.iter().max(),
        Some(&80),
        "the last increment sees the total"
    );
}

/// Malformed requests fail with `InvalidRequest` before anything is written.
pub async fn invalid_requests_are_rejected(store: &dyn Store) {
    let pk = unique_prefix("invalid");
    let reserved = item(&pk, "A").with_attribute("version", json!(3));
    assert!(matches!(
        store.put(reserved, PutMode::Create).await,
        Err(StoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        store.put(item(&pk, ""), PutMode::Create).await,
        Err(StoreError::InvalidRequest { .. })
    ));
    let twice = vec![
        TxOp::Put {
            item: item(&pk, "B"),
            mode: PutMode::Create,
        },
        TxOp::Check {
            key: Key::new(&pk, "B"),
            condition: Condition::NotExists,
        },
    ];
    assert!(matches!(
        store.transact(twice).await,
        Err(StoreError::InvalidRequest { .. })
    ));
    let too_many: Vec<TxOp> = (0..101)
        .map(|i| TxOp::Put {
            item: item(&pk, &format!("M{i}")),
            mode: PutMode::Create,
        })
        .collect();
    assert!(matches!(
        store.transact(too_many).await,
        Err(StoreError::InvalidRequest { .. })
    ));
    // An index the store was not built with is refused, on writes and on queries, and an
    // attribute may not take the name of an index's key attribute.
    let foreign = Index::new("by_nothing", "by_nothing_pk", "by_nothing_sk");
    let unknown = item(&pk, "F").with_index(foreign, "P", "S");
    assert!(
        matches!(
            store.put(unknown, PutMode::Create).await,
            Err(StoreError::InvalidRequest { .. })
        ),
        "an item keyed in an unknown index is refused"
    );
    assert!(
        matches!(
            store.query(&Query::index(foreign, "P")).await,
            Err(StoreError::InvalidRequest { .. })
        ),
        "a query of an unknown index is refused"
    );
    let shadowing =
        item(&pk, "G").with_attribute(keys::BY_STATUS.pk_attribute(), json!("STATUS#x"));
    assert!(
        matches!(
            store.put(shadowing, PutMode::Create).await,
            Err(StoreError::InvalidRequest { .. })
        ),
        "an attribute named like an index key is refused"
    );
    assert_eq!(
        store
            .query_all(&Query::partition(&pk))
            .await
            .expect("query"),
        vec![],
        "nothing was written"
    );
    let bogus = Query::partition(&pk).after(Some(Cursor("not a cursor".into())));
    assert!(
        matches!(
            store.query(&bogus).await,
            Err(StoreError::InvalidRequest { .. })
        ),
        "a cursor the backend did not issue is rejected"
    );
    let distinct: BTreeSet<_> = keys::INDEXES.iter().map(|i| i.name()).collect();
    assert_eq!(distinct.len(), keys::INDEXES.len());
}

/// A batch read answers every key in order, `None` for missing ones, across backend batches.
pub async fn get_many_answers_every_key_in_order(store: &dyn Store) {
    let pk = unique_prefix("many");
    let mut keys = Vec::new();
    for i in 0..150u32 {
        let sk = format!("S#{i:03}");
        if !i.is_multiple_of(3) {
            store
                .put(item(&pk, &sk), PutMode::Create)
                .await
                .expect("put");
        }
        keys.push(Key::new(&pk, &sk));
    }
    // Reverse the order so a backend returning its own order would be caught.
    keys.reverse();
    let got = store.get_many(&keys).await.expect("get_many");
    assert_eq!(got.len(), keys.len(), "one answer per key");
    for (key, answer) in keys.iter().zip(&got) {
        let index: usize = key.sk[2..].parse().expect("index");
        match answer {
            Some(found) => {
                assert!(!index.is_multiple_of(3), "{key} was never written");
                assert_eq!(&found.key, key, "answers are in the order of the keys");
            }
            None => assert!(
                index.is_multiple_of(3),
                "{key} was written but not returned"
            ),
        }
    }
    assert!(store.get_many(&[]).await.expect("empty").is_empty());
}
