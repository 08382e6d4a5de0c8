//! The `Store` port on two tables: `items` (the base table) and `index_entries` (one row per
//! item per index it belongs to).
//!
//! The database thread is the one place every call passes through, so it only moves strings:
//! items are serialised before a call and parsed after it, on the caller's thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde_json::Value;
use socratic_core::keys;
use socratic_core::store::{
    Condition, Cursor, EntityJson, Index, IndexKey, Item, Key, Order, Page, PutMode, Query,
    SortKeyRange, Store, StoreError, TxOp, attributes_from_json, attributes_to_json, check_index,
    check_key, check_transaction,
};

use crate::codec;
use crate::db::{Database, Savepoint};

/// Items a query returns when it sets no limit.
pub const DEFAULT_PAGE: usize = 1000;

/// A [`Store`] in a SQLite database. Transactions are SQLite transactions, so they are
/// all-or-nothing across a crash as well as across failed conditions.
///
/// It serves the key schema's indexes ([`keys::INDEXES`]) unless built
/// [`with_indexes`](Self::with_indexes).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Database,
    indexes: Arc<[Index]>,
}

impl Database {
    /// The store on this database, serving the key schema's indexes.
    pub fn store(&self) -> SqliteStore {
        SqliteStore {
            db: self.clone(),
            indexes: keys::INDEXES.into(),
        }
    }
}

impl SqliteStore {
    /// The same store serving `indexes` instead.
    pub fn with_indexes(mut self, indexes: &[Index]) -> Self {
        self.indexes = indexes.into();
        self
    }

    /// The database the store lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `f` on the database thread with `input`, which comes back to be freed here.
    async fn call<I: Send + 'static, R: Send + 'static>(
        &self,
        input: I,
        f: impl FnOnce(&mut Connection, &I) -> Result<R, Failure> + Send + 'static,
    ) -> Result<R, StoreError> {
        let result = self.db.call_with(input, f).await;
        self.settle(result)
    }

    fn settle<R>(&self, result: Result<Result<R, Failure>, String>) -> Result<R, StoreError> {
        result
            .map_err(|message| StoreError::Unavailable { message })?
            .map_err(|failure| failure.into_store_error(&self.db))
    }
}

