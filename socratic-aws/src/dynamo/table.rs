//! Provisioning the table: its key schema and its sparse global indexes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use socratic_core::store::{Index, StoreError};

use super::{PK, SK, failure};
use crate::error::classify;

/// Creates the table with a global index for each of `indexes` (on-demand billing; the key
/// schema's are `socratic_core::keys::INDEXES`) and waits until it is active.
pub async fn create_table(
    client: &Client,
    table: &str,
    indexes: &[Index],
) -> Result<(), StoreError> {
    let string_attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::InvalidRequest {
                message: e.to_string(),
            })
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::InvalidRequest {
                message: e.to_string(),
            })
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attr(PK)?)
        .attribute_definitions(string_attr(SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?);
    for index in indexes {
        request = request
            .attribute_definitions(string_attr(index.pk_attribute())?)
            .attribute_definitions(string_attr(index.sk_attribute())?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name())
                    .key_schema(key(index.pk_attribute(), KeyType::Hash)?)
                    .key_schema(key(index.sk_attribute(), KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(|e| StoreError::InvalidRequest {
                        message: e.to_string(),
                    })?,
            );
    }
    request
        .send()
        .await
        .map_err(|e| failure(&classify(&e), None))?;
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| failure(&classify(&e), None))?;
        let active = described
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| s.as_str() == "ACTIVE");
        if active {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(StoreError::Unavailable {
        message: format!("table {table} did not become active"),
    })
}
