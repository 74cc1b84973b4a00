//! S3 blob storage: the blob-store suite against moto, and what moto cannot check (signatures)
//! checked on the signed URLs themselves.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use thisthat_aws::S3BlobStore;
use thisthat_core::{
    BlobKey, Error,
    ports::{BlobStore, GetOptions, ServedAs, SignedMethod, SignedUrlRequest},
};
use thisthat_testkit::{BlobHarness, ServedHeaders, SignedUrls, conformance::http_request, photos};

use crate::support::{moto_config, s3_client, unique};

pub struct S3Case {
    pub store: Arc<S3BlobStore>,
}

impl BlobHarness for S3Case {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }

    fn signed_urls(&self) -> SignedUrls {
        // moto checks no SigV4 signature or expiry (see docs/aws.md).
        SignedUrls::Unenforced
    }
    fn served_headers(&self) -> ServedHeaders {
        // moto answers `response-content-type` and `response-content-disposition`.
        ServedHeaders::Honoured
    }
}

/// A store in a bucket of its own, under a prefix (so that prefix handling is tested too).
pub async fn store() -> S3BlobStore {
    let config = moto_config().await;
    let store = S3BlobStore::from_client(s3_client(&config), unique("thisthat")).with_prefix("app");
    store.create_bucket().await.expect("create bucket");
    store
}

async fn case() -> S3Case {
    S3Case {
        store: Arc::new(store().await),
    }
}

mod conformance {
    use super::*;
    thisthat_testkit::blob_store_conformance!(case());
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("signed URL parses")
        .query_pairs()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing from the signed URL"))
}

fn put(expires_in: Duration) -> SignedUrlRequest {
    SignedUrlRequest {
        method: SignedMethod::Put {
            content_type: "image/png".into(),
            max_size: 1024 * 1024,
        },
        expires_in,
        served_as: None,
    }
}

/// moto ignores signatures, so the signed parts are checked on the URL: SigV4 by query string,
/// scoped to S3 in the region, the requested lifetime, and for uploads the content type and
/// `If-None-Match` among the signed headers (so real S3 refuses another type or a replacement).
#[tokio::test]
async fn signed_urls_sign_what_they_must() {
    let store = store().await;
    let key = BlobKey::new("competitions/x/0.png").expect("key");
    let upload = store
        .signed_url(&key, &put(Duration::from_secs(300)))
        .await
        .expect("signed PUT");
    let pairs = query(&upload.url);
    assert_eq!(param(&pairs, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    assert!(
        param(&pairs, "X-Amz-Credential").ends_with("/us-east-1/s3/aws4_request"),
        "{}",
        param(&pairs, "X-Amz-Credential")
    );
    assert_eq!(param(&pairs, "X-Amz-Expires"), "300");
    let signed: Vec<&str> = param(&pairs, "X-Amz-SignedHeaders").split(';').collect();
    for header in ["host", "content-type", "if-none-match"] {
        assert!(signed.contains(&header), "{header} is not signed: {signed:?}");
    }
    let signature = param(&pairs, "X-Amz-Signature");
    assert!(
        signature.len() == 64 && signature.chars().all(|c| c.is_ascii_hexdigit()),
        "{signature}"
    );
    assert!(upload.url.contains("/app/competitions/x/0.png"), "{}", upload.url);
    let headers: Vec<(&str, &str)> = upload.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert!(headers.contains(&("content-type", "image/png")), "{headers:?}");
    assert!(headers.contains(&("if-none-match", "*")), "{headers:?}");

    // How the download is served travels in the query, which SigV4 signs whole (moto answers
    // these parameters; the blob suite checks the headers it sends back).
    let served_as = ServedAs::photo(&key, thisthat_core::MediaType::Png);
    let download = store
        .signed_url(
            &key,
            &SignedUrlRequest::get(Duration::from_secs(60)).served_as(served_as),
        )
        .await
        .expect("signed GET");
    let pairs = query(&download.url);
    assert_eq!(param(&pairs, "X-Amz-Expires"), "60");
    assert_eq!(param(&pairs, "response-content-type"), "image/png");
    assert_eq!(
        param(&pairs, "response-content-disposition"),
        "inline; filename=\"0.png\""
    );
    assert_eq!(param(&pairs, "X-Amz-SignedHeaders"), "host");
}

/// A signed upload is create-only: the signed `If-None-Match: *`, which moto does enforce,
/// refuses a second upload to the same URL and keeps the first photo.
#[tokio::test]
async fn signed_uploads_cannot_replace_a_photo() {
    let store = store().await;
    let key = BlobKey::new("competitions/y/0.png").expect("key");
    let url = store
        .signed_url(&key, &put(Duration::from_secs(300)))
        .await
        .expect("signed PUT");
    let first = http_request(&url, Some(photos::cat_png())).await.expect("upload");
    assert!(first.is_success(), "{}", first.status);
    let again = http_request(&url, Some(photos::coffee_png()))
        .await
        .expect("upload again");
    assert_eq!(again.status, 412);
    assert_eq!(
        store.get(&key, &GetOptions::default()).await.expect("get").body,
        photos::cat_png()
    );
}

/// Lifetimes S3 cannot sign are refused up front, not shortened.
#[tokio::test]
async fn signed_url_lifetimes_outside_s3s_limits_are_invalid() {
    let store = store().await;
    let key = BlobKey::new("k.png").expect("key");
    for expires_in in [Duration::ZERO, Duration::from_secs(8 * 24 * 3600)] {
        let r = store.signed_url(&key, &put(expires_in)).await;
        assert!(
            matches!(
                r,
                Err(Error::InvalidInput {
                    field: "expires_in",
                    ..
                })
            ),
            "{r:?}"
        );
    }
}

/// A bucket that does not exist is a configuration error saying so, not a missing blob.
#[tokio::test]
async fn a_missing_bucket_is_a_configuration_error() {
    let config = moto_config().await;
    let store = S3BlobStore::from_client(s3_client(&config), unique("absent"));
    let r = store
        .put(
            &BlobKey::new("k").expect("key"),
            Bytes::from_static(b"x"),
            &Default::default(),
        )
        .await;
    assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
}

/// A head in a bucket that does not exist is a configuration error, not a missing photo.
#[tokio::test]
async fn head_in_a_missing_bucket_is_a_configuration_error() {
    let config = moto_config().await;
    let store = S3BlobStore::from_client(s3_client(&config), unique("absent"));
    let r = store.head(&BlobKey::new("k").expect("key")).await;
    assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
}
