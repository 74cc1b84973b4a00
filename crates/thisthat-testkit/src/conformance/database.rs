//! The database suite. See [`crate::database_conformance`].

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use futures::future::join_all;
use thisthat_core::{
    Category, Competition, Endpoint, Error, FeedQuery, Status, Tally,
    ports::{Database, NotificationClaim},
};

use super::DatabaseHarness;
use crate::fixtures::{competition, user, vote};

/// Turns the database cases into one `#[tokio::test]` each. The argument is an expression
/// (usually an `async` block) giving a fresh, empty `Arc<dyn Database>`.
///
/// The list sits next to the cases it names, and a test refuses a `pub async fn` case of this
/// file that is missing from it.
#[macro_export]
macro_rules! database_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            database,
            [
                competitions_roundtrip,
                duplicate_ids_conflict,
                missing_competitions_are_not_found,
                votes_are_counted,
                second_votes_are_rejected,
                repeated_votes_get_their_original_receipt,
                a_repeated_closing_vote_gets_its_receipt,
                deliveries_are_recorded_per_device,
                owners_cannot_vote,
                choices_outside_the_photos_are_rejected,
                votes_on_unknown_or_draft_competitions_are_not_found,
                the_threshold_vote_closes_and_records_the_notification,
                ties_are_kept,
                racing_voters_close_exactly_once,
                drafts_publish_once,
                drafts_delete,
                expired_drafts_are_listed_oldest_first,
                feed_is_newest_first_and_paginates,
                feed_filters_by_category_and_viewer,
                notifications_are_leased,
                racing_claims_lease_once,
                notifications_complete_once,
                endpoints_are_saved_replaced_and_deleted,
                filtered_feeds_page_past_non_matching_rows,
                awkward_ids_and_tokens_roundtrip,
            ]
        );
    };
}

async fn open(db: &dyn Database, owner: &str, votes_to_close: u32) -> Competition {
    let c = competition(owner, Status::Open, votes_to_close);
    db.insert_competition(&c).await.expect("insert");
    c
}

fn claim(now: SystemTime) -> NotificationClaim {
    NotificationClaim {
        competition: None,
        now,
        lease: Duration::from_secs(60),
        limit: 100,
    }
}

/// A competition reads back exactly as it was written, every field included.
pub async fn competitions_roundtrip(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    assert_eq!(db.competition(&c.id).await.expect("read"), c);
    let mut untitled = competition("owner", Status::Open, 24);
    untitled.title = None;
    untitled.categories = vec![];
    db.insert_competition(&untitled).await.expect("insert untitled");
    assert_eq!(db.competition(&untitled.id).await.expect("read"), untitled);
}

