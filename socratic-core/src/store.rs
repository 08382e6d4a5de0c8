//! The `Store` port: items of a single-table design.
//!
//! An [`Item`] has a partition key and a sort key, a version used for optimistic concurrency,
//! optional keys in the secondary [`Index`]es (an item without a key for an index is not in it:
//! the indexes are sparse), free attributes (counters, hashes), and the entity it holds as JSON
//! text ([`EntityJson`], stored as the attribute `data`).
//!
//! The model is DynamoDB's, reduced to what the pipeline needs: conditional puts, partition
//! queries with sort-key conditions and opaque cursors, and all-or-nothing transactions of up to
//! [`MAX_TRANSACTION_ITEMS`] operations. Every backend must pass
//! `socratic_core::testkit::store` (feature `testkit`): the contract is the suite.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The most operations in one transaction (DynamoDB's limit).
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// The longest partition or sort key, in bytes (DynamoDB's sort-key limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Attribute names the store manages itself; [`Item::attributes`] may not use them.
pub const RESERVED_ATTRIBUTES: [&str; 4] = ["PK", "SK", "version", DATA_ATTRIBUTE];

/// The attribute an item's [`EntityJson`] is stored under.
pub const DATA_ATTRIBUTE: &str = "data";

/// An entity as JSON text: the `data` of an [`Item`].
///
/// Kept as text, so that a store that keeps JSON text (the memory and SQLite stores) neither
/// builds nor parses a tree of values for it: an entity is serialised straight to its text when
/// written and read straight from it. Always valid JSON: it is checked when made. Two are equal
/// when they hold the same JSON value, however it is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityJson(Box<RawValue>);

impl EntityJson {
    /// `value` as compact JSON.
    ///
    /// # Errors
    /// When `value` cannot be serialised (a map whose keys are not strings).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// Checks that `text` is JSON.
    ///
    /// # Errors
    /// When it is not.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Reads the entity.
    ///
    /// # Errors
    /// When the JSON does not match `T`.
    pub fn read<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// The JSON as a tree of values.
    ///
    /// # Errors
    /// Never for text checked when made; kept fallible for the parser's own limits.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        self.read()
    }
}

impl PartialEq for EntityJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value().ok() == other.to_value().ok()
    }
}

/// An item's attributes and its [`EntityJson`] as the text of one JSON object, `data` among
/// the attributes: how the stores that keep JSON text write them. The entity's text is copied
/// in as it is.
///
/// # Errors
/// When an attribute cannot be serialised.
pub fn attributes_to_json(
    attributes: &BTreeMap<String, Value>,
    data: Option<&EntityJson>,
) -> Result<String, serde_json::Error> {
    let rest = serde_json::to_string(attributes)?;
    let Some(data) = data else {
        return Ok(rest);
    };
    let mut text = String::with_capacity(rest.len() + data.as_str().len() + 10);
    text.push_str("{\"");
    text.push_str(DATA_ATTRIBUTE);
    text.push_str("\":");
    text.push_str(data.as_str());
    match rest.strip_prefix('{') {
        Some("}") | None => text.push('}'),
        Some(more) => {
            text.push(',');
            text.push_str(more);
        }
    }
    Ok(text)
}

/// Reads [`attributes_to_json`]'s text back: `data` as text, every other attribute as a value.
///
/// # Errors
/// When `text` is not a JSON object.
pub fn attributes_from_json(
    text: &str,
) -> Result<(BTreeMap<String, Value>, Option<EntityJson>), serde_json::Error> {
    struct Split;
    impl<'de> Visitor<'de> for Split {
        type Value = (BTreeMap<String, Value>, Option<EntityJson>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of attributes")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut attributes, mut data) = (BTreeMap::new(), None);
            while let Some(name) = map.next_key::<String>()? {
                if name == DATA_ATTRIBUTE {
                    data = Some(EntityJson(map.next_value()?));
                } else {
                    let value = map.next_value()?;
                    attributes.insert(name, value);
                }
            }
            Ok((attributes, data))
        }
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    let split = serde::Deserializer::deserialize_map(&mut reader, Split)?;
    reader.end()?;
    Ok(split)
}

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// Partition key, e.g. `RUN#01J…`.
    pub pk: String,
    /// Sort key, e.g. `TURN#001`.
    pub sk: String,
}

