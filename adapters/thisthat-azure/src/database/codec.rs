//! The entities' codec: keys, and the competition, vote, notification, feed and device entities
//! to and from the domain's types, each field a property of its own in a native Edm type. No
//! requests here (the port is `mod.rs`, the vote `vote.rs`).
//!
//! Table Storage has strings, 32- and 64-bit integers, doubles, booleans and times, but no list
//! or map. So a list of numbers or strings is numbered properties (`Tally0`, `Tally1`, ...), a
//! set is one Boolean property per member (`DeliveredTo_{key}`, a feed entry's
//! `Category_{name}`), and "none" is always an absent property. The one exception is the photos
//! with their labels, one JSON document property (`Photos`): `docs/azure.md` says why.

use super::*;

/// Most properties an entity holds besides PartitionKey, RowKey and Timestamp (255 in all).
pub(super) const MAX_PROPERTIES: usize = 252;
/// Most UTF-16 code units a string property holds (64 KiB).
const MAX_STRING_UNITS: usize = 32 * 1024;
/// The latest time an `Edm.DateTime` holds, 9999-12-31T23:59:59.999Z, in Unix milliseconds.
const MAX_DATETIME_MILLIS: i64 = 253_402_300_799_999;

// The competition entity (and, for the same fields, the notification entity).
pub(super) const OWNER: &str = "Owner";
pub(super) const TITLE: &str = "Title";
pub(super) const STATUS: &str = "Status";
pub(super) const PHOTO_COUNT: &str = "PhotoCount";
pub(super) const VOTES_TO_CLOSE: &str = "VotesToClose";
pub(super) const CREATED_AT: &str = "CreatedAt";
pub(super) const PHOTOS: &str = "Photos";
/// `Category0`, `Category1`, ...: the categories in order, most confident first.
const CATEGORY: &str = "Category";
/// `Tally0`, `Tally1`, ...: votes per photo (also the receipt on a vote row).
const TALLY: &str = "Tally";
/// `OutcomeTally0`, ...: the outcome's tally.
const OUTCOME_TALLY: &str = "OutcomeTally";
/// How many winners the outcome has; present exactly when there is an outcome.
const WINNER_COUNT: &str = "WinnerCount";
/// `Winner0`, `Winner1`, ...: the winning photos' indexes.
const WINNER: &str = "Winner";
// The notification entity's bookkeeping.
pub(super) const DELIVERED: &str = "Delivered";
pub(super) const DELIVERED_AT: &str = "DeliveredAt";
pub(super) const LEASE_UNTIL: &str = "LeaseUntil";
// The feed entry.
pub(super) const ID: &str = "Id";
/// The prefix of a feed entry's one-Boolean-per-category properties.
const IN_CATEGORY: &str = "Category_";
/// The prefix of a category's property when its readable name is too long for a property name.
const IN_CATEGORY_HASHED: &str = "CategorySha256_";
// The device entity.
const USER: &str = "User";
const PLATFORM: &str = "Platform";
const TOKEN: &str = "Token";
const ADDRESS: &str = "Address";
// The vote row.
const VOTER: &str = "Voter";
const CHOICE: &str = "Choice";
const CLOSED: &str = "Closed";

pub(super) fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

pub(super) fn vote_row(voter: &UserId) -> String {
    format!("vote_{}", b64(voter.as_str()))
}

pub(super) fn user_partition(user: &UserId) -> String {
    format!("user_{}", b64(user.as_str()))
}

pub(super) fn token_row(token: &str) -> String {
    // Tokens run to 4 KiB and hold characters keys may not; their hash is a key of 64 hex digits.
    hex(&Sha256::digest(token.as_bytes()))
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The id with every Crockford digit mirrored, so ascending row keys are newest first.
pub(super) fn inverted(id: &CompetitionId) -> String {
    id.to_string()
        .bytes()
        .map(|b| {
            let i = CROCKFORD.iter().position(|c| *c == b).unwrap_or(0);
            CROCKFORD[31 - i] as char
        })
        .collect()
}

/// The creation time of a competition, from its id (a ULID).
pub(super) fn created_at(id: &CompetitionId) -> Option<SystemTime> {
    let ulid: ulid::Ulid = id.to_string().parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ulid.timestamp_ms()))
}

/// The ETag a conditional write needs. None at all is a service failure: writing with `*`
/// instead would overwrite whatever is there, the very race the condition guards against.
pub(super) fn required_etag(etag: Option<String>, what: &str) -> Result<String> {
    etag.ok_or_else(|| corrupt(what, "the service sent no ETag"))
}

