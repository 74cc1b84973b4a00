//! The DynamoDB database: the port implementation. Design and reasoning: `docs/aws.md`.
//!
//! One table. A competition is one item, and everything a vote reads or changes lives on it:
//! the standing (status, tally, votes remaining), the ballots (a map from voter to choice, and
//! the turn each counted in), and once closed the outcome and the pending notification.
//!
//! - [`codec`]: items <-> domain values, and the item size rule;
//! - [`schema`]: the table and its indexes (`create_table`);
//! - [`vote`]: the vote algorithm (one conditional `UpdateItem`, two for the closing vote);
//! - this file: the [`Database`] port on top of them.

mod codec;
mod schema;
mod vote;

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    Client,
    operation::{
        delete_item::DeleteItemError,
        put_item::PutItemError,
        update_item::{UpdateItemError, builders::UpdateItemFluentBuilder},
    },
    types::{
        AttributeValue, ConsumedCapacity, KeysAndAttributes, ReturnConsumedCapacity, ReturnValue,
        ReturnValuesOnConditionCheckFailure,
    },
};
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Status, UserId,
    Vote, VoteReceipt,
    adapter::unix_millis,
    layers::bill,
    ports::{Database, NotificationClaim},
};
use tracing::Instrument;

use self::{
    codec::{
        COMPETITION_PROJECTION, COMPETITION_SK, PENDING, check_fits, competition_from, competition_item,
        competition_pk, corrupt, device_sk, endpoint_from, endpoint_item, has_voted, n, not_pending, notification_from,
        s, string, user_pk,
    },
    schema::{FEED_INDEX, PENDING_INDEX},
};
use crate::error;
pub use codec::MAX_VOTES_TO_CLOSE;

const SERVICE: &str = "dynamodb";
type Item = HashMap<String, AttributeValue>;

/// The thisthat database on one DynamoDB table (see the module docs and `docs/aws.md`).
#[derive(Debug, Clone)]
pub struct DynamoDatabase {
    client: Client,
    table: String,
}

impl DynamoDatabase {
    /// The database in `table`, with the given client.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoDatabase {
            client,
            table: table.into(),
        }
    }

    /// The database in `table`, configured from the standard AWS chain.
    pub async fn new(table: impl Into<String>) -> Self {
        Self::from_client(Client::new(&crate::load_config().await), table)
    }

    /// The DynamoDB client, for anything thisthat does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl DynamoDatabase {
    fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::debug_span!("dynamodb", operation, table = %self.table)
    }

    /// An `UpdateItem` on competition `id`'s item.
    fn update(&self, id: &CompetitionId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(competition_pk(id)))
            .key("sk", s(COMPETITION_SK))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
    }

    async fn get(&self, pk: String) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(COMPETITION_SK))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        billed(Capacity::Read, output.consumed_capacity());
        Ok(output.item)
    }

    /// Leases one competition's pending notification if nobody holds it.
    async fn lease(&self, id: &CompetitionId, claim: &NotificationClaim) -> Result<Option<Notification>> {
        let until = claim.now.checked_add(claim.lease).unwrap_or(claim.now);
        let result = self
            .update(id)
            .update_expression("SET #lease = :until")
            .condition_expression("attribute_exists(#pending) AND (attribute_not_exists(#lease) OR #lease <= :now)")
            .expression_attribute_names("#pending", "pending")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":until", n(unix_millis(until)))
            .expression_attribute_values(":now", n(unix_millis(claim.now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional(result)? {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                let item = output.attributes.unwrap_or_default();
                Ok(Some(notification_from(&item)?))
            }
            Err(_) => Ok(None),
        }
    }

    /// The items of `ids` in the order given (missing ones left out), with what the feed needs:
    /// the competition, and of the ballots only `viewer`'s (a whole ballot map may be large).
    async fn competitions(&self, ids: &[CompetitionId], viewer: Option<&UserId>) -> Result<Vec<Item>> {
        let mut found: HashMap<String, Item> = HashMap::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        ("pk".to_owned(), s(competition_pk(id))),
                        ("sk".to_owned(), s(COMPETITION_SK)),
                    ])
                })
                .collect();
            let mut projection = COMPETITION_PROJECTION.to_owned();
            let mut names = HashMap::from([
                ("#status".to_owned(), "status".to_owned()),
                ("#owner".to_owned(), "owner".to_owned()),
            ]);
            if let Some(viewer) = viewer {
                projection.push_str(", ballots.#viewer");
                names.insert("#viewer".to_owned(), viewer.as_str().to_owned());
            }
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .projection_expression(projection)
                    .set_expression_attribute_names(Some(names))
                    .build()
                    .map_err(|e| Error::backend(SERVICE, e))?,
            );
            // BatchGetItem may hand back part of the keys as unprocessed under load; ask again
            // for those, backing off as AWS advises, until none are left.
            let mut round = 0u32;
            while let Some(keys) = request.take() {
                if round > 0 {
                    if round > 8 {
                        // The SDK already retried each request; retrying this loop again
                        // from outside would multiply the attempts.
                        return Err(Error::Busy {
                            provider: SERVICE,
                            attempts: round,
                            source: None,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25 << round.min(6))).await;
                }
                round += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                for consumed in output.consumed_capacity() {
                    billed(Capacity::Read, Some(consumed));
                }
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.insert(string(&item, "pk")?.to_owned(), item);
                }
                request = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(&competition_pk(id))).collect())
    }
}