impl Key {
    /// A key from its parts.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// A secondary index: its name and the attributes that carry an item's keys in it. Indexes
/// are global and sparse: an item without a key for an index is not in it.
///
/// The port names no index of its own. The application's indexes are its key schema's
/// ([`crate::keys::INDEXES`]), and a backend is given the list it serves: it refuses items
/// and queries naming any other, and item attributes named like an index's key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Index {
    name: &'static str,
    pk_attribute: &'static str,
    sk_attribute: &'static str,
}

impl Index {
    /// An index named `name`, keyed by the attributes `<name>_pk` and `<name>_sk`.
    pub const fn new(
        name: &'static str,
        pk_attribute: &'static str,
        sk_attribute: &'static str,
    ) -> Self {
        Self {
            name,
            pk_attribute,
            sk_attribute,
        }
    }

    /// The index name, e.g. `by_type`.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The attribute holding the index's partition key, e.g. `by_type_pk`.
    pub fn pk_attribute(self) -> &'static str {
        self.pk_attribute
    }

    /// The attribute holding the index's sort key, e.g. `by_type_sk`.
    pub fn sk_attribute(self) -> &'static str {
        self.sk_attribute
    }

    /// The index of `indexes` named `name`.
    pub fn named(indexes: &[Index], name: &str) -> Option<Index> {
        indexes.iter().copied().find(|i| i.name == name)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Serialize for Index {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

/// An item's key in one index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndexKey {
    /// The index partition key.
    pub pk: String,
    /// The index sort key.
    pub sk: String,
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Primary key.
    pub key: Key,
    /// Version for [`PutMode::UpdateVersion`] and [`Condition::VersionIs`]; the caller sets it
    /// (1 on creation, previous + 1 on update).
    pub version: u64,
    /// Keys in the indexes this item belongs to.
    pub index_keys: BTreeMap<Index, IndexKey>,
    /// Everything else but the entity: counters, hashes, the entity's kind.
    pub attributes: BTreeMap<String, Value>,
    /// The entity the item holds, as JSON text (stored as the attribute `data`).
    pub data: Option<EntityJson>,
}

impl Item {
    /// An item at version 1 with no index keys and no attributes.
    pub fn new(key: Key) -> Self {
        Self {
            key,
            version: 1,
            index_keys: BTreeMap::new(),
            attributes: BTreeMap::new(),
            data: None,
        }
    }

    /// Adds a key in `index`.
    pub fn with_index(
        mut self,
        index: Index,
        pk: impl Into<String>,
        sk: impl Into<String>,
    ) -> Self {
        self.index_keys.insert(
            index,
            IndexKey {
                pk: pk.into(),
                sk: sk.into(),
            },
        );
        self
    }

    /// Sets the entity.
    pub fn with_data(mut self, data: EntityJson) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets an attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: Value) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// Reads a numeric attribute as an integer (counters).
    pub fn counter(&self, name: &str) -> i64 {
        self.attributes
            .get(name)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// Checks keys, indexes and attribute names before a write to a store serving `indexes`.
    /// Backends call this so every backend rejects the same items.
    pub fn check(&self, indexes: &[Index]) -> Result<(), StoreError> {
        check_key(&self.key)?;
        for (index, key) in &self.index_keys {
            check_index(*index, indexes)?;
            if key.pk.is_empty() || key.sk.is_empty() {
                return Err(StoreError::InvalidRequest {
                    message: format!("{}: empty key in index {}", self.key, index.name()),
                });
            }
        }
        for name in self.attributes.keys() {
            let reserved = RESERVED_ATTRIBUTES.contains(&name.as_str())
                || indexes
                    .iter()
                    .any(|i| i.pk_attribute() == name || i.sk_attribute() == name);
            if reserved || name.is_empty() {
                return Err(StoreError::InvalidRequest {
                    message: format!("{}: attribute name {name:?} is reserved or empty", self.key),
                });
            }
        }
        Ok(())
    }
}

/// Checks that `index` is one of the `indexes` a store serves.
pub fn check_index(index: Index, indexes: &[Index]) -> Result<(), StoreError> {
    if indexes.contains(&index) {
        Ok(())
    } else {
        Err(StoreError::InvalidRequest {
            message: format!("index {index} is not one of this store's indexes"),
        })
    }
}

/// Checks that both parts of a key are non-empty and at most [`MAX_KEY_BYTES`].
pub fn check_key(key: &Key) -> Result<(), StoreError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::InvalidRequest {
            message: format!("{key}: empty key part"),
        });
    }
    if key.pk.len() > MAX_KEY_BYTES || key.sk.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidRequest {
            message: format!("{key}: key part longer than {MAX_KEY_BYTES} bytes"),
        });
    }
    Ok(())
}

