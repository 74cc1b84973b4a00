//! Opening the AWS adapters from URLs.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use thisthat_core::{
    Error, Result,
    ports::{BlobStore, Classifier, Database, Notifier},
    registry::{Port, UrlOpener, UrlParams, url_host as host},
};
use tokio::sync::OnceCell;
use url::Url;

use crate::{DynamoDatabase, PlatformApplications, RekognitionClassifier, S3BlobStore, SnsNotifier};

/// Opens the AWS adapters from URLs, loading the AWS configuration once (standard chain,
/// [`crate::load_config`]: credentials, region, `AWS_ENDPOINT_URL`) as the base of each
/// adapter's own client:
///
/// - `s3://bucket` or `s3://bucket/prefix`, with `?create=true` to create the bucket if
///   missing and `?path_style=true` for `https://host/bucket/key` addressing (MinIO, and most
///   S3-compatible stores reached by IP address): [`S3BlobStore`];
/// - `dynamodb://table`, with `?create=true` to create the table if missing:
///   [`DynamoDatabase`];
/// - `sns://?fcm=ARN&apns=ARN&apns_sandbox=ARN` (platform application ARNs):
///   [`SnsNotifier`];
/// - `rekognition://`, with `?bucket=B&prefix=P` to read photos from S3 and `?screen=false` to
///   skip the content screen: [`RekognitionClassifier`].
///
/// Every scheme also takes `?endpoint=URL` (an `http://` or `https://` base URL: an
/// S3-compatible store such as Cloudflare R2, MinIO or Backblaze B2, a VPC endpoint, an
/// emulator) and `?region=R` (another region than the chain's; `auto` for R2). They apply to
/// that URL's client alone, so one process can keep its photos on R2 and its data in
/// DynamoDB, or its database in another region than its bucket. A parameter a scheme does not
/// take is refused with [`Error::Config`] naming it.
///
/// ```
/// # async fn open() -> thisthat_core::Result<()> {
/// use thisthat_core::Registry;
/// let registry = Registry::new().with(thisthat_aws::AwsOpener::new());
/// // Photos on Cloudflare R2, with R2's keys in the standard chain (AWS_ACCESS_KEY_ID, ...).
/// let photos = registry
///     .blob_store("s3://photos?endpoint=https://ACCOUNT.r2.cloudflarestorage.com&region=auto")
///     .await?;
/// # Ok(()) }
/// ```
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

/// The parameters every AWS scheme takes for its own client, besides its own.
const CLIENT_PARAMS: [&str; 2] = ["endpoint", "region"];

/// `own` parameters and [`CLIENT_PARAMS`], for [`UrlParams::parse`].
fn allowed<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(CLIENT_PARAMS).collect()
}

/// Where one URL's client goes: `?endpoint=` and `?region=`, checked before anything is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ClientOptions {
    endpoint: Option<String>,
    region: Option<String>,
}

impl ClientOptions {
    fn of(params: &UrlParams) -> Result<ClientOptions> {
        let endpoint = match params.get("endpoint") {
            None => None,
            Some(raw) => {
                let parsed = Url::parse(raw).map_err(|e| Error::Config {
                    reason: format!("endpoint={raw:?} is not a URL: give the service's base URL, e.g. endpoint=https://ACCOUNT.r2.cloudflarestorage.com"),
                    source: Some(Box::new(e)),
                })?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(Error::config(format!(
                        "endpoint={raw:?} must be an http:// or https:// URL with a host"
                    )));
                }
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(Error::config(format!(
                        "endpoint={raw:?} must not have a query or fragment: URL-encode it (%3F, %26) if it is meant for the endpoint"
                    )));
                }
                Some(raw.trim_end_matches('/').to_owned())
            }
        };
        let region = match params.get("region") {
            None => None,
            Some(r)
                if !r.is_empty()
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                Some(r.to_owned())
            }
            Some(r) => {
                return Err(Error::config(format!(
                    "region={r:?} is not a region name (lower-case letters, digits and dashes, e.g. eu-west-1, or auto for R2)"
                )));
            }
        };
        Ok(ClientOptions { endpoint, region })
    }
}

/// Applies [`ClientOptions`] to each service's config builder, which has the same two setters
/// on every SDK crate but no shared trait.
macro_rules! client {
    ($sdk:ident, $base:expr, $options:expr) => {{
        let options: &ClientOptions = $options;
        let mut builder = $sdk::config::Builder::from($base);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.region($sdk::config::Region::new(region.clone()));
        }
        builder
    }};
}

