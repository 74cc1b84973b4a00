//! The Azure adapters against their conformance suites: Blob Storage and Table Storage on
//! Azurite (started by `scripts/with-emulators azure`), Notification Hubs and AI Vision against
//! local wire fakes that check the documented request shapes, and the whole domain on all four
//! together. One test binary, so the SDK is linked once.

use std::sync::Arc;

use thisthat_azure::{AccountKey, AzureBlobStore, AzureTableDatabase, StorageAuth, TableClient};
use thisthat_core::CompetitionId;
use thisthat_testkit::{BlobHarness, SignedUrls};

mod fakes;

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
}

mod blob {
    use super::*;
    thisthat_testkit::blob_store_conformance!(async { Blobs(blob_store().await) });
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

mod database {
    use super::*;
    thisthat_testkit::database_conformance!(database());
}
