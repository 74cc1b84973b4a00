//! What the suites cannot see: request shapes and error mappings on the wire, V4
//! signatures, Cloud Storage's resends, against fake-gcs-server and local wire fakes.

use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use thisthat_core::{
    BlobKey, Error,
    ports::{Delivery, GetOptions, PhotoInput, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrlRequest},
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
                served_as: None,
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
                served_as: None,
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

/// fake-gcs-server ignores `response-content-type` and `response-content-disposition`, so the
/// URL is checked instead: both are in its query with the values asked for, inside the V4
/// signature (recomputed over every query parameter; changing the disposition breaks it), and
/// the emulator still downloads the blob through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_signed_urls_sign_how_downloads_are_served() {
    let store = gcs().await;
    let key = BlobKey::new("competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.display.jpg").expect("key");
    let body = thisthat_testkit::photos::rocket_jpeg();
    store
        .put(&key, body.clone(), &PutOptions::create("text/html"))
        .await
        .expect("put");
    let served_as = ServedAs::blob(&key, Some("text/html"));
    let request = SignedUrlRequest::get(Duration::from_secs(300)).served_as(served_as.clone());
    let url = store.signed_url(&key, &request).await.expect("signed GET");
    let query = verify_v4(&url);
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("response-content-type"), Some("application/octet-stream"));
    assert_eq!(
        get("response-content-disposition"),
        Some("attachment; filename=\"0.display.jpg\"")
    );
    assert_eq!(
        get("response-content-disposition"),
        Some(served_as.content_disposition.as_str())
    );

    let mut forged = url.clone();
    forged.url = forged.url.replace("attachment", "inline");
    assert_ne!(forged.url, url.url);
    assert!(
        std::panic::catch_unwind(|| verify_v4(&forged)).is_err(),
        "the disposition is signed"
    );

    let response = thisthat_testkit::conformance::http_request(&url, None)
        .await
        .expect("request");
    assert!(response.is_success(), "status {}", response.status);
    assert_eq!(response.body, body);
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
    *lock(&fcm.state.status) = Some(
        Reply::json(
            429,
            serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded"}}),
        )
        .header("retry-after", "7"),
    );
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
                served_as: None,
            },
        )
        .await;
    assert!(matches!(url, Err(Error::Config { .. })), "no signer: {url:?}");
}
