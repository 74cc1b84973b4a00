//! Composition: layers around real adapters, and opening adapters by URL.

use std::sync::Arc;

use thisthat::{
    BackendConfig, Error, NewCompetition, Thisthat,
    layers::{Layered, Retry, RetryPolicy, Trace},
    ports::{Delivery, Notifier},
};
use thisthat_testkit::{
    faults::FailNext,
    fixtures,
    memory::{MemoryBackend, MemoryNotifier},
};

fn fast_retry(max_attempts: u32) -> Retry {
    Retry::new(RetryPolicy {
        max_attempts,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(2),
    })
}

async fn create(service: &Thisthat) -> thisthat::Competition {
    let new = NewCompetition {
        title: None,
        photos: thisthat_testkit::photos::three(),
    };
    service
        .create_competition(&fixtures::user("alice"), new)
        .await
        .expect("create")
}

fn message() -> thisthat::PushMessage {
    let competition = thisthat::CompetitionId::new();
    thisthat::PushMessage {
        title: "t".into(),
        body: "b".into(),
        competition,
        idempotency_key: competition.to_string(),
    }
}

#[tokio::test]
async fn retry_outside_faults_hides_transient_failures() {
    let memory = Arc::new(MemoryNotifier::new());
    let faults = FailNext::new("notifier", "send", 2);
    let flaky = Arc::new(Layered::new(memory.clone(), faults.clone()));
    let notifier = Layered::new(flaky, fast_retry(3));
    let endpoint = notifier.register(&fixtures::device("alice")).await.expect("register");
    assert_eq!(
        notifier.send(&endpoint, &message()).await.expect("send"),
        Delivery::Accepted
    );
    assert_eq!(faults.remaining(), 0);
    assert_eq!(memory.sent_to(&endpoint).len(), 1, "delivered once, after two failures");
}

#[tokio::test]
async fn retry_gives_up_and_returns_the_retryable_error() {
    let memory = Arc::new(MemoryNotifier::new());
    let flaky = Arc::new(Layered::new(memory.clone(), FailNext::new("notifier", "send", 5)));
    let notifier = Layered::new(flaky, fast_retry(3));
    let endpoint = notifier.register(&fixtures::device("alice")).await.expect("register");
    let result = notifier.send(&endpoint, &message()).await;
    assert!(matches!(&result, Err(e) if e.is_retryable()), "{result:?}");
    assert!(memory.sent_to(&endpoint).is_empty());
}

#[tokio::test]
async fn a_fully_layered_backend_runs_the_whole_story() {
    let memory = MemoryBackend::new();
    let backend = memory.backend().layer(fast_retry(4)).layer(Trace);
    let service = Thisthat::builder(backend).build().expect("service");
    let c = create(&service).await;
    for i in 0..24 {
        service
            .vote(&fixtures::user(&format!("v{i}")), &c.id, 0)
            .await
            .expect("vote");
    }
    assert_eq!(
        memory.database.pending_notifications(),
        0,
        "delivered (owner has no devices, nothing to send)"
    );
    assert_eq!(memory.database.vote_count(), 24);
}

fn config(storage: &str) -> BackendConfig {
    BackendConfig {
        storage: storage.into(),
        database: "memory://".into(),
        notifier: "memory://".into(),
        classifier: "memory://".into(),
    }
}

#[tokio::test]
async fn the_registry_opens_adapters_by_url() {
    let backend = thisthat::registry().open(&config("memory://")).await.expect("open");
    let service = Thisthat::builder(backend).build().expect("service");
    let c = create(&service).await;
    assert_eq!(service.competition(&c.id).await.expect("read").id, c.id);
}

#[tokio::test]
async fn a_mix_of_adapters_opens_by_url() {
    let config = BackendConfig {
        database: "sqlite::memory:".into(),
        ..config("memory://")
    };
    let backend = thisthat::registry().open(&config).await.expect("open");
    let service = Thisthat::builder(backend).build().expect("service");
    let c = create(&service).await;
    let receipt = service
        .vote(&fixtures::user("bob"), &c.id, 2)
        .await
        .expect("vote on SQLite");
    assert_eq!(receipt.tally.counts(), &[0, 0, 1]);
}

#[tokio::test]
async fn unknown_schemes_and_non_urls_are_config_errors_that_say_what_to_do() {
    let err = thisthat::registry()
        .open(&config("s4://bucket"))
        .await
        .expect_err("unknown scheme");
    assert!(
        matches!(&err, Error::Config { reason, .. } if reason.contains("s4://") && reason.contains("memory")),
        "{err}"
    );
    let err = thisthat::registry()
        .open(&config("not a url"))
        .await
        .expect_err("not a url");
    assert!(matches!(err, Error::Config { .. }));
}

#[tokio::test]
async fn invalid_rules_are_refused_at_build_time() {
    let rules = thisthat::Rules {
        votes_to_close: 0,
        ..thisthat::Rules::default()
    };
    let built = Thisthat::builder(MemoryBackend::new().backend()).rules(rules).build();
    assert!(matches!(built, Err(Error::Config { .. })));
}
