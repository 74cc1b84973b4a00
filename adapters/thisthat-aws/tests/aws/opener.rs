//! Opening the four adapters from URLs, as a deployment's configuration does.

use thisthat_aws::AwsOpener;
use thisthat_core::{BackendConfig, Error, Registry};

use crate::support::{moto_config, unique};

/// All four open from URLs alone (the bucket and table created by `?create=true`), and a
/// misspelt or unknown parameter is refused, not ignored.
#[tokio::test]
async fn every_scheme_opens_and_typos_are_refused() {
    let registry = Registry::new().with(AwsOpener::with_config(moto_config().await));
    let application = crate::notifier::notifier()
        .await
        .applications()
        .fcm
        .clone()
        .expect("fcm");
    let name = unique("opener");
    let backend = registry
        .open(&BackendConfig {
            storage: format!("s3://{name}/photos?create=true"),
            database: format!("dynamodb://{name}?create=true"),
            notifier: format!("sns://?fcm={application}"),
            classifier: "rekognition://?screen=false".into(),
        })
        .await
        .expect("open");
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
