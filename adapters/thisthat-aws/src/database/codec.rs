//! The item codec: how competitions, ballots, notifications and endpoints are stored as
//! DynamoDB items, each field in its native type, and how big a competition's item may grow.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use thisthat_core::{
    BlobKey, Category, Competition, CompetitionId, Device, Endpoint, Entity, Error, Label, Notification, Outcome,
    Photo, PhotoVariant, Result, Standing, Status, Tally, UserId, VoteReceipt,
    adapter::{CountedVote, from_unix_millis, hex, unix_millis},
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

/// Refuses a competition whose item could outgrow DynamoDB's limit before it closes: the
/// competition (its JSON length, a close upper bound of its attributes' size, twice over for
/// the outcome), and a ballot per vote. Without this the closing vote would fail for every voter and it would never close.
pub(super) fn check_fits(c: &Competition) -> Result<()> {
    let fixed = serde_json::to_vec(c)
        .map_err(|e| Error::backend(SERVICE, e))?
        .len()
        .saturating_mul(2)
        .saturating_add(4096);
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
    // Every closed competition recorded its notification with its outcome.
    match item.and_then(|i| i.get("outcome")) {
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
    let mut counts = vec![0u32; number::<usize>(item.get("photo_count"), "photo_count")?];
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

pub(super) fn standing_outcome(item: &Item) -> Result<Option<Outcome>> {
    item.get("outcome").map(outcome_from).transpose()
}

pub(super) fn standing_from(item: &Item) -> Result<Standing> {
    Ok(competition_from(item)?.standing())
}

fn numbers(values: impl IntoIterator<Item = impl ToString>) -> AttributeValue {
    AttributeValue::L(values.into_iter().map(n).collect())
}

fn list<'a>(value: Option<&'a AttributeValue>, what: &str) -> Result<&'a [AttributeValue]> {
    match value {
        Some(AttributeValue::L(values)) => Ok(values),
        _ => Err(corrupt(format!("missing list {what}"))),
    }
}

fn map<'a>(value: &'a AttributeValue, what: &str) -> Result<&'a Item> {
    match value {
        AttributeValue::M(fields) => Ok(fields),
        _ => Err(corrupt(format!("{what} is not a map"))),
    }
}

/// A unit enum stored as its serde name (`MediaType`, `Platform` have no codec of their own).
fn named<T: serde::Serialize>(value: &T) -> Result<AttributeValue> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(s(name)),
        _ => Err(Error::backend(SERVICE, "a name that is not a string")),
    }
}

fn from_name<T: serde::de::DeserializeOwned>(name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| corrupt(format!("unknown name {name:?}")))
}

fn outcome_value(outcome: &Outcome) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("tally".to_owned(), numbers(outcome.tally.counts().iter())),
        ("winners".to_owned(), numbers(outcome.winners.iter())),
    ]))
}

fn outcome_from(value: &AttributeValue) -> Result<Outcome> {
    let fields = map(value, "outcome")?;
    Ok(Outcome {
        tally: tally(fields)?,
        winners: list(fields.get("winners"), "winners")?
            .iter()
            .map(|w| number(Some(w), "winner"))
            .collect::<Result<_>>()?,
    })
}

fn label_value(label: &Label) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("name".to_owned(), s(label.name.as_str())),
        ("confidence".to_owned(), n(label.confidence)),
    ]))
}

fn label_from(value: &AttributeValue) -> Result<Label> {
    let fields = map(value, "label")?;
    Label::new(string(fields, "name")?, number(fields.get("confidence"), "confidence")?)
        .map_err(|e| corrupt(format!("bad label: {e}")))
}

fn variant_value(variant: &PhotoVariant) -> Result<AttributeValue> {
    Ok(AttributeValue::M(HashMap::from([
        ("key".to_owned(), s(variant.key.as_str())),
        ("media_type".to_owned(), named(&variant.media_type)?),
        ("size".to_owned(), n(variant.size)),
        ("width".to_owned(), n(variant.width)),
        ("height".to_owned(), n(variant.height)),
    ])))
}

fn variant_from(value: &AttributeValue) -> Result<PhotoVariant> {
    let fields = map(value, "display variant")?;
    Ok(PhotoVariant {
        key: BlobKey::new(string(fields, "key")?).map_err(|_| corrupt("bad display variant key"))?,
        media_type: from_name(string(fields, "media_type")?)?,
        size: number(fields.get("size"), "display variant size")?,
        width: number(fields.get("width"), "display variant width")?,
        height: number(fields.get("height"), "display variant height")?,
    })
}