/// A failure on the database thread: SQLite's, or the store's own (a failed condition).
enum Failure {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl Failure {
    /// A lock held by another process is transient; any other SQLite error means the store
    /// cannot serve the request.
    fn into_store_error(self, db: &Database) -> StoreError {
        match self {
            Failure::Store(e) => e,
            Failure::Sql(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                    StoreError::Throttled {
                        message: db.describe(&e),
                    }
                }
                _ => StoreError::Unavailable {
                    message: db.describe(&e),
                },
            },
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

fn bad_cursor() -> StoreError {
    StoreError::InvalidRequest {
        message: "cursor was not issued by this store".to_owned(),
    }
}

fn encode_cursor(position: &[String]) -> Cursor {
    Cursor(hex::encode(Value::from(position.to_vec()).to_string()))
}

fn decode_cursor(cursor: &Cursor, parts: usize) -> Result<Vec<String>, StoreError> {
    let bytes = hex::decode(&cursor.0).map_err(|_| bad_cursor())?;
    let position: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?;
    if position.len() == parts {
        Ok(position)
    } else {
        Err(bad_cursor())
    }
}

/// An item as stored: its JSON columns unparsed, its entity compressed.
struct Row {
    key: Key,
    version: i64,
    index_keys: String,
    attributes: String,
    data: Option<Vec<u8>>,
}

impl Row {
    /// The item, its index keys named among `indexes`.
    fn parse(self, indexes: &[Index]) -> Result<Item, StoreError> {
        let invalid = |message: String| StoreError::InvalidData {
            key: self.key.clone(),
            message,
        };
        let named: BTreeMap<String, IndexKey> =
            serde_json::from_str(&self.index_keys).map_err(|e| invalid(e.to_string()))?;
        let index_keys = named
            .into_iter()
            .map(|(name, key)| match Index::named(indexes, &name) {
                Some(index) => Ok((index, key)),
                None => Err(invalid(format!(
                    "index {name} is not one of this store's indexes"
                ))),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        // The entity stays text: read straight from it by whoever asked. Items written before
        // schema 3 hold it among their attributes.
        let (attributes, mut data) =
            attributes_from_json(&self.attributes).map_err(|e| invalid(e.to_string()))?;
        if let Some(stored) = &self.data {
            let text = codec::decompress(stored)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| invalid("its entity cannot be decompressed".to_owned()))?;
            data = Some(EntityJson::parse(text).map_err(|e| invalid(e.to_string()))?);
        }
        let version = u64::try_from(self.version).map_err(|e| invalid(e.to_string()))?;
        Ok(Item {
            key: self.key,
            version,
            index_keys,
            attributes,
            data,
        })
    }
}

/// An item ready to store: serialised and its entity compressed on the caller's thread.
struct Encoded {
    key: Key,
    version: i64,
    index_keys: String,
    attributes: String,
    data: Option<Vec<u8>>,
    entries: Vec<(&'static str, IndexKey)>,
}

impl Encoded {
    fn of(item: &Item) -> Result<Self, StoreError> {
        let failed = |e: serde_json::Error| StoreError::InvalidRequest {
            message: format!("{}: cannot serialise item: {e}", item.key),
        };
        Ok(Self {
            key: item.key.clone(),
            version: i64::try_from(item.version).unwrap_or(i64::MAX),
            index_keys: serde_json::to_string(&item.index_keys).map_err(failed)?,
            attributes: attributes_to_json(&item.attributes, None).map_err(failed)?,
            // Compressed: an entity of a few hundred bytes shrinks to a third.
            data: item
                .data
                .as_ref()
                .map(|data| codec::compress(data.as_str().as_bytes())),
            entries: item
                .index_keys
                .iter()
                .map(|(index, key)| (index.name(), key.clone()))
                .collect(),
        })
    }
}

/// A transaction operation with its item serialised.
enum Op {
    Put(Encoded, PutMode),
    Delete(Key, Option<Condition>),
    Check(Key, Condition),
    Increment(Key, String, i64),
}

impl Op {
    fn of(op: &TxOp) -> Result<Self, StoreError> {
        Ok(match op {
            TxOp::Put { item, mode } => Op::Put(Encoded::of(item)?, *mode),
            TxOp::Delete { key, condition } => Op::Delete(key.clone(), *condition),
            TxOp::Check { key, condition } => Op::Check(key.clone(), *condition),
            TxOp::Increment { key, attribute, by } => {
                Op::Increment(key.clone(), attribute.clone(), *by)
            }
        })
    }

    fn key(&self) -> &Key {
        match self {
            Op::Put(item, _) => &item.key,
            Op::Delete(key, _) | Op::Check(key, _) | Op::Increment(key, _, _) => key,
        }
    }
}

const ITEM_COLUMNS: &str = "i.pk, i.sk, i.version, i.index_keys, i.attributes, i.data";

fn row_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        key: Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
        version: row.get(2)?,
        index_keys: row.get(3)?,
        attributes: row.get(4)?,
        data: row.get(5)?,
    })
}

fn read(conn: &Connection, key: &Key) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&format!(
        "SELECT {ITEM_COLUMNS} FROM items i WHERE i.pk = ?1 AND i.sk = ?2"
    ))?
    .query_row(params![key.pk, key.sk], row_of)
    .optional()
}

fn version_of(conn: &Connection, key: &Key) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT version FROM items WHERE pk = ?1 AND sk = ?2")?
        .query_row(params![key.pk, key.sk], |r| r.get(0))
        .optional()
}

fn remove(conn: &Connection, key: &Key) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM index_entries WHERE pk = ?1 AND sk = ?2")?
        .execute(params![key.pk, key.sk])?;
    conn.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")?
        .execute(params![key.pk, key.sk])?;
    Ok(())
}

