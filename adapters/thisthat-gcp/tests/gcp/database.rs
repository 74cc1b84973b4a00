//! Firestore on Google's emulator: the database suite, the request counts `docs/gcp.md`
//! gives, claims, votes from several processes and the stored layout.

use thisthat_core::{Error, Status, ports::Database};
use thisthat_testkit::fixtures::{competition, vote};

use super::*;

thisthat_testkit::database_conformance!(firestore());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_costs_the_requests_docs_gcp_md_counts() {
    let db = firestore().await;
    let c = competition("owner", Status::Open, 2);
    db.insert_competition(&c).await.expect("insert");
    let cost = async |v: thisthat_core::Vote| {
        let before = db.requests_sent();
        let result = db.cast_vote(&v).await;
        (db.requests_sent() - before, result)
    };
    let (n, r) = cost(vote(&c, "a", 0)).await;
    assert!(r.expect("vote").closed.is_none());
    assert_eq!(n, 2, "an accepted vote: one read, one conditional commit");
    let (n, r) = cost(vote(&c, "a", 1)).await;
    assert!(matches!(r, Err(Error::AlreadyVoted)));
    assert_eq!(n, 1, "a repeat voter is answered by the read");
    let (n, r) = cost(vote(&c, "owner", 1)).await;
    assert!(matches!(r, Err(Error::OwnCompetition)));
    assert_eq!(n, 1);
    let (n, r) = cost(vote(&c, "b", 1)).await;
    assert!(r.expect("closing vote").closed.is_some());
    assert_eq!(
        n, 2,
        "the closing vote writes the close and the notification in the same commit"
    );
    let (n, r) = cost(vote(&c, "c", 1)).await;
    assert!(matches!(r, Err(Error::Closed)));
    assert_eq!(n, 1, "a late voter is answered by the read");
    let missing = competition("owner", Status::Open, 2);
    let (n, r) = cost(vote(&missing, "a", 0)).await;
    assert!(matches!(r, Err(Error::NotFound { .. })));
    assert_eq!(n, 1, "a missing competition is answered by the read");
}