#[async_trait]
impl UrlOpener for AwsOpener {
    fn schemes(&self) -> &[(Port, &'static str)] {
        &[
            (Port::BlobStore, "s3"),
            (Port::Database, "dynamodb"),
            (Port::Notifier, "sns"),
            (Port::Classifier, "rekognition"),
        ]
    }

    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        let params = UrlParams::parse(url, &allowed(&["create", "path_style"]))?;
        let bucket = host(url, "bucket")?;
        let options = ClientOptions::of(&params)?;
        let path_style = params.flag("path_style", false)?;
        let create = params.flag("create", false)?;
        let client = client!(aws_sdk_s3, self.config().await, &options)
            .force_path_style(path_style)
            .build();
        let store = S3BlobStore::from_client(aws_sdk_s3::Client::from_conf(client), bucket)
            .with_prefix(url.path().trim_start_matches('/'));
        if create {
            store.create_bucket().await?;
        }
        Ok(Arc::new(store))
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        let params = UrlParams::parse(url, &allowed(&["create"]))?;
        let options = ClientOptions::of(&params)?;
        let table = host(url, "table")?;
        let create = params.flag("create", false)?;
        let client = client!(aws_sdk_dynamodb, self.config().await, &options).build();
        let database = DynamoDatabase::from_client(aws_sdk_dynamodb::Client::from_conf(client), table);
        if create {
            database.create_table().await?;
        }
        Ok(Arc::new(database))
    }

    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        let params = UrlParams::parse(url, &allowed(&["apns", "apns_sandbox", "fcm"]))?;
        let options = ClientOptions::of(&params)?;
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
        let client = client!(aws_sdk_sns, self.config().await, &options).build();
        Ok(Arc::new(SnsNotifier::from_client(
            aws_sdk_sns::Client::from_conf(client),
            applications,
        )))
    }

    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        let params = UrlParams::parse(url, &allowed(&["bucket", "prefix", "screen"]))?;
        let options = ClientOptions::of(&params)?;
        let screen = params.flag("screen", true)?;
        let client = client!(aws_sdk_rekognition, self.config().await, &options).build();
        let mut classifier =
            RekognitionClassifier::from_client(aws_sdk_rekognition::Client::from_conf(client)).screening(screen);
        if let Some(bucket) = params.get("bucket") {
            classifier = classifier.reading_from(bucket, params.get("prefix").unwrap_or_default());
        }
        Ok(Arc::new(classifier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An opener whose base configuration reaches nothing: every case here must be refused
    /// while the URL is read, before any request.
    fn opener() -> AwsOpener {
        AwsOpener::with_config(
            SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
        )
    }

    #[tokio::test]
    async fn bad_client_options_are_refused_naming_the_parameter() {
        let opener = opener();
        for (port, raw, says) in [
            ("blob", "s3://b?endpoint=ftp://x", "endpoint="),
            ("blob", "s3://b?endpoint=not%20a%20url", "endpoint="),
            ("blob", "s3://b?endpoint=http://x/?a=1", "endpoint="),
            ("blob", "s3://b?region=", "region="),
            ("blob", "s3://b?region=EU%20West", "region="),
            ("blob", "s3://b?path_style=maybe", "path_style"),
            ("blob", "s3://b?pathstyle=true", "pathstyle="),
            ("database", "dynamodb://t?path_style=true", "path_style="),
            (
                "database",
                "dynamodb://t?endpoint=http://a&endpoint=http://b",
                "endpoint=",
            ),
            ("notifier", "sns://?fcm=arn&region=EU", "region="),
            ("notifier", "sns://?fcm=arn&endpont=http://x", "endpont="),
            ("classifier", "rekognition://?endpoint=x", "endpoint="),
        ] {
            let url = Url::parse(raw).expect("url");
            let result = match port {
                "blob" => opener.blob_store(&url).await.map(|_| ()),
                "database" => opener.database(&url).await.map(|_| ()),
                "notifier" => opener.notifier(&url).await.map(|_| ()),
                _ => opener.classifier(&url).await.map(|_| ()),
            };
            match result {
                Err(Error::Config { reason, .. }) => assert!(reason.contains(says), "{raw}: {reason}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn client_options_are_read_from_the_url() {
        let url = Url::parse("s3://b?endpoint=https://acct.r2.cloudflarestorage.com/&region=auto").expect("url");
        let params = UrlParams::parse(&url, &allowed(&["create", "path_style"])).expect("params");
        assert_eq!(
            ClientOptions::of(&params).expect("options"),
            ClientOptions {
                endpoint: Some("https://acct.r2.cloudflarestorage.com".into()),
                region: Some("auto".into()),
            }
        );
        let url = Url::parse("dynamodb://t").expect("url");
        let params = UrlParams::parse(&url, &allowed(&["create"])).expect("params");
        assert_eq!(ClientOptions::of(&params).expect("options"), ClientOptions::default());
    }
}
