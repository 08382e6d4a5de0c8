//! The `Store` port over one DynamoDB table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo_serde;
use serde_json::{Map, Value};
use socratic_core::keys;
use socratic_core::store::{
    Condition, Cursor, DATA_ATTRIBUTE, EntityJson, Index, IndexKey, Item, Key, Order, Page,
    PutMode, Query, SortKeyRange, Store, StoreError, TxOp, check_index, check_key,
    check_transaction,
};

use crate::error::{Failure, classify};

mod table;
pub use table::create_table;

pub(crate) const PK: &str = "PK";
pub(crate) const SK: &str = "SK";
const VERSION: &str = "version";
/// `BatchGetItem`'s largest batch.
const BATCH_GET: usize = 100;
/// Retries of keys a batch read left unprocessed.
const BATCH_RETRIES: u32 = 8;

/// A [`Store`] over a DynamoDB table created by [`create_table`]: string `PK`/`SK`, and one
/// global index per [`Index`] it serves (the key schema's, [`keys::INDEXES`], unless built
/// [`with_indexes`](Self::with_indexes)), keyed by the index's own string attributes (sparse:
/// an item without them is not in the index). Items are mapped with `serde_dynamo`; conditions are condition
/// expressions; transactions are `TransactWriteItems`, with cancellation reasons mapped to the
/// failing operation; counters use `ADD`; cursors wrap `LastEvaluatedKey`.
///
/// Base-table reads are strongly consistent; index queries are eventually consistent, as
/// DynamoDB's global indexes are.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    indexes: Arc<[Index]>,
}

impl DynamoStore {
    /// A store over `table`, serving the key schema's indexes. Build the client once per
    /// process.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            indexes: keys::INDEXES.into(),
        }
    }

    /// A store over `table` with a client built from `sdk`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), table)
    }

    /// The same store serving `indexes` instead: the table's global indexes.
    pub fn with_indexes(mut self, indexes: &[Index]) -> Self {
        self.indexes = indexes.into();
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table exists (`DescribeTable`): a tool writing into a deployed table asks
    /// first, to name a missing table rather than fail on its first write.
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failure(&classify(&e), None)),
        }
    }
}

pub(crate) fn failure(failure: &Failure, key: Option<&Key>) -> StoreError {
    match failure {
        Failure::Throttled(m) => StoreError::Throttled { message: m.clone() },
        Failure::Unavailable(m) => StoreError::Unavailable { message: m.clone() },
        Failure::Service { code, message } if code == "ConditionalCheckFailedException" => {
            match key {
                Some(key) => StoreError::ConditionFailed { key: key.clone() },
                None => StoreError::InvalidRequest {
                    message: message.clone(),
                },
            }
        }
        Failure::Service { code, message }
            if code == "TransactionConflictException"
                || code == "TransactionInProgressException" =>
        {
            StoreError::Unavailable {
                message: message.clone(),
            }
        }
        Failure::Service { message, .. } | Failure::Invalid(message) => {
            StoreError::InvalidRequest {
                message: message.clone(),
            }
        }
    }
}

/// Builds the DynamoDB item: keys, version, index keys and attributes as top-level attributes.
fn to_dynamo(item: &Item) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut map = Map::new();
    map.insert(PK.to_owned(), Value::from(item.key.pk.clone()));
    map.insert(SK.to_owned(), Value::from(item.key.sk.clone()));
    map.insert(VERSION.to_owned(), Value::from(item.version));
    // Only present index keys are written: a NULL would break the sparse indexes.
    for (index, key) in &item.index_keys {
        map.insert(index.pk_attribute().to_owned(), Value::from(key.pk.clone()));
        map.insert(index.sk_attribute().to_owned(), Value::from(key.sk.clone()));
    }
    for (name, value) in &item.attributes {
        map.insert(name.clone(), value.clone());
    }
    // The entity as a map attribute, readable in the console and by expressions.
    if let Some(data) = &item.data {
        let value = data.to_value().map_err(|e| StoreError::InvalidRequest {
            message: format!("{}: {e}", item.key),
        })?;
        map.insert(DATA_ATTRIBUTE.to_owned(), value);
    }
    dynamo_serde::to_item(map).map_err(|e| StoreError::InvalidRequest {
        message: format!("{}: {e}", item.key),
    })
}

