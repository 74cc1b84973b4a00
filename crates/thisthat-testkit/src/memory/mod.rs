//! The in-memory adapters (the `thisthat-memory` crate, re-exported here) and their
//! conformance harness, the reference every other harness follows.

use std::sync::Arc;

use async_trait::async_trait;
use thisthat_core::{
    Backend, Endpoint, PushMessage, Result,
    ports::{BlobStore, Notifier},
};
pub use thisthat_memory::*;

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
    fn served_headers(&self) -> crate::ServedHeaders {
        crate::ServedHeaders::Honoured
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
