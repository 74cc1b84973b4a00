//! The Google Cloud adapters against the conformance suites: Cloud Storage on fake-gcs-server,
//! Firestore on Google's emulator, FCM and Vision on local wire fakes that check the documented
//! request shapes; then the whole domain on all four, the 1,000-voter race included.
//!
//! Run with `scripts/with-emulators gcp -- cargo test -p thisthat-gcp`. Without the emulators'
//! variables every test here fails (never skips) and says so.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use thisthat_core::{
    Backend, CompetitionId, Endpoint, PushMessage, Result,
    ports::{BlobStore, Classifier, Notifier},
};
use thisthat_gcp::{FcmNotifier, FirestoreDatabase, GcsBlobStore, GcsOptions, TokenSource, VisionClassifier};
use thisthat_testkit::{
    BlobHarness, DomainHarness, NotifierHarness, ServedHeaders, SignedUrls,
    wire::{RecordedRequest, Reply, WireFake},
};

const PROJECT: &str = "thisthat-test";
const BEARER: &str = "Bearer test-access-token";

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the thisthat-gcp tests need fake-gcs-server and the Firestore emulator; run them with `scripts/with-emulators gcp -- cargo test -p thisthat-gcp`"
        )
    })
}

fn service_account_key() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/test-service-account.json")).expect("the fixture key is JSON")
}

/// A unique name for this case's bucket or collection prefix.
fn unique() -> String {
    CompetitionId::new().to_string().to_ascii_lowercase()
}

/// A store on a fresh bucket of fake-gcs-server, signing with the test key.
async fn gcs() -> Arc<GcsBlobStore> {
    let options = GcsOptions {
        bucket: format!("t-{}", unique()),
        endpoint: required("THISTHAT_GCS_URL"),
        tokens: TokenSource::Anonymous,
        signer: Some(GcsOptions::signer_from_key(service_account_key()).expect("signer")),
        signer_error: None,
    };
    let store = GcsBlobStore::new(options).expect("store");
    store.create_bucket(PROJECT).await.expect("create the case's bucket");
    Arc::new(store)
}

/// A database whose collections no other case uses.
async fn firestore() -> Arc<FirestoreDatabase> {
    required("FIRESTORE_EMULATOR_HOST");
    let prefix = format!("t{}_", unique());
    Arc::new(
        FirestoreDatabase::open_database(PROJECT, "(default)", &prefix)
            .await
            .expect("open the Firestore emulator"),
    )
}

// ---------------------------------------------------------------------------------------
// FCM: a fake of `messages:send` that refuses what FCM would refuse.

#[derive(Default)]
struct FcmState {
    expired: Mutex<HashSet<String>>,
    accepted: Mutex<Vec<(String, PushMessage)>>,
    status: Mutex<Option<Reply>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn string_at<'a>(v: &'a serde_json::Value, path: &[&str]) -> std::result::Result<&'a str, String> {
    let mut at = v;
    for p in path {
        at = at.get(p).ok_or_else(|| format!("missing {}", path.join(".")))?;
    }
    at.as_str().ok_or_else(|| format!("{} is not a string", path.join(".")))
}

/// Checks a request against FCM's documented HTTP v1 `messages:send`.
fn fcm_message(req: &RecordedRequest) -> std::result::Result<(String, PushMessage), String> {
    if req.method != "POST" || req.path != format!("/v1/projects/{PROJECT}/messages:send") {
        return Err(format!("not FCM's send call: {} {}", req.method, req.path));
    }
    if req.header("authorization") != Some(BEARER) {
        return Err("no OAuth bearer token".into());
    }
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err("the body must be JSON".into());
    }
    let body = req.json()?;
    let message = body.get("message").ok_or("no message")?;
    for key in message.as_object().ok_or("message is not an object")?.keys() {
        if !["token", "notification", "data", "android", "apns"].contains(&key.as_str()) {
            return Err(format!("message.{key} is not a field this fake expects"));
        }
    }
    let data = message
        .get("data")
        .and_then(|d| d.as_object())
        .ok_or("no data object")?;
    if data.values().any(|v| !v.is_string()) {
        return Err("FCM data values must all be strings".into());
    }
    let collapse = string_at(message, &["apns", "headers", "apns-collapse-id"])?;
    if collapse.len() > 64 {
        return Err("apns-collapse-id is longer than 64 bytes".into());
    }
    string_at(message, &["android", "collapse_key"])?;
    let token = string_at(message, &["token"])?.to_string();
    let push = PushMessage {
        title: string_at(message, &["notification", "title"])?.into(),
        body: string_at(message, &["notification", "body"])?.into(),
        competition: string_at(message, &["data", "competition"])?
            .parse()
            .map_err(|_| "data.competition is not a competition id")?,
        idempotency_key: string_at(message, &["data", "idempotency_key"])?.into(),
    };
    Ok((token, push))
}

