//! Opening the AWS adapters from URLs.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use thisthat_core::{
    Error, Result,
    ports::{BlobStore, Classifier, Database, Notifier},
    registry::{UrlOpener, UrlParams, url_host as host},
};
use tokio::sync::OnceCell;
use url::Url;

use crate::{DynamoDatabase, PlatformApplications, RekognitionClassifier, S3BlobStore, SnsNotifier};

/// Opens the AWS adapters from URLs, loading the AWS configuration once (standard chain,
/// [`crate::load_config`]) and sharing it between them:
///
/// - `s3://bucket` or `s3://bucket/prefix`, with `?create=true` to create the bucket if
///   missing: [`S3BlobStore`];
/// - `dynamodb://table`, with `?create=true` to create the table if missing:
///   [`DynamoDatabase`];
/// - `sns://?fcm=ARN&apns=ARN&apns_sandbox=ARN` (platform application ARNs):
///   [`SnsNotifier`];
/// - `rekognition://`, with `?bucket=B&prefix=P` to read photos from S3 and `?screen=false` to
///   skip the content screen: [`RekognitionClassifier`].
#[derive(Debug, Default)]
pub struct AwsOpener {
    config: OnceCell<SdkConfig>,
}

impl AwsOpener {
    /// An opener that loads the AWS configuration the first time it opens something.
    pub fn new() -> Self {
        Self::default()
    }

    /// An opener using a configuration you loaded (another region, explicit credentials).
    pub fn with_config(config: SdkConfig) -> Self {
        AwsOpener {
            config: OnceCell::new_with(Some(config)),
        }
    }

    async fn config(&self) -> &SdkConfig {
        self.config.get_or_init(crate::load_config).await
    }
}

#[async_trait]
impl UrlOpener for AwsOpener {
    fn schemes(&self) -> &[&'static str] {
        &["s3", "dynamodb", "sns", "rekognition"]
    }

    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        if url.scheme() != "s3" {
            return Err(Error::config(format!(
                "{}:// is not blob storage; use s3://bucket",
                url.scheme()
            )));
        }
        let params = UrlParams::parse(url, &["create"])?;
        let bucket = host(url, "bucket")?;
        let store = S3BlobStore::from_client(aws_sdk_s3::Client::new(self.config().await), bucket)
            .with_prefix(url.path().trim_start_matches('/'));
        if params.flag("create", false)? {
            store.create_bucket().await?;
        }
        Ok(Arc::new(store))
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        if url.scheme() != "dynamodb" {
            return Err(Error::config(format!(
                "{}:// is not a database; use dynamodb://table",
                url.scheme()
            )));
        }
        let params = UrlParams::parse(url, &["create"])?;
        let database =
            DynamoDatabase::from_client(aws_sdk_dynamodb::Client::new(self.config().await), host(url, "table")?);
        if params.flag("create", false)? {
            database.create_table().await?;
        }
        Ok(Arc::new(database))
    }

    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        if url.scheme() != "sns" {
            return Err(Error::config(format!(
                "{}:// is not a notifier; use sns://?fcm=ARN",
                url.scheme()
            )));
        }
        let params = UrlParams::parse(url, &["apns", "apns_sandbox", "fcm"])?;
        let applications = PlatformApplications {
            apns: params.get("apns").map(str::to_owned),
            apns_sandbox: params.get("apns_sandbox").map(str::to_owned),
            fcm: params.get("fcm").map(str::to_owned),
        };
        if applications == PlatformApplications::default() {
            return Err(Error::config(format!(
                "{url}: give at least one platform application ARN (sns://?fcm=ARN&apns=ARN)"
            )));
        }
        Ok(Arc::new(SnsNotifier::from_client(
            aws_sdk_sns::Client::new(self.config().await),
            applications,
        )))
    }

    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        if url.scheme() != "rekognition" {
            return Err(Error::config(format!(
                "{}:// is not a classifier; use rekognition://",
                url.scheme()
            )));
        }
        let params = UrlParams::parse(url, &["bucket", "prefix", "screen"])?;
        let mut classifier = RekognitionClassifier::from_client(aws_sdk_rekognition::Client::new(self.config().await))
            .screening(params.flag("screen", true)?);
        if let Some(bucket) = params.get("bucket") {
            classifier = classifier.reading_from(bucket, params.get("prefix").unwrap_or_default());
        }
        Ok(Arc::new(classifier))
    }
}
