use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    BlobKey, Clock, Entity, Error, Result, SystemClock,
    ports::{Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, SignedUrl, SignedUrlRequest},
    signing::UrlSigner,
};

#[derive(Debug, Clone)]
struct Stored {
    body: Bytes,
    content_type: Option<String>,
    version: u64,
}

/// Blobs in a map. Signed URLs are real HMAC-signed `memory://` URLs that
/// `thisthat_testkit::conformance::serve_in_process` honours the way an HTTP server would, so the signed-upload flow
/// can be tested without one.
#[derive(Debug)]
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<BlobKey, Stored>>,
    versions: std::sync::atomic::AtomicU64,
    signer: UrlSigner,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryBlobStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Page size of [`BlobStore::list`]: small, so that tests exercise continuation.
const LIST_PAGE: usize = 100;

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose signed URLs expire by `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
        MemoryBlobStore {
            blobs: Mutex::default(),
            versions: Default::default(),
            signer: UrlSigner::new(secret, "memory://blobs/").expect("a 32-byte secret and a valid base"),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<BlobKey, Stored>> {
        // A panic while holding the lock cannot leave the map half-written (every write is one
        // insert or remove), so a poisoned lock is still consistent.
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key stored, in order.
    pub fn keys(&self) -> Vec<BlobKey> {
        self.lock().keys().cloned().collect()
    }

    /// The signer of this store's `memory://` URLs.
    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// The clock signed URLs expire by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn store(&self, key: &BlobKey, body: Bytes, content_type: Option<String>, mode: PutMode) -> Result<BlobMeta> {
        let mut blobs = self.lock();
        if mode == PutMode::Create && blobs.contains_key(key) {
            return Err(Error::conflict(format!("{key} already exists")));
        }
        let version = self.versions.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let stored = Stored {
            body,
            content_type,
            version,
        };
        let meta = meta(key, &stored);
        blobs.insert(key.clone(), stored);
        Ok(meta)
    }
}

fn meta(key: &BlobKey, stored: &Stored) -> BlobMeta {
    BlobMeta {
        key: key.clone(),
        size: stored.body.len() as u64,
        content_type: stored.content_type.clone(),
        etag: Some(format!("\"{}\"", stored.version)),
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        self.store(key, body, options.content_type.clone(), options.mode)
    }

    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let blobs = self.lock();
        let stored = blobs.get(key).ok_or_else(|| Error::not_found(Entity::Blob, key))?;
        let body = match &options.range {
            None => stored.body.clone(),
            Some(range) => {
                let len = stored.body.len() as u64;
                let (start, end) = (range.start.min(len), range.end.min(len));
                if start > end {
                    return Err(Error::invalid("range", "start is after end"));
                }
                stored.body.slice(start as usize..end as usize)
            }
        };
        Ok(Blob {
            meta: meta(key, stored),
            body,
        })
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let blobs = self.lock();
        blobs
            .get(key)
            .map(|s| meta(key, s))
            .ok_or_else(|| Error::not_found(Entity::Blob, key))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let blobs = self.lock();
        let after = continuation.as_deref().unwrap_or("");
        let mut matching = blobs
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix) && k.as_str() > after)
            .map(|(k, s)| meta(k, s));
        let page: Vec<BlobMeta> = matching.by_ref().take(LIST_PAGE).collect();
        let next = if matching.next().is_some() {
            page.last().map(|m| m.key.to_string())
        } else {
            None
        };
        Ok(ListPage { blobs: page, next })
    }

    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        self.signer.sign(key, request, self.clock.now())
    }

    /// Exposes the adapter itself, for its inspection methods.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }
}