async fn fcm_fake() -> (WireFake, Arc<FcmState>) {
    let state = Arc::new(FcmState::default());
    let s = state.clone();
    let fake = WireFake::start(move |req| {
        let (token, push) = fcm_message(req)?;
        if let Some(reply) = lock(&s.status).clone() {
            return Ok(reply);
        }
        if lock(&s.expired).contains(&token) {
            return Ok(Reply::json(
                404,
                serde_json::json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
            ));
        }
        let mut accepted = lock(&s.accepted);
        accepted.push((token, push));
        Ok(Reply::json(
            200,
            serde_json::json!({"name": format!("projects/{PROJECT}/messages/{}", accepted.len())}),
        ))
    })
    .await;
    (fake, state)
}

struct Fcm {
    notifier: Arc<FcmNotifier>,
    fake: WireFake,
    state: Arc<FcmState>,
}

impl Fcm {
    async fn new() -> Self {
        let (fake, state) = fcm_fake().await;
        let notifier = FcmNotifier::with_endpoint(PROJECT, fake.url(), TokenSource::Static("test-access-token".into()))
            .expect("fcm");
        Fcm {
            notifier: Arc::new(notifier),
            fake,
            state,
        }
    }

    fn delivered(&self, endpoint: &Endpoint) -> Vec<PushMessage> {
        assert!(self.fake.violations().is_empty(), "{:?}", self.fake.violations());
        lock(&self.state.accepted)
            .iter()
            .filter(|(token, _)| *token == endpoint.address)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn expire(&self, endpoint: &Endpoint) {
        lock(&self.state.expired).insert(endpoint.address.clone());
    }
}

impl Drop for Fcm {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(self.fake.violations().is_empty(), "{:?}", self.fake.violations());
        }
    }
}

#[async_trait]
impl NotifierHarness for Fcm {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(Fcm::delivered(self, endpoint))
    }
    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        Fcm::expire(self, endpoint);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Vision: a fake of `images:annotate` that labels by the image's shape and flags one photo.

fn the_unsafe_photo() -> Bytes {
    thisthat_testkit::photos::coffee_png()
}

fn vision_reply(req: &RecordedRequest) -> std::result::Result<Reply, String> {
    if req.method != "POST" || req.path != "/v1/images:annotate" {
        return Err(format!("not Vision's annotate call: {} {}", req.method, req.path));
    }
    if req.header("authorization") != Some(BEARER) {
        return Err("no OAuth bearer token".into());
    }
    let body = req.json()?;
    let requests = body
        .get("requests")
        .and_then(|r| r.as_array())
        .ok_or("no requests array")?;
    let [request] = requests.as_slice() else {
        return Err("expected one image per request".into());
    };
    let mut features: Vec<&str> = request
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or("no features")?
        .iter()
        .filter_map(|f| f.get("type")?.as_str())
        .collect();
    features.sort();
    if features != ["LABEL_DETECTION", "SAFE_SEARCH_DETECTION"] {
        return Err(format!("unexpected features {features:?}"));
    }
    let image = request.get("image").ok_or("no image")?;
    let bytes = match (image.get("content"), image.get("source")) {
        (Some(content), None) => base64::engine::general_purpose::STANDARD
            .decode(content.as_str().ok_or("image.content is not a string")?)
            .map_err(|_| "image.content is not base64")?,
        (None, Some(source)) => {
            let uri = string_at(source, &["gcsImageUri"])?;
            if !uri.starts_with("gs://") {
                return Err(format!("{uri} is not a gs:// URI"));
            }
            // The fake cannot read the bucket; a stored photo labels as a plain photo.
            return Ok(annotated("Photograph", "VERY_UNLIKELY"));
        }
        _ => return Err("the image needs exactly one of content and source".into()),
    };
    let Ok(info) = thisthat_core::media::sniff(&bytes) else {
        return Ok(Reply::json(
            200,
            serde_json::json!({"responses": [{"error": {"code": 3, "message": "Bad image data."}}]}),
        ));
    };
    let shape = match info.width.cmp(&info.height) {
        std::cmp::Ordering::Greater => "Landscape",
        std::cmp::Ordering::Less => "Portrait",
        std::cmp::Ordering::Equal => "Square",
    };
    let adult = if bytes == the_unsafe_photo() {
        "VERY_LIKELY"
    } else {
        "UNLIKELY"
    };
    Ok(annotated(shape, adult))
}