/// Inserting an id twice is a conflict and keeps the first.
pub async fn duplicate_ids_conflict(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    let mut other = c.clone();
    other.title = Some("impostor".into());
    assert!(matches!(
        db.insert_competition(&other).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(db.competition(&c.id).await.expect("read").title, c.title);
}

/// Reading a competition never written is not found.
pub async fn missing_competitions_are_not_found(h: &impl DatabaseHarness) {
    let db = h.database();
    let missing = competition("owner", Status::Open, 24);
    assert!(matches!(db.competition(&missing.id).await, Err(Error::NotFound { .. })));
}

/// Each vote is counted once and the receipt holds the tally so far.
pub async fn votes_are_counted(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    let r1 = db.cast_vote(&vote(&c, "v1", 2)).await.expect("vote 1");
    assert_eq!(r1.tally, Tally::from_counts(vec![0, 0, 1]));
    assert!(r1.closed.is_none());
    let r2 = db.cast_vote(&vote(&c, "v2", 0)).await.expect("vote 2");
    assert_eq!(r2.tally, Tally::from_counts(vec![1, 0, 1]));
    assert_eq!(db.competition(&c.id).await.expect("read").tally, r2.tally);
}

/// The devices a delivery reached are recorded on the pending notification and come back
/// with every later claim, each once, whatever order and repeats they were recorded in; a
/// completed notification takes no more, and a missing one is not found.
pub async fn deliveries_are_recorded_per_device(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 1).await;
    db.cast_vote(&vote(&c, "v", 0)).await.expect("the vote closes it");
    let start = SystemTime::now();
    let first = db.claim_notifications(&claim(start)).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert!(first[0].delivered_to.is_empty(), "nothing reached yet: {:?}", first[0]);
    db.record_deliveries(&c.id, &["phone".to_string()])
        .await
        .expect("record");
    db.record_deliveries(&c.id, &["tablet".to_string(), "phone".to_string()])
        .await
        .expect("record again");
    // The lease is left as it is: nothing to claim until it runs out.
    assert!(db.claim_notifications(&claim(start)).await.expect("claim").is_empty());
    let later = db
        .claim_notifications(&claim(start + Duration::from_secs(61)))
        .await
        .expect("claim after the lease");
    assert_eq!(later.len(), 1);
    let mut reached = later[0].delivered_to.clone();
    reached.sort();
    assert_eq!(reached, vec!["phone".to_string(), "tablet".to_string()]);
    db.complete_notification(&c.id, SystemTime::now())
        .await
        .expect("complete");
    let done = db.record_deliveries(&c.id, &["laptop".to_string()]).await;
    assert!(matches!(done, Err(Error::Conflict { .. })), "{done:?}");
    let never = competition("owner", Status::Open, 24);
    let missing = db.record_deliveries(&never.id, &["phone".to_string()]).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
}

/// A second vote by the same voter with another choice is rejected, and changes nothing.
pub async fn second_votes_are_rejected(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    db.cast_vote(&vote(&c, "v", 0)).await.expect("first vote");
    for choice in [1, 2] {
        let again = db.cast_vote(&vote(&c, "v", choice)).await;
        assert!(matches!(again, Err(Error::AlreadyVoted)), "choice {choice}: {again:?}");
    }
    assert_eq!(
        db.competition(&c.id).await.expect("read").tally,
        Tally::from_counts(vec![1, 0, 0])
    );
}

/// The same vote sent again (a mobile client retrying after a lost reply) gets the receipt it
/// got the first time, whatever was counted since, and counts once; the same voter with
/// another choice is still [`Error::AlreadyVoted`].
pub async fn repeated_votes_get_their_original_receipt(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    let first = db.cast_vote(&vote(&c, "v", 2)).await.expect("first vote");
    db.cast_vote(&vote(&c, "w", 0)).await.expect("another voter");
    for _ in 0..2 {
        let repeat = db.cast_vote(&vote(&c, "v", 2)).await.expect("the repeat is answered");
        assert_eq!(repeat, first, "the original receipt, not the tally now");
    }
    let other = db.cast_vote(&vote(&c, "v", 1)).await;
    assert!(matches!(other, Err(Error::AlreadyVoted)), "{other:?}");
    assert_eq!(
        db.competition(&c.id).await.expect("read").tally,
        Tally::from_counts(vec![1, 0, 1]),
        "counted once"
    );
}

/// The closing vote sent again gets its receipt, outcome included, although the competition
/// is closed now; it records no second notification. A new voter is still rejected as closed.
pub async fn a_repeated_closing_vote_gets_its_receipt(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 2).await;
    db.cast_vote(&vote(&c, "a", 1)).await.expect("vote a");
    let closing = db.cast_vote(&vote(&c, "b", 1)).await.expect("vote b closes");
    assert!(closing.closed.is_some());
    let repeat = db.cast_vote(&vote(&c, "b", 1)).await.expect("the repeat is answered");
    assert_eq!(repeat, closing);
    let late = db.cast_vote(&vote(&c, "c", 0)).await;
    assert!(matches!(late, Err(Error::Closed)), "{late:?}");
    let stored = db.competition(&c.id).await.expect("read");
    assert_eq!(stored.tally, Tally::from_counts(vec![0, 2, 0]));
    assert_eq!(stored.outcome, closing.closed);
    let pending = db.claim_notifications(&claim(SystemTime::now())).await.expect("claim");
    assert_eq!(pending.len(), 1, "one notification: {pending:?}");
}

/// The owner cannot vote on their own competition; nothing changes.
pub async fn owners_cannot_vote(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    assert!(matches!(
        db.cast_vote(&vote(&c, "owner", 0)).await,
        Err(Error::OwnCompetition)
    ));
    assert_eq!(db.competition(&c.id).await.expect("read").tally.total(), 0);
    // The rejection recorded no vote: had it, the owner's real second attempt would say so.
    assert!(matches!(
        db.cast_vote(&vote(&c, "owner", 1)).await,
        Err(Error::OwnCompetition)
    ));
}

