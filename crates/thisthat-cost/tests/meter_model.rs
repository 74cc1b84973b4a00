//! The model's port operations equal the meter's counts exactly, on every backend here. A change
//! to the domain or an adapter that changes what a scenario calls fails this until the model
//! follows. Emulator backends call `thisthat_cost::drive::run` the same way (docs/cost.md).

#![cfg(feature = "drive")]

use std::sync::Arc;

use thisthat_core::{Backend, CompetitionId};
use thisthat_cost::{Scenario, drive, model::port_operations};
use thisthat_local::{FileBlobStore, OutboxNotifier, PixelClassifier, SqliteDatabase};
use thisthat_testkit::memory::MemoryBackend;

async fn metered_equals_modelled(backend: Backend, scenario: &Scenario) {
    let usage = drive::run(backend, scenario).await.expect("the scenario plays");
    assert_eq!(usage.call_counts(), port_operations(scenario));
    // Refused votes are counted as refused, not lost.
    let votes = usage.operation("database", "cast_vote").expect("votes");
    let capacity = scenario.competitions * scenario.votes_to_close;
    let requested = scenario.sessions * scenario.votes_per_session;
    assert_eq!(votes.outcomes.get("ok").copied().unwrap_or(0), requested.min(capacity));
    assert_eq!(
        votes.outcomes.get("closed").copied().unwrap_or(0),
        requested.saturating_sub(capacity)
    );
    let puts = usage.operation("blob", "put").expect("puts");
    assert!(puts.bytes_in > 0, "upload bytes are metered");
}

fn scenarios() -> Vec<Scenario> {
    let mut open = drive::small_scenario();
    open.name = "one left open".into();
    open.sessions = 3; // 30 votes: one competition closes, the other gets 6
    let mut bigger_threshold = drive::small_scenario();
    bigger_threshold.votes_to_close = 5;
    bigger_threshold.competitions = 3;
    bigger_threshold.devices_per_owner = 0;
    bigger_threshold.feed_pages_per_session = 2;
    vec![drive::small_scenario(), open, bigger_threshold]
}

#[tokio::test]
async fn on_the_memory_backend() {
    for scenario in scenarios() {
        metered_equals_modelled(MemoryBackend::new().backend(), &scenario).await;
    }
}

#[tokio::test]
async fn on_sqlite_and_files() {
    for scenario in scenarios() {
        let dir = std::env::temp_dir().join(format!("thisthat-cost-{}", CompetitionId::new()));
        let backend = Backend {
            blobs: Arc::new(
                FileBlobStore::open(dir.join("blobs"), "http://127.0.0.1:8080/blobs/", vec![5; 32]).expect("files"),
            ),
            database: Arc::new(SqliteDatabase::open(&dir.join("thisthat.db")).expect("sqlite")),
            notifier: Arc::new(OutboxNotifier::open(dir.join("outbox")).expect("outbox")),
            classifier: Arc::new(PixelClassifier::new()),
        };
        metered_equals_modelled(backend, &scenario).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
