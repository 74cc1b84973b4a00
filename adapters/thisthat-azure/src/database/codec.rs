//! The entities' codec: keys, and competition, vote and notification entities to and from
//! the domain's types. No requests here (the port is `mod.rs`, the vote `vote.rs`).

use super::*;

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

/// What the vote row read with the competition says of the voter's earlier vote: its choice
/// and, where the row keeps it, its receipt (the tally after it, `Tally0`, `Tally1`, ..., and
/// `Closed`; the outcome of a closing vote is the competition's).
pub(super) fn counted_vote(row: &Entity, competition: &Entity) -> Result<CountedVote> {
    let choice = row
        .i64("Choice")
        .and_then(|c| usize::try_from(c).ok())
        .ok_or_else(|| corrupt("vote", "property Choice is missing"))?;
    let counts: Vec<u32> = (0..)
        .map_while(|i| row.i64(&format!("Tally{i}")))
        .map(|c| u32::try_from(c).map_err(|e| corrupt("vote", e)))
        .collect::<Result<_>>()?;
    let receipt = match row.bool("Closed") {
        None => None,
        Some(closed) => Some(VoteReceipt {
            tally: Tally::from_counts(counts),
            closed: if closed {
                Some(json_prop(competition, "Outcome")?)
            } else {
                None
            },
        }),
    };
    Ok(CountedVote { choice, receipt })
}

pub(super) fn json_prop<T: serde::de::DeserializeOwned>(entity: &Entity, name: &str) -> Result<T> {
    let raw = entity
        .str(name)
        .ok_or_else(|| corrupt(name, format!("property {name} is missing")))?;
    serde_json::from_str(raw).map_err(|e| corrupt(name, e))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    let s = serde_json::to_string(value).map_err(|e| Error::backend(PROVIDER, e))?;
    // A string property holds at most 64 KiB (32K UTF-16 units).
    if s.encode_utf16().count() > 32 * 1024 {
        return Err(Error::invalid("competition", "too large to store in one table entity"));
    }
    Ok(s)
}

pub(super) fn keys(partition: &str, row: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("PartitionKey".into(), Value::String(partition.into()));
    m.insert("RowKey".into(), Value::String(row.into()));
    m
}

/// The competition entity's properties.
pub(super) fn competition_props(c: &Competition) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    m.insert("Body".into(), Value::String(to_json(c)?));
    m.insert("Standing".into(), Value::String(to_json(&c.standing())?));
    m.insert("Status".into(), Value::String(c.status.as_str().into()));
    // The title again, apart from the body, so the closing vote reads it without the body.
    m.insert("Title".into(), Value::String(to_json(&c.title)?));
    m.insert(
        "Outcome".into(),
        Value::String(match &c.outcome {
            Some(o) => to_json(o)?,
            None => String::new(),
        }),
    );
    Ok(m)
}

/// A competition as stored: its body, with the parts a vote changes taken from the standing.
pub(super) fn read_competition(entity: &Entity) -> Result<Competition> {
    let mut c: Competition = json_prop(entity, "Body")?;
    let standing: Standing = json_prop(entity, "Standing")?;
    c.status = standing.status;
    c.tally = standing.tally;
    c.outcome = match entity.str("Outcome") {
        Some(raw) if !raw.is_empty() => Some(serde_json::from_str(raw).map_err(|e| corrupt("outcome", e))?),
        _ => None,
    };
    Ok(c)
}