/// How a put treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutMode {
    /// Fail with [`StoreError::AlreadyExists`] if the key exists.
    Create,
    /// Replace whatever is there.
    Overwrite,
    /// Replace only if the stored item has this version; otherwise
    /// [`StoreError::ConditionFailed`] (also when there is no item).
    UpdateVersion(u64),
}

/// A condition on an existing item, checked atomically with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The item exists.
    Exists,
    /// The item does not exist.
    NotExists,
    /// The item exists with this version.
    VersionIs(u64),
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOp {
    /// A conditional put.
    Put {
        /// The item.
        item: Item,
        /// Its mode.
        mode: PutMode,
    },
    /// A delete, optionally conditional. Deleting a missing item without a condition succeeds.
    Delete {
        /// What to delete.
        key: Key,
        /// Checked first.
        condition: Option<Condition>,
    },
    /// A condition on an item that is not otherwise written.
    Check {
        /// The item.
        key: Key,
        /// The condition.
        condition: Condition,
    },
    /// Adds `by` to a numeric attribute (missing counts as 0). A missing item is created with
    /// only this attribute (DynamoDB's `ADD`), so counters can live in items of their own that
    /// puts of other items never overwrite.
    Increment {
        /// The item.
        key: Key,
        /// The counter attribute.
        attribute: String,
        /// The amount, may be negative.
        by: i64,
    },
}

impl TxOp {
    /// The key this operation touches.
    pub fn key(&self) -> &Key {
        match self {
            TxOp::Put { item, .. } => &item.key,
            TxOp::Delete { key, .. } | TxOp::Check { key, .. } | TxOp::Increment { key, .. } => key,
        }
    }
}

/// Checks a transaction's shape: 1 to [`MAX_TRANSACTION_ITEMS`] operations, each on a
/// different key, with items valid for a store serving `indexes`. Backends call this before
/// doing anything.
pub fn check_transaction(ops: &[TxOp], indexes: &[Index]) -> Result<(), StoreError> {
    if ops.is_empty() || ops.len() > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::InvalidRequest {
            message: format!(
                "a transaction needs 1 to {MAX_TRANSACTION_ITEMS} operations, got {}",
                ops.len()
            ),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for op in ops {
        check_key(op.key())?;
        if let TxOp::Put { item, .. } = op {
            item.check(indexes)?;
        }
        if let TxOp::Increment { attribute, .. } = op
            && (attribute.is_empty() || RESERVED_ATTRIBUTES.contains(&attribute.as_str()))
        {
            return Err(StoreError::InvalidRequest {
                message: format!("{}: cannot increment attribute {attribute:?}", op.key()),
            });
        }
        if !seen.insert(op.key()) {
            return Err(StoreError::InvalidRequest {
                message: format!("{}: a transaction may touch each item once", op.key()),
            });
        }
    }
    Ok(())
}

/// Which sort keys a query returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortKeyRange {
    /// Every item in the partition.
    #[default]
    All,
    /// Sort keys starting with this prefix.
    Prefix(String),
    /// Sort keys from `from` to `to`, both inclusive.
    Between {
        /// Lowest sort key.
        from: String,
        /// Highest sort key.
        to: String,
    },
    /// Sort keys at or above this one.
    AtLeast(String),
    /// Sort keys at or below this one.
    AtMost(String),
}