pub(super) fn keys(partition: &str, row: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("PartitionKey".into(), Value::String(partition.into()));
    m.insert("RowKey".into(), Value::String(row.into()));
    m
}

// ---------------------------------------------------------------------------------------
// Native values.

/// An `Edm.Int32`: a JSON number, which the service stores as Int32 without an annotation.
fn int32<T: TryInto<i32>>(value: T, field: &'static str) -> Result<Value> {
    value
        .try_into()
        .map(Value::from)
        .map_err(|_| Error::invalid(field, "more than Table Storage's Edm.Int32 holds (2,147,483,647)"))
}

/// `values` as numbered `Edm.Int32` properties `{prefix}0`, `{prefix}1`, ...
fn put_numbered<T: TryInto<i32> + Copy>(
    props: &mut Map<String, Value>,
    prefix: &str,
    values: &[T],
    field: &'static str,
) -> Result<()> {
    for (i, value) in values.iter().enumerate() {
        props.insert(format!("{prefix}{i}"), int32(*value, field)?);
    }
    Ok(())
}

/// An `Edm.DateTime` property: UTC with 7 fractional digits, the service's own form, at the
/// domain's millisecond precision. Before 1970 is 1970 (as [`unix_millis`] says); after 9999,
/// which `Edm.DateTime` cannot hold, is [`Error::InvalidInput`] of `field`.
pub(super) fn put_time(props: &mut Map<String, Value>, name: &str, t: SystemTime, field: &'static str) -> Result<()> {
    let ms = unix_millis(t);
    if ms > MAX_DATETIME_MILLIS {
        return Err(Error::invalid(
            field,
            "after the year 9999, which Table Storage's Edm.DateTime cannot hold",
        ));
    }
    let at = azure_core::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| Error::invalid(field, e.to_string()))?;
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}0000Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    );
    props.insert(name.to_owned(), Value::String(text));
    props.insert(format!("{name}@odata.type"), Value::String("Edm.DateTime".into()));
    Ok(())
}

/// An `Edm.DateTime` property as a time; `None` if absent.
pub(super) fn time(entity: &Entity, name: &str) -> Result<Option<SystemTime>> {
    let Some(raw) = entity.props.get(name) else {
        return Ok(None);
    };
    let at = raw
        .as_str()
        .and_then(|s| azure_core::time::parse_rfc3339(s).ok())
        .ok_or_else(|| corrupt(name, format!("property {name} is not an Edm.DateTime: {raw}")))?;
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|e| corrupt(name, e))?;
    from_unix_millis(ms)
        .map(Some)
        .ok_or_else(|| corrupt(name, format!("{name} is not a time this platform holds")))
}

fn string<'a>(entity: &'a Entity, name: &str) -> Result<&'a str> {
    entity
        .str(name)
        .ok_or_else(|| corrupt(name, format!("string property {name} is missing")))
}

fn count<T: TryFrom<i64>>(entity: &Entity, name: &str) -> Result<T> {
    entity
        .i64(name)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| corrupt(name, format!("property {name} is missing or not a count")))
}

/// The numbered properties `{prefix}0` .. `{prefix}{n - 1}`.
fn numbered<T: TryFrom<i64>>(entity: &Entity, prefix: &str, n: usize) -> Result<Vec<T>> {
    (0..n).map(|i| count(entity, &format!("{prefix}{i}"))).collect()
}

fn partition_id(entity: &Entity) -> Result<CompetitionId> {
    string(entity, "PartitionKey")?
        .parse()
        .map_err(|e| corrupt("competition id", e))
}

