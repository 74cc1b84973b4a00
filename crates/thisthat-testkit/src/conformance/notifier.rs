//! The notifier suite. See [`crate::notifier_conformance`].

use thisthat_core::{CompetitionId, PushMessage, ports::Delivery};

use super::NotifierHarness;
use crate::fixtures::device;

/// Turns the notifier cases into one `#[tokio::test]` each. The argument gives a fresh
/// [`NotifierHarness`].
///
/// The list sits next to the cases it names, and a test refuses a `pub async fn` case of this
/// file that is missing from it.
#[macro_export]
macro_rules! notifier_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            notifier,
            [
                registered_devices_receive_pushes,
                registering_twice_is_harmless,
                gone_devices_are_reported,
                unregistering_is_idempotent,
            ]
        );
    };
}

fn message() -> PushMessage {
    let competition = CompetitionId::new();
    PushMessage {
        title: "Results are in: Which jacket?".into(),
        body: "Photo 2 won with 12 of 24 votes, 4 ahead of the runner-up.".into(),
        competition,
        idempotency_key: format!("thisthat-result-{competition}"),
    }
}

/// A registered device receives what is sent to it, title, body and competition intact.
pub async fn registered_devices_receive_pushes(h: &impl NotifierHarness) {
    let notifier = h.notifier();
    let endpoint = notifier.register(&device("alice")).await.expect("register");
    assert_eq!(endpoint.device.user.as_str(), "alice");
    assert!(!endpoint.address.is_empty());
    let m = message();
    assert_eq!(notifier.send(&endpoint, &m).await.expect("send"), Delivery::Accepted);
    let delivered = h.delivered(&endpoint).await.expect("inspect");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].title, m.title);
    assert_eq!(delivered[0].body, m.body);
    assert_eq!(delivered[0].competition, m.competition);
    assert_eq!(
        delivered[0].idempotency_key, m.idempotency_key,
        "the provider gets the key it dedupes on"
    );
}

/// Registering the same device twice gives an endpoint that works, and one push reaches it
/// once.
pub async fn registering_twice_is_harmless(h: &impl NotifierHarness) {
    let notifier = h.notifier();
    let d = device("alice");
    let first = notifier.register(&d).await.expect("register");
    let second = notifier.register(&d).await.expect("register again");
    assert_eq!(first.device, second.device);
    assert_eq!(
        notifier.send(&second, &message()).await.expect("send"),
        Delivery::Accepted
    );
    assert_eq!(h.delivered(&second).await.expect("inspect").len(), 1);
}

/// A device its provider considers gone is reported as [`Delivery::Gone`], not as an error
/// to retry.
pub async fn gone_devices_are_reported(h: &impl NotifierHarness) {
    let notifier = h.notifier();
    let endpoint = notifier.register(&device("alice")).await.expect("register");
    h.expire(&endpoint).await.expect("expire");
    assert_eq!(
        notifier.send(&endpoint, &message()).await.expect("send"),
        Delivery::Gone
    );
    assert!(h.delivered(&endpoint).await.expect("inspect").is_empty());
}

/// Unregistering works twice over, and an unregistered device gets nothing.
pub async fn unregistering_is_idempotent(h: &impl NotifierHarness) {
    let notifier = h.notifier();
    let endpoint = notifier.register(&device("alice")).await.expect("register");
    notifier.unregister(&endpoint).await.expect("unregister");
    notifier.unregister(&endpoint).await.expect("unregister again");
    let sent = notifier.send(&endpoint, &message()).await;
    assert!(matches!(sent, Ok(Delivery::Gone)), "{sent:?}");
    assert!(h.delivered(&endpoint).await.expect("inspect").is_empty());
}
