//! The whole-domain suite: every rule of the domain contract, run through the service on a
//! given set of four adapters. See [`crate::domain_conformance`].

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::future::join_all;
use thisthat_core::{
    BeginUpload, Competition, CompetitionId, DeclaredPhoto, DeliveryMode, Error, FeedQuery, MediaType, NewCompetition,
    Rules, Status, Thisthat, UserId, media::sniff, ports::GetOptions,
};

pub use super::soak::soak_under_chaos;
use super::{DomainHarness, SignedUrls};
use crate::{
    faults::{FailNext, ManualClock},
    fixtures::{device, user},
    photos,
};

/// Turns every rule of the domain contract into one `#[tokio::test]` each. The argument gives
/// a fresh [`DomainHarness`].
///
/// The list sits next to the cases it names, and a test refuses a `pub async fn` case of this
/// file that is missing from it.
#[macro_export]
macro_rules! domain_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            domain,
            [
                create_stores_photos_and_categories,
                wrong_photo_counts_are_rejected,
                non_images_are_rejected,
                oversized_photos_are_rejected,
                bad_titles_are_rejected,
                unsafe_photos_reject_everything,
                votes_return_the_tally,
                every_vote_rejection_changes_nothing,
                malformed_ids_are_invalid_input,
                the_24th_vote_closes_and_notifies_once,
                ties_are_announced,
                a_thousand_racing_voters,
                failed_delivery_stays_pending_until_retried,
                a_crash_after_the_close_is_recovered,
                racing_delivery_workers_notify_once,
                gone_devices_are_removed,
                signed_upload_flow,
                upload_finish_rejects_bad_uploads,
                feed_through_the_service,
                photo_urls_download_the_photos,
                hostile_photos_are_refused,
                metadata_never_reaches_voters,
                originals_can_be_left_unstored,
                devices_register_and_unregister,
                an_unclear_push_failure_is_retried_with_the_same_key,
                a_vote_whose_answer_was_lost_counts_once,
                a_photo_put_whose_answer_was_lost_still_creates,
                a_lost_write_whose_read_back_fails_is_unavailable,
                upload_writes_whose_answers_were_lost_still_succeed,
                a_retry_sends_only_to_the_devices_it_missed,
                maintenance_sweeps_orphans_and_expired_drafts,
                soak_under_chaos,
            ]
        );
    };
}

struct World {
    service: Thisthat,
    clock: Arc<ManualClock>,
}

fn world(h: &impl DomainHarness, delivery: DeliveryMode) -> World {
    world_on(h.backend(), delivery)
}

fn world_on(backend: thisthat_core::Backend, delivery: DeliveryMode) -> World {
    world_with(backend, delivery, Rules::default())
}

fn world_with(backend: thisthat_core::Backend, delivery: DeliveryMode, rules: Rules) -> World {
    let clock = Arc::new(ManualClock::new(crate::fixtures::now_ms()));
    let service = Thisthat::builder(backend)
        .rules(rules)
        .clock(clock.clone())
        .delivery(delivery)
        .build()
        .expect("the suite's rules are valid");
    World { service, clock }
}

/// Every key stored under a competition's prefix, in order.
async fn stored_keys(service: &Thisthat, id: &CompetitionId) -> Vec<String> {
    let prefix = format!("competitions/{id}/");
    let mut keys = Vec::new();
    let mut next = None;
    loop {
        let page = service.backend().blobs.list(&prefix, next).await.expect("list");
        keys.extend(page.blobs.into_iter().map(|b| b.key.to_string()));
        match page.next {
            Some(n) => next = Some(n),
            None => return keys,
        }
    }
}

async fn create(service: &Thisthat, owner: &str) -> Competition {
    service
        .create_competition(
            &user(owner),
            NewCompetition {
                title: Some("Which one?".into()),
                photos: photos::three(),
            },
        )
        .await
        .expect("create")
}

/// Asserts that nothing of any competition is stored: no photo, nothing in the feed.
async fn assert_nothing_stored(service: &Thisthat) {
    let blobs = service.backend().blobs.list("competitions/", None).await.expect("list");
    assert!(blobs.blobs.is_empty(), "orphaned blobs: {:?}", blobs.blobs);
    let feed = service.feed(&FeedQuery::new()).await.expect("feed");
    assert!(feed.competitions.is_empty(), "rows left: {:?}", feed.competitions);
}

/// Creating stores the three photos under SDK-built keys with their real formats and sizes,
/// and the competition opens with categories from confident labels.
pub async fn create_stores_photos_and_categories(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let c = create(&w.service, "owner").await;
    assert_eq!(c.status, Status::Open);
    assert_eq!(c.photos.len(), 3);
    let expected = [
        (MediaType::Png, 451, 300),
        (MediaType::Jpeg, 0, 0),
        (MediaType::Webp, 1, 1),
    ];
    for ((photo, bytes), (media_type, width, height)) in c.photos.iter().zip(photos::three()).zip(expected) {
        assert_eq!(photo.media_type, media_type);
        assert_eq!(photo.size, bytes.len() as u64);
        if width > 0 {
            assert_eq!((photo.width, photo.height), (width, height));
        }
        assert!(
            photo.key.as_str().starts_with(&format!("competitions/{}/", c.id)),
            "{}",
            photo.key
        );
        let stored = w
            .service
            .backend()
            .blobs
            .get(&photo.key, &GetOptions::default())
            .await
            .expect("stored photo");
        assert_eq!(stored.body, bytes);
        assert!(photo.original_kept);
        let display = photo.display.as_ref().expect("a display variant");
        let variant = w
            .service
            .backend()
            .blobs
            .get(&display.key, &GetOptions::default())
            .await
            .expect("stored variant");
        assert_eq!(variant.body.len() as u64, display.size);
        let info = sniff(&variant.body).expect("the variant is an image");
        assert_eq!(
            (info.media_type, info.width, info.height),
            (display.media_type, display.width, display.height)
        );
        assert!(display.width.max(display.height) <= w.service.rules().display_max_side);
        assert_eq!(photos::metadata_markers(&variant.body), Vec::<&str>::new());
        for label in &photo.labels {
            assert!((0.0..=1.0).contains(&label.confidence));
        }
    }
    let threshold = w.service.rules().category_confidence;
    for category in &c.categories {
        assert!(
            c.photos
                .iter()
                .flat_map(|p| &p.labels)
                .any(|l| &l.name == category && l.confidence >= threshold),
            "category {category} has no confident label"
        );
    }
    let mut unique = c.categories.clone();
    unique.dedup();
    assert_eq!(unique.len(), c.categories.len(), "categories are deduplicated");
    assert_eq!(w.service.competition(&c.id).await.expect("read back"), c);
}

