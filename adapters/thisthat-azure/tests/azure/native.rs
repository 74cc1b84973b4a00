//! The escape hatch (`thisthat_core::native`): from the erased, layered ports a deployment
//! opens by URL, through to the clients the Azure adapters hold, each making one call of its
//! own on Azurite.

use std::{collections::HashMap, sync::Arc};

use azure_storage_blob::BlobContainerClient;
use thisthat_azure::{AzureBlobStore, AzureOpener, AzureTableDatabase, TableClient};
use thisthat_core::{Backend, Registry, layers::Meter};
use thisthat_testkit::memory;

use crate::{azurite, unique};

/// `azblob://` and `aztable://` opened by URL and layered as the `thisthat` binaries do
/// (`Meter` innermost, then `Trace` and `Retry`) still reach their adapters and clients: the
/// SDK's container client finds the container, and the Table client creates the table that is
/// already there, one request to Azurite.
#[tokio::test]
async fn the_native_clients_are_reached_through_the_layers() {
    let registry = Registry::new().with(AzureOpener::with_env(HashMap::new()));
    let enc = |u: &str| url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
    let table = unique("t");
    let blobs = registry
        .blob_store(&format!(
            "azblob://{}?emulator=true&create=true&endpoint={}",
            unique("c"),
            enc(azurite("THISTHAT_AZURITE_BLOB_URL").as_str())
        ))
        .await
        .expect("azblob://");
    let database = registry
        .database(&format!(
            "aztable://{table}?emulator=true&create=true&endpoint={}",
            enc(azurite("THISTHAT_AZURITE_TABLE_URL").as_str())
        ))
        .await
        .expect("aztable://");
    let backend = Backend {
        blobs,
        database,
        notifier: Arc::new(memory::MemoryNotifier::new()),
        classifier: Arc::new(memory::MemoryClassifier::new()),
    }
    .layer(Meter::new())
    .with_standard_layers();

    // Blob Storage: the SDK's own container client.
    let container: &BlobContainerClient = backend.blobs.native().expect("the container client");
    assert!(
        container
            .exists()
            .await
            .expect("GetContainerProperties through the native client"),
        "the container azblob://?create=true made"
    );
    assert!(backend.blobs.native::<AzureBlobStore>().is_some());

    // Table Storage: the crate's own Table client, on the table the URL named.
    let tables: &TableClient = backend.database.native().expect("the Table client");
    assert_eq!(tables.table(), table);
    let sent = tables.requests_sent();
    tables
        .create_table()
        .await
        .expect("Create Table through the native client (it exists: fine)");
    assert_eq!(tables.requests_sent(), sent + 1);
    assert!(backend.database.native::<AzureTableDatabase>().is_some());

    // Another port's client, or a type no adapter exposes, is None.
    assert!(backend.database.native::<BlobContainerClient>().is_none());
    assert!(backend.blobs.native::<TableClient>().is_none());
    assert!(backend.classifier.native::<reqwest::Client>().is_none());
}