/// Inserts a new item and its index entries. A stored item under the key fails the insert
/// with a constraint violation.
fn insert(conn: &Connection, item: &Encoded) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO items (pk, sk, version, index_keys, attributes, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        item.key.pk,
        item.key.sk,
        item.version,
        item.index_keys,
        item.attributes,
        item.data
    ])?;
    add_entries(conn, &item.key, &item.entries)
}

/// Adds an item's entries to the indexes.
fn add_entries<'a>(
    conn: &Connection,
    key: &Key,
    entries: impl IntoIterator<Item = &'a (&'static str, IndexKey)>,
) -> rusqlite::Result<()> {
    let mut entry = conn.prepare_cached(
        "INSERT INTO index_entries (idx, ipk, isk, pk, sk) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (index, ikey) in entries {
        entry.execute(params![index, ikey.pk, ikey.sk, key.pk, key.sk])?;
    }
    Ok(())
}

/// Replaces a stored item's row in place, if its version is `expected` (any version when
/// `None`), and touches only the index entries that changed: a run's transition moves it in
/// the status index and leaves its other entries alone. Whether a row was replaced.
fn replace(conn: &Connection, item: &Encoded, expected: Option<i64>) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE items SET version = ?3, index_keys = ?4, attributes = ?5, data = ?7 \
             WHERE pk = ?1 AND sk = ?2 AND (?6 IS NULL OR version = ?6)",
        )?
        .execute(params![
            item.key.pk,
            item.key.sk,
            item.version,
            item.index_keys,
            item.attributes,
            expected,
            item.data
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    let mut stale: Vec<(String, String, String)> = Vec::new();
    let mut wanted: Vec<&(&'static str, IndexKey)> = item.entries.iter().collect();
    {
        let mut current = conn
            .prepare_cached("SELECT idx, ipk, isk FROM index_entries WHERE pk = ?1 AND sk = ?2")?;
        let rows = current.query_map(params![item.key.pk, item.key.sk], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (idx, ipk, isk) = row?;
            let kept = wanted
                .iter()
                .position(|(name, key)| *name == idx && key.pk == ipk && key.sk == isk);
            match kept {
                Some(at) => {
                    wanted.swap_remove(at);
                }
                None => stale.push((idx, ipk, isk)),
            }
        }
    }
    let mut delete = conn.prepare_cached(
        "DELETE FROM index_entries WHERE idx = ?1 AND ipk = ?2 AND isk = ?3 AND pk = ?4 AND sk = ?5",
    )?;
    for (idx, ipk, isk) in &stale {
        delete.execute(params![idx, ipk, isk, item.key.pk, item.key.sk])?;
    }
    add_entries(conn, &item.key, wanted)?;
    Ok(true)
}

fn holds(version: Option<i64>, condition: Condition) -> bool {
    match condition {
        Condition::Exists => version.is_some(),
        Condition::NotExists => version.is_none(),
        Condition::VersionIs(v) => version.is_some_and(|stored| u64::try_from(stored) == Ok(v)),
    }
}

/// The JSON path of a top-level attribute, quoted so any name is one key.
fn json_path(attribute: &str) -> String {
    format!("$.{}", Value::from(attribute))
}

/// Applies one operation if its condition holds. Where the write itself can check the
/// condition (an insert that must not collide, an update of one version), it does, so most
/// operations take a single statement. An increment answers with the counter's new value.
fn apply(conn: &Connection, op: &Op) -> Result<Option<i64>, Failure> {
    let failed = |key: &Key| Failure::Store(StoreError::ConditionFailed { key: key.clone() });
    match op {
        Op::Put(item, PutMode::Create) => match insert(conn, item) {
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Err(Failure::Store(StoreError::AlreadyExists {
                    key: item.key.clone(),
                }))
            }
            other => Ok(other.map(|()| None)?),
        },
        Op::Put(item, PutMode::UpdateVersion(v)) => {
            let expected = i64::try_from(*v).ok();
            match expected {
                Some(_) if replace(conn, item, expected)? => Ok(None),
                _ => Err(failed(&item.key)),
            }
        }
        Op::Put(item, PutMode::Overwrite) => {
            if !replace(conn, item, None)? {
                insert(conn, item)?;
            }
            Ok(None)
        }
        Op::Delete(key, condition) => {
            if let Some(c) = condition
                && !holds(version_of(conn, key)?, *c)
            {
                return Err(failed(key));
            }
            remove(conn, key)?;
            Ok(None)
        }
        Op::Check(key, c) => {
            if holds(version_of(conn, key)?, *c) {
                Ok(None)
            } else {
                Err(failed(key))
            }
        }
        // In SQL, so the item is neither parsed nor rewritten with its index entries. A value
        // that is not an integer counts as 0, as `Item::counter` reads it.
        Op::Increment(key, attribute, by) => {
            let next = conn
                .prepare_cached(
                    "UPDATE items SET attributes = json_set(attributes, ?3, \
                     CASE WHEN json_type(attributes, ?3) = 'integer' \
                     THEN json_extract(attributes, ?3) ELSE 0 END + ?4) \
                     WHERE pk = ?1 AND sk = ?2 RETURNING json_extract(attributes, ?3)",
                )?
                .query_row(params![key.pk, key.sk, json_path(attribute), by], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?;
            match next {
                Some(next) => Ok(Some(next)),
                None => {
                    let item =
                        Item::new(key.clone()).with_attribute(attribute.clone(), Value::from(*by));
                    insert(conn, &Encoded::of(&item).map_err(Failure::Store)?)?;
                    Ok(Some(*by))
                }
            }
        }
    }
}

/// Runs `ops` in one savepoint, in order. The first whose condition fails cancels the
/// transaction: the savepoint rolls back, so nothing is written.
/// Applies `ops` in one savepoint; answers with each counter's new value, in order.
fn transact(conn: &mut Connection, ops: &[Op]) -> Result<Vec<i64>, Failure> {
    let tx = Savepoint::begin(conn)?;
    let mut counts = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let count = apply(&tx, op).map_err(|e| match e {
            Failure::Store(reason) => Failure::Store(StoreError::TransactionCancelled {
                index,
                key: op.key().clone(),
                reason: Box::new(reason),
            }),
            other @ Failure::Sql(_) => other,
        })?;
        counts.extend(count);
    }
    tx.release()?;
    Ok(counts)
}

/// The SQL condition and parameters for a sort-key range on `column`.
fn range_sql(column: &str, range: &SortKeyRange, params: &mut Vec<SqlValue>) -> String {
    let mut bind = |value: &str| {
        params.push(SqlValue::Text(value.to_owned()));
        format!("?{}", params.len())
    };
    match range {
        SortKeyRange::All => "1".to_owned(),
        SortKeyRange::Prefix(prefix) => {
            let p = bind(prefix);
            format!("{column} >= {p} AND substr({column}, 1, length({p})) = {p}")
        }
        SortKeyRange::Between { from, to } => {
            let f = bind(from);
            let t = bind(to);
            format!("{column} BETWEEN {f} AND {t}")
        }
        SortKeyRange::AtLeast(from) => format!("{column} >= {}", bind(from)),
        SortKeyRange::AtMost(to) => format!("{column} <= {}", bind(to)),
    }
}

/// A query as SQL: the statement, its parameters, and how many columns after the item's
/// hold its position for the cursor.
fn query_sql(query: &Query) -> Result<(String, Vec<SqlValue>, usize), StoreError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let (direction, after) = match query.order {
        Order::Ascending => ("ASC", ">"),
        Order::Descending => ("DESC", "<"),
    };
    let mut params = vec![SqlValue::Text(query.partition.clone())];
    let (mut sql, position_columns) = match query.index {
        None => {
            let range = range_sql("i.sk", &query.range, &mut params);
            let mut sql =
                format!("SELECT {ITEM_COLUMNS}, i.sk FROM items i WHERE i.pk = ?1 AND {range}");
            if let Some(cursor) = &query.cursor {
                let position = decode_cursor(cursor, 1)?;
                params.extend(position.into_iter().map(SqlValue::Text));
                sql.push_str(&format!(" AND i.sk {after} ?{}", params.len()));
            }
            sql.push_str(&format!(" ORDER BY i.sk {direction}"));
            (sql, 1)
        }
        Some(index) => {
            params.push(SqlValue::Text(index.name().to_owned()));
            let range = range_sql("e.isk", &query.range, &mut params);
            let mut sql = format!(
                "SELECT {ITEM_COLUMNS}, e.isk, e.pk, e.sk FROM index_entries e \
                 JOIN items i ON i.pk = e.pk AND i.sk = e.sk \
                 WHERE e.ipk = ?1 AND e.idx = ?2 AND {range}"
            );
            if let Some(cursor) = &query.cursor {
                let position = decode_cursor(cursor, 3)?;
                let first = params.len() + 1;
                params.extend(position.into_iter().map(SqlValue::Text));
                sql.push_str(&format!(
                    " AND (e.isk, e.pk, e.sk) {after} (?{first}, ?{}, ?{})",
                    first + 1,
                    first + 2
                ));
            }
            sql.push_str(&format!(
                " ORDER BY e.isk {direction}, e.pk {direction}, e.sk {direction}"
            ));
            (sql, 3)
        }
    };
    // One row more than the page tells whether another page follows.
    params.push(SqlValue::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1),
    ));
    sql.push_str(&format!(" LIMIT ?{}", params.len()));
    Ok((sql, params, position_columns))
}