/// Two or four photos are invalid input, and nothing is stored.
pub async fn wrong_photo_counts_are_rejected(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    for count in [0, 2, 4] {
        let photos = photos::three().into_iter().cycle().take(count).collect();
        let r = w
            .service
            .create_competition(&user("owner"), NewCompetition { title: None, photos })
            .await;
        assert!(
            matches!(r, Err(Error::InvalidInput { field: "photos", .. })),
            "{count} photos: {r:?}"
        );
    }
    assert_nothing_stored(&w.service).await;
}

/// A file that is not an accepted image is an unsupported media type, whatever else the
/// other photos are, and nothing is stored.
pub async fn non_images_are_rejected(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    for bad in [
        photos::not_an_image(),
        photos::gif(),
        Bytes::from_static(b"\xFF\xD8\xFF\xE0 a forged jpeg"),
    ] {
        let mut three = photos::three();
        three[2] = bad;
        let r = w
            .service
            .create_competition(
                &user("owner"),
                NewCompetition {
                    title: None,
                    photos: three,
                },
            )
            .await;
        assert!(matches!(r, Err(Error::UnsupportedMediaType { .. })), "{r:?}");
    }
    assert_nothing_stored(&w.service).await;
}

/// A photo over the size limit is too large, and nothing is stored.
pub async fn oversized_photos_are_rejected(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let limit = w.service.rules().max_photo_bytes;
    let mut three = photos::three();
    three[1] = photos::png_of_size(limit as usize + 1);
    let r = w
        .service
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: None,
                photos: three,
            },
        )
        .await;
    assert!(
        matches!(r, Err(Error::TooLarge { size, limit: l, .. }) if size == limit + 1 && l == limit),
        "{r:?}"
    );
    assert_nothing_stored(&w.service).await;
}

/// A title over 140 characters or with control characters is invalid input.
pub async fn bad_titles_are_rejected(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    for title in ["x".repeat(141), "line\nbreak".to_string(), "bell\u{7}".to_string()] {
        let r = w
            .service
            .create_competition(
                &user("owner"),
                NewCompetition {
                    title: Some(title),
                    photos: photos::three(),
                },
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput { field: "title", .. })), "{r:?}");
    }
    let fine = "é".repeat(140);
    let c = w
        .service
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: Some(fine.clone()),
                photos: photos::three(),
            },
        )
        .await;
    assert_eq!(c.expect("140 characters are fine").title, Some(fine));
}

/// A photo the classifier flags as unsafe rejects the competition, and nothing of it remains.
pub async fn unsafe_photos_reject_everything(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let Some(flagged) = h.unsafe_photo().await else {
        assert!(
            !w.service.backend().classifier.screens_content(),
            "a screening classifier needs an unsafe_photo to test"
        );
        return;
    };
    let mut three = photos::three();
    three[1] = flagged;
    let r = w
        .service
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: None,
                photos: three,
            },
        )
        .await;
    assert!(matches!(r, Err(Error::UnsafeContent { photo: 1, .. })), "{r:?}");
    assert_nothing_stored(&w.service).await;
}

/// An accepted vote returns the tally so far.
pub async fn votes_return_the_tally(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let c = create(&w.service, "owner").await;
    let r = w.service.vote(&user("v1"), &c.id, 1).await.expect("vote");
    assert_eq!(r.tally.counts(), &[0, 1, 0]);
    let r = w.service.vote(&user("v2"), &c.id, 1).await.expect("vote");
    assert_eq!(r.tally.counts(), &[0, 2, 0]);
}