fn annotated(label: &str, adult: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"responses": [{
            "labelAnnotations": [
                {"mid": "/m/0", "description": label, "score": 0.91, "topicality": 0.91},
                {"mid": "/m/1", "description": "Photograph", "score": 0.62, "topicality": 0.62},
            ],
            "safeSearchAnnotation": {"adult": adult, "spoof": "UNLIKELY", "medical": "UNLIKELY", "violence": "VERY_UNLIKELY", "racy": "UNLIKELY"},
        }]}),
    )
}

struct Vision {
    classifier: Arc<VisionClassifier>,
    fake: WireFake,
}

impl Vision {
    async fn new() -> Self {
        let fake = WireFake::start(vision_reply).await;
        let classifier = VisionClassifier::with_endpoint(fake.url(), TokenSource::Static("test-access-token".into()))
            .expect("vision");
        Vision {
            classifier: Arc::new(classifier),
            fake,
        }
    }
}

impl Drop for Vision {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(self.fake.violations().is_empty(), "{:?}", self.fake.violations());
        }
    }
}

impl thisthat_testkit::ClassifierHarness for Vision {
    fn classifier(&self) -> Arc<dyn Classifier> {
        self.classifier.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Harnesses.

struct Gcs(Arc<GcsBlobStore>);

#[async_trait]
impl BlobHarness for Gcs {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.0.clone()
    }
    fn signed_urls(&self) -> SignedUrls {
        // fake-gcs-server serves signed URLs without checking their signatures;
        // `v4_signed_urls_carry_a_verifiable_signature` checks them instead.
        SignedUrls::Unenforced
    }
    fn served_headers(&self) -> ServedHeaders {
        // fake-gcs-server answers the stored headers whatever `response-content-*` asks
        // (docs/gcp.md); `v4_signed_urls_sign_how_downloads_are_served` checks the URL instead.
        ServedHeaders::Ignored
    }
}

struct Everything {
    blobs: Arc<GcsBlobStore>,
    database: Arc<FirestoreDatabase>,
    fcm: Fcm,
    vision: Vision,
}

impl Everything {
    async fn new() -> Self {
        Everything {
            blobs: gcs().await,
            database: firestore().await,
            fcm: Fcm::new().await,
            vision: Vision::new().await,
        }
    }
}

#[async_trait]
impl DomainHarness for Everything {
    fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.fcm.notifier.clone(),
            classifier: self.vision.classifier.clone(),
        }
    }
    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Unenforced
    }
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.fcm.delivered(endpoint))
    }
    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.fcm.expire(endpoint);
        Ok(())
    }
    async fn unsafe_photo(&self) -> Option<Bytes> {
        Some(the_unsafe_photo())
    }
}

mod blob;
mod classifier;
mod database;
mod domain;
mod meter;
mod native;
mod notifier;
mod wire;

/// The opener, on every scheme, against the emulators and fakes.
mod opener {
    use thisthat_core::{
        Registry, Status,
        ports::{Delivery, PhotoInput},
    };
    use thisthat_gcp::GcpOpener;
    use thisthat_testkit::fixtures::{competition, device};

    use super::*;

    /// Holds a vote to the request counts `docs/gcp.md` gives.
    fn query_value(url: &str) -> String {
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
    }

