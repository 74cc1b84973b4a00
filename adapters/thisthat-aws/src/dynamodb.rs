//! The DynamoDB database. Design and reasoning: `docs/aws.md`.
//!
//! One table. A competition is one item, and everything a vote reads or changes lives on it:
//! the standing (status, tally, votes remaining), the votes cast (a map from voter to
//! choice), and once closed the outcome and the pending notification. A vote is therefore one
//! conditional `UpdateItem` whose condition is the domain's rules (open, not the owner, not
//! voted yet, a real photo, not the closing vote) and which returns the new tally. The closing
//! vote is the one whose blind attempt is refused because a single vote remains: the refusal
//! carries the item (`ReturnValuesOnConditionCheckFailure`), the adapter computes the outcome
//! with [`Standing::apply`], and a second `UpdateItem`, conditioned on exactly that state,
//! counts the vote, closes the competition, stores the outcome and records the pending
//! notification at once.

use std::{
    collections::HashMap,
    sync::Mutex,
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
        AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        KeysAndAttributes, Projection, ProjectionType, ReturnValue, ReturnValuesOnConditionCheckFailure,
        ScalarAttributeType, TableStatus,
    },
};
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Standing, Status,
    Tally, UserId, Vote, VoteReceipt,
    adapter::{Attempt, CountedVote, VoteDecision, contention_policy, decide_vote, hex, race, unix_millis},
    ports::{Database, NotificationClaim},
};
use tracing::Instrument;

use crate::error;

const SERVICE: &str = "dynamodb";
type Item = HashMap<String, AttributeValue>;

/// Index of open competitions, newest first: partition `feed` (present only while open),
/// sort `id` (a ULID, so time order). Projects only what the feed filters on, so votes, which
/// change neither, never write to it.
const FEED_INDEX: &str = "feed";
/// Index of undelivered notifications: partition `pending` (present until delivered).
const PENDING_INDEX: &str = "pending";
const PENDING: &str = "pending";
/// A vote's choice is written into the update expression as a list index, so an absurd one
/// is never sent: it is checked against the stored photo count after a read instead.
const MAX_INDEX_IN_EXPRESSION: usize = 64;

/// The most votes a competition may need to close here. Every ballot lives on the competition's
/// item (the voter id, up to 128 bytes, twice: in `ballots` and in `turns`), and an item holds
/// at most 400 KB; a competition with a long title or many photos may be held to fewer (see
/// `check_fits`).
pub const MAX_VOTES_TO_CLOSE: u32 = 1_200;
/// DynamoDB's item size limit.
const ITEM_LIMIT: usize = 400 * 1024;
/// The most one ballot takes: a voter id of up to 128 bytes in `ballots` and again in `turns`,
/// the choice, the closed flag, the turn, and DynamoDB's per-attribute overhead.
const BALLOT_BYTES: usize = 300;