/// Each rejection of the contract has its own typed error, and none changes the tally.
pub async fn every_vote_rejection_changes_nothing(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let c = create(s, "owner").await;
    s.vote(&user("first"), &c.id, 0).await.expect("vote");
    let before = s.competition(&c.id).await.expect("read");
    assert!(matches!(
        s.vote(&user("owner"), &c.id, 0).await,
        Err(Error::OwnCompetition)
    ));
    assert!(matches!(
        s.vote(&user("first"), &c.id, 1).await,
        Err(Error::AlreadyVoted)
    ));
    assert!(matches!(
        s.vote(&user("other"), &c.id, 3).await,
        Err(Error::InvalidInput { field: "choice", .. })
    ));
    assert!(matches!(
        s.vote(&user("other"), &CompetitionId::new(), 0).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.competition(&c.id).await.expect("read"), before);
    // Close it, then try again.
    for i in 1..24 {
        s.vote(&user(&format!("v{i}")), &c.id, i % 3).await.expect("vote");
    }
    let closed = s.competition(&c.id).await.expect("read");
    assert_eq!(closed.status, Status::Closed);
    assert!(matches!(s.vote(&user("late"), &c.id, 0).await, Err(Error::Closed)));
    assert_eq!(s.competition(&c.id).await.expect("read"), closed);
}

/// Malformed ids, users, keys and cursors are invalid input, never not-found or a panic.
pub async fn malformed_ids_are_invalid_input(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    for bad in [
        "",
        "nope",
        "01jd4zq8vj5yh0j3w6px2e9k7m",
        "../../../etc/passwd",
        "01JD4ZQ8VJ5YH0J3W6PX2E9K7M0",
    ] {
        assert!(
            matches!(bad.parse::<CompetitionId>(), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(bad.parse::<thisthat_core::Cursor>(), Err(Error::InvalidInput { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(UserId::new("a/b"), Err(Error::InvalidInput { .. })));
    assert!(matches!(
        thisthat_core::BlobKey::new("../x"),
        Err(Error::InvalidInput { .. })
    ));
    let r = w
        .service
        .feed(&FeedQuery {
            limit: 0,
            ..FeedQuery::new()
        })
        .await;
    assert!(matches!(r, Err(Error::InvalidInput { field: "limit", .. })));
}

/// The 24th vote closes the competition with its result fixed, and the owner is notified once
/// on every registered device with who won and by how much.
pub async fn the_24th_vote_closes_and_notifies_once(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let phone = s.register_device(device("owner")).await.expect("register phone");
    let tablet = s.register_device(device("owner")).await.expect("register tablet");
    let c = create(s, "owner").await;
    // 12 for photo 2, 8 for photo 3, 4 for photo 1.
    let choices = std::iter::repeat_n(1, 12)
        .chain(std::iter::repeat_n(2, 8))
        .chain(std::iter::repeat_n(0, 4));
    let mut closing = None;
    for (i, choice) in choices.enumerate() {
        let r = s.vote(&user(&format!("v{i}")), &c.id, choice).await.expect("vote");
        assert_eq!(r.closed.is_some(), i == 23, "vote {i}");
        closing = r.closed.or(closing);
    }
    let outcome = closing.expect("closed");
    assert_eq!(outcome.tally.counts(), &[4, 12, 8]);
    assert_eq!(outcome.winners, vec![1]);
    let stored = s.competition(&c.id).await.expect("read");
    assert_eq!(stored.outcome, Some(outcome));
    for endpoint in [&phone, &tablet] {
        let got = h.delivered(endpoint).await.expect("inspect");
        assert_eq!(got.len(), 1, "exactly one push per device");
        assert_eq!(got[0].competition, c.id);
        assert_eq!(
            got[0].body,
            "Photo 2 won with 12 of 24 votes, 4 ahead of the runner-up."
        );
    }
    assert_eq!(
        s.deliver_pending().await.expect("deliver").delivered,
        0,
        "nothing left pending"
    );
}

/// When one of the owner's three devices fails, the notification stays pending, and the
/// retry sends only to that device: every device gets the result exactly once.
pub async fn a_retry_sends_only_to_the_devices_it_missed(h: &impl DomainHarness) {
    // The first push fails, whichever device it goes to; the others go through.
    let w = world_on(
        h.backend().layer(crate::faults::FailNext::new("notifier", "send", 1)),
        DeliveryMode::Inline,
    );
    let s = &w.service;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(s.register_device(device("owner")).await.expect("register"));
    }
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, 1).await.expect("vote");
    }
    let mut reached = 0;
    for d in &devices {
        reached += h.delivered(d).await.expect("inspect").len();
    }
    assert_eq!(reached, 2, "two of three devices reached inline");
    w.clock.advance(Duration::from_secs(3600));
    let report = s.deliver_pending().await.expect("deliver");
    assert_eq!(report.delivered, 1, "{report:?}");
    for d in &devices {
        let got = h.delivered(d).await.expect("inspect");
        assert_eq!(got.len(), 1, "device {} got {got:?}", d.device.token);
        assert_eq!(got[0].idempotency_key, format!("thisthat-result-{}", c.id));
    }
    assert_eq!(s.deliver_pending().await.expect("deliver").delivered, 0, "nothing left");
}

/// The maintenance pass removes blobs no competition refers to and drafts whose upload URLs
/// expired long ago (with their uploads, or with none), once they are older than the grace,
/// and nothing else.
pub async fn maintenance_sweeps_orphans_and_expired_drafts(h: &impl DomainHarness) {
    use thisthat_core::{BlobKey, ports::PutOptions};
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let blobs = s.backend().blobs.clone();
    let kept = create(s, "owner").await;
    // A creation that failed and whose clean-up failed too: a photo of no competition.
    let orphan = BlobKey::photo(&CompetitionId::new(), 0, MediaType::Png);
    blobs
        .put(&orphan, photos::three().remove(0), &PutOptions::default())
        .await
        .expect("put the orphan");
    // A draft with one of its three photos uploaded, never finished.
    let draft = match s.begin_upload(&user("owner"), declared()).await {
        Ok(ticket) => {
            let key = BlobKey::photo(&ticket.competition, 0, MediaType::Png);
            blobs
                .put(&key, photos::three().remove(0), &PutOptions::default())
                .await
                .expect("upload the draft's first photo");
            Some((ticket.competition, key))
        }
        Err(Error::Unsupported { .. }) if h.signed_urls() == SignedUrls::Unsupported => None,
        Err(e) => panic!("begin upload: {e:?}"),
    };
    // A draft to which nothing was uploaded: only the database knows it.
    let bare = match s.begin_upload(&user("owner"), declared()).await {
        Ok(ticket) => Some(ticket.competition),
        Err(Error::Unsupported { .. }) if h.signed_urls() == SignedUrls::Unsupported => None,
        Err(e) => panic!("begin upload: {e:?}"),
    };
    let stored = |prefix: String| {
        let blobs = blobs.clone();
        async move { blobs.list(&prefix, None).await.expect("list").blobs.len() }
    };
    let kept_blobs = stored(format!("competitions/{}/", kept.id)).await;
    assert!(kept_blobs >= 3, "the competition's photos are stored");

    let young = s.maintain().await.expect("maintain");
    assert_eq!(
        (young.sweep.orphans_removed, young.sweep.drafts_expired),
        (0, 0),
        "nothing is older than the grace: {young:?}"
    );
    assert!(
        blobs.head(&orphan).await.is_ok(),
        "a young orphan may be a creation under way"
    );

    let rules = s.rules().clone();
    w.clock
        .advance(rules.orphan_grace + rules.upload_url_ttl + Duration::from_secs(60));
    let pass = s.maintain().await.expect("maintain");
    let gone = blobs.head(&orphan).await;
    assert!(
        matches!(gone, Err(Error::NotFound { .. })),
        "the orphan is removed: {gone:?}"
    );
    assert_eq!(
        stored(format!("competitions/{}/", kept.id)).await,
        kept_blobs,
        "a competition's photos stay"
    );
    assert_eq!(s.competition(&kept.id).await.expect("read").id, kept.id);
    match draft {
        Some((id, key)) => {
            assert_eq!(pass.sweep.drafts_expired, 2, "both drafts: {pass:?}");
            let bare = bare.expect("signed uploads work");
            let finish = s.finish_upload(&user("owner"), &bare).await;
            assert!(
                matches!(finish, Err(Error::NotFound { .. })),
                "the draft without uploads is gone too: {finish:?}"
            );
            assert_eq!(
                pass.sweep.orphans_removed, 2,
                "the orphan and the draft's upload: {pass:?}"
            );
            let upload = blobs.head(&key).await;
            assert!(matches!(upload, Err(Error::NotFound { .. })), "{upload:?}");
            let finish = s.finish_upload(&user("owner"), &id).await;
            assert!(
                matches!(finish, Err(Error::NotFound { .. })),
                "the draft is gone: {finish:?}"
            );
        }
        None => assert_eq!(pass.sweep.orphans_removed, 1, "{pass:?}"),
    }
    let again = s.maintain().await.expect("maintain again");
    assert_eq!(again.sweep.orphans_removed + again.sweep.drafts_expired, 0, "{again:?}");
}

/// A tie is stored with every tied photo as a winner and announced as a tie.
pub async fn ties_are_announced(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let phone = s.register_device(device("owner")).await.expect("register");
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, if i % 2 == 0 { 0 } else { 2 })
            .await
            .expect("vote");
    }
    assert_eq!(
        s.competition(&c.id).await.expect("read").outcome.map(|o| o.winners),
        Some(vec![0, 2])
    );
    let got = h.delivered(&phone).await.expect("inspect");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "It's a tie: photos 1 and 3 got 12 of 24 votes each.");
}

