//! The whole domain on S3 + DynamoDB + SNS (moto) + Rekognition (the wire fake, since moto has
//! no moderation call): every rule of the domain suite, the 1,000-voter race included.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_aws::{DynamoDatabase, RekognitionClassifier, S3BlobStore, SnsNotifier};
use thisthat_core::{Backend, Endpoint, PushMessage, Result};
use thisthat_testkit::{DomainHarness, SignedUrls, photos};

use crate::{blob, classifier::classifier_at, database, fakes::FakeRekognition, notifier};

/// The photo the fake flags as unsafe: a valid PNG header no other case uploads.
fn flagged() -> Bytes {
    photos::png_of_size(5000)
}

pub struct OnAws {
    pub blobs: Arc<S3BlobStore>,
    pub database: Arc<DynamoDatabase>,
    pub notifier: Arc<SnsNotifier>,
    pub classifier: Arc<RekognitionClassifier>,
    pub rekognition: FakeRekognition,
}

impl OnAws {
    /// Four adapters with state of their own: a bucket, a table and a platform application.
    pub async fn new() -> Self {
        let rekognition = FakeRekognition::start(Some(flagged())).await;
        OnAws {
            blobs: Arc::new(blob::store().await),
            database: Arc::new(database::database().await),
            notifier: Arc::new(notifier::notifier().await),
            classifier: Arc::new(classifier_at(rekognition.wire.url())),
            rekognition,
        }
    }
}

impl Drop for OnAws {
    fn drop(&mut self) {
        // A request the fake refused fails the case that sent it; this makes sure none slipped by.
        let violations = self.rekognition.wire.violations();
        if !std::thread::panicking() {
            assert!(
                violations.is_empty(),
                "requests Rekognition would refuse: {violations:?}"
            );
        }
    }
}

#[async_trait]
impl DomainHarness for OnAws {
    fn backend(&self) -> Backend {
        Backend {
            blobs: self.blobs.clone(),
            database: self.database.clone(),
            notifier: self.notifier.clone(),
            classifier: self.classifier.clone(),
        }
    }

    fn signed_urls(&self) -> SignedUrls {
        SignedUrls::Unenforced
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        notifier::delivered(endpoint).await
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        notifier::expire(&self.notifier, endpoint).await
    }

    async fn unsafe_photo(&self) -> Option<Bytes> {
        Some(flagged())
    }
}

mod conformance {
    use super::*;
    thisthat_testkit::domain_conformance!(OnAws::new());
}
