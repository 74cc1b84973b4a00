//! The whole domain on the embedded default alone: photos as files, SQLite on disk, pushes to
//! the outbox file, pixel labels. Every rule of the domain contract, the 1,000-voter race
//! included, with signed URLs served exactly as the embedded HTTP server serves them.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{Backend, CompetitionId, Endpoint, PushMessage, Result, ports::SignedUrl};
use thisthat_local::{FileBlobStore, OutboxNotifier, PixelClassifier, SqliteDatabase};
use thisthat_testkit::{DirectResponse, DomainHarness, SignedUrls, conformance::serve_in_process};

/// The four embedded adapters in a fresh temporary directory, removed when the case ends.
struct Embedded {
    blobs: Arc<FileBlobStore>,
    database: Arc<SqliteDatabase>,
    outbox: Arc<OutboxNotifier>,
    dir: PathBuf,
}

impl Embedded {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("thisthat-embedded-{}", CompetitionId::new()));
        let blobs = FileBlobStore::open(dir.join("blobs"), "http://127.0.0.1:8080/blobs/", vec![5; 32]).expect("files");
        Embedded {
            blobs: Arc::new(blobs),
            database: Arc::new(SqliteDatabase::open(&dir.join("thisthat.db")).expect("sqlite")),
            outbox: Arc::new(OutboxNotifier::open(dir.join("outbox")).expect("outbox")),
            dir,
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl DomainHarness for Embedded {
    fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.outbox.clone(),
            classifier: Arc::new(PixelClassifier::new()),
        }
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }

    async fn direct(&self, url: &SignedUrl, body: Option<Bytes>) -> Result<DirectResponse> {
        Ok(serve_in_process(
            &*self.blobs,
            self.blobs.signer(),
            std::time::SystemTime::now(),
            url,
            body,
        )
        .await)
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        let entries = self.outbox.read_outbox()?;
        Ok(entries
            .into_iter()
            .filter(|e| e.endpoint == endpoint.address)
            .map(|e| e.message())
            .collect())
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.outbox.revoke(endpoint)
    }

    async fn unsafe_photo(&self) -> Option<Bytes> {
        // The offline classifiers do not screen content; the suite checks they say so.
        None
    }
}

mod domain {
    use super::*;
    thisthat_testkit::domain_conformance!(async { Embedded::new() });
}
