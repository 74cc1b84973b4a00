//! The Azure adapters against their conformance suites: Blob Storage and Table Storage on
//! Azurite (started by `scripts/with-emulators azure`), Notification Hubs and AI Vision against
//! local wire fakes that check the documented request shapes, and the whole domain on all four
//! together. One test binary, so the SDK is linked once.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fakes::{HUB_KEY, HubFake, VISION_KEY, VisionFake};
use thisthat_azure::{
    AccountKey, AiVisionClassifier, AzureBlobStore, AzureTableDatabase, NotificationHubsNotifier, Screening,
    StorageAuth, TableClient,
};
use thisthat_core::{Backend, CompetitionId, Endpoint, PushMessage, Result};
use thisthat_testkit::{BlobHarness, DomainHarness, NotifierHarness, SignedUrls};

mod fakes;

/// An Azurite URL from the environment; the tests fail without it rather than skip.
fn azurite(var: &str) -> url::Url {
    let raw = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: the Azure tests need Azurite. Run them as \
             `scripts/with-emulators azure -- cargo test -p thisthat-azure`"
        )
    });
    raw.parse()
        .unwrap_or_else(|e| panic!("{var}={raw:?} is not a URL: {e}"))
}

/// A name no other case uses (containers and tables: lower-case letters and digits).
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", CompetitionId::new()).to_lowercase()
}

async fn blob_store() -> Arc<AzureBlobStore> {
    let store = AzureBlobStore::new(
        azurite("THISTHAT_AZURITE_BLOB_URL"),
        &unique("c"),
        StorageAuth::Key(AccountKey::development()),
    )
    .expect("blob store")
    // Small pages, so that the suite's 230-blob listing pages through continuations.
    .with_list_page_size(100);
    store.create_container().await.expect("create container");
    Arc::new(store)
}

struct Blobs(Arc<AzureBlobStore>);

impl BlobHarness for Blobs {
    fn store(&self) -> Arc<dyn thisthat_core::ports::BlobStore> {
        self.0.clone()
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }
}

mod blob {
    use super::*;
    thisthat_testkit::blob_store_conformance!(async { Blobs(blob_store().await) });
}

/// A database in a table of its own.
async fn database() -> Arc<AzureTableDatabase> {
    let table = TableClient::new(
        azurite("THISTHAT_AZURITE_TABLE_URL"),
        &unique("t"),
        StorageAuth::Key(AccountKey::development()),
    )
    .expect("table client");
    let db = AzureTableDatabase::new(table);
    db.create_tables().await.expect("create table");
    Arc::new(db)
}

mod database {
    use super::*;
    thisthat_testkit::database_conformance!(database());
}

/// Notification Hubs against its wire fake.
struct Hub {
    fake: HubFake,
    notifier: Arc<NotificationHubsNotifier>,
}

impl Hub {
    async fn start() -> Self {
        let fake = HubFake::start().await;
        let notifier = Arc::new(NotificationHubsNotifier::new(fake.config(HUB_KEY)).expect("notifier"));
        Hub { fake, notifier }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Every case ends with the fake having seen only documented requests.
        let violations = self.fake.fake.violations();
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "Notification Hubs wire violations: {violations:?}"
            );
        }
    }
}

#[async_trait]
impl NotifierHarness for Hub {
    fn notifier(&self) -> Arc<dyn thisthat_core::ports::Notifier> {
        self.notifier.clone()
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.fake.delivered(&endpoint.address))
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.fake.expire(&endpoint.address);
        Ok(())
    }
}

mod notifier {
    use super::*;
    thisthat_testkit::notifier_conformance!(Hub::start());
}

/// AI Vision against its wire fake.
struct Vision {
    fake: VisionFake,
    classifier: Arc<AiVisionClassifier>,
}

impl Vision {
    async fn start(screening: Screening) -> Self {
        let fake = VisionFake::start().await;
        let classifier = Arc::new(
            AiVisionClassifier::with_key(fake.fake.url().parse().expect("url"), VISION_KEY, screening)
                .expect("classifier"),
        );
        Vision { fake, classifier }
    }
}

impl Drop for Vision {
    fn drop(&mut self) {
        let violations = self.fake.fake.violations();
        if !std::thread::panicking() {
            assert!(violations.is_empty(), "AI Vision wire violations: {violations:?}");
        }
    }
}

impl thisthat_testkit::ClassifierHarness for Vision {
    fn classifier(&self) -> Arc<dyn thisthat_core::ports::Classifier> {
        self.classifier.clone()
    }
}

