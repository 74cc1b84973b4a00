//! Documents <-> domain types, in Firestore's own value types.
//!
//! A competition, a pending notification and a device endpoint are each stored as the
//! document's fields, named as the domain names them and typed natively: a string as a
//! `stringValue`, a count or a Unix-millisecond time as an `integerValue`, a confidence as a
//! `doubleValue`, a list (photos, labels, categories, a tally, winners) as an `arrayValue`, a
//! nested value (a photo, an outcome, a device) as a `mapValue`. "None" is written one way: the
//! field is absent (never `nullValue`, never an empty string).
//!
//! The conversion goes through the domain types' serde form (`serde_json::Value`), so the
//! document's shape is the API's shape and there is one definition of each type's fields.

use std::collections::HashMap;

use firestore::gcloud_sdk::google::firestore::v1::{ArrayValue, Document, MapValue, Value, value::ValueType};
use serde::{Serialize, de::DeserializeOwned};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Error, Notification, Outcome, Result, Standing, Status, Tally, VoteReceipt,
    adapter::CountedVote,
};

use crate::error::corrupt;

/// A `stringValue`.
pub(crate) fn string(v: impl Into<String>) -> Value {
    Value {
        value_type: Some(ValueType::StringValue(v.into())),
    }
}

/// An `integerValue`.
pub(crate) fn integer(v: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(v)),
    }
}

/// A `booleanValue`.
pub(crate) fn boolean(v: bool) -> Value {
    Value {
        value_type: Some(ValueType::BooleanValue(v)),
    }
}

/// An `arrayValue`.
pub(crate) fn array(values: Vec<Value>) -> Value {
    Value {
        value_type: Some(ValueType::ArrayValue(ArrayValue { values })),
    }
}

/// A tally as an array of integers.
pub(crate) fn tally(t: &Tally) -> Value {
    array(t.counts().iter().map(|c| integer(i64::from(*c))).collect())
}

/// The native form of a serde value; `None` for a JSON null (written as an absent field).
fn native(json: serde_json::Value) -> Result<Option<Value>> {
    use serde_json::Value as J;
    let value_type = match json {
        J::Null => return Ok(None),
        J::Bool(b) => ValueType::BooleanValue(b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ValueType::IntegerValue(i),
            (None, Some(_)) if n.is_u64() => {
                return Err(Error::backend(
                    "firestore",
                    format!("{n} is too large for Firestore's integers"),
                ));
            }
            (None, Some(f)) => ValueType::DoubleValue(f),
            (None, None) => {
                return Err(Error::backend(
                    "firestore",
                    format!("{n} is not a number Firestore holds"),
                ));
            }
        },
        J::String(s) => ValueType::StringValue(s),
        J::Array(items) => ValueType::ArrayValue(ArrayValue {
            // A null inside a list has no absent form; the domain writes none.
            values: items
                .into_iter()
                .map(|item| {
                    Ok(native(item)?.unwrap_or(Value {
                        value_type: Some(ValueType::NullValue(0)),
                    }))
                })
                .collect::<Result<_>>()?,
        }),
        J::Object(map) => ValueType::MapValue(MapValue {
            fields: fields_of(map)?,
        }),
    };
    Ok(Some(Value {
        value_type: Some(value_type),
    }))
}

fn fields_of(map: serde_json::Map<String, serde_json::Value>) -> Result<HashMap<String, Value>> {
    let mut fields = HashMap::with_capacity(map.len());
    for (name, value) in map {
        if let Some(value) = native(value)? {
            fields.insert(name, value);
        }
    }
    Ok(fields)
}

/// The serde form of a stored value.
fn json_of(value: &Value) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match &value.value_type {
        None | Some(ValueType::NullValue(_)) => J::Null,
        Some(ValueType::BooleanValue(b)) => J::Bool(*b),
        Some(ValueType::IntegerValue(i)) => J::from(*i),
        Some(ValueType::DoubleValue(f)) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| corrupt("a stored number that is not finite"))?,
        Some(ValueType::StringValue(s)) => J::String(s.clone()),
        Some(ValueType::ArrayValue(a)) => J::Array(a.values.iter().map(json_of).collect::<Result<_>>()?),
        Some(ValueType::MapValue(m)) => J::Object(
            m.fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_of(v)?)))
                .collect::<Result<_>>()?,
        ),
        Some(_) => return Err(corrupt("a stored value of a type this adapter never writes")),
    })
}

/// `value`'s fields as a document's fields.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<HashMap<String, Value>> {
    match serde_json::to_value(value).map_err(|e| Error::backend("firestore", e))? {
        serde_json::Value::Object(map) => fields_of(map),
        _ => Err(Error::backend("firestore", "only a struct is stored as a document")),
    }
}

/// A document's fields as a `T` (fields `T` does not have are ignored: the adapter's own
/// bookkeeping, such as a notification's lease).
pub(crate) fn decode<T: DeserializeOwned>(doc: &Document) -> Result<T> {
    let map = doc
        .fields
        .iter()
        .map(|(k, v)| Ok((k.clone(), json_of(v)?)))
        .collect::<Result<serde_json::Map<_, _>>>()?;
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| corrupt(format!("{} does not decode: {e}", doc.name)))
}

/// The competition id a competition document is named by.
pub(crate) fn id_of(doc: &Document) -> Result<CompetitionId> {
    doc.name
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| corrupt(format!("{} is not named by a competition id", doc.name)))
}

/// A competition's document fields: the competition itself (its id is the document's name).
pub(crate) fn competition_fields(c: &Competition) -> Result<HashMap<String, Value>> {
    let mut fields = encode(c)?;
    fields.remove("id");
    Ok(fields)
}