/// Whether a request reads or writes, for a `ConsumedCapacity` that gives only its total.
#[derive(Debug, Clone, Copy)]
pub(super) enum Capacity {
    Read,
    Write,
}

/// Reports what DynamoDB said one request consumed (every request asks for
/// `ReturnConsumedCapacity::Total`): read and write units under the price keys
/// `dynamodb.read_unit` and `dynamodb.write_unit`. On demand, a request unit bills what a
/// capacity unit measures. A total without its read/write split (GetItem, Query, PutItem… give
/// only `CapacityUnits`) is the request's own kind.
///
/// A conditional write DynamoDB refused is billed too, but its error carries no
/// `ConsumedCapacity`: the adapter cannot know it, and reports nothing for it (docs/aws.md).
pub(super) fn billed(kind: Capacity, consumed: Option<&ConsumedCapacity>) {
    let Some(consumed) = consumed else { return };
    let (read, write) = match (consumed.read_capacity_units, consumed.write_capacity_units) {
        (None, None) => match kind {
            Capacity::Read => (consumed.capacity_units, None),
            Capacity::Write => (None, consumed.capacity_units),
        },
        split => split,
    };
    bill("dynamodb.read_unit", read.unwrap_or(0.0));
    bill("dynamodb.write_unit", write.unwrap_or(0.0));
}

/// A conditional update's answer: `Ok(Ok(output))` if it was applied, `Ok(Err(item))` if its
/// condition refused it (`item`: the item as it was, when the update asked for it), and the
/// mapped error for anything else.
fn conditional<O>(
    result: std::result::Result<O, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<std::result::Result<O, Option<Item>>> {
    match result {
        Ok(output) => Ok(Ok(output)),
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(refused)) => Ok(Err(refused.item.clone())),
            _ => Err(error::map(SERVICE, e)),
        },
    }
}