/// 1,000 voters racing on one competition: exactly 24 accepted, the rest told it is closed,
/// and the owner notified exactly once.
pub async fn a_thousand_racing_voters(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = w.service.clone();
    let phone = s.register_device(device("owner")).await.expect("register");
    let c = create(&s, "owner").await;
    let tasks = (0..1000).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.vote(&user(&format!("voter-{i}")), &c.id, i % 3).await })
    });
    let (mut accepted, mut closes, mut closed) = (0, 0, 0);
    for joined in join_all(tasks).await {
        match joined.expect("task") {
            Ok(r) => {
                accepted += 1;
                closes += usize::from(r.closed.is_some());
            }
            Err(Error::Closed) => closed += 1,
            Err(other) => panic!("unexpected rejection {other:?}"),
        }
    }
    assert_eq!((accepted, closes, closed), (24, 1, 976));
    assert_eq!(s.competition(&c.id).await.expect("read").tally.total(), 24);
    assert_eq!(h.delivered(&phone).await.expect("inspect").len(), 1);
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(s.deliver_pending().await.expect("deliver").delivered, 0);
    assert_eq!(h.delivered(&phone).await.expect("inspect").len(), 1);
}

/// When delivery fails at the close, the notification stays pending and a later
/// `deliver_pending` sends it exactly once.
pub async fn failed_delivery_stays_pending_until_retried(h: &impl DomainHarness) {
    let fault = FailNext::new("notifier", "send", 1);
    let w = world_on(h.backend().layer(fault.clone()), DeliveryMode::Inline);
    let s = &w.service;
    let phone = s.register_device(device("owner")).await.expect("register");
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, 0)
            .await
            .expect("the closing vote succeeds even if delivery fails");
    }
    assert_eq!(fault.remaining(), 0, "the send was attempted");
    assert!(h.delivered(&phone).await.expect("inspect").is_empty());
    assert_eq!(
        s.deliver_pending().await.expect("deliver").delivered,
        0,
        "still leased by the failed attempt"
    );
    w.clock.advance(s.rules().notification_lease + Duration::from_secs(1));
    assert_eq!(s.deliver_pending().await.expect("deliver").delivered, 1);
    assert_eq!(h.delivered(&phone).await.expect("inspect").len(), 1);
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(s.deliver_pending().await.expect("deliver").delivered, 0);
    assert_eq!(h.delivered(&phone).await.expect("inspect").len(), 1);
}

