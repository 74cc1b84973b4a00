//! In-memory adapters for all four ports: correct under concurrency (every operation is atomic
//! under one lock), fast, and inspectable, for tests and for trying thisthat without any
//! infrastructure. They pass the same conformance suites as every cloud adapter.

mod blob;
mod classifier;
mod database;
mod notifier;

use std::sync::Arc;

use async_trait::async_trait;
pub use blob::MemoryBlobStore;
pub use classifier::MemoryClassifier;
pub use database::MemoryDatabase;
pub use notifier::MemoryNotifier;
use thisthat_core::{
    Backend, Endpoint, PushMessage, Result, UrlOpener,
    ports::{BlobStore, Classifier, Database, Notifier},
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
    fn schemes(&self) -> &[&'static str] {
        &["memory"]
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

/// The conformance harness of the in-memory adapters: the reference every other harness
/// follows. Signed URLs are served in-process by [`crate::conformance::serve_in_process`], pushes are read
/// from [`MemoryNotifier::sent_to`], and the classifier flags [`crate::photos::coffee_png`] as
/// unsafe.
#[derive(Debug, Clone, Default)]
pub struct MemoryHarness {
    /// The adapters under test.
    pub memory: MemoryBackend,
}

impl MemoryHarness {
    /// Fresh adapters.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl crate::BlobHarness for MemoryHarness {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.memory.blobs.clone()
    }
    fn signed_urls(&self) -> crate::SignedUrls {
        crate::SignedUrls::Enforced
    }
    async fn direct(
        &self,
        url: &thisthat_core::ports::SignedUrl,
        body: Option<bytes::Bytes>,
    ) -> Result<crate::DirectResponse> {
        Ok(serve(&self.memory.blobs, url, body).await)
    }
}

async fn serve(
    blobs: &MemoryBlobStore,
    url: &thisthat_core::ports::SignedUrl,
    body: Option<bytes::Bytes>,
) -> crate::DirectResponse {
    crate::conformance::serve_in_process(blobs, blobs.signer(), blobs.clock().now(), url, body).await
}

#[async_trait]
impl crate::NotifierHarness for MemoryHarness {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.memory.notifier.clone()
    }
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.memory.notifier.sent_to(endpoint))
    }
    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.memory.notifier.expire(endpoint);
        Ok(())
    }
}

#[async_trait]
impl crate::DomainHarness for MemoryHarness {
    fn backend(&self) -> Backend {
        self.memory.backend()
    }
    fn signed_urls(&self) -> crate::SignedUrls {
        crate::SignedUrls::Enforced
    }
    async fn direct(
        &self,
        url: &thisthat_core::ports::SignedUrl,
        body: Option<bytes::Bytes>,
    ) -> Result<crate::DirectResponse> {
        Ok(serve(&self.memory.blobs, url, body).await)
    }
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        Ok(self.memory.notifier.sent_to(endpoint))
    }
    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.memory.notifier.expire(endpoint);
        Ok(())
    }
    async fn unsafe_photo(&self) -> Option<bytes::Bytes> {
        let photo = crate::photos::coffee_png();
        self.memory.classifier.flag_unsafe(&photo, "violence", 0.95).ok()?;
        Some(photo)
    }
}
