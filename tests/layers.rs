//! The layers the shipped binaries install (`Backend::with_standard_layers`): a transient
//! failure is retried, an adapter's exhausted loop (`Error::Busy`) is not retried again.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use thisthat::{
    Error, NewCompetition, Result, Thisthat,
    layers::{Call, Interceptor},
};
use thisthat_testkit::{faults::FailNext, fixtures::user, memory::MemoryBackend, photos};

/// Answers every vote with `Error::Busy`, as an adapter whose race loop gave up does, and
/// counts how often it was asked.
#[derive(Debug, Clone, Default)]
struct BusyVotes(Arc<AtomicUsize>);

impl Interceptor for BusyVotes {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        if call.operation == "cast_vote" {
            self.0.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Busy {
                provider: "test",
                attempts: 64,
                source: None,
            });
        }
        op().await
    }
}

async fn create(service: &Thisthat) -> thisthat::Competition {
    let new = NewCompetition {
        title: None,
        photos: photos::three(),
    };
    service.create_competition(&user("owner"), new).await.expect("create")
}

#[tokio::test]
async fn the_standard_layers_retry_transient_failures() {
    let memory = MemoryBackend::new();
    let flaky = FailNext::new("database", "cast_vote", 2);
    let service = Thisthat::builder(memory.backend().layer(flaky.clone()).with_standard_layers())
        .build()
        .expect("service");
    let c = create(&service).await;
    let receipt = service
        .vote(&user("voter"), &c.id, 0)
        .await
        .expect("retried until it went through");
    assert_eq!(receipt.tally.counts(), &[1, 0, 0]);
    assert_eq!(flaky.remaining(), 0, "both failures were met and retried");
}

#[tokio::test]
async fn an_exhausted_adapter_loop_is_not_retried_again() {
    let memory = MemoryBackend::new();
    let busy = BusyVotes::default();
    let service = Thisthat::builder(memory.backend().layer(busy.clone()).with_standard_layers())
        .build()
        .expect("service");
    let c = create(&service).await;
    let vote = service.vote(&user("voter"), &c.id, 0).await;
    assert!(matches!(vote, Err(Error::Busy { .. })), "{vote:?}");
    assert_eq!(busy.0.load(Ordering::SeqCst), 1, "asked once: retries do not multiply");
}
