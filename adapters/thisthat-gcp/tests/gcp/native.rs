//! The escape hatch (`thisthat_core::native`): from the erased, layered ports a deployment
//! opens by URL, through to the clients the Google Cloud adapters hold, each making one call
//! of its own on the emulators.

use thisthat_core::{
    Backend, Registry, Status,
    layers::Meter,
    ports::{BlobStore, Database},
};
use thisthat_gcp::{FirestoreDatabase, GcpOpener, GcsBlobStore, GcsOptions, firestore::FirestoreDb};
use thisthat_testkit::{fixtures::competition, memory};

use crate::{PROJECT, required, unique};

/// `firestore://` and `gs://` opened by URL and layered as the `thisthat` binaries do
/// (`Meter` innermost, then `Trace` and `Retry`) still reach their adapters and clients: the
/// Firestore client reads the document the port wrote, and the HTTP client reads the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_clients_are_reached_through_the_layers() {
    required("STORAGE_EMULATOR_HOST");
    required("FIRESTORE_EMULATOR_HOST");
    let registry = Registry::new().with(GcpOpener);
    let prefix = format!("t{}_", unique());
    let bucket = format!("t-{}", unique());
    let database: std::sync::Arc<dyn Database> = registry
        .database(&format!("firestore://{PROJECT}?prefix={prefix}"))
        .await
        .expect("firestore://");
    let blobs: std::sync::Arc<dyn BlobStore> = registry
        .blob_store(&format!("gs://{bucket}?create=true&project={PROJECT}"))
        .await
        .expect("gs://");
    let backend = Backend {
        blobs,
        database,
        notifier: std::sync::Arc::new(memory::MemoryNotifier::new()),
        classifier: std::sync::Arc::new(memory::MemoryClassifier::new()),
    }
    .layer(Meter::new())
    .with_standard_layers();

    // Firestore: a competition stored through the port is a document to the native client.
    let c = competition("owner", Status::Open, 24);
    backend.database.insert_competition(&c).await.expect("insert");
    let firestore: &FirestoreDatabase = backend.database.native().expect("the Firestore adapter");
    let db: &FirestoreDb = backend.database.native().expect("the Firestore client");
    let document = db
        .fluent()
        .select()
        .by_id_in(format!("{}competitions", firestore.prefix()))
        .one(c.id.to_string())
        .await
        .expect("GetDocument through the native client")
        .expect("the competition's document");
    assert!(
        document.name.ends_with(&format!("/{prefix}competitions/{}", c.id)),
        "{}",
        document.name
    );

    // Cloud Storage: the HTTP client and the options read the bucket's resource.
    let gcs: &GcsBlobStore = backend.blobs.native().expect("the Cloud Storage adapter");
    let options: &GcsOptions = backend.blobs.native().expect("the store's options");
    let http: &reqwest::Client = backend.blobs.native().expect("the HTTP client");
    assert_eq!(gcs.options().bucket, bucket);
    let resource: serde_json::Value = http
        .get(format!("{}/storage/v1/b/{}", options.endpoint, options.bucket))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the bucket's resource through the native client")
        .json()
        .await
        .expect("JSON");
    assert_eq!(resource["name"], bucket.as_str());

    // Another port's client, or a type no adapter exposes, is None.
    assert!(backend.database.native::<reqwest::Client>().is_none());
    assert!(backend.blobs.native::<FirestoreDb>().is_none());
    assert!(backend.notifier.native::<GcsBlobStore>().is_none());
}
