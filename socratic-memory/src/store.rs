use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;
use socratic_core::keys;
use socratic_core::store::{
    Condition, EntityJson, Index, IndexKey, Item, Key, Order, Page, PutMode, Query, SortKeyRange,
    Store, StoreError, TxOp, attributes_from_json, attributes_to_json, check_index,
    check_transaction,
};

use crate::cursor;

/// An in-memory [`Store`]: ordered maps, one per index, transactions under one lock.
///
/// Cloning shares the data. Reads see every completed write. Attributes are kept as JSON
/// text, as the other stores keep them: a tree of JSON values takes several times the memory,
/// and a read then parses a fresh copy where it would otherwise clone the tree.
///
/// It serves the indexes it is built with: the key schema's ([`keys::INDEXES`]) by default.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
    indexes: Arc<[Index]>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_indexes(&keys::INDEXES)
    }
}

/// Index entries are ordered by (index sort key, pk, sk), so equal index sort keys still page
/// deterministically.
type IndexEntries = BTreeMap<String, BTreeSet<(String, String, String)>>;

#[derive(Debug, Default)]
struct Tables {
    items: BTreeMap<String, BTreeMap<String, Stored>>,
    indexes: BTreeMap<Index, IndexEntries>,
}

/// An item as kept, under its key: its attributes as JSON text.
#[derive(Debug, Clone)]
struct Stored {
    version: u64,
    index_keys: BTreeMap<Index, IndexKey>,
    /// A read copies it out of the lock and parses it after.
    attributes: Box<str>,
    /// Counters incremented since the item was put, by name; they override the attributes of
    /// the same name. Kept apart so that an increment neither parses nor rewrites the item (a
    /// manifest's counter, incremented once per finished run, is on the whole manifest).
    /// Boxed: most items have none, and an empty map would take three words in each.
    #[expect(
        clippy::box_collection,
        reason = "one word per item instead of three; most items have no counter"
    )]
    counters: Option<Box<BTreeMap<String, i64>>>,
}

impl Stored {
    /// Serialises `item`'s attributes, with its entity's text copied in; done before the lock
    /// is taken.
    fn new(item: Item) -> Result<(Key, Self), StoreError> {
        let attributes = attributes_to_json(&item.attributes, item.data.as_ref())
            .map_err(|e| StoreError::InvalidRequest {
                message: format!("{}: attributes cannot be serialised: {e}", item.key),
            })?
            .into();
        let stored = Self {
            version: item.version,
            index_keys: item.index_keys,
            attributes,
            counters: None,
        };
        Ok((item.key, stored))
    }

    /// The attributes, and the entity's text (which is not parsed).
    fn attributes(&self) -> serde_json::Result<Attributes> {
        attributes_from_json(&self.attributes)
    }

    /// The item, stored under `key`. Called on a copy, after the lock is released.
    fn into_item(self, key: Key) -> Result<Item, StoreError> {
        let (mut attributes, data) = match self.attributes() {
            Ok(read) => read,
            Err(e) => return Err(unreadable(key, &e)),
        };
        for (name, value) in self.counters.into_iter().flat_map(|c| *c) {
            attributes.insert(name, Value::from(value));
        }
        Ok(Item {
            version: self.version,
            index_keys: self.index_keys,
            attributes,
            data,
            key,
        })
    }

    /// The counter's current value: incremented here, or as put (0 if absent or not an
    /// integer).
    fn counter(&self, name: &str) -> serde_json::Result<i64> {
        if let Some(&n) = self.counters.as_ref().and_then(|c| c.get(name)) {
            return Ok(n);
        }
        Ok(self
            .attributes()?
            .0
            .get(name)
            .and_then(Value::as_i64)
            .unwrap_or(0))
    }
}

/// A write with its item serialised, checked and applied under the lock.
enum Write {
    Put(Key, Stored, PutMode),
    Delete(Key, Option<Condition>),
    Check(Key, Condition),
    Increment(Key, String, i64),
}

impl Write {
    fn new(op: TxOp) -> Result<Self, StoreError> {
        Ok(match op {
            TxOp::Put { item, mode } => {
                let (key, stored) = Stored::new(item)?;
                Self::Put(key, stored, mode)
            }
            TxOp::Delete { key, condition } => Self::Delete(key, condition),
            TxOp::Check { key, condition } => Self::Check(key, condition),
            TxOp::Increment { key, attribute, by } => Self::Increment(key, attribute, by),
        })
    }

    fn key(&self) -> &Key {
        match self {
            Self::Put(key, ..)
            | Self::Delete(key, _)
            | Self::Check(key, _)
            | Self::Increment(key, _, _) => key,
        }
    }
}