/// The competition document `doc` of competition `id` holds.
pub(crate) fn competition_of(id: CompetitionId, doc: &Document) -> Result<Competition> {
    let mut fields = doc.fields.clone();
    fields.insert("id".to_string(), string(id.to_string()));
    decode(&Document {
        name: doc.name.clone(),
        fields,
        ..Default::default()
    })
}

/// The fields a vote writes to its competition (the rest of the document is left alone):
/// `status`, `tally` and, once closed, `outcome` (absent while open).
pub(crate) const STANDING_FIELDS: [&str; 3] = ["status", "tally", "outcome"];

/// The values of [`STANDING_FIELDS`] after a vote.
pub(crate) fn standing_fields(standing: &Standing, outcome: Option<&Outcome>) -> Result<HashMap<String, Value>> {
    let mut fields = HashMap::from([
        ("status".to_string(), string(standing.status.as_str())),
        ("tally".to_string(), tally(&standing.tally)),
    ]);
    if let Some(outcome) = outcome {
        let encoded = native(serde_json::to_value(outcome).map_err(|e| Error::backend("firestore", e))?)?;
        if let Some(encoded) = encoded {
            fields.insert("outcome".to_string(), encoded);
        }
    }
    Ok(fields)
}

/// The status field of a competition document.
pub(crate) fn status_of(doc: &Document) -> Result<Status> {
    match doc.fields.get("status").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::StringValue(name)) => {
            Status::from_name(name).ok_or_else(|| corrupt(format!("unknown status {name:?} in {}", doc.name)))
        }
        _ => Err(corrupt(format!("{} has no status", doc.name))),
    }
}

/// A vote document's fields: the voter, the choice and the vote's receipt, natively (the tally
/// after the vote and whether it closed the competition; the outcome is the competition's).
pub(crate) fn vote_fields(voter: &str, choice: usize, receipt: &VoteReceipt) -> HashMap<String, Value> {
    HashMap::from([
        ("voter".to_string(), string(voter)),
        ("choice".to_string(), integer(i64::try_from(choice).unwrap_or(i64::MAX))),
        ("tally".to_string(), tally(&receipt.tally)),
        ("closed".to_string(), boolean(receipt.closed.is_some())),
    ])
}

#[derive(serde::Deserialize)]
struct StoredVote {
    choice: usize,
    tally: Tally,
    closed: bool,
}

/// What a vote document says of the voter's earlier vote, with the outcome of `competition`
/// when that vote closed it.
pub(crate) fn counted_vote(doc: &Document, competition: Option<&Competition>) -> Result<CountedVote> {
    let stored: StoredVote = decode(doc)?;
    let closed = match (stored.closed, competition.and_then(|c| c.outcome.clone())) {
        (false, _) => None,
        (true, Some(outcome)) => Some(outcome),
        (true, None) => {
            return Err(corrupt(format!(
                "{} closed a competition that has no outcome",
                doc.name
            )));
        }
    };
    Ok(CountedVote {
        choice: stored.choice,
        receipt: Some(VoteReceipt {
            tally: stored.tally,
            closed,
        }),
    })
}

/// A pending notification's fields: the notification itself, not delivered, not leased.
pub(crate) fn notification_fields(n: &Notification) -> Result<HashMap<String, Value>> {
    let mut fields = encode(n)?;
    fields.insert("delivered".to_string(), boolean(false));
    fields.insert("leased_until_ms".to_string(), integer(0));
    Ok(fields)
}

#[derive(serde::Deserialize)]
struct Lease {
    delivered: bool,
    leased_until_ms: i64,
}

/// The notification `doc` holds if a claim may lease it at `now` (Unix ms): `None` if it is
/// delivered or leased.
pub(crate) fn claimable(doc: &Document, now: i64) -> Result<Option<Notification>> {
    let lease: Lease = decode(doc)?;
    if lease.delivered || lease.leased_until_ms > now {
        return Ok(None);
    }
    decode(doc).map(Some)
}

/// Whether a notification document is delivered.
pub(crate) fn delivered(doc: &Document) -> Result<bool> {
    decode::<Lease>(doc).map(|l| l.delivered)
}

/// An endpoint's document fields: the endpoint itself (`device` a map, `address` a string).
pub(crate) fn endpoint_fields(e: &Endpoint) -> Result<HashMap<String, Value>> {
    encode(e)
}

#[cfg(test)]
mod tests {
    use thisthat_core::Status;
    use thisthat_testkit::fixtures::competition;

    use super::*;

    #[test]
    fn a_competition_is_stored_natively_and_reads_back() {
        let mut c = competition("owner", Status::Closed, 2);
        c.tally = Tally::from_counts(vec![1, 1, 0]);
        c.outcome = Some(Outcome::from_tally(c.tally.clone()));
        let fields = competition_fields(&c).expect("encode");
        assert!(!fields.contains_key("id"), "the id is the document's name");
        assert!(matches!(fields["tally"].value_type, Some(ValueType::ArrayValue(_))));
        assert!(matches!(fields["outcome"].value_type, Some(ValueType::MapValue(_))));
        assert!(matches!(fields["photos"].value_type, Some(ValueType::ArrayValue(_))));
        assert!(matches!(
            fields["created_at"].value_type,
            Some(ValueType::IntegerValue(_))
        ));
        let doc = Document {
            name: "competitions/x".into(),
            fields,
            ..Default::default()
        };
        assert_eq!(competition_of(c.id, &doc).expect("decode"), c);
    }

    #[test]
    fn none_is_an_absent_field() {
        let mut c = competition("owner", Status::Open, 2);
        c.title = None;
        let fields = competition_fields(&c).expect("encode");
        assert!(!fields.contains_key("title"));
        assert!(!fields.contains_key("outcome"));
        let s = c.standing();
        assert!(!standing_fields(&s, None).expect("fields").contains_key("outcome"));
    }
}
