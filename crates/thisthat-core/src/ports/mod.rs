//! The four ports the domain is written against. An adapter crate implements one or more of
//! them for a provider; the service takes any four, from any mix of providers.
//!
//! Every port is an object-safe async trait, used as `Arc<dyn Port>`, and every adapter of a
//! port passes the same conformance suite in `thisthat-testkit`.

mod blob;
mod classifier;
mod database;
mod notifier;

pub use blob::{
    Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrl,
    SignedUrlRequest,
};
pub use classifier::{Classifier, PhotoInput};
pub use database::{Database, NotificationClaim};
pub use notifier::{Delivery, Notifier};

#[cfg(feature = "mock")]
pub use blob::MockBlobStore;
#[cfg(feature = "mock")]
pub use classifier::MockClassifier;
#[cfg(feature = "mock")]
pub use database::MockDatabase;
#[cfg(feature = "mock")]
pub use notifier::MockNotifier;