/// A string property, checked against the service's 64 KiB limit.
fn long_string(value: &str, field: &'static str) -> Result<Value> {
    if value.encode_utf16().count() > MAX_STRING_UNITS {
        return Err(Error::invalid(
            field,
            "too large for one Table Storage string property (64 KiB)",
        ));
    }
    Ok(Value::String(value.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Competitions.

/// The competition entity's properties: the standing's fields (`Owner`, `Title` if any,
/// `Status`, `PhotoCount`, `Tally{i}`, `VotesToClose`), `CreatedAt`, `Category{i}`, the outcome
/// once closed, and the photos as one JSON document.
pub(super) fn competition_props(c: &Competition) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    m.insert(OWNER.into(), Value::String(c.owner.as_str().into()));
    if let Some(title) = &c.title {
        m.insert(TITLE.into(), Value::String(title.clone()));
    }
    m.insert(STATUS.into(), Value::String(c.status.as_str().into()));
    m.insert(PHOTO_COUNT.into(), int32(c.photos.len(), "photos")?);
    put_numbered(&mut m, TALLY, c.tally.counts(), "tally")?;
    m.insert(VOTES_TO_CLOSE.into(), int32(c.votes_to_close, "votes_to_close")?);
    put_time(&mut m, CREATED_AT, c.created_at, "created_at")?;
    for (i, category) in c.categories.iter().enumerate() {
        m.insert(format!("{CATEGORY}{i}"), Value::String(category.as_str().into()));
    }
    let photos = serde_json::to_string(&c.photos).map_err(|e| Error::backend(PROVIDER, e))?;
    m.insert(PHOTOS.into(), long_string(&photos, "photos")?);
    if let Some(outcome) = &c.outcome {
        m.extend(outcome_props(outcome)?);
    }
    // The closing vote merges the outcome in later: there must be room for it now, or that
    // vote would be refused for every voter and the competition would never close.
    let room_for_outcome = if c.outcome.is_some() { 0 } else { 2 * c.photos.len() + 1 };
    // Each `@odata.type` annotation is part of its property, not one of its own.
    let properties = m.keys().filter(|k| !k.contains('@')).count() + room_for_outcome;
    if properties > MAX_PROPERTIES {
        return Err(Error::invalid(
            "competition",
            format!(
                "{} categories and {} photos need {properties} properties, more than a Table Storage entity holds ({MAX_PROPERTIES})",
                c.categories.len(),
                c.photos.len()
            ),
        ));
    }
    Ok(m)
}

/// A competition as stored.
pub(super) fn read_competition(entity: &Entity) -> Result<Competition> {
    let standing = standing_of(entity)?;
    let photos: Vec<thisthat_core::Photo> =
        serde_json::from_str(string(entity, PHOTOS)?).map_err(|e| corrupt("photos", e))?;
    if photos.len() != standing.photos {
        return Err(corrupt(
            "competition",
            format!(
                "{PHOTO_COUNT} is {} but {PHOTOS} holds {}",
                standing.photos,
                photos.len()
            ),
        ));
    }
    let categories = (0..)
        .map_while(|i| entity.str(&format!("{CATEGORY}{i}")))
        .map(|name| thisthat_core::Category::new(name).map_err(|e| corrupt("category", e)))
        .collect::<Result<_>>()?;
    Ok(Competition {
        id: standing.id,
        owner: standing.owner,
        title: standing.title,
        status: standing.status,
        photos,
        categories,
        tally: standing.tally,
        votes_to_close: standing.votes_to_close,
        outcome: outcome_of(entity)?,
        created_at: time(entity, CREATED_AT)?.ok_or_else(|| corrupt(CREATED_AT, "property CreatedAt is missing"))?,
    })
}

/// The standing the competition entity holds, read without its photos.
pub(super) fn standing_of(entity: &Entity) -> Result<Standing> {
    let photos: usize = count(entity, PHOTO_COUNT)?;
    let status = string(entity, STATUS)?;
    Ok(Standing {
        id: partition_id(entity)?,
        owner: UserId::new(string(entity, OWNER)?).map_err(|e| corrupt("owner", e))?,
        title: entity.str(TITLE).map(str::to_owned),
        status: Status::from_name(status).ok_or_else(|| corrupt("status", format!("unknown status {status:?}")))?,
        photos,
        tally: Tally::from_counts(numbered(entity, TALLY, photos)?),
        votes_to_close: count(entity, VOTES_TO_CLOSE)?,
    })
}

/// What a vote merges into the competition entity: its status and tally, and the outcome of
/// a closing vote.
pub(super) fn standing_props(standing: &Standing, outcome: Option<&Outcome>) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    m.insert(STATUS.into(), Value::String(standing.status.as_str().into()));
    put_numbered(&mut m, TALLY, standing.tally.counts(), "tally")?;
    if let Some(outcome) = outcome {
        m.extend(outcome_props(outcome)?);
    }
    Ok(m)
}

/// The outcome, flattened: `OutcomeTally{i}`, `WinnerCount` and `Winner{i}`, all Int32.
fn outcome_props(outcome: &Outcome) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    put_numbered(&mut m, OUTCOME_TALLY, outcome.tally.counts(), "outcome")?;
    m.insert(WINNER_COUNT.into(), int32(outcome.winners.len(), "outcome")?);
    put_numbered(&mut m, WINNER, &outcome.winners, "outcome")?;
    Ok(m)
}