impl SortKeyRange {
    /// Whether `sk` is in the range.
    pub fn contains(&self, sk: &str) -> bool {
        match self {
            SortKeyRange::All => true,
            SortKeyRange::Prefix(p) => sk.starts_with(p.as_str()),
            SortKeyRange::Between { from, to } => from.as_str() <= sk && sk <= to.as_str(),
            SortKeyRange::AtLeast(from) => from.as_str() <= sk,
            SortKeyRange::AtMost(to) => sk <= to.as_str(),
        }
    }
}

/// Sort-key order of a query's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Order {
    /// Ascending.
    #[default]
    Ascending,
    /// Descending.
    Descending,
}

/// An opaque position in a query's results. Only the backend that issued it can read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A query of one partition of the base table or an index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// `None` for the base table.
    pub index: Option<Index>,
    /// The partition key (of the index when `index` is set).
    pub partition: String,
    /// Which sort keys.
    pub range: SortKeyRange,
    /// Result order.
    pub order: Order,
    /// At most this many items per page; `None` lets the backend choose.
    pub limit: Option<usize>,
    /// Continue after this cursor.
    pub cursor: Option<Cursor>,
}

impl Query {
    /// Every item of a base-table partition, ascending.
    pub fn partition(pk: impl Into<String>) -> Self {
        Self {
            partition: pk.into(),
            ..Self::default()
        }
    }

    /// Every item of an index partition, ascending.
    pub fn index(index: Index, pk: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            partition: pk.into(),
            ..Self::default()
        }
    }

    /// Restricts to sort keys with this prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.range = SortKeyRange::Prefix(prefix.into());
        self
    }

    /// Sets the sort-key range.
    pub fn range(mut self, range: SortKeyRange) -> Self {
        self.range = range;
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after `cursor`.
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// The items, in the requested order.
    pub items: Vec<Item>,
    /// Where the next page starts; `None` when there are no more. A backend may return a
    /// cursor followed by an empty page.
    pub cursor: Option<Cursor>,
}

/// What went wrong in a store operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A create-only put found an item.
    #[error("item {key} already exists")]
    AlreadyExists {
        /// The key.
        key: Key,
    },
    /// A condition or expected version did not hold.
    #[error("condition failed on item {key}")]
    ConditionFailed {
        /// The key.
        key: Key,
    },
    /// A transaction was cancelled because one operation failed; nothing was written.
    #[error("transaction cancelled by operation {index} on {key}: {reason}")]
    TransactionCancelled {
        /// Position of the failing operation.
        index: usize,
        /// Its key.
        key: Key,
        /// Why it failed ([`StoreError::AlreadyExists`] or [`StoreError::ConditionFailed`]).
        reason: Box<StoreError>,
    },
    /// The request itself is invalid (bad key, reserved attribute, too many operations, a
    /// cursor from elsewhere).
    #[error("invalid store request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
    },
    /// A stored item cannot be read.
    #[error("invalid data in item {key}: {message}")]
    InvalidData {
        /// The key.
        key: Key,
        /// What is wrong.
        message: String,
    },
    /// The backend is rate-limiting.
    #[error("store throttled: {message}")]
    Throttled {
        /// The backend's message.
        message: String,
    },
    /// The backend is unreachable or failing; the operation may or may not have happened.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// The backend's message.
        message: String,
    },
}

impl StoreError {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. } | StoreError::Unavailable { .. }
        )
    }
}