/// A process that dies right after the closing vote (before delivery) loses nothing: the
/// notification was recorded with the close, and another process delivers it once.
pub async fn a_crash_after_the_close_is_recovered(h: &impl DomainHarness) {
    let backend = h.backend();
    // Deferred delivery is exactly "the process stopped after the close".
    let dying = world_on(backend.clone(), DeliveryMode::Deferred);
    let phone = dying.service.register_device(device("owner")).await.expect("register");
    let c = create(&dying.service, "owner").await;
    for i in 0..24 {
        dying
            .service
            .vote(&user(&format!("v{i}")), &c.id, 2)
            .await
            .expect("vote");
    }
    drop(dying);
    assert!(h.delivered(&phone).await.expect("inspect").is_empty());
    let next = world_on(backend, DeliveryMode::Inline);
    let report = next.service.deliver_pending().await.expect("deliver");
    assert_eq!(report.delivered, 1);
    let got = h.delivered(&phone).await.expect("inspect");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body,
        "Photo 3 won with 24 of 24 votes, 24 ahead of the runner-up."
    );
}

/// Several delivery workers running at once deliver a notification once.
pub async fn racing_delivery_workers_notify_once(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Deferred);
    let phone = w.service.register_device(device("owner")).await.expect("register");
    let c = create(&w.service, "owner").await;
    for i in 0..24 {
        w.service.vote(&user(&format!("v{i}")), &c.id, 0).await.expect("vote");
    }
    let workers = join_all((0..6).map(|_| {
        let s = w.service.clone();
        tokio::spawn(async move { s.deliver_pending().await })
    }))
    .await;
    let delivered: usize = workers
        .into_iter()
        .map(|r| r.expect("task").expect("deliver").delivered)
        .sum();
    assert_eq!(delivered, 1);
    assert_eq!(h.delivered(&phone).await.expect("inspect").len(), 1);
}

/// A device its provider says is gone is removed, and the others still get the result.
pub async fn gone_devices_are_removed(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let good = s.register_device(device("owner")).await.expect("register");
    let stale = s.register_device(device("owner")).await.expect("register");
    h.expire(&stale).await.expect("expire");
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, 1).await.expect("vote");
    }
    assert_eq!(h.delivered(&good).await.expect("inspect").len(), 1);
    assert!(h.delivered(&stale).await.expect("inspect").is_empty());
    let left = s.backend().database.endpoints(&user("owner")).await.expect("endpoints");
    assert_eq!(
        left.iter().map(|e| &e.device.token).collect::<Vec<_>>(),
        vec![&good.device.token]
    );
}

pub(super) fn declared() -> BeginUpload {
    BeginUpload {
        title: Some("Uploaded straight to storage".into()),
        photos: vec![
            DeclaredPhoto {
                media_type: MediaType::Png,
            },
            DeclaredPhoto {
                media_type: MediaType::Jpeg,
            },
            DeclaredPhoto {
                media_type: MediaType::Webp,
            },
        ],
    }
}

/// The signed-upload flow: three upload URLs, direct uploads, then a finish that checks what
/// arrived and opens the competition. Finishing twice is a conflict.
pub async fn signed_upload_flow(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let owner = user("owner");
    let ticket = s.begin_upload(&owner, declared()).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        assert!(matches!(ticket, Err(Error::Unsupported { .. })), "{ticket:?}");
        return;
    }
    let ticket = ticket.expect("begin");
    assert_eq!(ticket.uploads.len(), 3);
    assert!(
        matches!(s.competition(&ticket.competition).await, Err(Error::NotFound { .. })),
        "drafts are invisible"
    );
    let early = s.finish_upload(&owner, &ticket.competition).await;
    assert!(
        matches!(early, Err(Error::InvalidInput { field: "photos", .. })),
        "{early:?}"
    );
    for (url, bytes) in ticket.uploads.iter().zip(photos::three()) {
        let r = h.direct(url, Some(bytes)).await.expect("upload");
        assert!(r.is_success(), "upload status {}", r.status);
    }
    assert!(matches!(
        s.finish_upload(&user("stranger"), &ticket.competition).await,
        Err(Error::NotFound { .. })
    ));
    let c = s
        .finish_upload(&owner, &ticket.competition)
        .await
        .expect("finish after a too-early finish");
    assert_eq!(c.status, Status::Open);
    assert_eq!((c.photos[0].width, c.photos[0].height), (451, 300));
    assert_eq!(s.competition(&c.id).await.expect("read"), c);
    assert!(matches!(
        s.finish_upload(&owner, &c.id).await,
        Err(Error::Conflict { .. })
    ));
    s.vote(&user("voter"), &c.id, 0)
        .await
        .expect("vote on an uploaded competition");
}

/// A finish that finds the wrong format or an oversized upload rejects the competition and
/// leaves nothing behind.
pub async fn upload_finish_rejects_bad_uploads(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let owner = user("owner");
    if h.signed_urls() == SignedUrls::Unsupported {
        return;
    }
    // Declared JPEG, uploaded a PNG with the signed content type: caught by sniffing.
    let ticket = s.begin_upload(&owner, declared()).await.expect("begin");
    let bodies = [photos::cat_png(), photos::cat_png(), photos::pixel_webp()];
    for (url, bytes) in ticket.uploads.iter().zip(bodies) {
        assert!(h.direct(url, Some(bytes)).await.expect("upload").is_success());
    }
    let r = s.finish_upload(&owner, &ticket.competition).await;
    assert!(matches!(r, Err(Error::UnsupportedMediaType { .. })), "{r:?}");
    assert!(matches!(
        s.backend().database.competition(&ticket.competition).await,
        Err(Error::NotFound { .. })
    ));
    assert_nothing_stored(s).await;

    // Over the limit: refused at the URL where storage enforces it, and at the finish anyway.
    let ticket = s.begin_upload(&owner, declared()).await.expect("begin");
    let limit = s.rules().max_photo_bytes as usize;
    let bodies = [
        photos::png_of_size(limit + 1),
        photos::rocket_jpeg(),
        photos::pixel_webp(),
    ];
    for (url, bytes) in ticket.uploads.iter().zip(bodies) {
        h.direct(url, Some(bytes)).await.expect("upload request");
    }
    let r = s.finish_upload(&owner, &ticket.competition).await;
    assert!(
        matches!(
            r,
            Err(Error::TooLarge { .. } | Error::InvalidInput { field: "photos", .. })
        ),
        "{r:?}"
    );
    if let Err(Error::TooLarge { .. }) = r {
        assert_nothing_stored(s).await;
    }
}