/// A choice outside the photos is invalid input, records no vote, and lets the voter vote
/// properly afterwards.
pub async fn choices_outside_the_photos_are_rejected(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    for choice in [3, 4, usize::MAX] {
        let r = db.cast_vote(&vote(&c, "v", choice)).await;
        assert!(
            matches!(r, Err(Error::InvalidInput { field: "choice", .. })),
            "choice {choice}: {r:?}"
        );
    }
    assert_eq!(db.competition(&c.id).await.expect("read").tally.total(), 0);
    db.cast_vote(&vote(&c, "v", 1))
        .await
        .expect("a valid vote after the invalid ones");
}

/// Votes on a competition that does not exist, or is still a draft, are not found.
pub async fn votes_on_unknown_or_draft_competitions_are_not_found(h: &impl DatabaseHarness) {
    let db = h.database();
    let unknown = competition("owner", Status::Open, 24);
    assert!(matches!(
        db.cast_vote(&vote(&unknown, "v", 0)).await,
        Err(Error::NotFound { .. })
    ));
    let draft = competition("owner", Status::Draft, 24);
    db.insert_competition(&draft).await.expect("insert draft");
    assert!(matches!(
        db.cast_vote(&vote(&draft, "v", 0)).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(db.competition(&draft.id).await.expect("read").tally.total(), 0);
    // Neither rejection recorded a vote: once published, the same voter votes normally.
    let published = Competition {
        status: Status::Open,
        ..draft.clone()
    };
    db.publish_competition(&published).await.expect("publish");
    db.cast_vote(&vote(&draft, "v", 0))
        .await
        .expect("vote after publishing");
}

/// The vote that reaches the threshold closes the competition, fixes the outcome and records
/// one pending notification, all at once; later votes are rejected as closed.
pub async fn the_threshold_vote_closes_and_records_the_notification(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 3).await;
    assert!(
        db.claim_notifications(&claim(SystemTime::now()))
            .await
            .expect("claim")
            .is_empty()
    );
    db.cast_vote(&vote(&c, "a", 1)).await.expect("vote a");
    db.cast_vote(&vote(&c, "b", 1)).await.expect("vote b");
    let closing = db.cast_vote(&vote(&c, "c", 0)).await.expect("vote c");
    let outcome = closing.closed.expect("the third vote closes");
    assert_eq!(outcome.tally, Tally::from_counts(vec![1, 2, 0]));
    assert_eq!(outcome.winners, vec![1]);
    let stored = db.competition(&c.id).await.expect("read");
    assert_eq!(stored.status, Status::Closed);
    assert_eq!(stored.outcome.as_ref(), Some(&outcome));
    assert!(matches!(db.cast_vote(&vote(&c, "d", 0)).await, Err(Error::Closed)));
    // The rejected vote was not recorded: trying again is still "closed", not "already voted".
    assert!(matches!(db.cast_vote(&vote(&c, "d", 0)).await, Err(Error::Closed)));
    assert_eq!(
        db.competition(&c.id).await.expect("read"),
        stored,
        "nothing changes after the close"
    );
    let pending = db.claim_notifications(&claim(SystemTime::now())).await.expect("claim");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].competition, c.id);
    assert_eq!(pending[0].owner, c.owner);
    assert_eq!(pending[0].outcome, outcome);
}

/// A tie keeps every photo with the highest count as a winner.
pub async fn ties_are_kept(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 4).await;
    for (voter, choice) in [("a", 0), ("b", 2), ("c", 0), ("d", 2)] {
        db.cast_vote(&vote(&c, voter, choice)).await.expect("vote");
    }
    let stored = db.competition(&c.id).await.expect("read");
    assert_eq!(stored.outcome.map(|o| o.winners), Some(vec![0, 2]));
}

/// With many voters racing, exactly the threshold's worth are accepted, exactly one of them
/// closes the competition, and the rest are rejected as closed.
pub async fn racing_voters_close_exactly_once(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "owner", 24).await;
    let tasks = (0..200).map(|i| {
        let db = db.clone();
        let v = vote(&c, &format!("voter-{i}"), i % 3);
        tokio::spawn(async move { db.cast_vote(&v).await })
    });
    let (mut accepted, mut closes, mut closed) = (0, 0, 0);
    for result in join_all(tasks).await {
        match result.expect("task") {
            Ok(receipt) => {
                accepted += 1;
                closes += usize::from(receipt.closed.is_some());
            }
            Err(Error::Closed) => closed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, closes, closed), (24, 1, 176));
    let stored = db.competition(&c.id).await.expect("read");
    assert_eq!(stored.tally.total(), 24);
    assert_eq!(
        db.claim_notifications(&claim(SystemTime::now()))
            .await
            .expect("claim")
            .len(),
        1
    );
}