/// The outcome an entity holds; `None` without `WinnerCount`.
fn outcome_of(entity: &Entity) -> Result<Option<Outcome>> {
    let Some(winners) = entity.i64(WINNER_COUNT) else {
        return Ok(None);
    };
    let winners = usize::try_from(winners).map_err(|e| corrupt("outcome", e))?;
    let tally = (0..)
        .map_while(|i| entity.i64(&format!("{OUTCOME_TALLY}{i}")))
        .map(|c| u32::try_from(c).map_err(|e| corrupt("outcome", e)))
        .collect::<Result<_>>()?;
    Ok(Some(Outcome {
        tally: Tally::from_counts(tally),
        winners: numbered(entity, WINNER, winners)?,
    }))
}

// ---------------------------------------------------------------------------------------
// Votes.

/// The vote row: the voter, the choice and the receipt (the tally after this vote, one Int32
/// per photo, and whether it closed the competition; the outcome itself is the competition's).
pub(super) fn vote_props(vote: &Vote, receipt: &VoteReceipt) -> Result<Map<String, Value>> {
    let mut m = keys(&vote.competition.to_string(), &vote_row(&vote.voter));
    m.insert(VOTER.into(), Value::String(vote.voter.as_str().into()));
    m.insert(CHOICE.into(), int32(vote.choice, "choice")?);
    put_numbered(&mut m, TALLY, receipt.tally.counts(), "tally")?;
    m.insert(CLOSED.into(), Value::Bool(receipt.closed.is_some()));
    Ok(m)
}

/// What the vote row read with the competition says of the voter's earlier vote: its choice
/// and, where the row keeps it, its receipt (`Tally{i}` and `Closed`; the outcome of a closing
/// vote is the competition's).
pub(super) fn counted_vote(row: &Entity, competition: &Entity) -> Result<CountedVote> {
    let choice = count(row, CHOICE)?;
    let counts: Vec<u32> = (0..)
        .map_while(|i| row.i64(&format!("{TALLY}{i}")))
        .map(|c| u32::try_from(c).map_err(|e| corrupt("vote", e)))
        .collect::<Result<_>>()?;
    let receipt = match row.bool(CLOSED) {
        None => None,
        Some(closed) => Some(VoteReceipt {
            tally: Tally::from_counts(counts),
            closed: if closed {
                Some(outcome_of(competition)?.ok_or_else(|| corrupt("competition", "closed without an outcome"))?)
            } else {
                None
            },
        }),
    };
    Ok(CountedVote { choice, receipt })
}

// ---------------------------------------------------------------------------------------
// Notifications.

/// The pending notification entity the closing vote inserts: its fields (`Owner`, `Title` if
/// any, the outcome flattened), not delivered and never leased (no `LeaseUntil`).
pub(super) fn notification_props(n: &Notification) -> Result<Map<String, Value>> {
    let mut m = keys(&n.competition.to_string(), NOTIFICATION);
    m.insert(OWNER.into(), Value::String(n.owner.as_str().into()));
    if let Some(title) = &n.title {
        m.insert(TITLE.into(), Value::String(title.clone()));
    }
    m.extend(outcome_props(&n.outcome)?);
    m.insert(DELIVERED.into(), Value::Bool(false));
    for device in &n.delivered_to {
        m.insert(delivered_property(device)?, Value::Bool(true));
    }
    Ok(m)
}

/// The notification a notification entity holds, with the devices it has reached.
pub(super) fn notification_of(entity: &Entity) -> Result<Notification> {
    Ok(Notification {
        competition: partition_id(entity)?,
        owner: UserId::new(string(entity, OWNER)?).map_err(|e| corrupt("owner", e))?,
        title: entity.str(TITLE).map(str::to_owned),
        outcome: outcome_of(entity)?.ok_or_else(|| corrupt("notification", "it has no outcome"))?,
        delivered_to: delivered_to(entity),
    })
}

/// When the notification's lease runs out (the Unix epoch if it was never leased).
pub(super) fn lease_until(entity: &Entity) -> Result<SystemTime> {
    Ok(time(entity, LEASE_UNTIL)?.unwrap_or(UNIX_EPOCH))
}