/// Rows of a query with their positions.
fn query_rows(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    position_columns: usize,
) -> rusqlite::Result<Vec<(Row, Vec<String>)>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params.iter()), |row| {
        let item = row_of(row)?;
        let position = (0..position_columns)
            .map(|i| row.get::<_, String>(6 + i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((item, position))
    })?;
    rows.collect()
}

fn single(error: StoreError) -> StoreError {
    match error {
        StoreError::TransactionCancelled { reason, .. } => *reason,
        other => other,
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        check_key(key)?;
        let row = self
            .call(key.clone(), |conn, key| Ok(read(conn, key)?))
            .await?;
        row.map(|r| r.parse(&self.indexes)).transpose()
    }

    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        item.check(&self.indexes)?;
        let op = [Op::Put(Encoded::of(&item)?, mode)];
        self.call(op, |conn, op| transact(conn, op))
            .await
            .map(drop)
            .map_err(single)
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
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        let (sql, params, position_columns) = query_sql(query)?;
        let mut rows = self
            .call((sql, params), move |conn, (sql, params)| {
                Ok(query_rows(conn, sql, params, position_columns)?)
            })
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = if more {
            rows.last().map(|(_, position)| encode_cursor(position))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|(row, _)| row.parse(&self.indexes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, cursor })
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        self.transact_and_count(ops).await.map(drop)
    }

    async fn transact_and_count(&self, ops: Vec<TxOp>) -> Result<Vec<i64>, StoreError> {
        check_transaction(&ops, &self.indexes)?;
        let ops = ops.iter().map(Op::of).collect::<Result<Vec<_>, _>>()?;
        self.call(ops, |conn, ops| transact(conn, ops)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        for key in keys {
            check_key(key)?;
        }
        let rows = self
            .call(keys.to_vec(), |conn, keys| {
                // One savepoint, so the answers are consistent with each other.
                let tx = Savepoint::begin(conn)?;
                let rows = keys
                    .iter()
                    .map(|key| read(&tx, key))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                tx.release()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|row| row.map(|r| r.parse(&self.indexes)).transpose())
            .collect()
    }
}