mod classifier {
    use super::*;
    thisthat_testkit::classifier_conformance!(Vision::start(Screening::AdultV32));
}

mod classifier_without_screening {
    use super::*;
    thisthat_testkit::classifier_conformance!(Vision::start(Screening::None));
}

/// The four Azure adapters together: Blob and Table on Azurite, the hub and Vision on fakes.
struct Azure {
    blobs: Arc<AzureBlobStore>,
    database: Arc<AzureTableDatabase>,
    hub: Hub,
    vision: Vision,
    flagged: Bytes,
}

impl Azure {
    async fn start() -> Self {
        let vision = Vision::start(Screening::AdultV32).await;
        // A valid PNG unlike the suite's own photos, which the fake scores as adult content.
        let flagged = thisthat_testkit::photos::png_of_size(4321);
        vision.fake.flag(flagged.clone());
        Azure {
            blobs: blob_store().await,
            database: database().await,
            hub: Hub::start().await,
            vision,
            flagged,
        }
    }
}

#[async_trait]
impl DomainHarness for Azure {
    fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.hub.notifier.clone(),
            classifier: self.vision.classifier.clone(),
        }
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.hub.fake.delivered(&endpoint.address))
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.hub.fake.expire(&endpoint.address);
        Ok(())
    }

    async fn unsafe_photo(&self) -> Option<Bytes> {
        Some(self.flagged.clone())
    }
}

mod domain {
    use super::*;
    thisthat_testkit::domain_conformance!(Azure::start());
}

mod wire {
    //! What the suites do not reach: documented error answers and request details.
    use super::*;
    use thisthat_core::{
        Device, Error, Platform, UserId,
        ports::{Classifier, Delivery, Notifier, PhotoInput},
    };
    use thisthat_testkit::wire::Reply;

    fn message() -> PushMessage {
        let competition = CompetitionId::new();
        PushMessage {
            title: "Results are in".into(),
            body: "Photo 1 won.".into(),
            competition,
            idempotency_key: format!("thisthat-result-{competition}"),
        }
    }

    #[tokio::test]
    async fn throttled_sends_are_retryable_with_the_hubs_wait() {
        let hub = Hub::start().await;
        let endpoint = hub
            .notifier
            .register(&thisthat_testkit::fixtures::device("alice"))
            .await
            .expect("register");
        hub.fake.script(Reply::status(429).header("Retry-After", "7"));
        let sent = hub.notifier.send(&endpoint, &message()).await;
        assert!(
            matches!(sent, Err(Error::Unavailable { retry_after: Some(d), .. }) if d.as_secs() == 7),
            "{sent:?}"
        );
        hub.fake.script(Reply::status(503));
        assert!(
            hub.notifier
                .send(&endpoint, &message())
                .await
                .is_err_and(|e| e.is_retryable())
        );
        assert!(hub.fake.delivered(&endpoint.address).is_empty());
        assert_eq!(
            hub.notifier.send(&endpoint, &message()).await.expect("send"),
            Delivery::Accepted
        );
    }