/// A key–value store of [`Item`]s with conditional writes, partition queries and transactions.
///
/// Implementers: take the list of [`Index`]es to serve when built, call [`Item::check`] and
/// [`check_transaction`] with it before writing and [`check_index`] before an index query, read
/// your own writes (strongly consistent reads on the base table), and pass the whole conformance suite in
/// `socratic_core::testkit::store`. Users: prefer the typed
/// [`Repository`](crate::repository::Repository).
#[async_trait]
pub trait Store: Send + Sync {
    /// Reads one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Writes one item according to `mode`.
    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError>;

    /// Reads one page of a partition.
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Applies every operation or none. A failed condition gives
    /// [`StoreError::TransactionCancelled`] naming the operation.
    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError>;

    /// [`transact`](Self::transact), answering with each counter's value after it: one entry
    /// per [`TxOp::Increment`], in order. A stage uses it to tell whether its increment was the
    /// one that completed a count, without reading again.
    ///
    /// Backends that can read the values in the same transaction override this. The default
    /// reads each counter afterwards (consistently), so a value may include increments made
    /// since: two writers may both see a count complete, but the writer of the last increment
    /// always does.
    async fn transact_and_count(&self, ops: Vec<TxOp>) -> Result<Vec<i64>, StoreError> {
        let counters: Vec<(Key, String)> = ops
            .iter()
            .filter_map(|op| match op {
                TxOp::Increment { key, attribute, .. } => Some((key.clone(), attribute.clone())),
                _ => None,
            })
            .collect();
        self.transact(ops).await?;
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Key> = counters.iter().map(|(key, _)| key.clone()).collect();
        let items = self.get_many(&keys).await?;
        Ok(counters
            .iter()
            .zip(items)
            .map(|((_, attribute), item)| item.map_or(0, |item| item.counter(attribute)))
            .collect())
    }

    /// Reads many items; the result has one entry per key, in order. Backends with a batch
    /// read override this (and retry what the service leaves unprocessed); the default reads
    /// one key at a time.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            items.push(self.get(key).await?);
        }
        Ok(items)
    }
}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Store + ?Sized> Store for $ty {
            async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
                (**self).get(key).await
            }
            async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
                (**self).put(item, mode).await
            }
            async fn query(&self, query: &Query) -> Result<Page, StoreError> {
                (**self).query(query).await
            }
            async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
                (**self).transact(ops).await
            }
            async fn transact_and_count(&self, ops: Vec<TxOp>) -> Result<Vec<i64>, StoreError> {
                (**self).transact_and_count(ops).await
            }
            async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
                (**self).get_many(keys).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);

/// Conveniences over [`Store`], implemented for every store.
#[async_trait]
pub trait StoreExt: Store {
    /// Reads every page of a query.
    async fn query_all(&self, query: &Query) -> Result<Vec<Item>, StoreError> {
        let mut query = query.clone();
        let mut items = Vec::new();
        loop {
            let page = self.query(&query).await?;
            items.extend(page.items);
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return Ok(items),
            }
        }
    }

    /// Adds `by` to a counter, creating the item if missing.
    async fn increment(&self, key: &Key, attribute: &str, by: i64) -> Result<(), StoreError> {
        let op = TxOp::Increment {
            key: key.clone(),
            attribute: attribute.to_owned(),
            by,
        };
        self.transact(vec![op]).await.map_err(unwrap_single)
    }

    /// Deletes an item; deleting a missing item succeeds.
    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let op = TxOp::Delete {
            key: key.clone(),
            condition: None,
        };
        self.transact(vec![op]).await.map_err(unwrap_single)
    }
}

impl<T: Store + ?Sized> StoreExt for T {}

