//! Opening the Google Cloud adapters from URLs.

use std::sync::Arc;

use async_trait::async_trait;
use thisthat_core::{
    Error, Result, UrlOpener,
    ports::{BlobStore, Classifier, Database, Notifier},
    registry::{Port, UrlParams, url_host as host},
};
use url::Url;

use crate::{
    FcmNotifier, FirestoreDatabase, GcsBlobStore, GcsOptions, VisionClassifier, auth::TokenSource,
    classifier::VISION_ENDPOINT, notifier::FCM_ENDPOINT,
};

/// Opens the Google Cloud adapters from URLs:
///
/// - `gs://{bucket}`: [`GcsBlobStore`] (`STORAGE_EMULATOR_HOST` switches to an emulator;
///   `?endpoint=` names another JSON API base URL for this URL alone, and wins over it);
///   `?create=true&project={project}` creates the bucket if it does not exist (for emulators
///   and development; `project` defaults to `GOOGLE_CLOUD_PROJECT`).
/// - `firestore://{project}`, `firestore://{project}/{database}`, either with
///   `?prefix={collection prefix}`: [`FirestoreDatabase`] (`FIRESTORE_EMULATOR_HOST` switches to
///   the emulator).
/// - `fcm://{project}`: [`FcmNotifier`] for that Firebase project.
/// - `vision://`, or `vision://?bucket={bucket}` to let Vision read stored photos from that
///   bucket: [`VisionClassifier`].
///
/// `gs:`, `fcm:` and `vision:` take `?endpoint=` (an `http://` or `https://` base URL) to talk
/// to something other than Google, such as an emulator, a proxy or a local fake.
/// `firestore:` does not: its gRPC client reaches an emulator through
/// `FIRESTORE_EMULATOR_HOST` only. Credentials are Application Default
/// Credentials, except that no token is ever sent to a plain `http://` endpoint: Google's are
/// all HTTPS, so a plain one is a local fake, and a real token must not travel in the clear.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcpOpener;

/// The endpoint to call and the tokens to send it.
fn endpoint(params: &UrlParams, default: &str) -> Result<(String, TokenSource)> {
    let Some(endpoint) = params.get("endpoint") else {
        return Ok((default.to_string(), TokenSource::adc()?));
    };
    let parsed = Url::parse(endpoint).map_err(|e| Error::Config {
        reason: format!("endpoint={endpoint:?} is not a URL"),
        source: Some(Box::new(e)),
    })?;
    let tokens = match parsed.scheme() {
        "https" => TokenSource::adc()?,
        // Google's endpoints are all HTTPS: a plain one is a local fake, and a real token must
        // not travel in the clear.
        "http" => TokenSource::Anonymous,
        _ => {
            return Err(Error::config(format!(
                "endpoint={endpoint:?} must be an http:// or https:// URL"
            )));
        }
    };
    Ok((endpoint.to_string(), tokens))
}

#[async_trait]
impl UrlOpener for GcpOpener {
    fn schemes(&self) -> &[(Port, &'static str)] {
        &[
            (Port::BlobStore, "gs"),
            (Port::Database, "firestore"),
            (Port::Notifier, "fcm"),
            (Port::Classifier, "vision"),
        ]
    }

    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        let params = UrlParams::parse(url, &["create", "project", "endpoint"])?;
        let bucket = host(url, "bucket")?;
        // Every parameter is checked before anything looks for credentials.
        let create_in = match params.flag("create", false)? {
            false => None,
            true => Some(
                params
                    .get("project")
                    .map(String::from)
                    .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok())
                    .ok_or_else(|| {
                        Error::config(
                            "gs://bucket?create=true needs the project: add &project= or set GOOGLE_CLOUD_PROJECT",
                        )
                    })?,
            ),
        };
        let options = match params.get("endpoint") {
            Some(_) => {
                let (endpoint, tokens) = endpoint(&params, crate::blob::GCS_ENDPOINT)?;
                GcsOptions::at(bucket, endpoint, tokens)
            }
            None => GcsOptions::from_env(bucket)?,
        };
        let store = GcsBlobStore::new(options)?;
        if let Some(project) = create_in {
            match store.create_bucket(&project).await {
                Ok(()) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Arc::new(store))
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        let params = UrlParams::parse(url, &["prefix"])?;
        let project = host(url, "project")?;
        let database = match url.path().trim_matches('/') {
            "" => firestore::FIREBASE_DEFAULT_DATABASE_ID,
            db => db,
        };
        let prefix = params.get("prefix").unwrap_or("");
        Ok(Arc::new(
            FirestoreDatabase::open_database(&project, database, prefix).await?,
        ))
    }

    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        let params = UrlParams::parse(url, &["endpoint"])?;
        let project = host(url, "project")?;
        let (endpoint, tokens) = endpoint(&params, FCM_ENDPOINT)?;
        Ok(Arc::new(FcmNotifier::with_endpoint(project, &endpoint, tokens)?))
    }

    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        let params = UrlParams::parse(url, &["bucket", "endpoint"])?;
        let (endpoint, tokens) = endpoint(&params, VISION_ENDPOINT)?;
        let mut classifier = VisionClassifier::with_endpoint(&endpoint, tokens)?;
        if let Some(bucket) = params.get("bucket") {
            classifier = classifier.reading_from_bucket(bucket);
        }
        Ok(Arc::new(classifier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn malformed_urls_are_configuration_errors() {
        for (port, raw) in [
            ("blob", "gs://"),
            ("blob", "gs://bucket?x=1"),
            ("blob", "gs://bucket?create=maybe"),
            ("blob", "gs://bucket?endpoint=ftp://x"),
            ("blob", "gs://bucket?endpoint=nowhere"),
            ("database", "firestore://p?endpoint=http://127.0.0.1:1"),
            ("database", "firestore://p?prefix=a&prefix=b"),
            ("notifier", "fcm://p?endpoint=ftp://x"),
            ("classifier", "vision://?nope=1"),
        ] {
            let url = Url::parse(raw).expect("url");
            let result = match port {
                "blob" => GcpOpener.blob_store(&url).await.map(|_| ()),
                "database" => GcpOpener.database(&url).await.map(|_| ()),
                "notifier" => GcpOpener.notifier(&url).await.map(|_| ()),
                _ => GcpOpener.classifier(&url).await.map(|_| ()),
            };
            assert!(matches!(result, Err(Error::Config { .. })), "{raw}: {result:?}");
        }
        let wrong_port = thisthat_core::Registry::new()
            .with(GcpOpener)
            .blob_store("firestore://p")
            .await;
        assert!(matches!(wrong_port, Err(Error::Config { .. })), "{wrong_port:?}");
    }
}
