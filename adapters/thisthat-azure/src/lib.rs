//! thisthat on Azure: photos in Blob Storage ([`AzureBlobStore`]), the database in Table Storage
//! ([`AzureTableDatabase`]), pushes through Notification Hubs ([`NotificationHubsNotifier`]) and
//! labels from AI Vision ([`AiVisionClassifier`]). Each adapter works alone, in any mix with
//! other providers' adapters, and opens from a URL through [`AzureOpener`].
//!
//! Credentials: Microsoft Entra ID through `azure_identity` in production ([`StorageAuth::token`],
//! e.g. a managed identity), or a storage account key where one is configured (which is also how
//! the tests run against Azurite's development account). Notification Hubs and AI Vision take
//! their own keys (a hub's `SharedAccessKey`, a Vision resource key).
//!
//! Every HTTP request goes through one rustls (ring) stack: the Blob crate's own reqwest 0.13
//! transport is replaced by [`transport::ReqwestTransport`] over `thisthat_http::client()`.
//! See `docs/azure.md` for the table design, the credentials and what is verified where.

mod auth;
mod blob;
pub mod classifier;
mod database;
mod error;
pub mod notifier;
mod opener;
mod table;
pub mod transport;

/// The AI Vision classifier under its earlier module name: [`classifier`].
pub use classifier as vision;
/// The Notification Hubs notifier under its earlier module name: [`notifier`].
pub use notifier as notify;

pub use auth::{AccountKey, StorageAuth};
pub use blob::AzureBlobStore;
pub use classifier::{AiVisionClassifier, Screening};
pub use database::AzureTableDatabase;
pub use notifier::{NotificationHubsConfig, NotificationHubsNotifier};
pub use opener::AzureOpener;
pub use table::TableClient;

/// The well-known account name of the storage emulator (Azurite), public in Microsoft's docs.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";

/// The well-known key of the storage emulator's development account, public in Microsoft's
/// docs. Never a secret: it only opens Azurite.
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
