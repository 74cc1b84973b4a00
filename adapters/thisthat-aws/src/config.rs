use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::{
    Builder,
    tls::{self, rustls_provider::CryptoMode},
};

/// Loads the AWS configuration the standard way (environment, shared profiles, SSO, web
/// identity, container and instance roles; `AWS_REGION`, `AWS_ENDPOINT_URL`), with an HTTPS
/// client on rustls and *ring*, the one crypto provider thisthat links, so that a process
/// mixing AWS with other providers never has two (rustls refuses to choose between them).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(
            Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        )
        .load()
        .await
}
