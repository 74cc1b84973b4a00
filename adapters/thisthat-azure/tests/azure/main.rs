//! The Azure adapters against their conformance suites: Blob Storage and Table Storage on
//! Azurite (started by `scripts/with-emulators azure`), Notification Hubs and AI Vision against
//! local wire fakes that check the documented request shapes (`fakes.rs`), and the whole domain
//! on all four together. One test binary, so the SDK is linked once.
//!
//! This file holds the shared setup only: the Azurite addresses, fresh containers and tables,
//! and the harnesses. The cases are in `blob.rs`, `database.rs`, `notifier.rs`,
//! `classifier.rs`, `domain.rs`, `native.rs` and `wire.rs`. Without Azurite's variables every
//! case that needs it fails (never skips) and says so.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fakes::{HUB_KEY, HubFake, VISION_KEY, VisionFake};
use thisthat_azure::{
    AccountKey, AiVisionClassifier, AzureBlobStore, AzureTableDatabase, NotificationHubsNotifier, Screening,
    StorageAuth, TableClient,
};
use thisthat_core::{Backend, CompetitionId, Endpoint, PushMessage, Result};
use thisthat_testkit::{BlobHarness, DomainHarness, NotifierHarness, ServedHeaders, SignedUrls};

mod blob;
mod classifier;
mod database;
mod domain;
mod fakes;
mod meter;
mod native;
mod notifier;
mod wire;

/// An Azurite URL from the environment; the tests fail without it rather than skip.
fn azurite(var: &str) -> url::Url {
    let raw = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: the Azure tests need Azurite. Run them as \
             `scripts/with-emulators azure -- cargo test -p thisthat-azure`"
        )
    });
    raw.parse()
        .unwrap_or_else(|e| panic!("{var}={raw:?} is not a URL: {e}"))
}

/// A name no other case uses (containers and tables: lower-case letters and digits).
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", CompetitionId::new()).to_lowercase()
}

async fn blob_store() -> Arc<AzureBlobStore> {
    let store = AzureBlobStore::new(
        azurite("THISTHAT_AZURITE_BLOB_URL"),
        &unique("c"),
        StorageAuth::Key(AccountKey::development()),
    )
    .expect("blob store")
    // Small pages, so that the suite's 230-blob listing pages through continuations.
    .with_list_page_size(100);
    store.create_container().await.expect("create container");
    Arc::new(store)
}

struct Blobs(Arc<AzureBlobStore>);

impl BlobHarness for Blobs {
    fn store(&self) -> Arc<dyn thisthat_core::ports::BlobStore> {
        self.0.clone()
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }
    fn served_headers(&self) -> ServedHeaders {
        // Azurite answers a SAS's `rsct` and `rscd` (and checks them as part of its signature).
        ServedHeaders::Honoured
    }
}

/// A database in a table of its own.
async fn database() -> Arc<AzureTableDatabase> {
    let table = TableClient::new(
        azurite("THISTHAT_AZURITE_TABLE_URL"),
        &unique("t"),
        StorageAuth::Key(AccountKey::development()),
    )
    .expect("table client");
    let db = AzureTableDatabase::new(table);
    db.create_tables().await.expect("create table");
    Arc::new(db)
}

/// Notification Hubs against its wire fake.
struct Hub {
    fake: HubFake,
    notifier: Arc<NotificationHubsNotifier>,
}

impl Hub {
    async fn start() -> Self {
        let fake = HubFake::start().await;
        let notifier = Arc::new(NotificationHubsNotifier::new(fake.config(HUB_KEY)).expect("notifier"));
        Hub { fake, notifier }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Every case ends with the fake having seen only documented requests.
        let violations = self.fake.fake.violations();
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "Notification Hubs wire violations: {violations:?}"
            );
        }
    }
}

#[async_trait]
impl NotifierHarness for Hub {
    fn notifier(&self) -> Arc<dyn thisthat_core::ports::Notifier> {
        self.notifier.clone()
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.fake.delivered(&endpoint.address))
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.fake.expire(&endpoint.address);
        Ok(())
    }
}

/// AI Vision against its wire fake.
struct Vision {
    fake: VisionFake,
    classifier: Arc<AiVisionClassifier>,
}

impl Vision {
    async fn start(screening: Screening) -> Self {
        let fake = VisionFake::start().await;
        let classifier = Arc::new(
            AiVisionClassifier::with_key(fake.fake.url().parse().expect("url"), VISION_KEY, screening)
                .expect("classifier"),
        );
        Vision { fake, classifier }
    }
}

impl Drop for Vision {
    fn drop(&mut self) {
        let violations = self.fake.fake.violations();
        if !std::thread::panicking() {
            assert!(violations.is_empty(), "AI Vision wire violations: {violations:?}");
        }
    }
}

impl thisthat_testkit::ClassifierHarness for Vision {
    fn classifier(&self) -> Arc<dyn thisthat_core::ports::Classifier> {
        self.classifier.clone()
    }
}

/// The four Azure adapters together: Blob and Table on Azurite, the hub and Vision on fakes.
struct Azure {
    blobs: Arc<AzureBlobStore>,
    database: Arc<AzureTableDatabase>,
    hub: Hub,
    vision: Vision,
    flagged: Bytes,
}

impl Azure {
    async fn start() -> Self {
        let vision = Vision::start(Screening::AdultV32).await;
        // A valid PNG unlike the suite's own photos, which the fake scores as adult content.
        let flagged = thisthat_testkit::photos::png_of_size(4321);
        vision.fake.flag(flagged.clone());
        Azure {
            blobs: blob_store().await,
            database: database().await,
            hub: Hub::start().await,
            vision,
            flagged,
        }
    }
}

#[async_trait]
impl DomainHarness for Azure {
    fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.hub.notifier.clone(),
            classifier: self.vision.classifier.clone(),
        }
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.hub.fake.delivered(&endpoint.address))
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.hub.fake.expire(&endpoint.address);
        Ok(())
    }

    async fn unsafe_photo(&self) -> Option<Bytes> {
        Some(self.flagged.clone())
    }
}