/// Refuses a competition whose item could outgrow DynamoDB's limit before it closes: the body,
/// at the close the outcome and notification (each smaller than the body), and a ballot per
/// vote. Without this the closing vote would fail for every voter and it would never close.
fn check_fits(c: &Competition) -> Result<()> {
    let fixed = to_json(c)?.len().saturating_mul(3).saturating_add(4096);
    let ballots = (c.votes_to_close as usize).saturating_mul(BALLOT_BYTES);
    if c.votes_to_close > MAX_VOTES_TO_CLOSE || fixed.saturating_add(ballots) > ITEM_LIMIT {
        return Err(Error::Unsupported {
            adapter: "dynamodb",
            operation: "a competition whose ballots would outgrow a 400 KB item (at most 1,200 votes to close, fewer with long titles or many photos)",
        });
    }
    Ok(())
}

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
    }

    async fn get(&self, pk: String) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(COMPETITION_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        Ok(output.item)
    }

    /// Tries to count `vote` as one that does not close the competition. `Err(item)` is the
    /// competition as it was when the condition failed (`None`: there is none).
    ///
    /// The ballot's turn is copied from `remaining` by the update itself: DynamoDB reads every
    /// operand of an update from the item as it was before it, so the turn is the number of
    /// votes that remained when this one counted, which is what makes its receipt
    /// recoverable later ([`earlier_vote`]).
    async fn count(&self, vote: &Vote) -> Result<std::result::Result<VoteReceipt, Option<Item>>> {
        let index = vote.choice;
        let result = self
            .update(&vote.competition)
            .update_expression(format!(
                "SET #ballots.#voter = :ballot, #turns.#voter = #remaining, #tally[{index}] = #tally[{index}] + :one, \
                 #remaining = #remaining - :one"
            ))
            .condition_expression(
                "#status = :open AND #owner <> :voter AND attribute_not_exists(#ballots.#voter) \
                 AND #remaining > :one AND #photos > :choice",
            )
            .expression_attribute_names("#tally", "tally")
            .expression_attribute_names("#ballots", "ballots")
            .expression_attribute_names("#turns", "turns")
            .expression_attribute_names("#voter", vote.voter.as_str())
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#photos", "photos")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":choice", n(index))
            .expression_attribute_values(":ballot", ballot(index, false))
            .expression_attribute_values(":open", s(Status::Open.as_str()))
            .expression_attribute_values(":voter", s(vote.voter.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional(result)? {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                Ok(Ok(VoteReceipt {
                    tally: tally(&item)?,
                    closed: None,
                }))
            }
            Err(item) => Ok(Err(item)),
        }
    }

    /// Counts the closing vote, closes the competition, stores its outcome and records the
    /// pending notification, on condition that one vote remains (no other vote can then have
    /// changed the tally the outcome was computed from). `Err(item)` as in
    /// [`DynamoDatabase::count`].
    async fn close(
        &self,
        vote: &Vote,
        receipt: &VoteReceipt,
        notification: &Notification,
    ) -> Result<std::result::Result<(), Option<Item>>> {
        let index = vote.choice;
        let outcome = receipt
            .closed
            .as_ref()
            .ok_or_else(|| Error::backend(SERVICE, "a closing vote's receipt has no outcome"))?;
        let result = self
            .update(&vote.competition)
            .update_expression(format!(
                "SET #tally[{index}] = #tally[{index}] + :one, #ballots.#voter = :ballot, #turns.#voter = :one, \
                 #remaining = :zero, #status = :closed, #outcome = :outcome, #notification = :notification, \
                 #pending = :pending REMOVE #feed"
            ))
            .condition_expression(
                "#status = :open AND #owner <> :voter AND attribute_not_exists(#ballots.#voter) AND #remaining = :one",
            )
            .expression_attribute_names("#tally", "tally")
            .expression_attribute_names("#ballots", "ballots")
            .expression_attribute_names("#turns", "turns")
            .expression_attribute_names("#voter", vote.voter.as_str())
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#notification", "notification")
            .expression_attribute_names("#pending", "pending")
            .expression_attribute_names("#feed", "feed")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ballot", ballot(index, true))
            .expression_attribute_values(":open", s(Status::Open.as_str()))
            .expression_attribute_values(":closed", s(Status::Closed.as_str()))
            .expression_attribute_values(":voter", s(vote.voter.as_str()))
            .expression_attribute_values(":outcome", s(to_json(outcome)?))
            .expression_attribute_values(":notification", s(to_json(notification)?))
            .expression_attribute_values(":pending", s(PENDING))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(conditional(result)?.map(|_| ()))
    }

    /// One attempt at a vote (see [`race`]): the blind count, or, when it was refused, the one
    /// decision ([`decide_vote`]) on the item it was refused on, and the close if it closes.
    /// `known` carries a refused close's item to the next attempt, which then decides on it
    /// instead of asking again.
    async fn try_vote(&self, vote: &Vote, known: &Mutex<Option<Option<Item>>>) -> Result<Attempt<VoteReceipt>> {
        let carried = known.lock().map(|mut k| k.take()).unwrap_or_default();
        let item = match carried {
            Some(item) => item,
            None if vote.choice < MAX_INDEX_IN_EXPRESSION => match self.count(vote).await? {
                Ok(receipt) => return Ok(Attempt::Done(receipt)),
                Err(item) => item,
            },
            None => self.get(competition_pk(&vote.competition)).await?,
        };
        let (standing, earlier) = match &item {
            Some(item) => (Some(standing_from(item)?), earlier_vote(item, &vote.voter)?),
            None => (None, None),
        };
        match decide_vote(vote, standing, earlier)? {
            VoteDecision::Repeat(receipt) => Ok(Attempt::Done(receipt)),
            VoteDecision::Count {
                receipt,
                notification: Some(notification),
                ..
            } => match self.close(vote, &receipt, &notification).await? {
                Ok(()) => Ok(Attempt::Done(receipt)),
                Err(refused) => {
                    if let Ok(mut k) = known.lock() {
                        *k = Some(refused);
                    }
                    Ok(Attempt::LostRace)
                }
            },
            VoteDecision::Count { .. } if vote.choice >= MAX_INDEX_IN_EXPRESSION => Err(Error::Unsupported {
                adapter: "dynamodb",
                operation: "votes on a competition of more than 64 photos",
            }),
            // The rules allow a vote the blind count refused: the competition changed between
            // the two (it cannot, since the refusal carries the state it was refused on, but
            // trying again is the safe answer).
            VoteDecision::Count { .. } => Ok(Attempt::LostRace),
        }
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
                let item = output.attributes.unwrap_or_default();
                let mut notification: Notification = from_json(string(&item, "notification")?)?;
                notification.delivered_to = match item.get("delivered_to") {
                    Some(AttributeValue::Ss(devices)) => devices.clone(),
                    _ => Vec::new(),
                };
                Ok(Some(notification))
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
            let mut projection = "pk, body, #status, tally, outcome".to_owned();
            let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
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
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
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

const COMPETITION_SK: &str = "competition";

fn competition_pk(id: &CompetitionId) -> String {
    format!("competition#{id}")
}

fn user_pk(user: &UserId) -> String {
    format!("user#{user}")
}

/// Device tokens can be longer than a sort key may be (1 KiB), so the key holds a hash of the
/// token; the token itself is in the stored endpoint.
fn device_sk(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    format!("device#{}", hex(&digest))
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

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(message: impl Into<String>) -> Error {
    Error::Backend {
        provider: SERVICE,
        message: format!("a stored item is not as thisthat writes it: {}", message.into()),
        source: None,
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend(SERVICE, e))
}

fn from_json<T: serde::de::DeserializeOwned>(value: &str) -> Result<T> {
    serde_json::from_str(value).map_err(|e| corrupt(e.to_string()))
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(corrupt(format!("missing string {name}"))),
    }
}

fn tally(item: &Item) -> Result<Tally> {
    match item.get("tally") {
        Some(AttributeValue::L(counts)) => counts
            .iter()
            .map(|c| match c {
                AttributeValue::N(v) => v.parse::<u32>().map_err(|_| corrupt("bad tally count")),
                _ => Err(corrupt("bad tally count")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Tally::from_counts),
        _ => Err(corrupt("missing tally")),
    }
}

/// Why a notification update that needs a pending notification was refused, from the item
/// it was refused on: delivered already, or never recorded.
fn not_pending(item: Option<&Item>, competition: &CompetitionId) -> Error {
    match item.and_then(|i| i.get("notification")) {
        Some(_) => Error::conflict("the notification was already delivered"),
        None => Error::not_found(Entity::Notification, competition),
    }
}

fn has_voted(item: &Item, voter: &UserId) -> bool {
    matches!(item.get("ballots"), Some(AttributeValue::M(ballots)) if ballots.contains_key(voter.as_str()))
}

/// What a vote stores under its voter in `ballots`: the choice, and whether it closed the
/// competition (the outcome itself is on the competition).
fn ballot(choice: usize, closed: bool) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("choice".to_owned(), n(choice)),
        ("closed".to_owned(), AttributeValue::Bool(closed)),
    ]))
}

