//! SNS mobile push: the notifier suite against moto, a platform application per case.

use std::sync::Arc;

use async_trait::async_trait;
use thisthat_aws::{PlatformApplications, SnsNotifier};
use thisthat_core::{Endpoint, Error, PushMessage, Result, ports::Notifier};
use thisthat_testkit::{NotifierHarness, fixtures::device};

use crate::support::{moto_config, published_to, unique};

pub struct SnsCase {
    pub notifier: Arc<SnsNotifier>,
}

/// A notifier with an FCM platform application of its own.
pub async fn notifier() -> SnsNotifier {
    let client = aws_sdk_sns::Client::new(&moto_config().await);
    let application = client
        .create_platform_application()
        .name(unique("thisthat"))
        .platform("GCM")
        .attributes("PlatformCredential", "test-server-key")
        .send()
        .await
        .expect("create platform application")
        .platform_application_arn
        .expect("application ARN");
    SnsNotifier::from_client(
        client,
        PlatformApplications {
            fcm: Some(application),
            ..Default::default()
        },
    )
}

/// What moto recorded as published to `endpoint`, decoded back into messages from the FCM
/// payload (the one a device of this platform receives).
pub async fn delivered(endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
    let mut messages = Vec::new();
    for published in published_to(&endpoint.address).await {
        let structure: serde_json::Value = serde_json::from_str(&published).map_err(|e| Error::backend("test", e))?;
        let fcm: serde_json::Value = serde_json::from_str(structure["GCM"].as_str().unwrap_or_default())
            .map_err(|e| Error::backend("test", e))?;
        messages.push(PushMessage {
            title: fcm["notification"]["title"].as_str().unwrap_or_default().to_owned(),
            body: fcm["notification"]["body"].as_str().unwrap_or_default().to_owned(),
            competition: fcm["data"]["competition"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|_| Error::backend("test", "no competition in the payload"))?,
            idempotency_key: fcm["data"]["idempotency_key"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok(messages)
}

/// Disables the endpoint, as SNS does when FCM reports the token invalid.
pub async fn expire(notifier: &SnsNotifier, endpoint: &Endpoint) -> Result<()> {
    notifier
        .client()
        .set_endpoint_attributes()
        .endpoint_arn(&endpoint.address)
        .attributes("Enabled", "false")
        .send()
        .await
        .map_err(|e| Error::backend("test", e))?;
    Ok(())
}

#[async_trait]
impl NotifierHarness for SnsCase {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        delivered(endpoint).await
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        expire(&self.notifier, endpoint).await
    }
}

mod conformance {
    use super::*;
    thisthat_testkit::notifier_conformance!(async {
        SnsCase {
            notifier: Arc::new(notifier().await),
        }
    });
}

/// A device whose endpoint SNS disabled registers again and works: the endpoint is taken over
/// and enabled (AWS's documented recipe for "already exists with different attributes").
#[tokio::test]
async fn a_disabled_device_registers_again() {
    let notifier = notifier().await;
    let d = device("alice");
    let first = notifier.register(&d).await.expect("register");
    expire(&notifier, &first).await.expect("disable");
    let again = notifier.register(&d).await.expect("register again");
    assert_eq!(again.address, first.address);
    let message = PushMessage {
        title: "t".into(),
        body: "b".into(),
        competition: thisthat_core::CompetitionId::new(),
        idempotency_key: "k".into(),
    };
    assert_eq!(
        notifier.send(&again, &message).await.expect("send"),
        thisthat_core::ports::Delivery::Accepted
    );
    assert_eq!(delivered(&again).await.expect("inspect").len(), 1);
}

/// A platform with no configured application is refused with a message naming the setting.
#[tokio::test]
async fn an_unconfigured_platform_is_a_configuration_error() {
    let notifier = SnsNotifier::from_client(
        aws_sdk_sns::Client::new(&moto_config().await),
        PlatformApplications::default(),
    );
    let r = notifier.register(&device("alice")).await;
    assert!(
        matches!(&r, Err(Error::Config { reason, .. }) if reason.contains("fcm")),
        "{r:?}"
    );
}

/// A phone handed on: its token, registered by alice, is registered again by bob. The
/// endpoint is bob's now; alice's old registration gets nothing of bob's (it is gone for her),
/// and alice unregistering does not delete bob's endpoint.
#[tokio::test]
async fn a_token_registered_by_another_user_leaves_the_first() {
    let notifier = notifier().await;
    let alices = device("alice");
    let bobs = thisthat_core::Device::new(
        thisthat_testkit::fixtures::user("bob"),
        alices.platform,
        alices.token.clone(),
    )
    .expect("device");
    let alice = notifier.register(&alices).await.expect("alice registers");
    let bob = notifier.register(&bobs).await.expect("bob registers the same phone");
    assert_eq!(alice.address, bob.address, "one endpoint per token");
    let message = PushMessage {
        title: "Results are in".into(),
        body: "Photo 1 won".into(),
        competition: thisthat_core::CompetitionId::new(),
        idempotency_key: "k".into(),
    };
    assert_eq!(
        notifier.send(&alice, &message).await.expect("send"),
        thisthat_core::ports::Delivery::Gone
    );
    notifier.unregister(&alice).await.expect("alice unregisters");
    assert_eq!(
        notifier.send(&bob, &message).await.expect("send"),
        thisthat_core::ports::Delivery::Accepted
    );
    assert_eq!(delivered(&bob).await.expect("inspect").len(), 1);
}

/// Titles far longer than a push payload holds are cut so that the payload fits (4 KB).
#[tokio::test]
async fn long_titles_are_cut_to_fit_the_payload() {
    let message = PushMessage {
        title: "é".repeat(10_000),
        body: "b".repeat(5_000),
        competition: thisthat_core::CompetitionId::new(),
        idempotency_key: "k".into(),
    };
    let payload: serde_json::Value =
        serde_json::from_str(&SnsNotifier::payload(&message).expect("payload")).expect("json");
    for platform in ["GCM", "APNS"] {
        let inner = payload[platform].as_str().expect("string");
        assert!(inner.len() < 4096, "{platform}: {} bytes", inner.len());
    }
}