/// Reads a DynamoDB item back, the attributes of `indexes` as its index keys.
fn from_dynamo(
    raw: HashMap<String, AttributeValue>,
    indexes: &[Index],
) -> Result<Item, StoreError> {
    let corrupt = |key: Key, message: String| StoreError::InvalidData { key, message };
    let mut map: Map<String, Value> =
        dynamo_serde::from_item(raw).map_err(|e| corrupt(Key::new("?", "?"), e.to_string()))?;
    let mut take_string = |name: &str| map.remove(name).and_then(|v| v.as_str().map(str::to_owned));
    let pk = take_string(PK).unwrap_or_default();
    let sk = take_string(SK).unwrap_or_default();
    let key = Key::new(pk, sk);
    let mut index_keys = BTreeMap::new();
    for &index in indexes {
        if let (Some(ipk), Some(isk)) = (
            take_string(index.pk_attribute()),
            take_string(index.sk_attribute()),
        ) {
            index_keys.insert(index, IndexKey { pk: ipk, sk: isk });
        }
    }
    // A counter item created by ADD has no version; it counts as version 1.
    let version = match map.remove(VERSION) {
        None => 1,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| corrupt(key.clone(), format!("version is not a number: {v}")))?,
    };
    let data = match map.remove(DATA_ATTRIBUTE) {
        Some(value) => {
            Some(EntityJson::of(&value).map_err(|e| corrupt(key.clone(), e.to_string()))?)
        }
        None => None,
    };
    Ok(Item {
        key,
        version,
        index_keys,
        attributes: map.into_iter().collect(),
        data,
    })
}