/// The feed through the service: newest first, without the viewer's own, by category.
pub async fn feed_through_the_service(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let a = create(s, "alice").await;
    let b = create(s, "bob").await;
    let ids = |p: thisthat_core::FeedPage| p.competitions.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(s.feed(&FeedQuery::new()).await.expect("feed")), vec![b.id, a.id]);
    let alice = FeedQuery {
        viewer: Some(user("alice")),
        ..FeedQuery::new()
    };
    assert_eq!(ids(s.feed(&alice).await.expect("feed")), vec![b.id]);
    if let Some(category) = a.categories.first() {
        let q = FeedQuery {
            category: Some(category.clone()),
            ..FeedQuery::new()
        };
        assert!(ids(s.feed(&q).await.expect("feed")).contains(&a.id));
    }
    let q = FeedQuery {
        category: Some(thisthat_core::Category::new("no such category").expect("category")),
        ..FeedQuery::new()
    };
    assert!(ids(s.feed(&q).await.expect("feed")).is_empty());
}

/// Photo URLs are signed, time-limited, and download the photos.
pub async fn photo_urls_download_the_photos(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let c = create(&w.service, "owner").await;
    let urls = w.service.photo_urls(&c.id).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        assert!(matches!(urls, Err(Error::Unsupported { .. })), "{urls:?}");
        return;
    }
    let urls = urls.expect("urls");
    assert_eq!(urls.len(), 3);
    for (url, photo) in urls.iter().zip(&c.photos) {
        assert!(url.expires_at > std::time::SystemTime::now());
        let r = h.direct(url, None).await.expect("download");
        assert!(r.is_success(), "status {}", r.status);
        let display = photo.display.as_ref().expect("a display variant");
        let info = sniff(&r.body).expect("an image");
        assert_eq!((info.width, info.height), (display.width, display.height));
        assert_eq!(r.body.len() as u64, display.size, "voters get the display variant");
    }
    // The owner, and only the owner, gets the originals.
    let originals = w.service.original_urls(&user("owner"), &c.id).await.expect("originals");
    for (url, bytes) in originals.iter().zip(photos::three()) {
        let r = h.direct(url, None).await.expect("download");
        assert!(r.is_success(), "status {}", r.status);
        assert_eq!(r.body, bytes);
    }
    assert!(matches!(
        w.service.original_urls(&user("voter"), &c.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.service.photo_urls(&CompetitionId::new()).await,
        Err(Error::NotFound { .. })
    ));
}

fn refused_as(h: &photos::Hostile, r: &thisthat_core::Result<Competition>) -> bool {
    match h.refusal {
        photos::Refusal::UnsupportedMediaType => matches!(r, Err(Error::UnsupportedMediaType { .. })),
        photos::Refusal::TooLarge => matches!(r, Err(Error::TooLarge { .. })),
    }
}

/// Every photo of the hostile set ([`photos::hostile`]: cut short, damaged, with bytes after
/// its end, a PNG header followed by HTML, bomb headers, absurd dimensions) is refused with
/// the error it calls for, through the API and through signed uploads, and nothing of any of
/// those competitions is stored: no blob, no row.
pub async fn hostile_photos_are_refused(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let owner = user("owner");
    for hostile in photos::hostile() {
        let mut three = photos::three();
        three[1] = hostile.bytes.clone();
        let r = s
            .create_competition(
                &owner,
                NewCompetition {
                    title: None,
                    photos: three,
                },
            )
            .await;
        assert!(refused_as(&hostile, &r), "{}: {r:?}", hostile.name);
    }
    assert_nothing_stored(s).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        return;
    }
    // Uploaded straight to storage, as photo 0 (declared PNG): refused at the finish, and the
    // uploads and the draft are gone.
    for hostile in photos::hostile()
        .into_iter()
        .filter(|h| sniff(&h.bytes).ok().map(|i| i.media_type) == Some(MediaType::Png))
    {
        let ticket = s.begin_upload(&owner, declared()).await.expect("begin");
        let mut bodies = photos::three();
        bodies[0] = hostile.bytes.clone();
        for (url, bytes) in ticket.uploads.iter().zip(bodies) {
            assert!(
                h.direct(url, Some(bytes)).await.expect("upload").is_success(),
                "{}",
                hostile.name
            );
        }
        let r = s.finish_upload(&owner, &ticket.competition).await;
        assert!(refused_as(&hostile, &r), "{} (uploaded): {r:?}", hostile.name);
        assert!(
            matches!(
                s.backend().database.competition(&ticket.competition).await,
                Err(Error::NotFound { .. })
            ),
            "{}: the draft is gone",
            hostile.name
        );
        assert_eq!(
            stored_keys(s, &ticket.competition).await,
            Vec::<String>::new(),
            "{}",
            hostile.name
        );
    }
    assert_nothing_stored(s).await;
}

