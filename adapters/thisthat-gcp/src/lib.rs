//! thisthat on Google Cloud: four adapters, each usable alone in any mix of providers.
//!
//! - [`GcsBlobStore`]: photos in a Cloud Storage bucket over the JSON API, create-only puts
//!   with `ifGenerationMatch=0`, V4 signed URLs for direct uploads and downloads.
//! - [`FirestoreDatabase`]: competitions, votes, devices and pending notifications in
//!   Firestore; a vote is one read and one atomic, conditional commit (see `docs/gcp.md`).
//! - [`FcmNotifier`]: pushes through Firebase Cloud Messaging's HTTP v1 API.
//! - [`VisionClassifier`]: labels and SafeSearch from Cloud Vision's `images:annotate`.
//!
//! Credentials come from Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
//! `gcloud auth application-default login`, or the metadata server), through Google's own
//! `google-cloud-auth`, which the `firestore` crate already brings in; the three REST adapters
//! ask it for their bearer tokens, so the crate has one auth stack. Emulators are found
//! through `FIRESTORE_EMULATOR_HOST` and `STORAGE_EMULATOR_HOST`.
//!
//! Open them by URL with [`GcpOpener`]: `gs://bucket`, `firestore://project`,
//! `fcm://project`, `vision://`.
//!
//! TLS is rustls with ring, the workspace's one crypto provider. google-cloud-auth signs
//! service-account tokens through rustls's process-wide default provider, so every
//! constructor here installs ring as that default when none is installed yet
//! ([`install_crypto_provider`]).

mod auth;
mod blob;
mod classifier;
mod database;
mod error;
mod notifier;
mod opener;

pub use auth::TokenSource;
pub use blob::{GcsBlobStore, GcsOptions};
pub use classifier::VisionClassifier;
pub use database::FirestoreDatabase;
pub use notifier::FcmNotifier;
pub use opener::GcpOpener;

/// The `firestore` crate, for callers who need more of Firestore than the port offers
/// ([`FirestoreDatabase::client`] hands out its client).
pub use firestore;

/// Installs rustls's ring provider as the process-wide default, unless a default is already
/// installed. google-cloud-auth signs service-account JWTs through that default; with only
/// ring compiled in (this workspace's choice) rustls would not pick it on its own.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing one is fine: a default is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