fn number<T: std::str::FromStr>(value: Option<&AttributeValue>, what: &str) -> Result<T> {
    match value {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(format!("bad number {what}"))),
        _ => Err(corrupt(format!("missing number {what}"))),
    }
}

/// The voter's earlier vote on the competition `item` holds, with its receipt: the tally after
/// it counts each ballot cast at or before its turn (turns are the votes that remained when a
/// ballot counted, one fewer for each, so they order the ballots exactly), and the outcome if
/// it was the closing vote.
fn earlier_vote(item: &Item, voter: &UserId) -> Result<Option<CountedVote>> {
    let Some(AttributeValue::M(ballots)) = item.get("ballots") else {
        return Ok(None);
    };
    let Some(AttributeValue::M(mine)) = ballots.get(voter.as_str()) else {
        return Ok(None);
    };
    let choice: usize = number(mine.get("choice"), "ballot choice")?;
    let turns = match item.get("turns") {
        Some(AttributeValue::M(turns)) => turns,
        _ => return Err(corrupt("missing turns")),
    };
    let turn = |voter: &str| number::<u32>(turns.get(voter), "turn");
    let my_turn = turn(voter.as_str())?;
    let mut counts = vec![0u32; number::<usize>(item.get("photos"), "photos")?];
    for (other, ballot) in ballots {
        let AttributeValue::M(ballot) = ballot else {
            return Err(corrupt("bad ballot"));
        };
        if turn(other)? >= my_turn {
            let chosen: usize = number(ballot.get("choice"), "ballot choice")?;
            let count = counts
                .get_mut(chosen)
                .ok_or_else(|| corrupt("ballot choice out of range"))?;
            *count += 1;
        }
    }
    let closed = match mine.get("closed") {
        Some(AttributeValue::Bool(true)) => {
            Some(standing_outcome(item)?.ok_or_else(|| corrupt("closed without outcome"))?)
        }
        Some(AttributeValue::Bool(false)) => None,
        _ => return Err(corrupt("bad ballot closed flag")),
    };
    Ok(Some(CountedVote {
        choice,
        receipt: Some(VoteReceipt {
            tally: Tally::from_counts(counts),
            closed,
        }),
    }))
}