impl Tables {
    fn get(&self, key: &Key) -> Option<&Stored> {
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

    fn insert(&mut self, key: Key, item: Stored) {
        self.remove(&key);
        for (index, ikey) in &item.index_keys {
            self.indexes
                .entry(*index)
                .or_default()
                .entry(ikey.pk.clone())
                .or_default()
                .insert((ikey.sk.clone(), key.pk.clone(), key.sk.clone()));
        }
        self.items.entry(key.pk).or_default().insert(key.sk, item);
    }

    /// Checks a write against the current state, without applying it.
    fn check(&self, write: &Write) -> Result<(), StoreError> {
        let key = write.key();
        let current = self.get(key);
        let failed = || StoreError::ConditionFailed { key: key.clone() };
        match write {
            Write::Put(_, _, PutMode::Create) => match current {
                Some(_) => Err(StoreError::AlreadyExists { key: key.clone() }),
                None => Ok(()),
            },
            Write::Put(_, _, PutMode::Overwrite) | Write::Delete(_, None) => Ok(()),
            Write::Put(_, _, PutMode::UpdateVersion(v)) => holds(current, Condition::VersionIs(*v))
                .then_some(())
                .ok_or_else(failed),
            Write::Delete(_, Some(c)) | Write::Check(_, c) => {
                holds(current, *c).then_some(()).ok_or_else(failed)
            }
            // The counter's item must be readable, so that applying cannot fail.
            Write::Increment(_, attribute, _) => current.map_or(Ok(()), |item| {
                item.counter(attribute)
                    .map(drop)
                    .map_err(|e| unreadable(key.clone(), &e))
            }),
        }
    }

    /// Applies a checked write; an increment answers with the counter's new value.
    fn apply(&mut self, write: Write) -> Option<i64> {
        match write {
            Write::Put(key, item, _) => self.insert(key, item),
            Write::Delete(key, _) => self.remove(&key),
            Write::Check(..) => {}
            Write::Increment(key, attribute, by) => {
                let partition = self.items.entry(key.pk).or_default();
                let stored = partition.entry(key.sk).or_insert_with(|| Stored {
                    version: 1,
                    index_keys: BTreeMap::new(),
                    attributes: "{}".into(),
                    counters: None,
                });
                // Checked readable under this lock.
                let next = stored.counter(&attribute).unwrap_or(0) + by;
                stored
                    .counters
                    .get_or_insert_default()
                    .insert(attribute, next);
                return Some(next);
            }
        }
        None
    }
}

fn holds(current: Option<&Stored>, condition: Condition) -> bool {
    match condition {
        Condition::Exists => current.is_some(),
        Condition::NotExists => current.is_none(),
        Condition::VersionIs(v) => current.is_some_and(|item| item.version == v),
    }
}

/// An item's attributes, and its entity as text.
type Attributes = (BTreeMap<String, Value>, Option<EntityJson>);

/// A page's items, copied out of the lock, and the key parts of the next page's cursor.
type Copies = (Vec<(Key, Stored)>, Option<Vec<String>>);

/// A stored item whose text cannot be read.
fn unreadable(key: Key, error: &serde_json::Error) -> StoreError {
    StoreError::InvalidData {
        key,
        message: error.to_string(),
    }
}

fn bad_cursor() -> StoreError {
    StoreError::InvalidRequest {
        message: "cursor was not issued by this store".to_owned(),
    }
}

impl MemoryStore {
    /// An empty store serving the key schema's indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store serving `indexes`.
    pub fn with_indexes(indexes: &[Index]) -> Self {
        Self {
            tables: Arc::default(),
            indexes: indexes.into(),
        }
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
        let copies: Vec<_> = self
            .lock()
            .items
            .iter()
            .flat_map(|(pk, p)| p.iter().map(move |(sk, s)| (Key::new(pk, sk), s.clone())))
            .collect();
        copies
            .into_iter()
            .filter_map(|(key, stored)| stored.into_item(key).ok())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied write: every write
        // is checked before anything is changed.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A page of a base-table partition, read from the cursor on (not scanned from the start,
    /// so paging through a partition stays linear): copies of its items, parsed once the
    /// lock is released.
    fn query_base(tables: &Tables, query: &Query) -> Result<Copies, StoreError> {
        let after = match &query.cursor {
            Some(c) => Some(cursor::decode(c, 1).ok_or_else(bad_cursor)?.remove(0)),
            None => None,
        };
        let Some(partition) = tables.items.get(&query.partition) else {
            return Ok((Vec::new(), None));
        };
        let first = range_start(&query.range, query.order);
        let bounds = scan_bounds(first, after, query.order);
        let limit = query.limit.unwrap_or(usize::MAX);
        let matching = page(
            partition.range::<String, _>(bounds),
            query,
            limit,
            |(sk, _)| sk.as_str(),
        );
        let next = (matching.len() > limit).then(|| vec![matching[limit - 1].0.clone()]);
        let items = matching
            .into_iter()
            .take(limit)
            .map(|(sk, stored)| (Key::new(&query.partition, sk), stored.clone()))
            .collect();
        Ok((items, next))
    }

    /// A page of an index partition, read from the cursor on, as [`Self::query_base`].
    fn query_index(tables: &Tables, index: Index, query: &Query) -> Result<Copies, StoreError> {
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
        // (sort key, "", "") sorts before every entry with that sort key.
        let first =
            range_start(&query.range, query.order).map(|sk| (sk, String::new(), String::new()));
        let bounds = scan_bounds(first, after, query.order);
        let limit = query.limit.unwrap_or(usize::MAX);
        let matching = page(entries.range(bounds), query, limit, |e| e.0.as_str());
        let next = (matching.len() > limit).then(|| {
            let (isk, pk, sk) = matching[limit - 1];
            vec![isk.clone(), pk.clone(), sk.clone()]
        });
        let items = matching
            .into_iter()
            .take(limit)
            .filter_map(|(_, pk, sk)| {
                let stored = tables.items.get(pk)?.get(sk)?;
                Some((Key::new(pk, sk), stored.clone()))
            })
            .collect();
        Ok((items, next))
    }
}

/// The lowest key an ascending scan of `range` needs, if it has one (a descending scan starts
/// from the top and stops below the range, see [`page`]).
fn range_start(range: &SortKeyRange, order: Order) -> Option<String> {
    match (range, order) {
        (
            SortKeyRange::Prefix(from)
            | SortKeyRange::Between { from, .. }
            | SortKeyRange::AtLeast(from),
            Order::Ascending,
        ) => Some(from.clone()),
        _ => None,
    }
}

/// The keys to scan: after the cursor's key `after`, or from `first` (ascending).
fn scan_bounds<K: Ord>(first: Option<K>, after: Option<K>, order: Order) -> (Bound<K>, Bound<K>) {
    match (after, order) {
        (Some(last), Order::Ascending) => (Bound::Excluded(last), Bound::Unbounded),
        (Some(last), Order::Descending) => (Bound::Unbounded, Bound::Excluded(last)),
        (None, _) => (
            first.map_or(Bound::Unbounded, Bound::Included),
            Bound::Unbounded,
        ),
    }
}

/// Up to `limit + 1` of `entries` (ascending) in the query's order whose sort key is in its
/// range: one more than a page, to tell whether another page follows. Stops at the first
/// key beyond the range's far end.
fn page<T>(
    entries: impl DoubleEndedIterator<Item = T>,
    query: &Query,
    limit: usize,
    sk: impl Fn(&T) -> &str,
) -> Vec<T> {
    let beyond = |key: &str| match (&query.range, query.order) {
        (SortKeyRange::Prefix(p), Order::Ascending) => {
            key > p.as_str() && !key.starts_with(p.as_str())
        }
        (SortKeyRange::Prefix(p), Order::Descending) => key < p.as_str(),
        (SortKeyRange::Between { to, .. } | SortKeyRange::AtMost(to), Order::Ascending) => {
            key > to.as_str()
        }
        (SortKeyRange::Between { from, .. } | SortKeyRange::AtLeast(from), Order::Descending) => {
            key < from.as_str()
        }
        _ => false,
    };
    let ordered: Box<dyn Iterator<Item = T>> = match query.order {
        Order::Ascending => Box::new(entries),
        Order::Descending => Box::new(entries.rev()),
    };
    let mut out = Vec::new();
    for entry in ordered {
        let key = sk(&entry);
        if beyond(key) {
            break;
        }
        if query.range.contains(key) {
            out.push(entry);
            if out.len() > limit {
                break;
            }
        }
    }
    out
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        socratic_core::store::check_key(key)?;
        let copy = self.lock().get(key).cloned();
        copy.map(|stored| stored.into_item(key.clone())).transpose()
    }

    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        item.check(&self.indexes)?;
        let (key, stored) = Stored::new(item)?;
        let write = Write::Put(key, stored, mode);
        let mut tables = self.lock();
        tables.check(&write)?;
        tables.apply(write);
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if query.partition.is_empty() || query.limit == Some(0) {
            return Err(StoreError::InvalidRequest {
                message: "a query needs a partition and a limit of at least 1".to_owned(),
            });
        }
        if let Some(index) = query.index {
            check_index(index, &self.indexes)?;
        }
        let (copies, next) = {
            let tables = self.lock();
            match query.index {
                None => Self::query_base(&tables, query)?,
                Some(index) => Self::query_index(&tables, index, query)?,
            }
        };
        let items = copies
            .into_iter()
            .map(|(key, stored)| stored.into_item(key))
            .collect::<Result<Vec<Item>, _>>()?;
        let cursor =
            next.map(|p| cursor::encode(&p.iter().map(String::as_str).collect::<Vec<_>>()));
        Ok(Page { items, cursor })
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        self.transact_and_count(ops).await.map(drop)
    }

    async fn transact_and_count(&self, ops: Vec<TxOp>) -> Result<Vec<i64>, StoreError> {
        check_transaction(&ops, &self.indexes)?;
        let writes = ops
            .into_iter()
            .map(Write::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mut tables = self.lock();
        for (index, write) in writes.iter().enumerate() {
            tables
                .check(write)
                .map_err(|reason| StoreError::TransactionCancelled {
                    index,
                    key: write.key().clone(),
                    reason: Box::new(reason),
                })?;
        }
        Ok(writes
            .into_iter()
            .filter_map(|write| tables.apply(write))
            .collect())
    }
}