/// A draft publishes once; publishing again conflicts; a missing one is not found.
pub async fn drafts_publish_once(h: &impl DatabaseHarness) {
    let db = h.database();
    let draft = competition("owner", Status::Draft, 24);
    db.insert_competition(&draft).await.expect("insert draft");
    let open = Competition {
        status: Status::Open,
        ..draft.clone()
    };
    db.publish_competition(&open).await.expect("publish");
    assert_eq!(db.competition(&draft.id).await.expect("read"), open);
    assert!(matches!(
        db.publish_competition(&open).await,
        Err(Error::Conflict { .. })
    ));
    let missing = competition("owner", Status::Open, 24);
    assert!(matches!(
        db.publish_competition(&missing).await,
        Err(Error::NotFound { .. })
    ));
}

/// Drafts delete (missing ones too); open competitions refuse.
pub async fn drafts_delete(h: &impl DatabaseHarness) {
    let db = h.database();
    let draft = competition("owner", Status::Draft, 24);
    db.insert_competition(&draft).await.expect("insert draft");
    db.delete_draft(&draft.id).await.expect("delete");
    assert!(matches!(db.competition(&draft.id).await, Err(Error::NotFound { .. })));
    db.delete_draft(&draft.id).await.expect("delete again");
    let c = open(&*db, "owner", 24).await;
    assert!(matches!(db.delete_draft(&c.id).await, Err(Error::Conflict { .. })));
    assert!(db.competition(&c.id).await.is_ok());
}

/// Drafts created before a time are listed oldest first, up to a limit; open competitions,
/// later drafts, deleted and published drafts are not.
pub async fn expired_drafts_are_listed_oldest_first(h: &impl DatabaseHarness) {
    let db = h.database();
    let drafts: Vec<Competition> = (0..4)
        .map(|i| competition(&format!("owner-{i}"), Status::Draft, 24))
        .collect();
    for draft in &drafts {
        db.insert_competition(draft).await.expect("insert draft");
    }
    open(&*db, "owner", 24).await;
    let later = SystemTime::now() + Duration::from_secs(1);
    let ids = |cs: &[&Competition]| cs.iter().map(|c| c.id).collect::<Vec<_>>();
    let all = db.expired_drafts(later, 10).await.expect("list");
    assert_eq!(
        all,
        ids(&drafts.iter().collect::<Vec<_>>()),
        "every draft, oldest first"
    );
    let first_two = db.expired_drafts(later, 2).await.expect("list");
    assert_eq!(first_two, ids(&[&drafts[0], &drafts[1]]), "the oldest, up to the limit");
    let bound = std::time::UNIX_EPOCH + Duration::from_millis(drafts[0].id.timestamp_ms());
    assert!(
        db.expired_drafts(bound, 10).await.expect("list").is_empty(),
        "none created before the first"
    );
    db.delete_draft(&drafts[1].id).await.expect("delete");
    let published = Competition {
        status: Status::Open,
        ..drafts[2].clone()
    };
    db.publish_competition(&published).await.expect("publish");
    let left = db.expired_drafts(later, 10).await.expect("list");
    assert_eq!(
        left,
        ids(&[&drafts[0], &drafts[3]]),
        "deleted and published drafts are gone"
    );
}