fn standing_outcome(item: &Item) -> Result<Option<thisthat_core::Outcome>> {
    match item.get("outcome") {
        Some(AttributeValue::S(json)) => Ok(Some(from_json(json)?)),
        _ => Ok(None),
    }
}

fn standing_from(item: &Item) -> Result<Standing> {
    Ok(competition_from(item)?.standing())
}

/// The item that stores `c`. Its `body` keeps the parts that never change after publishing;
/// the parts a vote changes are attributes of their own, and win over the body when read.
fn competition_item(c: &Competition) -> Result<Item> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(competition_pk(&c.id))),
        ("sk".to_owned(), s(COMPETITION_SK)),
        ("id".to_owned(), s(c.id.to_string())),
        ("body".to_owned(), s(to_json(c)?)),
        ("status".to_owned(), s(c.status.as_str())),
        ("owner".to_owned(), s(c.owner.as_str())),
        ("photos".to_owned(), n(c.photos.len())),
        (
            "tally".to_owned(),
            AttributeValue::L(c.tally.counts().iter().map(|v| n(*v)).collect()),
        ),
        (
            "remaining".to_owned(),
            n(c.votes_to_close.saturating_sub(c.tally.total())),
        ),
        ("ballots".to_owned(), AttributeValue::M(HashMap::new())),
        ("turns".to_owned(), AttributeValue::M(HashMap::new())),
        (
            "categories".to_owned(),
            AttributeValue::L(c.categories.iter().map(|cat| s(cat.as_str())).collect()),
        ),
    ]);
    if c.status == Status::Open {
        item.insert("feed".to_owned(), s(Status::Open.as_str()));
    }
    if let Some(outcome) = &c.outcome {
        item.insert("outcome".to_owned(), s(to_json(outcome)?));
    }
    Ok(item)
}

fn competition_from(item: &Item) -> Result<Competition> {
    let mut c: Competition = from_json(string(item, "body")?)?;
    c.status = Status::from_name(string(item, "status")?).ok_or_else(|| corrupt("unknown status"))?;
    c.tally = tally(item)?;
    c.outcome = match item.get("outcome") {
        Some(AttributeValue::S(json)) => Some(from_json(json)?),
        _ => None,
    };
    Ok(c)
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
            .send()
            .instrument(self.span("insert_competition"))
            .await;
        match result {
            Ok(_) => Ok(()),
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
            .send()
            .instrument(self.span("publish_competition"))
            .await;
        match result {
            Ok(_) => Ok(()),
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
            .send()
            .instrument(self.span("delete_draft"))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::conflict("only drafts can be deleted"))
                }
                _ => Err(error::map(SERVICE, e)),
            },
        }
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
        let known = Mutex::new(None);
        race(SERVICE, &contention_policy(), || self.try_vote(vote, &known))
            .instrument(self.span("cast_vote"))
            .await
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
                .limit(i32::try_from(query.limit * 2).unwrap_or(200));
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
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
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
            Ok(_) => Ok(()),
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
            Ok(_) => Ok(()),
            Err(item) => Err(not_pending(item.as_ref(), competition)),
        }
    }

    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(user_pk(&endpoint.device.user)))
            .item("sk", s(device_sk(&endpoint.device.token)))
            .item("endpoint", s(to_json(endpoint)?))
            .send()
            .instrument(self.span("save_endpoint"))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
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
                    .send()
                    .await
                    .map_err(|e| error::map(SERVICE, e))?;
                for item in output.items() {
                    endpoints.push(from_json(string(item, "endpoint")?)?);
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
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s(device_sk(token)))
            .send()
            .instrument(self.span("delete_endpoint"))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        Ok(())
    }
}
