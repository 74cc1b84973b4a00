//! Provisioning: the table and its two sparse indexes.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus,
};
use thisthat_core::{Error, Result};

use super::{DynamoDatabase, SERVICE};
use crate::error;

/// Index of open competitions, newest first, and of drafts, oldest first: partition `feed`
/// (the status, present only while open or a draft), sort `id` (a ULID, so time order).
/// Projects only what the feed filters on, so votes, which change neither, never write to it.
/// The feed reads the `open` partition; the sweep's expired drafts the `draft` one.
pub(super) const FEED_INDEX: &str = "feed";
/// Index of undelivered notifications: partition `pending` (present until delivered).
pub(super) const PENDING_INDEX: &str = "pending";

impl DynamoDatabase {
    /// Creates the table and its two indexes (on-demand billing) and waits until it is active,
    /// for a new deployment or a test. An existing table is left as it is.
    pub async fn create_table(&self) -> Result<()> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::backend(SERVICE, e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| Error::backend(SERVICE, e))
        };
        let index = |name: &str, partition: &str, projection: Projection| -> Result<GlobalSecondaryIndex> {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(partition, KeyType::Hash)?)
                .key_schema(key("id", KeyType::Range)?)
                .projection(projection)
                .build()
                .map_err(|e| Error::backend(SERVICE, e))
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(vec![
                attribute("pk")?,
                attribute("sk")?,
                attribute("feed")?,
                attribute("pending")?,
                attribute("id")?,
            ]))
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index(
                FEED_INDEX,
                "feed",
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes("owner")
                    .non_key_attributes("categories")
                    .build(),
            )?)
            .global_secondary_indexes(index(
                PENDING_INDEX,
                "pending",
                Projection::builder().projection_type(ProjectionType::KeysOnly).build(),
            )?)
            .send()
            .await;
        let existed = match created {
            Ok(_) => false,
            Err(e) if error::code(&e) == Some("ResourceInUseException") => true,
            Err(e) => return Err(error::map(SERVICE, e)),
        };
        for _ in 0..300 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| error::map(SERVICE, e))?;
            let table = described.table();
            if existed {
                // An existing table is only fine if it is this design's.
                let keys: Vec<(&str, &KeyType)> = table
                    .map(|t| {
                        t.key_schema()
                            .iter()
                            .map(|k| (k.attribute_name(), k.key_type()))
                            .collect()
                    })
                    .unwrap_or_default();
                let indexes: Vec<&str> = table
                    .map(|t| {
                        t.global_secondary_indexes()
                            .iter()
                            .filter_map(|i| i.index_name())
                            .collect()
                    })
                    .unwrap_or_default();
                if keys != [("pk", &KeyType::Hash), ("sk", &KeyType::Range)]
                    || !indexes.contains(&FEED_INDEX)
                    || !indexes.contains(&PENDING_INDEX)
                {
                    return Err(Error::config(format!(
                        "table {} exists but is not a thisthat table (keys pk/sk, indexes {FEED_INDEX} and {PENDING_INDEX}): choose another name",
                        self.table
                    )));
                }
            }
            if table.and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(Error::unavailable(
            SERVICE,
            "the table did not become active within 5 minutes",
        ))
    }
}
