//! The blob-store suite. See [`crate::blob_store_conformance`].

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::join_all;
use thisthat_core::{
    BlobKey, CompetitionId, Error,
    ports::{GetOptions, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrlRequest},
};

use super::{BlobHarness, ServedHeaders, SignedUrls};

/// Turns the blob-store cases into one `#[tokio::test]` each. The argument is an expression
/// (usually an `async` block) giving a fresh [`BlobHarness`].
///
/// The list sits next to the cases it names, and a test refuses a `pub async fn` case of this
/// file that is missing from it.
#[macro_export]
macro_rules! blob_store_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            blob,
            [
                put_then_get_roundtrips,
                put_overwrites,
                create_if_absent_conflicts,
                racing_creates_have_one_winner,
                head_reports_size_and_type,
                get_reads_ranges,
                ranges_past_the_end_are_empty,
                missing_keys_are_not_found,
                delete_is_idempotent,
                weird_keys_roundtrip,
                empty_and_large_blobs_roundtrip,
                list_pages_through_a_prefix,
                signed_get_serves_the_blob,
                signed_get_sets_the_served_headers,
                signed_put_uploads,
                forged_signed_urls_are_refused,
            ]
        );
    };
}

/// A key under a prefix of its own, so cases sharing a bucket never collide.
fn key(name: &str) -> BlobKey {
    BlobKey::new(format!("conformance/{}/{name}", CompetitionId::new())).expect("valid test key")
}

fn png() -> PutOptions {
    PutOptions {
        content_type: Some("image/png".into()),
        mode: PutMode::Overwrite,
    }
}

/// A put followed by a get returns the same bytes, size and content type.
pub async fn put_then_get_roundtrips(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("photo.png");
    let body = crate::photos::cat_png();
    let meta = store.put(&k, body.clone(), &png()).await.expect("put");
    assert_eq!(meta.size, body.len() as u64);
    let blob = store.get(&k, &GetOptions::default()).await.expect("get");
    assert_eq!(blob.body, body);
    assert_eq!(blob.meta.size, body.len() as u64);
    assert_eq!(blob.meta.content_type.as_deref(), Some("image/png"));
    assert_eq!(blob.meta.key, k);
}

/// A plain put replaces what was there.
pub async fn put_overwrites(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("x");
    store.put(&k, Bytes::from_static(b"first"), &png()).await.expect("put");
    store
        .put(&k, Bytes::from_static(b"second"), &png())
        .await
        .expect("overwrite");
    assert_eq!(
        store.get(&k, &GetOptions::default()).await.expect("get").body,
        Bytes::from_static(b"second")
    );
}

/// A create on an existing key is a conflict and leaves the blob as it was.
pub async fn create_if_absent_conflicts(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("once");
    store
        .put(&k, Bytes::from_static(b"original"), &PutOptions::create("image/png"))
        .await
        .expect("first create");
    let second = store
        .put(&k, Bytes::from_static(b"intruder"), &PutOptions::create("image/png"))
        .await;
    assert!(
        matches!(second, Err(Error::Conflict { .. })),
        "second create: {second:?}"
    );
    assert_eq!(
        store.get(&k, &GetOptions::default()).await.expect("get").body,
        Bytes::from_static(b"original")
    );
}