// A one-operation transaction reports the plain error, not a cancellation.
fn unwrap_single(error: StoreError) -> StoreError {
    match error {
        StoreError::TransactionCancelled { reason, .. } => *reason,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INDEXES: [Index; 1] = [Index::new("by_type", "by_type_pk", "by_type_sk")];

    #[test]
    fn items_with_reserved_attributes_or_empty_keys_are_rejected() {
        let item = Item::new(Key::new("A", "B")).with_attribute("PK", json!(1));
        assert!(matches!(
            item.check(&INDEXES),
            Err(StoreError::InvalidRequest { .. })
        ));
        let item = Item::new(Key::new("A", "B")).with_attribute("by_type_pk", json!("x"));
        assert!(item.check(&INDEXES).is_err());
        assert!(Item::new(Key::new("", "B")).check(&INDEXES).is_err());
        assert!(
            Item::new(Key::new("A", "x".repeat(1025)))
                .check(&INDEXES)
                .is_err()
        );
        assert!(
            Item::new(Key::new("A", "B"))
                .with_attribute("data", json!({}))
                .check(&INDEXES)
                .is_err(),
            "the entity is the item's data, not an attribute"
        );
        assert!(
            Item::new(Key::new("A", "B"))
                .with_data(EntityJson::of(&json!({})).unwrap())
                .check(&INDEXES)
                .is_ok()
        );
    }

    #[test]
    fn attributes_and_data_make_one_object_and_split_again() {
        let data = EntityJson::parse(r#"{"z": [1, 2.5], "a": "x"}"#.to_owned()).unwrap();
        let attributes: BTreeMap<String, Value> = [
            ("entity".to_owned(), json!("run")),
            ("n".to_owned(), json!(3)),
        ]
        .into();
        let text = attributes_to_json(&attributes, Some(&data)).unwrap();
        let whole: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            whole,
            json!({"data": {"z": [1, 2.5], "a": "x"}, "entity": "run", "n": 3})
        );
        let (read, read_data) = attributes_from_json(&text).unwrap();
        assert_eq!(read, attributes);
        assert_eq!(
            read_data.unwrap().as_str(),
            data.as_str(),
            "the entity's text as written"
        );
        let alone = attributes_to_json(&BTreeMap::new(), Some(&data)).unwrap();
        assert_eq!(attributes_from_json(&alone).unwrap().1, Some(data));
        assert_eq!(
            attributes_to_json(&attributes, None).unwrap(),
            r#"{"entity":"run","n":3}"#
        );
        assert!(attributes_from_json("[1]").is_err());
        assert!(attributes_from_json(r#"{"a": 1} x"#).is_err());
        assert!(EntityJson::parse("{".to_owned()).is_err());
    }

    #[test]
    fn entities_are_equal_by_value() {
        let a = EntityJson::parse(r#"{"a": 1, "b": 2}"#.to_owned()).unwrap();
        let b = EntityJson::parse(r#"{"b":2,"a":1}"#.to_owned()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, EntityJson::of(&json!({"a": 1})).unwrap());
    }

    #[test]
    fn transactions_must_touch_each_item_once_and_fit_the_limit() {
        let put = |sk: &str| TxOp::Put {
            item: Item::new(Key::new("P", sk)),
            mode: PutMode::Create,
        };
        assert!(check_transaction(&[], &INDEXES).is_err());
        assert!(check_transaction(&[put("a"), put("a")], &INDEXES).is_err());
        let many: Vec<_> = (0..101).map(|i| put(&i.to_string())).collect();
        assert!(check_transaction(&many, &INDEXES).is_err());
        assert!(check_transaction(&many[..100], &INDEXES).is_ok());
    }

    #[test]
    fn sort_key_ranges() {
        assert!(SortKeyRange::Prefix("TURN#".into()).contains("TURN#001"));
        assert!(!SortKeyRange::Prefix("TURN#".into()).contains("JUDGE#001"));
        let between = SortKeyRange::Between {
            from: "b".into(),
            to: "d".into(),
        };
        assert!(between.contains("b") && between.contains("c") && between.contains("d"));
        assert!(!between.contains("a") && !between.contains("da"));
        assert!(SortKeyRange::AtLeast("m".into()).contains("z"));
        assert!(SortKeyRange::AtMost("m".into()).contains("a"));
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(
            StoreError::Throttled {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            StoreError::Unavailable {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !StoreError::AlreadyExists {
                key: Key::new("a", "b")
            }
            .is_retryable()
        );
    }
}
