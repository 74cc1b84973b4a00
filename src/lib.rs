//! # thisthat
//!
//! Write the backend of "This, this or that" once (owners post three photos, other users vote
//! for the best, the 24th vote closes the competition and notifies the owner) and run it on
//! AWS, Google Cloud, Azure, any mix of them, or an embedded local default.
//!
//! The domain is written against four ports ([`ports::BlobStore`], [`ports::Database`],
//! [`ports::Notifier`], [`ports::Classifier`]). Pick an adapter for each, put them in a
//! [`Backend`], and build the [`Thisthat`] service on it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> thisthat::Result<()> {
//! use thisthat::{memory::{samples, MemoryBackend}, NewCompetition, Thisthat, UserId};
//!
//! let service = Thisthat::builder(MemoryBackend::new().backend()).build()?;
//! let competition = service
//!     .create_competition(&UserId::new("alice")?, NewCompetition { title: Some("Which jacket?".into()), photos: samples::three() })
//!     .await?;
//! let receipt = service.vote(&UserId::new("bob")?, &competition.id, 0).await?;
//! assert_eq!(receipt.tally.counts(), &[1, 0, 0]);
//! # Ok(()) }
//! ```
//!
//! Adapters can also be chosen by configuration, with URLs such as `memory://` or
//! `s3://photos`: see [`registry()`] and [`Registry`].
//!
//! ## Cargo features
//! - `local` (default): the embedded backend ([`local`]): SQLite, files on disk, an outbox
//!   notifier (with an optional webhook), pixel labels.
//! - `model`: `local` plus its offline image classifier and content screen
//!   (`local::ModelClassifier`, `model:` URLs): EfficientNet-Lite0 and Yahoo's open_nsfw
//!   embedded in the binary and run by `tract`.
//! - `testkit`: the conformance suites, fault injection and fixtures ([`testkit`]), for testing
//!   an adapter of your own. The in-memory adapters are always there ([`memory`]).
//! - `mock`: mockall mocks of the four ports (`ports::MockBlobStore`, …) for testing your own
//!   handlers.
//! - `aws`: the AWS adapters ([`aws`]): S3, DynamoDB, SNS, Rekognition.
//! - `azure`: the Azure adapters ([`azure`]): Blob Storage, Table Storage, Notification Hubs,
//!   AI Vision.
//! - `gcp`: the Google Cloud adapters ([`gcp`]): Cloud Storage, Firestore, FCM, Vision.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use thisthat_aws as aws;
#[cfg(feature = "azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure")))]
pub use thisthat_azure as azure;
pub use thisthat_core::*;
#[cfg(feature = "gcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "gcp")))]
pub use thisthat_gcp as gcp;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use thisthat_local as local;
pub use thisthat_memory as memory;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use thisthat_testkit as testkit;

/// A [`Registry`] that opens every adapter compiled into this build (by cargo feature).
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut registry = Registry::new().with(memory::MemoryOpener);
    #[cfg(feature = "local")]
    {
        registry = registry.with(local::LocalOpener);
    }
    #[cfg(feature = "aws")]
    {
        registry = registry.with(aws::AwsOpener::new());
    }
    #[cfg(feature = "azure")]
    {
        registry = registry.with(azure::AzureOpener::new());
    }
    #[cfg(feature = "gcp")]
    {
        registry = registry.with(gcp::GcpOpener);
    }
    registry
}

/// The README's examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
