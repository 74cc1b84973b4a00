//! The item codec: how competitions, ballots, notifications and endpoints are stored as
//! DynamoDB items, and how big a competition's item may grow.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use thisthat_core::{
    Competition, CompetitionId, Entity, Error, Result, Standing, Status, Tally, UserId, VoteReceipt,
    adapter::{CountedVote, hex},
};

use super::{Item, SERVICE};

pub(super) const PENDING: &str = "pending";

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
pub(super) fn check_fits(c: &Competition) -> Result<()> {
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

pub(super) const COMPETITION_SK: &str = "competition";

pub(super) fn competition_pk(id: &CompetitionId) -> String {
    format!("competition#{id}")
}

pub(super) fn user_pk(user: &UserId) -> String {
    format!("user#{user}")
}

/// Device tokens can be longer than a sort key may be (1 KiB), so the key holds a hash of the
/// token; the token itself is in the stored endpoint.
pub(super) fn device_sk(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    format!("device#{}", hex(&digest))
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn corrupt(message: impl Into<String>) -> Error {
    Error::Backend {
        provider: SERVICE,
        message: format!("a stored item is not as thisthat writes it: {}", message.into()),
        source: None,
    }
}

pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend(SERVICE, e))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(value: &str) -> Result<T> {
    serde_json::from_str(value).map_err(|e| corrupt(e.to_string()))
}

pub(super) fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(corrupt(format!("missing string {name}"))),
    }
}

pub(super) fn tally(item: &Item) -> Result<Tally> {
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
pub(super) fn not_pending(item: Option<&Item>, competition: &CompetitionId) -> Error {
    match item.and_then(|i| i.get("notification")) {
        Some(_) => Error::conflict("the notification was already delivered"),
        None => Error::not_found(Entity::Notification, competition),
    }
}

pub(super) fn has_voted(item: &Item, voter: &UserId) -> bool {
    matches!(item.get("ballots"), Some(AttributeValue::M(ballots)) if ballots.contains_key(voter.as_str()))
}

/// What a vote stores under its voter in `ballots`: the choice, and whether it closed the
/// competition (the outcome itself is on the competition).
pub(super) fn ballot(choice: usize, closed: bool) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("choice".to_owned(), n(choice)),
        ("closed".to_owned(), AttributeValue::Bool(closed)),
    ]))
}

pub(super) fn number<T: std::str::FromStr>(value: Option<&AttributeValue>, what: &str) -> Result<T> {
    match value {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(format!("bad number {what}"))),
        _ => Err(corrupt(format!("missing number {what}"))),
    }
}

/// The voter's earlier vote on the competition `item` holds, with its receipt: the tally after
/// it counts each ballot cast at or before its turn (turns are the votes that remained when a
/// ballot counted, one fewer for each, so they order the ballots exactly), and the outcome if
/// it was the closing vote.
pub(super) fn earlier_vote(item: &Item, voter: &UserId) -> Result<Option<CountedVote>> {
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

pub(super) fn standing_outcome(item: &Item) -> Result<Option<thisthat_core::Outcome>> {
    match item.get("outcome") {
        Some(AttributeValue::S(json)) => Ok(Some(from_json(json)?)),
        _ => Ok(None),
    }
}

pub(super) fn standing_from(item: &Item) -> Result<Standing> {
    Ok(competition_from(item)?.standing())
}

/// The item that stores `c`. Its `body` keeps the parts that never change after publishing;
/// the parts a vote changes are attributes of their own, and win over the body when read.
pub(super) fn competition_item(c: &Competition) -> Result<Item> {
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

pub(super) fn competition_from(item: &Item) -> Result<Competition> {
    let mut c: Competition = from_json(string(item, "body")?)?;
    c.status = Status::from_name(string(item, "status")?).ok_or_else(|| corrupt("unknown status"))?;
    c.tally = tally(item)?;
    c.outcome = match item.get("outcome") {
        Some(AttributeValue::S(json)) => Some(from_json(json)?),
        _ => None,
    };
    Ok(c)
}
