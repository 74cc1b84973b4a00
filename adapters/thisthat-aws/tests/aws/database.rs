//! The DynamoDB database: the database suite against moto, a table per case.

use std::sync::Arc;

use thisthat_aws::DynamoDatabase;
use thisthat_core::{Error, ports::Database};
use thisthat_testkit::fixtures::user;

use crate::support::{moto_config, unique};

/// A database in a fresh table of its own (moto copies the whole table on every write
/// transaction, so small tables also keep the suite fast).
pub async fn database() -> DynamoDatabase {
    let config = moto_config().await;
    let database = DynamoDatabase::from_client(aws_sdk_dynamodb::Client::new(&config), unique("thisthat"));
    database.create_table().await.expect("create table");
    database
}

mod conformance {
    use super::*;
    thisthat_testkit::database_conformance!(async { Arc::new(database().await) });
}

/// Creating the table again for an existing deployment is harmless.
#[tokio::test]
async fn creating_the_table_twice_is_harmless() {
    let database = database().await;
    database.create_table().await.expect("create again");
    assert!(database.endpoints(&user("alice")).await.expect("query").is_empty());
}

/// A table that does not exist is a configuration error that says what to check.
#[tokio::test]
async fn a_missing_table_is_a_configuration_error() {
    let config = moto_config().await;
    let database = DynamoDatabase::from_client(aws_sdk_dynamodb::Client::new(&config), unique("absent"));
    let r = database.endpoints(&user("alice")).await;
    assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
}

/// A competition that would need more ballots than an item holds is refused up front.
#[tokio::test]
async fn thresholds_past_the_item_size_limit_are_refused() {
    let database = database().await;
    let c = thisthat_testkit::fixtures::competition(
        "owner",
        thisthat_core::Status::Open,
        thisthat_aws::MAX_VOTES_TO_CLOSE + 1,
    );
    let r = database.insert_competition(&c).await;
    assert!(matches!(r, Err(Error::Unsupported { .. })), "{r:?}");
    assert!(matches!(database.competition(&c.id).await, Err(Error::NotFound { .. })));
}