    #[tokio::test]
    async fn a_wrong_key_is_a_configuration_error() {
        let hub = Hub::start().await;
        let wrong = NotificationHubsNotifier::new(hub.fake.config("d3Jvbmcta2V5")).expect("notifier");
        let r = wrong.register(&thisthat_testkit::fixtures::device("alice")).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn apns_devices_get_apple_payloads_and_installations() {
        let hub = Hub::start().await;
        let device = Device::new(UserId::new("auth0|bob").expect("user"), Platform::Apns, "ab12cd34").expect("device");
        let endpoint = hub.notifier.register(&device).await.expect("register");
        let installation = hub.fake.installation(&endpoint.address).expect("installed");
        assert_eq!(installation["platform"], "apns");
        assert_eq!(installation["pushChannel"], "ab12cd34");
        let m = message();
        assert_eq!(
            hub.notifier.send(&endpoint, &m).await.expect("send"),
            Delivery::Accepted
        );
        assert_eq!(hub.fake.delivered(&endpoint.address), vec![m]);
        let send = hub
            .fake
            .fake
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/messages/"))
            .expect("a send");
        assert_eq!(send.header("servicebusnotification-format"), Some("apple"));
        assert_eq!(send.header("apns-push-type"), Some("alert"));
        assert_eq!(send.header("apns-priority"), Some("10"));
    }

    #[tokio::test]
    async fn an_installation_the_hub_has_not_processed_yet_is_not_gone() {
        let hub = Hub::start().await;
        // The hub applies installation writes asynchronously: a GET right after the PUT 404s.
        hub.fake.process_asynchronously();
        let endpoint = hub
            .notifier
            .register(&thisthat_testkit::fixtures::device("alice"))
            .await
            .expect("register");
        assert_eq!(
            hub.notifier.send(&endpoint, &message()).await.expect("send"),
            Delivery::Accepted,
            "a device registered a moment ago must not be dropped"
        );
        hub.fake.settle();
        let m = message();
        assert_eq!(
            hub.notifier.send(&endpoint, &m).await.expect("send"),
            Delivery::Accepted
        );
        assert_eq!(hub.fake.delivered(&endpoint.address), vec![m]);

        // Past the grace (zero here), a 404 does mean the installation is gone.
        let impatient = NotificationHubsNotifier::new(hub.fake.config(HUB_KEY))
            .expect("notifier")
            .with_registration_grace(std::time::Duration::ZERO);
        let endpoint = impatient
            .register(&thisthat_testkit::fixtures::device("bob"))
            .await
            .expect("register");
        assert_eq!(
            impatient.send(&endpoint, &message()).await.expect("send"),
            Delivery::Gone
        );
    }

    #[tokio::test]
    async fn a_410_on_the_installation_is_gone_even_right_after_registering() {
        let hub = Hub::start().await;
        let endpoint = hub
            .notifier
            .register(&thisthat_testkit::fixtures::device("alice"))
            .await
            .expect("register");
        hub.fake.script_read(Reply::status(410));
        assert_eq!(
            hub.notifier.send(&endpoint, &message()).await.expect("send"),
            Delivery::Gone
        );
        assert!(hub.fake.delivered(&endpoint.address).is_empty());
    }

    #[tokio::test]
    async fn a_404_on_send_is_a_wrong_hub_not_a_gone_device() {
        let hub = Hub::start().await;
        let endpoint = hub
            .notifier
            .register(&thisthat_testkit::fixtures::device("alice"))
            .await
            .expect("register");
        // What the service answers when no hub is at the URI.
        hub.fake.script(Reply::json(
            404,
            serde_json::json!({"Code": 404, "Detail": "No message branch at the URI."}),
        ));
        let sent = hub.notifier.send(&endpoint, &message()).await;
        assert!(matches!(sent, Err(Error::Config { .. })), "{sent:?}");
    }

    fn photo(bytes: Bytes) -> PhotoInput {
        PhotoInput {
            media_type: thisthat_core::media::sniff(&bytes).expect("image").media_type,
            bytes,
            key: None,
        }
    }

    #[tokio::test]
    async fn vision_errors_map_to_what_callers_can_act_on() {
        let vision = Vision::start(Screening::AdultV32).await;
        let cat = photo(thisthat_testkit::photos::cat_png());
        vision.fake.script(Reply::status(429).header("Retry-After", "3"));
        let r = vision.classifier.classify(&cat).await;
        assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
        let bad_key =
            AiVisionClassifier::with_key(vision.fake.fake.url().parse().expect("url"), "nope", Screening::None)
                .expect("classifier");
        let r = bad_key.classify(&cat).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
        vision.fake.script(Reply::json(
            400,
            serde_json::json!({"error": {"code": "InvalidRequest", "innererror": {"code": "InvalidImageSize"}}}),
        ));
        let r = vision.classifier.classify(&cat).await;
        assert!(matches!(r, Err(Error::InvalidInput { field: "photo", .. })), "{r:?}");
    }

    /// CRC-32 (ISO-HDLC, as PNG chunks use), bit by bit: test data only.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// The cat photo grown past `size` bytes by a private ancillary chunk, which decoders
    /// skip: a real, decodable PNG of over 4 MB without shipping one.
    fn large_png(size: usize) -> Bytes {
        let cat = thisthat_testkit::photos::cat_png();
        // After the 8-byte signature and the 25-byte IHDR chunk.
        let (head, tail) = cat.split_at(33);
        let data = vec![0u8; size];
        let mut chunk = Vec::with_capacity(size + 12);
        chunk.extend_from_slice(&u32::try_from(size).expect("size").to_be_bytes());
        chunk.extend_from_slice(b"thIs");
        chunk.extend_from_slice(&data);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        Bytes::from([head, &chunk, tail].concat())
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[tokio::test]
    async fn photos_the_v32_screen_cannot_read_are_sent_as_jpeg() {
        let vision = Vision::start(Screening::AdultV32).await;
        let large = large_png(5 * 1024 * 1024);
        assert_eq!(
            thisthat_core::media::sniff(&large).expect("a PNG").media_type,
            thisthat_core::MediaType::Png
        );
        for bytes in [large.clone(), thisthat_testkit::photos::pixel_webp()] {
            let c = vision.classifier.classify(&photo(bytes)).await.expect("classify");
            assert!(c.moderation.is_some());
        }
        let requests = vision.fake.fake.requests();
        let screened: Vec<_> = requests.iter().filter(|r| r.path == "/vision/v3.2/analyze").collect();
        assert_eq!(screened.len(), 2);
        for r in screened {
            let info = thisthat_core::media::sniff(&r.body).expect("an image");
            assert_eq!(info.media_type, thisthat_core::MediaType::Jpeg);
            assert!(r.body.len() < 4_000_000, "{}", r.body.len());
        }
        // Image Analysis 4.0 reads both as they are (WebP, and up to 20 MB).
        let tagged: Vec<_> = requests
            .iter()
            .filter(|r| r.path == "/computervision/imageanalysis:analyze")
            .collect();
        assert_eq!(tagged.len(), 2);
        assert_eq!(tagged[0].body, large);
    }

    #[tokio::test]
    async fn vision_labels_are_the_services_tags_and_screening_scores() {
        let vision = Vision::start(Screening::AdultV32).await;
        let flagged = thisthat_testkit::photos::png_of_size(999);
        vision.fake.flag(flagged.clone());
        let c = vision
            .classifier
            .classify(&photo(thisthat_testkit::photos::cat_png()))
            .await
            .expect("classify");
        let names: Vec<_> = c.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["cat", "indoor", "whisker"]);
        let moderation = c.moderation.expect("screened");
        assert!(moderation.iter().all(|l| l.confidence < 0.1), "{moderation:?}");
        let c = vision.classifier.classify(&photo(flagged)).await.expect("classify");
        let adult = c
            .moderation
            .expect("screened")
            .into_iter()
            .find(|l| l.name.as_str() == "adult")
            .expect("adult");
        assert!(adult.confidence > 0.9);
    }
}

mod requests {
    //! How many Table requests each vote costs (docs/azure.md quotes these numbers).
    use super::*;
    use thisthat_core::{Error, Status, ports::Database};
    use thisthat_testkit::fixtures::{competition, vote};