    /// `gs://bucket?endpoint=` sends that store, and only it, to the endpoint the URL names,
    /// whatever `STORAGE_EMULATOR_HOST` says: a store opened on the emulator's address works,
    /// and one opened on an address where nothing listens fails as unavailable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gs_url_with_an_endpoint_uses_it() {
        let emulator = required("THISTHAT_GCS_URL");
        let registry = Registry::new().with(GcpOpener);
        let bucket = format!("t-{}", unique());
        let blobs = registry
            .blob_store(&format!(
                "gs://{bucket}?create=true&project={PROJECT}&endpoint={}",
                query_value(&emulator)
            ))
            .await
            .expect("gs:// on the endpoint its URL names");
        let key = thisthat_core::BlobKey::new("competitions/x/0.png").expect("key");
        blobs
            .put(
                &key,
                Bytes::from_static(b"png"),
                &thisthat_core::ports::PutOptions::create("image/png"),
            )
            .await
            .expect("put");
        assert_eq!(
            blobs.get(&key, &Default::default()).await.expect("get").body,
            Bytes::from_static(b"png")
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let nowhere = registry
            .blob_store(&format!(
                "gs://{bucket}?endpoint={}",
                query_value(&format!("http://{closed}"))
            ))
            .await
            .expect("opening checks nothing remote");
        let read = nowhere.head(&key).await;
        assert!(
            matches!(read, Err(thisthat_core::Error::Unavailable { .. })),
            "{read:?}"
        );
    }

    /// Every scheme opens through a registry; plain-HTTP endpoints get no token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_opener_opens_every_scheme() {
        // Both first: without them the opener would look for real credentials.
        required("STORAGE_EMULATOR_HOST");
        required("FIRESTORE_EMULATOR_HOST");
        let registry = Registry::new().with(GcpOpener);

        let db = registry
            .database(&format!("firestore://{PROJECT}?prefix=t{}_", unique()))
            .await
            .expect("firestore://");
        let c = competition("owner", Status::Open, 24);
        db.insert_competition(&c).await.expect("insert");
        assert_eq!(db.competition(&c.id).await.expect("read"), c);

        let existing = gcs().await.options().bucket.clone();
        registry
            .blob_store(&format!("gs://{existing}"))
            .await
            .expect("gs:// of an existing bucket");
        let bucket = format!("t-{}", unique());
        let url = format!("gs://{bucket}?create=true&project={PROJECT}");
        let blobs = registry.blob_store(&url).await.expect("gs:// creating its bucket");
        registry
            .blob_store(&url)
            .await
            .expect("create=true on a bucket that exists");
        let key = thisthat_core::BlobKey::new("competitions/x/0.png").expect("key");
        blobs
            .put(
                &key,
                Bytes::from_static(b"png"),
                &thisthat_core::ports::PutOptions::create("image/png"),
            )
            .await
            .expect("put through the emulator named by STORAGE_EMULATOR_HOST");
        assert_eq!(blobs.head(&key).await.expect("head").size, 3);

        let fake = WireFake::start(|req| {
            if req.header("authorization").is_some() {
                return Err("a token was sent over plain HTTP".into());
            }
            if req.path.ends_with("/messages:send") {
                Ok(Reply::json(200, serde_json::json!({"name": "projects/p/messages/1"})))
            } else {
                Ok(annotated("Photograph", "VERY_UNLIKELY"))
            }
        })
        .await;
        let notifier = registry
            .notifier(&format!("fcm://{PROJECT}?endpoint={}", query_value(fake.url())))
            .await
            .expect("fcm://");
        let endpoint = notifier.register(&device("alice")).await.expect("register");
        let message = PushMessage {
            title: "t".into(),
            body: "b".into(),
            competition: c.id,
            idempotency_key: "k".into(),
        };
        assert_eq!(
            notifier.send(&endpoint, &message).await.expect("send"),
            Delivery::Accepted
        );
        let classifier = registry
            .classifier(&format!("vision://?bucket=photos&endpoint={}", query_value(fake.url())))
            .await
            .expect("vision://");
        classifier
            .classify(&PhotoInput {
                bytes: thisthat_testkit::photos::cat_png(),
                media_type: thisthat_core::MediaType::Png,
                key: Some(key),
            })
            .await
            .expect("classify");
        let requests = fake.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].path, format!("/v1/projects/{PROJECT}/messages:send"));
        assert_eq!(
            requests[1].json().expect("json")["requests"][0]["image"]["source"]["gcsImageUri"],
            "gs://photos/competitions/x/0.png"
        );
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
}
