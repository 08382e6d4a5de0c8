//! The `Store` port on two tables: `items` (the base table) and `index_entries` (one row per
//! item per index it belongs to).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;
use socratic_core::store::{
    Condition, Cursor, Index, IndexKey, Item, Key, Order, Page, PutMode, Query, SortKeyRange,
    Store, StoreError, TxOp, check_key, check_transaction,
};

use crate::db::Database;

/// Items a query returns when it sets no limit.
pub const DEFAULT_PAGE: usize = 1000;

/// A [`Store`] in a SQLite database. Transactions are SQLite transactions, so they are
/// all-or-nothing across a crash as well as across failed conditions.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Database,
}

impl SqliteStore {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database the store lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.db
            .call(f)
            .await
            .map_err(|message| StoreError::Unavailable { message })?
    }
}

/// Maps a SQLite error: a lock held by another process is transient, anything else means the
/// store cannot serve the request.
fn sql_error(db: &Database) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Throttled {
            message: db.describe(&e),
        },
        _ => StoreError::Unavailable {
            message: db.describe(&e),
        },
    }
}

fn bad_cursor() -> StoreError {
    StoreError::InvalidRequest {
        message: "cursor was not issued by this store".to_owned(),
    }
}

fn encode_cursor(position: &[&str]) -> Cursor {
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

const ITEM_COLUMNS: &str = "i.pk, i.sk, i.version, i.index_keys, i.attributes";

/// Reads an item from a row of [`ITEM_COLUMNS`].
fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Item, StoreError>> {
    let key = Key::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?);
    let version: i64 = row.get(2)?;
    let index_keys: String = row.get(3)?;
    let attributes: String = row.get(4)?;
    let invalid = |message: String| StoreError::InvalidData {
        key: key.clone(),
        message,
    };
    let parsed = (|| {
        let index_keys: BTreeMap<Index, IndexKey> =
            serde_json::from_str(&index_keys).map_err(|e| invalid(e.to_string()))?;
        let attributes: BTreeMap<String, Value> =
            serde_json::from_str(&attributes).map_err(|e| invalid(e.to_string()))?;
        let version = u64::try_from(version).map_err(|e| invalid(e.to_string()))?;
        Ok(Item {
            key: key.clone(),
            version,
            index_keys,
            attributes,
        })
    })();
    Ok(parsed)
}

fn read(conn: &Connection, key: &Key) -> rusqlite::Result<Option<Result<Item, StoreError>>> {
    conn.query_row(
        &format!("SELECT {ITEM_COLUMNS} FROM items i WHERE i.pk = ?1 AND i.sk = ?2"),
        params![key.pk, key.sk],
        item_from_row,
    )
    .optional()
}

fn remove(conn: &Connection, key: &Key) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM index_entries WHERE pk = ?1 AND sk = ?2",
        params![key.pk, key.sk],
    )?;
    conn.execute(
        "DELETE FROM items WHERE pk = ?1 AND sk = ?2",
        params![key.pk, key.sk],
    )?;
    Ok(())
}

fn write(conn: &Connection, item: &Item) -> Result<(), WriteError> {
    remove(conn, &item.key)?;
    let index_keys = serde_json::to_string(&item.index_keys)?;
    let attributes = serde_json::to_string(&item.attributes)?;
    let version = i64::try_from(item.version).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO items (pk, sk, version, index_keys, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![item.key.pk, item.key.sk, version, index_keys, attributes],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO index_entries (idx, ipk, isk, pk, sk) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (index, ikey) in &item.index_keys {
        insert.execute(params![
            index.name(),
            ikey.pk,
            ikey.sk,
            item.key.pk,
            item.key.sk
        ])?;
    }
    Ok(())
}

/// A failure inside a write: SQLite's, or the store's own (a failed condition, bad data).
enum WriteError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sql(e)
    }
}

