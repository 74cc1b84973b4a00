//! Opening the four adapters from URLs, as a deployment's configuration does.

use thisthat_aws::AwsOpener;
use thisthat_core::{BackendConfig, Error, Registry};

use crate::support::{moto_config, unique};

/// A registry of the AWS opener on moto, and the four adapters opened from URLs alone (the
/// bucket and table named `name`, created by `?create=true`), with the FCM platform
/// application the notifier's URL names.
pub async fn open_from_urls(name: &str) -> (Registry, thisthat_core::Backend, String) {
    let registry = Registry::new().with(AwsOpener::with_config(moto_config().await));
    let application = crate::notifier::notifier()
        .await
        .applications()
        .fcm
        .clone()
        .expect("fcm");
    let backend = registry
        .open(&BackendConfig {
            storage: format!("s3://{name}/photos?create=true"),
            database: format!("dynamodb://{name}?create=true"),
            notifier: format!("sns://?fcm={application}"),
            classifier: "rekognition://?screen=false".into(),
        })
        .await
        .expect("open");
    (registry, backend, application)
}

/// All four open from URLs alone (the bucket and table created by `?create=true`), and a
/// misspelt or unknown parameter is refused, not ignored.
#[tokio::test]
async fn every_scheme_opens_and_typos_are_refused() {
    let name = unique("opener");
    let (registry, backend, _) = open_from_urls(&name).await;
    assert!(!backend.classifier.screens_content());
    assert!(
        backend
            .database
            .endpoints(&thisthat_testkit::fixtures::user("a"))
            .await
            .expect("query")
            .is_empty()
    );
    for url in [
        format!("s3://{name}?crate=true"),
        format!("s3://{name}?create=maybe"),
        "s3://".to_owned(),
    ] {
        let r = registry.blob_store(&url).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{url}: {r:?}");
    }
    assert!(matches!(registry.notifier("sns://").await, Err(Error::Config { .. })));
    assert!(matches!(
        registry.classifier("rekognition://?screan=false").await,
        Err(Error::Config { .. })
    ));
}

/// The AWS configuration of a machine with no endpoint override: every request would go to
/// AWS itself (which this machine cannot reach) unless a URL says otherwise.
fn config_without_endpoint() -> aws_config::SdkConfig {
    let moto = crate::support::config_for("http://unused.invalid");
    let mut builder = moto.to_builder();
    builder.set_endpoint_url(None).set_region(None);
    builder.build()
}

/// An S3-compatible store (R2, MinIO, B2) reached through its URL alone.
struct S3CompatibleCase {
    store: std::sync::Arc<dyn thisthat_core::ports::BlobStore>,
}

impl thisthat_testkit::BlobHarness for S3CompatibleCase {
    fn store(&self) -> std::sync::Arc<dyn thisthat_core::ports::BlobStore> {
        self.store.clone()
    }

    fn signed_urls(&self) -> thisthat_testkit::SignedUrls {
        // moto checks no SigV4 signature or expiry (see docs/aws.md).
        thisthat_testkit::SignedUrls::Unenforced
    }
    fn served_headers(&self) -> thisthat_testkit::ServedHeaders {
        thisthat_testkit::ServedHeaders::Honoured
    }
}

/// `s3://bucket/prefix?endpoint={moto}&region=…&path_style=true`, on a base configuration that
/// has neither an endpoint nor a region: only the URL can send the client to moto.
fn s3_compatible_url(bucket: &str) -> String {
    format!(
        "s3://{bucket}/app?create=true&endpoint={}&region=eu-central-1&path_style=true",
        crate::support::moto()
    )
}

async fn s3_compatible_case() -> S3CompatibleCase {
    // moto is reset once per binary, before the first case.
    let _ = moto_config().await;
    let registry = Registry::new().with(AwsOpener::with_config(config_without_endpoint()));
    S3CompatibleCase {
        store: registry
            .blob_store(&s3_compatible_url(&unique("compatible")))
            .await
            .expect("open by URL"),
    }
}

mod s3_compatible_conformance {
    use super::*;
    thisthat_testkit::blob_store_conformance!(s3_compatible_case());
}

/// The endpoint, region and path style given in the URL are the ones the client uses: its
/// signed URLs point at moto, path-style (`{endpoint}/{bucket}/…`), signed for the URL's
/// region. (The conformance suite above passing on a base configuration with no endpoint is
/// what shows that requests go there too.)
#[tokio::test]
async fn an_s3_url_with_a_custom_endpoint_signs_for_it_path_style() {
    let _ = moto_config().await;
    let registry = Registry::new().with(AwsOpener::with_config(config_without_endpoint()));
    let bucket = unique("signed");
    let store = registry.blob_store(&s3_compatible_url(&bucket)).await.expect("open");
    let key = thisthat_core::BlobKey::new("competitions/x/0").expect("key");
    let signed = store
        .signed_url(
            &key,
            &thisthat_core::ports::SignedUrlRequest {
                method: thisthat_core::ports::SignedMethod::Get,
                expires_in: std::time::Duration::from_secs(60),
                served_as: None,
            },
        )
        .await
        .expect("sign");
    let moto = crate::support::moto();
    assert!(
        signed
            .url
            .starts_with(&format!("{moto}/{bucket}/app/competitions/x/0?")),
        "{}",
        signed.url
    );
    assert!(
        signed.url.contains("%2Feu-central-1%2Fs3%2Faws4_request"),
        "{}",
        signed.url
    );
}
