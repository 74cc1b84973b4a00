//! The outbox notifier against the notifier conformance suite, plus what a developer relies
//! on: the outbox file's lines, persistence across reopening, and concurrent sends.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use thisthat_core::{
    CompetitionId, Endpoint, PushMessage, Result,
    ports::{Delivery, Notifier},
};
use thisthat_local::OutboxNotifier;
use thisthat_testkit::{NotifierHarness, fixtures::device};

/// A notifier in a fresh temporary directory, removed when the case ends.
struct Outbox {
    notifier: Arc<OutboxNotifier>,
    dir: PathBuf,
}

impl Outbox {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("thisthat-outbox-{}", CompetitionId::new()));
        let notifier = OutboxNotifier::open(&dir).expect("open");
        Outbox {
            notifier: Arc::new(notifier),
            dir,
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl NotifierHarness for Outbox {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self
            .notifier
            .read_outbox()?
            .into_iter()
            .filter(|e| e.endpoint == endpoint.address)
            .map(|e| e.message())
            .collect())
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.notifier.revoke(endpoint)
    }
}

mod notifier {
    use super::*;
    thisthat_testkit::notifier_conformance!(async { Outbox::new() });
}

fn message(title: &str) -> PushMessage {
    let competition = CompetitionId::new();
    PushMessage {
        title: title.into(),
        body: "Photo 1 won with 13 of 24 votes.".into(),
        competition,
        idempotency_key: format!("thisthat-result-{competition}"),
    }
}

#[tokio::test]
async fn the_outbox_is_one_json_line_per_push_with_every_field() {
    let outbox = Outbox::new();
    let d = device("alice");
    let endpoint = outbox.notifier.register(&d).await.expect("register");
    assert_eq!(endpoint.address, format!("outbox:{}:fcm:{}", d.user, d.token));
    let m = message("Results are in: \"quotes\" and\nnewlines");
    assert_eq!(
        outbox.notifier.send(&endpoint, &m).await.expect("send"),
        Delivery::Accepted
    );

    let text = std::fs::read_to_string(outbox.notifier.outbox_path()).expect("read outbox.jsonl");
    assert_eq!(text.lines().count(), 1);
    assert!(text.ends_with('\n'));
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("a JSON line");
    for field in [
        "time",
        "endpoint",
        "user",
        "platform",
        "title",
        "body",
        "competition",
        "idempotency_key",
    ] {
        assert!(line.get(field).is_some(), "{field} missing from {line}");
    }
    assert_eq!(line["user"], "alice");
    assert_eq!(line["platform"], "fcm");

    let entries = outbox.notifier.read_outbox().expect("read");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].message(), m);
    assert_eq!(entries[0].endpoint, endpoint.address);
    assert_eq!(entries[0].user.as_str(), "alice");
}

#[tokio::test]
async fn registrations_and_revocations_survive_reopening() {
    let outbox = Outbox::new();
    let kept = outbox.notifier.register(&device("alice")).await.expect("register");
    let revoked = outbox.notifier.register(&device("bob")).await.expect("register");
    let removed = outbox.notifier.register(&device("carol")).await.expect("register");
    outbox.notifier.revoke(&revoked).expect("revoke");
    outbox.notifier.unregister(&removed).await.expect("unregister");

    let reopened = OutboxNotifier::open(&outbox.dir).expect("reopen");
    let m = message("Results are in");
    assert_eq!(reopened.send(&kept, &m).await.expect("send"), Delivery::Accepted);
    assert_eq!(reopened.send(&revoked, &m).await.expect("send"), Delivery::Gone);
    assert_eq!(reopened.send(&removed, &m).await.expect("send"), Delivery::Gone);
    assert_eq!(reopened.read_outbox().expect("read").len(), 1);

    // A revoked device that registers again receives pushes again.
    let again = reopened.register(&revoked.device).await.expect("register again");
    assert_eq!(reopened.send(&again, &m).await.expect("send"), Delivery::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sends_never_interleave() {
    let outbox = Outbox::new();
    let endpoint = outbox.notifier.register(&device("alice")).await.expect("register");
    let long_body = "x".repeat(20_000);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (notifier, endpoint) = (outbox.notifier.clone(), endpoint.clone());
        let mut m = message(&format!("push {i}"));
        m.body = long_body.clone();
        tasks.push(tokio::spawn(async move { notifier.send(&endpoint, &m).await }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("send"), Delivery::Accepted);
    }
    let text = std::fs::read_to_string(outbox.notifier.outbox_path()).expect("read");
    assert_eq!(text.lines().count(), 64);
    for line in text.lines() {
        serde_json::from_str::<thisthat_local::OutboxEntry>(line).expect("every line is a whole entry");
    }
    let mut titles: Vec<_> = outbox
        .notifier
        .read_outbox()
        .expect("read")
        .into_iter()
        .map(|e| e.title)
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 64);
}

#[tokio::test]
async fn bad_input_is_an_error_not_a_panic() {
    let outbox = Outbox::new();
    let mut d = device("alice");
    d.token = "has a space\n".into();
    assert!(matches!(
        outbox.notifier.register(&d).await,
        Err(thisthat_core::Error::InvalidInput { .. })
    ));
    // A torn or hand-edited line is skipped, not fatal.
    std::fs::write(outbox.notifier.outbox_path(), "{\"not\": \"an entry\"}\n{\"time\":").expect("write");
    assert!(outbox.notifier.read_outbox().expect("read").is_empty());
    // A damaged registry is reported when opening.
    std::fs::write(outbox.dir.join("endpoints.json"), "not json").expect("write");
    assert!(matches!(
        OutboxNotifier::open(&outbox.dir),
        Err(thisthat_core::Error::Backend { .. })
    ));
}

#[tokio::test]
async fn one_user_cannot_unregister_anothers_device() {
    let outbox = Outbox::new();
    let notifier = outbox.notifier();
    let alices = device("alice");
    let same_token_for_bob = thisthat_core::Device {
        user: thisthat_testkit::fixtures::user("bob"),
        ..alices.clone()
    };
    let alice = notifier.register(&alices).await.expect("register");
    let bob = notifier.register(&same_token_for_bob).await.expect("register");
    notifier.unregister(&bob).await.expect("unregister");
    let message = PushMessage {
        title: "t".into(),
        body: "b".into(),
        competition: CompetitionId::new(),
        idempotency_key: "k".into(),
    };
    assert_eq!(notifier.send(&alice, &message).await.expect("send"), Delivery::Accepted);
}