impl From<serde_json::Error> for WriteError {
    fn from(e: serde_json::Error) -> Self {
        WriteError::Store(StoreError::InvalidRequest {
            message: format!("cannot serialise item: {e}"),
        })
    }
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

fn holds(current: Option<&Item>, condition: Condition) -> bool {
    match condition {
        Condition::Exists => current.is_some(),
        Condition::NotExists => current.is_none(),
        Condition::VersionIs(v) => current.is_some_and(|item| item.version == v),
    }
}

/// Checks an operation against the stored item, without applying it.
fn check(conn: &Connection, op: &TxOp) -> Result<(), WriteError> {
    let key = op.key();
    let current = read(conn, key)?.transpose()?;
    let current = current.as_ref();
    let failed = || WriteError::Store(StoreError::ConditionFailed { key: key.clone() });
    match op {
        TxOp::Put {
            mode: PutMode::Create,
            ..
        } => match current {
            Some(_) => Err(WriteError::Store(StoreError::AlreadyExists {
                key: key.clone(),
            })),
            None => Ok(()),
        },
        TxOp::Put {
            mode: PutMode::Overwrite,
            ..
        }
        | TxOp::Delete {
            condition: None, ..
        }
        | TxOp::Increment { .. } => Ok(()),
        TxOp::Put {
            mode: PutMode::UpdateVersion(v),
            ..
        } => holds(current, Condition::VersionIs(*v))
            .then_some(())
            .ok_or_else(failed),
        TxOp::Delete {
            condition: Some(c), ..
        }
        | TxOp::Check { condition: c, .. } => holds(current, *c).then_some(()).ok_or_else(failed),
    }
}

fn apply(conn: &Connection, op: &TxOp) -> Result<(), WriteError> {
    match op {
        TxOp::Put { item, .. } => write(conn, item),
        TxOp::Delete { key, .. } => Ok(remove(conn, key)?),
        TxOp::Check { .. } => Ok(()),
        TxOp::Increment { key, attribute, by } => {
            let mut item = read(conn, key)?
                .transpose()?
                .unwrap_or_else(|| Item::new(key.clone()));
            let next = item.counter(attribute) + by;
            item.attributes.insert(attribute.clone(), Value::from(next));
            write(conn, &item)
        }
    }
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

/// A row of a query: the item (or why it cannot be read) and its position for the cursor.
type Row = (Result<Item, StoreError>, Vec<String>);

fn query_page(conn: &Connection, query: &Query) -> Result<Page, StoreError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let (direction, after) = match query.order {
        Order::Ascending => ("ASC", ">"),
        Order::Descending => ("DESC", "<"),
    };
    let mut params = vec![SqlValue::Text(query.partition.clone())];
    let (sql, position_columns) = match query.index {
        None => {
            let range = range_sql("i.sk", &query.range, &mut params);
            let mut sql =
                format!("SELECT {ITEM_COLUMNS}, i.sk FROM items i WHERE i.pk = ?1 AND {range}");
            if let Some(cursor) = &query.cursor {
                let position = decode_cursor(cursor, 1)?;
                params.push(SqlValue::Text(position[0].clone()));
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
    let sql = format!("{sql} LIMIT ?{}", params.len());
    let run = || -> rusqlite::Result<Vec<Row>> {
        let mut statement = conn.prepare_cached(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(params.iter()), |row| {
            let item = item_from_row(row)?;
            let position = (0..position_columns)
                .map(|i| row.get::<_, String>(5 + i))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((item, position))
        })?;
        rows.collect()
    };
    let mut rows = run().map_err(|e| StoreError::Unavailable {
        message: e.to_string(),
    })?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let cursor = if more {
        rows.last().map(|(_, position)| {
            encode_cursor(&position.iter().map(String::as_str).collect::<Vec<_>>())
        })
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(item, _)| item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, cursor })
}

/// Runs `ops` in one immediate transaction: every check first, then every write.
fn transact(conn: &mut Connection, ops: &[TxOp]) -> Result<(), WriteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (index, op) in ops.iter().enumerate() {
        check(&tx, op).map_err(|e| match e {
            WriteError::Store(reason) => WriteError::Store(StoreError::TransactionCancelled {
                index,
                key: op.key().clone(),
                reason: Box::new(reason),
            }),
            other @ WriteError::Sql(_) => other,
        })?;
    }
    for op in ops {
        apply(&tx, op)?;
    }
    tx.commit()?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        check_key(key)?;
        let key = key.clone();
        let db = self.db.clone();
        self.call(move |conn| read(conn, &key).map_err(sql_error(&db))?.transpose())
            .await
    }

    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        item.check()?;
        let db = self.db.clone();
        self.call(move |conn| {
            let op = [TxOp::Put { item, mode }];
            transact(conn, &op).map_err(|e| match e {
                WriteError::Store(StoreError::TransactionCancelled { reason, .. }) => *reason,
                WriteError::Store(e) => e,
                WriteError::Sql(e) => sql_error(&db)(e),
            })
        })
        .await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if query.partition.is_empty() || query.limit == Some(0) {
            return Err(StoreError::InvalidRequest {
                message: "a query needs a partition and a limit of at least 1".to_owned(),
            });
        }
        let query = query.clone();
        self.call(move |conn| query_page(conn, &query)).await
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        check_transaction(&ops)?;
        let db = self.db.clone();
        self.call(move |conn| {
            transact(conn, &ops).map_err(|e| match e {
                WriteError::Store(e) => e,
                WriteError::Sql(e) => sql_error(&db)(e),
            })
        })
        .await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        for key in keys {
            check_key(key)?;
        }
        let keys = keys.to_vec();
        let db = self.db.clone();
        self.call(move |conn| {
            // One read transaction, so the answers are consistent with each other.
            let tx = conn.transaction().map_err(sql_error(&db))?;
            let items = keys
                .iter()
                .map(|key| read(&tx, key).map_err(sql_error(&db))?.transpose())
                .collect();
            tx.commit().map_err(sql_error(&db))?;
            items
        })
        .await
    }
}
