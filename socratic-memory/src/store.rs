use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;
use socratic_core::store::{
    Condition, Index, Item, Key, Order, Page, PutMode, Query, Store, StoreError, TxOp,
    check_transaction,
};

use crate::cursor;

/// An in-memory [`Store`]: ordered maps, one per index, transactions under one lock.
///
/// Cloning shares the data. Reads see every completed write.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

/// Index entries are ordered by (index sort key, pk, sk), so equal index sort keys still page
/// deterministically.
type IndexEntries = BTreeMap<String, BTreeSet<(String, String, String)>>;

#[derive(Debug, Default)]
struct Tables {
    items: BTreeMap<String, BTreeMap<String, Item>>,
    indexes: BTreeMap<Index, IndexEntries>,
}

impl Tables {
    fn get(&self, key: &Key) -> Option<&Item> {
        self.items.get(&key.pk)?.get(&key.sk)
    }

    fn remove(&mut self, key: &Key) {
        let Some(partition) = self.items.get_mut(&key.pk) else {
            return;
        };
        let Some(old) = partition.remove(&key.sk) else {
            return;
        };
        if partition.is_empty() {
            self.items.remove(&key.pk);
        }
        for (index, ikey) in &old.index_keys {
            let Some(entries) = self.indexes.get_mut(index) else {
                continue;
            };
            if let Some(set) = entries.get_mut(&ikey.pk) {
                set.remove(&(ikey.sk.clone(), key.pk.clone(), key.sk.clone()));
                if set.is_empty() {
                    entries.remove(&ikey.pk);
                }
            }
        }
    }

    fn insert(&mut self, item: Item) {
        self.remove(&item.key);
        for (index, ikey) in &item.index_keys {
            self.indexes
                .entry(*index)
                .or_default()
                .entry(ikey.pk.clone())
                .or_default()
                .insert((ikey.sk.clone(), item.key.pk.clone(), item.key.sk.clone()));
        }
        self.items
            .entry(item.key.pk.clone())
            .or_default()
            .insert(item.key.sk.clone(), item);
    }

    /// Checks an operation against the current state, without applying it.
    fn check(&self, op: &TxOp) -> Result<(), StoreError> {
        let key = op.key();
        let current = self.get(key);
        let failed = || StoreError::ConditionFailed { key: key.clone() };
        match op {
            TxOp::Put {
                mode: PutMode::Create,
                ..
            } => match current {
                Some(_) => Err(StoreError::AlreadyExists { key: key.clone() }),
                None => Ok(()),
            },
            TxOp::Put {
                mode: PutMode::Overwrite,
                ..
            }
            | TxOp::Delete {
                condition: None, ..
            } => Ok(()),
            TxOp::Put {
                mode: PutMode::UpdateVersion(v),
                ..
            } => holds(current, Condition::VersionIs(*v))
                .then_some(())
                .ok_or_else(failed),
            TxOp::Delete {
                condition: Some(c), ..
            }
            | TxOp::Check { condition: c, .. } => {
                holds(current, *c).then_some(()).ok_or_else(failed)
            }
            TxOp::Increment { .. } => Ok(()),
        }
    }

    /// Applies `op`; an increment answers with the counter's new value.
    fn apply(&mut self, op: TxOp) -> Option<i64> {
        match op {
            TxOp::Put { item, .. } => self.insert(item),
            TxOp::Delete { key, .. } => self.remove(&key),
            TxOp::Check { .. } => {}
            TxOp::Increment { key, attribute, by } => {
                let partition = self.items.entry(key.pk.clone()).or_default();
                let item = partition
                    .entry(key.sk.clone())
                    .or_insert_with(|| Item::new(key));
                let next = item.counter(&attribute) + by;
                item.attributes.insert(attribute, Value::from(next));
                return Some(next);
            }
        }
        None
    }
}

fn holds(current: Option<&Item>, condition: Condition) -> bool {
    match condition {
        Condition::Exists => current.is_some(),
        Condition::NotExists => current.is_none(),
        Condition::VersionIs(v) => current.is_some_and(|item| item.version == v),
    }
}

