//! The model's port operations equal the meter's counts exactly, on every backend here. A change
//! to the domain or an adapter that changes what a scenario calls fails this until the model
//! follows. Emulator backends call `thisthat_cost::drive::run` the same way (docs/cost.md).

#![cfg(feature = "drive")]

use std::sync::Arc;

use thisthat_core::{Backend, CompetitionId};
use thisthat_cost::drive;
use thisthat_local::{FileBlobStore, OutboxNotifier, PixelClassifier, SqliteDatabase};
use thisthat_testkit::memory::MemoryBackend;

async fn metered_equals_modelled(backend: Backend, scenario: &thisthat_cost::Scenario) {
    let run = drive::metered_equals_modelled(backend, scenario)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.usage
            .ports
            .values()
            .flat_map(|ops| ops.values())
            .all(|o| o.billed.is_empty()),
        "the embedded adapters bill nothing"
    );
}

#[tokio::test]
async fn on_the_memory_backend() {
    for scenario in drive::scenarios() {
        metered_equals_modelled(MemoryBackend::new().backend(), &scenario).await;
    }
}

#[tokio::test]
async fn on_sqlite_and_files() {
    for scenario in drive::scenarios() {
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