/// A photo with GPS in its EXIF and XMP, taken sideways and larger than the display size, is
/// accepted; what voters can fetch is upright, at most the display size, and carries no
/// metadata at all. Its original (metadata and all) stays reachable by the owner only.
pub async fn metadata_never_reaches_voters(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    // Stored 1600 x 1200, shown 1200 x 1600 (EXIF orientation 6).
    let gps = photos::jpeg_with_gps(1600, 1200);
    assert!(!photos::metadata_markers(&gps).is_empty());
    let mut three = photos::three();
    three[0] = gps.clone();
    let c = s
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: None,
                photos: three,
            },
        )
        .await
        .expect("a photo with metadata is accepted");
    let display = c.photos[0].display.clone().expect("a display variant");
    let side = s.rules().display_max_side;
    assert_eq!(
        (display.width, display.height),
        (side * 3 / 4, side),
        "upright and shrunk"
    );
    let expected = [&display.key, c.photos[1].voter_key(), c.photos[2].voter_key()];
    assert!(expected.iter().all(|k| k.as_str().contains(".display.")));
    let voter_bytes = match s.photo_urls(&c.id).await {
        Ok(urls) => {
            let mut bodies = Vec::new();
            for url in &urls {
                let r = h.direct(url, None).await.expect("download");
                assert!(r.is_success(), "status {}", r.status);
                bodies.push(r.body);
            }
            bodies
        }
        Err(Error::Unsupported { .. }) if h.signed_urls() == SignedUrls::Unsupported => {
            let mut bodies = Vec::new();
            for key in expected {
                bodies.push(
                    s.backend()
                        .blobs
                        .get(key, &GetOptions::default())
                        .await
                        .expect("get")
                        .body,
                );
            }
            bodies
        }
        Err(e) => panic!("photo urls: {e}"),
    };
    for (i, body) in voter_bytes.iter().enumerate() {
        assert_eq!(
            photos::metadata_markers(body),
            Vec::<&str>::new(),
            "photo {i} as voters get it"
        );
        assert_ne!(body, &gps, "voters never get the original");
    }
    let info = sniff(&voter_bytes[0]).expect("an image");
    assert_eq!((info.width, info.height), (display.width, display.height));
    if h.signed_urls() != SignedUrls::Unsupported {
        let originals = s
            .original_urls(&user("owner"), &c.id)
            .await
            .expect("the owner's originals");
        let r = h.direct(&originals[0], None).await.expect("download");
        assert_eq!(r.body, gps, "the owner gets the original as uploaded");
    }
}

/// With `keep_originals` off only the display variants are stored, through the API and
/// through signed uploads (whose uploads are deleted once the competition opens), and the
/// owner is told there are no originals.
pub async fn originals_can_be_left_unstored(h: &impl DomainHarness) {
    let rules = Rules {
        keep_originals: false,
        ..Rules::default()
    };
    let w = world_with(h.backend(), DeliveryMode::Inline, rules);
    let s = &w.service;
    let owner = user("owner");
    let c = create(s, "owner").await;
    let displays: Vec<String> = c
        .photos
        .iter()
        .map(|p| p.display.as_ref().expect("a display variant").key.to_string())
        .collect();
    assert!(c.photos.iter().all(|p| !p.original_kept));
    assert_eq!(stored_keys(s, &c.id).await, displays);
    assert!(matches!(
        s.original_urls(&owner, &c.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.competition(&c.id).await.expect("read back"), c);
    if h.signed_urls() == SignedUrls::Unsupported {
        return;
    }
    let ticket = s.begin_upload(&owner, declared()).await.expect("begin");
    for (url, bytes) in ticket.uploads.iter().zip(photos::three()) {
        assert!(h.direct(url, Some(bytes)).await.expect("upload").is_success());
    }
    let c = s.finish_upload(&owner, &ticket.competition).await.expect("finish");
    let displays: Vec<String> = c
        .photos
        .iter()
        .map(|p| p.display.as_ref().expect("a display variant").key.to_string())
        .collect();
    assert_eq!(stored_keys(s, &c.id).await, displays, "the uploads are deleted");
    assert!(c.photos.iter().all(|p| !p.original_kept));
}

/// Devices register, list, and unregister; an unregistered device gets no result.
pub async fn devices_register_and_unregister(h: &impl DomainHarness) {
    let w = world(h, DeliveryMode::Inline);
    let s = &w.service;
    let kept = s.register_device(device("owner")).await.expect("register");
    let dropped = s.register_device(device("owner")).await.expect("register");
    s.unregister_device(&user("owner"), &dropped.device.token)
        .await
        .expect("unregister");
    s.unregister_device(&user("owner"), "never-registered")
        .await
        .expect("unregister unknown");
    assert!(matches!(
        thisthat_core::Device::new(user("owner"), thisthat_core::Platform::Fcm, ""),
        Err(Error::InvalidInput { field: "token", .. })
    ));
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, 0).await.expect("vote");
    }
    assert_eq!(h.delivered(&kept).await.expect("inspect").len(), 1);
    assert!(h.delivered(&dropped).await.expect("inspect").is_empty());
}

