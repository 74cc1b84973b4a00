//! What the suites do not reach, on local wire fakes: Notification Hubs' and AI Vision's
//! documented error answers and request details, Table answers Azurite does not give on demand,
//! and the Entra ID paths.

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
    let bad_key = AiVisionClassifier::with_key(vision.fake.fake.url().parse().expect("url"), "nope", Screening::None)
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

mod table {
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
