//! Table definitions (the key schema of `mod.rs`) and `ensure_tables` for local servers and
//! tests. Deployed stacks declare the same tables in their template.

use super::DynamoTables;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus,
};
use aws_sdk_dynamodb::Client;
use std::time::Duration;

/// A table's shape: its key attributes and its GSIs `(name, partition attr, sort attr)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub gsis: Vec<(&'static str, &'static str, &'static str)>,
}

/// The two tables: config (`gsi1`: tenants, runs by start) and data (`gsi2`: a company's
/// activity by day; values carry no index entry). Both keyed `pk`, `sk`.
pub fn specs(tables: &DynamoTables) -> [TableSpec; 2] {
    [
        TableSpec {
            name: tables.config.clone(),
            gsis: vec![("gsi1", "gpk", "gsk")],
        },
        TableSpec {
            name: tables.data.clone(),
            gsis: vec![("gsi2", "cpk", "csk")],
        },
    ]
}

fn err(what: &str, e: impl Into<crate::error::Cause>) -> StoreError {
    StoreError::unavailable_from(what, e)
}

fn attr(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| err("attribute definition", e))
}

fn key_schema(pk: &str, sk: &str) -> Result<Vec<KeySchemaElement>, StoreError> {
    [(pk, KeyType::Hash), (sk, KeyType::Range)]
        .into_iter()
        .map(|(n, k)| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(k)
                .build()
                .map_err(|e| err("key schema", e))
        })
        .collect()
}

/// Creates the tables if they do not exist (on-demand billing) and waits until they are active.
///
/// # Errors
/// `Unavailable` when a table cannot be created or does not become active within a minute.
pub async fn ensure_tables(client: &Client, tables: &DynamoTables) -> Result<(), StoreError> {
    for spec in specs(tables) {
        let mut create = client
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?);
        for (index, pk, sk) in &spec.gsis {
            create = create
                .attribute_definitions(attr(pk)?)
                .attribute_definitions(attr(sk)?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(*index)
                        .set_key_schema(Some(key_schema(pk, sk)?))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(|e| err("index definition", e))?,
                );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) => {}
            Err(e) => return Err(err(&format!("create table {}", spec.name), e)),
        }
        wait_active(client, &spec.name).await?;
    }
    Ok(())
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| err(&format!("describe table {table}"), e))?;
        if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::unavailable(format!(
        "table {table} did not become active within a minute"
    )))
}
