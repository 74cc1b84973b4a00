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
    BlobHarness, DomainHarness, NotifierHarness, SignedUrls,
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
    serde_json::from_str(include_str!("fixtures/test-service-account.json")).expect("the fixture key is JSON")
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

mod blob {
    use super::*;
    thisthat_testkit::blob_store_conformance!(async { Gcs(gcs().await) });
}

mod database {
    use super::*;
    thisthat_testkit::database_conformance!(firestore());
}

mod notifier {
    use super::*;
    thisthat_testkit::notifier_conformance!(Fcm::new());
}

mod classifier {
    use super::*;
    thisthat_testkit::classifier_conformance!(Vision::new());
}

mod domain {
    use super::*;
    thisthat_testkit::domain_conformance!(Everything::new());
}

// ---------------------------------------------------------------------------------------
// What the suites cannot see.

mod wire {
    use std::time::{Duration, SystemTime};

    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    use sha2::{Digest, Sha256};
    use thisthat_core::{
        BlobKey, Error,
        ports::{Delivery, GetOptions, PhotoInput, PutMode, PutOptions, SignedMethod, SignedUrlRequest},
    };
    use thisthat_testkit::fixtures::device;

    use super::*;

    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

    /// Recomputes a V4 signed URL's string to sign from the URL and headers alone, as Cloud
    /// Storage does, and verifies the signature with the test key's public half.
    fn verify_v4(url: &thisthat_core::ports::SignedUrl) -> Vec<(String, String)> {
        let parsed = url::Url::parse(&url.url).expect("a URL");
        let query: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let get = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} missing from {}", url.url))
        };
        let signature = get("X-Goog-Signature");
        let mut signed_query: Vec<(String, String)> =
            query.iter().filter(|(n, _)| n != "X-Goog-Signature").cloned().collect();
        signed_query.sort();
        let canonical_query = signed_query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, UNRESERVED),
                    utf8_percent_encode(v, UNRESERVED)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let host = format!(
            "{}:{}",
            parsed.host_str().expect("host"),
            parsed.port().expect("the emulator's port")
        );
        let mut headers: Vec<(String, String)> = url
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .chain([("host".to_string(), host)])
            .collect();
        headers.sort();
        let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
        assert_eq!(
            get("X-Goog-SignedHeaders"),
            signed_headers,
            "every header the client sends is signed"
        );
        let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let canonical = format!(
            "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
            url.method,
            parsed.path()
        );
        let date = get("X-Goog-Date");
        let scope = format!("{}/auto/storage/goog4_request", &date[..8]);
        let digest: String = Sha256::digest(canonical.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let string_to_sign = format!("GOOG4-RSA-SHA256\n{date}\n{scope}\n{digest}");

        let pem = service_account_key()["private_key"]
            .as_str()
            .expect("private_key")
            .to_string();
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(der).expect("PEM body");
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            ring::signature::KeyPair::public_key(&key).as_ref().to_vec(),
        );
        let signature: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).expect("hex signature"))
            .collect();
        public
            .verify(string_to_sign.as_bytes(), &signature)
            .expect("the signature verifies against the recomputed string to sign");
        assert_eq!(get("X-Goog-Algorithm"), "GOOG4-RSA-SHA256");
        assert_eq!(
            get("X-Goog-Credential"),
            format!("thisthat-test@thisthat-test.iam.gserviceaccount.com/{scope}")
        );
        query
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v4_signed_urls_carry_a_verifiable_signature() {
        let store = gcs().await;
        let key = BlobKey::new("competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0(copy)'!.png").expect("key");
        let put = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Put {
                        content_type: "image/png".into(),
                        max_size: 1234,
                    },
                    expires_in: Duration::from_secs(300),
                },
            )
            .await
            .expect("signed PUT");
        let query = verify_v4(&put);
        let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("X-Goog-Expires"), Some("300"));
        assert_eq!(
            get("X-Goog-SignedHeaders"),
            Some("content-type;host;x-goog-content-length-range;x-goog-if-generation-match")
        );
        assert!(
            put.headers
                .contains(&("x-goog-content-length-range".into(), "0,1234".into()))
        );
        assert!(
            put.url.contains("/0%28copy%29%27%21.png?"),
            "the object name is encoded: {}",
            put.url
        );
        let now = SystemTime::now();
        assert!(put.expires_at > now && put.expires_at <= now + Duration::from_secs(300));

        let get_url = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Get,
                    expires_in: Duration::from_secs(30 * 24 * 3600),
                },
            )
            .await
            .expect("signed GET");
        let query = verify_v4(&get_url);
        let expires = query
            .iter()
            .find(|(n, _)| n == "X-Goog-Expires")
            .map(|(_, v)| v.as_str());
        assert_eq!(expires, Some("604800"), "capped at Cloud Storage's seven days");

        // A tampered URL no longer verifies (the check above is not vacuous).
        let mut forged = put.clone();
        forged.url = forged.url.replace("X-Goog-Expires=300", "X-Goog-Expires=301");
        assert!(std::panic::catch_unwind(|| verify_v4(&forged)).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fcm_errors_map_to_what_callers_can_act_on() {
        let fcm = Fcm::new().await;
        let endpoint = fcm.notifier.register(&device("alice")).await.expect("register");
        let message = PushMessage {
            title: "t".into(),
            body: "b".into(),
            competition: CompetitionId::new(),
            idempotency_key: "k".into(),
        };
        *lock(&fcm.state.status) = Some(Reply::json(429, serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}})).header("retry-after", "7"));
        let e = fcm.notifier.send(&endpoint, &message).await;
        assert!(
            matches!(e, Err(Error::Unavailable { retry_after: Some(d), .. }) if d == Duration::from_secs(7)),
            "{e:?}"
        );
        *lock(&fcm.state.status) = Some(Reply::json(
            401,
            serde_json::json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        ));
        assert!(matches!(
            fcm.notifier.send(&endpoint, &message).await,
            Err(Error::Config { .. })
        ));
        *lock(&fcm.state.status) = Some(Reply::json(
            400,
            serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "The registration token is not a valid FCM registration token",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}}),
        ));
        assert_eq!(
            fcm.notifier.send(&endpoint, &message).await.expect("send"),
            Delivery::Gone
        );
        *lock(&fcm.state.status) = Some(Reply::json(
            400,
            serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "Invalid value at 'message.data[0].value'",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}}),
        ));
        assert!(matches!(
            fcm.notifier.send(&endpoint, &message).await,
            Err(Error::Backend { .. })
        ));
        // Only FCM's own errorCode makes a 404 a dead token; any other 404 is a wrong project
        // or endpoint, and treating it as gone would delete working devices.
        for (status, body) in [
            (
                404,
                serde_json::json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}),
            ),
            (404, serde_json::json!("<html><body>Not Found</body></html>")),
        ] {
            *lock(&fcm.state.status) = Some(Reply::json(status, body.clone()));
            let sent = fcm.notifier.send(&endpoint, &message).await;
            assert!(matches!(sent, Err(Error::Config { .. })), "{body}: {sent:?}");
        }
        *lock(&fcm.state.status) = Some(Reply::status(404).body("Not Found"));
        let sent = fcm.notifier.send(&endpoint, &message).await;
        assert!(matches!(sent, Err(Error::Config { .. })), "a plain-text 404: {sent:?}");
        *lock(&fcm.state.status) = Some(Reply::json(
            404,
            serde_json::json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        ));
        assert_eq!(
            fcm.notifier.send(&endpoint, &message).await.expect("send"),
            Delivery::Gone
        );
        // The token belongs to another Firebase project: this one can never reach it.
        *lock(&fcm.state.status) = Some(Reply::json(
            403,
            serde_json::json!({"error": {"code": 403, "message": "SenderId mismatch", "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SENDER_ID_MISMATCH"}]}}),
        ));
        assert_eq!(
            fcm.notifier.send(&endpoint, &message).await.expect("send"),
            Delivery::Gone
        );
        *lock(&fcm.state.status) = Some(Reply::json(
            403,
            serde_json::json!({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}),
        ));
        assert!(matches!(
            fcm.notifier.send(&endpoint, &message).await,
            Err(Error::Config { .. })
        ));
        assert_eq!(
            fcm.fake.requests().len(),
            10,
            "every mapped error came from a real request"
        );
        let mut apns = device("alice");
        apns.platform = thisthat_core::Platform::Apns;
        assert!(matches!(
            fcm.notifier.register(&apns).await,
            Err(Error::InvalidInput { field: "platform", .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vision_reads_stored_photos_from_the_bucket_and_maps_likelihoods() {
        let vision = Vision::new().await;
        let from_bucket =
            VisionClassifier::with_endpoint(vision.fake.url(), TokenSource::Static("test-access-token".into()))
                .expect("vision")
                .reading_from_bucket("photos");
        let photo = thisthat_testkit::photos::cat_png();
        let key = BlobKey::new("competitions/x/0.png").expect("key");
        let c = from_bucket
            .classify(&PhotoInput {
                bytes: photo.clone(),
                media_type: thisthat_core::MediaType::Png,
                key: Some(key),
            })
            .await
            .expect("classify");
        assert_eq!(
            c.moderation,
            Some(vec![]),
            "UNLIKELY and below are not moderation labels"
        );
        let sent = vision.fake.requests().pop().expect("a request").json().expect("json");
        assert_eq!(
            sent["requests"][0]["image"]["source"]["gcsImageUri"],
            "gs://photos/competitions/x/0.png"
        );
        assert!(
            sent["requests"][0]["image"].get("content").is_none(),
            "no bytes are uploaded"
        );

        let flagged = vision
            .classifier
            .classify(&PhotoInput {
                bytes: the_unsafe_photo(),
                media_type: thisthat_core::MediaType::Png,
                key: None,
            })
            .await
            .expect("classify");
        let moderation = flagged.moderation.expect("screened");
        assert_eq!(moderation.len(), 1);
        assert_eq!(moderation[0].name.as_str(), "adult");
        assert!(
            moderation[0].confidence >= 0.7,
            "VERY_LIKELY is over the default threshold"
        );
    }

    /// Per-image errors inside a 200 map by their `google.rpc.Code`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vision_per_image_errors_map_by_code() {
        for (code, want) in [
            (3, "unsupported"),
            (4, "unavailable"),
            (8, "unavailable"),
            (13, "unavailable"),
            (14, "unavailable"),
            (7, "config"),
            (5, "backend"),
        ] {
            let fake = WireFake::start(move |_| {
                Ok(Reply::json(
                    200,
                    serde_json::json!({"responses": [{"error": {"code": code, "message": "per-image failure"}}]}),
                ))
            })
            .await;
            let classifier = VisionClassifier::with_endpoint(fake.url(), TokenSource::Anonymous).expect("vision");
            let got = classifier
                .classify(&PhotoInput {
                    bytes: thisthat_testkit::photos::cat_png(),
                    media_type: thisthat_core::MediaType::Png,
                    key: None,
                })
                .await;
            let kind = match &got {
                Err(Error::UnsupportedMediaType { .. }) => "unsupported",
                Err(Error::Unavailable { .. }) => "unavailable",
                Err(Error::Config { .. }) => "config",
                Err(Error::Backend { .. }) => "backend",
                _ => "other",
            };
            assert_eq!(kind, want, "code {code}: {got:?}");
            assert_eq!(fake.requests().len(), 1, "code {code}: one request");
        }
    }

    /// A server that ignores `Range` and sends the whole object with 200: the store cuts the
    /// range itself, and reports the whole size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whole_object_replies_to_ranged_gets_are_cut() {
        let fake = WireFake::start(|req| {
            if req.header("range").is_none() {
                return Err("the download is ranged".into());
            }
            Ok(Reply::status(200)
                .header("content-type", "image/png")
                .body(Bytes::from_static(b"0123456789")))
        })
        .await;
        let store = GcsBlobStore::new(GcsOptions {
            bucket: "photos".into(),
            endpoint: fake.url().to_string(),
            tokens: TokenSource::Anonymous,
            signer: None,
            signer_error: None,
        })
        .expect("store");
        let key = BlobKey::new("a/b").expect("key");
        for (range, want) in [(2..5, &b"234"[..]), (8..20, b"89"), (12..20, b"")] {
            let blob = store
                .get(
                    &key,
                    &GetOptions {
                        range: Some(range.clone()),
                    },
                )
                .await
                .expect("get");
            assert_eq!(&blob.body[..], want, "{range:?}");
            assert_eq!(blob.meta.size, 10, "{range:?}: the whole object's size");
        }
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = store.get(&key, &GetOptions { range: Some(5..3) }).await;
        assert!(matches!(reversed, Err(Error::InvalidInput { .. })), "{reversed:?}");
        assert_eq!(fake.requests().len(), 3, "a reversed range sends nothing");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    /// fake-gcs-server closes the connection after every 416 (a range past the end), and the
    /// client may already have taken it from its pool for the next request, a GET or an
    /// upload alike: each is sent once more when it fails before any answer, instead of
    /// failing as `Unavailable`. Without the resend, between one in sixty and one in six
    /// hundred of these requests failed; 3,000 catch it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_survive_a_server_closing_a_reused_connection() {
        let store = gcs().await;
        for i in 0..1000 {
            let key = BlobKey::new(format!("reset/{i}")).expect("key");
            store
                .put(&key, Bytes::from_static(b"0123456789"), &Default::default())
                .await
                .expect("put");
            for range in [10..20, 15..30] {
                let blob = store
                    .get(
                        &key,
                        &GetOptions {
                            range: Some(range.clone()),
                        },
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{i} {range:?}: {e:?}"));
                assert!(blob.body.is_empty());
                assert_eq!(blob.meta.size, 10);
            }
        }
    }

    /// A TCP proxy in front of fake-gcs-server that passes everything through, except that it
    /// loses the answer to the first request of its first connection: the request reaches the
    /// server and is carried out, and the client's connection closes without the answer. The
    /// same fault every time, not by chance.
    async fn losing_the_first_answer() -> String {
        use tokio::{
            io::AsyncReadExt,
            net::{TcpListener, TcpStream},
        };
        let upstream = required("THISTHAT_GCS_URL").trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                if std::mem::take(&mut first) {
                    tokio::spawn(async move {
                        let (mut from_client, mut to_server) = client.split();
                        let mut answer = [0u8; 1];
                        // Pass the request on until the server starts answering, then drop
                        // both connections: the answer never reaches the client.
                        tokio::select! {
                            _ = tokio::io::copy(&mut from_client, &mut to_server) => {}
                            _ = server.read(&mut answer) => {}
                        }
                    });
                } else {
                    tokio::spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            }
        });
        format!("http://{address}")
    }

    /// The store of `store`'s bucket, through a proxy that loses the first answer.
    async fn through_a_lost_answer(store: &GcsBlobStore) -> GcsBlobStore {
        GcsBlobStore::new(GcsOptions {
            bucket: store.options().bucket.clone(),
            endpoint: losing_the_first_answer().await,
            tokens: TokenSource::Anonymous,
            signer: None,
            signer_error: None,
        })
        .expect("store")
    }

    /// A create-only upload whose answer was lost is sent again; the second copy is refused
    /// because the first landed, and the store tells that from a lost race by the stored
    /// object's MD5: the upload succeeded, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_create_only_upload_whose_answer_was_lost_counts_once() {
        let store = gcs().await;
        let key = BlobKey::new("lost/answer").expect("key");
        let body = Bytes::from_static(b"the first copy landed");
        let create = PutOptions {
            content_type: Some("image/png".into()),
            mode: PutMode::Create,
        };
        let meta = through_a_lost_answer(&store)
            .await
            .put(&key, body.clone(), &create)
            .await
            .expect("the upload landed, although its first answer was lost");
        assert_eq!(meta.size, body.len() as u64);
        let stored = store.get(&key, &GetOptions::default()).await.expect("get");
        assert_eq!(stored.body, body);
        let listed = store.list("lost/", None).await.expect("list");
        assert_eq!(listed.blobs.len(), 1, "stored once: {listed:?}");

        // Another body under the same key lost the race, answer lost or not.
        let other = through_a_lost_answer(&store)
            .await
            .put(&key, Bytes::from_static(b"someone else's"), &create)
            .await;
        assert!(matches!(other, Err(Error::Conflict { .. })), "{other:?}");
        assert_eq!(store.get(&key, &GetOptions::default()).await.expect("get").body, body);
    }

    /// Overwrites and deletes are repeated just as safely when their answer is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overwrites_and_deletes_whose_answer_was_lost_are_sent_again() {
        let store = gcs().await;
        let key = BlobKey::new("lost/overwrite").expect("key");
        let body = Bytes::from_static(b"second");
        store
            .put(&key, Bytes::from_static(b"first"), &PutOptions::default())
            .await
            .expect("put");
        through_a_lost_answer(&store)
            .await
            .put(&key, body.clone(), &PutOptions::default())
            .await
            .expect("overwrite");
        assert_eq!(store.get(&key, &GetOptions::default()).await.expect("get").body, body);
        through_a_lost_answer(&store).await.delete(&key).await.expect("delete");
        let gone = store.head(&key).await;
        assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    }

    /// Application Default Credentials are never sent to a plain-HTTP endpoint, however the
    /// adapter is built.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn constructors_refuse_google_tokens_over_plain_http() {
        let adc = TokenSource::adc().expect("ADC builds without contacting anything");
        let store = GcsBlobStore::new(GcsOptions {
            bucket: "photos".into(),
            endpoint: "http://127.0.0.1:9".into(),
            tokens: adc.clone(),
            signer: None,
            signer_error: None,
        });
        assert!(matches!(store, Err(Error::Config { .. })), "{store:?}");
        let fcm = FcmNotifier::with_endpoint(PROJECT, "http://127.0.0.1:9", adc.clone());
        assert!(matches!(fcm, Err(Error::Config { .. })), "{fcm:?}");
        let vision = VisionClassifier::with_endpoint("http://127.0.0.1:9", adc.clone());
        assert!(matches!(vision, Err(Error::Config { .. })), "{vision:?}");
        let remote = FcmNotifier::with_endpoint(PROJECT, "http://fcm.example.com", TokenSource::Static("t".into()));
        assert!(
            matches!(remote, Err(Error::Config { .. })),
            "a static token to a remote http endpoint: {remote:?}"
        );
        assert!(FcmNotifier::with_endpoint(PROJECT, "https://fcm.example.com", adc).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_buckets_are_configuration_errors() {
        let store = GcsBlobStore::new(GcsOptions {
            bucket: format!("missing-{}", unique()),
            endpoint: required("THISTHAT_GCS_URL"),
            tokens: TokenSource::Anonymous,
            signer: None,
            signer_error: None,
        })
        .expect("store");
        let key = BlobKey::new("a/b").expect("key");
        let put = store.put(&key, Bytes::from_static(b"x"), &Default::default()).await;
        assert!(matches!(put, Err(Error::Config { .. })), "{put:?}");
        let url = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Get,
                    expires_in: Duration::from_secs(60),
                },
            )
            .await;
        assert!(matches!(url, Err(Error::Config { .. })), "no signer: {url:?}");
    }
}

mod counted {
    use thisthat_core::{
        Error, Registry, Status,
        ports::{Database, Delivery, PhotoInput},
    };
    use thisthat_gcp::GcpOpener;
    use thisthat_testkit::fixtures::{competition, device, vote};

    use super::*;

    /// Holds a vote to the request counts `docs/gcp.md` gives.
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

    fn query_value(url: &str) -> String {
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
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

mod across_processes {
    use thisthat_core::{Error, Status, ports::Database};
    use thisthat_testkit::fixtures::{competition, vote};

    use super::*;

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
}
