//! In-memory adapters for all four ports: correct under concurrency (every operation is atomic
//! under one lock), fast, and inspectable, for tests and for trying thisthat without any
//! infrastructure (`memory://` URLs, [`MemoryOpener`]). They pass the same conformance suites
//! as every cloud adapter (those live in `thisthat-testkit`, which re-exports this crate as
//! `thisthat_testkit::memory`). [`samples`] holds real photos to try them with.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> thisthat_core::Result<()> {
//! use thisthat_core::{NewCompetition, Thisthat, UserId};
//! use thisthat_memory::{MemoryBackend, samples};
//!
//! let service = Thisthat::builder(MemoryBackend::new().backend()).build()?;
//! let owner = UserId::new("alice")?;
//! let c = service
//!     .create_competition(&owner, NewCompetition { title: None, photos: samples::three() })
//!     .await?;
//! assert_eq!(c.photos.len(), 3);
//! # Ok(()) }
//! ```
//!
//! Each adapter exposes itself through the ports' escape hatch
//! ([`thisthat_core::native`]), so code that holds only the erased, layered [`Backend`] can
//! still reach an adapter's inspection methods:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> thisthat_core::Result<()> {
//! use thisthat_core::{BackendConfig, Registry, layers::Meter};
//! use thisthat_memory::{MemoryDatabase, MemoryNotifier, MemoryOpener};
//!
//! let memory = "memory://".to_owned();
//! let config = BackendConfig {
//!     storage: memory.clone(), database: memory.clone(), notifier: memory.clone(), classifier: memory,
//! };
//! // Opened by URL and layered as the `thisthat` binaries do.
//! let backend = Registry::new()
//!     .with(MemoryOpener)
//!     .open(&config)
//!     .await?
//!     .layer(Meter::new())
//!     .with_standard_layers();
//!
//! let memory: &MemoryDatabase = backend.database.native().expect("a memory database");
//! assert_eq!(memory.vote_count(), 0);
//! // Asking for another type, or another port's adapter, answers None.
//! assert!(backend.database.native::<MemoryNotifier>().is_none());
//! # Ok(()) }
//! ```

mod blob;
mod classifier;
mod database;
mod notifier;
pub mod samples;

use std::sync::Arc;

use async_trait::async_trait;
pub use blob::MemoryBlobStore;
pub use classifier::MemoryClassifier;
pub use database::MemoryDatabase;
pub use notifier::MemoryNotifier;
use thisthat_core::{
    Backend, Result, UrlOpener,
    ports::{BlobStore, Classifier, Database, Notifier},
    registry::Port,
};
use url::Url;

/// A [`Backend`] of four fresh in-memory adapters, plus typed handles to them for inspection.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    /// The blob store.
    pub blobs: Arc<MemoryBlobStore>,
    /// The database.
    pub database: Arc<MemoryDatabase>,
    /// The notifier.
    pub notifier: Arc<MemoryNotifier>,
    /// The classifier.
    pub classifier: Arc<MemoryClassifier>,
}

impl MemoryBackend {
    /// Four fresh, empty adapters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The adapters as a [`Backend`] for [`Thisthat::builder`](thisthat_core::Thisthat::builder).
    pub fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.notifier.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// Opens in-memory adapters for `memory://` URLs (each URL opens a fresh, empty adapter).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryOpener;

#[async_trait]
impl UrlOpener for MemoryOpener {
    fn schemes(&self) -> &[(Port, &'static str)] {
        &[
            (Port::BlobStore, "memory"),
            (Port::Database, "memory"),
            (Port::Notifier, "memory"),
            (Port::Classifier, "memory"),
        ]
    }
    async fn blob_store(&self, _url: &Url) -> Result<Arc<dyn BlobStore>> {
        Ok(Arc::new(MemoryBlobStore::new()))
    }
    async fn database(&self, _url: &Url) -> Result<Arc<dyn Database>> {
        Ok(Arc::new(MemoryDatabase::new()))
    }
    async fn notifier(&self, _url: &Url) -> Result<Arc<dyn Notifier>> {
        Ok(Arc::new(MemoryNotifier::new()))
    }
    async fn classifier(&self, _url: &Url) -> Result<Arc<dyn Classifier>> {
        Ok(Arc::new(MemoryClassifier::new()))
    }
}