/// The feed holds open competitions only, newest first, and pages through all of them.
pub async fn feed_is_newest_first_and_paginates(h: &impl DatabaseHarness) {
    let db = h.database();
    let mut expected = Vec::new();
    for i in 0..7 {
        expected.push(open(&*db, &format!("owner-{i}"), 24).await.id);
    }
    db.insert_competition(&competition("owner", Status::Draft, 24))
        .await
        .expect("draft");
    let closing = open(&*db, "owner", 1).await;
    db.cast_vote(&vote(&closing, "v", 0)).await.expect("close");
    expected.reverse();
    let mut seen = Vec::new();
    let mut query = FeedQuery {
        limit: 3,
        ..FeedQuery::new()
    };
    for _ in 0..10 {
        let page = db.feed(&query).await.expect("feed");
        assert!(page.competitions.len() <= 3);
        seen.extend(page.competitions.iter().map(|c| c.id));
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

/// The feed filters by category and leaves out the viewer's own competitions.
pub async fn feed_filters_by_category_and_viewer(h: &impl DatabaseHarness) {
    let db = h.database();
    let cats = open(&*db, "alice", 24).await;
    let mut dogs = competition("bob", Status::Open, 24);
    dogs.categories = vec![Category::new("dog").expect("category")];
    db.insert_competition(&dogs).await.expect("insert");
    let ids = |page: thisthat_core::FeedPage| page.competitions.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let dog_feed = FeedQuery {
        category: Some(Category::new("dog").expect("category")),
        ..FeedQuery::new()
    };
    assert_eq!(ids(db.feed(&dog_feed).await.expect("feed")), vec![dogs.id]);
    let alices = FeedQuery {
        viewer: Some(user("alice")),
        ..FeedQuery::new()
    };
    assert_eq!(ids(db.feed(&alices).await.expect("feed")), vec![dogs.id]);
    let carols = FeedQuery {
        viewer: Some(user("carol")),
        ..FeedQuery::new()
    };
    assert_eq!(ids(db.feed(&carols).await.expect("feed")), vec![dogs.id, cats.id]);
}

async fn closed_with_notification(db: &dyn Database) -> Competition {
    let c = open(db, "owner", 1).await;
    db.cast_vote(&vote(&c, "v", 0)).await.expect("closing vote");
    c
}

/// A claimed notification is held off from other claims until its lease runs out; claims can
/// target one competition.
pub async fn notifications_are_leased(h: &impl DatabaseHarness) {
    let db = h.database();
    let a = closed_with_notification(&*db).await;
    let b = closed_with_notification(&*db).await;
    let now = SystemTime::now();
    let only_b = NotificationClaim {
        competition: Some(b.id),
        ..claim(now)
    };
    let got: Vec<_> = db
        .claim_notifications(&only_b)
        .await
        .expect("claim b")
        .into_iter()
        .map(|n| n.competition)
        .collect();
    assert_eq!(got, vec![b.id]);
    let got: Vec<_> = db
        .claim_notifications(&claim(now))
        .await
        .expect("claim")
        .into_iter()
        .map(|n| n.competition)
        .collect();
    assert_eq!(got, vec![a.id], "b is leased");
    assert!(
        db.claim_notifications(&claim(now + Duration::from_secs(59)))
            .await
            .expect("claim")
            .is_empty()
    );
    let later = db
        .claim_notifications(&claim(now + Duration::from_secs(61)))
        .await
        .expect("claim after the lease");
    let later: HashSet<_> = later.into_iter().map(|n| n.competition).collect();
    assert_eq!(later, HashSet::from([a.id, b.id]));
}

/// Of many workers claiming at once, exactly one gets the notification.
pub async fn racing_claims_lease_once(h: &impl DatabaseHarness) {
    let db = h.database();
    closed_with_notification(&*db).await;
    let now = SystemTime::now();
    let claims = join_all((0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.claim_notifications(&claim(now)).await })
    }))
    .await;
    let total: usize = claims.into_iter().map(|r| r.expect("task").expect("claim").len()).sum();
    assert_eq!(total, 1);
}

/// A delivered notification is never claimed again, and never marked delivered twice.
pub async fn notifications_complete_once(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = closed_with_notification(&*db).await;
    db.complete_notification(&c.id, SystemTime::now())
        .await
        .expect("complete");
    assert!(matches!(
        db.complete_notification(&c.id, SystemTime::now()).await,
        Err(Error::Conflict { .. })
    ));
    let far_future = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        db.claim_notifications(&claim(far_future))
            .await
            .expect("claim")
            .is_empty()
    );
    let never_closed = open(&*db, "owner", 24).await;
    assert!(matches!(
        db.complete_notification(&never_closed.id, SystemTime::now()).await,
        Err(Error::NotFound { .. })
    ));
}