fn photo_value(photo: &Photo) -> Result<AttributeValue> {
    let mut fields = HashMap::from([
        ("key".to_owned(), s(photo.key.as_str())),
        ("media_type".to_owned(), named(&photo.media_type)?),
        ("size".to_owned(), n(photo.size)),
        ("width".to_owned(), n(photo.width)),
        ("height".to_owned(), n(photo.height)),
        (
            "labels".to_owned(),
            AttributeValue::L(photo.labels.iter().map(label_value).collect()),
        ),
        ("original_kept".to_owned(), AttributeValue::Bool(photo.original_kept)),
    ]);
    // None is an absent attribute: competitions stored before variants existed have none.
    if let Some(display) = &photo.display {
        fields.insert("display".to_owned(), variant_value(display)?);
    }
    Ok(AttributeValue::M(fields))
}

fn photo_from(value: &AttributeValue) -> Result<Photo> {
    let fields = map(value, "photo")?;
    Ok(Photo {
        key: BlobKey::new(string(fields, "key")?).map_err(|_| corrupt("bad photo key"))?,
        media_type: from_name(string(fields, "media_type")?)?,
        size: number(fields.get("size"), "photo size")?,
        width: number(fields.get("width"), "photo width")?,
        height: number(fields.get("height"), "photo height")?,
        labels: list(fields.get("labels"), "labels")?
            .iter()
            .map(label_from)
            .collect::<Result<_>>()?,
        display: fields.get("display").map(variant_from).transpose()?,
        // Photos stored before the rule existed kept their originals.
        original_kept: match fields.get("original_kept") {
            None => true,
            Some(AttributeValue::Bool(kept)) => *kept,
            Some(_) => return Err(corrupt("original_kept is not a boolean")),
        },
    })
}

/// The item that stores `c`, every field in its native type: strings, numbers, lists and maps
/// (photos with their labels, the outcome). "None" is one way: the attribute is absent (`title`,
/// `outcome`, and `feed` unless open).
pub(super) fn competition_item(c: &Competition) -> Result<Item> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(competition_pk(&c.id))),
        ("sk".to_owned(), s(COMPETITION_SK)),
        ("id".to_owned(), s(c.id.to_string())),
        ("status".to_owned(), s(c.status.as_str())),
        ("owner".to_owned(), s(c.owner.as_str())),
        (
            "photos".to_owned(),
            AttributeValue::L(c.photos.iter().map(photo_value).collect::<Result<_>>()?),
        ),
        ("photo_count".to_owned(), n(c.photos.len())),
        ("tally".to_owned(), numbers(c.tally.counts().iter())),
        ("votes_to_close".to_owned(), n(c.votes_to_close)),
        (
            "remaining".to_owned(),
            n(c.votes_to_close.saturating_sub(c.tally.total())),
        ),
        ("created_at".to_owned(), n(unix_millis(c.created_at))),
        ("ballots".to_owned(), AttributeValue::M(HashMap::new())),
        ("turns".to_owned(), AttributeValue::M(HashMap::new())),
        (
            "categories".to_owned(),
            AttributeValue::L(c.categories.iter().map(|cat| s(cat.as_str())).collect()),
        ),
    ]);
    if let Some(title) = &c.title {
        item.insert("title".to_owned(), s(title));
    }
    // The feed index is sparse: open competitions are the feed, drafts are what the sweep
    // lists; a closed competition leaves it.
    if matches!(c.status, Status::Open | Status::Draft) {
        item.insert("feed".to_owned(), s(c.status.as_str()));
    }
    if let Some(outcome) = &c.outcome {
        item.insert("outcome".to_owned(), outcome_value(outcome));
    }
    Ok(item)
}

/// What the closing vote's update stores as the outcome.
pub(super) fn outcome_attribute(outcome: &Outcome) -> AttributeValue {
    outcome_value(outcome)
}

/// The attributes [`competition_from`] reads, for a projection (`status` and `owner` are
/// reserved words, so they go by `#status` and `#owner`).
pub(super) const COMPETITION_PROJECTION: &str =
    "pk, id, #status, #owner, title, photos, categories, tally, votes_to_close, outcome, created_at";