/// A push that reached the provider but whose answer was lost is retried with the same
/// idempotency key (so a provider that dedupes drops it), and the notification is then done.
pub async fn an_unclear_push_failure_is_retried_with_the_same_key(h: &impl DomainHarness) {
    let lost = crate::faults::LoseReply::new("notifier", "send", 1);
    let w = world_on(h.backend().layer(lost.clone()), DeliveryMode::Inline);
    let s = &w.service;
    let phone = s.register_device(device("owner")).await.expect("register");
    let c = create(s, "owner").await;
    for i in 0..24 {
        s.vote(&user(&format!("v{i}")), &c.id, 1).await.expect("vote");
    }
    assert_eq!(lost.remaining(), 0, "the first push was made and its answer lost");
    w.clock.advance(s.rules().notification_lease + Duration::from_secs(1));
    assert_eq!(s.deliver_pending().await.expect("deliver").delivered, 1);
    let got = h.delivered(&phone).await.expect("inspect");
    assert_eq!(got.len(), 2, "the provider saw the push and its retry");
    assert_eq!(
        got[0].idempotency_key, got[1].idempotency_key,
        "with one idempotency key to dedupe on"
    );
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        s.deliver_pending().await.expect("deliver").delivered,
        0,
        "done after the retry"
    );
}

/// A vote that was recorded but whose answer was lost, retried by the retry layer, is counted
/// once, and the retry is answered with the vote's receipt (votes are idempotent).
pub async fn a_vote_whose_answer_was_lost_counts_once(h: &impl DomainHarness) {
    let retry = thisthat_core::layers::Retry::new(thisthat_core::layers::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    });
    let w = world_on(
        h.backend()
            .layer(crate::faults::LoseReply::new("database", "cast_vote", 1))
            .layer(retry),
        DeliveryMode::Inline,
    );
    let c = create(&w.service, "owner").await;
    let receipt = w
        .service
        .vote(&user("voter"), &c.id, 2)
        .await
        .expect("the retry finds its own first attempt and answers with its receipt");
    assert_eq!(receipt.tally.counts(), &[0, 0, 1]);
    assert_eq!(
        w.service.competition(&c.id).await.expect("read").tally.counts(),
        &[0, 0, 1]
    );
}

/// A photo stored during a creation whose answer was lost, sent again by the retry layer, meets
/// its own first attempt (a create-only put answers `Conflict`): the creation still succeeds,
/// with the photo stored once. Found by the soak.
pub async fn a_photo_put_whose_answer_was_lost_still_creates(h: &impl DomainHarness) {
    let retry = thisthat_core::layers::Retry::new(thisthat_core::layers::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    });
    let lost = crate::faults::LoseReply::new("blob", "put", 1);
    let w = world_on(h.backend().layer(lost.clone()).layer(retry), DeliveryMode::Inline);
    let c = create(&w.service, "owner").await;
    assert_eq!(lost.remaining(), 0, "a put was made and its answer lost");
    let stored = w.service.competition(&c.id).await.expect("the competition is stored");
    assert_eq!(stored, c);
    for photo in &c.photos {
        w.service
            .backend()
            .blobs
            .head(photo.voter_key())
            .await
            .expect("every photo is stored");
    }
}

/// A creation write whose answer was lost, sent again by the retry layer into its own first
/// attempt (`Conflict`), and whose read-back then fails too, cannot know whether it landed: the
/// creation answers `Unavailable` (a client retries), never a `Conflict` it would take as
/// final. For a photo put and for the competition's insert. Found by the soak under load.
pub async fn a_lost_write_whose_read_back_fails_is_unavailable(h: &impl DomainHarness) {
    let retry = thisthat_core::layers::Retry::new(thisthat_core::layers::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    });
    for (port, write, read) in [
        ("blob", "put", "get"),
        ("database", "insert_competition", "competition"),
    ] {
        let lost = crate::faults::LoseReply::new(port, write, 1);
        let reads = FailNext::new(port, read, 3);
        let w = world_on(
            h.backend()
                .layer(lost.clone())
                .layer(reads.clone())
                .layer(retry.clone()),
            DeliveryMode::Inline,
        );
        let outcome = w
            .service
            .create_competition(
                &user("owner"),
                NewCompetition {
                    title: None,
                    photos: photos::three(),
                },
            )
            .await;
        assert!(
            matches!(outcome, Err(Error::Unavailable { .. })),
            "{port}.{write} lost, its read-back failing: {outcome:?}"
        );
        assert_eq!(lost.remaining(), 0, "a {write} was made and its answer lost");
        assert_eq!(reads.remaining(), 0, "every read-back attempt failed");
    }
}

/// The signed-upload flow's writes whose answers were lost (the draft's insert, then its
/// publication), sent again by the retry layer, meet their own first attempts: beginning and
/// finishing still succeed. Found by the soak.
pub async fn upload_writes_whose_answers_were_lost_still_succeed(h: &impl DomainHarness) {
    let retry = thisthat_core::layers::Retry::new(thisthat_core::layers::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    });
    let insert = crate::faults::LoseReply::new("database", "insert_competition", 1);
    let publish = crate::faults::LoseReply::new("database", "publish_competition", 1);
    let w = world_on(
        h.backend().layer(insert.clone()).layer(publish.clone()).layer(retry),
        DeliveryMode::Inline,
    );
    let s = &w.service;
    let owner = user("owner");
    let ticket = s.begin_upload(&owner, declared()).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        assert!(matches!(ticket, Err(Error::Unsupported { .. })), "{ticket:?}");
        return;
    }
    let ticket = ticket.expect("begin, although the draft's insert lost its answer");
    assert_eq!(insert.remaining(), 0, "the insert was made and its answer lost");
    for (url, bytes) in ticket.uploads.iter().zip(photos::three()) {
        let r = h.direct(url, Some(bytes)).await.expect("upload");
        assert!(r.is_success(), "upload status {}", r.status);
    }
    let c = s
        .finish_upload(&owner, &ticket.competition)
        .await
        .expect("finish, although the publication lost its answer");
    assert_eq!(publish.remaining(), 0, "the publication was made and its answer lost");
    assert_eq!(c.status, Status::Open);
    assert_eq!(s.competition(&c.id).await.expect("read"), c);
}