/// Devices are saved per user, re-registration replaces, and deletion (even of missing ones)
/// succeeds.
pub async fn endpoints_are_saved_replaced_and_deleted(h: &impl DatabaseHarness) {
    let db = h.database();
    let phone = crate::fixtures::device("alice");
    let tablet = crate::fixtures::device("alice");
    let bobs = crate::fixtures::device("bob");
    for (device, address) in [(&phone, "addr-1"), (&tablet, "addr-2"), (&bobs, "addr-3")] {
        db.save_endpoint(&Endpoint {
            device: device.clone(),
            address: address.into(),
        })
        .await
        .expect("save");
    }
    db.save_endpoint(&Endpoint {
        device: phone.clone(),
        address: "addr-1b".into(),
    })
    .await
    .expect("replace");
    let mut alices: Vec<_> = db
        .endpoints(&user("alice"))
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.address)
        .collect();
    alices.sort();
    assert_eq!(alices, vec!["addr-1b", "addr-2"]);
    db.delete_endpoint(&user("alice"), &phone.token).await.expect("delete");
    db.delete_endpoint(&user("alice"), &phone.token)
        .await
        .expect("delete again");
    let alices: Vec<_> = db
        .endpoints(&user("alice"))
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.address)
        .collect();
    assert_eq!(alices, vec!["addr-2"]);
    assert_eq!(db.endpoints(&user("bob")).await.expect("list").len(), 1);
    assert!(db.endpoints(&user("nobody")).await.expect("list").is_empty());
}

/// A filtered feed pages past rows that do not match, however they interleave: a page is
/// short only at the end. (A database that filters after limiting, such as a DynamoDB query
/// with `Limit` and a `FilterExpression`, must keep reading.)
pub async fn filtered_feeds_page_past_non_matching_rows(h: &impl DatabaseHarness) {
    let db = h.database();
    let (mut dogs, mut bobs) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let owner = if i % 3 == 0 { "bob" } else { "alice" };
        let mut c = competition(owner, Status::Open, 24);
        if i % 2 == 0 {
            c.categories = vec![Category::new("dog").expect("category")];
            dogs.push(c.id);
        }
        if owner == "bob" {
            bobs.push(c.id);
        }
        db.insert_competition(&c).await.expect("insert");
    }
    dogs.reverse();
    bobs.reverse();
    for (what, base, expected) in [
        (
            "category",
            FeedQuery {
                category: Some(Category::new("dog").expect("category")),
                ..FeedQuery::new()
            },
            dogs,
        ),
        (
            "viewer",
            FeedQuery {
                viewer: Some(user("alice")),
                ..FeedQuery::new()
            },
            bobs,
        ),
    ] {
        let mut query = FeedQuery { limit: 2, ..base };
        let mut seen = Vec::new();
        for _ in 0..20 {
            let page = db.feed(&query).await.expect("feed");
            if page.next.is_some() {
                assert_eq!(page.competitions.len(), 2, "{what}: only the last page may be short");
            }
            seen.extend(page.competitions.iter().map(|c| c.id));
            match page.next {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{what}");
    }
}

/// User ids and device tokens with every character they may hold round-trip and stay
/// distinct, whatever the database uses as keys (`__x__` is reserved in Firestore document
/// ids; `/`, `#`, `?` and `\` are not allowed in Azure Table keys).
pub async fn awkward_ids_and_tokens_roundtrip(h: &impl DatabaseHarness) {
    let db = h.database();
    let c = open(&*db, "__owner__", 24).await;
    for (i, voter) in ["__x__", "auth0|abc", "a.b@c:d", "x-_.:@|y", "UPPER", "upper"]
        .into_iter()
        .enumerate()
    {
        let receipt = db
            .cast_vote(&vote(&c, voter, i % 3))
            .await
            .unwrap_or_else(|e| panic!("vote by {voter:?}: {e}"));
        assert_eq!(receipt.tally.total(), i as u32 + 1);
    }
    assert!(matches!(
        db.cast_vote(&vote(&c, "__x__", 1)).await,
        Err(Error::AlreadyVoted)
    ));
    assert!(matches!(
        db.cast_vote(&vote(&c, "__owner__", 0)).await,
        Err(Error::OwnCompetition)
    ));
    let tokens = ["a/b#c?d%20e\\f", "..", "__tok__", "tok'\"`~!", &"t".repeat(4096)];
    for (i, token) in tokens.iter().enumerate() {
        let device =
            thisthat_core::Device::new(user("__x__"), thisthat_core::Platform::Fcm, *token).expect("valid token");
        db.save_endpoint(&Endpoint {
            device,
            address: format!("addr-{i}"),
        })
        .await
        .expect("save");
    }
    let mut saved: Vec<String> = db
        .endpoints(&user("__x__"))
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.device.token)
        .collect();
    saved.sort();
    let mut expected: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(saved, expected);
    db.delete_endpoint(&user("__x__"), "a/b#c?d%20e\\f")
        .await
        .expect("delete");
    assert_eq!(
        db.endpoints(&user("__x__")).await.expect("list").len(),
        tokens.len() - 1
    );
}
