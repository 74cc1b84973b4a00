//! The Rekognition classifier: the classifier suite against moto (labels only: moto has no
//! moderation call) and against the wire fake (labels and the content screen), plus what only
//! the fake can show: request shapes and error mapping.

use std::sync::Arc;

use thisthat_aws::RekognitionClassifier;
use thisthat_core::{
    BlobKey, Error, MediaType,
    ports::{Classifier, PhotoInput},
};
use thisthat_testkit::{ClassifierHarness, photos};

use crate::{
    fakes::FakeRekognition,
    support::{config_for, moto_config},
};

/// A classifier talking to the fake at `url`.
pub fn classifier_at(url: &str) -> RekognitionClassifier {
    RekognitionClassifier::from_client(aws_sdk_rekognition::Client::new(&config_for(url)))
}

mod against_moto {
    use super::*;
    thisthat_testkit::classifier_conformance!(async {
        Arc::new(
            RekognitionClassifier::from_client(aws_sdk_rekognition::Client::new(&moto_config().await)).screening(false),
        )
    });
}

struct FakeCase {
    classifier: Arc<RekognitionClassifier>,
    _fake: FakeRekognition,
}

impl ClassifierHarness for FakeCase {
    fn classifier(&self) -> Arc<dyn Classifier> {
        self.classifier.clone()
    }
}

mod against_the_wire_fake {
    use super::*;
    thisthat_testkit::classifier_conformance!(async {
        let fake = FakeRekognition::start(None).await;
        FakeCase {
            classifier: Arc::new(classifier_at(fake.wire.url())),
            _fake: fake,
        }
    });
}

fn input(bytes: bytes::Bytes, media_type: MediaType, key: Option<&str>) -> PhotoInput {
    PhotoInput {
        bytes,
        media_type,
        key: key.map(|k| BlobKey::new(k).expect("key")),
    }
}

/// A flagged photo comes back with its moderation labels; a clean one with an empty list.
#[tokio::test]
async fn moderation_labels_flag_unsafe_photos() {
    let flagged = photos::png_of_size(5000);
    let fake = FakeRekognition::start(Some(flagged.clone())).await;
    let classifier = classifier_at(fake.wire.url());
    let bad = classifier
        .classify(&input(flagged, MediaType::Png, None))
        .await
        .expect("classify");
    let names: Vec<&str> = bad.moderation.iter().flatten().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["graphic violence", "violence"]);
    assert!(
        bad.moderation
            .iter()
            .flatten()
            .all(|l| (l.confidence - 0.955).abs() < 1e-6)
    );
    let good = classifier
        .classify(&input(photos::cat_png(), MediaType::Png, None))
        .await
        .expect("classify");
    assert_eq!(good.moderation, Some(vec![]));
    assert_eq!(good.labels[0].name.as_str(), "animal", "most confident first");
    assert!(fake.wire.violations().is_empty(), "{:?}", fake.wire.violations());
}

/// With the bucket configured, stored JPEG and PNG photos are read from S3 by Rekognition
/// (an `S3Object` under the store's prefix); WebP, which Rekognition cannot read, is sent as
/// JPEG bytes instead.
#[tokio::test]
async fn stored_photos_are_read_from_s3() {
    let fake = FakeRekognition::start(None).await;
    let classifier = classifier_at(fake.wire.url()).reading_from("photos", "app");
    classifier
        .classify(&input(
            photos::rocket_jpeg(),
            MediaType::Jpeg,
            Some("competitions/c/0.jpg"),
        ))
        .await
        .expect("classify jpeg");
    classifier
        .classify(&input(
            photos::pixel_webp(),
            MediaType::Webp,
            Some("competitions/c/1.webp"),
        ))
        .await
        .expect("classify webp");
    let requests = fake.wire.requests();
    assert_eq!(requests.len(), 4, "labels and moderation for each photo");
    for request in &requests[..2] {
        let body = request.json().expect("json");
        assert_eq!(body["Image"]["S3Object"]["Bucket"], "photos");
        assert_eq!(body["Image"]["S3Object"]["Name"], "app/competitions/c/0.jpg");
    }
    for request in &requests[2..] {
        let body = request.json().expect("json");
        assert!(body["Image"]["S3Object"].is_null());
        let sent = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            body["Image"]["Bytes"].as_str().expect("bytes"),
        )
        .expect("base64");
        assert_eq!(
            thisthat_core::media::sniff(&sent).expect("image").media_type,
            MediaType::Jpeg
        );
    }
    assert!(fake.wire.violations().is_empty(), "{:?}", fake.wire.violations());
}

/// Rekognition's documented errors become errors a caller can act on.
#[tokio::test]
async fn provider_errors_are_mapped() {
    let fake = FakeRekognition::start(None).await;
    // Without retries, so that each injected error reaches the adapter.
    let config = aws_sdk_rekognition::config::Builder::from(&config_for(fake.wire.url()))
        .retry_config(aws_sdk_rekognition::config::retry::RetryConfig::disabled())
        .build();
    let classifier = RekognitionClassifier::from_client(aws_sdk_rekognition::Client::from_conf(config));
    let photo = input(photos::cat_png(), MediaType::Png, None);
    fake.fail_next(400, "ProvisionedThroughputExceededException");
    let r = classifier.classify(&photo).await;
    assert!(matches!(&r, Err(e) if e.is_retryable()), "{r:?}");
    fake.fail_next(400, "AccessDeniedException");
    assert!(matches!(classifier.classify(&photo).await, Err(Error::Config { .. })));
    fake.fail_next(400, "InvalidImageFormatException");
    assert!(matches!(
        classifier.classify(&photo).await,
        Err(Error::UnsupportedMediaType { .. })
    ));
    fake.fail_next(400, "ImageTooLargeException");
    assert!(matches!(classifier.classify(&photo).await, Err(Error::TooLarge { .. })));
    // A bucket Rekognition cannot read is the configuration's fault, not the photo's: the
    // service must not reject (and delete) the user's upload for it.
    fake.fail_next(400, "InvalidS3ObjectException");
    assert!(matches!(classifier.classify(&photo).await, Err(Error::Config { .. })));
    // And the request after the injected failures is answered normally.
    classifier.classify(&photo).await.expect("classify");
    assert!(fake.wire.violations().is_empty(), "{:?}", fake.wire.violations());
}
