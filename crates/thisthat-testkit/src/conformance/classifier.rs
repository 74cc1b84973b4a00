//! The classifier suite. See [`crate::classifier_conformance`].

use bytes::Bytes;
use thisthat_core::{Classification, media::sniff, ports::PhotoInput};

use super::ClassifierHarness;
use crate::photos;

/// Turns the classifier cases into one `#[tokio::test]` each. The argument gives a fresh
/// [`ClassifierHarness`].
///
/// The list sits next to the cases it names, and a test refuses a `pub async fn` case of this
/// file that is missing from it.
#[macro_export]
macro_rules! classifier_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            classifier,
            [
                labels_real_photos_in_every_format,
                confidences_are_in_range,
                moderation_matches_capability,
                rejects_what_is_not_an_image,
            ]
        );
    };
}

async fn classify(h: &impl ClassifierHarness, bytes: Bytes) -> thisthat_core::Result<Classification> {
    let media_type = sniff(&bytes)
        .map(|i| i.media_type)
        .unwrap_or(thisthat_core::MediaType::Png);
    h.classifier()
        .classify(&PhotoInput {
            bytes,
            media_type,
            key: None,
        })
        .await
}

/// Real JPEG and PNG photos get at least one label each; WebP is accepted.
pub async fn labels_real_photos_in_every_format(h: &impl ClassifierHarness) {
    for (name, photo) in [
        ("cat png", photos::cat_png()),
        ("coffee png", photos::coffee_png()),
        ("rocket jpeg", photos::rocket_jpeg()),
    ] {
        let c = classify(h, photo).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.labels.is_empty(), "{name}: no labels");
    }
    classify(h, photos::pixel_webp()).await.expect("webp");
}

/// Every confidence is within 0..=1 and every name is normalised.
pub async fn confidences_are_in_range(h: &impl ClassifierHarness) {
    let c = classify(h, photos::cat_png()).await.expect("classify");
    for label in c.labels.iter().chain(c.moderation.iter().flatten()) {
        assert!((0.0..=1.0).contains(&label.confidence), "{label:?}");
        assert_eq!(label.name.as_str(), label.name.as_str().to_lowercase());
    }
}

/// Moderation labels are present exactly when the classifier says it screens content.
pub async fn moderation_matches_capability(h: &impl ClassifierHarness) {
    let c = classify(h, photos::coffee_png()).await.expect("classify");
    assert_eq!(c.moderation.is_some(), h.classifier().screens_content());
}

/// Bytes that are not an image are refused with a typed error, not labelled.
pub async fn rejects_what_is_not_an_image(h: &impl ClassifierHarness) {
    let result = classify(h, photos::not_an_image()).await;
    assert!(
        matches!(
            result,
            Err(thisthat_core::Error::UnsupportedMediaType { .. } | thisthat_core::Error::InvalidInput { .. })
        ),
        "{result:?}"
    );
}
