//! thisthat on AWS: four adapters, each usable alone so that a team can mix them with other
//! providers' (Cloud Storage + DynamoDB + SNS, say).
//!
//! | port | adapter | service | URL |
//! |---|---|---|---|
//! | [`BlobStore`](thisthat_core::ports::BlobStore) | [`S3BlobStore`] | S3 | `s3://bucket/optional/prefix` |
//! | [`Database`](thisthat_core::ports::Database) | [`DynamoDatabase`] | DynamoDB | `dynamodb://table` |
//! | [`Notifier`](thisthat_core::ports::Notifier) | [`SnsNotifier`] | SNS mobile push | `sns://?apns=ARN&fcm=ARN` |
//! | [`Classifier`](thisthat_core::ports::Classifier) | [`RekognitionClassifier`] | Rekognition | `rekognition://?bucket=B&screen=true` |
//!
//! Credentials and region come from the standard AWS chain (environment, profiles, SSO,
//! container and instance roles) through [`load_config`]; `AWS_ENDPOINT_URL` and the
//! per-service `AWS_ENDPOINT_URL_S3`-style variables are respected, which is how the tests
//! reach moto. Every adapter can be built from an SDK client you configured yourself
//! (`from_client`) and hands it back (`client()`), the escape hatch for anything thisthat
//! does not wrap. Table design, IAM permissions and what is tested where: `docs/aws.md`.
//!
//! The sources use the module names every provider crate shares (`blob`, `database`,
//! `notifier`, `classifier`, `opener`, `error`): `blob.rs`, `database/` (`mod.rs`
//! the port, `codec.rs` items in native DynamoDB types, `schema.rs` the table, `vote.rs` the
//! vote algorithm), `notifier.rs`, `classifier.rs`, `opener.rs` and `error.rs`. A vote is one
//! conditional `UpdateItem` (two for the closing vote), decided by
//! [`thisthat_core::adapter::decide_vote`] on whatever its condition refused.
//!
//! ```no_run
//! # async fn run() -> thisthat_core::Result<()> {
//! use thisthat_aws::AwsOpener;
//! use thisthat_core::{BackendConfig, Registry};
//!
//! let registry = Registry::new().with(AwsOpener::new());
//! let backend = registry
//!     .open(&BackendConfig {
//!         storage: "s3://my-photos".into(),
//!         database: "dynamodb://thisthat".into(),
//!         notifier: "sns://?fcm=arn:aws:sns:eu-west-1:123456789012:app/GCM/thisthat".into(),
//!         classifier: "rekognition://?bucket=my-photos".into(),
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

mod blob;
mod classifier;
mod config;
mod database;
mod error;
mod notifier;
mod opener;

pub use blob::S3BlobStore;
pub use classifier::RekognitionClassifier;
pub use config::load_config;
pub use database::{DynamoDatabase, MAX_VOTES_TO_CLOSE};
pub use notifier::{PlatformApplications, SnsNotifier};
pub use opener::AwsOpener;

/// The AWS SDK crates thisthat builds on, re-exported so that code using the escape hatches
/// names the same versions.
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_dynamodb as dynamodb;
    pub use aws_sdk_rekognition as rekognition;
    pub use aws_sdk_s3 as s3;
    pub use aws_sdk_sns as sns;
}