    #[tokio::test]
    async fn votes_cost_one_read_and_one_batch() {
        let db = database().await;
        let c = competition("owner", Status::Open, 3);
        db.insert_competition(&c).await.expect("insert");
        let count = || db.client().requests_sent();

        let before = count();
        db.cast_vote(&vote(&c, "a", 0)).await.expect("vote");
        assert_eq!(count() - before, 2, "a vote: read the standing, one batch");

        let before = count();
        assert!(matches!(
            db.cast_vote(&vote(&c, "a", 1)).await,
            Err(Error::AlreadyVoted)
        ));
        assert_eq!(count() - before, 1, "a second vote: the read finds the vote row");

        let before = count();
        db.cast_vote(&vote(&c, "b", 2)).await.expect("vote");
        assert_eq!(count() - before, 2);

        let before = count();
        let closing = db.cast_vote(&vote(&c, "c", 0)).await.expect("closing vote");
        assert!(closing.closed.is_some());
        assert_eq!(
            count() - before,
            4,
            "the closing vote: read, outbox entry, batch, and the feed entry removed"
        );

        let before = count();
        assert!(matches!(db.cast_vote(&vote(&c, "d", 0)).await, Err(Error::Closed)));
        assert!(matches!(
            db.cast_vote(&vote(&c, "owner", 0)).await,
            Err(Error::OwnCompetition)
        ));
        assert_eq!(count() - before, 2, "a rejection the standing decides is one read");
    }
}

mod votes {
    //! Vote answers beyond the suite: a resend after a lost reply gets the original receipt.
    use super::*;
    use thisthat_core::{
        Error, Status,
        layers::{Layered, Retry, RetryPolicy},
        ports::Database,
    };
    use thisthat_testkit::{
        faults::LoseReply,
        fixtures::{competition, vote},
    };