/// Claims honour `limit` (0 claims nothing, even for one named competition), survive a
/// lease too long for the clock, and skip a pending notification that does not decode
/// instead of failing every delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_honour_the_limit_and_skip_undecodable_notifications() {
    use std::time::Duration;

    use thisthat_core::ports::NotificationClaim;
    use thisthat_gcp::firestore::gcloud_sdk::google::firestore::v1::{
        CommitRequest, Document, Value, Write, value::ValueType, write,
    };

    let db = firestore().await;
    let c = competition("owner", Status::Open, 1);
    db.insert_competition(&c).await.expect("insert");
    assert!(db.cast_vote(&vote(&c, "a", 0)).await.expect("vote").closed.is_some());
    let claim = |competition, limit, lease| NotificationClaim {
        competition,
        now: thisthat_testkit::fixtures::now_ms(),
        lease,
        limit,
    };
    let none = db
        .claim_notifications(&claim(Some(c.id), 0, Duration::from_secs(60)))
        .await
        .expect("claim");
    assert!(none.is_empty(), "limit 0 claims nothing: {none:?}");
    // A lease past what SystemTime can hold is no lease (as in the reference database),
    // not a panic: the notification stays claimable.
    let forever = db
        .claim_notifications(&claim(Some(c.id), 1, Duration::MAX))
        .await
        .expect("claim");
    assert_eq!(forever.len(), 1, "{forever:?}");

    // A pending notification written by something else, whose body is not a notification.
    let bad_id = CompetitionId::new();
    let name = format!(
        "{}/{}notifications/{bad_id}",
        db.client().get_documents_path(),
        db.prefix(),
    );
    let value = |v| Value { value_type: Some(v) };
    let bad = Write {
        operation: Some(write::Operation::Update(Document {
            name,
            fields: [
                (
                    "body".to_string(),
                    value(ValueType::StringValue("not a notification".into())),
                ),
                ("delivered".to_string(), value(ValueType::BooleanValue(false))),
                ("leased_until_ms".to_string(), value(ValueType::IntegerValue(0))),
            ]
            .into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    db.client()
        .client()
        .get()
        .commit(CommitRequest {
            database: db.client().get_database_path().clone(),
            writes: vec![bad],
            ..Default::default()
        })
        .await
        .expect("write the undecodable document");

    let claimed = db
        .claim_notifications(&claim(None, 10, Duration::from_secs(60)))
        .await
        .expect("the undecodable document does not fail the claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].competition, c.id);
    let alone = db
        .claim_notifications(&claim(Some(bad_id), 1, Duration::from_secs(60)))
        .await;
    assert!(
        matches!(&alone, Ok(v) if v.is_empty()),
        "skipped, not an error, even when it is the only candidate: {alone:?}"
    );
}

/// Four database handles stand for four processes: each has its own vote locks, so only
/// Firestore's preconditions (and the adapter's retries) keep the count right.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn voters_on_separate_clients_close_exactly_once() {
    required("FIRESTORE_EMULATOR_HOST");
    let prefix = format!("t{}_", unique());
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(Arc::new(
            FirestoreDatabase::open_database(PROJECT, "(default)", &prefix)
                .await
                .expect("open"),
        ));
    }
    let c = competition("owner", Status::Open, 24);
    handles[0].insert_competition(&c).await.expect("insert");
    let tasks = (0..120).map(|i| {
        let db = handles[i % handles.len()].clone();
        let v = vote(&c, &format!("voter-{i}"), i % 3);
        tokio::spawn(async move { db.cast_vote(&v).await })
    });
    let (mut accepted, mut closes, mut closed) = (0, 0, 0);
    for joined in futures::future::join_all(tasks).await {
        match joined.expect("task") {
            Ok(r) => {
                accepted += 1;
                closes += usize::from(r.closed.is_some());
            }
            Err(Error::Closed) => closed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, closes, closed), (24, 1, 96));
    let stored = handles[3].competition(&c.id).await.expect("read");
    assert_eq!(stored.tally.total(), 24);
    let claim = thisthat_core::ports::NotificationClaim {
        competition: None,
        now: std::time::SystemTime::now(),
        lease: std::time::Duration::from_secs(60),
        limit: 10,
    };
    assert_eq!(handles[1].claim_notifications(&claim).await.expect("claim").len(), 1);
}

/// What a competition, a vote and a pending notification look like at rest: each field in
/// Firestore's native types, "none" an absent field (checked on the raw documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_hold_native_types() {
    use thisthat_gcp::firestore::gcloud_sdk::google::firestore::v1::{Document, GetDocumentRequest, value::ValueType};

    let db = firestore().await;
    let mut c = competition("owner", Status::Open, 1);
    c.title = None;
    db.insert_competition(&c).await.expect("insert");
    let receipt = db.cast_vote(&vote(&c, "a", 0)).await.expect("the closing vote");
    assert!(receipt.closed.is_some());
    let root = db.client().get_documents_path().clone();
    let read = async |path: String| -> Document {
        db.client()
            .client()
            .get()
            .get_document(GetDocumentRequest {
                name: format!("{root}/{path}"),
                ..Default::default()
            })
            .await
            .expect("read the raw document")
            .into_inner()
    };
    let kind = |doc: &Document, field: &str| match doc.fields.get(field).and_then(|v| v.value_type.as_ref()) {
        None => "absent",
        Some(ValueType::StringValue(_)) => "string",
        Some(ValueType::IntegerValue(_)) => "integer",
        Some(ValueType::DoubleValue(_)) => "double",
        Some(ValueType::BooleanValue(_)) => "boolean",
        Some(ValueType::ArrayValue(_)) => "array",
        Some(ValueType::MapValue(_)) => "map",
        Some(_) => "other",
    };
    let prefix = db.prefix().to_string();
    let stored = read(format!("{prefix}competitions/{}", c.id)).await;
    for (field, expected) in [
        ("owner", "string"),
        ("title", "absent"),
        ("status", "string"),
        ("photos", "array"),
        ("categories", "array"),
        ("tally", "array"),
        ("votes_to_close", "integer"),
        ("outcome", "map"),
        ("created_at", "integer"),
        ("body", "absent"),
    ] {
        assert_eq!(kind(&stored, field), expected, "competition field {field}");
    }
    let Some(ValueType::ArrayValue(photos)) = stored.fields["photos"].value_type.as_ref() else {
        unreachable!("checked above")
    };
    let Some(ValueType::MapValue(photo)) = photos.values.first().and_then(|p| p.value_type.as_ref()) else {
        panic!("a photo is a map: {photos:?}")
    };
    assert!(
        matches!(
            photo.fields.get("labels").and_then(|l| l.value_type.as_ref()),
            Some(ValueType::ArrayValue(_))
        ),
        "a photo's labels are an array: {photo:?}"
    );
    let Some(ValueType::MapValue(outcome)) = stored.fields["outcome"].value_type.as_ref() else {
        unreachable!("checked above")
    };
    assert!(matches!(
        outcome.fields["tally"].value_type,
        Some(ValueType::ArrayValue(_))
    ));
    assert!(matches!(
        outcome.fields["winners"].value_type,
        Some(ValueType::ArrayValue(_))
    ));

    let voter = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a");
    let ballot = read(format!("{prefix}competitions/{}/votes/v{voter}", c.id)).await;
    for (field, expected) in [
        ("voter", "string"),
        ("choice", "integer"),
        ("tally", "array"),
        ("closed", "boolean"),
        ("receipt", "absent"),
    ] {
        assert_eq!(kind(&ballot, field), expected, "vote field {field}");
    }
    let pending = read(format!("{prefix}notifications/{}", c.id)).await;
    for (field, expected) in [
        ("competition", "string"),
        ("owner", "string"),
        ("title", "absent"),
        ("outcome", "map"),
        ("delivered_to", "absent"),
        ("delivered", "boolean"),
        ("leased_until_ms", "integer"),
        ("body", "absent"),
    ] {
        assert_eq!(kind(&pending, field), expected, "notification field {field}");
    }
}
