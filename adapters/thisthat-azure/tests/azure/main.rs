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
        assert_eq!(count() - before, 2, "a second vote: the batch's insert is refused");

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