    #[tokio::test]
    async fn a_retried_closing_vote_whose_reply_was_lost_gets_its_receipt() {
        let db = database().await;
        let c = competition("owner", Status::Open, 2);
        db.insert_competition(&c).await.expect("insert");
        db.cast_vote(&vote(&c, "a", 0)).await.expect("vote");
        // The closing vote lands, its answer is lost, and the retry layer sends it again.
        let lossy = Arc::new(Layered::new(db.clone(), LoseReply::new("database", "cast_vote", 1)));
        let retried = Layered::new(
            lossy,
            Retry::new(RetryPolicy {
                initial_backoff: std::time::Duration::from_millis(1),
                ..RetryPolicy::default()
            }),
        );
        let r = retried.cast_vote(&vote(&c, "b", 1)).await;
        // The vote landed, so the resend is answered with its receipt (not Closed).
        let receipt = r.expect("the resent closing vote gets its receipt");
        assert_eq!(receipt.tally.counts(), &[1, 1, 0]);
        assert_eq!(receipt.closed.map(|o| o.winners), Some(vec![0, 1]));
        let stored = db.competition(&c.id).await.expect("read");
        assert_eq!((stored.status, stored.tally.total()), (Status::Closed, 2));
        // Someone else is still told the competition closed.
        assert!(matches!(db.cast_vote(&vote(&c, "c", 0)).await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn a_lease_past_the_end_of_time_is_invalid_input_not_a_panic() {
        let db = database().await;
        let r = db
            .claim_notifications(&thisthat_core::ports::NotificationClaim {
                competition: None,
                now: std::time::SystemTime::now(),
                lease: std::time::Duration::MAX,
                limit: 10,
            })
            .await;
        assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn feed_entries_of_long_missing_competitions_are_removed() {
        let db = database().await;
        let count = || db.client().requests_sent();
        // An old id (2016) and a fresh one, each left listed without a competition the way an
        // interrupted insert leaves it: the open insert lists it, then finds the id taken by a
        // draft, which is then deleted.
        let mut old = competition("owner", Status::Draft, 3);
        old.id = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("id");
        let young = competition("owner", Status::Draft, 3);
        for draft in [&old, &young] {
            db.insert_competition(draft).await.expect("insert draft");
            let mut open = draft.clone();
            open.status = Status::Open;
            assert!(matches!(
                db.insert_competition(&open).await,
                Err(Error::Conflict { .. })
            ));
            db.delete_draft(&draft.id).await.expect("delete draft");
        }
        let query = thisthat_core::FeedQuery::new();
        let before = count();
        assert!(db.feed(&query).await.expect("feed").competitions.is_empty());
        assert_eq!(
            count() - before,
            4,
            "the entries, two missing competitions, the old entry deleted"
        );
        let before = count();
        assert!(db.feed(&query).await.expect("feed").competitions.is_empty());
        assert_eq!(
            count() - before,
            2,
            "the old entry is gone; the young one may be an insert under way and stays"
        );
    }
}

mod missing_resources {
    //! A table or container that does not exist is the deployment's mistake: `Config`, with a
    //! message saying what to create, never a missing competition or blob.
    use super::*;
    use thisthat_core::{BlobKey, Error, ports::BlobStore, ports::Database, ports::GetOptions};

    #[tokio::test]
    async fn a_missing_table_is_configuration() {
        let table = TableClient::new(
            azurite("THISTHAT_AZURITE_TABLE_URL"),
            &unique("t"),
            StorageAuth::Key(AccountKey::development()),
        )
        .expect("table client");
        let db = AzureTableDatabase::new(table);
        let c = thisthat_testkit::fixtures::competition("owner", thisthat_core::Status::Open, 3);
        let r = db.competition(&c.id).await;
        assert!(
            matches!(r, Err(Error::Config { ref reason, .. }) if reason.contains("does not exist")),
            "{r:?}"
        );
        let r = db.cast_vote(&thisthat_testkit::fixtures::vote(&c, "a", 0)).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
        let r = db.insert_competition(&c).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn a_missing_container_is_configuration() {
        let store = AzureBlobStore::new(
            azurite("THISTHAT_AZURITE_BLOB_URL"),
            &unique("c"),
            StorageAuth::Key(AccountKey::development()),
        )
        .expect("store");
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let r = store.get(&key, &GetOptions::default()).await;
        assert!(
            matches!(r, Err(Error::Config { ref reason, .. }) if reason.contains("does not exist")),
            "{r:?}"
        );
        let r = store.put(&key, Bytes::from_static(b"x"), &Default::default()).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
        let r = store.delete(&key).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }
}

mod table_wire {
    //! Table answers Azurite does not give on demand, from a wire fake: a draft deleted while
    //! it is published, and an entity read without an ETag.
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use serde_json::json;
    use thisthat_core::{Competition, Error, Status, ports::Database};
    use thisthat_testkit::wire::{Reply, WireFake};

    /// A fake table holding one draft (read with an ETag if `etag`), whose replacement finds it
    /// deleted (404), as when `delete_draft` wins the race.
    async fn table_with_draft(draft: &Competition, etag: bool) -> (WireFake, AzureTableDatabase) {
        // The draft as the service answers with minimal metadata (docs/azure.md's layout).
        let mut entity = json!({
            "PartitionKey": draft.id.to_string(),
            "RowKey": "competition",
            "Owner": draft.owner.as_str(),
            "Status": "draft",
            "PhotoCount": draft.photos.len(),
            "VotesToClose": draft.votes_to_close,
            "CreatedAt@odata.type": "Edm.DateTime",
            "CreatedAt": "2026-11-28T01:00:00.0000000Z",
            "Photos": serde_json::to_string(&draft.photos).expect("json"),
        });
        for (i, count) in draft.tally.counts().iter().enumerate() {
            entity[format!("Tally{i}")] = json!(count);
        }
        let listed = Arc::new(AtomicBool::new(false));
        let fake = WireFake::start(move |req| {
            let entity_path = req.path.contains("RowKey=");
            match (req.method.as_str(), entity_path) {
                ("GET", true) => {
                    let mut e = entity.clone();
                    if etag {
                        e["odata.etag"] = json!("W/\"datetime'2026-11-28T01%3A00%3A00.0000000Z'\"");
                    }
                    Ok(Reply::json(200, e))
                }
                ("POST", false) => {
                    listed.store(true, Ordering::SeqCst);
                    Ok(Reply::status(204))
                }
                ("PUT" | "MERGE", true) => {
                    if req.header("if-match").is_none_or(|m| m == "*") {
                        return Err("a publish must be conditional on the read ETag".into());
                    }
                    Ok(Reply::json(
                        404,
                        json!({"odata.error": {"code": "ResourceNotFound", "message": {"lang": "en-US", "value": "The specified resource does not exist."}}}),
                    ))
                }
                (m, _) => Err(format!("unexpected {m} {}", req.path)),
            }
        })
        .await;
        let table = TableClient::new(
            format!("{}/devstoreaccount1", fake.url()).parse().expect("url"),
            "thisthat",
            StorageAuth::Key(AccountKey::development()),
        )
        .expect("client");
        (fake, AzureTableDatabase::new(table))
    }

    fn draft_and_open() -> (Competition, Competition) {
        let draft = thisthat_testkit::fixtures::competition("owner", Status::Draft, 3);
        let mut open = draft.clone();
        open.status = Status::Open;
        (draft, open)
    }

    #[tokio::test]
    async fn a_draft_deleted_while_it_is_published_is_not_found() {
        let (draft, open) = draft_and_open();
        let (fake, db) = table_with_draft(&draft, true).await;
        let r = db.publish_competition(&open).await;
        assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    #[tokio::test]
    async fn an_entity_read_without_an_etag_is_never_written_unconditionally() {
        let (draft, open) = draft_and_open();
        let (fake, db) = table_with_draft(&draft, false).await;
        let r = db.publish_competition(&open).await;
        assert!(matches!(r, Err(Error::Backend { .. })), "{r:?}");
        let r = db.delete_draft(&draft.id).await;
        assert!(matches!(r, Err(Error::Backend { .. })), "{r:?}");
        // Showing it needs no ETag.
        assert_eq!(db.competition(&draft.id).await.expect("read").id, draft.id);
        assert!(
            fake.requests().iter().all(|r| r.method == "GET"),
            "nothing was written: {:?}",
            fake.requests().iter().map(|r| &r.method).collect::<Vec<_>>()
        );
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
}

mod opener {
    //! The four adapters opened from URLs, as a configuration would name them.
    use std::collections::HashMap;

    use super::*;
    use thisthat_azure::AzureOpener;
    use thisthat_core::{BackendConfig, BlobKey, Registry, ports::PutOptions};

    #[tokio::test]
    async fn urls_open_working_adapters() {
        let hub = HubFake::start().await;
        let vision = VisionFake::start().await;
        let connection = format!(
            "Endpoint=sb://ignored.servicebus.windows.net/;SharedAccessKeyName={};SharedAccessKey={HUB_KEY}",
            fakes::KEY_NAME
        );
        let registry = Registry::new().with(AzureOpener::with_env(HashMap::from([
            ("AZURE_NOTIFICATION_HUBS_CONNECTION_STRING".to_owned(), connection),
            ("AZURE_VISION_KEY".to_owned(), VISION_KEY.to_owned()),
        ])));
        let enc = |u: &str| url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
        let config = BackendConfig {
            storage: format!(
                "azblob://{}?emulator=true&create=true&endpoint={}",
                unique("c"),
                enc(azurite("THISTHAT_AZURITE_BLOB_URL").as_str())
            ),
            database: format!(
                "aztable://{}?emulator=true&create=true&endpoint={}",
                unique("t"),
                enc(azurite("THISTHAT_AZURITE_TABLE_URL").as_str())
            ),
            notifier: format!("aznotify://{}?endpoint={}", fakes::HUB, enc(hub.fake.url())),
            classifier: format!("azvision://vision.example?endpoint={}", enc(vision.fake.url())),
        };
        let backend = registry.open(&config).await.expect("open");
        let key = BlobKey::new(format!("opened/{}", CompetitionId::new())).expect("key");
        backend
            .blobs
            .put(&key, Bytes::from_static(b"x"), &PutOptions::create("text/plain"))
            .await
            .expect("put");
        let c = thisthat_testkit::fixtures::competition("owner", thisthat_core::Status::Open, 24);
        backend.database.insert_competition(&c).await.expect("insert");
        assert_eq!(backend.database.competition(&c.id).await.expect("read"), c);
        let endpoint = backend
            .notifier
            .register(&thisthat_testkit::fixtures::device("owner"))
            .await
            .expect("register");
        assert!(hub.installation(&endpoint.address).is_some());
        let labels = backend
            .classifier
            .classify(&thisthat_core::ports::PhotoInput {
                bytes: thisthat_testkit::photos::cat_png(),
                media_type: thisthat_core::MediaType::Png,
                key: None,
            })
            .await
            .expect("classify");
        assert!(!labels.labels.is_empty());
        assert!(hub.fake.violations().is_empty() && vision.fake.violations().is_empty());
    }
}

mod credentials {
    //! Azurite checks Shared Key Lite and SAS signatures, so a wrong key must be refused: this
    //! is what shows the signing code right, not just present.
    use super::*;
    use thisthat_core::{BlobKey, Error, ports::BlobStore, ports::GetOptions};

    fn wrong_key() -> StorageAuth {
        StorageAuth::Key(AccountKey::new(thisthat_azure::DEV_ACCOUNT, "d3Jvbmcta2V5LXdyb25nLWtleQ==").expect("key"))
    }

    #[tokio::test]
    async fn a_wrong_account_key_is_refused_as_configuration() {
        let table = TableClient::new(azurite("THISTHAT_AZURITE_TABLE_URL"), &unique("t"), wrong_key()).expect("client");
        let r = table.create_table().await;
        assert!(matches!(r, Err(Error::Config { .. })), "tables: {r:?}");

        let good = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        good.put(&key, Bytes::from_static(b"x"), &Default::default())
            .await
            .expect("put");
        let container = good
            .client()
            .url()
            .path_segments()
            .and_then(|mut s| s.nth(1))
            .expect("container")
            .to_owned();
        let bad = AzureBlobStore::new(azurite("THISTHAT_AZURITE_BLOB_URL"), &container, wrong_key()).expect("store");
        let r = bad.get(&key, &GetOptions::default()).await;
        assert!(matches!(r, Err(Error::Config { .. })), "blobs: {r:?}");
    }

    #[tokio::test]
    async fn a_signed_url_never_claims_to_outlive_its_sas() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        // Several times, so a clock reading that happens to be whole seconds cannot hide it.
        for _ in 0..5 {
            let signed = store
                .signed_url(
                    &key,
                    &SignedUrlRequest {
                        method: SignedMethod::Get,
                        expires_in: std::time::Duration::from_secs(60),
                    },
                )
                .await
                .expect("signed");
            let url: url::Url = signed.url.parse().expect("url");
            let se = url
                .query_pairs()
                .find(|(k, _)| k == "se")
                .map(|(_, v)| v.into_owned())
                .expect("se");
            let se = std::time::SystemTime::from(azure_core::time::parse_rfc3339(&se).expect("rfc3339"));
            assert!(
                signed.expires_at <= se,
                "expires_at {:?} is after the SAS expiry {se:?}",
                signed.expires_at
            );
            tokio::time::sleep(std::time::Duration::from_millis(137)).await;
        }
    }

    #[tokio::test]
    async fn a_signed_url_past_the_end_of_time_is_invalid_input_not_a_panic() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let r = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Get,
                    expires_in: std::time::Duration::MAX,
                },
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn a_signed_upload_cannot_replace_a_blob_even_without_if_none_match() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let mut signed = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Put {
                        content_type: "image/png".into(),
                        max_size: 1024,
                    },
                    expires_in: std::time::Duration::from_secs(60),
                },
            )
            .await
            .expect("signed");
        // A client that drops the If-None-Match header: the SAS's create-only permission holds.
        signed.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("if-none-match"));
        let first = thisthat_testkit::conformance::http_request(&signed, Some(Bytes::from_static(b"one")))
            .await
            .expect("request");
        assert!(first.is_success(), "{first:?}");
        let second = thisthat_testkit::conformance::http_request(&signed, Some(Bytes::from_static(b"two")))
            .await
            .expect("request");
        assert!(!second.is_success(), "the SAS let an upload replace a blob: {second:?}");
        assert_eq!(
            store.get(&key, &GetOptions::default()).await.expect("get").body,
            Bytes::from_static(b"one")
        );
    }
}

mod entra {
    //! The Entra ID paths, where a fake can check them: which scope is asked for and that the
    //! token is sent as a bearer token (no identity provider runs here).
    use std::sync::Mutex;