/// The property that records a delivery to `device` (an [`Endpoint::delivery_key`]): one
/// Boolean property per device, the closest Table Storage has to a set (adding one is an
/// idempotent merge). Property names are identifiers, so a key must be letters and digits.
pub(super) fn delivered_property(device: &str) -> Result<String> {
    if device.is_empty() || device.len() > 200 || !device.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            "devices",
            "a delivery key is 1 to 200 letters and digits (Endpoint::delivery_key)",
        ));
    }
    Ok(format!("{DELIVERED_TO}{device}"))
}

/// The devices a notification entity records as reached, sorted.
pub(super) fn delivered_to(entity: &Entity) -> Vec<String> {
    let mut devices: Vec<String> = entity
        .props
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .filter_map(|(name, _)| name.strip_prefix(DELIVERED_TO).map(str::to_owned))
        .collect();
    devices.sort();
    devices
}

// ---------------------------------------------------------------------------------------
// The feed.

/// A feed entry: the id, the owner and one `Category_{name}` Boolean per category, so the
/// feed's query filters by owner and category on the service (`Owner ne '...' and
/// Category_cat eq true`): Table queries compare whole properties and have no "contains", so
/// a list in one string could only be filtered after reading every entry.
pub(super) fn feed_props(c: &Competition) -> Result<Map<String, Value>> {
    let mut m = keys(FEED, &inverted(&c.id));
    m.insert(ID.into(), Value::String(c.id.to_string()));
    m.insert(OWNER.into(), Value::String(c.owner.as_str().into()));
    for category in &c.categories {
        m.insert(category_property(category), Value::Bool(true));
    }
    if m.len() - 2 > MAX_PROPERTIES {
        return Err(Error::invalid(
            "categories",
            format!(
                "{} categories are more than a Table Storage entity holds ({MAX_PROPERTIES} properties)",
                c.categories.len()
            ),
        ));
    }
    Ok(m)
}

/// The feed entry's property for `category`. Property names are C# identifiers of at most 255
/// characters, so letters and digits are kept and every other character is `_{hex code}_`
/// (`tabby cat` is `Category_tabby_20_cat`), which no two names share. A name that would be
/// longer than 255 characters is `CategorySha256_{hex of its SHA-256}` instead.
pub(super) fn category_property(category: &thisthat_core::Category) -> String {
    let mut name = String::from(IN_CATEGORY);
    for c in category.as_str().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else {
            name.push_str(&format!("_{:x}_", u32::from(c)));
        }
    }
    if name.len() > 255 {
        return format!(
            "{IN_CATEGORY_HASHED}{}",
            hex(&Sha256::digest(category.as_str().as_bytes()))
        );
    }
    name
}

// ---------------------------------------------------------------------------------------
// Devices.

/// The device entity: `User`, `Platform`, `Token` and `Address`, all strings.
pub(super) fn endpoint_props(endpoint: &Endpoint) -> Map<String, Value> {
    let mut m = keys(
        &user_partition(&endpoint.device.user),
        &token_row(&endpoint.device.token),
    );
    m.insert(USER.into(), Value::String(endpoint.device.user.as_str().into()));
    m.insert(PLATFORM.into(), Value::String(endpoint.device.platform.as_str().into()));
    m.insert(TOKEN.into(), Value::String(endpoint.device.token.clone()));
    m.insert(ADDRESS.into(), Value::String(endpoint.address.clone()));
    m
}