fn bad_cursor() -> StoreError {
    StoreError::InvalidRequest {
        message: "cursor was not issued by this store".to_owned(),
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of items stored.
    pub fn len(&self) -> usize {
        self.lock().items.values().map(BTreeMap::len).sum()
    }

    /// Whether the store holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every item, in key order (for tests and snapshots).
    pub fn snapshot(&self) -> Vec<Item> {
        self.lock()
            .items
            .values()
            .flat_map(|p| p.values().cloned())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied write: every write
        // is checked before anything is changed.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn query_base(
        tables: &Tables,
        query: &Query,
    ) -> Result<(Vec<Item>, Option<Vec<String>>), StoreError> {
        let after = match &query.cursor {
            Some(c) => Some(cursor::decode(c, 1).ok_or_else(bad_cursor)?),
            None => None,
        };
        let Some(partition) = tables.items.get(&query.partition) else {
            return Ok((Vec::new(), None));
        };
        let mut matching: Vec<&Item> = partition
            .values()
            .filter(|i| query.range.contains(&i.key.sk))
            .collect();
        if query.order == Order::Descending {
            matching.reverse();
        }
        let start = after.map_or(0, |a| {
            let last = &a[0];
            matching
                .iter()
                .position(|i| match query.order {
                    Order::Ascending => i.key.sk.as_str() > last.as_str(),
                    Order::Descending => i.key.sk.as_str() < last.as_str(),
                })
                .unwrap_or(matching.len())
        });
        let rest = &matching[start..];
        let take = query.limit.unwrap_or(usize::MAX).min(rest.len());
        let page: Vec<Item> = rest[..take].iter().map(|i| (*i).clone()).collect();
        let next = (take < rest.len()).then(|| vec![page[take - 1].key.sk.clone()]);
        Ok((page, next))
    }

    fn query_index(
        tables: &Tables,
        index: Index,
        query: &Query,
    ) -> Result<(Vec<Item>, Option<Vec<String>>), StoreError> {
        let after = match &query.cursor {
            Some(c) => {
                let p = cursor::decode(c, 3).ok_or_else(bad_cursor)?;
                Some((p[0].clone(), p[1].clone(), p[2].clone()))
            }
            None => None,
        };
        let Some(entries) = tables
            .indexes
            .get(&index)
            .and_then(|e| e.get(&query.partition))
        else {
            return Ok((Vec::new(), None));
        };
        let mut matching: Vec<&(String, String, String)> = entries
            .iter()
            .filter(|(isk, _, _)| query.range.contains(isk))
            .collect();
        if query.order == Order::Descending {
            matching.reverse();
        }
        let start = after.map_or(0, |last| {
            matching
                .iter()
                .position(|e| match query.order {
                    Order::Ascending => **e > last,
                    Order::Descending => **e < last,
                })
                .unwrap_or(matching.len())
        });
        let rest = &matching[start..];
        let take = query.limit.unwrap_or(usize::MAX).min(rest.len());
        let page: Vec<Item> = rest[..take]
            .iter()
            .filter_map(|(_, pk, sk)| tables.get(&Key::new(pk.clone(), sk.clone())).cloned())
            .collect();
        let next = (take < rest.len()).then(|| {
            let (isk, pk, sk) = rest[take - 1];
            vec![isk.clone(), pk.clone(), sk.clone()]
        });
        Ok((page, next))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        socratic_core::store::check_key(key)?;
        Ok(self.lock().get(key).cloned())
    }

    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        item.check()?;
        let mut tables = self.lock();
        let op = TxOp::Put { item, mode };
        tables.check(&op)?;
        tables.apply(op);
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if query.partition.is_empty() || query.limit == Some(0) {
            return Err(StoreError::InvalidRequest {
                message: "a query needs a partition and a limit of at least 1".to_owned(),
            });
        }
        let tables = self.lock();
        let (items, next) = match query.index {
            None => Self::query_base(&tables, query)?,
            Some(index) => Self::query_index(&tables, index, query)?,
        };
        let cursor =
            next.map(|p| cursor::encode(&p.iter().map(String::as_str).collect::<Vec<_>>()));
        Ok(Page { items, cursor })
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        self.transact_and_count(ops).await.map(drop)
    }

    async fn transact_and_count(&self, ops: Vec<TxOp>) -> Result<Vec<i64>, StoreError> {
        check_transaction(&ops)?;
        let mut tables = self.lock();
        for (index, op) in ops.iter().enumerate() {
            tables
                .check(op)
                .map_err(|reason| StoreError::TransactionCancelled {
                    index,
                    key: op.key().clone(),
                    reason: Box::new(reason),
                })?;
        }
        Ok(ops.into_iter().filter_map(|op| tables.apply(op)).collect())
    }
}
