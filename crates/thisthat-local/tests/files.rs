//! The file blob store against the blob-store conformance suite, its signed URLs served
//! in-process exactly as the embedded HTTP server serves them.

use std::{path::PathBuf, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    Result,
    ports::{BlobStore, SignedUrl},
};
use thisthat_local::FileBlobStore;
use thisthat_testkit::{BlobHarness, DirectResponse, ServedHeaders, SignedUrls, conformance::serve_in_process};

/// A store in a fresh temporary directory, removed when the case ends.
struct Files {
    store: Arc<FileBlobStore>,
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("thisthat-files-{}", thisthat_core::CompetitionId::new()));
        let store = FileBlobStore::open(&dir, "http://127.0.0.1:8080/blobs/", vec![42; 32]).expect("open");
        Files {
            store: Arc::new(store),
            dir,
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl BlobHarness for Files {
    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }
    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Enforced
    }
    fn served_headers(&self) -> ServedHeaders {
        ServedHeaders::Honoured
    }
    async fn direct(&self, url: &SignedUrl, body: Option<Bytes>) -> Result<DirectResponse> {
        Ok(serve_in_process(
            &*self.store,
            self.store.signer(),
            std::time::SystemTime::now(),
            url,
            body,
        )
        .await)
    }
}

mod blob {
    use super::*;
    thisthat_testkit::blob_store_conformance!(async { Files::new() });
}

#[tokio::test]
async fn nothing_outside_the_root_is_reachable_and_no_temporary_files_remain() {
    let files = Files::new();
    let store = files.store();
    let key = thisthat_core::BlobKey::new("competitions/x/0.png").expect("key");
    store
        .put(
            &key,
            Bytes::from_static(b"png"),
            &thisthat_core::ports::PutOptions::create("image/png"),
        )
        .await
        .expect("put");
    let _ = store
        .put(
            &key,
            Bytes::from_static(b"again"),
            &thisthat_core::ports::PutOptions::create("image/png"),
        )
        .await;
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(files.dir.join("competitions/x")).expect("read dir") {
        leftovers.push(entry.expect("entry").file_name().to_string_lossy().into_owned());
    }
    assert_eq!(leftovers, vec!["0.png"], "the failed create left no temporary file");
    assert!(thisthat_core::BlobKey::new("../escape").is_err());
    assert!(thisthat_core::BlobKey::new("a/../../escape").is_err());
}