    use super::*;
    use azure_core::{
        credentials::{AccessToken, TokenCredential, TokenRequestOptions},
        time::OffsetDateTime,
    };
    use thisthat_core::ports::{Classifier, PhotoInput};
    use thisthat_testkit::wire::{Reply, WireFake};

    #[derive(Debug)]
    struct StaticToken {
        token: &'static str,
        scopes: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl TokenCredential for StaticToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.scopes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(scopes.iter().map(|s| s.to_string()));
            Ok(AccessToken::new(
                self.token,
                OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    fn token(token: &'static str) -> Arc<StaticToken> {
        Arc::new(StaticToken {
            token,
            scopes: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test]
    async fn vision_sends_an_entra_token_for_cognitive_services() {
        let fake = VisionFake::start().await;
        let credential = token(fakes::VISION_TOKEN);
        let classifier = AiVisionClassifier::with_credential(
            fake.fake.url().parse().expect("url"),
            credential.clone(),
            Screening::AdultV32,
        )
        .expect("classifier");
        let c = classifier
            .classify(&PhotoInput {
                bytes: thisthat_testkit::photos::cat_png(),
                media_type: thisthat_core::MediaType::Png,
                key: None,
            })
            .await
            .expect("classify");
        assert!(!c.labels.is_empty());
        let scopes = credential.scopes.lock().expect("scopes").clone();
        assert!(!scopes.is_empty());
        assert!(
            scopes
                .iter()
                .all(|s| s == "https://cognitiveservices.azure.com/.default"),
            "{scopes:?}"
        );
        assert!(
            fake.fake
                .requests()
                .iter()
                .all(|r| r.header("ocp-apim-subscription-key").is_none())
        );
        assert!(fake.fake.violations().is_empty(), "{:?}", fake.fake.violations());
    }

    #[tokio::test]
    async fn tables_send_an_entra_token_for_storage() {
        let fake = WireFake::start(|req| {
            if req.header("authorization") != Some("Bearer storage-token") {
                return Err(format!("authorization {:?}", req.header("authorization")));
            }
            if req.header("x-ms-version") != Some("2019-02-02") || req.header("x-ms-date").is_none() {
                return Err("OAuth needs x-ms-version 2019-02-02 or later and x-ms-date".into());
            }
            if req.method != "POST" || req.path != "/acct/Tables" {
                return Err(format!("{} {} is not Create Table", req.method, req.path));
            }
            let body = req.json()?;
            if body["TableName"] != "thisthat" {
                return Err(format!("table name {}", body["TableName"]));
            }
            Ok(Reply::status(204))
        })
        .await;
        let credential = token("storage-token");
        let table = TableClient::new(
            format!("{}/acct", fake.url()).parse().expect("url"),
            "thisthat",
            StorageAuth::token(credential.clone()),
        )
        .expect("client");
        table.create_table().await.expect("create");
        assert_eq!(
            credential.scopes.lock().expect("scopes").clone(),
            vec!["https://storage.azure.com/.default".to_owned()]
        );
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
}