#[async_trait]
impl Database for DynamoDatabase {
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        check_fits(competition)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(competition_item(competition)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(self.span("insert_competition"))
            .await;
        match result {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Err(Error::conflict(format!(
                    "competition {} already exists",
                    competition.id
                ))),
                _ => Err(error::map(SERVICE, e)),
            },
        }
    }

    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        check_fits(competition)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(competition_item(competition)?))
            .condition_expression("#status = :draft")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":draft", s(Status::Draft.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(self.span("publish_competition"))
            .await;
        match result {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => Err(match refused.item {
                    Some(_) => Error::conflict("the competition is no longer a draft"),
                    None => Error::not_found(Entity::Competition, competition.id),
                }),
                _ => Err(error::map(SERVICE, e)),
            },
        }
    }

    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(competition_pk(id)))
            .key("sk", s(COMPETITION_SK))
            .condition_expression("attribute_not_exists(pk) OR #status = :draft")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":draft", s(Status::Draft.as_str()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(self.span("delete_draft"))
            .await;
        match result {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                Ok(())
            }
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::conflict("only drafts can be deleted"))
                }
                _ => Err(error::map(SERVICE, e)),
            },
        }
    }

    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        async {
            let bound = CompetitionId::first_at(before);
            let mut drafts = Vec::new();
            let mut start = None;
            while drafts.len() < limit {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(FEED_INDEX)
                    .key_condition_expression("#feed = :draft AND #id < :bound")
                    .expression_attribute_names("#feed", "feed")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":draft", s(Status::Draft.as_str()))
                    .expression_attribute_values(":bound", s(bound.to_string()))
                    .limit(i32::try_from(limit - drafts.len()).unwrap_or(i32::MAX))
                    .set_exclusive_start_key(start.take())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                billed(Capacity::Read, output.consumed_capacity());
                for item in output.items() {
                    let id = item
                        .get("id")
                        .and_then(|v| v.as_s().ok())
                        .ok_or_else(|| Error::backend(SERVICE, "a feed index entry without an id"))?;
                    drafts.push(id.parse()?);
                }
                match output.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
            Ok(drafts)
        }
        .instrument(self.span("expired_drafts"))
        .await
    }

    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let item = self
            .get(competition_pk(id))
            .instrument(self.span("competition"))
            .await?
            .ok_or_else(|| Error::not_found(Entity::Competition, id))?;
        competition_from(&item)
    }

    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        self.vote(vote).instrument(self.span("cast_vote")).await
    }

    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        async {
            let mut filters = Vec::new();
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(FEED_INDEX)
                .key_condition_expression("#feed = :open")
                .expression_attribute_names("#feed", "feed")
                .expression_attribute_values(":open", s(Status::Open.as_str()))
                .scan_index_forward(false)
                .limit(i32::try_from(query.limit * 2).unwrap_or(200))
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if let Some(viewer) = &query.viewer {
                filters.push("#owner <> :viewer");
                request = request
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":viewer", s(viewer.as_str()));
            }
            if let Some(category) = &query.category {
                filters.push("contains(#categories, :category)");
                request = request
                    .expression_attribute_names("#categories", "categories")
                    .expression_attribute_values(":category", s(category.as_str()));
            }
            if !filters.is_empty() {
                request = request.filter_expression(filters.join(" AND "));
            }
            let mut start = query.cursor.map(|cursor| {
                let id = cursor.last_seen();
                HashMap::from([
                    ("pk".to_owned(), s(competition_pk(&id))),
                    ("sk".to_owned(), s(COMPETITION_SK)),
                    ("feed".to_owned(), s(Status::Open.as_str())),
                    ("id".to_owned(), s(id.to_string())),
                ])
            });
            let mut page = Vec::new();
            loop {
                let output = request
                    .clone()
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                billed(Capacity::Read, output.consumed_capacity());
                let ids = output
                    .items()
                    .iter()
                    .map(|item| string(item, "id")?.parse().map_err(|_| corrupt("bad id")))
                    .collect::<Result<Vec<CompetitionId>>>()?;
                // The index is eventually consistent and holds only keys and filter fields:
                // read the items themselves, and check them again against the query.
                for item in self.competitions(&ids, query.viewer.as_ref()).await? {
                    let competition = competition_from(&item)?;
                    let voted = query.viewer.as_ref().is_some_and(|v| has_voted(&item, v));
                    if query.admits(&competition) && !voted {
                        page.push(competition);
                    }
                }
                start = output.last_evaluated_key;
                if page.len() > query.limit || start.is_none() {
                    break;
                }
            }
            Ok(FeedPage::from_one_too_many(page, query.limit))
        }
        .instrument(self.span("feed"))
        .await
    }

    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        async {
            if claim.limit == 0 {
                return Ok(Vec::new());
            }
            if let Some(id) = &claim.competition {
                return Ok(self.lease(id, claim).await?.into_iter().collect());
            }
            let mut claimed = Vec::new();
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(PENDING_INDEX)
                    .key_condition_expression("#pending = :pending")
                    .expression_attribute_names("#pending", "pending")
                    .expression_attribute_values(":pending", s(PENDING))
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                billed(Capacity::Read, output.consumed_capacity());
                for item in output.items() {
                    if claimed.len() >= claim.limit {
                        return Ok(claimed);
                    }
                    // One bad or unreachable notification must not hold up the others, nor lose
                    // the leases already taken in this claim (they would sit out their lease).
                    let leased = match string(item, "id")?.parse::<CompetitionId>() {
                        Ok(id) => self.lease(&id, claim).await,
                        Err(_) => Err(corrupt("bad id")),
                    };
                    match leased {
                        Ok(Some(notification)) => claimed.push(notification),
                        Ok(None) => {}
                        Err(e) if claimed.is_empty() && e.is_retryable() => return Err(e),
                        Err(e) => {
                            tracing::warn!(error = %e, "skipped a pending notification that could not be leased");
                        }
                    }
                }
                start = output.last_evaluated_key;
                if start.is_none() || claimed.len() >= claim.limit {
                    return Ok(claimed);
                }
            }
        }
        .instrument(self.span("claim_notifications"))
        .await
    }

    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let request = self.update(competition);
        let request = if devices.is_empty() {
            // A string set cannot be empty: check the notification without changing it.
            request.update_expression("SET #pending = #pending")
        } else {
            request
                .update_expression("ADD #delivered_to :devices")
                .expression_attribute_names("#delivered_to", "delivered_to")
                .expression_attribute_values(":devices", AttributeValue::Ss(devices.to_vec()))
        };
        let result = request
            .condition_expression("attribute_exists(#pending)")
            .expression_attribute_names("#pending", "pending")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(self.span("record_deliveries"))
            .await;
        match conditional(result)? {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                Ok(())
            }
            Err(item) => Err(not_pending(item.as_ref(), competition)),
        }
    }

    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()> {
        let result = self
            .update(competition)
            .update_expression("SET #delivered = :at REMOVE #pending, #lease")
            .condition_expression("attribute_exists(#pending)")
            .expression_attribute_names("#pending", "pending")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_names("#delivered", "delivered_at")
            .expression_attribute_values(":at", n(unix_millis(at)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(self.span("complete_notification"))
            .await;
        match conditional(result)? {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                Ok(())
            }
            Err(item) => Err(not_pending(item.as_ref(), competition)),
        }
    }

    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(endpoint_item(endpoint)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(self.span("save_endpoint"))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        billed(Capacity::Write, output.consumed_capacity());
        Ok(())
    }

    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        async {
            let mut endpoints = Vec::new();
            let mut start = None;
            loop {
                let output = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :device)")
                    .expression_attribute_values(":pk", s(user_pk(user)))
                    .expression_attribute_values(":device", s("device#"))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                billed(Capacity::Read, output.consumed_capacity());
                for item in output.items() {
                    endpoints.push(endpoint_from(item)?);
                }
                start = output.last_evaluated_key;
                if start.is_none() {
                    return Ok(endpoints);
                }
            }
        }
        .instrument(self.span("endpoints"))
        .await
    }

    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s(device_sk(token)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .instrument(self.span("delete_endpoint"))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        billed(Capacity::Write, output.consumed_capacity());
        Ok(())
    }

    /// Exposes the adapter and its DynamoDB client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