pub(super) fn endpoint_of(entity: &Entity) -> Result<Endpoint> {
    let user = UserId::new(string(entity, USER)?).map_err(|e| corrupt("device", e))?;
    // The platform's serde name is its `as_str`: one definition of the names.
    let platform: Platform = serde_json::from_value(Value::String(string(entity, PLATFORM)?.to_owned()))
        .map_err(|e| corrupt("device", e))?;
    let device = Device::new(user, platform, string(entity, TOKEN)?).map_err(|e| corrupt("device", e))?;
    Ok(Endpoint {
        device,
        address: string(entity, ADDRESS)?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use thisthat_testkit::fixtures::{competition, device};

    fn entity(props: Map<String, Value>) -> Entity {
        // As the service answers: Int64 and DateTime annotations are not properties.
        let mut props = props;
        props.retain(|k, _| !k.contains("@odata"));
        Entity { props, etag: None }
    }

    #[test]
    fn a_competition_round_trips_through_native_properties() {
        let mut c = competition("owner", Status::Closed, 2);
        c.tally = Tally::from_counts(vec![1, 0, 1]);
        c.outcome = Some(Outcome::from_tally(c.tally.clone()));
        c.categories = vec![
            thisthat_core::Category::new("cat").expect("category"),
            thisthat_core::Category::new("tabby cat").expect("category"),
        ];
        let mut props = keys(&c.id.to_string(), COMPETITION);
        props.extend(competition_props(&c).expect("encode"));
        assert_eq!(props["Tally2"], json!(1));
        assert_eq!(props["Winner1"], json!(2));
        assert_eq!(props["WinnerCount"], json!(2));
        assert_eq!(props["Category1"], json!("tabby cat"));
        assert_eq!(props["CreatedAt@odata.type"], json!("Edm.DateTime"));
        assert_eq!(read_competition(&entity(props)).expect("decode"), c);

        let mut untitled = competition("owner", Status::Open, 24);
        untitled.title = None;
        untitled.categories.clear();
        let mut props = keys(&untitled.id.to_string(), COMPETITION);
        props.extend(competition_props(&untitled).expect("encode"));
        for absent in [TITLE, WINNER_COUNT, "OutcomeTally0", "Category0"] {
            assert!(!props.contains_key(absent), "none is an absent {absent}");
        }
        assert_eq!(read_competition(&entity(props)).expect("decode"), untitled);
    }

    #[test]
    fn times_are_edm_datetimes_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_472_720_123);
        let mut m = Map::new();
        put_time(&mut m, "At", t, "at").expect("encode");
        // Computed apart: Python's datetime.fromtimestamp(1796472720.123, timezone.utc).
        assert_eq!(m["At"], json!("2026-12-05T12:12:00.1230000Z"));
        assert_eq!(time(&entity(m), "At").expect("decode"), Some(t));
        // The service may also answer with fewer fractional digits.
        let e = entity(Map::from_iter([("At".to_owned(), json!("2026-12-05T12:12:00.123Z"))]));
        assert_eq!(time(&e, "At").expect("decode"), Some(t));
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(matches!(
            put_time(&mut Map::new(), "At", far, "lease"),
            Err(Error::InvalidInput { field: "lease", .. })
        ));
    }

    #[test]
    fn counts_past_int32_are_refused_not_stored_as_another_type() {
        let mut c = competition("owner", Status::Open, 24);
        c.votes_to_close = u32::MAX;
        assert!(matches!(
            competition_props(&c),
            Err(Error::InvalidInput {
                field: "votes_to_close",
                ..
            })
        ));
    }

    #[test]
    fn a_competition_that_could_not_hold_its_outcome_is_refused() {
        let mut c = competition("owner", Status::Open, 24);
        c.categories = (0..240)
            .map(|i| thisthat_core::Category::new(format!("c{i}")).expect("category"))
            .collect();
        assert!(matches!(
            competition_props(&c),
            Err(Error::InvalidInput {
                field: "competition",
                ..
            })
        ));
        c.categories.truncate(200);
        assert!(competition_props(&c).is_ok());
    }

    #[test]
    fn category_properties_are_identifiers_and_distinct() {
        let name = |s: &str| category_property(&thisthat_core::Category::new(s).expect("category"));
        assert_eq!(name("cat"), "Category_cat");
        assert_eq!(name("tabby cat"), "Category_tabby_20_cat");
        assert_ne!(name("a_b"), name("a b"));
        assert_ne!(name("café"), name("cafe"));
        let long = name(&"猫".repeat(64));
        assert!(long.starts_with(IN_CATEGORY_HASHED) && long.len() <= 255, "{long}");
        for p in [name("t-shirt"), name("naïve"), long] {
            assert!(p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{p}");
        }
    }

    #[test]
    fn notifications_and_devices_round_trip() {
        let c = competition("owner", Status::Closed, 24);
        let mut n = Notification::for_close(&c, &Outcome::from_tally(Tally::from_counts(vec![5, 5, 2])));
        n.delivered_to = vec!["aa11".into(), "bb22".into()];
        let props = notification_props(&n).expect("encode");
        assert_eq!(props[DELIVERED], json!(false));
        assert_eq!(notification_of(&entity(props)).expect("decode"), n);

        let endpoint = Endpoint {
            device: device("alice"),
            address: "installation-1".into(),
        };
        let props = endpoint_props(&endpoint);
        assert!(props.values().all(Value::is_string));
        assert_eq!(endpoint_of(&entity(props)).expect("decode"), endpoint);
    }
}