/// Of many racing creates on one key, exactly one wins, and its body is what is stored.
pub async fn racing_creates_have_one_winner(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("race");
    let results = join_all((0..16).map(|i| {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move {
            (
                i,
                store
                    .put(
                        &k,
                        Bytes::from(format!("writer {i}")),
                        &PutOptions::create("text/plain"),
                    )
                    .await,
            )
        })
    }))
    .await;
    let mut winners = Vec::new();
    for joined in results {
        let (i, result) = joined.expect("task");
        match result {
            Ok(_) => winners.push(i),
            Err(Error::Conflict { .. }) => {}
            Err(other) => panic!("writer {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get(&k, &GetOptions::default()).await.expect("get").body;
    assert_eq!(stored, Bytes::from(format!("writer {}", winners[0])));
}

/// Head reports size and content type without the body.
pub async fn head_reports_size_and_type(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("h.jpg");
    let body = crate::photos::rocket_jpeg();
    store
        .put(
            &k,
            body.clone(),
            &PutOptions {
                content_type: Some("image/jpeg".into()),
                mode: PutMode::Overwrite,
            },
        )
        .await
        .expect("put");
    let meta = store.head(&k).await.expect("head");
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.content_type.as_deref(), Some("image/jpeg"));
}

/// Ranged gets return exactly the requested bytes, cut at the end of the blob.
pub async fn get_reads_ranges(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("range");
    store
        .put(&k, Bytes::from_static(b"0123456789"), &png())
        .await
        .expect("put");
    let part = store
        .get(&k, &GetOptions { range: Some(2..5) })
        .await
        .expect("ranged get");
    assert_eq!(part.body, Bytes::from_static(b"234"));
    assert_eq!(part.meta.size, 10, "meta describes the whole blob");
    let tail = store
        .get(&k, &GetOptions { range: Some(7..100) })
        .await
        .expect("range past the end");
    assert_eq!(tail.body, Bytes::from_static(b"789"));
}

/// Ranges are cut at the end of the blob, as the port says: one starting at or past the end,
/// or an empty one, gives an empty body (not the 416 HTTP stores answer); a range whose start
/// is after its end is invalid input.
pub async fn ranges_past_the_end_are_empty(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("short");
    store
        .put(&k, Bytes::from_static(b"0123456789"), &png())
        .await
        .expect("put");
    for range in [10..20, 15..30, 4..4] {
        let blob = store
            .get(
                &k,
                &GetOptions {
                    range: Some(range.clone()),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("range {range:?}: {e}"));
        assert!(blob.body.is_empty(), "range {range:?}: {:?}", blob.body);
        assert_eq!(blob.meta.size, 10, "range {range:?}: meta describes the whole blob");
    }
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 5..3;
    let r = store.get(&k, &GetOptions { range: Some(reversed) }).await;
    assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
}

/// Get and head of a missing key are not-found errors; neither creates anything.
pub async fn missing_keys_are_not_found(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("missing");
    assert!(matches!(
        store.get(&k, &GetOptions::default()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(store.head(&k).await, Err(Error::NotFound { .. })));
}

/// Delete removes a blob; deleting again, or deleting a key never written, succeeds.
pub async fn delete_is_idempotent(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("gone");
    store.put(&k, Bytes::from_static(b"x"), &png()).await.expect("put");
    store.delete(&k).await.expect("delete");
    assert!(matches!(store.head(&k).await, Err(Error::NotFound { .. })));
    store.delete(&k).await.expect("second delete");
    store
        .delete(&key("never"))
        .await
        .expect("delete of a key never written");
}

/// Every character the key type allows survives a roundtrip, as do deep and long keys, and
/// keys that differ only in case or punctuation stay distinct.
pub async fn weird_keys_roundtrip(h: &impl BlobHarness) {
    let store = h.store();
    let base = key("weird");
    let long_segment = "l".repeat(200);
    let names = [
        "a!b".to_string(),
        "paren(1)".into(),
        "star*".into(),
        "quote'd".into(),
        "..dots..".into(),
        "-_.".into(),
        "CASE".into(),
        "case".into(),
        "deep/er/and/deeper/still".into(),
        format!("{long_segment}/{long_segment}/{long_segment}"),
    ];
    for (i, name) in names.iter().enumerate() {
        let k = BlobKey::new(format!("{base}/{name}")).expect("valid key");
        store
            .put(&k, Bytes::from(format!("body {i}")), &png())
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}"));
    }
    for (i, name) in names.iter().enumerate() {
        let k = BlobKey::new(format!("{base}/{name}")).expect("valid key");
        let got = store
            .get(&k, &GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(got.body, Bytes::from(format!("body {i}")), "{k}");
    }
}

/// An empty blob and a 5 MiB blob both roundtrip intact.
pub async fn empty_and_large_blobs_roundtrip(h: &impl BlobHarness) {
    let store = h.store();
    let empty = key("empty");
    store.put(&empty, Bytes::new(), &png()).await.expect("put empty");
    assert_eq!(
        store
            .get(&empty, &GetOptions::default())
            .await
            .expect("get empty")
            .body
            .len(),
        0
    );
    let large = key("large");
    let body: Bytes = (0..5 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    store.put(&large, body.clone(), &png()).await.expect("put large");
    assert!(
        store.get(&large, &GetOptions::default()).await.expect("get large").body == body,
        "large blob differs"
    );
}

/// Listing a prefix returns exactly the blobs under it, in key order, across pages.
pub async fn list_pages_through_a_prefix(h: &impl BlobHarness) {
    let store = h.store();
    let prefix = format!("conformance/{}/", CompetitionId::new());
    let keys: Vec<BlobKey> = (0..230)
        .map(|i| BlobKey::new(format!("{prefix}{i:04}")).expect("key"))
        .collect();
    let options = png();
    for put in join_all(keys.iter().map(|k| store.put(k, Bytes::from_static(b"x"), &options))).await {
        put.expect("put");
    }
    store
        .put(&key("outside"), Bytes::from_static(b"x"), &png())
        .await
        .expect("put outside");
    let mut listed = Vec::new();
    let mut continuation = None;
    for _ in 0..1000 {
        let page = store.list(&prefix, continuation.take()).await.expect("list");
        listed.extend(page.blobs.into_iter().map(|m| m.key));
        match page.next {
            Some(next) => continuation = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, keys);
}

fn get_url() -> SignedUrlRequest {
    SignedUrlRequest {
        method: SignedMethod::Get,
        expires_in: Duration::from_secs(300),
        served_as: None,
    }
}

fn put_url(max_size: u64) -> SignedUrlRequest {
    SignedUrlRequest {
        method: SignedMethod::Put {
            content_type: "image/png".into(),
            max_size,
        },
        expires_in: Duration::from_secs(300),
        served_as: None,
    }
}

/// A signed GET URL downloads the blob with no credentials, and says when it expires.
pub async fn signed_get_serves_the_blob(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("signed.png");
    let body = crate::photos::cat_png();
    store.put(&k, body.clone(), &png()).await.expect("put");
    let signed = store.signed_url(&k, &get_url()).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        assert!(matches!(signed, Err(Error::Unsupported { .. })), "{signed:?}");
        return;
    }
    let signed = signed.expect("signed url");
    assert_eq!(signed.method, "GET");
    let now = SystemTime::now();
    assert!(
        signed.expires_at > now && signed.expires_at <= now + Duration::from_secs(301),
        "expiry {:?}",
        signed.expires_at
    );
    let response = h.direct(&signed, None).await.expect("request");
    assert!(response.is_success(), "status {}: {:?}", response.status, response.body);
    assert_eq!(response.body, body);
}

/// A signed GET asked to serve its blob as [`ServedAs::blob`] decides is answered with that
/// `Content-Type` and `Content-Disposition`: a photo inline under its image type, and a blob
/// stored as HTML as an attachment of unknown type (not the `text/html` it was stored with),
/// both under the key's file name. Where the emulator ignores the headers the URL must still
/// download the blob: they are part of what is signed, not something that breaks it.
pub async fn signed_get_sets_the_served_headers(h: &impl BlobHarness) {
    let store = h.store();
    let photo = key("served.png");
    let page = key("served.html");
    let html = Bytes::from_static(b"<html><script>alert(1)</script></html>");
    store
        .put(&photo, crate::photos::cat_png(), &png())
        .await
        .expect("put photo");
    let as_html = PutOptions {
        content_type: Some("text/html".into()),
        mode: PutMode::Overwrite,
    };
    store.put(&page, html.clone(), &as_html).await.expect("put page");
    for (k, stored, body) in [
        (&photo, "image/png", crate::photos::cat_png()),
        (&page, "text/html", html),
    ] {
        let served_as = ServedAs::blob(k, Some(stored));
        let request = SignedUrlRequest::get(Duration::from_secs(300)).served_as(served_as.clone());
        let signed = store.signed_url(k, &request).await;
        if h.signed_urls() == SignedUrls::Unsupported {
            assert!(matches!(signed, Err(Error::Unsupported { .. })), "{signed:?}");
            return;
        }
        let signed = signed.expect("signed url");
        let response = h.direct(&signed, None).await.expect("request");
        assert!(response.is_success(), "status {}: {:?}", response.status, response.body);
        assert_eq!(response.body, body, "{k}");
        if h.served_headers() == ServedHeaders::Honoured {
            assert_eq!(
                response.header("content-type"),
                Some(served_as.content_type.as_str()),
                "{k}: {:?}",
                response.headers
            );
            assert_eq!(
                response.header("content-disposition"),
                Some(served_as.content_disposition.as_str()),
                "{k}: {:?}",
                response.headers
            );
        }
    }
}

/// A signed PUT URL uploads a blob with no credentials; the store then holds it.
pub async fn signed_put_uploads(h: &impl BlobHarness) {
    let store = h.store();
    let k = key("upload.png");
    let signed = store.signed_url(&k, &put_url(1024 * 1024)).await;
    if h.signed_urls() == SignedUrls::Unsupported {
        assert!(matches!(signed, Err(Error::Unsupported { .. })), "{signed:?}");
        return;
    }
    let signed = signed.expect("signed url");
    assert_eq!(signed.method, "PUT");
    assert!(
        signed
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v == "image/png"),
        "the client is told to send the signed content type: {:?}",
        signed.headers
    );
    let body = crate::photos::coffee_png();
    let response = h.direct(&signed, Some(body.clone())).await.expect("request");
    assert!(response.is_success(), "status {}: {:?}", response.status, response.body);
    assert_eq!(store.get(&k, &GetOptions::default()).await.expect("get").body, body);
    if h.signed_urls() == SignedUrls::Enforced {
        let again = h
            .direct(&signed, Some(crate::photos::cat_png()))
            .await
            .expect("request");
        assert!(!again.is_success(), "a signed upload replaced an existing blob");
        assert_eq!(store.get(&k, &GetOptions::default()).await.expect("get").body, body);
    }
}

/// A tampered signature is refused and stores nothing (where the backend checks signatures).
pub async fn forged_signed_urls_are_refused(h: &impl BlobHarness) {
    if h.signed_urls() != SignedUrls::Enforced {
        return;
    }
    let store = h.store();
    let k = key("forged.png");
    let signed = store.signed_url(&k, &put_url(1024)).await.expect("signed url");
    let forged = h.forge(&signed);
    assert_ne!(forged.url, signed.url);
    let response = h
        .direct(&forged, Some(Bytes::from_static(b"x")))
        .await
        .expect("request");
    assert!(!response.is_success(), "a forged URL was accepted");
    assert!(matches!(store.head(&k).await, Err(Error::NotFound { .. })));
    let get = store.signed_url(&k, &get_url()).await.expect("signed url");
    let response = h.direct(&h.forge(&get), None).await.expect("request");
    assert!(!response.is_success(), "a forged GET URL was accepted");
}
