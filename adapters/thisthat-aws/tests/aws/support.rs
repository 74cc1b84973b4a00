//! Connecting to moto, and giving each case state of its own.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use thisthat_core::CompetitionId;
use tokio::sync::OnceCell;

/// moto's base URL, from the environment `scripts/with-emulators aws` sets up.
pub fn moto() -> String {
    std::env::var("THISTHAT_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "THISTHAT_MOTO_URL is not set: these tests need moto. Run them with \
             `scripts/with-emulators aws -- cargo test -p thisthat-aws` (it installs moto[server] from PyPI and starts it)"
        )
    })
}

/// An AWS configuration pointing every service at `endpoint`, with dummy credentials.
pub fn config_for(endpoint: &str) -> SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("tokio sleep"))
        // moto answers one request at a time (scripts/emulators/moto_serialized.py); in the
        // thousand-voter race a connection may wait longer than the SDK's 3.1 s default.
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(60))
                .build(),
        )
        .build()
}

/// The configuration for moto, after wiping whatever an earlier run of this binary left there.
/// Cases run in parallel in one process, so moto is reset once, before the first case; after
/// that each case keeps to its own bucket, table and platform application.
pub async fn moto_config() -> SdkConfig {
    static RESET: OnceCell<()> = OnceCell::const_new();
    let url = moto();
    RESET
        .get_or_init(|| async {
            let response = reqwest::Client::new()
                .post(format!("{url}/moto-api/reset"))
                .send()
                .await
                .expect("moto answers");
            assert!(response.status().is_success(), "moto reset: {}", response.status());
        })
        .await;
    config_for(&url)
}

/// An S3 client for `config`; path-style, since moto listens on an IP address.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// A name no other case uses (lower case: bucket names must be).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", CompetitionId::new().to_string().to_lowercase())
}

/// What moto recorded as published to the SNS platform endpoint `arn`, oldest first: each a
/// message as `Publish` received it. Read through the route `scripts/emulators/moto_serialized.py`
/// adds, since AWS has no call for it and moto's `/moto-api/data.json` serialises its whole state.
pub async fn published_to(arn: &str) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("{}/thisthat/sns/endpoint-messages", moto()))
        .query(&[("arn", arn)])
        .send()
        .await
        .expect("moto answers");
    assert!(
        response.status().is_success(),
        "moto's endpoint-messages route: {} (is moto running under scripts/emulators/moto_serialized.py?)",
        response.status()
    );
    let body: serde_json::Value = response.json().await.expect("the route answers JSON");
    body["messages"]
        .as_array()
        .expect("a list of messages")
        .iter()
        .map(|m| m.as_str().expect("each message is a string").to_owned())
        .collect()
}