pub(super) fn competition_from(item: &Item) -> Result<Competition> {
    Ok(Competition {
        id: string(item, "id")?.parse().map_err(|_| corrupt("bad id"))?,
        owner: UserId::new(string(item, "owner")?).map_err(|_| corrupt("bad owner"))?,
        title: match item.get("title") {
            Some(AttributeValue::S(title)) => Some(title.clone()),
            None => None,
            Some(_) => return Err(corrupt("title is not a string")),
        },
        status: Status::from_name(string(item, "status")?).ok_or_else(|| corrupt("unknown status"))?,
        photos: list(item.get("photos"), "photos")?
            .iter()
            .map(photo_from)
            .collect::<Result<_>>()?,
        categories: list(item.get("categories"), "categories")?
            .iter()
            .map(|c| match c {
                AttributeValue::S(name) => Category::new(name).map_err(|_| corrupt("bad category")),
                _ => Err(corrupt("category is not a string")),
            })
            .collect::<Result<_>>()?,
        tally: tally(item)?,
        votes_to_close: number(item.get("votes_to_close"), "votes_to_close")?,
        outcome: standing_outcome(item)?,
        created_at: from_unix_millis(number(item.get("created_at"), "created_at")?)
            .ok_or_else(|| corrupt("created_at out of range"))?,
    })
}

/// The notification a pending competition's item stands for: its closing notification
/// ([`Notification::closing`], from the competition and its outcome) and the devices
/// recorded as reached (`delivered_to`, a string set, absent until one is).
pub(super) fn notification_from(item: &Item) -> Result<Notification> {
    let standing = standing_from(item)?;
    let outcome = standing_outcome(item)?.ok_or_else(|| corrupt("a pending notification without an outcome"))?;
    let mut notification = Notification::closing(&standing, &outcome);
    notification.delivered_to = match item.get("delivered_to") {
        Some(AttributeValue::Ss(devices)) => devices.clone(),
        None => Vec::new(),
        Some(_) => return Err(corrupt("delivered_to is not a string set")),
    };
    Ok(notification)
}

/// The device item for `endpoint`, its fields native strings.
pub(super) fn endpoint_item(endpoint: &Endpoint) -> Result<Item> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(user_pk(&endpoint.device.user))),
        ("sk".to_owned(), s(device_sk(&endpoint.device.token))),
        ("user".to_owned(), s(endpoint.device.user.as_str())),
        ("platform".to_owned(), named(&endpoint.device.platform)?),
        ("token".to_owned(), s(&endpoint.device.token)),
        ("address".to_owned(), s(&endpoint.address)),
    ]))
}

pub(super) fn endpoint_from(item: &Item) -> Result<Endpoint> {
    let user = UserId::new(string(item, "user")?).map_err(|_| corrupt("bad user"))?;
    let device = Device::new(user, from_name(string(item, "platform")?)?, string(item, "token")?)
        .map_err(|e| corrupt(format!("bad device: {e}")))?;
    Ok(Endpoint {
        device,
        address: string(item, "address")?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use thisthat_testkit::fixtures::{competition, user};

    #[test]
    fn a_competition_round_trips_through_its_item() {
        let mut c = competition("owner", Status::Closed, 2);
        c.tally = Tally::from_counts(vec![1, 0, 1]);
        c.outcome = Some(Outcome {
            tally: c.tally.clone(),
            winners: vec![0, 2],
        });
        let item = competition_item(&c).expect("encode");
        assert!(matches!(item.get("photos"), Some(AttributeValue::L(p)) if p.len() == 3));
        assert!(!item.contains_key("feed"), "closed: not in the feed");
        assert_eq!(competition_from(&item).expect("decode"), c);
        let mut untitled = competition("owner", Status::Open, 24);
        untitled.title = None;
        let item = competition_item(&untitled).expect("encode");
        assert!(
            !item.contains_key("title") && !item.contains_key("outcome"),
            "none is absent"
        );
        assert_eq!(competition_from(&item).expect("decode"), untitled);
    }

    #[test]
    fn an_earlier_votes_receipt_counts_the_ballots_up_to_its_turn() {
        let c = competition("owner", Status::Open, 24);
        let mut item = competition_item(&c).expect("encode");
        // a voted 0 with 24 remaining, b 2 with 23, c 0 with 22.
        let ballots = [("a", 0, 24), ("b", 2, 23), ("c", 0, 22)];
        item.insert(
            "ballots".into(),
            AttributeValue::M(
                ballots
                    .iter()
                    .map(|(v, choice, _)| ((*v).to_owned(), ballot(*choice, false)))
                    .collect(),
            ),
        );
        item.insert(
            "turns".into(),
            AttributeValue::M(ballots.iter().map(|(v, _, turn)| ((*v).to_owned(), n(*turn))).collect()),
        );
        let b = earlier_vote(&item, &user("b")).expect("decode").expect("b voted");
        assert_eq!(b.choice, 2);
        let receipt = b.receipt.expect("kept");
        assert_eq!(receipt.tally.counts(), &[1, 0, 1], "a's and b's, not c's");
        assert_eq!(receipt.closed, None);
        assert_eq!(earlier_vote(&item, &user("d")).expect("decode"), None);
    }
}