fn key_attributes(key: &Key) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// A condition expression with its names and values.
#[derive(Default)]
struct Expression {
    text: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn condition(condition: Option<Condition>) -> Expression {
    let mut e = Expression::default();
    match condition {
        None => {}
        Some(Condition::Exists) => {
            e.text = Some("attribute_exists(#pk)".to_owned());
            e.names.insert("#pk".to_owned(), PK.to_owned());
        }
        Some(Condition::NotExists) => {
            e.text = Some("attribute_not_exists(#pk)".to_owned());
            e.names.insert("#pk".to_owned(), PK.to_owned());
        }
        Some(Condition::VersionIs(v)) => {
            e.text = Some("#version = :version".to_owned());
            e.names.insert("#version".to_owned(), VERSION.to_owned());
            e.values
                .insert(":version".to_owned(), AttributeValue::N(v.to_string()));
        }
    }
    e
}

/// A builder that takes a condition expression: every one this store sends.
trait Conditioned: Sized {
    /// Sets the expression's text, names and values (names and values only when there are any,
    /// as DynamoDB refuses empty maps).
    fn with_condition(self, e: Expression) -> Self;
}

macro_rules! conditioned {
    ($($builder:ty),+) => {
        $(impl Conditioned for $builder {
            fn with_condition(self, e: Expression) -> Self {
                self.set_condition_expression(e.text)
                    .set_expression_attribute_names((!e.names.is_empty()).then_some(e.names))
                    .set_expression_attribute_values((!e.values.is_empty()).then_some(e.values))
            }
        })+
    };
}

conditioned!(
    aws_sdk_dynamodb::types::builders::PutBuilder,
    aws_sdk_dynamodb::types::builders::DeleteBuilder,
    aws_sdk_dynamodb::types::builders::ConditionCheckBuilder,
    aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder
);

fn put_condition(mode: PutMode) -> Option<Condition> {
    match mode {
        PutMode::Create => Some(Condition::NotExists),
        PutMode::Overwrite => None,
        PutMode::UpdateVersion(v) => Some(Condition::VersionIs(v)),
    }
}

fn encode_cursor(last: &HashMap<String, AttributeValue>) -> Result<Cursor, StoreError> {
    let mut strings = BTreeMap::new();
    for (name, value) in last {
        let text = value.as_s().map_err(|_| StoreError::InvalidData {
            key: Key::new("?", "?"),
            message: format!("non-string key attribute {name}"),
        })?;
        strings.insert(name.clone(), text.clone());
    }
    Ok(Cursor(hex::encode(
        serde_json::to_vec(&strings).unwrap_or_default(),
    )))
}

fn decode_cursor(cursor: &Cursor) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let bad = || StoreError::InvalidRequest {
        message: "cursor was not issued by this store".to_owned(),
    };
    let bytes = hex::decode(&cursor.0).map_err(|_| bad())?;
    let strings: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if !strings.contains_key(PK) || !strings.contains_key(SK) {
        return Err(bad());
    }
    Ok(strings
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

fn tx_item(op: &TxOp, table: &str) -> Result<TransactWriteItem, StoreError> {
    let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::InvalidRequest {
        message: e.to_string(),
    };
    let item = match op {
        TxOp::Put { item, mode } => {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(to_dynamo(item)?))
                .with_condition(condition(put_condition(*mode)))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().put(put).build()
        }
        TxOp::Delete { key, condition: c } => {
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(key_attributes(key)))
                .with_condition(condition(*c))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().delete(delete).build()
        }
        TxOp::Check { key, condition: c } => {
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key_attributes(key)))
                .with_condition(condition(Some(*c)))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().condition_check(check).build()
        }
        TxOp::Increment { key, attribute, by } => {
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(key_attributes(key)))
                .update_expression("ADD #counter :by")
                .expression_attribute_names("#counter", attribute)
                .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
                .build()
                .map_err(built)?;
            TransactWriteItem::builder().update(update).build()
        }
    };
    Ok(item)
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        check_key(key)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(&classify(&e), Some(key)))?;
        output
            .item
            .map(|raw| from_dynamo(raw, &self.indexes))
            .transpose()
    }

    async fn put(&self, item: Item, mode: PutMode) -> Result<(), StoreError> {
        item.check(&self.indexes)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_dynamo(&item)?))
            .with_condition(condition(put_condition(mode)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match failure(&classify(&error), Some(&item.key)) {
                StoreError::ConditionFailed { key } if mode == PutMode::Create => {
                    Err(StoreError::AlreadyExists { key })
                }
                other => Err(other),
            },
        }
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if query.partition.is_empty() || query.limit == Some(0) {
            return Err(StoreError::InvalidRequest {
                message: "a query needs a partition and a limit of at least 1".to_owned(),
            });
        }
        let (pk_name, sk_name) = match query.index {
            None => (PK, SK),
            Some(index) => {
                check_index(index, &self.indexes)?;
                (index.pk_attribute(), index.sk_attribute())
            }
        };
        let mut values =
            HashMap::from([(":pk".to_owned(), AttributeValue::S(query.partition.clone()))]);
        let mut expression = "#pk = :pk".to_owned();
        let range = match &query.range {
            SortKeyRange::All => None,
            SortKeyRange::Prefix(p) => {
                values.insert(":a".to_owned(), AttributeValue::S(p.clone()));
                Some("begins_with(#sk, :a)")
            }
            SortKeyRange::Between { from, to } => {
                values.insert(":a".to_owned(), AttributeValue::S(from.clone()));
                values.insert(":b".to_owned(), AttributeValue::S(to.clone()));
                Some("#sk BETWEEN :a AND :b")
            }
            SortKeyRange::AtLeast(from) => {
                values.insert(":a".to_owned(), AttributeValue::S(from.clone()));
                Some("#sk >= :a")
            }
            SortKeyRange::AtMost(to) => {
                values.insert(":a".to_owned(), AttributeValue::S(to.clone()));
                Some("#sk <= :a")
            }
        };
        let mut names = HashMap::from([("#pk".to_owned(), pk_name.to_owned())]);
        if let Some(range) = range {
            expression.push_str(" AND ");
            expression.push_str(range);
            names.insert("#sk".to_owned(), sk_name.to_owned());
        }
        let start = query.cursor.as_ref().map(decode_cursor).transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(|i| i.name().to_owned()))
            .key_condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(query.order == Order::Ascending)
            .set_limit(query.limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)))
            .set_exclusive_start_key(start)
            .set_consistent_read(query.index.is_none().then_some(true))
            .send()
            .await
            .map_err(|e| failure(&classify(&e), None))?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|raw| from_dynamo(raw, &self.indexes))
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = match output.last_evaluated_key {
            Some(last) if !last.is_empty() => Some(encode_cursor(&last)?),
            _ => None,
        };
        Ok(Page { items, cursor })
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        keys.iter().try_for_each(check_key)?;
        let mut found: HashMap<Key, Item> = HashMap::new();
        // Duplicate keys are not allowed in one BatchGetItem; ask for each key once.
        let mut unique: Vec<&Key> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(BATCH_GET) {
            let mut pending: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|k| key_attributes(k)).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::InvalidRequest {
                        message: e.to_string(),
                    })?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| failure(&classify(&e), None))?;
                for raw in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let item = from_dynamo(raw, &self.indexes)?;
                    found.insert(item.key.clone(), item);
                }
                // BatchGetItem reports keys it did not get to inside a successful response.
                pending = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > BATCH_RETRIES {
                        return Err(StoreError::Throttled {
                            message: format!(
                                "{} keys left unprocessed after {BATCH_RETRIES} retries",
                                pending.len()
                            ),
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6)))
                        .await;
                }
            }
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn transact(&self, ops: Vec<TxOp>) -> Result<(), StoreError> {
        check_transaction(&ops, &self.indexes)?;
        let items = ops
            .iter()
            .map(|op| tx_item(op, &self.table))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(error) = result else { return Ok(()) };
        if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if let Some((index, _)) =
                reasons.iter().enumerate().find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            {
                let op = &ops[index];
                let key = op.key().clone();
                let reason = match op {
                    TxOp::Put { mode: PutMode::Create, .. } => StoreError::AlreadyExists { key: key.clone() },
                    _ => StoreError::ConditionFailed { key: key.clone() },
                };
                return Err(StoreError::TransactionCancelled { index, key, reason: Box::new(reason) });
            }
            let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).filter(|c| *c != "None").collect();
            let message = format!("transaction cancelled: {codes:?}");
            return Err(if codes.iter().any(|c| c.contains("Throttl") || c.contains("Throughput")) {
                StoreError::Throttled { message }
            } else if codes.contains(&"ValidationError") {
                StoreError::InvalidRequest { message }
            } else {
                StoreError::Unavailable { message }
            });
        }
        Err(failure(&classify(&error), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_round_trip_through_attribute_values() {
        let item = Item::new(Key::new("RUN#1", "METADATA"))
            .with_index(keys::BY_STATUS, "STATUS#pending", "t#1")
            .with_data(
                EntityJson::of(&json!({"a": [1, 2.5, "x", null, true], "empty": ""})).unwrap(),
            )
            .with_attribute("judged", json!(3));
        let raw = to_dynamo(&item).unwrap();
        assert_eq!(
            raw.get("by_status_pk"),
            Some(&AttributeValue::S("STATUS#pending".into()))
        );
        assert!(
            !raw.contains_key("by_type_pk"),
            "absent index keys are not written (sparse indexes)"
        );
        assert_eq!(from_dynamo(raw, &keys::INDEXES).unwrap(), item);
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_rejected() {
        let last = HashMap::from([
            ("PK".to_owned(), AttributeValue::S("a".into())),
            ("SK".to_owned(), AttributeValue::S("b".into())),
        ]);
        assert_eq!(decode_cursor(&encode_cursor(&last).unwrap()).unwrap(), last);
        assert!(decode_cursor(&Cursor("zz".into())).is_err());
        assert!(decode_cursor(&Cursor(hex::encode("{}"))).is_err());
    }
}
